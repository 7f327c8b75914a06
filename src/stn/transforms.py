"""Transform families: parameters θ -> matrix, sampling grid and point map.

The convention (one for the whole library)
------------------------------------------
* Coordinates are **normalised**: ``x`` runs along the width and ``y`` along the height, both in
  ``[-1, 1]``. Points are ``(x, y)`` pairs, in that order, exactly as
  :func:`torch.nn.functional.grid_sample` reads them; ``y`` grows downwards (row index).
* With ``align_corners=False`` (the default everywhere) ``-1`` and ``1`` are the outer *edges* of
  the image, so pixel ``i`` of ``W`` has centre ``(2 i + 1) / W - 1``; with ``align_corners=True``
  they are the *centres* of the corner pixels. This is the meaning ``grid_sample`` gives them.
* Parameters map an **output** location to the **input** location it reads (the direction of
  :func:`torch.nn.functional.affine_grid`): output pixel ``p`` takes the input's value at
  ``T_θ(p)``. A zoom *in* therefore has scale ``< 1``.
* Shapes: parameters ``(N, num_params)``, points ``(N, P, 2)``, grids ``(N, H, W, 2)``,
  matrices ``(N, 3, 3)`` acting on homogeneous column vectors ``(x, y, 1)``.

Every family has ``num_params``, :meth:`~Transform.identity`, :meth:`~Transform.grid`,
:meth:`~Transform.transform_points` and :meth:`~Transform.inverse_transform_points`; the matrix
families also have :meth:`~MatrixTransform.matrix`. Families are looked up by name with :func:`get`.

Pixel geometry (the end of this module) bridges to OpenCV and kornia: :func:`to_pixel_matrix`,
:func:`from_pixel_matrix`, :func:`to_pixel_points`, :func:`from_pixel_points` and
:func:`output_corners` use pixel coordinates with pixel centres at integers.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "Affine",
    "Attention",
    "Diffeomorphic",
    "DisplacementField",
    "MatrixTransform",
    "Polar",
    "Projective",
    "Similarity",
    "ThinPlateSpline",
    "Transform",
    "Translation",
    "base_grid",
    "compose",
    "compose_fields",
    "from_pixel_matrix",
    "from_pixel_points",
    "get",
    "invert",
    "invert_field",
    "names",
    "output_corners",
    "to_pixel_matrix",
    "to_pixel_points",
]

Size2 = tuple[int, int]
INVERSE_TOL = 1e-6  # default accuracy of numerical inverses, normalised units (1/2000 pixel at 1000 pixels)


def check_size(size: Sequence[int] | int, what: str = "size") -> Size2:
    """Return ``size`` as a pair ``(H, W)`` of positive ints, or raise ``ValueError``.

    Anything that is an integer in Python's sense is accepted: ``int``, numpy integers, integer
    tensors of one element (``x.shape`` while ``torch.jit.trace`` runs) and symbolic sizes under
    ``torch.compile``; a pair may be any sequence or array of two of them.
    """
    single = _as_size_int(size)
    if single is not None:
        size = (single, single)
    try:
        h, w = size  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be (H, W), got {size!r}") from None
    hw = _as_size_int(h), _as_size_int(w)
    if hw[0] is None or hw[1] is None or hw[0] <= 0 or hw[1] <= 0:
        raise ValueError(f"{what} must be two positive integers (H, W), got {_shown(h), _shown(w)!r}")
    return hw  # type: ignore[return-value]


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
    size: Sequence[int],
    align_corners: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Normalised ``(x, y)`` coordinates of the pixel centres of an ``(H, W)`` image.

    Returns:
        ``(H, W, 2)``; the identity grid for ``grid_sample`` under the library's convention.
    """
    h, w = check_size(size)
    ys, xs = torch.meshgrid(
        _axis(h, align_corners, device, dtype), _axis(w, align_corners, device, dtype), indexing="ij"
    )
    return torch.stack((xs, ys), dim=-1)


def _axis(n: int, align_corners: bool, device: torch.device | str | None, dtype: torch.dtype | None) -> Tensor:
    """Normalised coordinates of the ``n`` pixel centres along one side, ``(n,)``."""
    line = torch.linspace(-1.0, 1.0, n, device=device, dtype=dtype or torch.get_default_dtype())
    return line if align_corners else line * ((n - 1) / n)


