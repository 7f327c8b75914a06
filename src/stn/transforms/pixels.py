"""Pixel geometry: normalised coordinates as pixels (and voxels), in two named conventions.

Convention
----------
* **Points** (pixel centres; OpenCV, kornia, keypoints): the centre of pixel (row ``i``, column
  ``j``) is at ``(x, y) = (j, i)``, so an ``(H, W)`` image covers ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``
  and the identity's corner pixels are ``(0, 0)`` and ``(W - 1, H - 1)``; the centre of voxel
  ``(i, j, k)`` of a ``(D, H, W)`` volume is at ``(x, y, z) = (k, j, i)``. Converters:
  :func:`to_pixel_points` / :func:`from_pixel_points`; :func:`output_corners` gives points.
* **Extents** (pixel edges; boxes, as torchvision's and PIL's): pixel ``(i, j)`` covers
  ``[j, j + 1] x [i, i + 1]``, so the image spans ``[0, W] x [0, H]``. The same place is half a
  pixel further on than in points. Converters: :func:`to_pixel_extents` /
  :func:`from_pixel_extents`; :func:`output_region` (where an output reads, as ``stn predict
  --boxes`` reports it) gives extents.

Pixel matrices (:func:`to_pixel_matrix`) use points, and map SOURCE (input) pixels to DESTINATION
(output) pixels: the forward map that ``cv2.warpAffine`` / ``cv2.warpPerspective`` and kornia's
``warp_affine`` / ``warp_perspective`` / ``warp_affine3d`` / ``warp_perspective3d`` take; ours map
output to input, normalised (see :mod:`stn.transforms` for the normalised convention and
``align_corners``). Index matrices (:func:`to_index_matrix`) are the other common form: they map
OUTPUT array indices ``(i, j[, k])`` to the INPUT indices they read, axes in array order
(``scipy.ndimage.affine_transform``'s ``matrix``, MONAI's ``AffineTransform`` with
``normalized=False``; ``inv(A_moving) @ A_fixed`` for nibabel affines). VoxelMorph's and MONAI's
displacement fields: :func:`to_voxel_displacement`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from stn.transforms.base import Transform, _check_matrix, check_size, invert
from stn.transforms.registry import get

__all__ = [
    "from_index_matrix",
    "from_pixel_extents",
    "from_pixel_matrix",
    "from_pixel_points",
    "from_voxel_displacement",
    "output_corners",
    "output_region",
    "to_index_matrix",
    "to_pixel_extents",
    "to_pixel_matrix",
    "to_pixel_points",
    "to_voxel_displacement",
]


def _pixel_scale(size: Sequence[int], align_corners: bool, what: str, ndim: int = 2) -> tuple[list[float], list[float]]:
    """``(s, c)``, per coordinate ``(x, y[, z])``, with ``pixel = s * normalised + c`` for ``size``."""
    sides = check_size(size, what, ndim)
    if align_corners and min(sides) < 2:
        raise ValueError(f"{what} must be at least 2 pixels per side with align_corners=True, got {sides}")
    xyz = sides[::-1]
    scale = [(n - 1) / 2 if align_corners else n / 2 for n in xyz]
    return scale, [(n - 1) / 2 for n in xyz]


def _pixel_from_normalized(
    size: Sequence[int], align_corners: bool, like: Tensor, what: str, inverse: bool = False
) -> Tensor:
    """``(1, d+1, d+1)`` matrix from normalised to pixel coordinates (its inverse with ``inverse``),
    ``d`` from ``like``'s matrices."""
    d = like.shape[-1] - 1
    scale, centre = _pixel_scale(size, align_corners, what, d)
    m = torch.eye(d + 1, dtype=like.dtype, device=like.device)
    for i in range(d):
        m[i, i] = 1 / scale[i] if inverse else scale[i]
        m[i, d] = -centre[i] / scale[i] if inverse else centre[i]
    return m.unsqueeze(0)


