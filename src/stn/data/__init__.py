"""Data sets as uint8 tensors: ``stn.data.load(name, root)``.

Registered: ``cifar10``, ``mnist``, ``fashion-mnist``, ``folder`` (your own ``train/<class>/``
and ``test/<class>/`` images), the distorted MNIST variants of the paper, and ``mnist3d-rts``
(volumes made from MNIST: :mod:`stn.data.volumes`).
"""

from stn.data import builtin, distorted, glyphs, volumes  # noqa: F401  (they register their data sets)
from stn.data.dataset import Dataset, channel_stats
from stn.data.formats import DataError
from stn.data.registry import (
    Builder,
    builder,
    cache_dir,
    check_options,
    data_root,
    load,
    names,
    options,
    register,
    summary,
)


def __getattr__(name: str):
    from stn.data import registry

    if name in ("Recipe", "recipe"):  # renamed (a "recipe" is a training preset); kept for one release
        return getattr(registry, name)
    raise AttributeError(f"module 'stn.data' has no attribute {name!r}")


__all__ = [
    "Builder",
    "DataError",
    "Dataset",
    "builder",
    "cache_dir",
    "channel_stats",
    "check_options",
    "data_root",
    "load",
    "names",
    "options",
    "register",
    "summary",
]
