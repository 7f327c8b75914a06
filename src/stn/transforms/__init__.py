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

Pixel geometry (:mod:`stn.transforms.pixels`, also :mod:`stn.pixels`) bridges to OpenCV, kornia and boxes, in two
named conventions: *points* (pixel centres at integers: :func:`to_pixel_points`,
:func:`to_pixel_matrix`, :func:`output_corners`) and *extents* (the image spans ``[0, W] x [0, H]``:
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
from stn.transforms.field import DisplacementField, compose_fields, invert_field
from stn.transforms.matrix import Affine, Attention, Diffeomorphic, Projective, Similarity, Translation
from stn.transforms.pixels import (
    from_pixel_extents,
    from_pixel_matrix,
    from_pixel_points,
    output_corners,
    output_region,
    to_pixel_extents,
    to_pixel_matrix,
    to_pixel_points,
)
from stn.transforms.polar import Polar
from stn.transforms.registry import get, names, register
from stn.transforms.tps import ThinPlateSpline

__all__ = [
    "INVERSE_TOL",
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
    "apply_matrix",
    "autocast_off",
    "base_grid",
    "can_check_values",
    "check_size",
    "compose",
    "compose_fields",
    "from_pixel_extents",
    "from_pixel_matrix",
    "from_pixel_points",
    "get",
    "invert",
    "invert_field",
    "names",
    "output_corners",
    "output_region",
    "register",
    "to_pixel_extents",
    "to_pixel_matrix",
    "to_pixel_points",
]