def _unit_h33(matrix: Tensor) -> Tensor:
    h33 = matrix[:, -1:, -1:]
    return matrix / torch.where(h33 == 0, torch.ones_like(h33), h33)


def _reverse_axes(matrix: Tensor) -> Tensor:
    """``matrix`` with its first ``d`` coordinates taken in the opposite order: ``(x, y, z)`` <-> ``(i, j, k)``."""
    d = matrix.shape[-1] - 1
    order = [*range(d - 1, -1, -1), d]
    return matrix[:, order][:, :, order]


def to_pixel_matrix(
    matrix: Tensor, input_size: Sequence[int], output_size: Sequence[int], align_corners: bool = False
) -> Tensor:
    """The pixel matrix of a normalised one, for ``cv2.warpPerspective`` or kornia.

    Args:
        matrix: ``(N, 3, 3)`` normalised output -> input matrices (``family.matrix(params)``), or
            ``(N, 4, 4)`` ones of a volume family.
        input_size: ``(H, W)`` (volumes: ``(D, H, W)``) of the input read.
        output_size: ``(H, W)`` (volumes: ``(D, H, W)``) of the output made.
        align_corners: the convention ``matrix`` was made for (see the top of this module).

    Returns:
        ``(N, 3, 3)`` maps from input pixels to output pixels (source -> destination, scaled so
        that ``[2, 2]`` is 1), pixel centres at integer coordinates: warping with
        ``cv2.warpPerspective(img, P, (W_out, H_out))``, ``cv2.warpAffine(img, P[:2], ...)`` or
        ``kornia.geometry.transform.warp_perspective(x, P, (H_out, W_out))`` gives
        ``stn.warp(x, family, params, (H_out, W_out), align_corners=align_corners)``. For volumes
        ``(N, 4, 4)`` on voxel coordinates ``(x, y, z)``: ``kornia.geometry.transform.warp_affine3d(x,
        P[:, :3], (D_out, H_out, W_out))`` or ``warp_perspective3d`` with the same ``align_corners``.

    Examples:
        >>> zoom = stn.transforms.get("attention").matrix(torch.tensor([[0.5, 0.0, 0.0]]))  # the middle half
        >>> to_pixel_matrix(zoom, (40, 60), (40, 60))  # source -> destination: scale 2 about the centre
        tensor([[[  2.0000,   0.0000, -29.5000],
                 [  0.0000,   2.0000, -19.5000],
                 [  0.0000,   0.0000,   1.0000]]])
        >>> m = stn.transforms.get("translation3d").matrix(torch.tensor([[0.5, 0.0, 0.0]]))
        >>> to_pixel_matrix(m, (8, 8, 8), (8, 8, 8))[0, :3, 3]  # reads 2 voxels right: moves left
        tensor([-2., 0., 0.])
    """
    _check_matrix(matrix)
    to_out = _pixel_from_normalized(output_size, align_corners, matrix, "output_size")
    from_in = _pixel_from_normalized(input_size, align_corners, matrix, "input_size", inverse=True)
    return _unit_h33(to_out @ invert(matrix) @ from_in)


