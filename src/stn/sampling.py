"""Separable bilinear sampling for axis-aligned maps: crop-and-resize as two batched matrix products.

A map whose matrix is ``[[s_x, 0, t_x], [0, s_y, t_y]]`` (the ``translation`` and ``attention``
families) reads output column ``j`` from one input column coordinate and output row ``i`` from
one input row coordinate. Bilinear sampling then factorises: with ``A_y`` the ``(H_out, H_in)``
matrix of row weights and ``A_x`` the ``(W_out, W_in)`` matrix of column weights (two non-zero
entries per row), ``out[n, c] = A_y[n] @ x[n, c] @ A_x[n]^T``.

This is the function ``F.grid_sample(x, F.affine_grid(θ, ...), mode="bilinear")`` computes, for
every ``padding_mode`` and ``align_corners``: the same source coordinates (un-normalised, then
clipped or reflected as ``grid_sample`` does), the same corner weights. What differs is only how:
matrix products, whose backward is deterministic on every device (``grid_sample``'s CUDA backward
accumulates with atomics), and which export to ONNX as ``MatMul`` with no ``GridSample``.

Conventions as in :mod:`stn.transforms`: normalised ``[-1, 1]`` coordinates, ``(x, y)`` order,
parameters map output locations to the input locations they read.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from stn import transforms as T

__all__ = ["axis_weights", "prefer_separable", "sample_axis_aligned", "separable", "source_index", "warp_separable"]

PADDING_MODES = ("zeros", "border", "reflection")  # grid_sample's, which both samplers take
SEPARABLE_FAMILIES = (T.Translation, T.Attention)


def separable(transform: T.Transform, mode: str = "bilinear") -> bool:
    """Whether :func:`warp_separable` computes ``warp(..., transform, mode=mode)``: bilinear
    sampling by a family whose maps are always axis-aligned (``translation``, ``attention``).

    Args:
        transform: the family.
        mode: the sampling mode.

    Examples:
        >>> separable(T.get("attention")), separable(T.get("attention"), "nearest"), separable(T.get("affine"))
        (True, False, False)
    """
    return mode == "bilinear" and isinstance(transform, SEPARABLE_FAMILIES)


def prefer_separable(x: Tensor, transform: T.Transform, mode: str = "bilinear") -> bool:
    """Whether :func:`stn.warp` samples ``x`` with :func:`warp_separable`: where it applies
    (:func:`separable`) and either the input is on an accelerator (its backward is deterministic
    there, ``grid_sample``'s is not), a graph is being exported (no ``GridSample`` in it), or
    deterministic algorithms are asked for. On the CPU ``grid_sample`` is vectorised, deterministic
    and measured faster (``benchmarks/warp_throughput.py``), so it stays.

    Args:
        x: the input to warp.
        transform: the family.
        mode: the sampling mode.

    Examples:
        >>> x = torch.zeros(1, 1, 8, 8)
        >>> prefer_separable(x, T.get("attention")), prefer_separable(x.to("meta"), T.get("attention"))
        (False, True)
    """
    if not separable(transform, mode):
        return False
    return x.device.type != "cpu" or torch.compiler.is_exporting() or torch.are_deterministic_algorithms_enabled()


def source_index(coords: Tensor, size: int, padding_mode: str = "zeros", align_corners: bool = False) -> Tensor:
    """Normalised coordinates along an axis of ``size`` pixels -> the pixel coordinates bilinear
    ``grid_sample`` reads: un-normalised, then clipped to ``[0, size - 1]`` (``border``) or
    reflected at the image's edges and clipped (``reflection``); unchanged for ``zeros``.

    Args:
        coords: normalised coordinates, any shape.
        size: pixels along the axis.
        padding_mode: ``zeros``, ``border`` or ``reflection``.
        align_corners: the convention of ``coords``.

    Examples:
        >>> coords = torch.tensor([-1.0, 0.0, 1.2])
        >>> source_index(coords, 4), source_index(coords, 4, "border")
        (tensor([-0.5000,  1.5000,  3.9000]), tensor([0.0000, 1.5000, 3.0000]))
    """
    index = (coords + 1) / 2 * (size - 1) if align_corners else ((coords + 1) * size - 1) / 2
    if padding_mode == "border":
        return index.clamp(0, size - 1)
    if padding_mode == "reflection":
        low, high = (0.0, 2.0 * (size - 1)) if align_corners else (-1.0, 2.0 * size - 1)
        index = _reflect(index, low, high)
        return index.clamp(0, size - 1)
    return index


def _reflect(index: Tensor, twice_low: float, twice_high: float) -> Tensor:
    """Reflect coordinates into ``[twice_low / 2, twice_high / 2]`` as ``grid_sample`` does."""
    if twice_low == twice_high:
        return torch.zeros_like(index)
    low, span = twice_low / 2, (twice_high - twice_low) / 2
    index = (index - low).abs()
    extra = torch.fmod(index, span)
    flips = torch.floor(index / span)
    return torch.where(torch.fmod(flips, 2) == 0, extra + low, span - extra + low)


def axis_weights(coords: Tensor, size: int, padding_mode: str = "zeros", align_corners: bool = False) -> Tensor:
    """Bilinear weights along one axis.

    Args:
        coords: ``(N, n_out)`` normalised input coordinates read by each output position.
        size: input pixels along the axis.
        padding_mode: ``zeros``, ``border`` or ``reflection`` (see :func:`source_index`).
        align_corners: the convention of ``coords``.

    Returns:
        ``(N, n_out, size)``: row ``j`` holds ``1 - f`` at ``floor(p)`` and ``f`` at
        ``floor(p) + 1`` for the pixel coordinate ``p = floor(p) + f`` of ``coords[:, j]``; taps
        outside the image are left out (zero padding reads zero there).

    Examples:
        >>> axis_weights(torch.tensor([[0.0]]), 4)  # the middle of 4 pixels: half of pixel 1, half of 2
        tensor([[[0.0000, 0.5000, 0.5000, 0.0000]]])
    """
    index = source_index(coords, size, padding_mode, align_corners)
    left = index.floor()
    frac = (index - left).unsqueeze(-1)
    taps = torch.arange(size, device=coords.device, dtype=coords.dtype)
    left = left.unsqueeze(-1)
    return (taps == left).to(coords.dtype) * (1 - frac) + (taps == left + 1).to(coords.dtype) * frac


def _axis(n: int, align_corners: bool, like: Tensor) -> Tensor:
    """Normalised centres of ``n`` output pixels (as :func:`stn.transforms.base_grid`)."""
    line = torch.linspace(-1.0, 1.0, n, device=like.device, dtype=like.dtype)
    return line if align_corners else line * ((n - 1) / n)


def sample_axis_aligned(
    x: Tensor,
    scale: Tensor,
    offset: Tensor,
    output_size: Sequence[int] | None = None,
    padding_mode: str = "zeros",
    align_corners: bool = False,
) -> Tensor:
    """Bilinear sampling of ``x`` by the axis-aligned maps ``(u, v) -> (s_x u + t_x, s_y v + t_y)``.

    Args:
        x: ``(N, C, H, W)`` floating images or feature maps.
        scale: ``(N, 2)`` ``(s_x, s_y)``, in normalised units.
        offset: ``(N, 2)`` ``(t_x, t_y)``, in normalised units.
        output_size: ``(H_out, W_out)``; defaults to ``(H, W)``.
        padding_mode: as in ``grid_sample``.
        align_corners: as in ``grid_sample``.

    Returns:
        ``(N, C, H_out, W_out)`` in ``x``'s dtype (computed in it, also under autocast, as
        ``grid_sample`` is) and memory format (channels_last in, channels_last out).

    Examples:
        >>> import torch.nn.functional as F
        >>> x = torch.rand(2, 3, 16, 20, dtype=torch.float64)
        >>> scale = torch.tensor([[0.5, 0.7]] * 2, dtype=torch.float64)
        >>> offset = torch.zeros(2, 2, dtype=torch.float64)
        >>> theta = torch.tensor([[[0.5, 0.0, 0.0], [0.0, 0.7, 0.0]]] * 2, dtype=torch.float64)
        >>> grid = F.affine_grid(theta, [2, 3, 8, 8], align_corners=False)
        >>> torch.allclose(sample_axis_aligned(x, scale, offset, (8, 8)), F.grid_sample(x, grid, align_corners=False))
        True
    """
    if not isinstance(x, Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"expected floating images (N, C, H, W), got {getattr(x, 'shape', type(x).__name__)}")
    n, c, h_in, w_in = x.shape
    for name, value in (("scale", scale), ("offset", offset)):
        if not isinstance(value, Tensor) or tuple(value.shape) != (n, 2):
            raise ValueError(f"{name} must have shape ({n}, 2), got {getattr(value, 'shape', type(value).__name__)}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"unknown padding_mode {padding_mode!r}; choose one of: {', '.join(PADDING_MODES)}")
    h, w = T.check_size(output_size if output_size is not None else (h_in, w_in), "output size")
    with torch.autocast(x.device.type, enabled=False):
        scale, offset = scale.to(x.dtype), offset.to(x.dtype)
        cols = axis_weights(
            scale[:, :1] * _axis(w, align_corners, x) + offset[:, :1], w_in, padding_mode, align_corners
        )  # (N, W_out, W_in)
        rows = axis_weights(
            scale[:, 1:] * _axis(h, align_corners, x) + offset[:, 1:], h_in, padding_mode, align_corners
        )  # (N, H_out, H_in)
        if c > 1 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            # (N, H, W, C) in memory: rows first on (N, H_in, W_in * C), then columns, no copies of x.
            nhwc = x.permute(0, 2, 3, 1)
            out = torch.bmm(rows, nhwc.reshape(n, h_in, w_in * c)).view(n, h, w_in, c)
            out = torch.matmul(cols.unsqueeze(1), out)  # (N, H_out, W_out, C)
            return out.permute(0, 3, 1, 2)
        out = torch.bmm(x.reshape(n, c * h_in, w_in), cols.transpose(1, 2)).view(n, c, h_in, w)
        return torch.matmul(rows.unsqueeze(1), out)  # (N, C, H_out, W_out)


def warp_separable(
    x: Tensor,
    transform: T.Transform,
    params: Tensor,
    output_size: Sequence[int],
    padding_mode: str = "zeros",
    align_corners: bool = False,
) -> Tensor:
    """``warp(x, transform, params, output_size, "bilinear", padding_mode, align_corners=...)``
    for a :func:`separable` ``transform``, by :func:`sample_axis_aligned` (no grid is built).

    Args:
        x: ``(N, C, H, W)`` input.
        transform: ``translation`` or ``attention`` (a family instance).
        params: ``(N, num_params)`` parameters.
        output_size: ``(H_out, W_out)``.
        padding_mode: ``zeros``, ``border`` or ``reflection``.
        align_corners: the sampling convention.

    Examples:
        >>> import stn
        >>> x = torch.rand(1, 1, 12, 12, dtype=torch.float64)
        >>> params = torch.tensor([[0.6, 0.1, -0.2]], dtype=torch.float64)
        >>> ours = warp_separable(x, T.get("attention"), params, (6, 6))
        >>> torch.allclose(ours, stn.warp(x, "attention", params, (6, 6)))
        True
    """
    if not separable(transform):
        raise ValueError(f"{transform.name} maps are not axis-aligned; use warp")
    matrix = transform.matrix(params.to(x.dtype))
    scale = torch.stack((matrix[:, 0, 0], matrix[:, 1, 1]), dim=1)
    return sample_axis_aligned(x, scale, matrix[:, :2, 2], output_size, padding_mode, align_corners)
