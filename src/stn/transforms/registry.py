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

__all__ = ["get", "names", "register"]

_FAMILIES: dict[str, Callable[..., Transform]] = {}


def register(name: str) -> Callable[[type[Transform]], type[Transform]]:
    """Class decorator registering a :class:`Transform` family as ``name`` (:func:`get` then builds
    it from its options). The policy of every registry of stn: a name is registered once;
    registering it again is a ``ValueError``.

    Args:
        name: the family's name, as :func:`get` and ``--transform`` take it.

    Examples:
        Not run: it would register the name for the whole process.

        >>> from stn.transforms import Translation
        >>> @register("shift-only")  # doctest: +SKIP
        ... class Shift(Translation):
        ...     name = "shift-only"
        >>> get("shift-only").num_params  # doctest: +SKIP
        2
    """

    def wrap(cls: type[Transform]) -> type[Transform]:
        if name in _FAMILIES:
            raise ValueError(f"transform family {name!r} is already registered")
        _FAMILIES[name] = cls
        return cls

    return wrap


for _family in (
    Translation,
    Attention,
    Similarity,
    Affine,
    Projective,
    ThinPlateSpline,
    Diffeomorphic,
    Polar,
    DisplacementField,
    Translation3d,
    Rigid3d,
    Similarity3d,
    Affine3d,
    Diffeomorphic3d,
    DisplacementField3d,
):
    register(_family.name)(_family)


def names(ndim: int | None = 2) -> list[str]:
    """Names of the registered transform families of ``ndim`` spatial dimensions: the image
    families (2, the default) or the volume families (3); ``None`` lists them all.

    Args:
        ndim: 2, 3 or ``None``.

    Examples:
        >>> names()[:4], names(3)[:2]
        (['translation', 'attention', 'similarity', 'affine'], ['translation3d', 'rigid3d'])
    """
    if ndim not in (2, 3, None):
        raise ValueError(f"ndim must be 2, 3 or None, got {ndim!r}")
    return [name for name, family in _FAMILIES.items() if ndim is None or family.ndim == ndim]


def get(name: str | Transform, **options: object) -> Transform:
    """The transform family called ``name`` (options go to its constructor).

    A :class:`Transform` instance is returned unchanged.

    Args:
        name: a registered family's name (:func:`names`), or a :class:`Transform`.
        **options: the family's constructor arguments (none with an instance).

    Examples:
        >>> get("tps", grid_size=3).num_params
        18
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