class Transform:
    """A family of spatial transformations ``T_θ`` with ``num_params`` parameters.

    Subclasses implement :meth:`_points`; the public methods validate their inputs and raise
    ``ValueError`` with a message naming the problem.
    """

    name: str = ""
    num_params: int = 0

    def identity(
        self, batch: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Tensor:
        """Parameters of the identity map, ``(batch, num_params)``."""
        if not isinstance(batch, int) or batch < 0:
            raise ValueError(f"batch must be a non-negative int, got {batch!r}")
        row = torch.tensor(self._identity_row(), device=device, dtype=dtype or torch.get_default_dtype())
        return row.expand(batch, -1).clone()

    def grid(self, params: Tensor, size: Sequence[int], align_corners: bool = False) -> Tensor:
        """Sampling grid for ``grid_sample``: ``(N, H, W, 2)`` input locations read by each
        output pixel of an output of ``size = (H, W)``."""
        params = self.check_params(params)
        h, w = check_size(size, "output size")
        points = base_grid((h, w), align_corners, params.device, params.dtype).view(1, h * w, 2)
        return self._points(params, points.expand(params.shape[0], -1, -1)).view(-1, h, w, 2)

    def transform_points(self, params: Tensor, points: Tensor) -> Tensor:
        """Map normalised output locations ``(N, P, 2)`` to the input locations they read."""
        params = self.check_params(params)
        return self._points(params, self._check_points(params, points).to(params.dtype))

    def inverse_transform_points(
        self, params: Tensor, points: Tensor, tol: float = INVERSE_TOL, max_iter: int = 50
    ) -> Tensor:
        """Map normalised input locations ``(N, P, 2)`` to the output locations that read them:
        the inverse of :meth:`transform_points`.

        Exact for the matrix families. For the others, Newton's method on :meth:`transform_points`
        (central-difference Jacobian, in float64, started from ``p - (T(p) - p)``) finds each
        ``q`` with ``max |T(q) - p| <= tol`` in normalised units; points it does not reach within
        ``max_iter`` steps (where the map folds over itself) come back as NaN. Gradients reach
        ``params`` and ``points`` through the implicit-function theorem (one last Newton step).
        Returns ``(N, P, 2)`` in the parameters' dtype, as :meth:`transform_points`.
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
                q = q - _solve2(self._jacobian(theta, q), residual)
            jacobian = self._jacobian(theta, q)
            reached = (self._points(theta, q) - target).abs().amax(-1, keepdim=True) <= tol
        q = q - _solve2(jacobian, self._points(theta, q) - target)  # carries the gradient, moves q by < tol
        return torch.where(reached, q, torch.full_like(q, math.nan)).to(params.dtype)

    def _jacobian(self, params: Tensor, points: Tensor, step: float = 1e-6) -> Tensor:
        """``(N, P, 2, 2)`` Jacobian of :meth:`_points` at ``points``, ``J[..., i, j] = d out_i / d p_j``."""
        columns = []
        for axis in range(2):
            h = torch.zeros_like(points)
            h[..., axis] = step
            columns.append((self._points(params, points + h) - self._points(params, points - h)) / (2 * step))
        return torch.stack(columns, dim=-1)

    def _check_points(self, params: Tensor, points: Tensor) -> Tensor:
        if not isinstance(points, Tensor) or points.dim() != 3 or points.shape[-1] != 2:
            shape = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
            raise ValueError(f"points must have shape (N, P, 2), got {shape}")
        if points.shape[0] != params.shape[0]:
            raise ValueError(f"points batch {points.shape[0]} does not match parameter batch {params.shape[0]}")
        if not points.is_floating_point():
            raise ValueError(f"points must be floating point, got {points.dtype}")
        return points

    def check_params(self, params: Tensor) -> Tensor:
        """Return ``params`` if it is a floating ``(N, num_params)`` tensor, else raise."""
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
        """Constructor options: ``get(t.name, **t.options)`` rebuilds an equal transform."""
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
    """A family whose maps are 3x3 matrices on homogeneous coordinates."""

    projective = False

    def matrix(self, params: Tensor) -> Tensor:
        """The ``(N, 3, 3)`` matrix ``M`` with ``(x_in, y_in, 1) ~ M (x_out, y_out, 1)``."""
        return self._matrix(self.check_params(params))

    def _matrix(self, params: Tensor) -> Tensor:
        raise NotImplementedError

    def grid(self, params: Tensor, size: Sequence[int], align_corners: bool = False) -> Tensor:
        params = self.check_params(params)
        h, w = check_size(size, "output size")
        if self.projective:
            # Separable in x and y: (N, 1, W, 2) + (N, H, 1, 2), then the homogeneous division.
            m = self._matrix(params)[:, None, None]  # (N, 1, 1, 3, 3)
            xs = _axis(w, align_corners, params.device, params.dtype).view(w, 1)
            ys = _axis(h, align_corners, params.device, params.dtype).view(h, 1, 1)
            grid = m[..., :2, 0] * xs + (m[..., :2, 1] * ys + m[..., :2, 2])
            z = m[..., 2, 0] * xs[:, 0] + (m[..., 2, 1] * ys[..., 0] + m[..., 2, 2])  # (N, H, W)
            return grid / _away_from_zero(z).unsqueeze(-1)
        # The homogeneous base grid times θᵀ, as F.affine_grid computes it (the same numbers, bit for
        # bit), but traceable with a changing batch size and kept out of autocast's low precision.
        base = _affine_base((h, w), align_corners, params.device, params.dtype).expand(params.shape[0], -1, -1)
        with autocast_off(params):
            return base.bmm(self._matrix(params)[:, :2, :].transpose(1, 2)).view(-1, h, w, 2)

    def _points(self, params: Tensor, points: Tensor) -> Tensor:
        return apply_matrix(self._matrix(params), points, projective=self.projective)

    def inverse_transform_points(
        self, params: Tensor, points: Tensor, tol: float = INVERSE_TOL, max_iter: int = 50
    ) -> Tensor:
        params = self.check_params(params)
        points = self._check_points(params, points)
        return apply_matrix(invert(self._matrix(params)), points.to(params.dtype), projective=self.projective)


def _affine_base(size: Size2, align_corners: bool, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``(1, H*W, 3)`` homogeneous pixel centres ``(x, y, 1)``, computed as ``F.affine_grid`` does
    (``linspace(-1, 1, n) * (n - 1) / n`` without ``align_corners``), so grids match it bit for bit."""

    def axis(n: int) -> Tensor:
        line = (
            torch.linspace(-1.0, 1.0, n, device=device, dtype=dtype)
            if n > 1
            else torch.zeros(1, device=device, dtype=dtype)
        )
        return line if align_corners else line * (n - 1) / n

    h, w = size
    base = torch.ones(h, w, 3, device=device, dtype=dtype)
    base[..., 0] = axis(w)
    base[..., 1] = axis(h).unsqueeze(-1)
    return base.view(1, h * w, 3)


def apply_matrix(matrix: Tensor, points: Tensor, projective: bool = True, eps: float = 1e-8) -> Tensor:
    """Apply ``(N, 3, 3)`` matrices to ``(N, P, 2)`` points.

    With ``projective`` the result is divided by the homogeneous coordinate, which is held at
    ``±eps`` where it is closer to zero, so that points sent to infinity stay finite. Without
    it the last row is taken to be ``(0, 0, 1)``.
    """
    # Elementwise, not a matmul: autocast and TF32 leave it in the matrix's own precision, and it
    # traces with a dynamic batch (F.affine_grid does not). MatrixTransform.grid does the same.
    x, y = points[..., :1], points[..., 1:]
    m = matrix[:, None]
    out = x * m[..., :2, 0] + y * m[..., :2, 1] + m[..., :2, 2]
    if not projective:
        return out
    w = x * m[..., 2:, 0] + y * m[..., 2:, 1] + m[..., 2:, 2]
    return out / _away_from_zero(w, eps)


def _away_from_zero(w: Tensor, eps: float = 1e-8) -> Tensor:
    """``w`` held at ``±eps`` (its sign; ``+`` for 0) where it is closer to zero."""
    eps = max(eps, torch.finfo(w.dtype).tiny)
    return torch.where(w < 0, w.clamp(max=-eps), w.clamp(min=eps))


def _rows_to_matrix(top: Tensor, bottom: Tensor | None = None) -> Tensor:
    """``(N, 6)`` top two rows (+ optional ``(N, 3)`` last row) -> ``(N, 3, 3)``."""
    if bottom is None:  # (0, 0, 1), made on the device: a tensor from a list would be copied there every step
        bottom = torch.cat((torch.zeros_like(top[:, :2]), torch.ones_like(top[:, :1])), dim=1)
    return torch.cat((top, bottom), dim=1).view(-1, 3, 3)


class Translation(MatrixTransform):
    """``(tx, ty)``: a shift; output point ``p`` reads input ``p + t``.

    Args:
        max_shift: if given, ``t = max_shift * tanh(θ)`` keeps the shift bounded.
    """

    name = "translation"
    num_params = 2

    def __init__(self, max_shift: float | None = None) -> None:
        self.max_shift = _positive_bound(max_shift, "max_shift")

    def _identity_row(self) -> list[float]:
        return [0.0, 0.0]

    def _matrix(self, params: Tensor) -> Tensor:
        t = params if self.max_shift is None else self.max_shift * torch.tanh(params)
        one, zero = torch.ones_like(t[:, 0]), torch.zeros_like(t[:, 0])
        return _rows_to_matrix(torch.stack((one, zero, t[:, 0], zero, one, t[:, 1]), dim=1))

    def from_matrix(self, matrix: Tensor) -> Tensor:
        """Parameters ``(N, 2)`` of the shifts of ``(N, 3, 3)`` matrices (within the bound, if any)."""
        t = matrix[:, :2, 2]
        if self.max_shift is None:
            return t
        return torch.atanh((t / self.max_shift).clamp(-1 + 1e-6, 1 - 1e-6))

    @property
    def options(self) -> dict[str, object]:
        return {"max_shift": self.max_shift}


class Attention(MatrixTransform):
    """``(s, tx, ty)``: isotropic scale and translation, the paper's attention (CUB) transform.

    Output point ``p`` reads input ``s * p + t``: ``s < 1`` zooms in on a window of relative size
    ``s`` centred at ``t``.

    Args:
        scale_range: ``(lo, hi)`` with ``lo < 1 < hi``; if given, ``s = lo + (hi - lo) σ(θ_0)``
            keeps the scale in range (the identity stays reachable).
    """

    name = "attention"
    num_params = 3

    def __init__(self, scale_range: tuple[float, float] | None = None) -> None:
        if scale_range is not None:
            lo, hi = scale_range
            if not 0 <= lo < 1 < hi < math.inf:
                raise ValueError(f"scale_range must satisfy 0 <= lo < 1 < hi (finite), got {scale_range}")
            scale_range = (float(lo), float(hi))
        self.scale_range = scale_range

    def _identity_row(self) -> list[float]:
        if self.scale_range is None:
            return [1.0, 0.0, 0.0]
        lo, hi = self.scale_range
        q = (1 - lo) / (hi - lo)
        return [math.log(q / (1 - q)), 0.0, 0.0]

    def scale(self, params: Tensor) -> Tensor:
        """The scale ``s`` of each map, ``(N,)``."""
        if self.scale_range is None:
            return params[:, 0]
        lo, hi = self.scale_range
        return lo + (hi - lo) * torch.sigmoid(params[:, 0])

    def _matrix(self, params: Tensor) -> Tensor:
        s, zero = self.scale(params), torch.zeros_like(params[:, 0])
        return _rows_to_matrix(torch.stack((s, zero, params[:, 1], zero, s, params[:, 2]), dim=1))

    def from_matrix(self, matrix: Tensor) -> Tensor:
        """Parameters ``(N, 3)`` of ``(N, 3, 3)`` scale-and-shift matrices (scale within range, if any)."""
        s = matrix[:, 0, 0]
        if self.scale_range is not None:
            lo, hi = self.scale_range
            s = torch.logit(((s - lo) / (hi - lo)).clamp(1e-6, 1 - 1e-6))
        return torch.stack((s, matrix[:, 0, 2], matrix[:, 1, 2]), dim=1)

    @property
    def options(self) -> dict[str, object]:
        return {"scale_range": self.scale_range}


class Similarity(MatrixTransform):
    """``(a, b, tx, ty)``: rotation, isotropic scale and translation.

    The matrix is ``[[a, -b, tx], [b, a, ty]]`` with ``a = s cos φ`` and ``b = s sin φ``: linear in
    the parameters (no angle wrap-around to learn). ``φ = 90°`` (``a=0, b=1``) gives the same
    image as ``torch.rot90(x, 1, dims=(-2, -1))``.
    """

    name = "similarity"
    num_params = 4

    def _identity_row(self) -> list[float]:
        return [1.0, 0.0, 0.0, 0.0]

    def _matrix(self, params: Tensor) -> Tensor:
        a, b, tx, ty = params.unbind(1)
        return _rows_to_matrix(torch.stack((a, -b, tx, b, a, ty), dim=1))

    @staticmethod
    def from_angle(angle: Tensor, scale: Tensor, translation: Tensor) -> Tensor:
        """Parameters from angles in radians ``(N,)``, scales ``(N,)`` and shifts ``(N, 2)``."""
        return torch.stack(
            (scale * torch.cos(angle), scale * torch.sin(angle), translation[:, 0], translation[:, 1]),
            dim=1,
        )

    @staticmethod
    def from_matrix(matrix: Tensor) -> Tensor:
        """Parameters ``(N, 4)`` of ``(N, 3, 3)`` similarity matrices."""
        return torch.stack((matrix[:, 0, 0], matrix[:, 1, 0], matrix[:, 0, 2], matrix[:, 1, 2]), dim=1)


class Affine(MatrixTransform):
    """The six entries of the top two rows of the matrix, row by row: the ``theta`` of
    :func:`torch.nn.functional.affine_grid` flattened."""

    name = "affine"
    num_params = 6

    def _identity_row(self) -> list[float]:
        return [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]

    def _matrix(self, params: Tensor) -> Tensor:
        return _rows_to_matrix(params)

    @staticmethod
    def from_matrix(matrix: Tensor) -> Tensor:
        """Parameters ``(N, 6)`` of ``(N, 3, 3)`` or ``(N, 2, 3)`` affine matrices."""
        return matrix[:, :2, :].reshape(-1, 6)


class Projective(MatrixTransform):
    """A homography: the first eight entries of the 3x3 matrix, row by row, with ``h33 = 1``.

    Output point ``p`` reads input ``(M p̃)_{xy} / (M p̃)_z``. With the last row ``(0, 0, 1)`` it
    is exactly :class:`Affine`.
    """

    name = "projective"
    num_params = 8
    projective = True

    def _identity_row(self) -> list[float]:
        return [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]

    def _matrix(self, params: Tensor) -> Tensor:
        return _rows_to_matrix(params[:, :6], torch.cat((params[:, 6:], torch.ones_like(params[:, :1])), 1))

    @staticmethod
    def from_matrix(matrix: Tensor) -> Tensor:
        """Parameters ``(N, 8)`` of ``(N, 3, 3)`` matrices (scaled so that ``h33 = 1``)."""
        m = matrix / matrix[:, 2:, 2:]
        return m.reshape(-1, 9)[:, :8]


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
        """The ``(K, 2)`` control points in the output, row-major."""
        return _tps_system(*self.grid_size)[0].to(device=device, dtype=dtype or torch.get_default_dtype())

    def offsets(self, params: Tensor) -> Tensor:
        """Control-point offsets ``(N, K, 2)`` (after the bound, if any)."""
        d = params.view(params.shape[0], -1, 2)
        return d if self.max_offset is None else self.max_offset * torch.tanh(d)

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


def autocast_off(t: Tensor) -> AbstractContextManager:
    """Autocast switched off on ``t``'s device where it is on: a matmul in a grid stays in the
    parameters' precision (bfloat16 offsets would move a 64-pixel grid by 1/8 pixel)."""
    kind = t.device.type
    if torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind):
        return torch.autocast(kind, enabled=False)
    return nullcontext()


