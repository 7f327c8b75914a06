"""Data sets as uint8 tensors: ``stn.data.load(name, root)``.

Registered: ``cifar10``, ``mnist``, ``fashion-mnist``, ``folder`` (your own ``train/<class>/``
and ``test/<class>/`` images), the distorted MNIST variants of the paper, rotated MNIST
(``mnist-rot``) and MNIST with few training images (``mnist-subset``).
"""

from stn.data import builtin, distorted, glyphs, rotated, subsets  # noqa: F401  (they register their data sets)
from stn.data.dataset import Dataset, channel_stats
from stn.data.formats import DataError
from stn.data.registry import (
    Recipe,
    cache_dir,
    check_options,
    data_root,
    load,
    names,
    options,
    recipe,
    register,
    summary,
)

__all__ = [
    "DataError",
    "Dataset",
    "Recipe",
    "cache_dir",
    "channel_stats",
    "check_options",
    "data_root",
    "load",
    "names",
    "options",
    "recipe",
    "register",
    "summary",
]
