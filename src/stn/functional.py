"""Differentiable image sampling: :func:`warp` over :func:`torch.nn.functional.grid_sample`.

Coordinates follow the convention stated in :mod:`stn.transforms`: normalised ``[-1, 1]``,
parameters map output locations to the input locations they read, ``align_corners=False``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from stn import transforms as T
from stn.sampling import prefer_separable, warp_separable

__all__ = ["normalized_fill", "warp"]

MODES = ("bilinear", "nearest", "bicubic")
PADDING_MODES = ("zeros", "border", "reflection")

Fill = float | Sequence[float] | Tensor | None


def warp(
    x: Tensor,
    transform: str | T.Transform,
    params: Tensor,
    output_size: Sequence[int] | None = None,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    fill: Fill = None,
    align_corners: bool = False,
    check_finite: bool = True,
) -> Tensor:
    """Warp images or feature maps by the transform ``T_θ``: output pixel ``p`` reads ``x`` at
    ``T_θ(p)``.

    Args:
        x: ``(N, C, H, W)`` floating images or feature maps, any ``C``.
        transform: a family name (see :func:`stn.transforms.names`) or a :class:`~stn.transforms.Transform`.
        params: ``(N, num_params)`` parameters of ``transform``.
        output_size: ``(H_out, W_out)``; defaults to the input's ``(H, W)``.
        mode: ``"bilinear"``, ``"nearest"`` or ``"bicubic"``.
        padding_mode: what is read outside the input: ``"zeros"``, ``"border"`` or ``"reflection"``.
        fill: value read outside the input with ``padding_mode="zeros"``: a number or one per
            channel. For normalised inputs zero is the *mean* colour, not black; use
            :func:`normalized_fill` to get the normalised value of a raw colour.
        align_corners: as in ``grid_sample``; see :mod:`stn.transforms`.
        check_finite: raise ``ValueError`` if ``params`` holds NaN or Inf (costs a device sync;
            training loops on accelerators may switch it off). Skipped while ``torch.compile`` or
            ``torch.export`` traces the call: a data-dependent branch cannot be traced.

    Returns:
        ``(N, C, H_out, W_out)``, differentiable in ``x`` and ``params``.
    """
    family = T.get(transform)
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"warp expects input of shape (N, C, H, W), got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"warp expects a floating-point input, got {x.dtype}")
    params = family.check_params(params)
    if params.shape[0] != x.shape[0]:
        raise ValueError(f"parameter batch {params.shape[0]} does not match input batch {x.shape[0]}")
    if check_finite and not torch.compiler.is_compiling() and not bool(torch.isfinite(params).all()):
        raise ValueError(f"{family.name} parameters contain NaN or Inf")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"unknown padding_mode {padding_mode!r}; choose one of: {', '.join(PADDING_MODES)}")
    size = T.check_size(output_size if output_size is not None else x.shape[-2:], "output size")

    if fill is not None and padding_mode != "zeros":
        raise ValueError(f"fill only applies with padding_mode='zeros', not {padding_mode!r}")

    def sample(v: Tensor) -> Tensor:
        if prefer_separable(v, family, mode):  # axis-aligned bilinear as two matrix products (stn.sampling)
            return warp_separable(v, family, params, size, padding_mode, align_corners)
        with torch.autocast(x.device.type, enabled=False):  # else affine_grid runs in bf16 (0.1 px off at 32 px)
            grid = family.grid(params.to(x.dtype), size, align_corners=align_corners)
        return F.grid_sample(v, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)

    if fill is None:
        return sample(x)
    value = _fill_tensor(fill, x)
    # Zero padding of (x - fill) is fill padding of x: every sampling kernel's weights sum to one.
    return sample(x - value) + value


def _fill_tensor(fill: Fill, x: Tensor) -> Tensor:
    value = torch.as_tensor(fill, dtype=x.dtype, device=x.device)
    if value.dim() == 0:
        value = value.expand(x.shape[1])
    if value.dim() != 1 or value.shape[0] != x.shape[1]:
        raise ValueError(f"fill must be a number or one value per channel ({x.shape[1]}), got {tuple(value.shape)}")
    return value.view(1, -1, 1, 1)


def normalized_fill(mean: Sequence[float], std: Sequence[float], value: float | Sequence[float] = 0.0) -> list[float]:
    """The normalised value, per channel, of the raw colour ``value`` (default black, ``0``).

    Pass it as ``fill`` so that pixels read outside a normalised image are black rather than the
    mean colour: ``warp(x, "affine", θ, fill=normalized_fill(mean, std))``.
    """
    if len(mean) != len(std):
        raise ValueError(f"mean and std must have the same length, got {len(mean)} and {len(std)}")
    values = [float(value)] * len(mean) if isinstance(value, int | float) else [float(v) for v in value]
    if len(values) != len(mean):
        raise ValueError(f"value must be a number or one per channel ({len(mean)}), got {len(values)}")
    return [(v - m) / s for v, m, s in zip(values, mean, std, strict=True)]