def _solve2(a: Tensor, b: Tensor) -> Tensor:
    """``a⁻¹ b`` for ``(..., 2, 2)`` matrices and ``(..., 2)`` vectors, in closed form (NaN if singular)."""
    det = a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]
    x = a[..., 1, 1] * b[..., 0] - a[..., 0, 1] * b[..., 1]
    y = a[..., 0, 0] * b[..., 1] - a[..., 1, 0] * b[..., 0]
    return torch.stack((x, y), dim=-1) / det.unsqueeze(-1)


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


class Diffeomorphic(MatrixTransform):
    """Affine maps as the matrix exponential of a Lie-algebra element (Detlefsen et al., 2018).

    The six parameters are the top two rows of ``A`` (last row zero), row by row; the map is
    ``exp(A)``. Every map is invertible and orientation-preserving (``det = exp(a11 + a22) > 0``),
    zero parameters are the identity, and ``-θ`` is the inverse of ``θ`` (:meth:`invert`).
    """

    name = "diffeomorphic"
    num_params = 6

    def _identity_row(self) -> list[float]:
        return [0.0] * 6

    def _matrix(self, params: Tensor) -> Tensor:
        algebra = torch.cat((params, torch.zeros_like(params[:, :3])), dim=1).view(-1, 3, 3)
        if torch.compiler.is_exporting():  # ONNX has no matrix exponential: the same map from matmuls
            return _expm_by_squaring(algebra)
        return torch.linalg.matrix_exp(algebra)

    def invert(self, params: Tensor) -> Tensor:
        """Parameters ``(N, 6)`` of the inverse maps: ``-θ``."""
        return -self.check_params(params)


