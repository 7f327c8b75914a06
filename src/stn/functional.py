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
from stn.sampling import PADDING_MODES, prefer_separable, warp_separable

__all__ = ["check_sampling", "normalized_fill", "warp"]

MODES = ("bilinear", "nearest", "bicubic")

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
    """Warp images, volumes or feature maps by the transform ``T_θ``: output pixel (voxel) ``p``
    reads ``x`` at ``T_θ(p)``.

    Args:
        x: ``(N, C, H, W)`` floating images or feature maps, any ``C``; for a volume family
            (``affine3d``, ``field3d``, ...) ``(N, C, D, H, W)`` volumes.
        transform: a family name (see :func:`stn.transforms.names`) or a :class:`~stn.transforms.Transform`.
        params: ``(N, num_params)`` parameters of ``transform``.
        output_size: ``(H_out, W_out)`` (volumes: ``(D_out, H_out, W_out)``); defaults to the
            input's size.
        mode: ``"bilinear"`` (trilinear for volumes), ``"nearest"`` or ``"bicubic"`` (images only).
        padding_mode: what is read outside the input: ``"zeros"``, ``"border"`` or ``"reflection"``.
        fill: value read outside the input with ``padding_mode="zeros"``: a number or one per
            channel. For normalised inputs zero is the *mean* colour, not black; use
            :func:`normalized_fill` to get the normalised value of a raw colour.
        align_corners: as in ``grid_sample``; see :mod:`stn.transforms`.
        check_finite: raise ``ValueError`` if ``params`` holds NaN or Inf (costs a device sync;
            training loops on accelerators may switch it off). Skipped while ``torch.compile``,
            ``torch.export`` or ``torch.jit.trace`` trace the call (a data-dependent branch cannot be
            traced) and on the ``meta`` device.

    Returns:
        ``(N, C, H_out, W_out)`` (volumes: ``(N, C, D_out, H_out, W_out)``) in ``x``'s dtype,
        differentiable in ``x`` and ``params``.

    The grid is built, and the image sampled, in at least float32: float16 and bfloat16 inputs are
    sampled in float32 and the result cast back (half-precision grids are off by up to 1/8 pixel
    at 64 pixels, and ``grid_sample`` in float16 gives NaNs at 224 pixels); autocast does the same.

    Examples:
        >>> x = torch.arange(16.0).view(1, 1, 4, 4)
        >>> warp(x, "affine", torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]])).equal(x)  # the identity
        True
        >>> shift = torch.tensor([[0.5, 0.0]])  # output x reads input x + 0.5: one pixel of 4 to the right
        >>> warp(x, "translation", shift)[0, 0, 0]
        tensor([1., 2., 3., 0.])
        >>> warp(torch.rand(2, 3, 64, 96), "attention", torch.tensor([[0.5, 0.0, 0.0]] * 2), (32, 32)).shape
        torch.Size([2, 3, 32, 32])
        >>> volume = torch.rand(2, 1, 16, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> torch.allclose(warp(volume, "rigid3d", T.get("rigid3d").identity(2)), volume, atol=1e-5)
        True
    """
    family = T.get(transform)
    params = _check_inputs(x, family, params, check_finite)
    check_sampling(mode, padding_mode, fill)
    if mode == "bicubic" and family.ndim == 3:
        raise ValueError("bicubic sampling is for images; volumes take 'bilinear' (trilinear) or 'nearest'")
    size = T.check_size(output_size if output_size is not None else x.shape[2:], "output size", family.ndim)

    dtype = torch.promote_types(x.dtype, torch.float32)
    image, params = x.to(dtype), params.to(dtype)
    # Zero padding of (x - fill) is fill padding of x: every sampling kernel's weights sum to one.
    value = None if fill is None else _fill_tensor(fill, image)
    if value is not None:
        image = image - value
    if prefer_separable(image, family, mode):  # axis-aligned bilinear as two matrix products (stn.sampling)
        out = warp_separable(image, family, params, size, padding_mode, align_corners)
    else:
        grid = family.grid(params, size, align_corners=align_corners)
        out = F.grid_sample(image, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    if value is not None:
        out = out + value
    return out.to(x.dtype)


def _check_inputs(x: Tensor, family: T.Transform, params: Tensor, check_finite: bool) -> Tensor:
    """``params`` checked against the family and the input ``x``; ``ValueError`` naming the problem."""
    if not isinstance(x, Tensor) or x.dim() != family.ndim + 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        expected = "(N, C, H, W)" if family.ndim == 2 else f"(N, C, D, H, W) for the volume family {family.name}"
        raise ValueError(f"warp expects input of shape {expected}, got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"warp expects a floating-point input, got {x.dtype}")
    params = family.check_params(params)
    if params.shape[0] != x.shape[0]:
        raise ValueError(f"parameter batch {params.shape[0]} does not match input batch {x.shape[0]}")
    if x.shape[0] == 0:
        raise ValueError("warp got an empty batch (N = 0)")
    if params.device != x.device:
        raise ValueError(f"parameters are on {params.device} but the input is on {x.device}")
    if check_finite and T.can_check_values(params) and not bool(torch.isfinite(params).all()):
        raise ValueError(f"{family.name} parameters contain NaN or Inf")
    return params


def check_sampling(mode: str, padding_mode: str, fill: Fill) -> None:
    """Raise ``ValueError`` unless ``mode``, ``padding_mode`` and ``fill`` are valid for :func:`warp`
    (the channel count of ``fill`` is checked against the input there).

    Args:
        mode: the sampling mode.
        padding_mode: what is read outside the input.
        fill: the value outside (with ``padding_mode="zeros"``): a number, one per channel, or ``None``.

    Examples:
        >>> check_sampling("bilinear", "zeros", [0.0, 0.0, 0.0])
        >>> check_sampling("bilinear", "border", 0.0)
        Traceback (most recent call last):
        ...
        ValueError: fill only applies with padding_mode='zeros', not 'border'
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"unknown padding_mode {padding_mode!r}; choose one of: {', '.join(PADDING_MODES)}")
    if fill is None:
        return
    if padding_mode != "zeros":
        raise ValueError(f"fill only applies with padding_mode='zeros', not {padding_mode!r}")
    if isinstance(fill, str):
        raise ValueError(
            f"fill must be a number or one number per channel, got {fill!r}; for black outside a normalised "
            "image pass fill=stn.normalized_fill(mean, std)"
        )
    if not isinstance(fill, Tensor):
        try:
            fill = torch.as_tensor(fill, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"fill must be a number or one number per channel, got {fill!r}") from None
    if fill.dim() > 1:
        raise ValueError(f"fill must be a number or one number per channel, got shape {tuple(fill.shape)}")


def _fill_tensor(fill: Fill, x: Tensor) -> Tensor:
    value = torch.as_tensor(fill, dtype=x.dtype, device=x.device)
    if value.dim() == 0:
        value = value.expand(x.shape[1])
    if value.dim() != 1 or value.shape[0] != x.shape[1]:
        raise ValueError(f"fill must be a number or one value per channel ({x.shape[1]}), got {tuple(value.shape)}")
    return value.view(1, -1, *([1] * (x.dim() - 2)))


def normalized_fill(mean: Sequence[float], std: Sequence[float], value: float | Sequence[float] = 0.0) -> list[float]:
    """The normalised value, per channel, of the raw colour ``value`` (default black, ``0``).

    Pass it as ``fill`` so that pixels read outside a normalised image are black rather than the
    mean colour: ``warp(x, "affine", θ, fill=normalized_fill(mean, std))``.

    Args:
        mean: per-channel mean the images were normalised with (on ``[0, 1]``).
        std: per-channel standard deviation they were normalised with.
        value: the raw colour on ``[0, 1]``: a number, or one per channel.

    Returns:
        One normalised value per channel, ``(value - mean) / std``.

    Examples:
        >>> normalized_fill([0.5, 0.5], [0.25, 0.5])
        [-2.0, -1.0]
        >>> normalized_fill([0.5], [0.25], value=1.0)  # white
        [2.0]
    """
    if len(mean) != len(std):
        raise ValueError(f"mean and std must have the same length, got {len(mean)} and {len(std)}")
    values = [float(value)] * len(mean) if isinstance(value, int | float) else [float(v) for v in value]
    if len(values) != len(mean):
        raise ValueError(f"value must be a number or one per channel ({len(mean)}), got {len(values)}")
    return [(v - m) / s for v, m, s in zip(values, mean, std, strict=True)]
