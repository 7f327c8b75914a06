"""The volume families (``...3d``): the properties the image families have, in 3-D.

Volumes are tiny (at most 8 voxels a side) so that the float64 gradient checks stay quick.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import stn
from stn import transforms as T
from stn.transforms.matrix import _expm_by_squaring

from .conftest import tol

VOLUME = (5, 6, 7)  # (D, H, W), all different so that no axis can stand in for another
MATRIX_FAMILIES = ["translation3d", "rigid3d", "similarity3d", "affine3d", "diffeomorphic3d"]
FIELD_OPTIONS = [{"grid_size": (3, 4, 5)}, {"grid_size": 4, "diffeomorphic": True}]


def volume_families() -> list[T.Transform]:
    return [T.get(n) for n in MATRIX_FAMILIES] + [T.get("field3d", **o) for o in FIELD_OPTIONS]


def near_identity(family: T.Transform, n: int, scale: float = 0.1, **kw) -> torch.Tensor:
    return family.identity(n, **kw) + scale * torch.randn(n, family.num_params, **kw)


def test_registered_with_their_sizes_and_dimensions():
    assert {n: T.get(n).num_params for n in T.names(3)} == {
        "translation3d": 3,
        "rigid3d": 6,
        "similarity3d": 7,
        "affine3d": 12,
        "diffeomorphic3d": 12,
        "field3d": 3 * 8**3,
    }
    assert all(T.get(n).ndim == 3 for n in T.names(3)) and all(T.get(n).ndim == 2 for n in T.names())
    assert T.names(None) == T.names() + T.names(3)
    assert T.get("field3d", grid_size=(2, 3, 4)).num_params == 72
    for family in volume_families():
        assert T.get(family.name, **family.options) == family
    with pytest.raises(ValueError, match="ndim"):
        T.names(4)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("family", volume_families(), ids=repr)
def test_identity_reproduces_the_volume(family, align_corners, dtype):
    x = torch.rand(2, 3, *VOLUME, dtype=dtype)
    out = stn.warp(x, family, family.identity(2, dtype=dtype), align_corners=align_corners)
    torch.testing.assert_close(out, x, **tol(dtype))
    grid = family.grid(family.identity(2, dtype=dtype), VOLUME, align_corners)
    torch.testing.assert_close(grid, T.base_grid(VOLUME, align_corners, dtype=dtype).expand(2, -1, -1, -1, -1))


@pytest.mark.parametrize("align_corners", [False, True])
def test_base_grid_and_affine_grids_are_affine_grid(align_corners, dtype):
    theta = T.Affine3d().identity(3, dtype=dtype) + 0.2 * torch.randn(3, 12, dtype=dtype)
    expected = F.affine_grid(theta.view(3, 3, 4), (3, 1, *VOLUME), align_corners=align_corners)
    torch.testing.assert_close(T.get("affine3d").grid(theta, VOLUME, align_corners), expected, **tol(dtype))
    base = T.base_grid(VOLUME, align_corners, dtype=dtype)
    assert base.shape == (*VOLUME, 3)
    # x runs along W (the last axis), z along D (the first).
    assert base[0, 0, :, 0].unique().numel() == VOLUME[2] and base[:, 0, 0, 2].unique().numel() == VOLUME[0]
    assert base[0, 0, 0, 2] == (-1 if align_corners else -1 + 1 / VOLUME[0])


def test_one_voxel_translation_shifts_along_each_axis(dtype):
    x = torch.rand(1, 1, *VOLUME, dtype=dtype)
    for coordinate, axis in ((0, 4), (1, 3), (2, 2)):  # x -> W, y -> H, z -> D
        t = torch.zeros(1, 3, dtype=dtype)
        t[0, coordinate] = 2 / x.shape[axis]  # one voxel, align_corners=False
        out = stn.warp(x, "translation3d", t)
        inner = [slice(None)] * 5
        inner[axis] = slice(0, -1)
        shifted = [slice(None)] * 5
        shifted[axis] = slice(1, None)
        torch.testing.assert_close(out[tuple(inner)], x[tuple(shifted)], **tol(dtype))


@pytest.mark.parametrize(("rotvec", "dims"), [((0, 0, 1), (-2, -1)), ((1, 0, 0), (-3, -2)), ((0, 1, 0), (-1, -3))])
def test_quarter_turns_are_rot90(rotvec, dims, dtype):
    x = torch.rand(2, 2, 6, 6, 6, dtype=dtype)
    params = torch.zeros(2, 6, dtype=dtype)
    params[:, :3] = torch.tensor(rotvec, dtype=dtype) * math.pi / 2
    out = stn.warp(x, "rigid3d", params)
    torch.testing.assert_close(out, torch.rot90(x, 1, dims=dims), **tol(dtype))


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("family", volume_families(), ids=repr)
def test_grid_agrees_with_transform_points(family, align_corners, dtype):
    params = near_identity(family, 2, dtype=dtype)
    grid = family.grid(params, VOLUME, align_corners)
    base = T.base_grid(VOLUME, align_corners, dtype=dtype).view(1, -1, 3).expand(2, -1, -1)
    torch.testing.assert_close(grid.view(2, -1, 3), family.transform_points(params, base), **tol(dtype))


@pytest.mark.parametrize("name", MATRIX_FAMILIES)
def test_points_are_the_matrix_and_invert_undoes_them(name, dtype):
    family = T.get(name)
    params = near_identity(family, 3, scale=0.3, dtype=dtype)
    points = torch.rand(3, 10, 3, dtype=dtype) * 2 - 1
    matrix = family.matrix(params)
    assert matrix.shape == (3, 4, 4)
    homogeneous = torch.cat((points, torch.ones_like(points[..., :1])), -1)
    torch.testing.assert_close(family.transform_points(params, points), (homogeneous @ matrix.mT)[..., :3])
    moved = family.transform_points(params, points)
    torch.testing.assert_close(family.transform_points(family.invert(params), moved), points, **tol(dtype))
    torch.testing.assert_close(family.inverse_transform_points(params, moved), points, **tol(dtype))
    torch.testing.assert_close(T.compose(T.invert(matrix), matrix), torch.eye(4, dtype=dtype).expand(3, 4, 4))


@pytest.mark.parametrize("name", ["translation3d", "rigid3d", "similarity3d", "affine3d"])
def test_from_matrix_round_trips_and_compose_is_the_product(name, dtype):
    family = T.get(name)
    first, second = near_identity(family, 3, 0.4, dtype=dtype), near_identity(family, 3, 0.4, dtype=dtype)
    torch.testing.assert_close(family.from_matrix(family.matrix(first)), first, **tol(dtype))
    both = family.compose(first, second)
    torch.testing.assert_close(family.matrix(both), family.matrix(second) @ family.matrix(first), **tol(dtype))


def test_rotation_vector_inverts_rotation_matrix_at_every_angle(dtype):
    axis = torch.nn.functional.normalize(torch.randn(7, 3, dtype=dtype), dim=1)
    angles = torch.tensor([0.0, 1e-9, 1e-4, 0.5, 2.0, 3.0, 3.1], dtype=dtype)
    rotvec = axis * angles[:, None]
    r = T.rotation_matrix(rotvec)
    torch.testing.assert_close(r @ r.mT, torch.eye(3, dtype=dtype).expand(7, 3, 3), **tol(dtype))
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(7, dtype=dtype), **tol(dtype))
    torch.testing.assert_close(T.rotation_vector(r), rotvec, atol=1e-5 if dtype == torch.float32 else 1e-12, rtol=0)


def test_similarity_scale_is_the_exponential_of_sigma():
    family = T.get("similarity3d")
    params = torch.tensor([[0.3, -0.2, 0.1, math.log(0.5), 0.1, 0.2, 0.3]], dtype=torch.float64)
    linear = family.matrix(params)[0, :3, :3]
    torch.testing.assert_close(torch.linalg.det(linear), torch.tensor(0.125, dtype=torch.float64))


def test_diffeomorphic3d_is_the_matrix_exponential_and_negation_inverts(dtype):
    family = T.get("diffeomorphic3d")
    theta = 0.5 * torch.randn(4, 12, dtype=dtype)
    algebra = torch.cat((theta, torch.zeros(4, 4, dtype=dtype)), 1).view(4, 4, 4)
    torch.testing.assert_close(family.matrix(theta), torch.linalg.matrix_exp(algebra), **tol(dtype))
    torch.testing.assert_close(_expm_by_squaring(algebra), torch.linalg.matrix_exp(algebra), atol=1e-5, rtol=1e-5)
    product = family.matrix(family.invert(theta)) @ family.matrix(theta)
    torch.testing.assert_close(product, torch.eye(4, dtype=dtype).expand(4, 4, 4), **tol(dtype))
    with pytest.raises(ValueError, match="compose the matrices"):
        family.compose(theta, theta)


@settings(max_examples=30)
@given(values=st.lists(st.floats(-1, 1), min_size=12, max_size=12), scale=st.floats(0.1, 4.0))
def test_diffeomorphic3d_never_reflects_or_collapses(values, scale):
    theta = scale * torch.tensor([values], dtype=torch.float64)
    det = torch.linalg.det(T.get("diffeomorphic3d").matrix(theta)[:, :3, :3])
    torch.testing.assert_close(det, torch.exp(theta[:, 0] + theta[:, 5] + theta[:, 10]))
    assert bool((det > 0).all())


# ---------------------------------------------------------------------------------- fields


def smooth_velocity(n: int, size: tuple[int, int, int], amplitude: float, seed: int = 0) -> torch.Tensor:
    """``(n, D, H, W, 3)`` smooth random vectors: coarse noise, trilinearly upsampled."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, 3, 3, 3, 3, generator=g, dtype=torch.float64)
    return amplitude * F.interpolate(coarse, size=size, mode="trilinear", align_corners=True).movedim(1, -1)


