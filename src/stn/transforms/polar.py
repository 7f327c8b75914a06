"""The log-polar family (polar transformer networks)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from stn.transforms.base import Transform


class Polar(Transform):
    """Log-polar resampling around a predicted origin (Esteves et al., 2018, polar transformer).

    The two parameters are the origin ``(x0, y0)``; zero puts it at the centre (this family has
    no identity map: :meth:`identity` gives the centred origin). Output columns are log-spaced
    radii from ``min_radius`` (left) to ``max_radius`` (right); output rows are angles
    ``θ = π (y + 1)``, a full turn from top to bottom. Output point ``(x, y)`` reads input
    ``origin + r(x) (cos θ, sin θ)``, in normalised units (an ellipse in pixels when the input is
    not square). So rotating the input about the origin by ``2π k / H`` rolls the output by
    ``k`` rows, and scaling it about the origin shifts the output along the columns. The
    output size is the sampler's (``output_size`` of the layer or of :func:`stn.warp`); the
    rows are exactly periodic with ``align_corners=False``.

    Args:
        max_radius: largest radius read, in normalised units (1: the half-width of the image).
        min_radius: smallest radius read; default ``max_radius / 32``.
    """

    name = "polar"
    num_params = 2

    def __init__(self, max_radius: float = 1.0, min_radius: float | None = None) -> None:
        if not max_radius > 0:
            raise ValueError(f"max_radius must be positive, got {max_radius}")
        if min_radius is not None and not 0 < min_radius < max_radius:
            raise ValueError(f"min_radius must be in (0, max_radius), got {min_radius}")
        self.max_radius = float(max_radius)
        self.min_radius = None if min_radius is None else float(min_radius)

    def _identity_row(self) -> list[float]:
        return [0.0, 0.0]

    def _points(self, params: Tensor, points: Tensor) -> Tensor:
        r_min = self.min_radius if self.min_radius is not None else self.max_radius / 32
        radius = r_min * torch.exp((points[..., 0:1] + 1) * (0.5 * math.log(self.max_radius / r_min)))
        angle = math.pi * (points[..., 1:2] + 1)
        return params[:, None, :] + radius * torch.cat((torch.cos(angle), torch.sin(angle)), dim=-1)

    @property
    def options(self) -> dict[str, object]:
        return {"max_radius": self.max_radius, "min_radius": self.min_radius}