def from_pixel_matrix(
    pixel_matrix: Tensor, input_size: Sequence[int], output_size: Sequence[int], align_corners: bool = False
) -> Tensor:
    """The inverse of :func:`to_pixel_matrix`: normalised output -> input ``(N, 3, 3)`` (volumes:
    ``(N, 4, 4)``) matrices (last entry scaled to 1) from source -> destination pixel matrices (cv2,
    kornia). Feed them to :meth:`Projective.from_matrix` or, for affine ones,
    :meth:`Affine.from_matrix` (volumes: :meth:`Affine3d.from_matrix`).

    Args:
        pixel_matrix: ``(N, 3, 3)`` (volumes: ``(N, 4, 4)``) input pixel -> output pixel matrices.
        input_size: ``(H, W)`` (volumes: ``(D, H, W)``) of the input read.
        output_size: ``(H, W)`` (volumes: ``(D, H, W)``) of the output made.
        align_corners: the convention of the normalised matrices to make.

    Examples:
        >>> from stn.transforms import get
        >>> zoom = get("attention").matrix(torch.tensor([[0.5, 0.1, 0.0]]))
        >>> back = from_pixel_matrix(to_pixel_matrix(zoom, (40, 60), (20, 20)), (40, 60), (20, 20))
        >>> torch.allclose(back, zoom, atol=1e-6)
        True
    """
    _check_matrix(pixel_matrix)
    to_out = _pixel_from_normalized(output_size, align_corners, pixel_matrix, "output_size")
    from_in = _pixel_from_normalized(input_size, align_corners, pixel_matrix, "input_size", inverse=True)
    return _unit_h33(from_in @ invert(pixel_matrix) @ to_out)


def to_index_matrix(
    matrix: Tensor, input_size: Sequence[int], output_size: Sequence[int], align_corners: bool = False
) -> Tensor:
    """The index matrix of a normalised one: output array indices -> the input indices they read.

    Args:
        matrix: ``(N, 3, 3)`` or ``(N, 4, 4)`` normalised output -> input matrices.
        input_size: ``(H, W)`` or ``(D, H, W)`` of the input read.
        output_size: ``(H, W)`` or ``(D, H, W)`` of the output made.
        align_corners: the convention ``matrix`` was made for.

    Returns:
        ``(N, d+1, d+1)`` on ``(i, j[, k], 1)``, axes in array order (voxel centres at integers):
        ``scipy.ndimage.affine_transform(volume, Q[:3, :3], Q[:3, 3], order=1)`` and MONAI's
        ``AffineTransform(normalized=False, align_corners=...)(x, Q)`` give ``stn.warp``'s output;
        for two images in one world, ``inv(A_moving) @ A_fixed`` of their nibabel affines is the
        index matrix that resamples the moving one onto the fixed one's grid.

    Examples:
        >>> zoom = stn.transforms.get("attention").matrix(torch.tensor([[0.5, 0.0, 0.0]]))  # the middle half
        >>> to_pixel_matrix(zoom, (40, 60), (40, 60))  # source -> destination: scale 2 about the centre
        tensor([[[  2.0000,   0.0000, -29.5000],
                 [  0.0000,   2.0000, -19.5000],
                 [  0.0000,   0.0000,   1.0000]]])
        >>> m = stn.transforms.get("translation3d").matrix(torch.tensor([[0.0, 0.0, 0.5]]))
        >>> to_index_matrix(m, (8, 8, 8), (8, 8, 8))[0, :3, 3]  # z is the first index
        tensor([2., 0., 0.])
    """
    _check_matrix(matrix)
    from_out = _pixel_from_normalized(output_size, align_corners, matrix, "output_size", inverse=True)
    to_in = _pixel_from_normalized(input_size, align_corners, matrix, "input_size")
    return _unit_h33(_reverse_axes(to_in @ matrix @ from_out))


