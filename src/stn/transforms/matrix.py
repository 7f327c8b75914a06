"""The matrix families: translation, attention, similarity, affine, projective and diffeomorphic."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from stn.transforms.base import MatrixTransform, _positive_bound


def _rows_to_matrix(top: Tensor, bottom: Tensor | None = None) -> Tensor:
    """``(N, 6)`` top two rows (+ optional ``(N, 3)`` last row) -> ``(N, 3, 3)``."""
    if bottom is None:  # (0, 0, 1), made on the device: a tensor from a list would be copied there every step
        bottom = torch.cat((torch.zeros_like(top[:, :2]), torch.ones_like(top[:, :1])), dim=1)
    return torch.cat((top, bottom), dim=1).view(-1, 3, 3)


class Translation(MatrixTransform):
    """``(tx, ty)``: a shift; output point ``p`` reads input ``p + t``.

    Args:
        max_shift: if given, ``t = max_shift * tanh(θ)`` keeps the shift bounded.

    Examples:
        >>> import torch
        >>> Translation().transform_points(torch.tensor([[0.25, -0.5]]), torch.zeros(1, 1, 2))
        tensor([[[ 0.2500, -0.5000]]])
        >>> Translation(max_shift=0.5).matrix(torch.tensor([[100.0, 0.0]]))[0, 0, 2]  # at most 0.5
        tensor(0.5000)
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
        """Parameters ``(N, 2)`` of the shifts of ``(N, 3, 3)`` matrices (within the bound, if any).

        Examples:
            >>> import torch
            >>> family = Translation()
            >>> family.from_matrix(family.matrix(torch.tensor([[0.3, -0.1]])))
            tensor([[ 0.3000, -0.1000]])
        """
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

    Examples:
        >>> import torch
        >>> Attention().region(torch.tensor([[0.5, 0.5, 0.0]]))[0, 0]  # the top-left of a window on the right
        tensor([ 0.0000, -0.5000])
        >>> bounded = Attention(scale_range=(0.2, 1.5))
        >>> bounded.scale(bounded.identity(1))
        tensor([1.])
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
        """The scale ``s`` of each map, ``(N,)``, for parameters ``(N, 3)``.

        Examples:
            >>> import torch
            >>> Attention(scale_range=(0.5, 2.0)).scale(torch.tensor([[-50.0, 0.0, 0.0], [50.0, 0.0, 0.0]]))
            tensor([0.5000, 2.0000])
        """
        if self.scale_range is None:
            return params[:, 0]
        lo, hi = self.scale_range
        return lo + (hi - lo) * torch.sigmoid(params[:, 0])

    def _matrix(self, params: Tensor) -> Tensor:
        s, zero = self.scale(params), torch.zeros_like(params[:, 0])
        return _rows_to_matrix(torch.stack((s, zero, params[:, 1], zero, s, params[:, 2]), dim=1))

    def from_matrix(self, matrix: Tensor) -> Tensor:
        """Parameters ``(N, 3)`` of ``(N, 3, 3)`` scale-and-shift matrices (scale within range, if any).

        Examples:
            >>> import torch
            >>> family = Attention()
            >>> family.from_matrix(family.matrix(torch.tensor([[0.5, 0.2, -0.1]])))
            tensor([[ 0.5000,  0.2000, -0.1000]])
        """
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

    Examples:
        >>> import torch
        >>> import stn
        >>> x = torch.rand(1, 1, 4, 4)
        >>> quarter = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
        >>> torch.allclose(stn.warp(x, "similarity", quarter), torch.rot90(x, 1, dims=(-2, -1)), atol=1e-6)
        True
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
        """Parameters ``(N, 4)`` from angles in radians ``(N,)``, scales ``(N,)`` and shifts ``(N, 2)``.

        Examples:
            >>> import math, torch
            >>> Similarity.from_angle(torch.tensor([math.pi / 3]), torch.tensor([2.0]), torch.zeros(1, 2))
            tensor([[1.0000, 1.7321, 0.0000, 0.0000]])
        """
        return torch.stack(
            (scale * torch.cos(angle), scale * torch.sin(angle), translation[:, 0], translation[:, 1]),
            dim=1,
        )

    @staticmethod
    def from_matrix(matrix: Tensor) -> Tensor:
        """Parameters ``(N, 4)`` of ``(N, 3, 3)`` similarity matrices.

        Examples:
            >>> import torch
            >>> params = torch.tensor([[0.8, 0.6, 0.1, 0.0]])
            >>> torch.equal(Similarity.from_matrix(Similarity().matrix(params)), params)
            True
        """
        return torch.stack((matrix[:, 0, 0], matrix[:, 1, 0], matrix[:, 0, 2], matrix[:, 1, 2]), dim=1)


