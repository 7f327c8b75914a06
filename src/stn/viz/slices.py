"""Volumes as pictures: their middle slices.

A volume ``(C, D, H, W)`` is drawn as its three middle slices side by side: across ``D`` (an
``H x W`` slice, the axial one for a scan stored that way), across ``H`` (``D x W``) and across
``W`` (``D x H``), each at the volume's middle index ``n // 2``. The pictures of volume runs
(``stn visualize``, ``stn report``) and of registration runs use them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SEPARATOR", "SLICES_TITLE", "middle_slice", "middle_slices"]

SEPARATOR = 128  # the grey between the slices of one volume
SLICES_TITLE = "middle slices across D, H, W"  # what middle_slices shows, for titles and captions


def middle_slice(x: Tensor, axis: int) -> Tensor:
    """The middle slice of ``x`` along ``axis`` (index ``n // 2`` of its ``n``; negative axes count
    from the end), one dimension fewer.

    Args:
        x: any tensor, e.g. a volume ``(D, H, W)`` or volumes ``(N, C, D, H, W)``.
        axis: the dimension to cut across.

    Examples:
        >>> volume = torch.arange(24).view(2, 3, 4)  # (D, H, W)
        >>> middle_slice(volume, 0).shape, middle_slice(volume, -1).shape
        (torch.Size([3, 4]), torch.Size([2, 3]))
    """
    return x.select(axis, x.shape[axis] // 2)


def middle_slices(volumes: Tensor, gap: int = 1) -> Tensor:
    """uint8 volumes ``(N, C, D, H, W)`` as uint8 pictures ``(N, C, max(D, H), 2 W + H + 2 gap)``:
    each volume's middle slice across ``D`` (``H x W``), across ``H`` (``D x W``) and across ``W``
    (``D x H``), left to right, top-aligned, :data:`SEPARATOR` grey between and below the shorter
    ones.

    Args:
        volumes: uint8 ``(N, C, D, H, W)``, 1 or 3 channels.
        gap: pixels of grey between two slices.

    Examples:
        >>> volumes = torch.zeros(2, 1, 4, 6, 8, dtype=torch.uint8)
        >>> volumes[:, :, 2, 3, 4] = 255  # the middle voxel: it shows in all three slices
        >>> pictures = middle_slices(volumes)
        >>> tuple(pictures.shape)  # height max(D, H) = 6, width 8 + 8 + 6 + 2 gaps of 1
        (2, 1, 6, 24)
        >>> (pictures[0, 0] == 255).nonzero().tolist()  # (row, column) in each slice
        [[2, 13], [2, 21], [3, 4]]
    """
    if volumes.dtype != torch.uint8 or volumes.dim() != 5:
        raise ValueError(f"expected uint8 volumes (N, C, D, H, W), got {volumes.dtype} {tuple(volumes.shape)}")
    slices = [middle_slice(volumes, axis) for axis in (2, 3, 4)]  # (N, C, H, W), (N, C, D, W), (N, C, D, H)
    height = max(s.shape[-2] for s in slices)
    parts: list[Tensor] = []
    for i, s in enumerate(slices):
        if i:
            parts.append(torch.full((*s.shape[:2], height, gap), SEPARATOR, dtype=torch.uint8, device=s.device))
        parts.append(F.pad(s, (0, 0, 0, height - s.shape[-2]), value=SEPARATOR))
    return torch.cat(parts, dim=-1)
