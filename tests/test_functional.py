"""warp(): sampling modes, padding, fill, output size and its errors."""

from __future__ import annotations

import pytest
import torch

import stn
from stn import transforms as T

from .conftest import tol

ZOOM_OUT = torch.tensor([[2.0, 0.0, 0.0]])  # attention scale 2: the image fills the middle half


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_modes_keep_identity(mode, padding_mode, dtype):
    x = torch.rand(2, 3, 6, 6, dtype=dtype)
    out = stn.warp(x, "affine", T.get("affine").identity(2, dtype=dtype), mode=mode, padding_mode=padding_mode)
    torch.testing.assert_close(out, x, **tol(dtype))


def test_output_size_and_feature_maps(dtype):
    x = torch.rand(2, 17, 10, 12, dtype=dtype)  # a feature map with 17 channels
    out = stn.warp(x, "tps", T.get("tps").identity(2, dtype=dtype), output_size=(5, 6))
    assert out.shape == (2, 17, 5, 6) and out.dtype == dtype


def test_fill_is_read_outside_the_image(dtype):
    x = torch.rand(1, 3, 8, 8, dtype=dtype)
    fill = [0.25, -1.0, 3.0]
    out = stn.warp(x, "attention", ZOOM_OUT.to(dtype), fill=fill)
    corner = out[0, :, 0, 0]
    torch.testing.assert_close(corner, torch.tensor(fill, dtype=dtype))
    inside = stn.warp(x, "attention", ZOOM_OUT.to(dtype))[0, :, 3:5, 3:5]
    torch.testing.assert_close(out[0, :, 3:5, 3:5], inside, **tol(dtype))  # interior unchanged by fill


def test_fill_scalar_and_normalized_fill():
    mean, std = (0.5, 0.4), (0.2, 0.1)
    assert stn.normalized_fill(mean, std) == pytest.approx([-2.5, -4.0])
    assert stn.normalized_fill(mean, std, value=1.0) == pytest.approx([2.5, 6.0])
    out = stn.warp(torch.zeros(1, 2, 8, 8), "attention", ZOOM_OUT, fill=7.0)
    assert out[0, :, 0, 0].tolist() == [7.0, 7.0]


def test_gradcheck_with_fill():
    x = torch.rand(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    params = torch.tensor([[1.3, 0.1, -0.1]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, p: stn.warp(x, "attention", p, fill=[0.5, -0.5]), (x, params))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"x": torch.rand(3, 8, 8)}, r"\(N, C, H, W\), got \(3, 8, 8\)"),
        ({"x": torch.zeros(1, 3, 8, 8, dtype=torch.uint8)}, "floating-point"),
        ({"params": torch.zeros(1, 5)}, r"\(N, 6\), got \(1, 5\)"),
        ({"params": torch.eye(2, 3).flatten()[None].expand(2, 6)}, "batch 2 does not match input batch 1"),
        ({"params": torch.tensor([[1.0, 0, float("nan"), 0, 1, 0]])}, "NaN or Inf"),
        ({"params": torch.tensor([[1.0, 0, float("inf"), 0, 1, 0]])}, "NaN or Inf"),
        ({"transform": "rubber-sheet"}, "unknown transform"),
        ({"output_size": (0, 8)}, "positive"),
        ({"output_size": (8, 2.5)}, "positive"),
        ({"mode": "lanczos"}, "unknown mode"),
        ({"padding_mode": "wrap"}, "unknown padding_mode"),
        ({"fill": 0.0, "padding_mode": "border"}, "fill only applies"),
        ({"fill": [0.0, 1.0]}, "one value per channel"),
    ],
)
def test_errors_name_the_problem(kwargs, message):
    args = {"x": torch.rand(1, 3, 8, 8), "transform": "affine", "params": torch.eye(2, 3).view(1, 6)} | kwargs
    with pytest.raises(ValueError, match=message):
        stn.warp(args.pop("x"), args.pop("transform"), args.pop("params"), **args)


def test_check_finite_can_be_switched_off():
    nan = torch.tensor([[1.0, 0, float("nan"), 0, 1, 0]])
    assert stn.warp(torch.rand(1, 1, 4, 4), "affine", nan, check_finite=False).isnan().all()
