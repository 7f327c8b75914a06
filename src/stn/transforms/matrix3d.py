"""The volume matrix families: translation, rigid, similarity, affine and diffeomorphic, in 3-D.

Maps are ``(N, 4, 4)`` matrices on homogeneous points ``(x, y, z, 1)`` (the convention of
:mod:`stn.transforms`). Rotations are rotation vectors ``ω`` (axis times angle in radians) mapped
by the matrix exponential, ``R = exp([ω]×)``: smooth everywhere, with no gimbal lock, and zero is
the identity.
"""

from __future__ import annotations

import torch
from torch import Tensor

from stn.transforms.base import MatrixTransform, compose, invert
from stn.transforms.matrix import _expm_by_squaring

__all__ = [
    "Affine3d",
    "Diffeomorphic3d",
    "Rigid3d",
    "Similarity3d",
    "Translation3d",
    "rotation_matrix",
    "rotation_vector",
]


def _expm(a: Tensor) -> Tensor:
    """``exp(a)`` of square matrices; matrix products only while exporting (ONNX has no ``expm``)."""
    if torch.compiler.is_exporting():
        return _expm_by_squaring(a)
    return torch.linalg.matrix_exp(a)


def _skew(w: Tensor) -> Tensor:
    """``(N, 3)`` vectors -> ``(N, 3, 3)`` matrices ``[ω]×`` with ``[ω]× v = ω × v``."""
    x, y, z = w.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), dim=-1).view(-1, 3, 3)


def rotation_matrix(rotvec: Tensor) -> Tensor:
    """Rotation matrices ``(N, 3, 3)`` of rotation vectors ``(N, 3)``: ``exp([ω]×)``, a turn by
    ``|ω|`` radians about ``ω``, counter-clockwise looking down the axis (right-handed in
    ``(x, y, z)``; with ``y`` down and ``z`` into the volume, as the axes of a tensor run).

    Args:
        rotvec: ``(N, 3)`` rotation vectors ``ω``, axis times angle in radians.

    Example:
        >>> r = rotation_matrix(torch.tensor([[0.0, 0.0, torch.pi / 2]]))  # a quarter turn about z
        >>> (r @ torch.tensor([1.0, 0.0, 0.0])).round(decimals=4).abs()  # x turns into y
        tensor([[0., 1., 0.]])
    """
    return _expm(_skew(rotvec))


def rotation_vector(rotation: Tensor, eps: float = 1e-12) -> Tensor:
    """The inverse of :func:`rotation_matrix` for angles up to π: ``(N, 3, 3)`` -> ``(N, 3)``.

    Through the unit quaternion (Shepperd's choice of the largest component, so no digits are
    lost near any angle); at exactly π the axis's sign is one of the two equal answers.

    Args:
        rotation: ``(N, 3, 3)`` rotation matrices.
        eps: below this length of the quaternion's vector part the angle is taken as small.

    Returns:
        ``(N, 3)`` rotation vectors, angles in ``[0, π]``.

    Examples:
        >>> w = torch.tensor([[0.3, -0.2, 2.0], [0.0, 0.0, 0.0]])
        >>> rotation_vector(rotation_matrix(w)).round(decimals=4)
        tensor([[ 0.3000, -0.2000,  2.0000],
                [ 0.0000,  0.0000,  0.0000]])
    """
    r = rotation
    tr = r[:, 0, 0] + r[:, 1, 1] + r[:, 2, 2]
    wx, wy, wz = r[:, 2, 1] - r[:, 1, 2], r[:, 0, 2] - r[:, 2, 0], r[:, 1, 0] - r[:, 0, 1]  # 4 w (x, y, z)
    xy, xz, yz = r[:, 0, 1] + r[:, 1, 0], r[:, 0, 2] + r[:, 2, 0], r[:, 1, 2] + r[:, 2, 1]  # 4 xy, 4 xz, 4 yz
    xx, yy, zz = (1 + 2 * r[:, i, i] - tr for i in range(3))  # 4 x², 4 y², 4 z²
    # Row k is 4 q_k q for the quaternion q = (w, x, y, z): accurate where q_k is the largest component.
    candidates = torch.stack(
        (
            torch.stack((1 + tr, wx, wy, wz), -1),
            torch.stack((wx, xx, xy, xz), -1),
            torch.stack((wy, xy, yy, yz), -1),
            torch.stack((wz, xz, yz, zz), -1),
        ),
        dim=1,
    )
    leading = torch.stack((tr, r[:, 0, 0], r[:, 1, 1], r[:, 2, 2]), -1).argmax(-1)
    q = candidates.gather(1, leading.view(-1, 1, 1).expand(-1, 1, 4)).squeeze(1)
    q = q * torch.where(q[:, :1] < 0, -1.0, 1.0).to(q.dtype)  # w >= 0: the angle in [0, π]
    w, v = q[:, :1], q[:, 1:]
    norm = v.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(norm, w)
    scale = torch.where(norm > eps, angle / norm.clamp_min(eps), 2 / w.clamp_min(eps))
    return v * scale


