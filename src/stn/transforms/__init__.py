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

Volumes (the ``...3d`` families)
--------------------------------
The same convention, one axis more: volumes are ``(N, C, D, H, W)``; points are ``(x, y, z)``
with ``x`` along ``W``, ``y`` along ``H`` and ``z`` along ``D``, exactly as ``grid_sample`` reads
5-D grids; grids are ``(N, D, H, W, 3)`` and matrices ``(N, 4, 4)`` on ``(x, y, z, 1)``. Array
indices ``(i, j, k)`` into ``(D, H, W)`` therefore run in the *opposite* order, ``(z, y, x)``:
that is the order of ``scipy.ndimage``, nibabel's voxel-to-world affines, MONAI's
``AffineTransform`` (``reverse_indexing=True``) and the channels of VoxelMorph's and MONAI's
displacement fields (which are in voxels, with ``align_corners=True``).
:func:`to_index_matrix` / :func:`from_index_matrix` and :func:`to_voxel_displacement` /
:func:`from_voxel_displacement` convert, so no axis is flipped by hand.

Every family has ``num_params``, ``ndim`` (2 or 3), :meth:`~Transform.identity`, :meth:`~Transform.grid`,
:meth:`~Transform.transform_points` and :meth:`~Transform.inverse_transform_points`; the matrix
families also have :meth:`~MatrixTransform.matrix`.

Families are looked up by name with :func:`get`; :func:`names` lists the image families,
``names(3)`` the volume ones.

Pixel geometry (:mod:`stn.transforms.pixels`, also :mod:`stn.pixels`) bridges to OpenCV, kornia,
scipy, nibabel, MONAI, VoxelMorph and boxes, in two named conventions: *points* (pixel and voxel
centres at integers: :func:`to_pixel_points`, :func:`to_pixel_matrix`, :func:`to_index_matrix`,
:func:`output_corners`) and *extents* (the image spans ``[0, W] x [0, H]``:
:func:`to_pixel_extents`, :func:`output_region`).
"""

from __future__ import annotations

from stn.transforms.base import (
    INVERSE_TOL,
    MatrixTransform,
    Transform,
    apply_matrix,
    autocast_off,
    base_grid,
    can_check_values,
    check_size,
    compose,
    invert,
)
from stn.transforms.field import (
    DisplacementField,
    compose_fields,
    integrate_velocity,
    invert_field,
    jacobian_determinant,
)
from stn.transforms.field3d import DisplacementField3d
from stn.transforms.matrix import Affine, Attention, Diffeomorphic, Projective, Similarity, Translation
from stn.transforms.matrix3d import (
    Affine3d,
    Diffeomorphic3d,
    Rigid3d,
    Similarity3d,
    Translation3d,
    VolumeMatrixTransform,
    rotation_matrix,
    rotation_vector,
)
from stn.transforms.pixels import (
    from_index_matrix,
    from_pixel_extents,
    from_pixel_matrix,
    from_pixel_points,
    from_voxel_displacement,
    output_corners,
    output_region,
    to_index_matrix,
    to_pixel_extents,
    to_pixel_matrix,
    to_pixel_points,
    to_voxel_displacement,
)
from stn.transforms.polar import Polar
from stn.transforms.registry import get, names, register
from stn.transforms.tps import ThinPlateSpline

__all__ = [
    "INVERSE_TOL",
    "Affine",
    "Affine3d",
    "Attention",
    "Diffeomorphic",
    "Diffeomorphic3d",
    "DisplacementField",
    "DisplacementField3d",
    "MatrixTransform",
    "Polar",
    "Projective",
    "Rigid3d",
    "Similarity",
    "Similarity3d",
    "ThinPlateSpline",
    "Transform",
    "Translation",
    "Translation3d",
    "VolumeMatrixTransform",
    "apply_matrix",
    "autocast_off",
    "base_grid",
    "can_check_values",
    "check_size",
    "compose",
    "compose_fields",
    "from_index_matrix",
    "from_pixel_extents",
    "from_pixel_matrix",
    "from_pixel_points",
    "from_voxel_displacement",
    "get",
    "integrate_velocity",
    "invert",
    "invert_field",
    "jacobian_determinant",
    "names",
    "output_corners",
    "output_region",
    "register",
    "rotation_matrix",
    "rotation_vector",
    "to_index_matrix",
    "to_pixel_extents",
    "to_pixel_matrix",
    "to_pixel_points",
    "to_voxel_displacement",
]