def from_index_matrix(
    index_matrix: Tensor, input_size: Sequence[int], output_size: Sequence[int], align_corners: bool = False
) -> Tensor:
    """The inverse of :func:`to_index_matrix`: normalised output -> input matrices from index
    matrices (scipy, MONAI, ``inv(A_moving) @ A_fixed`` of nibabel affines); ``(N, d+1, d+1)``,
    ready for :meth:`Affine3d.from_matrix` (images: :meth:`Affine.from_matrix`).

    Args:
        index_matrix: ``(N, 4, 4)`` on ``(i, j, k, 1)`` (images: ``(N, 3, 3)`` on ``(i, j, 1)``),
            output indices -> input indices, axes in array order.
        input_size: ``(D, H, W)`` (images: ``(H, W)``) of the input read.
        output_size: ``(D, H, W)`` (images: ``(H, W)``) of the output made.
        align_corners: the convention of the normalised matrices to make.

    Examples:
        >>> double_z = torch.tensor([[[2.0, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]])  # i -> 2 i + 1
        >>> m = from_index_matrix(double_z, (8, 8, 8), (8, 8, 8))
        >>> m[0, 2, 2]  # z, the first index, is stretched by 2
        tensor(2.)
        >>> torch.allclose(to_index_matrix(m, (8, 8, 8), (8, 8, 8)), double_z)
        True
    """
    _check_matrix(index_matrix)
    to_out = _pixel_from_normalized(output_size, align_corners, index_matrix, "output_size")
    from_in = _pixel_from_normalized(input_size, align_corners, index_matrix, "input_size", inverse=True)
    return _unit_h33(from_in @ _reverse_axes(index_matrix) @ to_out)


def to_pixel_points(points: Tensor, size: Sequence[int], align_corners: bool = False) -> Tensor:
    """Normalised ``(x, y)`` points ``(..., 2)`` -> pixel **points** of an ``(H, W)`` image: pixel
    centres at integers (cv2 and kornia's convention; the image covers ``[-0.5, W - 0.5]``); or
    ``(x, y, z)`` points ``(..., 3)`` -> voxel points of a ``(D, H, W)`` volume.

    Args:
        points: ``(..., 2)`` or ``(..., 3)`` normalised points.
        size: ``(H, W)`` (volumes: ``(D, H, W)``) of the image the pixels are of.
        align_corners: the convention of ``points``.

    Example:
        >>> to_pixel_points(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), (4, 8))
        tensor([[-0.5000, -0.5000],
                [ 7.5000,  3.5000]])
    """
    scale, centre = _pixel_scale(size, align_corners, "size", points.shape[-1])
    return points * points.new_tensor(scale) + points.new_tensor(centre)


def from_pixel_points(points: Tensor, size: Sequence[int], align_corners: bool = False) -> Tensor:
    """The inverse of :func:`to_pixel_points`: pixel points ``(x, y)`` ``(..., 2)`` (or voxel
    ``(x, y, z)`` ``(..., 3)``) -> normalised.

    Args:
        points: ``(..., 2)`` or ``(..., 3)`` pixel (voxel) points.
        size: ``(H, W)`` (volumes: ``(D, H, W)``) of the image the pixels are of.
        align_corners: the convention of the normalised points to make.

    Examples:
        >>> from_pixel_points(torch.tensor([[0.0, 0.0], [7.0, 3.0]]), (4, 8))  # the corner pixels' centres
        tensor([[-0.8750, -0.7500],
                [ 0.8750,  0.7500]])
    """
    scale, centre = _pixel_scale(size, align_corners, "size", points.shape[-1])
    return (points - points.new_tensor(centre)) / points.new_tensor(scale)


def to_pixel_extents(points: Tensor, size: Sequence[int], align_corners: bool = False) -> Tensor:
    """Normalised ``(x, y)`` points ``(..., 2)`` -> pixel **extents** of an ``(H, W)`` image: pixel
    ``(i, j)`` covers ``[j, j + 1] x [i, i + 1]``, the image spans ``[0, W] x [0, H]`` (boxes); voxels
    of a volume alike.

    Args:
        points: ``(..., 2)`` or ``(..., 3)`` normalised points.
        size: ``(H, W)`` (volumes: ``(D, H, W)``) of the image the pixels are of.
        align_corners: the convention of ``points``.

    Example:
        >>> to_pixel_extents(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), (4, 8))
        tensor([[0., 0.],
                [8., 4.]])
    """
    return to_pixel_points(points, size, align_corners) + 0.5


