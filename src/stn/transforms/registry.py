"""Families by name: :func:`get` and :func:`names`."""

from __future__ import annotations

from collections.abc import Callable

from stn.transforms.base import Transform
from stn.transforms.field import DisplacementField
from stn.transforms.field3d import DisplacementField3d
from stn.transforms.matrix import Affine, Attention, Diffeomorphic, Projective, Similarity, Translation
from stn.transforms.matrix3d import Affine3d, Diffeomorphic3d, Rigid3d, Similarity3d, Translation3d
from stn.transforms.polar import Polar
from stn.transforms.tps import ThinPlateSpline

__all__ = ["get", "names"]

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
    "translation3d": Translation3d,
    "rigid3d": Rigid3d,
    "similarity3d": Similarity3d,
    "affine3d": Affine3d,
    "diffeomorphic3d": Diffeomorphic3d,
    "field3d": DisplacementField3d,
}


def names(ndim: int | None = 2) -> list[str]:
    """Names of the registered transform families of ``ndim`` spatial dimensions: the image
    families (2, the default) or the volume families (3); ``None`` lists them all."""
    if ndim not in (2, 3, None):
        raise ValueError(f"ndim must be 2, 3 or None, got {ndim!r}")
    return [name for name, family in _FAMILIES.items() if ndim is None or family.ndim == ndim]


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
