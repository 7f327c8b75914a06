"""The base of every family: :class:`Transform`, :class:`MatrixTransform`, sizes, the base grid, and
matrix operations (:func:`invert`, :func:`compose`, :func:`apply_matrix`).

The convention is stated once, in :mod:`stn.transforms`."""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor

Size2 = tuple[int, int]
Size = tuple[int, ...]
INVERSE_TOL = 1e-6  # default accuracy of numerical inverses, normalised units (1/2000 pixel at 1000 pixels)


def check_size(size: Sequence[int] | int, what: str = "size", ndim: int = 2) -> Size:
    """Return ``size`` as ``(H, W)`` (``ndim=2``) or ``(D, H, W)`` (``ndim=3``) positive ints, or
    raise ``ValueError``.

    Anything that is an integer in Python's sense is accepted: ``int``, numpy integers, integer
    tensors of one element (``x.shape`` while ``torch.jit.trace`` runs) and symbolic sizes under
    ``torch.compile``; a single one stands for every side, a tuple may be any sequence or array of
    ``ndim`` of them.

    Args:
        size: one side, or the ``ndim`` sides ``(H, W)`` / ``(D, H, W)``.
        what: how the error message names ``size``.
        ndim: 2 for an image, 3 for a volume.

    Examples:
        >>> check_size(28), check_size((32, 48))
        ((28, 28), (32, 48))
        >>> check_size((0, 4), "output size")
        Traceback (most recent call last):
        ...
        ValueError: output size must be two positive integers (H, W), got (0, 4)
    """
    axes = _AXES[ndim]
    single = _as_size_int(size)
    if single is not None:
        size = (single,) * ndim
    try:
        sides = tuple(size)  # type: ignore[arg-type]
    except TypeError:
        sides = ()
    if len(sides) != ndim:
        raise ValueError(f"{what} must be {axes}, got {size!r}")
    ints = tuple(_as_size_int(n) for n in sides)
    if any(n is None or n <= 0 for n in ints):
        count = {2: "two", 3: "three"}[ndim]
        raise ValueError(f"{what} must be {count} positive integers {axes}, got {tuple(_shown(n) for n in sides)!r}")
    return ints  # type: ignore[return-value]


_AXES = {2: "(H, W)", 3: "(D, H, W)"}


def _as_size_int(value: object) -> int | None:
    """``value`` as an int if it is an integer (not a bool), else ``None``; symbolic sizes pass."""
    if isinstance(value, torch.SymInt):
        return value  # type: ignore[return-value]
    if isinstance(value, bool) or (isinstance(value, Tensor) and (value.numel() != 1 or value.is_floating_point())):
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def _shown(value: object) -> object:
    return value.item() if isinstance(value, Tensor) and value.numel() == 1 else value


