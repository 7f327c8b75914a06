"""Dense displacement fields: the ``field`` family and operations on fields of images and volumes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from stn.transforms.base import Transform, base_grid


class _NodeField:
    """What the 2-D and 3-D displacement fields share: their options and, integrated, their inverse."""

    grid_size: tuple[int, ...]
    diffeomorphic: bool
    steps: int
    integration_size: tuple[int, ...] | None

    def invert(self, params: Tensor) -> Tensor:
        """Parameters ``(N, P)`` of the inverse maps: the negated velocity (``diffeomorphic`` only).

        Examples:
            >>> import torch
            >>> DisplacementField(grid_size=2, diffeomorphic=True).invert(torch.ones(1, 8))
            tensor([[-1., -1., -1., -1., -1., -1., -1., -1.]])
        """
        params = self.check_params(params)
        if not self.diffeomorphic:
            raise ValueError("a plain displacement field has no inverse in its parameters; use diffeomorphic=True")
        return -params

    @property
    def options(self) -> dict[str, object]:
        return {
            "grid_size": self.grid_size,
            "diffeomorphic": self.diffeomorphic,
            "steps": self.steps,
            "integration_size": self.integration_size,
        }


class DisplacementField(_NodeField, Transform):
    """A dense displacement field given on a coarse ``rows x cols`` grid of nodes over ``[-1, 1]²``.

    Parameters are the nodes' vectors ``(dx, dy)``, ``(N, 2 rows cols)``, row-major like
    :class:`ThinPlateSpline`'s; between nodes they are interpolated bilinearly (so any affine map is
    represented exactly), and held constant outside. Output point ``p`` reads input ``p + u(p)``.
    Zero parameters are the identity.

    With ``diffeomorphic=True`` the vectors are a stationary velocity field ``v`` and the map is its
    flow after unit time, integrated by scaling and squaring (as VoxelMorph does) on an
    ``integration_size`` grid: ``u = v / 2^steps``, then ``steps`` times ``u <- u + u∘(id + u)``. The
    map is then smooth and invertible, and :meth:`invert` (``-θ``) gives its inverse.

    Args:
        grid_size: nodes per side, ``g`` or ``(rows, cols)``; default 8.
        diffeomorphic: integrate the field as a velocity.
        steps: scaling-and-squaring steps (``diffeomorphic`` only).
        integration_size: nodes per side of the grid the flow is integrated on.

    Examples:
        >>> import torch
        >>> field = DisplacementField(grid_size=2)
        >>> push = torch.tensor([[0.1, 0.0] * 4])  # every node moves right by 0.1
        >>> field.transform_points(push, torch.tensor([[[0.3, -0.6]]]))
        tensor([[[ 0.4000, -0.6000]]])
        >>> flow = DisplacementField(grid_size=4, diffeomorphic=True)
        >>> v = 0.2 * torch.randn(1, flow.num_params, generator=torch.Generator().manual_seed(0))
        >>> p = torch.tensor([[[0.1, 0.2]]])
        >>> back = flow.transform_points(flow.invert(v), flow.transform_points(v, p))
        >>> torch.allclose(back, p, atol=1e-2)
        True
    """

    name = "field"

    def __init__(
        self,
        grid_size: int | tuple[int, int] = 8,
        diffeomorphic: bool = False,
        steps: int = 7,
        integration_size: int = 32,
    ) -> None:
        rows, cols = (grid_size, grid_size) if isinstance(grid_size, int) else tuple(grid_size)
        if rows < 2 or cols < 2:
            raise ValueError(f"field needs at least 2x2 nodes, got {rows}x{cols}")
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative int, got {steps!r}")
        if not isinstance(integration_size, int) or integration_size < 2:
            raise ValueError(f"integration_size must be an int >= 2, got {integration_size!r}")
        self.grid_size = (rows, cols)
        self.diffeomorphic = bool(diffeomorphic)
        self.steps = steps
        self.integration_size = integration_size
        self.num_params = 2 * rows * cols

    def _identity_row(self) -> list[float]:
        return [0.0] * self.num_params

    def nodes(self, params: Tensor) -> Tensor:
        """The node vectors as an image ``(N, 2, rows, cols)`` (channel 0: ``dx``, 1: ``dy``), for
        parameters ``(N, 2 rows cols)``.

        Examples:
            >>> import torch
            >>> DisplacementField(grid_size=(2, 3)).nodes(torch.zeros(4, 12)).shape
            torch.Size([4, 2, 2, 3])
        """
        return params.view(params.shape[0], *self.grid_size, 2).permute(0, 3, 1, 2)

    def displacement(self, params: Tensor) -> Tensor:
        """The displacement ``u`` as an image ``(N, 2, h, w)`` whose pixels are nodes spread over
        ``[-1, 1]²`` (read it with ``align_corners=True``): the coarse nodes, or the integrated flow.

        Examples:
            >>> import torch
            >>> flow = DisplacementField(grid_size=4, diffeomorphic=True, integration_size=16)
            >>> flow.displacement(torch.zeros(1, 32)).shape
            torch.Size([1, 2, 16, 16])
        """
        params = self.check_params(params)
        u = self.nodes(params)
        if not self.diffeomorphic:
            return u
        size = (self.integration_size, self.integration_size)
        u = F.interpolate(u, size=size, mode="bilinear", align_corners=True) / 2.0**self.steps
        nodes = base_grid(size, True, params.device, params.dtype)
        for _ in range(self.steps):
            u = u + _sample_field(u, nodes + u.permute(0, 2, 3, 1), align_corners=True).permute(0, 3, 1, 2)
        return u

    def _points(self, params: Tensor, points: Tensor) -> Tensor:
        return points + _sample_field(self.displacement(params), points.unsqueeze(1), align_corners=True)[:, 0]


def _sample_field(field: Tensor, at: Tensor, align_corners: bool) -> Tensor:
    """(Tri)linear values of a vector image ``(N, C, h, w)`` or volume ``(N, C, d, h, w)`` at points
    ``(N, *S, ndim)``, constant beyond the border; ``(N, *S, C)``."""
    sampled = F.grid_sample(field, at, mode="bilinear", padding_mode="border", align_corners=align_corners)
    return sampled.movedim(1, -1)


def compose_fields(first: Tensor, second: Tensor, align_corners: bool = False) -> Tensor:
    """Displacement of the map ``p -> second(first(p))`` from those of ``first`` and ``second``.

    Fields are displacements ``(N, H, W, 2)`` at the pixel centres of an ``(H, W)`` output (for a
    family: ``grid(θ, (H, W)) - base_grid((H, W))``), or ``(N, D, H, W, 3)`` at the voxel centres of
    a volume, in normalised units; between centres they are (tri)linear, beyond the border constant.
    As with :func:`compose`, warping by ``A`` and then by ``B`` is the single warp
    ``compose_fields(B, A)``.

    Args:
        first: ``(N, H, W, 2)`` or ``(N, D, H, W, 3)`` displacements, applied first.
        second: displacements of the same shape, applied to the result.
        align_corners: the convention the fields' positions follow.

    Examples:
        >>> right = torch.zeros(1, 4, 4, 2)
        >>> right[..., 0] = 0.25  # every pixel reads 0.25 further right
        >>> compose_fields(right, right)[0, 1, 1]  # twice: 0.5
        tensor([0.5000, 0.0000])
        >>> u = 0.1 * torch.ones(1, 4, 4, 4, 3)  # a volume: a shift of 0.1 along x, y and z
        >>> compose_fields(u, u)[0, 0, 0, 0]
        tensor([0.2000, 0.2000, 0.2000])
    """
    _check_field(first)
    _check_field(second)
    if first.shape != second.shape:
        raise ValueError(f"fields must have the same shape, got {tuple(first.shape)} and {tuple(second.shape)}")
    points = base_grid(first.shape[1:-1], align_corners, first.device, first.dtype) + first
    return first + _sample_field(second.movedim(-1, 1), points, align_corners)


def invert_field(field: Tensor, iterations: int = 20, align_corners: bool = False) -> Tensor:
    """Approximate inverse displacement ``w`` of ``field`` ``(N, H, W, 2)`` or ``(N, D, H, W, 3)``
    (same layout as in :func:`compose_fields`), by the fixed point ``w(p) = -u(p + w(p))``;
    converges where the map is invertible and ``u`` moves by less than its own smoothness scale.

    Args:
        field: the displacements ``u`` to invert.
        iterations: fixed-point steps (a positive int).
        align_corners: the convention the field's positions follow.

    Returns:
        ``w``, the shape of ``field``.

    Examples:
        >>> u = torch.zeros(1, 8, 8, 2)
        >>> u[..., 0] = 0.1
        >>> invert_field(u)[0, 4, 4, 0]  # the inverse reads 0.1 further left
        tensor(-0.1000)
    """
    _check_field(field)
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive int, got {iterations!r}")
    base = base_grid(field.shape[1:-1], align_corners, field.device, field.dtype)
    image = field.movedim(-1, 1)
    inverse = -field
    for _ in range(iterations):
        inverse = -_sample_field(image, base + inverse, align_corners)
    return inverse


def integrate_velocity(velocity: Tensor, steps: int = 7, align_corners: bool = False) -> Tensor:
    """The displacement of the flow after unit time of a stationary velocity field, by scaling and
    squaring: ``u = v / 2^steps``, then ``steps`` times ``u <- compose_fields(u, u)``.

    Args:
        velocity: ``(N, H, W, 2)`` or ``(N, D, H, W, 3)`` at the pixel (voxel) centres, normalised
            units (layout of :func:`compose_fields`).
        steps: squarings; ``0`` returns ``velocity`` itself.
        align_corners: the convention the field's positions follow.

    Returns:
        The displacement, same shape: a smooth velocity gives a map without folds, whose inverse is
        the integral of ``-velocity``.

    Example:
        >>> v = 0.05 * torch.randn(1, 8, 8, 8, 3)
        >>> u = integrate_velocity(v)
        >>> bool(jacobian_determinant(u).min() > 0)
        True
    """
    _check_field(velocity)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    u = velocity / 2.0**steps
    for _ in range(steps):
        u = compose_fields(u, u, align_corners)
    return u


def jacobian_determinant(field: Tensor, align_corners: bool = False) -> Tensor:
    """Determinant of the Jacobian of the map ``p -> p + u(p)`` at every pixel (voxel) centre.

    Derivatives are central differences inside and one-sided at the border (as ``numpy.gradient``),
    taken along the grid's axes. The determinant does not depend on the units (normalised or
    voxels: the same scaling on both sides cancels), so it reads the same as VoxelMorph's and
    MONAI's. ``det <= 0`` marks where the map folds.

    Args:
        field: ``(N, H, W, 2)`` or ``(N, D, H, W, 3)`` displacements (layout of :func:`compose_fields`).
        align_corners: the convention of the field's positions (sets the grid spacing).

    Returns:
        ``(N, H, W)`` or ``(N, D, H, W)``.

    Example:
        >>> jacobian_determinant(torch.zeros(1, 4, 4, 4, 3)).unique()
        tensor([1.])
    """
    _check_field(field)
    ndim = field.shape[-1]
    sizes = field.shape[1:-1]
    if min(sizes) < 2:
        raise ValueError(f"the Jacobian needs at least 2 pixels per side, got {tuple(sizes)}")
    # Grid axis a (0 = first spatial axis) runs along coordinate ndim - 1 - a.
    spacing = [2 / (n - 1) if align_corners else 2 / n for n in sizes]
    columns = [None] * ndim
    for axis, step in enumerate(spacing):
        (derivative,) = torch.gradient(field, spacing=step, dim=axis + 1)
        columns[ndim - 1 - axis] = derivative
    jacobian = torch.stack(columns, dim=-1) + torch.eye(ndim, dtype=field.dtype, device=field.device)
    return torch.linalg.det(jacobian)


def _check_field(field: Tensor) -> None:
    if (
        not isinstance(field, Tensor)
        or field.dim() not in (4, 5)
        or field.shape[-1] != field.dim() - 2
        or not field.is_floating_point()
    ):
        shape = tuple(field.shape) if isinstance(field, Tensor) else type(field).__name__
        raise ValueError(f"expected floating displacement fields of shape (N, H, W, 2) or (N, D, H, W, 3), got {shape}")
