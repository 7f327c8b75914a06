"""Families by name: :func:`get` and :func:`names`."""

from __future__ import annotations

from collections.abc import Callable

from stn.transforms.base import Transform
from stn.transforms.field import DisplacementField
from stn.transforms.matrix import Affine, Attention, Diffeomorphic, Projective, Similarity, Translation
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