def base_grid(
    size: Sequence[int] | int,
    align_corners: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Normalised coordinates of the pixel (voxel) centres of an ``(H, W)`` image or a
    ``(D, H, W)`` volume (a single int is a square image).

    Args:
        size: ``(H, W)``, ``(D, H, W)`` or a single int.
        align_corners: the corner pixels' centres at ``±1`` (``True``) or their outer edges
            (``False``).
        device: the grid's device.
        dtype: the grid's dtype (default: torch's default dtype).

    Returns:
        ``(H, W, 2)`` points ``(x, y)``, or ``(D, H, W, 3)`` points ``(x, y, z)``: the identity grid
        for ``grid_sample`` under the library's convention.

    Examples:
        >>> base_grid((2, 2))  # pixel centres, align_corners=False
        tensor([[[-0.5000, -0.5000],
                 [ 0.5000, -0.5000]],
        <BLANKLINE>
                [[-0.5000,  0.5000],
                 [ 0.5000,  0.5000]]])
    """
    ndim = 2 if _as_size_int(size) is not None else len(size)  # type: ignore[arg-type]
    sides = check_size(size, ndim=ndim if ndim in _AXES else 2)
    axes = torch.meshgrid(*(_axis(n, align_corners, device, dtype) for n in sides), indexing="ij")
    return torch.stack(axes[::-1], dim=-1)


def _axis(n: int, align_corners: bool, device: torch.device | str | None, dtype: torch.dtype | None) -> Tensor:
    """Normalised coordinates of the ``n`` pixel centres along one side, ``(n,)``."""
    line = torch.linspace(-1.0, 1.0, n, device=device, dtype=dtype or torch.get_default_dtype())
    return line if align_corners else line * ((n - 1) / n)


class Transform:
    """A family of spatial transformations ``T_θ`` with ``num_params`` parameters.

    Subclasses implement :meth:`_points`; the public methods validate their inputs and raise
    ``ValueError`` with a message naming the problem.

    Examples:
        >>> import torch
        >>> from stn.transforms import get
        >>> tps = get("tps", grid_size=3)
        >>> params = tps.identity(2)
        >>> params.shape, tps.grid(params, (5, 7)).shape
        (torch.Size([2, 18]), torch.Size([2, 5, 7, 2]))
        >>> points = torch.tensor([[[0.5, -0.25]], [[0.0, 0.0]]])
        >>> torch.equal(tps.transform_points(params, points), points)
        True
    """

    name: str = ""
    num_params: int = 0
    ndim: int = 2  # spatial dimensions: 2 for images (N, C, H, W), 3 for volumes (N, C, D, H, W)

    def identity(
        self, batch: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Tensor:
        """Parameters of the identity map, ``(batch, num_params)``.

        Examples:
            >>> from stn.transforms import get
            >>> get("affine").identity(2)
            tensor([[1., 0., 0., 0., 1., 0.],
                    [1., 0., 0., 0., 1., 0.]])
        """
        if not isinstance(batch, int) or batch < 0:
            raise ValueError(f"batch must be a non-negative int, got {batch!r}")
        row = torch.tensor(self._identity_row(), device=device, dtype=dtype or torch.get_default_dtype())
        return row.expand(batch, -1).clone()

    def grid(self, params: Tensor, size: Sequence[int], align_corners: bool = False) -> Tensor:
        """Sampling grid for ``grid_sample``: ``(N, H, W, 2)`` input locations read by each
        output pixel of an output of ``size = (H, W)``; for a volume family ``(N, D, H, W, 3)``
        for ``size = (D, H, W)``.

        Examples:
            >>> from stn.transforms import get
            >>> get("translation").grid(torch.tensor([[0.5, 0.0]]), (1, 2))  # reads half a width to the right
            tensor([[[[0., 0.],
                      [1., 0.]]]])
        """
        params = self.check_params(params)
        size = check_size(size, "output size", self.ndim)
        points = base_grid(size, align_corners, params.device, params.dtype).view(1, -1, self.ndim)
        return self._points(params, points.expand(params.shape[0], -1, -1)).view(-1, *size, self.ndim)

    def transform_points(self, params: Tensor, points: Tensor) -> Tensor:
        """Map normalised output locations ``(N, P, 2)`` (volumes: ``(N, P, 3)``) to the input
        locations they read.

        Examples:
            >>> from stn.transforms import get
            >>> zoom = torch.tensor([[0.5, 0.1, -0.2]])  # attention: s, tx, ty
            >>> get("attention").transform_points(zoom, torch.tensor([[[1.0, 1.0]]]))
            tensor([[[0.6000, 0.3000]]])
        """
        params = self.check_params(params)
        return self._points(params, self._check_points(params, points).to(params.dtype))

    def inverse_transform_points(
        self, params: Tensor, points: Tensor, tol: float = INVERSE_TOL, max_iter: int = 50
    ) -> Tensor:
        """Map normalised input locations ``(N, P, 2)`` (volumes: ``(N, P, 3)``) to the output
        locations that read them: the inverse of :meth:`transform_points`.

        Exact for the matrix families. For the others, Newton's method on :meth:`transform_points`
        (central-difference Jacobian, in float64, started from ``p - (T(p) - p)``) finds each
        ``q`` with ``max |T(q) - p| <= tol`` in normalised units; points it does not reach within
        ``max_iter`` steps (where the map folds over itself) come back as NaN. Gradients reach
        ``params`` and ``points`` through the implicit-function theorem (one last Newton step).
        Returns ``(N, P, ndim)`` in the parameters' dtype, as :meth:`transform_points`.

        Examples:
            >>> from stn.transforms import get
            >>> tps = get("tps")
            >>> params = 0.1 * torch.randn(1, tps.num_params, generator=torch.Generator().manual_seed(0))
            >>> points = torch.tensor([[[0.3, -0.2], [0.0, 0.5]]])
            >>> back = tps.transform_points(params, tps.inverse_transform_points(params, points))
            >>> torch.allclose(back, points, atol=1e-5)
            True
        """
        params = self.check_params(params)
        points = self._check_points(params, points)
        if not tol > 0:
            raise ValueError(f"tol must be positive, got {tol!r}")
        work = torch.float64 if points.device.type != "mps" else torch.float32
        theta, target = params.to(work), points.to(work)
        with torch.no_grad():
            q = 2 * target - self._points(theta, target)
            for _ in range(max_iter):
                residual = self._points(theta, q) - target
                if not bool(residual.abs().amax() > tol):
                    break
                q = q - _solve(self._jacobian(theta, q), residual)
            jacobian = self._jacobian(theta, q)
            reached = (self._points(theta, q) - target).abs().amax(-1, keepdim=True) <= tol
        q = q - _solve(jacobian, self._points(theta, q) - target)  # carries the gradient, moves q by < tol
        return torch.where(reached, q, torch.full_like(q, math.nan)).to(params.dtype)

    def region(self, params: Tensor) -> Tensor:
        """The region each output reads, ``(N, 4, 2)`` normalised input points: where the output's
        corners ``(-1, -1), (1, -1), (1, 1), (-1, 1)`` (top-left, top-right, bottom-right,
        bottom-left) are read. Families whose corners do not outline what they read say otherwise
        (``polar``: the box around its disk).

        Examples:
            >>> from stn.transforms import get
            >>> get("attention").region(torch.tensor([[0.5, 0.0, 0.0]]))  # the middle half
            tensor([[[-0.5000, -0.5000],
                     [ 0.5000, -0.5000],
                     [ 0.5000,  0.5000],
                     [-0.5000,  0.5000]]])
        """
        params = self.check_params(params)
        corners = params.new_tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
        return self._points(params, corners.expand(params.shape[0], 4, 2))

    def _jacobian(self, params: Tensor, points: Tensor, step: float = 1e-6) -> Tensor:
        """``(N, P, d, d)`` Jacobian of :meth:`_points` at ``points``, ``J[..., i, j] = d out_i / d p_j``."""
        columns = []
        for axis in range(self.ndim):
            h = torch.zeros_like(points)
            h[..., axis] = step
            columns.append((self._points(params, points + h) - self._points(params, points - h)) / (2 * step))
        return torch.stack(columns, dim=-1)

    def _check_points(self, params: Tensor, points: Tensor) -> Tensor:
        if not isinstance(points, Tensor) or points.dim() != 3 or points.shape[-1] != self.ndim:
            shape = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
            raise ValueError(f"points must have shape (N, P, {self.ndim}), got {shape}")
        if points.shape[0] != params.shape[0]:
            raise ValueError(f"points batch {points.shape[0]} does not match parameter batch {params.shape[0]}")
        if not points.is_floating_point():
            raise ValueError(f"points must be floating point, got {points.dtype}")
        return points

    def check_params(self, params: Tensor) -> Tensor:
        """Return ``params`` if it is a floating ``(N, num_params)`` tensor, else raise ``ValueError``.

        Examples:
            >>> import torch
            >>> from stn.transforms import get
            >>> get("affine").check_params(torch.zeros(2, 4))
            Traceback (most recent call last):
            ...
            ValueError: affine transform expects parameters of shape (N, 6), got (2, 4)
        """
        if not isinstance(params, Tensor):
            raise ValueError(f"{self.name} parameters must be a tensor, got {type(params).__name__}")
        if params.dim() != 2 or params.shape[1] != self.num_params:
            raise ValueError(
                f"{self.name} transform expects parameters of shape (N, {self.num_params}), got {tuple(params.shape)}"
            )
        if not params.is_floating_point():
            raise ValueError(f"{self.name} parameters must be floating point, got {params.dtype}")
        return params

    def _identity_row(self) -> list[float]:
        raise NotImplementedError

    def _points(self, params: Tensor, points: Tensor) -> Tensor:
        raise NotImplementedError

    @property
    def options(self) -> dict[str, object]:
        """Constructor options: ``get(t.name, **t.options)`` rebuilds an equal transform.

        Examples:
            >>> from stn.transforms import get
            >>> tps = get("tps", grid_size=3)
            >>> tps.options
            {'grid_size': (3, 3), 'max_offset': None}
            >>> get(tps.name, **tps.options) == tps
            True
        """
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        """Transforms are equal when they are of one family with equal :attr:`options`."""
        if not isinstance(other, Transform):
            return NotImplemented
        return type(self) is type(other) and _frozen(self.options) == _frozen(other.options)

    def __hash__(self) -> int:
        return hash((type(self), _frozen(self.options)))


def _frozen(value: object) -> object:
    """A hashable stand-in for options: lists become tuples, dicts sorted tuples of items."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def _positive_bound(value: object, what: str) -> float | None:
    """``None`` or a finite positive float, else ``ValueError``."""
    if value is None:
        return None
    try:
        bound = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a positive number, got {value!r}") from None
    if not math.isfinite(bound) or bound <= 0:
        raise ValueError(f"{what} must be a positive finite number, got {value!r}")
    return bound


