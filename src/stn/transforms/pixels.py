"""Pixel geometry: normalised coordinates as pixels, in two named conventions.

Convention
----------
* **Points** (pixel centres; OpenCV, kornia, keypoints): the centre of pixel (row ``i``, column
  ``j``) is at ``(x, y) = (j, i)``, so an ``(H, W)`` image covers ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``
  and the identity's corner pixels are ``(0, 0)`` and ``(W - 1, H - 1)``. Converters:
  :func:`to_pixel_points` / :func:`from_pixel_points`; :func:`output_corners` gives points.
* **Extents** (pixel edges; boxes, as torchvision's and PIL's): pixel ``(i, j)`` covers
  ``[j, j + 1] x [i, i + 1]``, so the image spans ``[0, W] x [0, H]``. The same place is half a
  pixel further on than in points. Converters: :func:`to_pixel_extents` /
  :func:`from_pixel_extents`; :func:`output_region` (where an output reads, as ``stn predict
  --boxes`` reports it) gives extents.

Pixel matrices (:func:`to_pixel_matrix`) use points, and map SOURCE (input) pixels to DESTINATION
(output) pixels: the forward map that ``cv2.warpAffine`` / ``cv2.warpPerspective`` and kornia's
``warp_affine`` / ``warp_perspective`` take; ours map output to input, normalised (see
:mod:`stn.transforms` for the normalised convention and ``align_corners``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from stn.transforms.base import Transform, _check_matrix, check_size, invert
from stn.transforms.registry import get

__all__ = [
    "from_pixel_extents",
    "from_pixel_matrix",
    "from_pixel_points",
    "output_corners",
    "output_region",
    "to_pixel_extents",
    "to_pixel_matrix",
    "to_pixel_points",
]


def _pixel_scale(size: Sequence[int], align_corners: bool, what: str) -> tuple[float, float, float, float]:
    """``(sx, sy, cx, cy)`` with ``pixel = s * normalised + c`` for an image of ``size``."""
    h, w = check_size(size, what)
    if align_corners and min(h, w) < 2:
        raise ValueError(f"{what} must be at least 2 pixels per side with align_corners=True, got {(h, w)}")
    sx, sy = ((w - 1) / 2, (h - 1) / 2) if align_corners else (w / 2, h / 2)
    return sx, sy, (w - 1) / 2, (h - 1) / 2


def _pixel_from_normalized(
    size: Sequence[int], align_corners: bool, like: Tensor, what: str, inverse: bool = False
) -> Tensor:
    """``(1, 3, 3)`` matrix from normalised to pixel coordinates (its inverse with ``inverse``)."""
    sx, sy, cx, cy = _pixel_scale(size, align_corners, what)
    rows = [[1 / sx, 0, -cx / sx], [0, 1 / sy, -cy / sy]] if inverse else [[sx, 0, cx], [0, sy, cy]]
    return torch.tensor([*rows, [0, 0, 1]], dtype=like.dtype, device=like.device).unsqueeze(0)


def _unit_h33(matrix: Tensor) -> Tensor:
    h33 = matrix[:, 2:, 2:]
    return matrix / torch.where(h33 == 0, torch.ones_like(h33), h33)


def to_pixel_matrix(
    matrix: Tensor, input_size: Sequence[int], output_size: Sequence[int], align_corners: bool = False
) -> Tensor:
    """The pixel matrix of a normalised one, for ``cv2.warpPerspective`` or kornia.

    Args:
        matrix: ``(N, 3, 3)`` normalised output -> input matrices (``family.matrix(params)``).
        input_size, output_size: ``(H, W)`` of the image read and of the image made.
        align_corners: the convention ``matrix`` was made for (see the top of this module).

    Returns:
        ``(N, 3, 3)`` maps from input pixels to output pixels (source -> destination, scaled so
        that ``[2, 2]`` is 1), pixel centres at integer coordinates: warping with
        ``cv2.warpPerspective(img, P, (W_out, H_out))``, ``cv2.warpAffine(img, P[:2], ...)`` or
        ``kornia.geometry.transform.warp_perspective(x, P, (H_out, W_out))`` gives
        ``stn.warp(x, family, params, (H_out, W_out), align_corners=align_corners)``.
    """
    _check_matrix(matrix)
    to_out = _pixel_from_normalized(output_size, align_corners, matrix, "output_size")
    from_in = _pixel_from_normalized(input_size, align_corners, matrix, "input_size", inverse=True)
    return _unit_h33(to_out @ invert(matrix) @ from_in)


def from_pixel_matrix(
    pixel_matrix: Tensor, input_size: Sequence[int], output_size: Sequence[int], align_corners: bool = False
) -> Tensor:
    """The inverse of :func:`to_pixel_matrix`: normalised output -> input ``(N, 3, 3)`` matrices
    (``[2, 2]`` scaled to 1) from source -> destination pixel matrices (cv2, kornia). Feed them to
    :meth:`Projective.from_matrix` or, for affine ones, :meth:`Affine.from_matrix`."""
    _check_matrix(pixel_matrix)
    to_out = _pixel_from_normalized(output_size, align_corners, pixel_matrix, "output_size")
    from_in = _pixel_from_normalized(input_size, align_corners, pixel_matrix, "input_size", inverse=True)
    return _unit_h33(from_in @ invert(pixel_matrix) @ to_out)


def to_pixel_points(points: Tensor, size: Sequence[int], align_corners: bool = False) -> Tensor:
    """Normalised ``(x, y)`` points ``(..., 2)`` -> pixel **points** of an ``(H, W)`` image: pixel
    centres at integers (cv2 and kornia's convention; the image covers ``[-0.5, W - 0.5]``).

    Example:
        >>> to_pixel_points(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), (4, 8))
        tensor([[-0.5000, -0.5000],
                [ 7.5000,  3.5000]])
    """
    sx, sy, cx, cy = _pixel_scale(size, align_corners, "size")
    return points * points.new_tensor([sx, sy]) + points.new_tensor([cx, cy])


def from_pixel_points(points: Tensor, size: Sequence[int], align_corners: bool = False) -> Tensor:
    """The inverse of :func:`to_pixel_points`: pixel points ``(x, y)`` ``(..., 2)`` -> normalised."""
    sx, sy, cx, cy = _pixel_scale(size, align_corners, "size")
    return (points - points.new_tensor([cx, cy])) / points.new_tensor([sx, sy])


def to_pixel_extents(points: Tensor, size: Sequence[int], align_corners: bool = False) -> Tensor:
    """Normalised ``(x, y)`` points ``(..., 2)`` -> pixel **extents** of an ``(H, W)`` image: pixel
    ``(i, j)`` covers ``[j, j + 1] x [i, i + 1]``, the image spans ``[0, W] x [0, H]`` (boxes).

    Example:
        >>> to_pixel_extents(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), (4, 8))
        tensor([[0., 0.],
                [8., 4.]])
    """
    return to_pixel_points(points, size, align_corners) + 0.5


def from_pixel_extents(points: Tensor, size: Sequence[int], align_corners: bool = False) -> Tensor:
    """The inverse of :func:`to_pixel_extents`: pixel extents ``(x, y)`` ``(..., 2)`` -> normalised."""
    return from_pixel_points(points - 0.5, size, align_corners)


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
        transform: a family name or :class:`Transform`; ``params`` ``(N, num_params)`` its parameters.
        input_size: ``(H, W)`` of the image whose pixels the corners are given in: the input, or
            its full-resolution original (normalised coordinates do not depend on resolution).
        output_size: ``(H_out, W_out)`` of the warp's output.
    """
    family = get(transform)
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
    params = family.check_params(params)
    return to_pixel_extents(family.region(params), input_size, align_corners)
