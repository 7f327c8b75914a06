"""Name -> factory registry for models.

The policy, the same for every registry of stn (models, data sets, transform families): a name is
registered once; registering it again is a ``ValueError`` (pick another name, or call the factory
yourself).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

__all__ = ["ModelEntry", "check_options", "create", "describe", "list_models", "options", "register"]

# Options every factory takes from the data: not the user's to give.
_FROM_DATA = ("input_shape", "num_classes")


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its factory, the data set it was made for, and one line about it."""

    name: str
    factory: Callable[..., nn.Module]
    default_dataset: str
    summary: str


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, default_dataset: str, summary: str) -> Callable:
    """Decorator registering ``factory(input_shape, num_classes, **options) -> nn.Module`` as ``name``.

    Raises:
        ValueError: ``name`` is already registered.
    """

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, factory, default_dataset, summary)
        return factory

    return wrap


def list_models() -> list[str]:
    """Names of the registered models, sorted.

    Example:
        >>> "seed-cifar" in list_models()
        True
    """
    return sorted(_REGISTRY)


def describe(name: str) -> ModelEntry:
    """The registry entry of ``name``; ``ValueError`` if unknown."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return _REGISTRY[name]


def _keywords(fn: Callable) -> tuple[list[str], bool]:
    """The keyword parameters of ``fn`` that have defaults, and whether it takes ``**kwargs``."""
    parameters = inspect.signature(fn).parameters.values()
    named = [p.name for p in parameters if p.default is not p.empty and p.kind is not p.VAR_KEYWORD]
    return named, any(p.kind is p.VAR_KEYWORD for p in parameters)


def options(name: str) -> list[str]:
    """The options model ``name`` takes: its factory's keywords, those of the network it returns
    (where the factory passes ``**options`` on) and, where the network passes the rest on to its
    spatial transformer, the transformer's sampling options. ``input_shape`` and ``num_classes``
    come from the data and are not listed.

    Example:
        >>> {"stn", "transform", "recurrent_steps", "padding_mode"} <= set(options("paper-cnn"))
        True
    """
    from stn.layers import SAMPLING_OPTIONS

    factory = describe(name).factory
    found, more = _keywords(factory)
    network = typing.get_type_hints(factory).get("return") if more else None
    if inspect.isclass(network):
        named, more = _keywords(network.__init__)
        found += named
        if more:
            found += SAMPLING_OPTIONS
    return [option for option in dict.fromkeys(found) if option not in _FROM_DATA]


def check_options(name: str, given: typing.Iterable[str]) -> None:
    """``ValueError`` (one line, listing what model ``name`` takes) for an option it does not take."""
    accepted = options(name)
    unknown = [key for key in given if key not in accepted and key not in _FROM_DATA]
    if unknown:
        raise ValueError(f"model {name!r} does not take {', '.join(unknown)}; it takes {', '.join(accepted)}")


def create(name: str, **options: object) -> nn.Module:
    """Build the model ``name``. Options go to its factory (``input_shape``, ``num_classes``,
    ``stn``, ``transform``, ...; see :func:`options`); a bad option is a ``ValueError``.

    Example:
        >>> import torch
        >>> model = create("tutorial-mnist")
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    entry = describe(name)
    check_options(name, options)
    try:
        return entry.factory(**options)
    except TypeError as err:
        raise ValueError(f"bad options for model {name!r}: {err}") from None
