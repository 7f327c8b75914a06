"""Data set registry: ``load(name, root)`` finds, decodes (once) and caches a data set.

A registered data set is a function ``(root, **options) -> Recipe``: a cache key that changes
whenever its inputs change, and how to build it. Built data sets are saved as uint8 tensors in
the cache folder, so a second run starts in about a second.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from stn.data.dataset import Dataset
from stn.data.formats import DataError
from stn.files import save_atomic

__all__ = ["Recipe", "cache_dir", "data_root", "load", "names", "recipe", "register", "summary"]

CACHE_VERSION = 1


@dataclass(frozen=True)
class Recipe:
    """How to build one data set: ``key`` names its cache file; ``build()`` makes it."""

    key: str
    build: Callable[[], Dataset]


_ENTRIES: dict[str, tuple[str, Callable[..., Recipe]]] = {}


def register(name: str, summary: str) -> Callable:
    """Decorator registering ``fn(root: Path, **options) -> Recipe`` as data set ``name``."""

    def wrap(fn: Callable[..., Recipe]) -> Callable[..., Recipe]:
        _ENTRIES[name] = (summary, fn)
        return fn

    return wrap


def names() -> list[str]:
    """Registered data set names."""
    return list(_ENTRIES)


def summary(name: str) -> str:
    """One line about data set ``name``."""
    return _entry(name)[0]


def _entry(name: str) -> tuple[str, Callable[..., Recipe]]:
    if name not in _ENTRIES:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(_ENTRIES)}")
    return _ENTRIES[name]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$STN_DATA``, else ``~/.cache/stn``."""
    if root is not None:
        return Path(root).expanduser()
    if env := os.environ.get("STN_DATA"):
        return Path(env).expanduser()
    return Path.home() / ".cache" / "stn"


def cache_dir() -> Path:
    """Where decoded tensors are kept: ``$STN_CACHE``, else ``~/.cache/stn/tensors``."""
    if env := os.environ.get("STN_CACHE"):
        return Path(env).expanduser()
    return Path.home() / ".cache" / "stn" / "tensors"


def recipe(name: str, root: str | os.PathLike | None = None, **options: object) -> Recipe:
    """The :class:`Recipe` of data set ``name`` under ``root`` (see :func:`data_root`)."""
    _, fn = _entry(name)
    return fn(data_root(root), **options)


def load(name: str, root: str | os.PathLike | None = None, cache: bool = True, **options: object) -> Dataset:
    """Load data set ``name``: from the tensor cache when it is there, else built and cached.

    Raises:
        DataError: unknown name, missing files (the message lists where it looked and how to
            provide them), or a corrupt file (the message names it).
    """
    return build(recipe(name, root, **options), cache)


_FIELDS = ("train_images", "train_labels", "test_images", "test_labels")


def build(recipe: Recipe, cache: bool = True) -> Dataset:
    """Build ``recipe``'s data set, through the tensor cache when ``cache``."""
    path = cache_dir() / f"{recipe.key}-v{CACHE_VERSION}.pt"
    if cache and path.is_file():
        try:
            blob = torch.load(path, weights_only=True)
            return Dataset(
                **{k: blob[k] for k in _FIELDS},
                name=blob["name"],
                classes=blob["classes"],
                mean=tuple(blob["mean"]),
                std=tuple(blob["std"]),
                source=blob["source"],
            )
        except Exception as err:  # a damaged cache is rebuilt, never fatal
            print(f"stn: rebuilding damaged cache {path} ({err})", file=sys.stderr)
    data = recipe.build()
    if cache:
        blob = {k: getattr(data, k) for k in _FIELDS}
        blob.update(name=data.name, classes=data.classes, mean=list(data.mean), std=list(data.std), source=data.source)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_atomic(blob, path)
        except OSError as err:
            print(f"stn: could not write cache {path} ({err}); continuing without it", file=sys.stderr)
    return data
