"""Losses and metrics of unsupervised registration, for images ``(N, C, H, W)`` and volumes
``(N, C, D, H, W)``; displacement fields in stn's layout ``(N, H, W, 2)`` / ``(N, D, H, W, 3)``
(normalised units, see :func:`stn.transforms.compose_fields`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from stn.transforms import jacobian_determinant

__all__ = ["dice_loss", "dice_score", "folding", "local_ncc", "mse", "one_hot", "smoothness"]


def _box_mean(x: Tensor, window: int) -> Tensor:
    """Mean over a ``window``-wide box about each pixel, the box cut at the border; ``(N, C, *S)``.

    Separable running sums (a cumulative sum per axis, then differences): linear in the size and
    cheap to differentiate, unlike a pooling layer's backward."""
    half = window // 2
    total, count = x, torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
    for axis in range(2, x.dim()):
        total, count = _box_sum(total, axis, half), _box_sum(count, axis, half)
    return total / count


def _box_sum(x: Tensor, axis: int, half: int) -> Tensor:
    """Sum over ``[i - half, i + half]`` along ``axis`` (zeros beyond the border)."""
    pad = [0, 0] * (x.dim() - 1 - axis) + [half + 1, half]
    running = F.pad(x, pad).cumsum(axis)
    n = x.shape[axis]
    return running.narrow(axis, 2 * half + 1, n) - running.narrow(axis, 0, n)


def local_ncc(a: Tensor, b: Tensor, window: int = 9, eps: float = 1e-5) -> Tensor:
    """``1 - mean(cc)``, with ``cc`` the squared normalised cross-correlation of ``a`` and ``b`` in a
    ``window``-wide box about each pixel (VoxelMorph's NCC): 0 where one is an affine function of the
    other, up to 1. Inputs ``(N, C, *S)``; returns a scalar.

    Args:
        a: images ``(N, C, H, W)`` or volumes ``(N, C, D, H, W)``.
        b: the same shape.
        window: the box's side, odd.
        eps: keeps the ratio finite where a box is flat.

    Example:
        >>> x = torch.rand(2, 1, 16, 16, 16)
        >>> float(local_ncc(x, 3 * x + 1)) < 1e-3
        True
    """
    _check_pair(a, b)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd int, got {window!r}")
    c = a.shape[1]
    means = _box_mean(torch.cat((a, b, a * b, a * a, b * b), dim=1), window)
    mean_a, mean_b, mean_ab, mean_aa, mean_bb = means.split(c, dim=1)
    cross = mean_ab - mean_a * mean_b
    var_a = (mean_aa - mean_a**2).clamp_min(0)
    var_b = (mean_bb - mean_b**2).clamp_min(0)
    return 1 - (cross * cross / (var_a * var_b + eps)).mean()


def mse(a: Tensor, b: Tensor) -> Tensor:
    """Mean squared difference of ``(N, C, *S)`` tensors.

    Args:
        a: images ``(N, C, H, W)`` or volumes ``(N, C, D, H, W)``.
        b: the same shape.

    Examples:
        >>> mse(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2))
        tensor(1.)
    """
    _check_pair(a, b)
    return F.mse_loss(a, b)


def one_hot(labels: Tensor, num_labels: int) -> Tensor:
    """Label maps ``(N, 1, *S)`` (integers ``0 .. num_labels - 1``) -> ``(N, num_labels, *S)`` floats.

    Args:
        labels: integer label maps.
        num_labels: the labels, the background 0 included.
    """
    return F.one_hot(labels[:, 0].long(), num_labels).movedim(-1, 1).float()


def dice_loss(a: Tensor, b: Tensor, eps: float = 1e-5) -> Tensor:
    """``1 -`` the soft Dice of two ``(N, K, *S)`` label probability maps, averaged over the labels
    but the first (the background).

    Args:
        a: ``(N, K, *S)`` probabilities of the ``K`` labels (e.g. :func:`one_hot` maps, warped).
        b: the same shape.
        eps: keeps the ratio finite for a label in neither map.

    Returns:
        A scalar: 0 for equal maps, up to 1.

    Examples:
        >>> labels = torch.tensor([0, 1, 1, 2]).view(1, 1, 2, 2)
        >>> a = one_hot(labels, 3)
        >>> dice_loss(a, a), round(float(dice_loss(a, one_hot(torch.zeros_like(labels), 3))), 3)
        (tensor(0.), 1.0)
    """
    _check_pair(a, b)
    dims = tuple(range(2, a.dim()))
    overlap = 2 * (a * b).sum(dims) + eps
    return 1 - (overlap / (a.sum(dims) + b.sum(dims) + eps))[:, 1:].mean()


