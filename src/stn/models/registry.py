"""Name -> factory registry for models.

The policy, the same for every registry of stn (models, data sets, transform families): a name is
registered once; registering it again is a ``ValueError`` (pick another name, or call the factory
yourself).
"""

from __future__ import annotations

import inspect
import os
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

__all__ = ["ModelEntry", "check_options", "create", "describe", "list_models", "load_weights", "options", "register"]

# Options every factory takes from the data: not the user's to give.
_FROM_DATA = ("input_shape", "num_classes")


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its factory, the data set it was made for, and one line about it.

    Examples:
        >>> entry = describe("seed-cifar")
        >>> entry.name, entry.default_dataset
        ('seed-cifar', 'cifar10')
    """

    name: str
    factory: Callable[..., nn.Module]
    default_dataset: str
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, default_dataset: str, description: str) -> Callable:
    """Decorator registering ``factory(input_shape, num_classes, **options) -> nn.Module`` as ``name``.

    Args:
        name: the model's name, as :func:`create` and ``--model`` take it.
        default_dataset: the data set it trains on when none is named.
        description: one line about it (``stn models`` lists it).

    Raises:
        ValueError: ``name`` is already registered.

    Examples:
        Not run: it would register the name for the whole process.

        >>> from torch import nn
        >>> @register("linear", "mnist", "a linear classifier")  # doctest: +SKIP
        ... def linear(input_shape=(1, 28, 28), num_classes=10, **options):
        ...     c, h, w = input_shape
        ...     return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, num_classes))
        >>> create("linear")  # doctest: +SKIP
    """

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, factory, default_dataset, description)
        return factory

    return wrap


def list_models() -> list[str]:
    """Names of the registered models, sorted.

    Examples:
        >>> "seed-cifar" in list_models()
        True
    """
    return sorted(_REGISTRY)


def describe(name: str) -> ModelEntry:
    """The registry entry of ``name``; ``ValueError`` if unknown.

    Args:
        name: a registered model's name.

    Examples:
        >>> describe("paper-cnn").description.startswith("the paper's distorted-MNIST CNN")
        True
    """
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

    Args:
        name: a registered model's name.

    Examples:
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
    """``ValueError`` (one line, listing what model ``name`` takes) for an option it does not take.

    Args:
        name: a registered model's name.
        given: the names of the options to check.

    Examples:
        >>> check_options("tutorial-mnist", ["transform"])
        >>> check_options("tutorial-mnist", ["depth"])
        Traceback (most recent call last):
        ...
        ValueError: model 'tutorial-mnist' does not take depth; it takes stn, transform, ...
    """
    accepted = options(name)
    unknown = [key for key in given if key not in accepted and key not in _FROM_DATA]
    if unknown:
        raise ValueError(f"model {name!r} does not take {', '.join(unknown)}; it takes {', '.join(accepted)}")


def create(name: str, weights: str | os.PathLike | None = None, **options: object) -> nn.Module:
    """Build the model ``name``. Options go to its factory (``input_shape``, ``num_classes``,
    ``stn``, ``transform``, ...; see :func:`options`); a bad option is a ``ValueError``.

    ``weights`` is a file holding a ``state_dict`` of the network (``torch.save(model.state_dict(),
    path)``, from stn or from the seed's or the PyTorch tutorial's own code for ``seed-cifar`` and
    ``tutorial-mnist``), loaded with ``weights_only=True``; ``ValueError`` naming what does not fit.

    Args:
        name: a registered model's name (:func:`list_models`).
        weights: a ``state_dict`` file to load (see :func:`load_weights`).
        **options: the factory's options.

    Examples:
        >>> import torch
        >>> model = create("tutorial-mnist")
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    entry = describe(name)
    check_options(name, options)
    try:
        model = entry.factory(**options)
    except TypeError as err:
        raise ValueError(f"bad options for model {name!r}: {err}") from None
    if weights is not None:
        load_weights(model, weights)
    return model


def load_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Load the ``state_dict`` in the file at ``path`` into ``model`` (tensors only are unpickled);
    ``ValueError`` (one line) if the file is missing, holds no state dict, or does not fit.

    Args:
        model: the network to load into.
        path: a file of ``torch.save(model.state_dict(), path)``, or an stn checkpoint (its
            ``state_dict`` is loaded).

    Examples:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> path = folder / "weights.pt"
        >>> torch.save(create("tutorial-mnist").state_dict(), path)
        >>> model = create("tutorial-mnist")
        >>> load_weights(model, path)
        >>> all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), torch.load(path).values()))
        True
        >>> load_weights(model, "missing.pt")
        Traceback (most recent call last):
        ...
        ValueError: no such weights file: missing.pt
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such weights file: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load fails in many ways on a file it cannot parse
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} is not a readable weights file: {first[:200]}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # an stn checkpoint
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} holds no state_dict (a dict of tensors)")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise ValueError(f"the weights in {path} do not fit {type(model).__name__}: {detail[:300]}") from None
