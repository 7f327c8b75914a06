"""The spatial transformer layer of the registered models, from their common options."""

from __future__ import annotations

import operator
from collections.abc import Sequence

from torch import nn

from stn.layers import ParallelSpatialTransformers, RecurrentSpatialTransformer, SpatialTransformer
from stn.transforms import Transform, get

__all__ = ["count", "spatial_transformer"]


def count(value: object, what: str, minimum: int) -> int:
    """``value`` as an int of at least ``minimum`` (not a bool), else ``ValueError`` naming ``what``."""
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        number = None
    if isinstance(value, bool) or number is None or number < minimum:
        raise ValueError(f"{what} must be an integer of at least {minimum}, got {value!r}")
    return number


def spatial_transformer(
    localization: nn.Module,
    transform: str | Transform,
    output_size: Sequence[int] | None,
    *,
    transform_options: dict[str, object] | None = None,
    parallel: int = 1,
    recurrent_steps: int = 0,
    **st_options: object,
) -> SpatialTransformer:
    """A :class:`~stn.layers.SpatialTransformer` of the family ``transform`` (with
    ``transform_options``); with ``parallel`` = k > 1, :class:`~stn.layers.ParallelSpatialTransformers`
    (k parameter sets from the one localisation net, outputs ``(N, k*C, H, W)`` concatenated on
    channels); with ``recurrent_steps`` > 0, :class:`~stn.layers.RecurrentSpatialTransformer` of
    that many steps (IC-STN). The two cannot be combined. ``st_options`` go to the layer
    (``in_features``, ``hidden``, ``fill``, ``padding_mode``, ...)."""
    parallel = count(parallel, "parallel (the number of parallel transformers)", 1)
    recurrent_steps = count(recurrent_steps, "recurrent_steps", 0)
    if parallel > 1 and recurrent_steps:
        raise ValueError("parallel and recurrent_steps cannot be combined: choose one kind of transformer")
    family = get(transform, **(transform_options or {}))
    if recurrent_steps:
        return RecurrentSpatialTransformer(localization, family, output_size, steps=recurrent_steps, **st_options)
    if parallel > 1:
        return ParallelSpatialTransformers(parallel, localization, family, output_size, **st_options)
    return SpatialTransformer(localization, family, output_size, **st_options)