def _homogeneous(linear: Tensor, translation: Tensor) -> Tensor:
    """``(N, 3, 3)`` linear part and ``(N, 3)`` translation -> ``(N, 4, 4)``."""
    top = torch.cat((linear, translation.unsqueeze(-1)), dim=-1)
    bottom = torch.cat((torch.zeros_like(top[:, :1, :3]), torch.ones_like(top[:, :1, :1])), dim=-1)
    return torch.cat((top, bottom), dim=1)


class VolumeMatrixTransform(MatrixTransform):
    """A matrix family on volumes: ``(N, 4, 4)`` matrices, points ``(x, y, z)``.

    Besides the methods of every family, :meth:`invert` and :meth:`compose` work on parameters
    (through the matrices and ``from_matrix``); :func:`stn.transforms.invert` and
    :func:`stn.transforms.compose` do the same on the matrices themselves.

    Examples:
        >>> family = Rigid3d()  # a VolumeMatrixTransform
        >>> p = torch.tensor([[0.0, 0.0, 0.5, 0.1, 0.0, 0.0]])  # a turn about z and a shift along x
        >>> family.matrix(p).shape, family.invert(p).shape
        (torch.Size([1, 4, 4]), torch.Size([1, 6]))
        >>> torch.allclose(family.compose(p, family.invert(p)), family.identity(1), atol=1e-4)
        True
    """

    ndim = 3

    def from_matrix(self, matrix: Tensor) -> Tensor:
        raise NotImplementedError

    def invert(self, params: Tensor) -> Tensor:
        """Parameters ``(N, P)`` of the inverse maps."""
        return self.from_matrix(invert(self.matrix(params)))

    def compose(self, first: Tensor, second: Tensor) -> Tensor:
        """Parameters of the map ``p -> second(first(p))`` (warping by ``second``, then the result
        by ``first``, is the single warp by ``compose(second, first)``: see :func:`stn.transforms.compose`)."""
        return self.from_matrix(compose(self.matrix(first), self.matrix(second)))


class Translation3d(VolumeMatrixTransform):
    """``(tx, ty, tz)``: a shift; output point ``p`` reads input ``p + t``.

    Example:
        >>> family = Translation3d()
        >>> family.matrix(torch.tensor([[0.5, 0.0, -0.5]]))[0, :3, 3]
        tensor([ 0.5000,  0.0000, -0.5000])
    """

    name = "translation3d"
    num_params = 3

    def _identity_row(self) -> list[float]:
        return [0.0] * 3

    def _matrix(self, params: Tensor) -> Tensor:
        eye = torch.eye(3, dtype=params.dtype, device=params.device).expand(params.shape[0], 3, 3)
        return _homogeneous(eye, params)

    @staticmethod
    def from_matrix(matrix: Tensor) -> Tensor:
        """Parameters ``(N, 3)`` of the shifts of ``(N, 4, 4)`` matrices."""
        return matrix[:, :3, 3]

    def invert(self, params: Tensor) -> Tensor:
        return -self.check_params(params)


class Rigid3d(VolumeMatrixTransform):
    """``(ωx, ωy, ωz, tx, ty, tz)``: a rotation by the rotation vector ``ω`` (:func:`rotation_matrix`)
    about the volume's centre, then a shift: output point ``p`` reads input ``R p + t``.

    Rigid in normalised coordinates, so in voxels only when the volume is a cube (``D = H = W``),
    as :class:`~stn.transforms.Similarity` is for square images.

    Example:
        >>> family = Rigid3d()
        >>> quarter = torch.tensor([[0.0, 0.0, torch.pi / 2, 0.0, 0.0, 0.0]])  # about z: x -> y
        >>> family.transform_points(quarter, torch.tensor([[[1.0, 0.0, 0.5]]])).round(decimals=4)
        tensor([[[0.0000, 1.0000, 0.5000]]])
    """

    name = "rigid3d"
    num_params = 6

    def _identity_row(self) -> list[float]:
        return [0.0] * 6

    def _matrix(self, params: Tensor) -> Tensor:
        return _homogeneous(rotation_matrix(params[:, :3]), params[:, 3:])

    @staticmethod
    def from_matrix(matrix: Tensor) -> Tensor:
        """Parameters ``(N, 6)`` of ``(N, 4, 4)`` rigid matrices (rotations up to π)."""
        return torch.cat((rotation_vector(matrix[:, :3, :3]), matrix[:, :3, 3]), dim=1)


