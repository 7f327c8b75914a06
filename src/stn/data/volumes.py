"""Volumetric distorted MNIST, made here from MNIST: ``mnist3d-rts``.

Each digit is extruded into a volume (the 28x28 image as a slab ``thickness`` voxels deep in a
28-voxel cube), then rotated, scaled and translated in 3-D and sampled (trilinearly) into a
``canvas``-voxel cube: the paper's RTS one dimension up.

* Rotation: about an axis uniform on the sphere, by an angle uniform in ``±45°``.
* Scale: ``s`` uniform in ``[0.7, 1.2]``; at ``s = 1`` the 28-voxel cube spans two thirds of the
  canvas (28 of 42, as the paper's RTS canvas).
* Translation: the cube's centre uniform, per axis, where the scaled cube stays inside the canvas.

Volumes are ``(N, 1, canvas, canvas, canvas)`` uint8, labels the digits. Train and test are drawn
from their own generators (seeds ``2 seed`` and ``2 seed + 1``), so a seed gives the same data set.
Options (``stn.data.load("mnist3d-rts", root, seed=0, train_size=10000, test_size=2000, canvas=24,
thickness=6)``): the first ``train_size`` / ``test_size`` MNIST images are used (volumes are
``canvas³`` bytes each: 13.8 kB at 24).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from stn import transforms as T
from stn.data.dataset import Dataset
from stn.data.registry import Builder, build, builder, register
from stn.functional import warp

__all__ = ["VERSION", "extrude", "rotate_scale_translate_3d"]

VERSION = 1  # bump whenever the volumes below change
CHUNK = 256  # digits extruded and warped at once


def extrude(images: Tensor, thickness: int = 6) -> Tensor:
    """Images ``(N, C, H, W)`` as slabs ``thickness`` voxels deep in the middle of a cube of depth
    ``max(H, W)``: ``(N, C, D, H, W)`` in the images' dtype (float for uint8 input).

    Example:
        >>> extrude(torch.ones(2, 1, 28, 28), thickness=6).shape
        torch.Size([2, 1, 28, 28, 28])
    """
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError(f"expected images (N, C, H, W), got {getattr(images, 'shape', type(images).__name__)}")
    depth = max(images.shape[-2:])
    if not isinstance(thickness, int) or not 0 < thickness <= depth:
        raise ValueError(f"thickness must be an int in [1, {depth}], got {thickness!r}")
    slab = torch.zeros(depth, dtype=torch.float32, device=images.device)
    start = (depth - thickness) // 2
    slab[start : start + thickness] = 1
    x = images if images.is_floating_point() else images.float()
    return x.unsqueeze(2) * slab.view(1, 1, depth, 1, 1).to(x.dtype)


def rotate_scale_translate_3d(
    images: Tensor,
    generator: torch.Generator,
    canvas: int = 24,
    thickness: int = 6,
    max_degrees: float = 45.0,
    scale: tuple[float, float] = (0.7, 1.2),
) -> Tensor:
    """Extrude each image (:func:`extrude`) and rotate, scale and place it in a ``canvas`` cube as
    the module notes say; uint8 ``(N, C, H, W)`` in, uint8 ``(N, C, canvas, canvas, canvas)`` out.

    Every parameter is drawn up front, in a fixed order, from the CPU ``generator``.
    """
    if not isinstance(images, Tensor) or images.dim() != 4 or images.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images (N, C, H, W), got {getattr(images, 'shape', type(images).__name__)}")
    if not isinstance(canvas, int) or canvas < 2:
        raise ValueError(f"canvas must be an int >= 2, got {canvas!r}")
    n = images.shape[0]
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=generator, dtype=torch.float64), dim=1)
    angle = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * math.radians(max_degrees)
    s = scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=generator, dtype=torch.float64)
    room = (1 - s * 2 / 3).clamp_min(0)  # normalised half-room left around the scaled cube
    shift = (torch.rand(n, 3, generator=generator, dtype=torch.float64) * 2 - 1) * room[:, None]
    # The cube's point q lands at c = (2/3) s R q + t; the warp reads q = R^T (c - t) * 3 / (2 s).
    linear = T.rotation_matrix(axis * angle[:, None]).mT * (1.5 / s).view(-1, 1, 1)
    offset = -(linear @ shift.unsqueeze(-1)).squeeze(-1)
    theta = torch.cat((linear, offset.unsqueeze(-1)), dim=-1).reshape(n, 12).float()
    out = torch.empty(n, images.shape[1], canvas, canvas, canvas, dtype=torch.uint8)
    for start in range(0, n, CHUNK):
        part = slice(start, start + CHUNK)
        volumes = warp(extrude(images[part], thickness), "affine3d", theta[part], (canvas,) * 3)
        out[part] = volumes.round().clamp(0, 255).to(torch.uint8)
    return out


def _check_options(seed: object, train_size: object, test_size: object, canvas: object, thickness: object) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    for what, value, low in (("train_size", train_size, 1), ("test_size", test_size, 1), ("canvas", canvas, 8)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{what} must be an int >= {low}, got {value!r}")
    if not isinstance(thickness, int) or isinstance(thickness, bool) or not 1 <= thickness <= 28:
        raise ValueError(f"thickness must be an int in [1, 28], got {thickness!r}")


@register("mnist3d-rts", "MNIST digits extruded to volumes, rotated ±45° in 3-D, scaled 0.7-1.2, placed in a 24³ cube")
def mnist3d_rts(
    root: Path, seed: int = 0, train_size: int = 10000, test_size: int = 2000, canvas: int = 24, thickness: int = 6
) -> Builder:
    _check_options(seed, train_size, test_size, canvas, thickness)
    mnist = builder("mnist", root)
    key = f"mnist3d-rts-v{VERSION}-s{seed}-n{train_size}-{test_size}-c{canvas}-t{thickness}-{mnist.key}"

    def make() -> Dataset:
        data = build(mnist)
        train = data.train_images[:train_size]
        test = data.test_images[:test_size]
        return Dataset(
            "mnist3d-rts",
            rotate_scale_translate_3d(train, torch.Generator().manual_seed(2 * seed), canvas, thickness),
            data.train_labels[:train_size].clone(),
            rotate_scale_translate_3d(test, torch.Generator().manual_seed(2 * seed + 1), canvas, thickness),
            data.test_labels[:test_size].clone(),
            list(data.classes),
            source=f"{data.source} (extruded to volumes, distorted in 3-D, seed {seed})",
        )

    return Builder(key, make)
