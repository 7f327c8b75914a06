"""The separable sampler: the function grid_sample computes for axis-aligned maps, values and
gradients, for every padding mode and align_corners; used by warp; no GridSample in ONNX."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import stn
from stn import sampling
from stn import transforms as T

FAMILIES = ["translation", "attention"]


def reference(x, family, params, size, padding_mode, align_corners):
    grid = family.grid(params, size, align_corners=align_corners)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=align_corners)


def random_params(family, n, dtype, spread=0.8):
    # Far from the identity: zooms in and out, shifts past the edges (every padding mode is read).
    return family.identity(n, dtype=dtype) + spread * torch.randn(n, family.num_params, dtype=dtype)


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_values_and_gradients_match_grid_sample(name, padding_mode, align_corners, channels_last):
    family = T.get(name)
    x = torch.randn(4, 3, 9, 11, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    params = random_params(family, 4, torch.float64).requires_grad_(True)
    size = (7, 13)
    want = reference(x, family, params, size, padding_mode, align_corners)
    got = sampling.warp_separable(x, family, params, size, padding_mode, align_corners)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last
    grad = torch.randn_like(want)
    want_grads = torch.autograd.grad(want, (x, params), grad)
    got_grads = torch.autograd.grad(got, (x, params), grad)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("name", FAMILIES)
def test_warp_uses_it_where_it_pays_and_matches_grid_sample(name, monkeypatch):
    family = T.get(name)
    x = torch.randn(5, 2, 16, 16)
    params = random_params(family, 5, torch.float32, spread=0.3)
    calls = []
    original = sampling.warp_separable
    monkeypatch.setattr(stn.functional, "warp_separable", lambda *a, **k: calls.append(1) or original(*a, **k))
    value = torch.tensor([0.5, -2.0]).view(1, 2, 1, 1)
    want = reference(x - value, family, params, (16, 16), "zeros", False) + value
    torch.testing.assert_close(stn.warp(x, name, params, fill=[0.5, -2.0]), want)
    assert not calls, "on the CPU grid_sample is the faster one"
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        torch.testing.assert_close(stn.warp(x, name, params, fill=[0.5, -2.0]), want)
        assert len(calls) == 1, "deterministic algorithms asked for: the separable sampler"
        stn.warp(x, "affine", T.get("affine").identity(5), fill=0.0)
        stn.warp(x, name, params, mode="nearest")
        assert len(calls) == 1, "only bilinear axis-aligned families take the separable path"
    finally:
        torch.use_deterministic_algorithms(deterministic)


def test_bounded_families_and_identity():
    x = torch.randn(2, 3, 8, 8)
    for family in (T.Translation(max_shift=0.5), T.Attention(scale_range=(0.3, 1.5))):
        params = random_params(family, 2, torch.float32)
        torch.testing.assert_close(
            sampling.warp_separable(x, family, params, (6, 10)), reference(x, family, params, (6, 10), "zeros", False)
        )
        identity = family.identity(2)
        torch.testing.assert_close(sampling.warp_separable(x, family, identity, (8, 8)), x)


def test_gradcheck():
    x = torch.rand(2, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    params = torch.tensor([[1.3, 0.1, -0.1], [0.6, -0.3, 0.2]], dtype=torch.float64, requires_grad=True)
    for padding_mode in ("zeros", "border", "reflection"):
        assert torch.autograd.gradcheck(
            lambda x, p, m=padding_mode: sampling.warp_separable(x, T.get("attention"), p, (4, 7), m), (x, params)
        )


def test_backward_is_deterministic():
    family = T.get("attention")
    x = torch.randn(8, 3, 20, 20, requires_grad=True)
    params = random_params(family, 8, torch.float32, 0.3).requires_grad_(True)
    grad = torch.randn(8, 3, 20, 20)
    first = torch.autograd.grad(sampling.warp_separable(x, family, params, (20, 20)), (x, params), grad)
    second = torch.autograd.grad(sampling.warp_separable(x, family, params, (20, 20)), (x, params), grad)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


def test_float32_under_bf16_autocast_like_grid_sample():
    family = T.get("translation")
    x = torch.randn(2, 3, 8, 8)
    params = random_params(family, 2, torch.float32, 0.2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sampling.warp_separable(x, family, params.bfloat16(), (8, 8))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, reference(x, family, params.bfloat16().float(), (8, 8), "zeros", False))


@pytest.mark.parametrize("name", ["affine", "attention"])
def test_warp_under_bf16_autocast_samples_at_float32_coordinates(name):
    family = T.get(name)
    x = torch.randn(2, 3, 32, 32)
    params = random_params(family, 2, torch.float32, 0.2).bfloat16().float()  # what a bf16 head outputs
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = stn.warp(x, family, params)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, reference(x, family, params, (32, 32), "zeros", False))


def test_errors_name_the_problem():
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match="scale must have shape"):
        sampling.sample_axis_aligned(x, torch.ones(3, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="padding_mode"):
        sampling.sample_axis_aligned(x, torch.ones(2, 2), torch.zeros(2, 2), padding_mode="wrap")
    with pytest.raises(ValueError, match="not axis-aligned"):
        sampling.warp_separable(x, T.get("affine"), T.get("affine").identity(2), (8, 8))
    assert sampling.separable(T.get("attention")) and not sampling.separable(T.get("attention"), "bicubic")


@pytest.mark.parametrize("transform", FAMILIES)
def test_onnx_export_has_no_grid_sample(transform, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from stn import models
    from stn.export import export_onnx, onnx_difference

    model = models.create("tutorial-mnist", transform=transform)
    with torch.no_grad():
        model.stn.fc_loc[-1].bias.add_(0.1 * torch.randn_like(model.stn.fc_loc[-1].bias))
    path = export_onnx(model, (1, 28, 28), tmp_path / "model.onnx")
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "GridSample" not in ops and "MatMul" in ops
    for batch in (1, 3):
        assert onnx_difference(path, model, torch.randn(batch, 1, 28, 28)) < 1e-4
