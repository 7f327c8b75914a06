"""Seeded geometric distortions of image batches: the paper's distorted MNIST (section 4.1, appendix A).

Every function takes images ``(N, C, H, W)``, uint8 (returned as uint8, rounded) or floating
(returned in the same dtype), and a CPU :class:`torch.Generator`. It draws each image's random
parameters from the generator, up front and in a fixed order, then warps with :func:`stn.warp`, so
a seed gives the same parameters on any machine and the same images wherever ``grid_sample``
rounds alike. Pixels read from outside an image are zero (black). (Clutter crops are whole-pixel
copies, so :func:`clutter` indexes instead of warping.)

The randomness of each function is set by its keyword arguments; at zero (no angle, unit scale,
no noise, no clutter, a canvas the size of the image) it returns its input unchanged.

What the paper states and what is our reading (``stn.data.distorted`` builds the data sets):

* **R** (:func:`rotate`): rotation by an angle uniform in ±90°, about the centre.
* **RTS** (:func:`rotate_scale_translate`): rotation ±45°, scale uniform in [0.7, 1.2], placed at a
  random location in a 42x42 canvas. *Ours*: the scaled digit's centre is drawn uniformly over the
  positions that keep its 28·s box inside the canvas.
* **P** (:func:`projective`): a random homography, the paper's "four corners moved by Gaussian
  noise, then rescaled". *Ours*: each corner moves by N(0, σ²) per axis with σ = 0.1 of the side,
  then the whole image is scaled by s uniform in [0.75, 1] about its centre.
* **E** (:func:`elastic`): a random thin-plate-spline warp. *Ours*: the 16 control points of a 4x4
  grid move by N(0, σ²) with σ = 0.05 of the side.
* **TC** (:func:`translate_clutter`): the digit at a random place in a 60x60 canvas, plus 6 random
  6x6 crops of other digits at random places (max-composited).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from stn import transforms as T
from stn.functional import warp

__all__ = [
    "clutter",
    "elastic",
    "homography",
    "projective",
    "rotate",
    "rotate_scale_translate",
    "translate",
    "translate_clutter",
]

CHUNK = 4096  # images warped at once: bounds the memory of the sampling grids


def rotate(images: Tensor, generator: torch.Generator, max_degrees: float = 90.0) -> Tensor:
    """Rotate each image about its centre by an angle uniform in ``±max_degrees``; same size out."""
    n = _check(images)
    angle = _uniform(n, -max_degrees, max_degrees, generator).deg2rad()
    return _warp_similarity(images, angle, torch.ones(n, dtype=torch.float64), torch.zeros(n, 2), images.shape[-2:])


def rotate_scale_translate(
    images: Tensor,
    generator: torch.Generator,
    max_degrees: float = 45.0,
    scale: tuple[float, float] = (0.7, 1.2),
    canvas: int | Sequence[int] = 42,
    shift: float = 1.0,
) -> Tensor:
    """Rotate by ``±max_degrees``, scale by ``U(scale)``, and place at a random location in a
    ``canvas`` (``(N, C, canvas, canvas)`` out).

    The image centre lands uniformly where the scaled image box stays inside the canvas, or with
    ``shift < 1`` in that fraction of the room about the canvas centre (``0``: at the centre).
    """
    n = _check(images)
    out_size = T.check_size(canvas, "canvas")
    angle = _uniform(n, -max_degrees, max_degrees, generator).deg2rad()
    s = _uniform(n, *scale, generator)
    # Half the room left around the scaled image box, along x then y.
    room = [(out - s * size).clamp_min(0) / 2 for out, size in zip(out_size[::-1], images.shape[:1:-1], strict=True)]
    offset = torch.stack([_uniform(n, -shift, shift, generator) * r for r in room], dim=1)
    return _warp_similarity(images, angle, s, offset, out_size)


def projective(
    images: Tensor,
    generator: torch.Generator,
    corner_std: float = 0.1,
    scale: tuple[float, float] = (0.75, 1.0),
) -> Tensor:
    """A random homography per image: its four corners move by Gaussian noise (``corner_std`` of
    the side, per axis), then the result is scaled by ``U(scale)`` about the centre. Same size out."""
    n = _check(images)
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
    # Normalised coordinates span 2 per side, so a fraction f of the side is 2f of them.
    noise = torch.randn(n, 4, 2, generator=generator, dtype=torch.float64) * (2 * corner_std)
    s = _uniform(n, *scale, generator)
    moved = (corners + noise) * s[:, None, None]
    # The warp reads output -> input: the map that sends each moved corner back to its corner.
    matrix = homography(moved, corners.expand(n, 4, 2))
    return _warp_chunks(images, T.Projective(), T.Projective.from_matrix(matrix), images.shape[-2:])


def elastic(images: Tensor, generator: torch.Generator, std: float = 0.05, grid_size: int = 4) -> Tensor:
    """A random thin-plate-spline warp: the ``grid_size x grid_size`` control points move by
    Gaussian noise of ``std`` of the side, per axis. Same size out."""
    n = _check(images)
    tps = T.ThinPlateSpline(grid_size)
    offsets = torch.randn(n, tps.num_params, generator=generator, dtype=torch.float64) * (2 * std)
    return _warp_chunks(images, tps, offsets, images.shape[-2:])


def translate(images: Tensor, generator: torch.Generator, canvas: int | Sequence[int] = 60) -> Tensor:
    """Place each image, unchanged (whole-pixel shifts), at a uniformly random position in a
    ``canvas`` at least as large as it; ``(N, C, canvas, canvas)`` out."""
    n = _check(images)
    out_size = T.check_size(canvas, "canvas")
    h, w = images.shape[-2:]
    if out_size[0] < h or out_size[1] < w:
        raise ValueError(f"canvas {out_size} is smaller than the images ({h}, {w})")
    top = torch.randint(0, out_size[0] - h + 1, (n,), generator=generator)
    left = torch.randint(0, out_size[1] - w + 1, (n,), generator=generator)
    return _warp_shift(images, top, left, out_size)


def clutter(
    images: Tensor,
    generator: torch.Generator,
    sources: Tensor | None = None,
    pieces: int = 6,
    piece_size: int = 6,
) -> Tensor:
    """Add ``pieces`` random ``piece_size`` square crops of ``sources`` at random places of each
    image (the brighter pixel wins). Same size out.

    Args:
        sources: ``(M, C, h, w)`` images to crop from (default: ``images`` itself). When it has
            as many images as ``images``, image ``i`` never gets a crop of source ``i``.
    """
    n = _check(images)
    sources = images if sources is None else sources
    m = _check(sources)
    h, w = images.shape[-2:]
    if pieces == 0:
        return images.clone()
    if piece_size > min(h, w, *sources.shape[-2:]):
        raise ValueError(f"piece_size {piece_size} exceeds the images {tuple(images.shape[-2:])} or sources")
    if m == n and n > 1:  # any source but the image's own
        pick = (torch.arange(n)[:, None] + torch.randint(1, n, (n, pieces), generator=generator)) % n
    else:
        pick = torch.randint(0, m, (n, pieces), generator=generator)
    crop_at = [torch.randint(0, size - piece_size + 1, (n, pieces), generator=generator) for size in sources.shape[-2:]]
    put_at = [torch.randint(0, size - piece_size + 1, (n, pieces), generator=generator) for size in (h, w)]
    out = images.clone()
    for k in range(pieces):
        crops = _window(sources[pick[:, k]], crop_at[0][:, k], crop_at[1][:, k], piece_size)
        window = _window_index(out, put_at[0][:, k], put_at[1][:, k], piece_size)
        out[window] = torch.maximum(out[window], crops)
    return out


def translate_clutter(
    images: Tensor,
    generator: torch.Generator,
    canvas: int | Sequence[int] = 60,
    pieces: int = 6,
    piece_size: int = 6,
) -> Tensor:
    """The paper's TC: :func:`translate` into ``canvas``, then :func:`clutter` with ``pieces``
    crops of the *other* input images."""
    return clutter(translate(images, generator, canvas), generator, images, pieces, piece_size)


def homography(src: Tensor, dst: Tensor) -> Tensor:
    """The ``(N, 3, 3)`` matrices (``h33 = 1``) sending 4 points ``src`` ``(N, 4, 2)`` to ``dst``."""
    x, y = src.unbind(-1)
    u, v = dst.unbind(-1)
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_u = torch.stack((x, y, one, zero, zero, zero, -u * x, -u * y), dim=-1)
    rows_v = torch.stack((zero, zero, zero, x, y, one, -v * x, -v * y), dim=-1)
    system = torch.cat((rows_u, rows_v), dim=1)
    h = torch.linalg.solve(system, torch.cat((u, v), dim=1))
    return torch.cat((h, torch.ones_like(h[:, :1])), dim=1).view(-1, 3, 3)


# ------------------------------------------------------------------------------------ helpers
def _check(images: Tensor) -> int:
    if not isinstance(images, Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"expected images of shape (N, C, H, W), got {shape}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"expected uint8 or floating images, got {images.dtype}")
    return images.shape[0]


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    """``n`` float64 draws uniform in ``[low, high]``."""
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def _window_index(images: Tensor, top: Tensor, left: Tensor, size: int) -> tuple[Tensor, ...]:
    """Advanced index of the ``size`` square window at ``(top, left)`` of each image: ``(N, C, size, size)``."""
    n, c = images.shape[:2]
    span = torch.arange(size, device=images.device)
    rows = (top.to(images.device)[:, None] + span)[:, None, :, None]
    cols = (left.to(images.device)[:, None] + span)[:, None, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channel = torch.arange(c, device=images.device)[None, :, None, None]
    return batch, channel, rows, cols


def _window(images: Tensor, top: Tensor, left: Tensor, size: int) -> Tensor:
    """The ``size`` square window at ``(top, left)`` of each image."""
    return images[_window_index(images, top, left, size)]


def _warp_similarity(images: Tensor, angle: Tensor, scale: Tensor, shift: Tensor, out_size: Sequence[int]) -> Tensor:
    """Rotate by ``angle`` (radians), scale by ``scale`` and move the centre by ``shift`` pixels
    ``(x, y)``: forward map ``Q = s R P + shift`` in pixels from the centres, inverted for the warp."""
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    inverse = torch.zeros(len(angle), 3, 3, dtype=torch.float64)
    inverse[:, 0, 0], inverse[:, 0, 1], inverse[:, 1, 0], inverse[:, 1, 1] = cos, sin, -sin, cos
    inverse[:, :2, 2] = -(inverse[:, :2, :2] @ shift.to(torch.float64)[:, :, None])[:, :, 0]
    inverse[:, 2, 2] = 1.0
    return _warp_pixels(images, inverse, out_size)


def _warp_shift(images: Tensor, top: Tensor, left: Tensor, out_size: Sequence[int]) -> Tensor:
    """Output pixel ``(r, c)`` reads input pixel ``(r - top, c - left)``: exact, whole-pixel moves."""
    h, w = images.shape[-2:]
    # Between the centres: (out - 1)/2 - (in - 1)/2 - shift.
    dx = (w - out_size[1]) / 2 + left.to(torch.float64)
    dy = (h - out_size[0]) / 2 + top.to(torch.float64)
    matrix = torch.eye(3, dtype=torch.float64).repeat(len(top), 1, 1)
    matrix[:, 0, 2], matrix[:, 1, 2] = -dx, -dy
    return _warp_pixels(images, matrix, out_size)


def _warp_pixels(images: Tensor, matrix: Tensor, out_size: Sequence[int]) -> Tensor:
    """Warp by ``(N, 3, 3)`` affine output -> input maps written in pixels from the image centres."""
    h, w = images.shape[-2:]
    out_h, out_w = out_size
    to_pixels = torch.diag(torch.tensor([out_w / 2, out_h / 2, 1.0], dtype=torch.float64))
    from_pixels = torch.diag(torch.tensor([2 / w, 2 / h, 1.0], dtype=torch.float64))
    normalized = from_pixels @ matrix @ to_pixels
    return _warp_chunks(images, T.Affine(), T.Affine.from_matrix(normalized), out_size)


def _warp_chunks(images: Tensor, transform: T.Transform, params: Tensor, out_size: Sequence[int]) -> Tensor:
    """:func:`stn.warp` in float32 over chunks of :data:`CHUNK` images; uint8 in -> rounded uint8 out."""
    out_size = (int(out_size[0]), int(out_size[1]))
    dtype = images.dtype if images.is_floating_point() else torch.float32
    out = torch.empty((images.shape[0], images.shape[1], *out_size), dtype=images.dtype, device=images.device)
    for start in range(0, images.shape[0], CHUNK):
        x = images[start : start + CHUNK].to(dtype)
        theta = params[start : start + CHUNK].to(device=images.device, dtype=dtype)
        y = warp(x, transform, theta, out_size)
        out[start : start + CHUNK] = y if images.is_floating_point() else y.round_().clamp_(0, 255).to(torch.uint8)
    return out