class MatrixTransform(Transform):
    """A family whose maps are matrices on homogeneous coordinates: 3x3 for images, 4x4 for volumes.

    Examples:
        >>> from stn.transforms import get
        >>> affine = get("affine")
        >>> isinstance(affine, MatrixTransform), affine.matrix(affine.identity(1)).shape
        (True, torch.Size([1, 3, 3]))
    """

    projective = False

    def matrix(self, params: Tensor) -> Tensor:
        """The ``(N, 3, 3)`` matrix ``M`` with ``(x_in, y_in, 1) ~ M (x_out, y_out, 1)``; for a
        volume family the ``(N, 4, 4)`` one with ``(x_in, y_in, z_in, 1) = M (x_out, y_out, z_out, 1)``.

        Examples:
            >>> from stn.transforms import get
            >>> get("translation").matrix(torch.tensor([[0.25, -0.5]]))
            tensor([[[ 1.0000,  0.0000,  0.2500],
                     [ 0.0000,  1.0000, -0.5000],
                     [ 0.0000,  0.0000,  1.0000]]])
        """
        return self._matrix(self.check_params(params))

    def _matrix(self, params: Tensor) -> Tensor:
        raise NotImplementedError

    def grid(self, params: Tensor, size: Sequence[int], align_corners: bool = False) -> Tensor:
        params = self.check_params(params)
        size = check_size(size, "output size", self.ndim)
        if self.projective:
            h, w = size
            # Separable in x and y: (N, 1, W, 2) + (N, H, 1, 2), then the homogeneous division.
            m = self._matrix(params)[:, None, None]  # (N, 1, 1, 3, 3)
            xs = _axis(w, align_corners, params.device, params.dtype).view(w, 1)
            ys = _axis(h, align_corners, params.device, params.dtype).view(h, 1, 1)
            grid = m[..., :2, 0] * xs + (m[..., :2, 1] * ys + m[..., :2, 2])
            z = m[..., 2, 0] * xs[:, 0] + (m[..., 2, 1] * ys[..., 0] + m[..., 2, 2])  # (N, H, W)
            return grid / _away_from_zero(z).unsqueeze(-1)
        # The homogeneous base grid times θᵀ, as F.affine_grid computes it (the same numbers, bit for
        # bit), but traceable with a changing batch size and kept out of autocast's low precision.
        base = _affine_base(size, align_corners, params.device, params.dtype).expand(params.shape[0], -1, -1)
        d = self.ndim
        with autocast_off(params):
            return base.bmm(self._matrix(params)[:, :d, :].transpose(1, 2)).view(-1, *size, d)

    def _points(self, params: Tensor, points: Tensor) -> Tensor:
        return apply_matrix(self._matrix(params), points, projective=self.projective)

    def inverse_transform_points(
        self, params: Tensor, points: Tensor, tol: float = INVERSE_TOL, max_iter: int = 50
    ) -> Tensor:
        params = self.check_params(params)
        points = self._check_points(params, points)
        return apply_matrix(invert(self._matrix(params)), points.to(params.dtype), projective=self.projective)