def from_pixel_extents(points: Tensor, size: Sequence[int], align_corners: bool = False) -> Tensor:
    """The inverse of :func:`to_pixel_extents`: pixel extents ``(..., 2)`` (or ``(..., 3)``) -> normalised.

    Args:
        points: ``(..., 2)`` or ``(..., 3)`` points in pixel extents.
        size: ``(H, W)`` (volumes: ``(D, H, W)``) of the image the pixels are of.
        align_corners: the convention of the normalised points to make.

    Examples:
        >>> from_pixel_extents(torch.tensor([[0.0, 0.0], [8.0, 4.0]]), (4, 8))  # the image's corners
        tensor([[-1., -1.],
                [ 1.,  1.]])
    """
    return from_pixel_points(points - 0.5, size, align_corners)


def to_voxel_displacement(field: Tensor, align_corners: bool = True) -> Tensor:
    """A displacement field in stn's layout -> in VoxelMorph's and MONAI's.

    Args:
        field: ``(N, D, H, W, 3)`` (or ``(N, H, W, 2)``) normalised displacements ``(dx, dy[, dz])``
            at the voxel centres (``grid - base_grid``, or ``field3d``'s nodes).
        align_corners: the convention of ``field``; VoxelMorph and MONAI's ``Warp`` and ``DVF2DDF``
            sample with ``align_corners=True``.

    Returns:
        ``(N, 3, D, H, W)`` (or ``(N, 2, H, W)``) displacements in voxels, channels in array order
        ``(di, dj[, dk])``: the flow VoxelMorph's ``SpatialTransformer`` and MONAI's ``Warp`` take.

    Example:
        >>> u = torch.zeros(1, 4, 4, 4, 3)
        >>> u[..., 0] = 2 / 3  # x: one voxel of a 4-voxel side with align_corners=True
        >>> to_voxel_displacement(u)[0, :, 0, 0, 0]
        tensor([0., 0., 1.])
    """
    _check_layout(field, channels_last=True)
    sizes = field.shape[1:-1]
    scale, _ = _pixel_scale(sizes, align_corners, "field", len(sizes))
    voxels = field * field.new_tensor(scale)
    return voxels.flip(-1).movedim(-1, 1)


def from_voxel_displacement(flow: Tensor, align_corners: bool = True) -> Tensor:
    """The inverse of :func:`to_voxel_displacement`: VoxelMorph's or MONAI's ``(N, 3, D, H, W)``
    voxel displacements (channels in array order) -> stn's ``(N, D, H, W, 3)`` normalised
    ``(dx, dy, dz)``; flatten it for ``field3d`` parameters (a grid the volume's size).

    Args:
        flow: ``(N, 3, D, H, W)`` (or ``(N, 2, H, W)``) displacements in voxels, channels
            ``(di, dj[, dk])``.
        align_corners: the convention of the field to make (VoxelMorph's and MONAI's: ``True``).

    Returns:
        ``(N, D, H, W, 3)`` (or ``(N, H, W, 2)``) normalised displacements.

    Examples:
        >>> flow = torch.zeros(1, 3, 4, 4, 4)
        >>> flow[:, 0] = 1.0  # one voxel along the first axis, z
        >>> u = from_voxel_displacement(flow)
        >>> u.shape, u[0, 0, 0, 0]  # 2 / 3 of a 4-voxel side with align_corners=True
        (torch.Size([1, 4, 4, 4, 3]), tensor([0.0000, 0.0000, 0.6667]))
        >>> torch.allclose(to_voxel_displacement(u), flow)
        True
    """
    _check_layout(flow, channels_last=False)
    sizes = flow.shape[2:]
    scale, _ = _pixel_scale(sizes, align_corners, "flow", len(sizes))
    return flow.movedim(1, -1).flip(-1) / flow.new_tensor(scale)


