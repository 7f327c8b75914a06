"""The log-polar family (polar transformer networks)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from stn.transforms.base import INVERSE_TOL, Transform


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

    Examples:
        >>> import torch
        >>> polar = Polar()
        >>> centre = polar.identity(1)  # the origin at the centre
        >>> polar.transform_points(centre, torch.tensor([[[1.0, -1.0], [1.0, -0.5]]]))  # max_radius, angles 0 and π/2
        tensor([[[ 1.0000e+00,  0.0000e+00],
                 [-4.3711e-08,  1.0000e+00]]])
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

    def _r_min(self) -> float:
        return self.min_radius if self.min_radius is not None else self.max_radius / 32

    def _points(self, params: Tensor, points: Tensor) -> Tensor:
        r_min = self._r_min()
        radius = r_min * torch.exp((points[..., 0:1] + 1) * (0.5 * math.log(self.max_radius / r_min)))
        angle = math.pi * (points[..., 1:2] + 1)
        return params[:, None, :] + radius * torch.cat((torch.cos(angle), torch.sin(angle)), dim=-1)

    def region(self, params: Tensor) -> Tensor:
        """The box around the disk each output reads, ``(N, 4, 2)``: origin ``± max_radius`` along
        each axis, corners in :meth:`Transform.region`'s order (every output corner lies on one ray
        of the disk, so the corners themselves outline nothing).

        Examples:
            >>> import torch
            >>> Polar(max_radius=0.5).region(torch.tensor([[0.2, 0.0]]))
            tensor([[[-0.3000, -0.5000],
                     [ 0.7000, -0.5000],
                     [ 0.7000,  0.5000],
                     [-0.3000,  0.5000]]])
        """
        origin = self.check_params(params)
        corners = origin.new_tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
        return origin[:, None, :] + self.max_radius * corners

    def inverse_transform_points(
        self, params: Tensor, points: Tensor, tol: float = INVERSE_TOL, max_iter: int = 50
    ) -> Tensor:
        """Map normalised input locations ``(N, P, 2)`` to the output locations that read them, in
        closed form (``tol`` and ``max_iter`` are not used).

        A point at distance ``r`` and angle ``θ`` from the origin comes back as ``x = 2 log(r /
        min_radius) / log(max_radius / min_radius) - 1`` and ``y = θ / π - 1``, the angle taken
        in ``[0, 2π)``: so ``y`` lies in ``[-1, 1)`` (the angle wraps; rows are periodic, and
        :meth:`transform_points` of ``y`` and ``y ± 2`` agree). Points nearer the origin than
        ``min_radius`` or farther than ``max_radius`` get ``x < -1`` or ``x > 1``: the output
        location beyond its edge that would read them. The origin itself, read by no output
        location, comes back as NaN. Returns ``(N, P, 2)`` in the parameters' dtype; gradients
        reach ``params`` and ``points`` (except at the origin).

        Examples:
            >>> import torch
            >>> polar = Polar()
            >>> polar.inverse_transform_points(polar.identity(1), torch.tensor([[[0.0, 1.0], [0.0, 0.0]]]))
            tensor([[[ 1.0000, -0.5000],
                     [    nan,     nan]]])
        """
        params = self.check_params(params)
        points = self._check_points(params, points).to(params.dtype)
        offset = points - params[:, None, :]
        radius = offset.norm(dim=-1, keepdim=True)
        at_origin = radius == 0
        r_min = self._r_min()
        x = (
            2
            * torch.log(torch.where(at_origin, torch.ones_like(radius), radius) / r_min)
            / math.log(self.max_radius / r_min)
            - 1
        )
        angle = torch.atan2(offset[..., 1:2], offset[..., 0:1])
        angle = torch.where(angle < 0, angle + 2 * math.pi, angle)
        y = angle / math.pi - 1
        out = torch.cat((x, y), dim=-1)
        return torch.where(at_origin, torch.full_like(out, math.nan), out)

    @property
    def options(self) -> dict[str, object]:
        return {"max_radius": self.max_radius, "min_radius": self.min_radius}
