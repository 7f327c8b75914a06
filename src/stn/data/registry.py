"""Data set registry: ``load(name, root)`` finds, decodes (once) and caches a data set.

A registered data set is a function ``(root, **options) -> Builder``: a cache key that changes
whenever its inputs change, how to build it, and what to add after the cached tensors are loaded
(a hook that draws training images anew, say). Its keyword arguments are the options it takes
(``image_size``, ``skip_bad_images``, ``fresh_distortions``, sizes, seeds: each data set declares
its own). Built data sets are saved as uint8 tensors in the cache folder, so a second run starts in
about a second. A name is registered once; registering it again is a ``ValueError``.
"""

from __future__ import annotations

import inspect
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from stn.data.dataset import Dataset
from stn.data.formats import DataError
from stn.files import save_atomic

__all__ = [
    "Builder",
    "builder",
    "cache_dir",
    "check_options",
    "data_root",
    "description",
    "load",
    "names",
    "options",
    "register",
]

CACHE_VERSION = 3  # 2: official files verified before caching; Dataset.skipped. 3: images read as shown


@dataclass(frozen=True)
class Builder:
    """How to build one data set: ``key`` names its cache file; ``build()`` makes it; ``finish``
    (optional) completes the data set once its tensors are built or read from the cache, with what
    is never cached (e.g. :attr:`Dataset.draw_train`).

    Attributes:
        key: the cache file's name; it changes whenever the data set's inputs change.
        build: makes the :class:`~stn.data.Dataset` (called only when the cache lacks it).
        finish: ``Dataset -> Dataset``, run after building or reading the cache; ``None``: nothing.

    Examples:
        >>> from stn.data import Dataset
        >>> zeros = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
        >>> tiny = Builder("tiny-v1", lambda: Dataset("tiny", zeros, torch.tensor([0, 1, 0, 1]), zeros[:2],
        ...                                           torch.tensor([0, 1]), ["a", "b"]))
        >>> tiny.build().input_shape, tiny.finish is None
        ((1, 8, 8), True)
    """

    key: str
    build: Callable[[], Dataset]
    finish: Callable[[Dataset], Dataset] | None = None


def __getattr__(name: str):
    if name == "Recipe":  # "recipe" is a training preset (stn.engine.RECIPES); kept for one release
        import warnings

        warnings.warn("stn.data.Recipe is now stn.data.Builder", DeprecationWarning, stacklevel=2)
        return Builder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_ENTRIES: dict[str, tuple[str, Callable[..., Builder]]] = {}


def register(name: str, description: str) -> Callable:
    """Decorator registering ``fn(root: Path, **options) -> Builder`` as data set ``name``.

    Args:
        name: the data set's name, as :func:`load` and ``--dataset`` take it.
        description: one line about it (``stn datasets`` lists it).

    Raises:
        ValueError: ``name`` is already registered.

    Examples:
        Not run: it would register the name for the whole process.

        >>> @register("my-set", "my own images")  # doctest: +SKIP
        ... def my_set(root, size: int = 32):
        ...     return Builder(f"my-set-{size}", lambda: read_my_files(root, size))
        >>> load("my-set", "/data/mine", size=64)  # doctest: +SKIP
    """

    def wrap(fn: Callable[..., Builder]) -> Callable[..., Builder]:
        if name in _ENTRIES:
            raise ValueError(f"data set {name!r} is already registered")
        _ENTRIES[name] = (description, fn)
        return fn

    return wrap


def names() -> list[str]:
    """Registered data set names.

    Examples:
        >>> "glyphs" in names() and "cifar10" in names()
        True
    """
    return list(_ENTRIES)


def description(name: str) -> str:
    """One line about data set ``name``.

    Args:
        name: a registered data set's name (:func:`names`).

    Examples:
        >>> description("mnist")
        'MNIST: 60,000 + 10,000 grayscale 28x28 digits'
    """
    return _entry(name)[0]


