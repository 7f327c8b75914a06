"""Rotated MNIST as the rotation-equivariance papers use it: ``mnist-rot``.

The protocol of Larochelle et al. (2007), used by the polar transformer network paper among many:
12,000 training and 50,000 test digits, each rotated about its centre by an angle uniform over
the full turn, 28x28. Ours is made from MNIST (found like ``stn.data.load("mnist", root)``) with a
seed: MNIST's 60,000 training and 10,000 test images are pooled (in that order, 70,000), a seeded
permutation of the pool gives the training images (its first ``train_size``) and the test images
(the next ``test_size``), so the two never share a digit, and each split is rotated by
:func:`stn.data.distortions.rotate` (±180°) from its own seeded generator. Same seed, same data
set; it is cached like the other data sets.

Options (``stn.data.load("mnist-rot", root, seed=0, train_size=12000, test_size=50000,
fresh_distortions=False)``):
    seed: the draw and the rotations.
    train_size, test_size: how many images each split takes from the pool (together at most
        70,000). The test split starts where the training split ends in the permutation.
    fresh_distortions: the training digits rotated anew for every batch (the same 12,000 digits,
        new angles; :attr:`~stn.data.Dataset.draw_train`); the test set stays the fixed, seeded one.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import torch

from stn.data import distortions
from stn.data.dataset import Dataset, FreshDistortion
from stn.data.registry import Builder, build, builder, register

__all__ = ["TEST_SIZE", "TRAIN_SIZE", "VERSION", "rotated_split"]

VERSION = 1  # bump whenever the draw or the rotation changes its output
TRAIN_SIZE, TEST_SIZE = 12_000, 50_000


def rotated_split(mnist: Dataset, seed: int = 0, train_size: int = TRAIN_SIZE, test_size: int = TEST_SIZE) -> Dataset:
    """``mnist``'s training and test images pooled, split by a seeded permutation into
    ``train_size`` and ``test_size`` images, each rotated uniformly over the full turn."""
    images = torch.cat((mnist.train_images, mnist.test_images))
    labels = torch.cat((mnist.train_labels, mnist.test_labels))
    if train_size + test_size > len(labels):
        raise ValueError(
            f"mnist-rot takes train_size + test_size images from MNIST's {len(labels)}; got {train_size} + {test_size}"
        )
    train, test = _draw(len(labels), seed, train_size, test_size)
    return Dataset(
        "mnist-rot",
        distortions.rotate(images[train], torch.Generator().manual_seed(2 * seed), max_degrees=180.0),
        labels[train].clone(),
        distortions.rotate(images[test], torch.Generator().manual_seed(2 * seed + 1), max_degrees=180.0),
        labels[test].clone(),
        list(mnist.classes),
        source=f"{mnist.source} (pooled, drawn and rotated, seed {seed})",
    )


def _draw(pool: int, seed: int, train_size: int, test_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices into the pooled MNIST of the training and the test images."""
    order = torch.randperm(pool, generator=torch.Generator().manual_seed(seed))
    return order[:train_size], order[train_size : train_size + test_size]


def _with_fresh_rotations(data: Dataset, mnist: Dataset, seed: int, train_size: int, test_size: int) -> Dataset:
    """``data`` whose training digits (unrotated, from ``mnist``) are rotated anew for every batch."""
    pool = torch.cat((mnist.train_images, mnist.test_images))
    train, _ = _draw(len(pool), seed, train_size, test_size)
    rotate = functools.partial(distortions.rotate, max_degrees=180.0)
    return dataclasses.replace(data, draw_train=FreshDistortion(pool[train], rotate))


@register(
    "mnist-rot",
    "MNIST rotated uniformly over 360°: 12,000 train / 50,000 test drawn from MNIST's 70,000 (the usual protocol)",
)
def mnist_rot(
    root: Path,
    seed: int = 0,
    train_size: int = TRAIN_SIZE,
    test_size: int = TEST_SIZE,
    fresh_distortions: bool = False,
) -> Builder:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    for what, size in (("train_size", train_size), ("test_size", test_size)):
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"{what} must be a positive int, got {size!r}")
    if not isinstance(fresh_distortions, bool):
        raise ValueError(f"fresh_distortions must be true or false, got {fresh_distortions!r}")
    mnist = builder("mnist", root)
    key = f"mnist-rot-d{VERSION}-s{seed}-n{train_size}-{test_size}-{mnist.key}"

    def fresh(data: Dataset) -> Dataset:
        return _with_fresh_rotations(data, build(mnist), seed, train_size, test_size)

    def make() -> Dataset:
        return rotated_split(build(mnist), seed, train_size, test_size)

    return Builder(key, make, fresh if fresh_distortions else None)
