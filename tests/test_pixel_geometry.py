"""Pixel geometry: pixel matrices as cv2 and kornia take them, points both ways, and where each
input was read (corners in input pixels)."""

from __future__ import annotations

import pytest
import torch
from kornia.geometry.transform import get_perspective_transform, warp_affine, warp_perspective
from torch import nn

import stn
from stn import transforms as T

IN_SIZE, OUT_SIZE = (20, 28), (16, 12)  # (H, W), neither square nor equal


def near_identity(name: str, n: int, scale: float = 0.1, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    family = T.get(name)
    noise = scale * torch.randn(n, family.num_params, dtype=dtype)
    if name == "projective":
        noise[:, 6:] *= 0.3  # a visible but tame perspective
    return family.identity(n, dtype=dtype) + noise


def corner_pixels(size: tuple[int, int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    h, w = size
    return torch.tensor([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=dtype)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("name", ["affine", "projective"])
def test_kornia_warps_like_us_with_the_pixel_matrix(name, align_corners):
    x = torch.rand(3, 2, *IN_SIZE)
    family = T.get(name)
    params = near_identity(name, 3)
    ours = stn.warp(x, family, params, OUT_SIZE, align_corners=align_corners)
    pixel = T.to_pixel_matrix(family.matrix(params), IN_SIZE, OUT_SIZE, align_corners)
    theirs = warp_perspective(x, pixel, OUT_SIZE, align_corners=align_corners)
    # Interior: output pixels that read at least one pixel inside the input, clear of any padding.
    read = T.to_pixel_points(family.grid(params, OUT_SIZE, align_corners), IN_SIZE, align_corners)
    inside = (read >= 1).all(-1) & (read[..., 0] <= IN_SIZE[1] - 2) & (read[..., 1] <= IN_SIZE[0] - 2)
    assert inside.float().mean() > 0.5
    mask = inside.unsqueeze(1).expand_as(ours)
    torch.testing.assert_close(ours[mask], theirs[mask], atol=1e-4, rtol=0)
    if name == "affine":
        theirs = warp_affine(x, pixel[:, :2], OUT_SIZE, align_corners=align_corners)
        torch.testing.assert_close(ours[mask], theirs[mask], atol=1e-4, rtol=0)


@pytest.mark.parametrize("align_corners", [False, True])
def test_pixel_matrix_is_the_forward_map_with_pixel_centres_at_integers(align_corners):
    family = T.get("projective")
    params = near_identity("projective", 2, dtype=torch.float64)
    pixel = T.to_pixel_matrix(family.matrix(params), IN_SIZE, OUT_SIZE, align_corners)
    # Output pixel (row i, column j) reads the input at grid[i, j]; the pixel matrix sends that back to (j, i).
    read = T.to_pixel_points(family.grid(params, OUT_SIZE, align_corners), IN_SIZE, align_corners).view(2, -1, 2)
    sent = T.apply_matrix(pixel, read)
    rows, cols = torch.meshgrid(torch.arange(OUT_SIZE[0]), torch.arange(OUT_SIZE[1]), indexing="ij")
    expected = torch.stack((cols, rows), -1).view(1, -1, 2).to(torch.float64).expand(2, -1, -1)
    torch.testing.assert_close(sent, expected)
    assert torch.allclose(pixel[:, 2, 2], torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("name", ["attention", "affine", "projective"])
def test_from_pixel_matrix_inverts_to_pixel_matrix(name, align_corners):
    family = T.get(name)
    matrix = family.matrix(near_identity(name, 3, dtype=torch.float64))
    pixel = T.to_pixel_matrix(matrix, IN_SIZE, OUT_SIZE, align_corners)
    torch.testing.assert_close(T.from_pixel_matrix(pixel, IN_SIZE, OUT_SIZE, align_corners), matrix)
    if name != "projective":  # an affine map has an affine pixel matrix
        torch.testing.assert_close(pixel[:, 2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(3, 3))


def test_identity_pixel_matrix_and_pixel_points():
    eye = torch.eye(3, dtype=torch.float64)[None]
    torch.testing.assert_close(T.to_pixel_matrix(eye, (10, 30), (10, 30)), eye)
    # Resizing 30 -> 15 columns: input pixel centre x goes to (x + 0.5) / 2 - 0.5.
    half = T.to_pixel_matrix(eye, (10, 30), (5, 15))
    torch.testing.assert_close(half[0, 0], torch.tensor([0.5, 0.0, -0.25], dtype=torch.float64))
    points = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    edges = T.to_pixel_points(points, (10, 30))  # align_corners=False: +-1 are the outer edges
    assert edges.tolist() == [[-0.5, -0.5], [29.5, 9.5], [14.5, 4.5]]
    centres = T.to_pixel_points(points, (10, 30), align_corners=True)  # +-1 are the corner centres
    assert centres.tolist() == [[0.0, 0.0], [29.0, 9.0], [14.5, 4.5]]
    torch.testing.assert_close(T.from_pixel_points(edges, (10, 30)), points)
    with pytest.raises(ValueError, match="at least 2 pixels"):
        T.to_pixel_matrix(eye, (1, 30), (10, 30), align_corners=True)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("name", ["attention", "affine", "projective"])
def test_output_corners_rectify_as_cv2_would(name, align_corners):
    # The OCR idiom: the perspective transform from the four corners to the output's corner
    # pixels is the pixel matrix of the warp.
    family = T.get(name)
    params = near_identity(name, 2, dtype=torch.float64)
    corners = T.output_corners(family, params, IN_SIZE, OUT_SIZE, align_corners)
    assert corners.shape == (2, 4, 2)
    found = get_perspective_transform(corners, corner_pixels(OUT_SIZE, torch.float64).expand(2, 4, 2))
    expected = T.to_pixel_matrix(family.matrix(params), IN_SIZE, OUT_SIZE, align_corners)
    torch.testing.assert_close(found / found[:, 2:, 2:], expected)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("name", [n for n in T.names() if n != "polar"])  # polar has no identity map
def test_output_corners_of_the_identity_are_the_corner_pixels(name, align_corners):
    family = T.get(name)
    corners = T.output_corners(name, family.identity(1), IN_SIZE, IN_SIZE, align_corners)
    torch.testing.assert_close(corners[0], corner_pixels(IN_SIZE), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", [n for n in T.names() if isinstance(T.get(n), T.MatrixTransform)])
def test_inverse_points_are_exact_for_matrix_families(name, dtype):
    family = T.get(name)
    params = near_identity(name, 3, dtype=dtype)
    points = torch.rand(3, 10, 2, dtype=dtype) * 2 - 1
    back = family.inverse_transform_points(params, points)
    tol = {"atol": 1e-5, "rtol": 0} if dtype == torch.float32 else {"atol": 1e-12, "rtol": 0}
    torch.testing.assert_close(family.transform_points(params, back), points, **tol)
    forward = family.transform_points(params, points)
    torch.testing.assert_close(family.inverse_transform_points(params, forward), points, **tol)


def test_tps_inverse_meets_its_tolerance():
    tps = T.get("tps")
    params = 0.15 * torch.randn(4, 32, dtype=torch.float64)
    points = torch.rand(4, 200, 2, dtype=torch.float64) * 2.4 - 1.2  # inside the image and a little beyond
    back = tps.inverse_transform_points(params, points)
    assert back.isfinite().all()
    assert (tps.transform_points(params, back) - points).abs().max() <= T.INVERSE_TOL
    assert (tps.transform_points(params, back) - points).abs().max() > 0  # not the identity by accident
    tight = tps.inverse_transform_points(params, points, tol=1e-11)
    assert (tps.transform_points(params, tight) - points).abs().max() <= 1e-11
    # float32 in, float32 out; solved in float64, so only the final rounding is lost.
    back32 = tps.inverse_transform_points(params.float(), points.float())
    assert back32.dtype == torch.float32
    assert (tps.transform_points(params, back32.double()) - points).abs().max() <= 1e-6


def test_tps_inverse_answers_within_tolerance_or_nan():
    tps = T.get("tps", grid_size=3)
    params = 0.6 * torch.randn(8, 18, dtype=torch.float64)  # strong warps, some folding over
    points = torch.rand(8, 300, 2, dtype=torch.float64) * 2 - 1
    back = tps.inverse_transform_points(params, points, max_iter=20)
    found = back.isfinite().all(-1)
    assert found.float().mean() > 0.5
    residual = (tps.transform_points(params, back.nan_to_num()) - points).abs().amax(-1)
    assert (residual[found] <= T.INVERSE_TOL).all()


def test_tps_inverse_gradients():
    tps = T.get("tps", grid_size=3)
    params = (0.1 * torch.randn(2, 18, dtype=torch.float64)).requires_grad_()
    points = (torch.rand(2, 5, 2, dtype=torch.float64) * 2 - 1).requires_grad_()
    assert torch.autograd.gradcheck(lambda p, q: tps.inverse_transform_points(p, q, tol=1e-12), (params, points))


def loc() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2))


@pytest.mark.parametrize("name", ["attention", "projective", "tps"])
def test_transformer_keeps_its_grid_and_regions(name):
    st = stn.SpatialTransformer(loc(), name, output_size=OUT_SIZE, in_features=16)
    assert st.last_grid is None
    with torch.no_grad():
        st.fc_loc.bias.add_(0.1 * torch.randn_like(st.fc_loc.bias))
    x = torch.rand(3, 2, *IN_SIZE)
    out = st(x)
    grid = st.last_grid
    assert grid.shape == (3, *OUT_SIZE, 2) and grid.dtype == torch.float32
    torch.testing.assert_close(torch.nn.functional.grid_sample(x, grid, align_corners=False), out)
    regions = st.output_corners()
    torch.testing.assert_close(regions, T.output_corners(st.transform, st.last_params, IN_SIZE, OUT_SIZE))
    # In the pixels of a 10x larger original: the same normalised places.
    big = st.output_corners(input_size=(200, 280))
    torch.testing.assert_close(T.from_pixel_points(big, (200, 280)), T.from_pixel_points(regions, IN_SIZE))


def test_parallel_transformers_regions():
    pst = stn.ParallelSpatialTransformers(2, loc(), "attention", in_features=16)
    with torch.no_grad():
        pst.fc_loc.bias.copy_(torch.tensor([0.5, 0.5, 0.5, 1.0, 0.0, 0.0]))
    pst(torch.rand(3, 2, *IN_SIZE))
    assert pst.last_grid.shape == (3, 2, *IN_SIZE, 2)
    regions = pst.output_corners()
    assert regions.shape == (3, 2, 4, 2)
    h, w = IN_SIZE
    torch.testing.assert_close(regions[:, 1], corner_pixels(IN_SIZE).expand(3, 4, 2), atol=1e-4, rtol=0)
    # Scale 0.5 at (0.5, 0.5): the bottom-right quarter, corner pixels' centres at a quarter pixel in.
    top_left = torch.tensor([w / 2 + 0.25 - 0.5, h / 2 + 0.25 - 0.5])
    torch.testing.assert_close(regions[:, 0, 0], top_left.expand(3, 2))


@pytest.mark.parametrize("name", ["projective", "tps"])
def test_inverse_points_in_half_precision(name):
    family = T.get(name)
    params = near_identity(name, 2, scale=0.05, dtype=torch.float64)
    points = torch.rand(2, 6, 2, dtype=torch.float64) - 0.5
    back = family.inverse_transform_points(params.to(torch.bfloat16), points.to(torch.bfloat16))
    assert back.dtype == torch.bfloat16
    torch.testing.assert_close(back.double(), family.inverse_transform_points(params, points), atol=2e-2, rtol=0)


def test_points_and_extents_are_half_a_pixel_apart_and_each_round_trips():
    points = torch.rand(3, 5, 2) * 2 - 1
    for align_corners in (False, True):
        centres = T.to_pixel_points(points, (7, 11), align_corners)
        edges = T.to_pixel_extents(points, (7, 11), align_corners)
        torch.testing.assert_close(edges, centres + 0.5)
        torch.testing.assert_close(T.from_pixel_extents(edges, (7, 11), align_corners), points)
        torch.testing.assert_close(T.from_pixel_points(centres, (7, 11), align_corners), points)


def test_the_region_read_and_the_corner_pixels_differ_by_the_output_pixels_edge():
    """At the identity, the region read is the whole image in extents, (0, 0) to (W, H); the
    output's corner pixels read the input's corner pixel centres, (0, 0) to (W-1, H-1) in points."""
    st = stn.SpatialTransformer(nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten()), "affine", in_features=4)
    st(torch.rand(2, 1, 6, 10))
    torch.testing.assert_close(st.region()[0], torch.tensor([[0.0, 0], [10, 0], [10, 6], [0, 6]]))
    torch.testing.assert_close(st.output_corners()[0], torch.tensor([[0.0, 0], [9, 0], [9, 5], [0, 5]]))
    with pytest.warns(DeprecationWarning, match="output_corners"):
        torch.testing.assert_close(st.regions(), st.output_corners())


def test_polar_reads_the_box_around_its_disk():
    polar = T.get("polar", max_radius=0.5)
    box = T.output_region(polar, torch.tensor([[0.2, -0.1]]), (20, 40))[0]
    # origin (0.2, -0.1) +- 0.5 in normalised units; x in [0, 40], y in [0, 20]
    torch.testing.assert_close(box, torch.tensor([[14.0, 4.0], [34.0, 4.0], [34.0, 14.0], [14.0, 14.0]]))
