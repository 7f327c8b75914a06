"""The polar transformer (stn.polar): heatmap centroid, origin predictor, and the layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import stn
from stn import transforms as T
from stn.polar import HeatmapCentroid, PolarTransformer, heatmap_centroid, origin_net


def test_a_constant_heatmap_has_its_centroid_at_the_centre():
    heatmap = torch.full((3, 1, 7, 10), 2.5)
    torch.testing.assert_close(heatmap_centroid(heatmap), torch.zeros(3, 2))


@pytest.mark.parametrize("align_corners", [False, True])
def test_a_peak_gives_its_pixel_centre(align_corners):
    heatmap = torch.full((2, 1, 5, 8), -50.0)
    heatmap[0, 0, 1, 6] = 50.0  # row 1, column 6
    heatmap[1, 0, 4, 0] = 50.0
    got = heatmap_centroid(heatmap, align_corners)
    grid = T.base_grid((5, 8), align_corners)
    torch.testing.assert_close(got, torch.stack((grid[1, 6], grid[4, 0])))


def test_the_centroid_is_the_softmax_weighted_mean():
    heatmap = torch.randn(4, 6, 9, dtype=torch.float64)  # (N, h, w) is taken too
    weights = torch.softmax(heatmap.flatten(1), 1).view(4, 6, 9, 1)
    expected = (weights * T.base_grid((6, 9), dtype=torch.float64)).sum((1, 2))
    torch.testing.assert_close(heatmap_centroid(heatmap), expected)
    assert heatmap_centroid(heatmap).dtype == torch.float64
    assert heatmap_centroid(heatmap.half()).dtype == torch.float32


def test_centroid_gradcheck_float64():
    heatmap = torch.randn(2, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(heatmap_centroid, (heatmap,))
    assert torch.autograd.gradgradcheck(heatmap_centroid, (heatmap,))


@pytest.mark.parametrize("bad", [torch.zeros(2, 3, 4, 4), torch.zeros(4, 4), "heatmap"])
def test_centroid_of_a_non_heatmap_is_a_value_error(bad):
    with pytest.raises(ValueError, match="heatmap"):
        heatmap_centroid(bad)


def test_origin_net_starts_constant_and_keeps_the_map_size():
    net = origin_net(3)
    heatmap = net(torch.randn(5, 3, 28, 28))
    assert heatmap.shape == (5, 1, 14, 14)
    assert torch.equal(heatmap, torch.zeros_like(heatmap))
    assert origin_net(1, (4, 4), (1, 1))(torch.randn(1, 1, 9, 7)).shape == (1, 1, 9, 7)
    with pytest.raises(ValueError, match="equally long"):
        origin_net(1, (4, 4), (1,))


def test_identity_start_is_the_centred_polar_image():
    st = PolarTransformer(origin_net(1), (16, 12), max_radius=0.9).eval()
    x = torch.randn(3, 1, 20, 20)
    out = st(x)
    assert out.shape == (3, 1, 16, 12)
    torch.testing.assert_close(st.last_params, torch.zeros(3, 2), atol=1e-6, rtol=0)
    expected = stn.warp(x, T.get("polar", max_radius=0.9), torch.zeros(3, 2), (16, 12))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert isinstance(st.fc_loc, HeatmapCentroid) and st.transform.max_radius == 0.9


def test_the_origin_follows_the_heatmap_and_the_sampler_uses_it():
    class Peak(nn.Module):  # a heatmap peaked on the brightest pixel
        def forward(self, x):
            return 40.0 * x / x.amax((2, 3), keepdim=True)

    st = PolarTransformer(Peak(), (8, 6))
    x = torch.zeros(2, 1, 10, 10)
    x[0, 0, 2, 7] = 1.0
    x[1, 0, 8, 1] = 1.0
    out = st(x)
    grid = T.base_grid((10, 10))
    torch.testing.assert_close(st.last_params, torch.stack((grid[2, 7], grid[8, 1])), atol=1e-3, rtol=0)
    torch.testing.assert_close(out, st.sample(x, st.last_params))
    assert st.output_corners().shape == (2, 4, 2) and st.last_grid.shape == (2, 8, 6, 2)


def test_a_batch_gives_each_image_what_it_gives_alone():
    st = PolarTransformer(origin_net(1), (12, 10)).eval()
    with torch.no_grad():
        st.localization[-1].weight.normal_()  # a heatmap that depends on the image
    x = torch.randn(4, 1, 16, 16)
    together = st(x)
    alone = torch.cat([st(x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_rotating_the_input_a_quarter_turn_rolls_the_polar_image_by_a_quarter_of_its_rows():
    # Row i samples angle 2π(i + 1/2)/H; a rotation of the input by 360/H degrees about the origin
    # moves row i's samples onto row i+1's. A quarter turn about the centre is exact on the pixel
    # grid (rot90), so with H = 4 it rolls the rows by exactly one.
    x = torch.randn(2, 1, 12, 12, dtype=torch.float64)
    for angles in (4, 8):
        st = PolarTransformer(origin_net(1), (angles, 6), max_radius=0.8).double().eval()
        rotated = torch.rot90(x, 1, dims=(2, 3))  # +90° in (x, y) with y down: from x towards -y
        base, turned = st(x), st(rotated)
        torch.testing.assert_close(turned, base.roll(-(angles // 4), dims=2), atol=1e-10, rtol=0)


def test_polar_transformer_gradcheck_float64():
    st = PolarTransformer(origin_net(1, (3,), (1,)), (5, 4), max_radius=0.7).double().eval()
    with torch.no_grad():
        st.localization[-1].weight.normal_()
    x = torch.randn(2, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(st, (x,), atol=1e-6)


def test_origin_jitter_only_while_training():
    st = PolarTransformer(origin_net(1), (8, 8), origin_jitter=0.1)
    x = torch.randn(64, 1, 16, 16)
    st.train()
    jittered = st.predict(x)
    assert 0.02 < jittered.abs().max() <= 0.1 + 1e-6  # uniform in ±0.1 around the centre
    st.eval()
    assert st.predict(x).abs().max() < 1e-6
    with pytest.raises(ValueError, match="origin_jitter"):
        PolarTransformer(origin_net(1), (8, 8), origin_jitter=-1)


def test_bad_input_and_bad_heatmaps_are_value_errors():
    st = PolarTransformer(origin_net(1), (8, 8))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        st(torch.randn(1, 16, 16))
    wrong = PolarTransformer(nn.Conv2d(1, 2, 3), (8, 8))
    with pytest.raises(ValueError, match="heatmap"):
        wrong(torch.randn(1, 1, 16, 16))