class Similarity3d(VolumeMatrixTransform):
    """``(ωx, ωy, ωz, σ, tx, ty, tz)``: rotation by ``ω``, isotropic scale ``s = exp(σ)`` and shift:
    output point ``p`` reads input ``s R p + t``. The log-scale keeps ``s > 0`` (no reflection, no
    collapse) and makes zero the identity; ``s < 1`` zooms in.

    Example:
        >>> family = Similarity3d()
        >>> half = torch.tensor([[0.0, 0.0, 0.0, -0.6931472, 0.0, 0.0, 0.0]])  # s = 1/2
        >>> torch.diagonal(family.matrix(half)[0]).round(decimals=4)
        tensor([0.5000, 0.5000, 0.5000, 1.0000])
    """

    name = "similarity3d"
    num_params = 7

    def _identity_row(self) -> list[float]:
        return [0.0] * 7

    def _matrix(self, params: Tensor) -> Tensor:
        scale = torch.exp(params[:, 3]).view(-1, 1, 1)
        return _homogeneous(scale * rotation_matrix(params[:, :3]), params[:, 4:])

    @staticmethod
    def from_matrix(matrix: Tensor) -> Tensor:
        """Parameters ``(N, 7)`` of ``(N, 4, 4)`` similarity matrices (positive scale)."""
        linear = matrix[:, :3, :3]
        log_scale = torch.log(torch.linalg.det(linear)) / 3
        rotation = linear / torch.exp(log_scale).view(-1, 1, 1)
        return torch.cat((rotation_vector(rotation), log_scale.unsqueeze(1), matrix[:, :3, 3]), dim=1)


class Affine3d(VolumeMatrixTransform):
    """The twelve entries of the top three rows of the matrix, row by row: the ``theta``
    ``(N, 3, 4)`` of :func:`torch.nn.functional.affine_grid` for 5-D inputs, flattened.

    Example:
        >>> family = Affine3d()
        >>> family.identity(1)
        tensor([[1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1., 0.]])
    """

    name = "affine3d"
    num_params = 12

    def _identity_row(self) -> list[float]:
        return [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]

    def _matrix(self, params: Tensor) -> Tensor:
        top = params.view(-1, 3, 4)
        return _homogeneous(top[:, :, :3], top[:, :, 3])

    @staticmethod
    def from_matrix(matrix: Tensor) -> Tensor:
        """Parameters ``(N, 12)`` of ``(N, 4, 4)`` or ``(N, 3, 4)`` affine matrices."""
        return matrix[:, :3, :].reshape(-1, 12)


class Diffeomorphic3d(VolumeMatrixTransform):
    """Affine maps as the matrix exponential of a Lie-algebra element, in 3-D: the twelve
    parameters are the top three rows of ``A`` (last row zero), row by row, and the map is
    ``exp(A)``. Every map is invertible and orientation-preserving (``det = exp(tr A) > 0``), zero
    is the identity and ``-θ`` the inverse (:meth:`invert`).

    Example:
        >>> family = Diffeomorphic3d()
        >>> theta = 0.3 * torch.randn(2, 12)
        >>> torch.allclose(family.matrix(family.invert(theta)) @ family.matrix(theta), torch.eye(4), atol=1e-5)
        True
    """

    name = "diffeomorphic3d"
    num_params = 12

    def _identity_row(self) -> list[float]:
        return [0.0] * 12

    def _matrix(self, params: Tensor) -> Tensor:
        return _expm(torch.cat((params, torch.zeros_like(params[:, :4])), dim=1).view(-1, 4, 4))

    def invert(self, params: Tensor) -> Tensor:
        """Parameters ``(N, 12)`` of the inverse maps: ``-θ``."""
        return -self.check_params(params)

    def compose(self, first: Tensor, second: Tensor) -> Tensor:
        raise ValueError(
            "diffeomorphic3d parameters do not compose in closed form (exp(A) exp(B) is not exp(A + B)); "
            "compose the matrices with stn.transforms.compose"
        )