def _affine_base(size: Size, align_corners: bool, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``(1, prod(size), d + 1)`` homogeneous pixel centres ``(x, y[, z], 1)``, computed as
    ``F.affine_grid`` does (``linspace(-1, 1, n) * (n - 1) / n`` without ``align_corners``), so grids
    match it bit for bit."""

    def axis(n: int) -> Tensor:
        line = (
            torch.linspace(-1.0, 1.0, n, device=device, dtype=dtype)
            if n > 1
            else torch.zeros(1, device=device, dtype=dtype)
        )
        return line if align_corners else line * (n - 1) / n

    d = len(size)
    base = torch.ones(*size, d + 1, device=device, dtype=dtype)
    for i, n in enumerate(reversed(size)):  # x along the last axis, y the one before, z the first
        base[..., i] = axis(n).view(n, *([1] * i))
    return base.view(1, -1, d + 1)


def apply_matrix(matrix: Tensor, points: Tensor, projective: bool = True, eps: float = 1e-8) -> Tensor:
    """Apply ``(N, 3, 3)`` matrices to ``(N, P, 2)`` points, or ``(N, 4, 4)`` ones to ``(N, P, 3)``.

    With ``projective`` the result is divided by the homogeneous coordinate, which is held at
    ``±eps`` where it is closer to zero, so that points sent to infinity stay finite. Without
    it the last row is taken to be ``(0, ..., 0, 1)``.

    Args:
        matrix: ``(N, 3, 3)`` or ``(N, 4, 4)`` matrices (a batch of 1 applies to every element).
        points: ``(N, P, 2)`` or ``(N, P, 3)`` points.
        projective: divide by the homogeneous coordinate.
        eps: the smallest magnitude of the homogeneous coordinate.

    Examples:
        >>> m = torch.tensor([[[2.0, 0.0, 1.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]]])
        >>> apply_matrix(m, torch.tensor([[[1.0, 1.0]]]))  # (3, 2, 2) / 2
        tensor([[[1.5000, 1.0000]]])
    """
    # Elementwise, not a matmul: autocast and TF32 leave it in the matrix's own precision, and it
    # traces with a dynamic batch (F.affine_grid does not). MatrixTransform.grid does the same.
    d = points.shape[-1]
    m = matrix[:, None]
    out = points[..., :1] * m[..., :d, 0]
    for j in range(1, d):
        out = out + points[..., j : j + 1] * m[..., :d, j]
    out = out + m[..., :d, d]
    if not projective:
        return out
    w = points[..., :1] * m[..., d:, 0]
    for j in range(1, d):
        w = w + points[..., j : j + 1] * m[..., d:, j]
    return out / _away_from_zero(w + m[..., d:, d], eps)


def _away_from_zero(w: Tensor, eps: float = 1e-8) -> Tensor:
    """``w`` held at ``±eps`` (its sign; ``+`` for 0) where it is closer to zero."""
    eps = max(eps, torch.finfo(w.dtype).tiny)
    return torch.where(w < 0, w.clamp(max=-eps), w.clamp(min=eps))


def autocast_off(t: Tensor) -> AbstractContextManager:
    """Autocast switched off on ``t``'s device where it is on: a matmul in a grid stays in the
    parameters' precision (bfloat16 offsets would move a 64-pixel grid by 1/8 pixel).

    Args:
        t: a tensor on the device whose autocast is switched off.

    Examples:
        >>> import torch
        >>> a = torch.rand(2, 2)
        >>> with torch.autocast("cpu", dtype=torch.bfloat16), autocast_off(a):
        ...     (a @ a).dtype
        torch.float32
    """
    kind = t.device.type
    if torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind):
        return torch.autocast(kind, enabled=False)
    return nullcontext()


def _solve(a: Tensor, b: Tensor) -> Tensor:
    """``a⁻¹ b`` for ``(..., d, d)`` matrices and ``(..., d)`` vectors, ``d`` 2 or 3, in closed form
    (NaN where ``a`` is singular)."""
    if a.shape[-1] == 2:
        det = a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]
        x = a[..., 1, 1] * b[..., 0] - a[..., 0, 1] * b[..., 1]
        y = a[..., 0, 0] * b[..., 1] - a[..., 1, 0] * b[..., 0]
        return torch.stack((x, y), dim=-1) / det.unsqueeze(-1)
    r0, r1, r2 = a.unbind(-2)  # rows; column i of a⁻¹ is (r_{i+1} x r_{i+2}) / det
    c0, c1, c2 = torch.linalg.cross(r1, r2), torch.linalg.cross(r2, r0), torch.linalg.cross(r0, r1)
    det = (r0 * c0).sum(-1, keepdim=True)
    return (c0 * b[..., :1] + c1 * b[..., 1:2] + c2 * b[..., 2:]) / det


def invert(matrix: Tensor) -> Tensor:
    """Inverse of ``(N, 3, 3)`` (images) or ``(N, 4, 4)`` (volumes) transformation matrices: the
    map from input back to output.

    Raises ``ValueError`` naming the first singular matrix (checked outside ``torch.compile``).

    Args:
        matrix: ``(N, 3, 3)`` or ``(N, 4, 4)`` invertible matrices.

    Examples:
        >>> import torch
        >>> from stn.transforms import get
        >>> m = get("attention").matrix(torch.tensor([[0.5, 0.2, 0.0]]))
        >>> invert(m)
        tensor([[[ 2.0000,  0.0000, -0.4000],
                 [ 0.0000,  2.0000,  0.0000],
                 [ 0.0000,  0.0000,  1.0000]]])
    """
    _check_matrix(matrix)
    inverse, info = torch.linalg.inv_ex(matrix.to(torch.promote_types(matrix.dtype, torch.float32)))
    inverse = inverse.to(matrix.dtype)
    if can_check_values(matrix):
        bad = (info != 0) | ~torch.isfinite(inverse).flatten(1).all(1)
        if bool(bad.any()):
            raise ValueError(f"cannot invert: matrix {int(bad.nonzero()[0, 0])} of the batch is singular")
    return inverse


def compose(first: Tensor, second: Tensor) -> Tensor:
    """``(N, 3, 3)`` (volumes: ``(N, 4, 4)``) matrix of the point map ``p -> second(first(p))``,
    i.e. ``second @ first``.

    Matrices map output to input, so warping an image by ``A`` and then the result by ``B``
    reads the original at ``A(B(p))``: the single warp with matrix ``compose(B, A)``. Both
    batches must be equal, or one of them 1 (that matrix applies to every element).

    Args:
        first: ``(N, 3, 3)`` or ``(N, 4, 4)`` matrices, applied first.
        second: matrices of the same size, applied to the result.

    Examples:
        >>> import torch
        >>> from stn.transforms import get
        >>> shift = get("translation").matrix(torch.tensor([[0.5, 0.0]]))
        >>> compose(shift, shift)[0, 0, 2]  # two shifts of 0.5: one of 1
        tensor(1.)
    """
    _check_matrix(first)
    _check_matrix(second)
    if first.shape[1:] != second.shape[1:]:
        raise ValueError(f"compose: matrices of shapes {tuple(first.shape)} and {tuple(second.shape)} differ in size")
    if first.shape[0] != second.shape[0] and 1 not in (first.shape[0], second.shape[0]):
        raise ValueError(f"compose: batch {first.shape[0]} of first does not match batch {second.shape[0]} of second")
    return second @ first


def _check_matrix(matrix: Tensor) -> None:
    if not isinstance(matrix, Tensor) or matrix.dim() != 3 or matrix.shape[1:] not in ((3, 3), (4, 4)):
        shape = tuple(matrix.shape) if isinstance(matrix, Tensor) else type(matrix).__name__
        raise ValueError(f"expected matrices of shape (N, 3, 3) or (N, 4, 4), got {shape}")
    if not matrix.is_floating_point():
        raise ValueError(f"matrices must be floating point, got {matrix.dtype}")


def can_check_values(t: Tensor) -> bool:
    """Whether a check of ``t``'s values may run: not on ``meta`` tensors, nor while
    ``torch.compile``, ``torch.export`` or ``torch.jit.trace`` trace the code.

    Args:
        t: the tensor whose values would be checked.

    Examples:
        >>> import torch
        >>> can_check_values(torch.zeros(2)), can_check_values(torch.zeros(2, device="meta"))
        (True, False)
    """
    return t.device.type != "meta" and not torch.compiler.is_compiling() and not torch.jit.is_tracing()