def _check_layout(field: Tensor, channels_last: bool) -> None:
    if not isinstance(field, Tensor) or field.dim() not in (4, 5) or not field.is_floating_point():
        shape = tuple(field.shape) if isinstance(field, Tensor) else type(field).__name__
        raise ValueError(f"expected a floating displacement field, 4-D or 5-D, got {shape}")
    channels = field.shape[-1] if channels_last else field.shape[1]
    if channels != field.dim() - 2:
        layout = "(N, D, H, W, 3) or (N, H, W, 2)" if channels_last else "(N, 3, D, H, W) or (N, 2, H, W)"
        raise ValueError(f"expected a displacement field {layout}, got {tuple(field.shape)}")


def output_corners(
    transform: str | Transform,
    params: Tensor,
    input_size: Sequence[int],
    output_size: Sequence[int],
    align_corners: bool = False,
) -> Tensor:
    """Where each output was read: ``(N, 4, 2)`` input pixels ``(x, y)`` read by the output's
    top-left, top-right, bottom-right and bottom-left pixels.

    Pixel centres are at integers (see :func:`to_pixel_points`), so for a matrix family
    ``cv2.getPerspectiveTransform(corners, [(0, 0), (W-1, 0), (W-1, H-1), (0, H-1)])`` is the
    :func:`to_pixel_matrix` of the warp, and the identity at equal sizes gives ``(0, 0)``,
    ``(W-1, 0)``, ``(W-1, H-1)``, ``(0, H-1)``. The quadrilateral the whole output covers reaches
    half an output pixel (as mapped) further out.

    Args:
        transform: a family name or :class:`Transform`.
        params: ``(N, num_params)`` parameters of the family.
        input_size: ``(H, W)`` of the image whose pixels the corners are given in: the input, or
            its full-resolution original (normalised coordinates do not depend on resolution).
        output_size: ``(H_out, W_out)`` of the warp's output.
        align_corners: the convention of the warp.

    Examples:
        >>> identity = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]])
        >>> output_corners("affine", identity, (4, 8), (4, 8))
        tensor([[[0., 0.],
                 [7., 0.],
                 [7., 3.],
                 [0., 3.]]])
    """
    family = get(transform)
    if family.ndim != 2:
        raise ValueError(f"output_corners is for image families; {family.name} works on volumes")
    params = family.check_params(params)
    h, w = check_size(output_size, "output_size")
    pixels = params.new_tensor([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    corners = from_pixel_points(pixels, (h, w), align_corners).expand(params.shape[0], 4, 2)
    return to_pixel_points(family.transform_points(params, corners), input_size, align_corners)


def output_region(
    transform: str | Transform, params: Tensor, input_size: Sequence[int], align_corners: bool = False
) -> Tensor:
    """Where each output reads its input: ``(N, 4, 2)`` corners ``(x, y)`` in pixel **extents** of an
    image of ``input_size`` (its top-left corner at ``(0, 0)``, bottom-right at ``(W, H)``):
    the family's :meth:`~stn.transforms.Transform.region`, top-left, top-right, bottom-right and
    bottom-left. With ``align_corners=False`` the output's corners ``±1`` are its outer edges, so
    the quadrilateral is the whole area the output shows (``stn predict --boxes`` reports it).

    Args:
        transform: a family name or :class:`Transform`.
        params: ``(N, num_params)`` parameters of the family.
        input_size: ``(H, W)`` of the image whose pixels the corners are given in.
        align_corners: the convention of the warp.

    Example:
        >>> from stn import transforms as T
        >>> zoom = torch.tensor([[0.5, 0.0, 0.0, 0.0, 0.5, 0.0]])  # the middle half of the image
        >>> output_region("affine", zoom, (40, 60))[0]
        tensor([[15., 10.],
                [45., 10.],
                [45., 30.],
                [15., 30.]])
    """
    family = get(transform)
    if family.ndim != 2:
        raise ValueError(f"output_region is for image families; {family.name} works on volumes")
    params = family.check_params(params)
    return to_pixel_extents(family.region(params), input_size, align_corners)