def _expm_by_squaring(a: Tensor, squarings: int = 16) -> Tensor:
    """``exp(a)`` for ``(N, 3, 3)`` ``a`` from matrix products only: a 4th-order Taylor series of
    ``exp(a / 2^s) - I``, then ``s`` doublings ``Y <- 2Y + Y²`` (kept as ``exp - I`` so that float32
    loses no digits). Agrees with ``torch.linalg.matrix_exp`` for ``|a|`` up to thousands."""
    eye = torch.eye(3, dtype=a.dtype, device=a.device).expand_as(a)
    x = a / 2.0**squarings
    y = x @ (eye + x @ (eye + x @ (eye + x / 4) / 3) / 2)
    for _ in range(squarings):
        y = 2 * y + y @ y
    return eye + y


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


class DisplacementField(Transform):
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
        """The node vectors as an image ``(N, 2, rows, cols)`` (channel 0: ``dx``, 1: ``dy``)."""
        return params.view(params.shape[0], *self.grid_size, 2).permute(0, 3, 1, 2)

    def displacement(self, params: Tensor) -> Tensor:
        """The displacement ``u`` as an image ``(N, 2, h, w)`` whose pixels are nodes spread over
        ``[-1, 1]²`` (read it with ``align_corners=True``): the coarse nodes, or the integrated flow."""
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

    def invert(self, params: Tensor) -> Tensor:
        """Parameters ``(N, P)`` of the inverse maps: the negated velocity (``diffeomorphic`` only)."""
        params = self.check_params(params)
        if not self.diffeomorphic:
            raise ValueError("a plain displacement field has no inverse in its parameters; use diffeomorphic=True")
        return -params

    def _points(self, params: Tensor, points: Tensor) -> Tensor:
        return points + _sample_field(self.displacement(params), points.unsqueeze(1), align_corners=True)[:, 0]

    @property
    def options(self) -> dict[str, object]:
        return {
            "grid_size": self.grid_size,
            "diffeomorphic": self.diffeomorphic,
            "steps": self.steps,
            "integration_size": self.integration_size,
        }


