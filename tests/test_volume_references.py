"""Volumes against the references that define the same maps: kornia's 3-D warps, scipy.ndimage,
nibabel's resampling, MONAI's ``AffineTransform``, ``Warp`` and ``DVF2DDF``, and VoxelMorph's
``SpatialTransformer`` and ``IntegrateVelocityField``. Agreement to 1e-5 on random volumes, for both
``align_corners`` values where the reference takes either."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import stn
from stn import transforms as T

IN, OUT = (6, 7, 8), (5, 8, 6)  # (D, H, W): no two sides equal
ATOL = {"atol": 1e-5, "rtol": 0}
pytestmark = pytest.mark.filterwarnings("ignore:monai.networks.blocks.Warp:UserWarning")


def random_affine(n: int, scale: float = 0.15, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    family = T.get("affine3d")
    return family.identity(n, dtype=dtype) + scale * torch.randn(n, 12, dtype=dtype)


def smooth_field(n: int, size: tuple[int, int, int], amplitude: float, vanish: bool = False) -> torch.Tensor:
    """``(n, D, H, W, 3)`` smooth normalised displacements; zero on the outer two voxels with ``vanish``."""
    coarse = torch.randn(n, 3, 3, 3, 3, dtype=torch.float64)
    field = amplitude * F.interpolate(coarse, size=size, mode="trilinear", align_corners=True)
    if vanish:
        mask = torch.zeros(size, dtype=torch.float64)
        mask[2:-2, 2:-2, 2:-2] = 1
        field = field * mask
    return field.movedim(1, -1)


# ------------------------------------------------------------------------------------- kornia


def test_kornia_3d_warps_agree_through_the_pixel_matrix():
    kornia = pytest.importorskip("kornia")
    x = torch.rand(2, 2, *IN, dtype=torch.float64)
    theta = random_affine(2)
    ours = stn.warp(x, "affine3d", theta, OUT, align_corners=True)
    pixel = T.to_pixel_matrix(T.get("affine3d").matrix(theta), IN, OUT, align_corners=True)
    perspective = kornia.geometry.transform.warp_perspective3d(x, pixel, OUT, align_corners=True)
    affine = kornia.geometry.transform.warp_affine3d(x, pixel[:, :3], OUT, align_corners=True)
    torch.testing.assert_close(perspective, ours, **ATOL)
    torch.testing.assert_close(affine, ours, **ATOL)
    torch.testing.assert_close(T.from_pixel_matrix(pixel, IN, OUT, True), T.get("affine3d").matrix(theta))


def test_kornia_3d_warps_normalise_as_align_corners_true_whatever_they_are_told():
    # kornia's normalize_homography3d maps voxel centres 0 .. n-1 onto -1 .. 1 for both values of
    # align_corners, then samples with the one given: with align_corners=False its 3-D warps are
    # stn's warp of the align_corners=True matrix, sampled with align_corners=False (half a voxel
    # and a scale off the pixel matrix), unlike its 2-D warps.
    kornia = pytest.importorskip("kornia")
    x = torch.rand(2, 2, *IN, dtype=torch.float64)
    pixel = T.to_pixel_matrix(T.get("affine3d").matrix(random_affine(2)), IN, OUT, align_corners=False)
    theirs = kornia.geometry.transform.warp_affine3d(x, pixel[:, :3], OUT, align_corners=False)
    meant = stn.warp(x, "affine3d", T.Affine3d.from_matrix(T.from_pixel_matrix(pixel, IN, OUT, False)), OUT)
    assert (theirs - meant).abs().max() > 1e-2
    read = T.Affine3d.from_matrix(T.from_pixel_matrix(pixel, IN, OUT, align_corners=True))
    torch.testing.assert_close(theirs, stn.warp(x, "affine3d", read, OUT, align_corners=False), **ATOL)


def test_voxel_points_follow_the_pixel_convention():
    points = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    d, h, w = IN
    assert T.to_pixel_points(points, IN).tolist() == [[-0.5, -0.5, -0.5], [w - 0.5, h - 0.5, d - 0.5]]
    assert T.to_pixel_points(points, IN, align_corners=True).tolist() == [[0, 0, 0], [w - 1, h - 1, d - 1]]
    torch.testing.assert_close(T.from_pixel_points(T.to_pixel_points(points, IN), IN), points)


# ------------------------------------------------------------------------- scipy and nibabel


@pytest.mark.parametrize("align_corners", [False, True])
def test_index_matrix_is_what_scipy_affine_transform_takes(align_corners):
    ndimage = pytest.importorskip("scipy.ndimage")
    x = torch.rand(1, 1, *IN, dtype=torch.float64)
    theta = random_affine(1)
    ours = stn.warp(x, "affine3d", theta, OUT, align_corners=align_corners)[0, 0]
    q = T.to_index_matrix(T.get("affine3d").matrix(theta), IN, OUT, align_corners)[0].numpy()
    # 'grid-constant' interpolates with the zeros beyond the border, as grid_sample's zero padding does.
    theirs = ndimage.affine_transform(x[0, 0].numpy(), q, output_shape=OUT, order=1, mode="grid-constant")
    np.testing.assert_allclose(theirs, ours.numpy(), atol=1e-5, rtol=0)
    back = T.from_index_matrix(torch.from_numpy(q)[None], IN, OUT, align_corners)
    torch.testing.assert_close(back, T.get("affine3d").matrix(theta))


@pytest.mark.parametrize("align_corners", [False, True])
def test_nibabel_affines_resample_as_nibabel_does(align_corners):
    nib = pytest.importorskip("nibabel")
    processing = pytest.importorskip("nibabel.processing")
    rng = np.random.default_rng(0)
    moving_data = rng.random(IN)
    # Two scanners' voxel-to-world affines: anisotropic voxels, a small rotation, different origins.
    moving_affine = np.diag([1.2, 0.9, 1.1, 1.0])
    moving_affine[:3, 3] = [-3.0, -2.5, -4.0]
    angle = 0.2
    turn = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    fixed_affine = np.eye(4)
    fixed_affine[:3, :3] = turn @ np.diag([1.0, 1.1, 0.8])
    fixed_affine[:3, 3] = [-2.0, -3.5, -2.0]
    moving = nib.Nifti1Image(moving_data, moving_affine)
    fixed = nib.Nifti1Image(np.zeros(OUT), fixed_affine)
    theirs = processing.resample_from_to(moving, fixed, order=1, mode="grid-constant").get_fdata()

    index = torch.from_numpy(np.linalg.inv(moving_affine) @ fixed_affine)[None]
    matrix = T.from_index_matrix(index, IN, OUT, align_corners)
    theta = T.Affine3d.from_matrix(matrix)
    x = torch.from_numpy(moving_data)[None, None]
    ours = stn.warp(x, "affine3d", theta, OUT, align_corners=align_corners)[0, 0]
    assert np.abs(theirs).max() > 0.1  # the images overlap
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------- MONAI


def monai_module(name: str):
    pytest.importorskip("monai")
    import importlib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(name)


@pytest.mark.parametrize("align_corners", [False, True])
def test_monai_affine_transform_takes_the_index_matrix(align_corners):
    layers = monai_module("monai.networks.layers")
    x = torch.rand(2, 3, *IN, dtype=torch.float64)
    theta = random_affine(2)
    ours = stn.warp(x, "affine3d", theta, OUT, align_corners=align_corners)
    index = T.to_index_matrix(T.get("affine3d").matrix(theta), IN, OUT, align_corners)
    voxels = layers.AffineTransform(OUT, normalized=False, align_corners=align_corners, reverse_indexing=True)
    torch.testing.assert_close(voxels(x, index), ours, **ATOL)
    # With normalized=True and reverse_indexing=False MONAI takes stn's own matrix.
    normalized = layers.AffineTransform(OUT, normalized=True, align_corners=align_corners, reverse_indexing=False)
    torch.testing.assert_close(normalized(x, T.get("affine3d").matrix(theta)), ours, **ATOL)


def test_monai_warp_takes_the_voxel_displacement():
    blocks = monai_module("monai.networks.blocks")
    x = torch.rand(2, 2, *IN, dtype=torch.float64)
    field = smooth_field(2, IN, 0.2)
    ddf = T.to_voxel_displacement(field, align_corners=True)
    assert ddf.shape == (2, 3, *IN)
    torch.testing.assert_close(T.from_voxel_displacement(ddf, align_corners=True), field)
    family = T.get("field3d", grid_size=IN)
    for padding in ("zeros", "border"):
        ours = stn.warp(x, family, field.reshape(2, -1), padding_mode=padding, align_corners=True)
        theirs = blocks.Warp(mode="bilinear", padding_mode=padding)(x, ddf)
        torch.testing.assert_close(theirs, ours, **ATOL)


def test_monai_dvf2ddf_is_integrate_velocity():
    blocks = monai_module("monai.networks.blocks")
    velocity = smooth_field(2, (8, 8, 8), 0.15, vanish=True)  # zero near the border: no padding is read
    ours = T.integrate_velocity(velocity, steps=7, align_corners=True)
    theirs = blocks.DVF2DDF(num_steps=7)(T.to_voxel_displacement(velocity, align_corners=True))
    torch.testing.assert_close(T.to_voxel_displacement(ours, align_corners=True), theirs, **ATOL)


# ------------------------------------------------------------------------------ VoxelMorph


def voxelmorph():
    pytest.importorskip("neurite")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("voxelmorph")


def test_voxelmorph_spatial_transformer_takes_the_voxel_displacement():
    vxm = voxelmorph()
    x = torch.rand(2, 2, *IN, dtype=torch.float64)
    field = smooth_field(2, IN, 0.2)
    flow = T.to_voxel_displacement(field, align_corners=True)  # channels (di, dj, dk): voxelmorph#492
    theirs = vxm.nn.modules.SpatialTransformer()(x, flow)
    ours = stn.warp(x, T.get("field3d", grid_size=IN), field.reshape(2, -1), align_corners=True)
    torch.testing.assert_close(theirs, ours, **ATOL)
    # The channels in (x, y, z) order instead, the mistake of voxelmorph#492, moves the volume elsewhere.
    swapped = vxm.nn.modules.SpatialTransformer()(x, flow.flip(1))
    assert (swapped - ours).abs().max() > 1e-2


def test_voxelmorph_integration_is_the_diffeomorphic_field():
    vxm = voxelmorph()
    size = (8, 8, 8)
    velocity = smooth_field(2, size, 0.15, vanish=True)
    family = T.get("field3d", grid_size=size, diffeomorphic=True, steps=7)
    ours = family.grid(velocity.reshape(2, -1), size, align_corners=True) - T.base_grid(size, True, dtype=torch.float64)
    integrate = vxm.nn.modules.IntegrateVelocityField(size, steps=7)
    theirs = integrate(T.to_voxel_displacement(velocity, align_corners=True))
    torch.testing.assert_close(T.to_voxel_displacement(ours, align_corners=True), theirs, **ATOL)


@pytest.mark.parametrize("align_corners", [False, True])
def test_index_matrix_of_an_image_is_scipys_too(align_corners):
    ndimage = pytest.importorskip("scipy.ndimage")
    x = torch.rand(1, 1, 9, 13, dtype=torch.float64)
    theta = T.get("affine").identity(1, dtype=torch.float64) + 0.15 * torch.randn(1, 6, dtype=torch.float64)
    ours = stn.warp(x, "affine", theta, (11, 7), align_corners=align_corners)[0, 0]
    q = T.to_index_matrix(T.get("affine").matrix(theta), (9, 13), (11, 7), align_corners)[0].numpy()
    theirs = ndimage.affine_transform(x[0, 0].numpy(), q, output_shape=(11, 7), order=1, mode="grid-constant")
    np.testing.assert_allclose(theirs, ours.numpy(), atol=1e-5, rtol=0)
