"""Data sets as uint8 tensors: ``stn.data.load(name, root)``.

Registered: ``cifar10``, ``mnist``, ``fashion-mnist``, ``folder`` (your own ``train/<class>/``
and ``test/<class>/`` images), the distorted MNIST variants of the paper, rotated MNIST
(``mnist-rot``), MNIST with few training images (``mnist-subset``) and ``mnist3d-rts`` (volumes
made from MNIST: :mod:`stn.data.volumes`).
"""

from stn.data import builtin, distorted, glyphs, registry, rotated, subsets, volumes  # noqa: F401  (they register their data sets)
from stn.data.dataset import Dataset, channel_stats
from stn.data.formats import DataError
from stn.data.registry import *  # noqa: F403  (the registry's public names are the package's)


def __getattr__(name: str):
    if name in ("Recipe", "recipe", "summary"):  # renamed (a "recipe" is a training preset); kept for one release
        return getattr(registry, name)
    raise AttributeError(f"module 'stn.data' has no attribute {name!r}")


__all__ = ["DataError", "Dataset", "channel_stats", *registry.__all__]
