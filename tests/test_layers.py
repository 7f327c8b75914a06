"""SpatialTransformer, ParallelSpatialTransformers and the localisation-net helper."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import stn
from stn import transforms as T


def small_loc(channels: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2))


@pytest.mark.parametrize("name", [n for n in T.names() if n != "polar"])  # polar has no identity map
def test_starts_as_identity_for_every_family(name, dtype):
    x = torch.rand(3, 2, 12, 10, dtype=dtype)
    st = stn.SpatialTransformer(small_loc(2), name, in_features=16).to(dtype)
    torch.testing.assert_close(st(x), x, atol=1e-5, rtol=1e-5)
    assert st.last_params.shape == (3, st.transform.num_params)
    torch.testing.assert_close(st.last_params, st.transform.identity(3, dtype=dtype))


def test_feature_maps_output_size_and_gradients():
    x = torch.rand(2, 9, 16, 16, requires_grad=True)  # a feature map, 9 channels
    st = stn.SpatialTransformer(small_loc(9), "similarity", output_size=(8, 12), hidden=(5,))
    out = st(x)
    assert out.shape == (2, 9, 8, 12)
    out.sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in st.parameters())


def test_lazy_head_infers_features_and_starts_at_identity():
    st = stn.SpatialTransformer(small_loc(1), "attention")
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(st(x), x)
    assert isinstance(st.fc_loc, nn.Linear) and st.fc_loc.in_features == 16


def test_conv_localization_reports_its_output_size():
    for shape, channels in (((3, 32, 32), (64, 128)), ((1, 28, 28), (8, 10)), ((2, 40, 60), (8, 10))):
        net, features = stn.conv_localization(shape, channels)
        assert net(torch.zeros(1, *shape)).flatten(1).shape[1] == features
    assert stn.conv_localization((3, 32, 32), (64, 128))[1] == 2048
    assert stn.conv_localization((1, 28, 28))[1] == 90
    with pytest.raises(ValueError, match="too small"):
        stn.conv_localization((1, 10, 10))


def test_fill_and_padding_reach_the_sampler():
    loc, features = stn.conv_localization((1, 28, 28))
    st = stn.SpatialTransformer(loc, "attention", in_features=features, fill=-3.0)
    with torch.no_grad():
        st.fc_loc.bias.copy_(torch.tensor([2.0, 0.0, 0.0]))  # zoom out: the corners read outside
    assert st(torch.rand(1, 1, 28, 28))[0, 0, 0, 0].item() == pytest.approx(-3.0)


def test_parallel_transformers_concatenate_channels():
    pst = stn.ParallelSpatialTransformers(3, small_loc(2), "attention", output_size=(6, 6), in_features=16)
    x = torch.rand(4, 2, 12, 12)
    out = pst(x)
    assert out.shape == (4, 6, 6, 6)
    assert pst.last_params.shape == (4, 3, 3)
    with torch.no_grad():
        pst.fc_loc.bias.copy_(torch.tensor([1.0, 0, 0, 0.5, 0, 0, 0.5, 0.5, 0.5]))
    out = pst(x)
    expected = [
        stn.warp(x, "attention", torch.tensor([p] * 4), output_size=(6, 6)) for p in pst.last_params[0].tolist()
    ]
    torch.testing.assert_close(out, torch.cat(expected, dim=1))
    with pytest.raises(ValueError, match="k must be"):
        stn.ParallelSpatialTransformers(0, small_loc(2))


def test_errors_name_the_problem():
    st = stn.SpatialTransformer(small_loc(1), "affine", in_features=16)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        st(torch.rand(1, 8, 8))
    with pytest.raises(ValueError, match="unknown transform"):
        stn.SpatialTransformer(small_loc(1), "wobble")
    with pytest.raises(ValueError, match="output_size"):
        stn.SpatialTransformer(small_loc(1), output_size=(0, 4))
    broken = stn.SpatialTransformer(small_loc(1), "affine", in_features=16)
    with torch.no_grad():
        broken.fc_loc.bias.fill_(float("nan"))
    with pytest.raises(ValueError, match="NaN or Inf"):
        broken(torch.rand(1, 1, 8, 8))
