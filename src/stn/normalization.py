"""Per-channel normalisation of uint8 images, the one place it is written.

Models see ``(x / 255 - mean) / std`` of uint8 images ``x``, with ``mean`` and ``std`` the data
set's channel statistics on ``[0, 1]``; pictures come back by the inverse.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["Normalizer"]


class Normalizer:
    """``(x / 255 - mean) / std`` for uint8 ``(N, C, H, W)`` images (or ``(N, C, D, H, W)``
    volumes), and its inverse.

    The forward map is one multiply-add (``torch.addcmul``) with per-channel coefficients kept
    on each device it is used on.

    Args:
        mean: per-channel means on ``[0, 1]``.
        std: per-channel standard deviations on ``[0, 1]``, positive.

    Examples:
        >>> normalizer = Normalizer([0.5], [0.25])
        >>> images = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 1, 1, 3)
        >>> normalizer(images)
        tensor([[[[-2.0000,  0.0078,  2.0000]]]])
        >>> torch.equal(normalizer.invert(normalizer(images)), images)
        True
        >>> normalizer.fill()  # black, normalised
        [-2.0]
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std) or not len(mean):
            raise ValueError(f"need one mean and one std per channel, got {len(mean)} and {len(std)}")
        if any(not s > 0 for s in std):
            raise ValueError(f"std must be positive, got {list(std)}")
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self._coefficients: dict[torch.device, tuple[Tensor, Tensor]] = {}

    @property
    def channels(self) -> int:
        return len(self.mean)

    def coefficients(self, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """``(scale, shift)``, each ``(1, C, 1, 1)`` float32 on ``device``: normalised = x * scale + shift."""
        device = torch.device(device)
        if device not in self._coefficients:
            mean = torch.tensor(self.mean, device=device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, device=device).view(1, -1, 1, 1)
            self._coefficients[device] = 1.0 / (255.0 * std), -mean / std
        return self._coefficients[device]

    def _check(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(scale, shift)`` shaped for ``x``, after checking it."""
        if x.dim() not in (4, 5) or x.shape[1] != self.channels:
            raise ValueError(
                f"images (N, C, H, W) need one mean and std per channel: got shape {tuple(x.shape)} "
                f"for {self.channels} channel statistics"
            )
        scale, shift = self.coefficients(x.device)
        if x.dim() == 5:
            scale, shift = scale.unsqueeze(-1), shift.unsqueeze(-1)
        return scale, shift

    def __call__(self, images: Tensor) -> Tensor:
        """uint8 ``(N, C, H, W)`` -> normalised float32 on the same device."""
        scale, shift = self._check(images)
        return torch.addcmul(shift, images.float(), scale)

    def invert(self, x: Tensor) -> Tensor:
        """Normalised float ``(N, C, H, W)`` -> uint8 on the CPU, rounded and clamped to ``[0, 255]``."""
        scale, shift = self._check(x)
        return ((x.float() - shift) / scale).round().clamp(0, 255).to(torch.uint8).cpu().contiguous()

    def fill(self, value: float = 0.0) -> list[float]:
        """The normalised value, per channel, of the raw colour ``value`` on ``[0, 1]`` (default black)."""
        return [(value - m) / s for m, s in zip(self.mean, self.std, strict=True)]
