"""Batched, per-sample augmentation of uint8 images on their own device."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["random_crop", "random_flip"]


def random_crop(images: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Zero-pad ``(N, C, H, W)`` by ``padding`` and crop each image back to ``(H, W)`` at its own
    random offset (as ``torchvision.transforms.RandomCrop(size, padding)``, per sample)."""
    if padding == 0:
        return images
    n, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, n, 1), generator=generator, device=generator.device)
    offsets = offsets.to(images.device)
    rows = (offsets[0] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = (offsets[1] + torch.arange(w, device=images.device))[:, None, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channel = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_flip(images: Tensor, generator: torch.Generator, p: float = 0.5) -> Tensor:
    """Mirror each image of ``(N, C, H, W)`` left-right with probability ``p``."""
    flip = torch.rand(images.shape[0], generator=generator, device=generator.device) < p
    return torch.where(flip.to(images.device)[:, None, None, None], images.flip(-1), images)
