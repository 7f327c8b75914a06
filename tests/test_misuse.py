"""Misuse of transforms, warp and SpatialTransformer: a ValueError that names the problem, found at
construction where it can be; and the inputs that look odd but are fine."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import stn
from stn import transforms as T

EYE = torch.eye(2, 3).view(1, 6)


def small_loc(channels: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2))  # 16 features


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: T.get("translation", max_shift=math.nan), "max_shift must be a positive finite number"),
        (lambda: T.get("translation", max_shift=math.inf), "max_shift must be a positive finite number"),
        (lambda: T.get("translation", max_shift=-1.0), "max_shift must be a positive finite number"),
        (lambda: T.get("translation", max_shift="wide"), "max_shift must be a positive number"),
        (lambda: T.get("tps", max_offset=math.nan), "max_offset must be a positive finite number"),
        (lambda: T.get("attention", scale_range=(0.5, math.inf)), "scale_range"),
        (lambda: T.get("attention", scale_range=(math.nan, 2.0)), "scale_range"),
        (lambda: T.invert(torch.zeros(2, 3, 3)), "matrix 0 of the batch is singular"),
        (lambda: T.invert(torch.stack((torch.eye(3), torch.ones(3, 3)))), "matrix 1 of the batch is singular"),
        (lambda: T.compose(torch.eye(3).expand(2, 3, 3), torch.eye(3).expand(3, 3, 3)), "batch 2 .* batch 3"),
        (lambda: T.compose(torch.eye(3, dtype=torch.long)[None], torch.eye(3)[None]), "floating point"),
        (lambda: T.get("tps").transform_points(torch.zeros(1, 32), torch.zeros(1, 3, 2, dtype=torch.long)), "float"),
    ],
)
def test_transform_errors_name_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_compose_broadcasts_a_single_matrix():
    many = T.get("affine").matrix(EYE.expand(3, 6) + 0.1 * torch.randn(3, 6))
    shift = T.get("translation").matrix(torch.tensor([[0.2, -0.1]]))
    torch.testing.assert_close(T.compose(many, shift), shift @ many)
    torch.testing.assert_close(T.compose(shift, many), many @ shift)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"x": torch.zeros(0, 3, 8, 8), "params": torch.zeros(0, 6)}, r"empty batch \(N = 0\)"),
        ({"x": torch.zeros(1, 3, 8, 8, device="meta")}, "parameters are on cpu but the input is on meta"),
        ({"fill": "black"}, r"stn\.normalized_fill\(mean, std\)"),
        ({"fill": [[1.0, 2.0, 3.0]]}, "one number per channel"),
        ({"fill": {"r": 1}}, "one number per channel"),
    ],
)
def test_warp_errors_name_the_problem(kwargs, message):
    args = {"x": torch.rand(1, 3, 8, 8), "transform": "affine", "params": EYE} | kwargs
    with pytest.raises(ValueError, match=message):
        stn.warp(args.pop("x"), args.pop("transform"), args.pop("params"), **args)


def test_output_size_of_numpy_integers_is_accepted():
    x = torch.rand(2, 3, 8, 8)
    size = (np.int64(5), np.int32(6))
    assert stn.warp(x, "affine", EYE.expand(2, 6), output_size=size).shape == (2, 3, 5, 6)
    assert stn.warp(x, "affine", EYE.expand(2, 6), output_size=np.array([5, 6])).shape == (2, 3, 5, 6)
    st = stn.SpatialTransformer(small_loc(3), "tps", output_size=np.array([4, 7]), in_features=np.int64(16))
    assert st.output_size == (4, 7) and type(st.output_size[0]) is int
    assert st(x).shape == (2, 3, 4, 7)
    assert T.check_size(np.int64(3)) == (3, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"in_features": 0}, "in_features must be a positive int, got 0"),
        ({"in_features": -16}, "in_features must be a positive int, got -16"),
        ({"in_features": 16.0}, "in_features must be a positive int"),
        ({"in_features": 16, "hidden": (8, 0)}, "hidden width must be a positive int, got 0"),
        ({"mode": "lanczos"}, "unknown mode 'lanczos'"),
        ({"padding_mode": "wrap"}, "unknown padding_mode 'wrap'"),
        ({"fill": "black"}, r"stn\.normalized_fill\(mean, std\)"),
        ({"fill": [[0.0]]}, "one number per channel"),
        ({"fill": 0.0, "padding_mode": "border"}, "fill only applies"),
    ],
)
def test_transformer_construction_checks_its_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        stn.SpatialTransformer(small_loc(), "affine", **kwargs)


def test_transformer_errors_at_call_name_the_problem():
    wrong = stn.SpatialTransformer(small_loc(), "affine", in_features=15)
    with pytest.raises(ValueError, match="gives 16 features per input but in_features is 15"):
        wrong(torch.rand(2, 1, 8, 8))
    hidden = stn.SpatialTransformer(small_loc(), "affine", in_features=12, hidden=(5,))
    with pytest.raises(ValueError, match="gives 16 features per input but in_features is 12"):
        hidden(torch.rand(2, 1, 8, 8))
    st = stn.SpatialTransformer(small_loc(), "affine", in_features=16)
    with pytest.raises(ValueError, match="input is on meta but SpatialTransformer is on cpu"):
        st(torch.zeros(2, 1, 8, 8, device="meta"))
    with pytest.raises(ValueError, match="empty batch"):
        st(torch.zeros(0, 1, 8, 8))
    with pytest.raises(ValueError, match="output_corners and region need a forward pass"):
        stn.SpatialTransformer(small_loc(), "affine", in_features=16).output_corners()


def test_equal_options_make_equal_transforms():
    for name in T.names():
        a, b = T.get(name), T.get(name)
        assert a == b and hash(a) == hash(b)
        assert T.get(a.name, **a.options) == a
    assert T.get("tps") == T.get("tps", grid_size=(4, 4))
    assert T.get("tps") != T.get("tps", grid_size=3)
    assert T.get("tps", max_offset=0.5) != T.get("tps")
    assert T.get("attention", scale_range=[0.3, 1.5]) == T.get("attention", scale_range=(0.3, 1.5))
    assert T.get("affine") != T.get("projective") and T.get("affine") != "affine"
    assert len({T.get("tps"), T.get("tps"), T.get("affine")}) == 2
