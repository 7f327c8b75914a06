"""Small training sets: ``mnist-subset``, MNIST with a few of its training images.

For learning from little data (the probabilistic spatial transformer's calibration table,
``results/pstn``): ``train_size`` training images drawn class by class, ``train_size / 10`` of each
digit (the remainder to the first classes), by a seeded permutation of each class's images;
the test set is all of MNIST's 10,000. Same seed, same images; cached like the other data sets.
The images are MNIST's own (28x28, undistorted) and normalised with the subset's statistics.

Options (``stn.data.load("mnist-subset", root, train_size=1000, seed=0, repeat=1)``):
    train_size: training images kept.
    seed: which ones.
    repeat: the training split holds the subset this many times over, so that an epoch of a tiny
        subset is several passes over it (fewer test-set evaluations per optimizer step).
    test_size: keep only the first test images (for quick runs).
"""

from __future__ import annotations

from pathlib import Path

import torch

from stn.data.dataset import Dataset
from stn.data.registry import Builder, build, builder, register

__all__ = ["VERSION", "balanced_subset"]

VERSION = 1  # bump whenever the draw changes


def balanced_subset(data: Dataset, train_size: int, seed: int = 0, repeat: int = 1) -> Dataset:
    """``data`` with ``train_size`` of its training images, as many of each class as can be
    (``train_size // classes``, one more for the first ``train_size % classes`` classes), each
    class's drawn by a permutation seeded with ``seed``, kept in their original order; the
    whole subset ``repeat`` times over."""
    classes = len(data.classes)
    generator = torch.Generator().manual_seed(seed)
    picked = []
    for c in range(classes):
        members = torch.nonzero(data.train_labels == c).flatten()
        want = train_size // classes + (c < train_size % classes)
        if want > len(members):
            raise ValueError(f"{data.name} has {len(members)} training images of class {c}; {want} asked for")
        picked.append(members[torch.randperm(len(members), generator=generator)[:want]])
    index = torch.cat(picked).sort().values.repeat(repeat)
    return Dataset(
        f"{data.name}-subset",
        data.train_images[index].clone(),
        data.train_labels[index].clone(),
        data.test_images,
        data.test_labels,
        list(data.classes),
        source=f"{data.source} ({train_size} training images, seed {seed})",
    )


@register("mnist-subset", "MNIST with train_size training images (balanced over the digits, seeded), full test set")
def mnist_subset(
    root: Path, train_size: int = 1000, seed: int = 0, repeat: int = 1, test_size: int | None = None
) -> Builder:
    for what, value in (("train_size", train_size), ("repeat", repeat), ("test_size", test_size or 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{what} must be a positive int, got {value!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    mnist = builder("mnist", root)
    key = f"mnist-subset-d{VERSION}-n{train_size}-s{seed}-r{repeat}-t{test_size}-{mnist.key}"

    def make() -> Dataset:
        subset = balanced_subset(build(mnist), train_size, seed, repeat)
        if test_size is not None:
            subset.test_images, subset.test_labels = subset.test_images[:test_size], subset.test_labels[:test_size]
        return subset

    return Builder(key, make)
