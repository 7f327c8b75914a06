"""The volume displacement field: ``field3d``, dense or coarse, plain or diffeomorphic."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

from stn.transforms.base import Transform, base_grid, check_size
from stn.transforms.field import _NodeField, _sample_field

__all__ = ["DisplacementField3d"]


class DisplacementField3d(_NodeField, Transform):
    """A displacement field on a ``d x h x w`` grid of nodes spread over ``[-1, 1]³`` (the nodes
    at the corners are the cube's corners: the positions of voxel centres with
    ``align_corners=True``).

    Parameters are the nodes' vectors ``(dx, dy, dz)``, ``(N, 3 d h w)``, in the order of a
    ``(N, d, h, w, 3)`` tensor (the layout of :func:`~stn.transforms.compose_fields`): flatten a
    displacement given in that layout, or use :meth:`from_nodes` for a network's ``(N, 3, d, h, w)``
    output. Between nodes they are trilinear (so any affine map is represented exactly), constant
    outside. Output point ``p`` reads input ``p + u(p)``; zero parameters are the identity.

    With a grid the size of the volume and ``align_corners=True`` the field is dense: one vector
    per voxel, read as it is (VoxelMorph's and MONAI's ``Warp`` convention, in normalised units and
    ``(x, y, z)`` order: :func:`~stn.transforms.from_voxel_displacement` converts theirs).

    With ``diffeomorphic=True`` the vectors are a stationary velocity field, integrated by scaling
    and squaring on the node grid (or on an ``integration_size`` grid) as
    :func:`~stn.transforms.integrate_velocity` does: the map is smooth and invertible, and
    :meth:`invert` (``-θ``) gives its inverse.

    Args:
        grid_size: nodes per side, ``g`` or ``(d, h, w)``; default 8.
        diffeomorphic: integrate the field as a velocity.
        steps: scaling-and-squaring steps (``diffeomorphic`` only).
        integration_size: the grid the flow is integrated on, ``g`` or ``(d, h, w)``; default the
            node grid.

    Example:
        >>> family = DisplacementField3d(grid_size=(4, 5, 6), diffeomorphic=True)
        >>> theta = 0.05 * torch.randn(2, family.num_params)
        >>> family.grid(theta, (8, 10, 12), align_corners=True).shape
        torch.Size([2, 8, 10, 12, 3])
    """

    name = "field3d"
    ndim = 3

    def __init__(
        self,
        grid_size: int | Sequence[int] = 8,
        diffeomorphic: bool = False,
        steps: int = 7,
        integration_size: int | Sequence[int] | None = None,
    ) -> None:
        self.grid_size = check_size(grid_size, "grid_size", 3)
        if min(self.grid_size) < 2:
            raise ValueError(f"field3d needs at least 2 nodes per side, got {self.grid_size}")
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise ValueError(f"steps must be a non-negative int, got {steps!r}")
        if integration_size is not None:
            integration_size = check_size(integration_size, "integration_size", 3)
            if min(integration_size) < 2:
                raise ValueError(f"integration_size must be at least 2 per side, got {integration_size}")
        self.diffeomorphic = bool(diffeomorphic)
        self.steps = steps
        self.integration_size = integration_size
        d, h, w = self.grid_size
        self.num_params = 3 * d * h * w

    def _identity_row(self) -> list[float]:
        return [0.0] * self.num_params

    def nodes(self, params: Tensor) -> Tensor:
        """The node vectors as a volume ``(N, 3, d, h, w)`` (channels ``dx``, ``dy``, ``dz``)."""
        return params.view(params.shape[0], *self.grid_size, 3).permute(0, 4, 1, 2, 3)

    def from_nodes(self, nodes: Tensor) -> Tensor:
        """Parameters ``(N, P)`` from node vectors ``(N, 3, d, h, w)`` (the inverse of :meth:`nodes`)."""
        if not isinstance(nodes, Tensor) or tuple(nodes.shape[1:]) != (3, *self.grid_size):
            shape = tuple(nodes.shape) if isinstance(nodes, Tensor) else type(nodes).__name__
            raise ValueError(
                f"field3d nodes must have shape (N, 3, {', '.join(map(str, self.grid_size))}), got {shape}"
            )
        return nodes.permute(0, 2, 3, 4, 1).reshape(nodes.shape[0], -1)

    def displacement(self, params: Tensor) -> Tensor:
        """The displacement ``u`` as a volume ``(N, 3, d', h', w')`` whose voxels are nodes spread
        over ``[-1, 1]³`` (read it with ``align_corners=True``): the nodes, or the integrated flow."""
        params = self.check_params(params)
        u = self.nodes(params)
        if not self.diffeomorphic:
            return u
        if self.integration_size is not None and self.integration_size != self.grid_size:
            u = F.interpolate(u, size=self.integration_size, mode="trilinear", align_corners=True)
        u = u / 2.0**self.steps
        nodes = base_grid(u.shape[2:], True, params.device, params.dtype)
        for _ in range(self.steps):
            u = u + _sample_field(u, nodes + u.permute(0, 2, 3, 4, 1), align_corners=True).permute(0, 4, 1, 2, 3)
        return u

    def grid(self, params: Tensor, size: Sequence[int], align_corners: bool = False) -> Tensor:
        if not align_corners:
            return super().grid(params, size, align_corners)
        # The output's voxel centres are evenly spread over [-1, 1]³, as the nodes are: trilinear
        # resizing reads the field there (nothing at all when the sizes agree).
        size = check_size(size, "output size", 3)
        u = self.displacement(params)
        if tuple(u.shape[2:]) != size:
            u = F.interpolate(u, size=size, mode="trilinear", align_corners=True)
        return base_grid(size, True, params.device, params.dtype) + u.permute(0, 2, 3, 4, 1)

    def _points(self, params: Tensor, points: Tensor) -> Tensor:
        at = points.view(points.shape[0], 1, 1, -1, 3)
        return points + _sample_field(self.displacement(params), at, align_corners=True).view_as(points)
