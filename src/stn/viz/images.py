"""Pictures as tensors and Pillow images: (de)normalisation, image grids, titles and layout.

Images are uint8 ``(N, C, H, W)`` tensors with ``C`` 1 (grayscale) or 3 (RGB), the way the data
sets hold them; pictures are RGB :class:`PIL.Image.Image` objects.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torchvision.transforms.functional import to_pil_image
from torchvision.utils import make_grid

from stn.files import write_atomic
from stn.normalization import Normalizer

__all__ = [
    "BACKGROUND",
    "GAP",
    "cell_scale",
    "denormalize",
    "font",
    "grid_columns",
    "hstack",
    "image_grid",
    "normalize",
    "save",
    "titled",
    "vstack",
]

BACKGROUND = (255, 255, 255)
TEXT = (32, 32, 32)
GAP = 12  # pixels between panels


def normalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 ``(N, C, H, W)`` -> float32 ``(x / 255 - mean) / std``, as training feeds the model.

    Args:
        images: uint8 images.
        mean: per-channel means on ``[0, 1]``.
        std: per-channel standard deviations on ``[0, 1]``.

    Examples:
        >>> normalize(torch.full((1, 1, 2, 2), 255, dtype=torch.uint8), [0.5], [0.5])[0, 0, 0].round(decimals=4)
        tensor([1., 1.])
    """
    return Normalizer(mean, std)(images)


def denormalize(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Normalised float ``(N, C, H, W)`` -> uint8 on the CPU, rounded and clamped to ``[0, 255]``:
    the inverse of :func:`normalize` with the data set's own statistics.

    Args:
        x: normalised images.
        mean: per-channel means on ``[0, 1]``.
        std: per-channel standard deviations on ``[0, 1]``.

    Examples:
        >>> denormalize(torch.tensor([[[[-1.0, 0.2, 3.0]]]]), [0.5], [0.5])  # 0.2 is 0.6 of 255
        tensor([[[[  0, 153, 255]]]], dtype=torch.uint8)
    """
    return Normalizer(mean, std).invert(x)


def grid_columns(count: int) -> int:
    """Columns of a near-square grid of ``count`` images."""
    return max(1, math.ceil(math.sqrt(count)))


def cell_scale(size: Sequence[int], target: int = 96) -> int:
    """Integer upscaling that brings an ``(H, W)`` image near ``target`` pixels (at least 1)."""
    return max(1, round(target / max(size)))


def image_grid(images: Tensor, nrow: int | None = None, scale: int = 1, padding: int = 2) -> Image.Image:
    """uint8 ``(N, C, H, W)`` images as one RGB picture: ``nrow`` per row (default near-square),
    each pixel a ``scale`` x ``scale`` block, white between images.

    Args:
        images: uint8 images, 1 or 3 channels.
        nrow: images per row (default: a near-square grid).
        scale: pixel upscaling.
        padding: white pixels between images.

    Examples:
        >>> picture = image_grid(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), scale=2)
        >>> picture.size, picture.mode
        ((38, 38), 'RGB')
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected uint8 images (N, 1 or 3, H, W), got {images.dtype} {tuple(images.shape)}")
    if scale > 1:
        images = images.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    nrow = nrow or grid_columns(len(images))
    return to_pil_image(make_grid(images.cpu(), nrow=nrow, padding=padding, pad_value=255))


@lru_cache(maxsize=4)
def font(size: int = 14) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's built-in font at ``size`` pixels."""
    return ImageFont.load_default(size=size)


def titled(picture: Image.Image, title: str, size: int = 14) -> Image.Image:
    """``picture`` with ``title`` centred in a strip above it."""
    face = font(size)
    left, top, right, _ = face.getbbox(title)
    width = max(picture.width, right - left + 8)
    out = Image.new("RGB", (width, picture.height + size + 10), BACKGROUND)
    ImageDraw.Draw(out).text(((width - (right - left)) // 2 - left, 4 - top), title, fill=TEXT, font=face)
    out.paste(picture, ((width - picture.width) // 2, size + 10))
    return out


def hstack(pictures: Sequence[Image.Image], gap: int = GAP) -> Image.Image:
    """Pictures side by side, top-aligned, ``gap`` pixels apart."""
    width = sum(p.width for p in pictures) + gap * (len(pictures) - 1)
    out = Image.new("RGB", (width, max(p.height for p in pictures)), BACKGROUND)
    x = 0
    for p in pictures:
        out.paste(p, (x, 0))
        x += p.width + gap
    return out


def vstack(pictures: Sequence[Image.Image], gap: int = GAP) -> Image.Image:
    """Pictures one above the other, left-aligned, ``gap`` pixels apart."""
    height = sum(p.height for p in pictures) + gap * (len(pictures) - 1)
    out = Image.new("RGB", (max(p.width for p in pictures), height), BACKGROUND)
    y = 0
    for p in pictures:
        out.paste(p, (0, y))
        y += p.height + gap
    return out


def save(picture: Image.Image, path: str | os.PathLike, **options: object) -> None:
    """Write ``picture`` atomically, in the format its suffix names (``.png``, ``.gif``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".").upper()
    write_atomic(path, lambda f: picture.save(f, format=fmt, **options))