def test_plain_field_represents_an_affine_map_exactly(dtype):
    affine = T.get("affine3d")
    theta = near_identity(affine, 2, 0.2, dtype=dtype)
    field = T.get("field3d", grid_size=(3, 4, 5))
    nodes = affine.grid(theta, (3, 4, 5), align_corners=True) - T.base_grid((3, 4, 5), True, dtype=dtype)
    params = nodes.reshape(2, -1)
    for align_corners in (False, True):
        torch.testing.assert_close(
            field.grid(params, VOLUME, align_corners), affine.grid(theta, VOLUME, align_corners), **tol(dtype)
        )
    torch.testing.assert_close(field.from_nodes(field.nodes(params)), params)


@pytest.mark.parametrize("align_corners", [False, True])
def test_integrated_velocity_never_folds_where_the_plain_field_does(align_corners):
    size = (8, 8, 8)
    velocity = smooth_velocity(3, size, amplitude=0.6)
    plain = T.jacobian_determinant(velocity, align_corners)
    flow = T.jacobian_determinant(T.integrate_velocity(velocity, 7, align_corners), align_corners)
    assert (plain <= 0).any()  # as a displacement this field folds ...
    assert (flow > 0).all()  # ... integrated as a velocity it does not
    family = T.get("field3d", grid_size=size, diffeomorphic=True)
    grid = family.grid(velocity.reshape(3, -1), size, align_corners=True)
    dense = T.integrate_velocity(velocity, 7, align_corners=True)
    torch.testing.assert_close(grid - T.base_grid(size, True, dtype=torch.float64), dense)


