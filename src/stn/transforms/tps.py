"""The thin-plate spline family."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import Tensor

from stn.transforms.base import Size2, Transform, _positive_bound, autocast_off, base_grid, check_size


class ThinPlateSpline(Transform):
    """Thin-plate spline through ``K`` control points on a regular grid over ``[-1, 1]²``.

    Parameters are the control points' offsets ``(dx, dy)``, ``(N, 2K)``, points in row-major order
    (``y`` outer, ``x`` inner): the spline sends control point ``c_k`` of the output to
    ``c_k + d_k`` in the input, and interpolates with minimal bending everywhere else. Zero
    offsets are the identity.

    Args:
        grid_size: control points per side, ``g`` or ``(rows, cols)``; default 4 (16 points, as in
            the paper).
        max_offset: if given, ``d = max_offset * tanh(θ)`` keeps offsets bounded.

    Examples:
        >>> import torch
        >>> tps = ThinPlateSpline(grid_size=3)
        >>> params = torch.zeros(1, tps.num_params)
        >>> params[0, 8:10] = torch.tensor([0.2, -0.1])  # the middle control point (4 of 9) reads (0.2, -0.1)
        >>> tps.transform_points(params, torch.tensor([[[0.0, 0.0]]]))
        tensor([[[ 0.2000, -0.1000]]])
    """

    name = "tps"

    def __init__(self, grid_size: int | tuple[int, int] = 4, max_offset: float | None = None) -> None:
        rows, cols = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
        if rows < 2 or cols < 2:
            raise ValueError(f"tps needs at least 2x2 control points, got {rows}x{cols}")
        self.grid_size = (rows, cols)
        self.max_offset = _positive_bound(max_offset, "max_offset")
        self.num_params = 2 * rows * cols

    def _identity_row(self) -> list[float]:
        return [0.0] * self.num_params

    def control_points(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Tensor:
        """The ``(K, 2)`` control points in the output, row-major.

        Examples:
            >>> ThinPlateSpline(grid_size=(2, 3)).control_points()
            tensor([[-1., -1.],
                    [ 0., -1.],
                    [ 1., -1.],
                    [-1.,  1.],
                    [ 0.,  1.],
                    [ 1.,  1.]])
        """
        return _tps_system(*self.grid_size)[0].to(device=device, dtype=dtype or torch.get_default_dtype())

    def offsets(self, params: Tensor) -> Tensor:
        """Control-point offsets ``(N, K, 2)`` (after the bound, if any), for parameters ``(N, 2K)``.

        Examples:
            >>> import torch
            >>> ThinPlateSpline(grid_size=2, max_offset=0.1).offsets(torch.full((1, 8), 100.0))[0, 0]
            tensor([0.1000, 0.1000])
        """
        d = params.view(params.shape[0], -1, 2)
        return d if self.max_offset is None else self.max_offset * torch.tanh(d)

    def bending_energy(self, params: Tensor) -> Tensor:
        """The spline's bending energy ``dᵀ L⁻¹ d`` (0 for any affine map), ``(N,)`` in float64.

        Examples:
            >>> import torch
            >>> tps = ThinPlateSpline()
            >>> shift = torch.tensor([0.1, 0.0]).repeat(1, 16)  # every control point moves alike: affine
            >>> bump = torch.zeros(1, 32)
            >>> bump[0, 10] = 0.1  # one control point alone: bent
            >>> tps.bending_energy(shift).abs() < 1e-12, tps.bending_energy(bump) > 0
            (tensor([True]), tensor([True]))
        """
        d = self.offsets(self.check_params(params)).to(torch.float64)
        bending = _tps_system(*self.grid_size)[1][: d.shape[1]].to(d.device)
        return torch.einsum("nki,kl,nli->n", d, bending, d)

    def grid(self, params: Tensor, size: Sequence[int], align_corners: bool = False) -> Tensor:
        params = self.check_params(params)
        h, w = check_size(size, "output size")
        weights = _tps_grid_weights(self.grid_size, (h, w), align_corners, params.device, params.dtype)
        base = base_grid((h, w), align_corners, params.device, params.dtype).view(1, h * w, 2)
        with autocast_off(params):
            return (base + weights @ self.offsets(params)).view(-1, h, w, 2)

    def _points(self, params: Tensor, points: Tensor) -> Tensor:
        with autocast_off(params):
            return points + _tps_weights(self.grid_size, points) @ self.offsets(params)

    @property
    def options(self) -> dict[str, object]:
        return {"grid_size": self.grid_size, "max_offset": self.max_offset}


def _tps_kernel(r2: Tensor) -> Tensor:
    """The radial basis ``U = r² log r²`` (0 at 0), from squared distances."""
    return r2 * torch.log(r2.clamp_min(torch.finfo(r2.dtype).tiny))


@lru_cache(maxsize=8)
def _tps_system(rows: int, cols: int) -> tuple[Tensor, Tensor]:
    """Control points ``(K, 2)`` and the float64 block ``L⁻¹[:, :K]``, ``(K + 3, K)``."""
    ys, xs = torch.meshgrid(
        torch.linspace(-1, 1, rows, dtype=torch.float64),
        torch.linspace(-1, 1, cols, dtype=torch.float64),
        indexing="ij",
    )
    c = torch.stack((xs.flatten(), ys.flatten()), dim=1)
    k = c.shape[0]
    p = torch.cat((torch.ones(k, 1, dtype=torch.float64), c), dim=1)
    system = torch.zeros(k + 3, k + 3, dtype=torch.float64)
    system[:k, :k] = _tps_kernel((c.unsqueeze(1) - c).pow(2).sum(-1))
    system[:k, k:] = p
    system[k:, :k] = p.T
    return c, torch.linalg.inv(system)[:, :k].contiguous()


def _tps_weights(grid_size: tuple[int, int], points: Tensor) -> Tensor:
    """``(..., P, K)`` weights with ``f(p) = p + weights @ offsets`` for points ``(..., P, 2)``.

    The spline through ``c + d`` is linear in ``c + d``; it reproduces affine maps exactly, so
    the ``c`` part is the identity and only the offsets need weights.
    """
    c, l_inv = _tps_system(*grid_size)
    c, l_inv = c.to(points.device, points.dtype), l_inv.to(points.device, points.dtype)
    r2 = (points.unsqueeze(-2) - c).pow(2).sum(-1)
    basis = torch.cat((_tps_kernel(r2), torch.ones_like(points[..., :1]), points), dim=-1)
    return basis @ l_inv


@lru_cache(maxsize=32)
def _tps_grid_weights(
    grid_size: tuple[int, int], size: Size2, align_corners: bool, device: torch.device, dtype: torch.dtype
) -> Tensor:
    points = base_grid(size, align_corners, device, torch.float64).view(-1, 2)
    return _tps_weights(grid_size, points).to(dtype)