def _entry(name: str) -> tuple[str, Callable[..., Builder]]:
    if name not in _ENTRIES:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(_ENTRIES)}")
    return _ENTRIES[name]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$STN_DATA``, else ``~/.cache/stn``.

    Args:
        root: a folder (``~`` expanded), or ``None``.

    Examples:
        >>> data_root("/data/mnist").as_posix()
        '/data/mnist'
    """
    if root is not None:
        return Path(root).expanduser()
    if env := os.environ.get("STN_DATA"):
        return Path(env).expanduser()
    return Path.home() / ".cache" / "stn"


def cache_dir() -> Path:
    """Where decoded tensors are kept: ``$STN_CACHE``, else ``~/.cache/stn/tensors``.

    Examples:
        >>> cache_dir().name in ("tensors", Path(os.environ.get("STN_CACHE", "tensors")).name)
        True
    """
    if env := os.environ.get("STN_CACHE"):
        return Path(env).expanduser()
    return Path.home() / ".cache" / "stn" / "tensors"


def options(name: str) -> list[str]:
    """The options data set ``name`` takes (keyword arguments of :func:`load`).

    Args:
        name: a registered data set's name.

    Examples:
        >>> options("glyphs")
        ['train_size', 'test_size', 'canvas', 'pieces', 'seed']
    """
    _, fn = _entry(name)
    parameters = list(inspect.signature(fn).parameters.values())[1:]
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_options(name: str, given: dict[str, object] | list[str]) -> None:
    """Raise ``ValueError`` (one line, listing the accepted options) if data set ``name`` does not
    take every option in ``given``.

    Args:
        name: a registered data set's name.
        given: the options (their names, or a dict of them).

    Examples:
        >>> check_options("glyphs", {"seed": 3})
        >>> check_options("mnist", ["seed"])
        Traceback (most recent call last):
        ...
        ValueError: data set 'mnist' does not take seed; it takes no options
    """
    accepted = options(name)
    unknown = [key for key in given if key not in accepted]
    if not unknown:
        return
    takes = f"it takes {', '.join(accepted)}" if accepted else "it takes no options"
    why = ""
    if "image_size" in unknown:
        sized = [n for n in _ENTRIES if "image_size" in options(n)]
        why = f" (its images have a fixed size; image_size (--image-size) applies to {', '.join(sized)})"
    raise ValueError(f"data set {name!r} does not take {', '.join(unknown)}{why}; {takes}")


def builder(name: str, root: str | os.PathLike | None = None, **options: object) -> Builder:
    """The :class:`Builder` of data set ``name`` under ``root`` (see :func:`data_root`).

    Args:
        name: a registered data set's name.
        root: the data root (default: :func:`data_root`'s).
        **options: the data set's options (:func:`options`).

    Raises:
        ValueError: an option the data set does not take (the message lists those it takes).

    Examples:
        >>> plan = builder("glyphs", train_size=100, test_size=20)
        >>> plan.key.startswith("glyphs"), callable(plan.build)
        (True, True)
    """
    _, fn = _entry(name)
    check_options(name, options)
    return fn(data_root(root), **options)


def load(name: str, root: str | os.PathLike | None = None, cache: bool = True, **options: object) -> Dataset:
    """Load data set ``name``: from the tensor cache when it is there, else built and cached.

    A data set in an official format (MNIST, Fashion-MNIST, CIFAR-10 batches) is checked against
    the official files when it is built. Unreadable images left out (``skip_bad_images=True``) are
    listed in ``Dataset.skipped`` and counted in one line on stderr.

    Args:
        name: a registered data set's name (:func:`names`).
        root: the data root (default: :func:`data_root`'s).
        cache: read and write the tensor cache (:func:`cache_dir`).
        **options: the data set's options (:func:`options`).

    Raises:
        DataError: unknown name, missing files (the message lists where it looked and how to
            provide them), a corrupt file or files that are not the data set's (the message names
            them).
        ValueError: an option the data set does not take, or a bad option value.

    Examples:
        >>> data = load("glyphs", train_size=100, test_size=20, cache=False)  # drawn, not read: no files
        >>> data.train_images.shape, data.train_images.dtype, data.test_labels.shape
        (torch.Size([100, 1, 56, 56]), torch.uint8, torch.Size([20]))
        >>> data.classes[:3], len(data.mean)
        (['0', '1', '2'], 1)
    """
    plan = builder(name, root, **options)
    data = build(plan, cache)
    if plan.finish is not None:
        data = plan.finish(data)
    if data.skipped:
        print(
            f"stn: skipped {len(data.skipped)} unreadable image(s) of {data.name}, the first {data.skipped[0]}",
            file=sys.stderr,
        )
    return data


_FIELDS = ("train_images", "train_labels", "test_images", "test_labels")


def build(plan: Builder, cache: bool = True) -> Dataset:
    """Build ``plan``'s tensors, through the tensor cache when ``cache`` (without its ``finish``)."""
    path = cache_dir() / f"{plan.key}-v{CACHE_VERSION}.pt"
    if cache and path.is_file():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch warns about pickles it then refuses
                blob = torch.load(path, weights_only=True)
            return Dataset(
                **{k: blob[k] for k in _FIELDS},
                name=blob["name"],
                classes=blob["classes"],
                mean=tuple(blob["mean"]),
                std=tuple(blob["std"]),
                source=blob["source"],
                skipped=list(blob.get("skipped", [])),
            )
        except Exception as err:  # a damaged cache is rebuilt, never fatal
            print(f"stn: rebuilding damaged cache {path} ({type(err).__name__})", file=sys.stderr)
    data = plan.build()
    if cache:
        blob = {k: getattr(data, k) for k in _FIELDS}
        blob.update(
            name=data.name,
            classes=data.classes,
            mean=list(data.mean),
            std=list(data.std),
            source=data.source,
            skipped=list(data.skipped),
        )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_atomic(blob, path)
        except OSError as err:
            print(f"stn: could not write cache {path} ({err}); continuing without it", file=sys.stderr)
    return data


def recipe(name: str, root: str | os.PathLike | None = None, **options: object) -> Builder:
    """Deprecated: :func:`builder` (kept for one release)."""
    warnings.warn("stn.data.recipe() is now stn.data.builder()", DeprecationWarning, stacklevel=2)
    return builder(name, root, **options)


def summary(name: str) -> str:
    """Deprecated: :func:`description` (a run's summary is its results; kept for one release)."""
    warnings.warn("stn.data.summary() is now stn.data.description()", DeprecationWarning, stacklevel=2)
    return description(name)
