"""Name -> factory registry for models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

__all__ = ["ModelEntry", "create", "describe", "list_models", "register"]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its factory, the data set it was made for, and one line about it."""

    name: str
    factory: Callable[..., nn.Module]
    default_dataset: str
    summary: str


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, default_dataset: str, summary: str) -> Callable:
    """Decorator registering ``factory(input_shape, num_classes, **options) -> nn.Module``."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, factory, default_dataset, summary)
        return factory

    return wrap


def list_models() -> list[str]:
    """Names of the registered models, sorted."""
    return sorted(_REGISTRY)


def describe(name: str) -> ModelEntry:
    """The registry entry of ``name``; ``ValueError`` if unknown."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return _REGISTRY[name]


def create(name: str, **options: object) -> nn.Module:
    """Build the model ``name``. Options go to its factory (``input_shape``, ``num_classes``,
    ``stn``, ``transform``, ...); a bad option is a ``ValueError``."""
    entry = describe(name)
    try:
        return entry.factory(**options)
    except TypeError as err:
        raise ValueError(f"bad options for model {name!r}: {err}") from None