def _sample_field(field: Tensor, at: Tensor, align_corners: bool) -> Tensor:
    """Bilinear values of a vector image ``(N, 2, h, w)`` at points ``(N, H, W, 2)``, constant
    beyond the border; ``(N, H, W, 2)``."""
    return F.grid_sample(field, at, mode="bilinear", padding_mode="border", align_corners=align_corners).permute(
        0, 2, 3, 1
    )


def compose_fields(first: Tensor, second: Tensor, align_corners: bool = False) -> Tensor:
    """Displacement of the map ``p -> second(first(p))`` from those of ``first`` and ``second``.

    Fields are displacements ``(N, H, W, 2)`` at the pixel centres of an ``(H, W)`` output (for a
    family: ``grid(θ, (H, W)) - base_grid((H, W))``), in normalised units; between centres they are
    bilinear, beyond the border constant. As with :func:`compose`, warping by ``A`` and then by
    ``B`` is the single warp ``compose_fields(B, A)``.
    """
    _check_field(first)
    _check_field(second)
    if first.shape != second.shape:
        raise ValueError(f"fields must have the same shape, got {tuple(first.shape)} and {tuple(second.shape)}")
    points = base_grid(first.shape[1:3], align_corners, first.device, first.dtype) + first
    return first + _sample_field(second.permute(0, 3, 1, 2), points, align_corners)