def test_jacobian_determinant_of_an_affine_map_is_its_determinant(dtype):
    theta = near_identity(T.get("affine3d"), 2, 0.2, dtype=dtype)
    for align_corners in (False, True):
        field = T.get("affine3d").grid(theta, VOLUME, align_corners) - T.base_grid(VOLUME, align_corners, dtype=dtype)
        det = T.jacobian_determinant(field, align_corners)
        expected = torch.linalg.det(T.get("affine3d").matrix(theta)[:, :3, :3])
        torch.testing.assert_close(det, expected.view(2, 1, 1, 1).expand_as(det), **tol(dtype))
    image = T.get("affine").grid(torch.tensor([[2.0, 0.0, 0.0, 0.0, 0.5, 0.0]], dtype=dtype), (5, 6))
    det2 = T.jacobian_determinant(image - T.base_grid((5, 6), dtype=dtype))
    torch.testing.assert_close(det2, torch.ones_like(det2))


def test_diffeomorphic_field_inverse_undoes_it():
    """``invert(f) ∘ f`` is the identity within 0.01 (normalised units: a twentieth of a voxel at
    8 voxels) for a velocity that moves points by up to 0.16; the flow is integrated on a 16-node
    grid and read trilinearly, so it is exact only to that grid's interpolation error."""
    size = (6, 6, 6)
    family = T.get("field3d", grid_size=size, diffeomorphic=True, integration_size=16)
    params = smooth_velocity(2, size, 0.1).reshape(2, -1)
    points = torch.rand(2, 50, 3, dtype=torch.float64) * 1.4 - 0.7
    moved = family.transform_points(params, points)
    assert (moved - points).abs().max() > 0.1  # it does move
    back = family.transform_points(family.invert(params), moved)
    assert (back - points).abs().max() < 0.01
    exact = family.inverse_transform_points(params, moved)
    torch.testing.assert_close(exact, points, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="diffeomorphic=True"):
        T.get("field3d").invert(T.get("field3d").identity(1))


def test_compose_and_invert_fields_in_3d():
    # A volume whose voxels hold their own coordinates: trilinear sampling of it is exact inside
    # (two voxels in from the border, where neither warp reads the zero padding).
    size = (8, 9, 10)
    base = T.base_grid(size, dtype=torch.float64)
    x = base.movedim(-1, 0).unsqueeze(0)
    a = smooth_velocity(1, size, 0.05, seed=1)
    b = smooth_velocity(1, size, 0.05, seed=2)
    twice = F.grid_sample(F.grid_sample(x, base + a, align_corners=False), base + b, align_corners=False)
    once = F.grid_sample(x, base + T.compose_fields(b, a), align_corners=False)
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2), slice(2, -2))
    torch.testing.assert_close(twice[inner], once[inner])
    identity = T.compose_fields(T.invert_field(a, 30), a)
    assert identity[:, 2:-2, 2:-2, 2:-2].abs().max() < 1e-3 < a.abs().max()


