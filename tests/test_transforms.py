"""The transform families and the one coordinate convention."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import stn
from stn import transforms as T

from .conftest import tol

FAMILIES = T.names()
MATRIX_FAMILIES = [n for n in FAMILIES if isinstance(T.get(n), T.MatrixTransform)]
IDENTITY_FAMILIES = [n for n in FAMILIES if n != "polar"]  # polar resamples around an origin: no identity


def random_params(family: T.Transform, n: int, scale: float = 0.1, **kw) -> torch.Tensor:
    """Parameters near the identity, so maps stay well inside the image."""
    return family.identity(n, **kw) + scale * torch.randn(n, family.num_params, **kw)


def test_names_and_counts():
    counts = {name: T.get(name).num_params for name in FAMILIES}
    assert counts == {
        "translation": 2,
        "attention": 3,
        "similarity": 4,
        "affine": 6,
        "projective": 8,
        "tps": 32,
        "diffeomorphic": 6,
        "polar": 2,
        "field": 128,
    }
    assert T.get("tps", grid_size=3).num_params == 18


@pytest.mark.parametrize("name", IDENTITY_FAMILIES)
def test_identity_reproduces_input(name, device, dtype):
    x = torch.rand(3, 2, 9, 11, device=device, dtype=dtype)
    family = T.get(name)
    out = stn.warp(x, family, family.identity(3, device=device, dtype=dtype))
    torch.testing.assert_close(out, x, **tol(dtype))


@pytest.mark.parametrize("name", IDENTITY_FAMILIES)
def test_identity_grid_is_base_grid(name, dtype):
    family = T.get(name)
    grid = family.grid(family.identity(2, dtype=dtype), (5, 7))
    base = F.affine_grid(torch.eye(2, 3, dtype=dtype).expand(2, 2, 3), [2, 1, 5, 7], align_corners=False)
    torch.testing.assert_close(grid, base, **tol(dtype))
    torch.testing.assert_close(T.base_grid((5, 7), dtype=dtype).expand(2, 5, 7, 2), base, **tol(dtype))


def test_base_grid_pixel_centres():
    # align_corners=False: -1 and 1 are the image edges, pixel i of W has centre (2i + 1) / W - 1.
    grid = T.base_grid((2, 4), dtype=torch.float64)
    torch.testing.assert_close(grid[0, :, 0], torch.tensor([-0.75, -0.25, 0.25, 0.75], dtype=torch.float64))
    torch.testing.assert_close(grid[:, 0, 1], torch.tensor([-0.5, 0.5], dtype=torch.float64))
    corners = T.base_grid((3, 3), align_corners=True, dtype=torch.float64)
    assert corners[0, 0].tolist() == [-1.0, -1.0] and corners[2, 2].tolist() == [1.0, 1.0]


def test_one_pixel_translation_shifts_image(device, dtype):
    x = torch.rand(2, 3, 6, 8, device=device, dtype=dtype)
    # One pixel is 2 / W in normalised x; output pixel j reads input pixel j + 1.
    params = torch.tensor([[2 / 8, 0.0]], device=device, dtype=dtype).expand(2, 2)
    out = stn.warp(x, "translation", params)
    torch.testing.assert_close(out[..., :-1], x[..., 1:], **tol(dtype))
    assert out[..., -1].abs().max() == 0  # read from outside: zero padding
    down = stn.warp(x, "translation", torch.tensor([[0.0, -2 / 6]] * 2, device=device, dtype=dtype))
    torch.testing.assert_close(down[:, :, 1:], x[:, :, :-1], **tol(dtype))


def test_rotation_by_90_degrees_is_rot90(device, dtype):
    x = torch.rand(2, 3, 7, 7, device=device, dtype=dtype)
    angle = torch.full((2,), math.pi / 2, device=device, dtype=dtype)
    params = T.Similarity.from_angle(angle, torch.ones_like(angle), torch.zeros(2, 2, device=device, dtype=dtype))
    torch.testing.assert_close(stn.warp(x, "similarity", params), torch.rot90(x, 1, dims=(-2, -1)), **tol(dtype))
    affine = torch.tensor([[0.0, -1.0, 0.0, 1.0, 0.0, 0.0]], device=device, dtype=dtype).expand(2, 6)
    torch.testing.assert_close(stn.warp(x, "affine", affine), torch.rot90(x, 1, dims=(-2, -1)), **tol(dtype))


def test_affine_matches_affine_grid(dtype):
    theta = torch.randn(4, 2, 3, dtype=dtype)
    expected = F.affine_grid(theta, [4, 1, 5, 6], align_corners=False)
    torch.testing.assert_close(T.get("affine").grid(theta.view(4, 6), (5, 6)), expected, **tol(dtype))


def test_projective_with_affine_last_row_is_affine(dtype):
    affine = random_params(T.get("affine"), 4, dtype=dtype)
    projective = torch.cat((affine, torch.zeros(4, 2, dtype=dtype)), dim=1)
    torch.testing.assert_close(
        T.get("projective").grid(projective, (6, 5)), T.get("affine").grid(affine, (6, 5)), **tol(dtype)
    )


def test_projective_divides_by_w(dtype):
    params = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.5, 0.0]], dtype=dtype)
    points = torch.tensor([[[1.0, 1.0], [0.0, 0.5]]], dtype=dtype)
    expected = torch.tensor([[[1 / 1.5, 1 / 1.5], [0.0, 0.5]]], dtype=dtype)
    torch.testing.assert_close(T.get("projective").transform_points(params, points), expected, **tol(dtype))


def test_attention_and_similarity_match_their_matrices(dtype):
    s, tx, ty = 0.5, 0.2, -0.3
    attention = T.get("attention").matrix(torch.tensor([[s, tx, ty]], dtype=dtype))
    torch.testing.assert_close(attention[0], torch.tensor([[s, 0, tx], [0, s, ty], [0, 0, 1]], dtype=dtype))
    a, b = 0.6, 0.8
    similarity = T.get("similarity").matrix(torch.tensor([[a, b, tx, ty]], dtype=dtype))
    torch.testing.assert_close(similarity[0], torch.tensor([[a, -b, tx], [b, a, ty], [0, 0, 1]], dtype=dtype))


def test_tps_zero_offsets_is_identity_and_control_points_land(dtype):
    tps = T.get("tps")
    c = tps.control_points(dtype=dtype).expand(3, -1, -1)
    torch.testing.assert_close(tps.transform_points(tps.identity(3, dtype=dtype), c), c, **tol(dtype))
    offsets = 0.2 * torch.randn(3, 16, 2, dtype=dtype)
    moved = tps.transform_points(offsets.flatten(1), c)
    torch.testing.assert_close(moved, c + offsets, atol=1e-5 if dtype == torch.float32 else 1e-9, rtol=0)


def test_tps_control_point_order_is_row_major():
    c = T.get("tps", grid_size=(2, 3)).control_points(dtype=torch.float64)
    expected = [[-1, -1], [0, -1], [1, -1], [-1, 1], [0, 1], [1, 1]]
    assert c.tolist() == expected


def test_tps_reproduces_affine_offsets(dtype):
    # Offsets that follow an affine map give exactly that affine map everywhere.
    tps, affine = T.get("tps"), T.get("affine")
    theta = torch.tensor([[0.9, 0.1, 0.05, -0.1, 1.1, 0.0]], dtype=dtype)
    c = tps.control_points(dtype=dtype).unsqueeze(0)
    offsets = affine.transform_points(theta, c) - c
    torch.testing.assert_close(tps.grid(offsets.flatten(1), (5, 5)), affine.grid(theta, (5, 5)), **tol(dtype))


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_agrees_with_transform_points(name, align_corners, dtype):
    family = T.get(name)
    params = random_params(family, 3, dtype=dtype)
    grid = family.grid(params, (4, 6), align_corners=align_corners)
    points = T.base_grid((4, 6), align_corners, dtype=dtype).view(1, -1, 2).expand(3, -1, -1)
    torch.testing.assert_close(grid.view(3, -1, 2), family.transform_points(params, points), **tol(dtype))


@pytest.mark.parametrize("name", MATRIX_FAMILIES)
def test_transform_points_is_the_matrix(name, dtype):
    family = T.get(name)
    params = random_params(family, 2, dtype=dtype)
    points = torch.rand(2, 5, 2, dtype=dtype) * 2 - 1
    homogeneous = torch.cat((points, torch.ones(2, 5, 1, dtype=dtype)), -1) @ family.matrix(params).transpose(1, 2)
    torch.testing.assert_close(family.transform_points(params, points), homogeneous[..., :2] / homogeneous[..., 2:])


@pytest.mark.parametrize("name", MATRIX_FAMILIES)
def test_invert_and_compose_round_trip(name, dtype):
    family = T.get(name)
    m = family.matrix(random_params(family, 3, dtype=dtype))
    eye = torch.eye(3, dtype=dtype).expand(3, 3, 3)
    torch.testing.assert_close(T.compose(m, T.invert(m)), eye, **tol(dtype))
    torch.testing.assert_close(T.compose(T.invert(m), m), eye, **tol(dtype))
    torch.testing.assert_close(T.invert(T.invert(m)), m, **tol(dtype))


def test_compose_is_warping_twice():
    # An image whose pixels hold their own coordinates: bilinear sampling of it is exact inside.
    x = T.base_grid((16, 16), dtype=torch.float64).permute(2, 0, 1).unsqueeze(0)
    affine = T.get("affine")
    a = torch.tensor([[0.9, 0.1, 0.0, -0.1, 0.9, 0.0]], dtype=torch.float64)
    b = torch.tensor([[1.0, 0.0, 0.1, 0.0, 1.0, -0.05]], dtype=torch.float64)
    points = torch.rand(1, 7, 2, dtype=torch.float64) - 0.5
    # Warp by A, then by B: reads the original at A(B(p)).
    ab = T.compose(affine.matrix(b), affine.matrix(a))
    expected = affine.transform_points(a, affine.transform_points(b, points))
    torch.testing.assert_close(affine.transform_points(T.Affine.from_matrix(ab), points), expected)
    twice = stn.warp(stn.warp(x, affine, a), affine, b)
    once = stn.warp(x, affine, T.Affine.from_matrix(ab))
    torch.testing.assert_close(twice[..., 4:-4, 4:-4], once[..., 4:-4, 4:-4])


def test_from_matrix_round_trips(dtype):
    for name in ("affine", "projective"):
        family = T.get(name)
        params = random_params(family, 2, dtype=dtype)
        torch.testing.assert_close(type(family).from_matrix(family.matrix(params)), params, **tol(dtype))


@pytest.mark.parametrize("name", FAMILIES)
def test_gradcheck(name):
    family = T.get(name)
    x = torch.rand(2, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    params = random_params(family, 2, scale=0.05, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, p: stn.warp(x, family, p, output_size=(4, 5)), (x, params))


@pytest.mark.parametrize("name", FAMILIES)
def test_gradcheck_transform_points(name):
    family = T.get(name)
    params = random_params(family, 2, dtype=torch.float64).requires_grad_()
    points = (torch.rand(2, 6, 2, dtype=torch.float64) * 2 - 1).requires_grad_()
    assert torch.autograd.gradcheck(family.transform_points, (params, points))


@pytest.mark.parametrize("name", FAMILIES)
def test_batch_elements_are_independent(name, dtype):
    family = T.get(name)
    x = torch.rand(4, 3, 8, 8, dtype=dtype)
    params = random_params(family, 4, dtype=dtype)
    batched = stn.warp(x, family, params)
    for i in range(4):
        torch.testing.assert_close(batched[i : i + 1], stn.warp(x[i : i + 1], family, params[i : i + 1]), **tol(dtype))


def test_bounded_variants_stay_in_range():
    attention = T.get("attention", scale_range=(0.3, 1.5))
    identity = attention.identity(1)
    assert attention.scale(identity).item() == pytest.approx(1.0)
    extremes = torch.tensor([[-100.0, 0, 0], [100.0, 0, 0]])
    assert attention.scale(extremes).tolist() == pytest.approx([0.3, 1.5])
    tps = T.get("tps", max_offset=0.25)
    assert tps.offsets(torch.full((1, 32), 50.0)).max().item() == pytest.approx(0.25)
    shift = T.get("translation", max_shift=0.5)
    assert shift.matrix(torch.tensor([[1e3, -1e3]]))[0, :2, 2].tolist() == pytest.approx([0.5, -0.5])
    with pytest.raises(ValueError, match="scale_range"):
        T.get("attention", scale_range=(0.2, 0.8))


def test_options_rebuild_an_equal_transform():
    for name in FAMILIES:
        family = T.get(name)
        assert repr(T.get(family.name, **family.options)) == repr(family)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: T.get("warp-speed"), "unknown transform 'warp-speed'"),
        (lambda: T.get("affine").grid(torch.zeros(2, 5), (4, 4)), r"shape \(N, 6\), got \(2, 5\)"),
        (lambda: T.get("affine").grid(torch.zeros(2, 2, 3), (4, 4)), r"shape \(N, 6\), got \(2, 2, 3\)"),
        (lambda: T.get("affine").grid(torch.zeros(2, 6, dtype=torch.long), (4, 4)), "floating point"),
        (lambda: T.get("affine").grid(torch.zeros(2, 6), (0, 4)), "positive"),
        (lambda: T.get("affine").grid(torch.zeros(2, 6), (4, -1)), "positive"),
        (lambda: T.get("affine").grid(torch.zeros(2, 6), (4,)), r"\(H, W\)"),
        (lambda: T.get("tps").transform_points(torch.zeros(2, 32), torch.zeros(2, 5)), r"\(N, P, 2\)"),
        (lambda: T.get("tps").transform_points(torch.zeros(2, 32), torch.zeros(3, 5, 2)), "batch"),
        (lambda: T.get("tps", grid_size=1), "2x2"),
        (lambda: T.invert(torch.eye(2).expand(1, 2, 2)), r"\(N, 3, 3\)"),
        (lambda: T.get("affine", bogus=1), "bad options"),
    ],
)
def test_errors_name_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("name", ["translation", "attention", "similarity", "affine"])
@pytest.mark.parametrize("size", [(28, 28), (20, 28), (32, 32), (56, 40)])
def test_affine_grids_are_affine_grid_bit_for_bit(name, size, dtype):
    """Runs trained before the grid was built by hand reproduce to the last digit."""
    family = T.get(name)
    params = family.identity(4, dtype=dtype) + 0.2 * torch.randn(4, family.num_params, dtype=dtype)
    for align_corners in (False, True):
        expected = F.affine_grid(family.matrix(params)[:, :2], [4, 1, *size], align_corners=align_corners)
        assert torch.equal(family.grid(params, size, align_corners), expected)
