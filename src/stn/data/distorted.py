"""The paper's distorted MNIST data sets: ``mnist-r``, ``mnist-rts``, ``mnist-p``, ``mnist-e``, ``mnist-tc``.

Each is MNIST (found like ``stn.data.load("mnist", root)``) with every train and test image
distorted once by :mod:`stn.data.distortions`, from a seeded generator: the same ``seed`` gives the
same data set. Train and test images get their own generators (seeds ``2 seed`` and ``2 seed + 1``).

Options (``stn.data.load("mnist-rts", root, seed=0, train_size=None, test_size=None,
fresh_distortions=False)``):
    seed: the distortions' seed.
    train_size, test_size: keep only the first images of each MNIST split (for quick runs).
    fresh_distortions: training images distorted anew for every batch (``stn train
        --fresh-distortions``): the data set carries its undistorted training images and its
        distortion as :attr:`~stn.data.Dataset.draw_train`; the fixed training images stay (their
        statistics normalise, their shape is the input's) and the test set stays the fixed, seeded one.

The cache key holds the name, :data:`VERSION`, the options and MNIST's own key (which changes with
its files), so a new seed, new files or a change to a distortion builds a new data set.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from stn.data import distortions
from stn.data.dataset import Dataset, FreshDistortion
from stn.data.registry import Builder, build, builder, register

__all__ = ["VARIANTS", "VERSION", "distort", "fresh"]

VERSION = 1  # bump whenever a distortion below (or in stn.data.distortions) changes its output

Distortion = Callable[[Tensor, torch.Generator], Tensor]

VARIANTS: dict[str, tuple[Distortion, str]] = {
    "mnist-r": (distortions.rotate, "MNIST rotated by up to ±90° (the paper's R), 28x28"),
    "mnist-rts": (
        distortions.rotate_scale_translate,
        "MNIST rotated ±45°, scaled 0.7-1.2, placed in a 42x42 canvas (the paper's RTS)",
    ),
    "mnist-p": (distortions.projective, "MNIST under random homographies (the paper's P), 28x28"),
    "mnist-e": (distortions.elastic, "MNIST under random thin-plate-spline warps (the paper's E), 28x28"),
    "mnist-tc": (
        distortions.translate_clutter,
        "MNIST placed at random in a 60x60 canvas with 6x6 clutter (the paper's TC)",
    ),
}


def distort(mnist: Dataset, name: str, distortion: Distortion, seed: int = 0) -> Dataset:
    """``mnist`` with each split distorted by ``distortion`` from generators seeded by ``seed``."""
    train = distortion(mnist.train_images, torch.Generator().manual_seed(2 * seed))
    test = distortion(mnist.test_images, torch.Generator().manual_seed(2 * seed + 1))
    return Dataset(
        name,
        train,
        mnist.train_labels.clone(),
        test,
        mnist.test_labels.clone(),
        list(mnist.classes),
        source=f"{mnist.source} (distorted, seed {seed})",
    )


def fresh(
    data: Dataset,
    root: str | os.PathLike | None = None,
    seed: int = 0,
    train_size: int | None = None,
    test_size: int | None = None,
) -> Dataset:
    """``data`` (a distorted variant loaded with these options, e.g. by ``stn.data.load("mnist-rts",
    root, seed=seed)``) with :attr:`Dataset.draw_train` set: its undistorted MNIST training images
    (found under ``root`` like ``stn.data.load("mnist", root)``) and its distortion. The option
    ``fresh_distortions=True`` of the variants does this.

    The fixed training images stay (their statistics normalise, their shape is the input's).

    Raises:
        ValueError: ``data`` is not one of :data:`VARIANTS`.
    """
    if data.name not in VARIANTS:
        raise ValueError(
            f"fresh distortions need a distorted MNIST data set ({', '.join(VARIANTS)}); got {data.name!r}"
        )
    _check_options(seed, train_size, test_size)
    mnist = build(builder("mnist", root))
    sources = mnist.train_images[:train_size]
    return dataclasses.replace(data, draw_train=FreshDistortion(sources, VARIANTS[data.name][0]))


def _subset(data: Dataset, train_size: int | None, test_size: int | None) -> Dataset:
    if train_size is None and test_size is None:
        return data
    return Dataset(
        data.name,
        data.train_images[:train_size],
        data.train_labels[:train_size],
        data.test_images[:test_size],
        data.test_labels[:test_size],
        data.classes,
        source=data.source,
    )


def _check_options(seed: object, train_size: object, test_size: object) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    for what, size in (("train_size", train_size), ("test_size", test_size)):
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
            raise ValueError(f"{what} must be a positive int or None, got {size!r}")


def _register(name: str, distortion: Distortion, summary: str) -> None:
    @register(name, summary)
    def make(
        root: Path,
        seed: int = 0,
        train_size: int | None = None,
        test_size: int | None = None,
        fresh_distortions: bool = False,
    ) -> Builder:
        _check_options(seed, train_size, test_size)
        if not isinstance(fresh_distortions, bool):
            raise ValueError(f"fresh_distortions must be true or false, got {fresh_distortions!r}")
        mnist = builder("mnist", root)
        sizes = "" if train_size is None and test_size is None else f"-n{train_size}-{test_size}"
        key = f"{name}-d{VERSION}-s{seed}{sizes}-{mnist.key}"

        def make_dataset() -> Dataset:
            return distort(_subset(build(mnist), train_size, test_size), name, distortion, seed)

        def with_fresh_distortions(data: Dataset) -> Dataset:
            return fresh(data, root, seed, train_size, test_size)

        return Builder(key, make_dataset, with_fresh_distortions if fresh_distortions else None)


for _name, (_distortion, _summary) in VARIANTS.items():
    _register(_name, _distortion, _summary)