def invert_field(field: Tensor, iterations: int = 20, align_corners: bool = False) -> Tensor:
    """Approximate inverse displacement ``w`` of ``field`` ``(N, H, W, 2)`` (same layout as in
    :func:`compose_fields`), by the fixed point ``w(p) = -u(p + w(p))``; converges where the map is
    invertible and ``u`` moves by less than its own smoothness scale."""
    _check_field(field)
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive int, got {iterations!r}")
    base = base_grid(field.shape[1:3], align_corners, field.device, field.dtype)
    image = field.permute(0, 3, 1, 2)
    inverse = -field
    for _ in range(iterations):
        inverse = -_sample_field(image, base + inverse, align_corners)
    return inverse


def _check_field(field: Tensor) -> None:
    if not isinstance(field, Tensor) or field.dim() != 4 or field.shape[-1] != 2:
        shape = tuple(field.shape) if isinstance(field, Tensor) else type(field).__name__
        raise ValueError(f"expected displacement fields of shape (N, H, W, 2), got {shape}")


def invert(matrix: Tensor) -> Tensor:
    """Inverse of ``(N, 3, 3)`` transformation matrices: the map from input back to output.

    Raises ``ValueError`` naming the first singular matrix (checked outside ``torch.compile``).
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
    """``(N, 3, 3)`` matrix of the point map ``p -> second(first(p))``, i.e. ``second @ first``.

    Matrices map output to input, so warping an image by ``A`` and then the result by ``B``
    reads the original at ``A(B(p))``: the single warp with matrix ``compose(B, A)``. Both
    batches must be equal, or one of them 1 (that matrix applies to every element).
    """
    _check_matrix(first)
    _check_matrix(second)
    if first.shape[0] != second.shape[0] and 1 not in (first.shape[0], second.shape[0]):
        raise ValueError(f"compose: batch {first.shape[0]} of first does not match batch {second.shape[0]} of second")
    return second @ first


def _check_matrix(matrix: Tensor) -> None:
    if not isinstance(matrix, Tensor) or matrix.dim() != 3 or matrix.shape[1:] != (3, 3):
        shape = tuple(matrix.shape) if isinstance(matrix, Tensor) else type(matrix).__name__
        raise ValueError(f"expected matrices of shape (N, 3, 3), got {shape}")
    if not matrix.is_floating_point():
        raise ValueError(f"matrices must be floating point, got {matrix.dtype}")


def can_check_values(t: Tensor) -> bool:
    """Whether a check of ``t``'s values may run: not on ``meta`` tensors, nor while
    ``torch.compile``, ``torch.export`` or ``torch.jit.trace`` trace the code."""
    return t.device.type != "meta" and not torch.compiler.is_compiling() and not torch.jit.is_tracing()


_FAMILIES: dict[str, Callable[..., Transform]] = {
    "translation": Translation,
    "attention": Attention,
    "similarity": Similarity,
    "affine": Affine,
    "projective": Projective,
    "tps": ThinPlateSpline,
    "diffeomorphic": Diffeomorphic,
    "polar": Polar,
    "field": DisplacementField,
}


def names() -> list[str]:
    """Names of the registered transform families."""
    return list(_FAMILIES)


def get(name: str | Transform, **options: object) -> Transform:
    """The transform family called ``name`` (options go to its constructor).

    A :class:`Transform` instance is returned unchanged.
    """
    if isinstance(name, Transform):
        if options:
            raise ValueError("options cannot be given with a Transform instance")
        return name
    if name not in _FAMILIES:
        raise ValueError(f"unknown transform {name!r}; choose one of: {', '.join(_FAMILIES)}")
    try:
        return _FAMILIES[name](**options)
    except TypeError as err:
        raise ValueError(f"bad options for transform {name!r}: {err}") from None


# Pixel geometry: the bridge to OpenCV and kornia.
#
# Pixel coordinates follow cv2 and kornia: the centre of pixel (row i, column j) is at (x, y) = (j, i),
# so an (H, W) image covers [-0.5, W - 0.5] x [-0.5, H - 0.5]. Pixel matrices map SOURCE (input)
# pixels to DESTINATION (output) pixels, the forward map that cv2.warpAffine / cv2.warpPerspective and
# kornia.geometry.transform.warp_affine / warp_perspective take; ours map output to input, normalised.


def _pixel_scale(size: Sequence[int], align_corners: bool, what: str) -> tuple[float, float, float, float]:
    """``(sx, sy, cx, cy)`` with ``pixel = s * normalised + c`` for an image of ``size``."""
    h, w = check_size(size, what)
    if align_corners and min(h, w) < 2:
        raise ValueError(f"{what} must be at least 2 pixels per side with align_corners=True, got {(h, w)}")
    sx, sy = ((w - 1) / 2, (h - 1) / 2) if align_corners else (w / 2, h / 2)
    return sx, sy, (w - 1) / 2, (h - 1) / 2


def _pixel_from_normalized(
    size: Sequence[int], align_corners: bool, like: Tensor, what: str, inverse: bool = False
) -> Tensor:
    """``(1, 3, 3)`` matrix from normalised to pixel coordinates (its inverse with ``inverse``)."""
    sx, sy, cx, cy = _pixel_scale(size, align_corners, what)
    rows = [[1 / sx, 0, -cx / sx], [0, 1 / sy, -cy / sy]] if inverse else [[sx, 0, cx], [0, sy, cy]]
    return torch.tensor([*rows, [0, 0, 1]], dtype=like.dtype, device=like.device).unsqueeze(0)


def _unit_h33(matrix: Tensor) -> Tensor:
    h33 = matrix[:, 2:, 2:]
    return matrix / torch.where(h33 == 0, torch.ones_like(h33), h33)


def to_pixel_matrix(
    matrix: Tensor, input_size: Sequence[int], output_size: Sequence[int], align_corners: bool = False
) -> Tensor:
    """The pixel matrix of a normalised one, for ``cv2.warpPerspective`` or kornia.

    Args:
        matrix: ``(N, 3, 3)`` normalised output -> input matrices (``family.matrix(params)``).
        input_size, output_size: ``(H, W)`` of the image read and of the image made.
        align_corners: the convention ``matrix`` was made for (see the top of this module).

    Returns:
        ``(N, 3, 3)`` maps from input pixels to output pixels (source -> destination, scaled so
        that ``[2, 2]`` is 1), pixel centres at integer coordinates: warping with
        ``cv2.warpPerspective(img, P, (W_out, H_out))``, ``cv2.warpAffine(img, P[:2], ...)`` or
        ``kornia.geometry.transform.warp_perspective(x, P, (H_out, W_out))`` gives
        ``stn.warp(x, family, params, (H_out, W_out), align_corners=align_corners)``.
    """
    _check_matrix(matrix)
    to_out = _pixel_from_normalized(output_size, align_corners, matrix, "output_size")
    from_in = _pixel_from_normalized(input_size, align_corners, matrix, "input_size", inverse=True)
    return _unit_h33(to_out @ invert(matrix) @ from_in)


def from_pixel_matrix(
    pixel_matrix: Tensor, input_size: Sequence[int], output_size: Sequence[int], align_corners: bool = False
) -> Tensor:
    """The inverse of :func:`to_pixel_matrix`: normalised output -> input ``(N, 3, 3)`` matrices
    (``[2, 2]`` scaled to 1) from source -> destination pixel matrices (cv2, kornia). Feed them to
    :meth:`Projective.from_matrix` or, for affine ones, :meth:`Affine.from_matrix`."""
    _check_matrix(pixel_matrix)
    to_out = _pixel_from_normalized(output_size, align_corners, pixel_matrix, "output_size")
    from_in = _pixel_from_normalized(input_size, align_corners, pixel_matrix, "input_size", inverse=True)
    return _unit_h33(from_in @ invert(pixel_matrix) @ to_out)


def to_pixel_points(points: Tensor, size: Sequence[int], align_corners: bool = False) -> Tensor:
    """Normalised ``(x, y)`` points ``(..., 2)`` -> pixel coordinates of an ``(H, W)`` image, pixel
    centres at integers (cv2 and kornia's convention; the image covers ``[-0.5, W - 0.5]``)."""
    sx, sy, cx, cy = _pixel_scale(size, align_corners, "size")
    return points * points.new_tensor([sx, sy]) + points.new_tensor([cx, cy])


def from_pixel_points(points: Tensor, size: Sequence[int], align_corners: bool = False) -> Tensor:
    """The inverse of :func:`to_pixel_points`: pixel ``(x, y)`` ``(..., 2)`` -> normalised."""
    sx, sy, cx, cy = _pixel_scale(size, align_corners, "size")
    return (points - points.new_tensor([cx, cy])) / points.new_tensor([sx, sy])


def output_corners(
    transform: str | Transform,
    params: Tensor,
    input_size: Sequence[int],
    output_size: Sequence[int],
    align_corners: bool = False,
) -> Tensor:
    """Where each output was read: ``(N, 4, 2)`` input pixels ``(x, y)`` read by the output's
    top-left, top-right, bottom-right and bottom-left pixels.

    Pixel centres are at integers (see :func:`to_pixel_points`), so for a matrix family
    ``cv2.getPerspectiveTransform(corners, [(0, 0), (W-1, 0), (W-1, H-1), (0, H-1)])`` is the
    :func:`to_pixel_matrix` of the warp, and the identity at equal sizes gives ``(0, 0)``,
    ``(W-1, 0)``, ``(W-1, H-1)``, ``(0, H-1)``. The quadrilateral the whole output covers reaches
    half an output pixel (as mapped) further out.

    Args:
        transform: a family name or :class:`Transform`; ``params`` ``(N, num_params)`` its parameters.
        input_size: ``(H, W)`` of the image whose pixels the corners are given in: the input, or
            its full-resolution original (normalised coordinates do not depend on resolution).
        output_size: ``(H_out, W_out)`` of the warp's output.
    """
    family = get(transform)
    params = family.check_params(params)
    h, w = check_size(output_size, "output_size")
    pixels = params.new_tensor([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    corners = from_pixel_points(pixels, (h, w), align_corners).expand(params.shape[0], 4, 2)
    return to_pixel_points(family.transform_points(params, corners), input_size, align_corners)