class Affine(MatrixTransform):
    """The six entries of the top two rows of the matrix, row by row: the ``theta`` of
    :func:`torch.nn.functional.affine_grid` flattened.

    Examples:
        >>> import torch
        >>> import torch.nn.functional as F
        >>> theta = torch.tensor([[0.9, 0.2, 0.1, -0.2, 0.8, 0.0]])
        >>> ours = Affine().grid(theta, (5, 7))
        >>> torch.equal(ours, F.affine_grid(theta.view(1, 2, 3), [1, 1, 5, 7], align_corners=False))
        True
    """

    name = "affine"
    num_params = 6

    def _identity_row(self) -> list[float]:
        return [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]

    def _matrix(self, params: Tensor) -> Tensor:
        return _rows_to_matrix(params)

    @staticmethod
    def from_matrix(matrix: Tensor) -> Tensor:
        """Parameters ``(N, 6)`` of ``(N, 3, 3)`` or ``(N, 2, 3)`` affine matrices.

        Examples:
            >>> import torch
            >>> Affine.from_matrix(torch.eye(3).unsqueeze(0))
            tensor([[1., 0., 0., 0., 1., 0.]])
        """
        return matrix[:, :2, :].reshape(-1, 6)


class Projective(MatrixTransform):
    """A homography: the first eight entries of the 3x3 matrix, row by row, with ``h33 = 1``.

    Output point ``p`` reads input ``(M p̃)_{xy} / (M p̃)_z``. With the last row ``(0, 0, 1)`` it
    is exactly :class:`Affine`.

    Examples:
        >>> import torch
        >>> h = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.5, 0.0]])  # z = 1 + x / 2
        >>> Projective().transform_points(h, torch.tensor([[[1.0, 1.0]]]))
        tensor([[[0.6667, 0.6667]]])
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
        """Parameters ``(N, 8)`` of ``(N, 3, 3)`` matrices (scaled so that ``h33 = 1``).

        Examples:
            >>> import torch
            >>> Projective.from_matrix(2 * torch.eye(3).unsqueeze(0))
            tensor([[1., 0., 0., 0., 1., 0., 0., 0.]])
        """
        m = matrix / matrix[:, 2:, 2:]
        return m.reshape(-1, 9)[:, :8]


class Diffeomorphic(MatrixTransform):
    """Affine maps as the matrix exponential of a Lie-algebra element (Detlefsen et al., 2018).

    The six parameters are the top two rows of ``A`` (last row zero), row by row; the map is
    ``exp(A)``. Every map is invertible and orientation-preserving (``det = exp(a11 + a22) > 0``),
    zero parameters are the identity, and ``-θ`` is the inverse of ``θ`` (:meth:`invert`).

    Examples:
        >>> import torch
        >>> family = Diffeomorphic()
        >>> params = torch.tensor([[0.1, -0.4, 0.2, 0.4, -0.3, 0.0]])
        >>> family.matrix(params).det() > 0
        tensor([True])
        >>> torch.allclose(family.matrix(params) @ family.matrix(family.invert(params)), torch.eye(3), atol=1e-6)
        True
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
        """Parameters ``(N, 6)`` of the inverse maps: ``-θ``.

        Examples:
            >>> import torch
            >>> Diffeomorphic().invert(torch.tensor([[0.1, 0.0, 0.2, 0.0, 0.0, -0.3]]))
            tensor([[-0.1000, -0.0000, -0.2000, -0.0000, -0.0000,  0.3000]])
        """
        return -self.check_params(params)


def _expm_by_squaring(a: Tensor, squarings: int = 16) -> Tensor:
    """``exp(a)`` for ``(N, d, d)`` ``a`` from matrix products only: a 4th-order Taylor series of
    ``exp(a / 2^s) - I``, then ``s`` doublings ``Y <- 2Y + Y²`` (kept as ``exp - I`` so that float32
    loses no digits). Agrees with ``torch.linalg.matrix_exp`` for ``|a|`` up to thousands."""
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device).expand_as(a)
    x = a / 2.0**squarings
    y = x @ (eye + x @ (eye + x @ (eye + x / 4) / 3) / 2)
    for _ in range(squarings):
        y = 2 * y + y @ y
    return eye + y