@torch.no_grad()
def dice_score(a: Tensor, b: Tensor, num_labels: int) -> Tensor:
    """Dice ``2 |A ∩ B| / (|A| + |B|)`` of each foreground label ``1 .. num_labels - 1`` of two label
    maps ``(N, 1, *S)``; ``(N, num_labels - 1)``, NaN where a label is in neither map.

    Args:
        a: integer label maps ``(N, 1, H, W)`` or ``(N, 1, D, H, W)``.
        b: the same shape.
        num_labels: the labels, the background 0 included.

    Examples:
        >>> a = torch.tensor([0, 1, 1, 2]).view(1, 1, 2, 2)
        >>> b = torch.tensor([0, 1, 2, 2]).view(1, 1, 2, 2)
        >>> dice_score(a, b, 3)  # each label: one pixel shared, three in all
        tensor([[0.6667, 0.6667]])
    """
    _check_pair(a, b)
    scores = []
    for label in range(1, num_labels):
        in_a, in_b = a == label, b == label
        both = (in_a & in_b).flatten(1).sum(1).float()
        total = (in_a.flatten(1).sum(1) + in_b.flatten(1).sum(1)).float()
        scores.append(torch.where(total > 0, 2 * both / total.clamp_min(1), torch.full_like(total, float("nan"))))
    return torch.stack(scores, dim=1)


def smoothness(field: Tensor, align_corners: bool = True) -> Tensor:
    """Mean squared forward difference of a displacement field along each grid axis, in voxels
    (VoxelMorph's ``Grad('l2')``, so weights carry over): a scalar.

    Args:
        field: ``(N, H, W, 2)`` or ``(N, D, H, W, 3)`` normalised displacements.
        align_corners: the convention of the field's positions (sets the size of a voxel).

    Examples:
        >>> from stn.transforms import base_grid
        >>> stretch = torch.zeros(1, 5, 5, 2)
        >>> stretch[..., 0] = 0.1 * base_grid(5, align_corners=True)[..., 0]  # 0.1 voxel more per voxel along x
        >>> smoothness(torch.full((1, 5, 5, 2), 0.3)), round(float(smoothness(stretch)), 6)  # a shift is smooth
        (tensor(0.), 0.0025)
    """
    sizes = field.shape[1:-1]
    scale = field.new_tensor([(n - 1) / 2 if align_corners else n / 2 for n in reversed(sizes)])
    voxels = field * scale
    terms = [voxels.diff(dim=axis + 1).square().mean() for axis in range(len(sizes))]
    return torch.stack(terms).mean()


@torch.no_grad()
def folding(field: Tensor, align_corners: bool = True) -> Tensor:
    """Percentage of the pixels (voxels) where the map folds, ``det J <= 0``
    (:func:`stn.transforms.jacobian_determinant`); ``(N,)``.

    Args:
        field: ``(N, H, W, 2)`` or ``(N, D, H, W, 3)`` normalised displacements.
        align_corners: the convention of the field's positions.

    Examples:
        >>> from stn.transforms import base_grid
        >>> mirror = torch.zeros(1, 8, 8, 2)
        >>> mirror[..., 0] = -2 * base_grid(8, align_corners=True)[..., 0]  # x -> -x: folded everywhere
        >>> folding(torch.zeros(1, 8, 8, 2)), folding(mirror)
        (tensor([0.]), tensor([100.]))
    """
    det = jacobian_determinant(field, align_corners)
    return 100 * (det <= 0).flatten(1).float().mean(1)


def _check_pair(a: Tensor, b: Tensor) -> None:
    if not isinstance(a, Tensor) or not isinstance(b, Tensor) or a.shape != b.shape or a.dim() not in (4, 5):
        shapes = [tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__ for t in (a, b)]
        raise ValueError(
            f"expected two tensors of one shape (N, C, H, W) or (N, C, D, H, W), got {shapes[0]} and {shapes[1]}"
        )