# ------------------------------------------------------------------------- gradients, batches


@pytest.mark.parametrize("family", volume_families(), ids=repr)
def test_gradcheck_float64(family):
    x = torch.rand(1, 1, 4, 4, 5, dtype=torch.float64, requires_grad=True)
    params = near_identity(family, 1, 0.05, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, p: stn.warp(x, family, p, output_size=(3, 4, 3)), (x, params))
    points = (torch.rand(1, 4, 3, dtype=torch.float64) * 1.6 - 0.8).requires_grad_()
    assert torch.autograd.gradcheck(family.transform_points, (params, points))


@pytest.mark.parametrize("family", volume_families(), ids=repr)
def test_batch_elements_are_independent_and_transformers_take_volumes(family):
    x = torch.rand(3, 4, *VOLUME)
    params = near_identity(family, 3, 0.05)
    batched = stn.warp(x, family, params, output_size=(4, 5, 3))
    assert batched.shape == (3, 4, 4, 5, 3)
    for i in range(3):
        torch.testing.assert_close(batched[i : i + 1], stn.warp(x[i : i + 1], family, params[i : i + 1], (4, 5, 3)))
    loc = nn.Sequential(nn.Conv3d(4, 2, 3), nn.ReLU(), nn.AdaptiveAvgPool3d(2))
    layer = stn.SpatialTransformer(loc, family, (4, 5, 3), in_features=16, fill=0.5)
    out = layer(x)
    assert out.shape == (3, 4, 4, 5, 3) and layer.last_grid.shape == (3, 4, 5, 3, 3)
    assert layer.last_input_size == VOLUME
    out.sum().backward()
    assert all(p.grad is not None for p in layer.parameters())
    parallel = stn.ParallelSpatialTransformers(2, loc, family, in_features=16)
    assert parallel(x).shape == (3, 8, *VOLUME) and parallel.last_params.shape == (3, 2, family.num_params)
    with pytest.raises(ValueError, match="image families"):
        layer.output_corners()


def test_volume_errors_name_the_problem():
    x = torch.rand(1, 1, *VOLUME)
    with pytest.raises(ValueError, match=r"\(N, C, D, H, W\) for the volume family affine3d"):
        stn.warp(x[0], "affine3d", T.get("affine3d").identity(1))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        stn.warp(x, "affine", T.get("affine").identity(1))
    with pytest.raises(ValueError, match="bicubic"):
        stn.warp(x, "affine3d", T.get("affine3d").identity(1), mode="bicubic")
    with pytest.raises(ValueError, match=r"three positive integers \(D, H, W\)"):
        stn.warp(x, "affine3d", T.get("affine3d").identity(1), output_size=(4, 0, 4))
    with pytest.raises(ValueError, match=r"\(D, H, W\)"):
        T.get("affine3d").grid(T.get("affine3d").identity(1), (4, 4))
    with pytest.raises(ValueError, match=r"\(N, P, 3\)"):
        T.get("rigid3d").transform_points(torch.zeros(1, 6), torch.zeros(1, 4, 2))
    with pytest.raises(ValueError, match="at least 2 nodes"):
        T.get("field3d", grid_size=(1, 4, 4))
    with pytest.raises(ValueError, match=r"\(N, 3, 2, 2, 2\)"):
        T.get("field3d", grid_size=2).from_nodes(torch.zeros(1, 2, 2, 2, 2))
    with pytest.raises(ValueError, match="differ in size"):
        T.compose(torch.eye(4)[None], torch.eye(3)[None])
    with pytest.raises(ValueError, match="image families"):
        T.output_corners("affine3d", T.get("affine3d").identity(1), (4, 4), (4, 4))
    with pytest.raises(ValueError, match=r"\(N, C, D, H, W\)"):
        stn.SpatialTransformer(nn.Flatten(), "rigid3d", in_features=4)(torch.rand(1, 1, 2, 2))


def test_no_grid_in_the_state_dict_so_any_size_loads():
    # VoxelMorph once kept its sampling grid as a buffer, so a saved model refused another image size.
    loc = nn.Sequential(nn.Conv3d(1, 2, 3), nn.AdaptiveAvgPool3d(2))
    layer = stn.SpatialTransformer(loc, "affine3d", in_features=16)
    assert all(key.startswith(("localization.", "fc_loc.")) for key in layer.state_dict())
    other = stn.SpatialTransformer(
        nn.Sequential(nn.Conv3d(1, 2, 3), nn.AdaptiveAvgPool3d(2)), "affine3d", in_features=16
    )
    other.load_state_dict(layer.state_dict())
    for size in ((6, 7, 8), (12, 10, 9)):
        x = torch.rand(2, 1, *size)
        torch.testing.assert_close(other(x), layer(x))
        assert other(x).shape == (2, 1, *size)
