"""warp and SpatialTransformer in half precision, on the meta device, under torch.compile with a
changing batch, and under torch.jit.trace."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import stn
from stn import transforms as T

HALF = [torch.float16, torch.bfloat16]


def small_loc(channels: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2))


@pytest.mark.parametrize("dtype", HALF, ids=["float16", "bfloat16"])
@pytest.mark.parametrize("name", [n for n in T.names() if n != "polar"])  # polar has no identity map
def test_half_precision_identity_is_exact_at_224(name, dtype):
    # float16 grid_sample gives NaNs at this size; projective failed outright on a float32 torch.where.
    x = torch.rand(2, 3, 224, 224).to(dtype)
    family = T.get(name)
    out = stn.warp(x, family, family.identity(2, dtype=dtype))
    assert out.dtype == dtype
    # float32 sampling at 224 pixels reads a neighbour with weight ~1e-5: within 1e-4 of the input.
    torch.testing.assert_close(out, x, atol=1e-4, rtol=0)


@pytest.mark.parametrize("dtype", HALF, ids=["float16", "bfloat16"])
def test_half_precision_shift_lands_on_pixels_at_64(dtype):
    # A half-precision grid is off by up to 1/8 pixel at 64 pixels; the shift must land exactly.
    x = torch.rand(1, 2, 64, 64).to(dtype)
    params = torch.tensor([[6 / 64, -4 / 64]], dtype=dtype)  # 3 pixels right, 2 up: exact in half precision
    out = stn.warp(x, "translation", params)
    torch.testing.assert_close(out[..., 2:, :-3], x[..., :-2, 3:], atol=1e-4, rtol=0)


@pytest.mark.parametrize("dtype", HALF, ids=["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["projective", "affine", "tps"])
def test_half_precision_is_float32_sampling_cast_back(name, dtype):
    family = T.get(name)
    x = torch.rand(2, 3, 40, 48).to(dtype)
    params = (family.identity(2) + 0.05 * torch.randn(2, family.num_params)).to(dtype)
    expected = stn.warp(x.float(), family, params.float(), fill=0.5).to(dtype)
    torch.testing.assert_close(stn.warp(x, family, params, fill=0.5), expected, atol=0, rtol=0)


def test_projective_points_in_half_precision():
    params = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.5, 0.0]], dtype=torch.bfloat16)
    points = torch.tensor([[[1.0, 1.0], [0.0, 0.5]]], dtype=torch.bfloat16)
    out = T.get("projective").transform_points(params, points)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), torch.tensor([[[2 / 3, 2 / 3], [0.0, 0.5]]]), atol=1e-2, rtol=0)


@pytest.mark.parametrize("name", ["affine", "tps"])
def test_model_runs_on_the_meta_device(name):
    st = stn.SpatialTransformer(small_loc(), name, in_features=16).to("meta")
    assert st(torch.empty(5, 1, 12, 12, device="meta")).shape == (5, 1, 12, 12)
    pst = stn.ParallelSpatialTransformers(2, small_loc(), name, output_size=(6, 8), in_features=16).to("meta")
    assert pst(torch.empty(3, 1, 12, 12, device="meta")).shape == (3, 2, 6, 8)


def test_jit_trace_matches_eager():
    st = stn.SpatialTransformer(small_loc(), "affine", in_features=16, hidden=(6,))  # output size from x.shape
    with torch.no_grad():
        st.fc_loc[-1].bias.add_(0.1 * torch.randn(6))
    with pytest.warns(Warning):  # torch.jit.trace is deprecated and warns about its own limits
        traced = torch.jit.trace(st, torch.rand(2, 1, 12, 12))
    x = torch.rand(2, 1, 12, 12)
    torch.testing.assert_close(traced(x), st(x))


def test_compile_with_a_changing_batch():
    # F.affine_grid did not trace with a dynamic batch: the second batch size failed to compile.
    torch._dynamo.reset()
    st = stn.SpatialTransformer(small_loc(), "affine", in_features=16)  # every matrix family builds its grid alike
    with torch.no_grad():
        st.fc_loc.bias.add_(0.05 * torch.randn_like(st.fc_loc.bias))
    compiled = torch.compile(st, backend="aot_eager")
    for batch in (3, 5):
        x = torch.rand(batch, 1, 10, 10, requires_grad=True)
        out = compiled(x)
        out.sum().backward()
        torch.testing.assert_close(out, st(x))
    torch._dynamo.reset()


@pytest.mark.parametrize("name", T.names())
def test_grids_keep_float32_under_autocast(name):
    # A bfloat16 matmul in the thin-plate spline's grid moved a 64-pixel grid by 1/8 pixel.
    family = T.get(name)
    params = family.identity(2) + 0.2 * torch.randn(2, family.num_params)
    expected = family.grid(params.double(), (64, 64))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        grid = family.grid(params, (64, 64))
    assert grid.dtype == torch.float32
    torch.testing.assert_close(grid.double(), expected, atol=1e-5, rtol=0)  # 1/3000 pixel at 64 pixels
