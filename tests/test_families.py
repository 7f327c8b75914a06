"""The families beyond the paper: diffeomorphic, polar and field."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import stn
from stn import transforms as T
from stn.transforms.matrix import _expm_by_squaring

from .conftest import tol

NEW = ["diffeomorphic", "polar", "field"]
FIELDS = [{}, {"diffeomorphic": True}, {"grid_size": (3, 5)}]


def test_registered_with_their_sizes():
    assert {n: T.get(n).num_params for n in NEW} == {"diffeomorphic": 6, "polar": 2, "field": 128}
    assert T.get("field", grid_size=(3, 5)).num_params == 30
    for name in NEW:
        assert isinstance(T.get(name), T.Transform)


@pytest.mark.parametrize("options", FIELDS)
def test_zero_field_and_zero_algebra_are_the_identity(options, dtype):
    x = torch.rand(2, 3, 9, 11, dtype=dtype)
    for family in (T.get("diffeomorphic"), T.get("field", **options)):
        params = family.identity(2, dtype=dtype)
        assert not params.any()
        torch.testing.assert_close(stn.warp(x, family, params), x, **tol(dtype))


# ------------------------------------------------------------------------------ diffeomorphic


def test_diffeomorphic_is_the_matrix_exponential_and_negation_inverts(dtype):
    family = T.get("diffeomorphic")
    params = 0.5 * torch.randn(4, 6, dtype=dtype)
    algebra = torch.cat((params, torch.zeros(4, 3, dtype=dtype)), 1).view(4, 3, 3)
    m = family.matrix(params)
    torch.testing.assert_close(m, torch.linalg.matrix_exp(algebra))
    assert family.invert(params).equal(-params)
    eye = torch.eye(3, dtype=dtype).expand(4, 3, 3)
    torch.testing.assert_close(T.compose(m, family.matrix(family.invert(params))), eye, **tol(dtype))
    # A pure translation algebra element is that translation.
    shift = torch.tensor([[0.0, 0.0, 0.3, 0.0, 0.0, -0.2]], dtype=dtype)
    torch.testing.assert_close(family.matrix(shift)[0, :2, 2], torch.tensor([0.3, -0.2], dtype=dtype))


def test_export_form_of_the_exponential_agrees():
    # ONNX has no matrix exponential; the export uses products only. They must agree.
    params = torch.randn(64, 6, dtype=torch.float64) * torch.logspace(-3, 1, 64, dtype=torch.float64)[:, None]
    algebra = torch.cat((params, torch.zeros(64, 3, dtype=torch.float64)), 1).view(64, 3, 3)
    exact = torch.linalg.matrix_exp(algebra)
    scale = exact.abs().amax(dim=(1, 2), keepdim=True)
    assert ((_expm_by_squaring(algebra) - exact).abs() / scale).max() < 1e-12
    assert ((_expm_by_squaring(algebra.float()) - exact).abs() / scale).max() < 1e-5


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-8.0, 8.0, allow_nan=False), min_size=6, max_size=6),
    st.sampled_from([0.01, 1.0, 3.0]),
)
def test_diffeomorphic_never_reflects_or_collapses(values, scale):
    family = T.get("diffeomorphic")
    params = scale * torch.tensor([values], dtype=torch.float64)
    linear = family.matrix(params)[0, :2, :2]
    # det exp(A) = exp(trace A) > 0: orientation kept, never singular. The determinant a d - b c
    # cancels, so its float64 value is only known to within ~1e-12 (|a d| + |b c|).
    (a, b), (c, d) = linear.tolist()
    exact, error = math.exp(float(params[0, 0] + params[0, 4])), 1e-12 * (abs(a * d) + abs(b * c))
    det = torch.linalg.det(linear).item()
    assert abs(det - exact) <= error + 1e-9 * exact
    if exact > error:
        assert det > 0
    assert torch.isfinite(torch.linalg.svdvals(linear)).all()
    grid = family.grid(params, (5, 5))
    assert torch.isfinite(grid).all()


# ------------------------------------------------------------------------------ polar


def test_polar_rotation_about_the_origin_rolls_the_angle_axis(dtype):
    polar = T.get("polar")
    x = torch.rand(2, 3, 16, 16, dtype=dtype)
    origin = polar.identity(2, dtype=dtype)  # the centre, which rot90 turns about
    out = stn.warp(x, polar, origin, output_size=(12, 10))
    turned = stn.warp(torch.rot90(x, 1, dims=(-2, -1)), polar, origin, output_size=(12, 10))
    # rot90 turns by 90°: a quarter of the 12 angle rows. Which way is fixed by the convention.
    torch.testing.assert_close(turned, torch.roll(out, -3, dims=-2), **tol(dtype))
    assert not torch.allclose(turned, out)


def test_polar_points_turn_and_scale_about_a_predicted_origin():
    polar = T.get("polar", max_radius=0.8, min_radius=0.05)
    origin = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    h, w = 8, 6
    grid = polar.grid(origin, (h, w))[0] - origin[0]  # (H, W, 2) offsets from the origin
    angle = 2 * math.pi / h
    rotation = torch.tensor(
        [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=torch.float64
    )
    # The next row is this row turned by one angle step about the origin ...
    torch.testing.assert_close(grid[1:], grid[:-1] @ rotation.T)
    # ... and the next column is this column scaled by one radius step.
    ratio = (0.8 / 0.05) ** (1 / w)
    torch.testing.assert_close(grid[:, 1:], grid[:, :-1] * ratio)
    radius = grid.norm(dim=-1)
    assert 0.05 < radius.min() < radius.max() < 0.8


@pytest.mark.parametrize(
    ("origin", "points"),
    [
        ((0.1, -0.05), [(0.5, 0.3), (-0.4, 0.2), (0.1, 0.6), (0.9, -0.9)]),
        ((0.0, 0.0), [(-0.4, 0.2), (0.3, 0.0), (-0.5, -1e-9), (0.0, -0.7)]),
    ],
)
def test_polar_inverse_of_ordinary_points(origin, points):
    polar = T.get("polar")
    theta = torch.tensor([origin], dtype=torch.float64)
    p = torch.tensor([points], dtype=torch.float64)
    q = polar.inverse_transform_points(theta, p)
    assert torch.isfinite(q).all()
    assert ((q[..., 1] >= -1) & (q[..., 1] < 1)).all()  # the angle wraps into one turn
    torch.testing.assert_close(polar.transform_points(theta, q), p, atol=1e-12, rtol=0)


def test_polar_inverse_round_trips_in_the_annulus_and_wraps_the_angle(dtype):
    polar = T.get("polar", max_radius=0.9, min_radius=0.1)
    theta = 0.3 * torch.rand(3, 2, dtype=dtype) - 0.15
    radius = 0.1 * (9 ** torch.rand(3, 50, 1, dtype=dtype))  # log-uniform in [0.1, 0.9]
    angle = 2 * math.pi * torch.rand(3, 50, 1, dtype=dtype)
    points = theta[:, None] + radius * torch.cat((angle.cos(), angle.sin()), -1)
    q = polar.inverse_transform_points(theta, points)
    assert q.dtype == dtype and (q.abs() <= 1).all()  # the annulus is the output, edge to edge
    torch.testing.assert_close(polar.transform_points(theta, q), points, **tol(dtype))
    # output -> input -> output: the same location, up to whole turns of the angle
    out = torch.rand(3, 50, 2, dtype=dtype) * 2 - 1
    back = polar.inverse_transform_points(theta, polar.transform_points(theta, out))
    torch.testing.assert_close(back[..., 0], out[..., 0], atol=1e-4 if dtype == torch.float32 else 1e-10, rtol=0)
    turns = (back[..., 1] - out[..., 1]) / 2
    torch.testing.assert_close(turns, turns.round(), atol=1e-5 if dtype == torch.float32 else 1e-10, rtol=0)


def test_polar_inverse_outside_the_radii_and_at_the_origin():
    polar = T.get("polar", max_radius=0.8, min_radius=0.05)
    theta = torch.tensor([[0.2, 0.1]], dtype=torch.float64)
    p = torch.tensor([[[0.2, 0.1], [0.21, 0.1], [1.2, 0.1]]], dtype=torch.float64)  # origin, inside r_min, beyond
    q = polar.inverse_transform_points(theta, p)
    assert torch.isnan(q[0, 0]).all()
    assert q[0, 1, 0] < -1 and q[0, 2, 0] > 1 and q[0, 1, 1] == -1 and q[0, 2, 1] == -1  # angle 0: the top row
    torch.testing.assert_close(polar.transform_points(theta, q[:, 1:]), p[:, 1:])
    params = theta.clone().requires_grad_()
    points = torch.tensor([[[0.5, 0.3], [-0.1, -0.4]]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(polar.inverse_transform_points, (params, points))


def test_polar_options_are_checked():
    with pytest.raises(ValueError, match="max_radius"):
        T.get("polar", max_radius=0)
    with pytest.raises(ValueError, match="min_radius"):
        T.get("polar", max_radius=1.0, min_radius=2.0)


# ------------------------------------------------------------------------------ field


def test_plain_field_represents_an_affine_map_exactly(dtype):
    field, affine = T.get("field", grid_size=(3, 4)), T.get("affine")
    theta = torch.tensor([[0.9, 0.1, 0.05, -0.1, 1.1, 0.0]], dtype=dtype)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 3, dtype=dtype), torch.linspace(-1, 1, 4, dtype=dtype), indexing="ij")
    nodes = torch.stack((xs, ys), -1).view(1, -1, 2)
    offsets = affine.transform_points(theta, nodes) - nodes
    grid = field.grid(offsets.flatten(1), (7, 9))
    torch.testing.assert_close(grid, affine.grid(theta, (7, 9)), **tol(dtype))


def test_diffeomorphic_field_inverse_undoes_it():
    """``invert(f) ∘ f`` is the identity within 0.015 (normalised units; a quarter pixel at 32
    pixels) inside the image for node velocities of 0.05 (moves up to about 2 pixels)."""
    family = T.get("field", diffeomorphic=True)
    size = (32, 32)
    base = T.base_grid(size, dtype=torch.float64)
    params = 0.05 * torch.randn(4, family.num_params, dtype=torch.float64)
    forward = family.grid(params, size) - base
    backward = family.grid(family.invert(params), size) - base
    assert forward.abs().max() > 0.05  # it does move
    for there_and_back in (T.compose_fields(forward, backward), T.compose_fields(backward, forward)):
        inside = there_and_back[:, 4:-4, 4:-4]
        assert inside.abs().max() < 0.015 and inside.abs().mean() < 0.002
    # The numerical inverse of the dense field agrees.
    assert (T.invert_field(forward) - backward)[:, 4:-4, 4:-4].abs().max() < 0.015


def test_invert_field_undoes_a_plain_field():
    family = T.get("field")
    size = (32, 32)
    base = T.base_grid(size, dtype=torch.float64)
    forward = family.grid(0.03 * torch.randn(2, family.num_params, dtype=torch.float64), size) - base
    inverse = T.invert_field(forward)
    assert T.compose_fields(forward, inverse)[:, 4:-4, 4:-4].abs().max() < 0.015
    with pytest.raises(ValueError, match="diffeomorphic=True"):
        family.invert(torch.zeros(1, family.num_params))


def test_compose_fields_is_warping_twice():
    # An image whose pixels hold their own coordinates: bilinear sampling of it is exact inside.
    size = (16, 16)
    x = T.base_grid(size, dtype=torch.float64).permute(2, 0, 1).unsqueeze(0)
    base = T.base_grid(size, dtype=torch.float64)
    family = T.get("field", grid_size=4)
    a, b = (0.05 * torch.randn(1, family.num_params, dtype=torch.float64) for _ in range(2))
    ua, ub = family.grid(a, size) - base, family.grid(b, size) - base
    twice = stn.warp(stn.warp(x, family, a), family, b)  # reads the original at A(B(p))
    once = (base + T.compose_fields(ub, ua)).permute(0, 3, 1, 2)
    torch.testing.assert_close(twice[..., 3:-3, 3:-3], once[..., 3:-3, 3:-3])


def test_field_errors_name_the_problem():
    with pytest.raises(ValueError, match="2x2"):
        T.get("field", grid_size=1)
    with pytest.raises(ValueError, match=r"\(N, H, W, 2\)"):
        T.compose_fields(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="same shape"):
        T.compose_fields(torch.zeros(1, 4, 4, 2), torch.zeros(1, 5, 4, 2))


# ------------------------------------------------------------------------------ all three


def families() -> list[T.Transform]:
    return [T.get("diffeomorphic"), T.get("polar"), *(T.get("field", **o) for o in FIELDS)]


@pytest.mark.parametrize("family", families(), ids=repr)
def test_gradcheck_float64(family):
    x = torch.rand(2, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    params = family.identity(2, dtype=torch.float64) + 0.05 * torch.randn(2, family.num_params, dtype=torch.float64)
    params.requires_grad_()
    assert torch.autograd.gradcheck(lambda x, p: stn.warp(x, family, p, output_size=(5, 4)), (x, params))
    points = (torch.rand(2, 5, 2, dtype=torch.float64) * 1.6 - 0.8).requires_grad_()
    assert torch.autograd.gradcheck(family.transform_points, (params, points))


@pytest.mark.parametrize("family", families(), ids=repr)
def test_batch_feature_maps_and_parallel_transformers(family):
    x = torch.rand(3, 9, 12, 12)  # a feature map, 9 channels
    params = family.identity(3) + 0.05 * torch.randn(3, family.num_params)
    batched = stn.warp(x, family, params, output_size=(8, 6))
    assert batched.shape == (3, 9, 8, 6)
    for i in range(3):
        torch.testing.assert_close(batched[i : i + 1], stn.warp(x[i : i + 1], family, params[i : i + 1], (8, 6)))
    loc = nn.Sequential(nn.Conv2d(9, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
    parallel = stn.ParallelSpatialTransformers(2, loc, family, output_size=(8, 6), in_features=16)
    out = parallel(x)
    assert out.shape == (3, 18, 8, 6) and parallel.last_params.shape == (3, 2, family.num_params)
    single = stn.SpatialTransformer(loc, family, (8, 6), in_features=16, fill=0.5)
    single(x).sum().backward()
    assert all(p.grad is not None for p in single.parameters())


@pytest.mark.parametrize(
    ("transform", "options"),
    [("diffeomorphic", {}), ("polar", {}), ("field", {}), ("field", {"transform_options": {"diffeomorphic": True}})],
)
def test_onnx_export_matches_pytorch(transform, options, tmp_path):
    pytest.importorskip("onnxruntime")
    from stn import models
    from stn.export import export_onnx, onnx_difference

    model = models.create("tutorial-mnist", transform=transform, **options)
    with torch.no_grad():  # away from the identity: sampling matters
        model.stn.fc_loc[-1].bias.add_(0.05 * torch.randn_like(model.stn.fc_loc[-1].bias))
    path = export_onnx(model, (1, 28, 28), tmp_path / "model.onnx")
    assert onnx_difference(path, model, torch.randn(3, 1, 28, 28)) < 1e-4
