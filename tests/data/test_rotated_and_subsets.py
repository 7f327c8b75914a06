"""Rotated MNIST (``mnist-rot``) and small MNIST subsets (``mnist-subset``), built from a fake MNIST."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stn import data
from stn.data.dataset import Dataset
from stn.data.rotated import rotated_split
from stn.data.subsets import balanced_subset

from . import official_files
from .test_distorted import fake_mnist, write_idx


@pytest.fixture
def mnist_root(tmp_path, monkeypatch):
    return fake_mnist(tmp_path / "data", monkeypatch=monkeypatch)


def ten_class_mnist(root, train: int = 60, test: int = 20, monkeypatch=None):
    """A fake MNIST whose label ``i % 10`` is drawn as that many bright pixels in the top row."""
    folder = root / "mnist"
    folder.mkdir(parents=True)
    for split, n in (("train", train), ("t10k", test)):
        labels = (np.arange(n) * 3 % 10).astype(np.uint8)
        images = np.zeros((n, 28, 28), np.uint8)
        for i, label in enumerate(labels):
            images[i, 0, : label + 1] = 255
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    if monkeypatch is not None:
        official_files.trust_idx(monkeypatch, "mnist", folder)
    return root


def bars(n: int) -> Dataset:
    """``n`` images of a horizontal bar through the centre, labels 0..9 in turn."""
    images = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    images[:, :, 13:15, 4:24] = 255
    labels = torch.arange(n) % 10
    return Dataset(
        "mnist", images[: n // 2], labels[: n // 2], images[n // 2 :], labels[n // 2 :], [str(i) for i in range(10)]
    )


def orientation(images: torch.Tensor) -> torch.Tensor:
    """The angle in degrees (in [0, 180)) of each image's principal axis, from its second moments."""
    w = images[:, 0].double()
    ys, xs = torch.meshgrid(
        torch.arange(28.0, dtype=torch.float64), torch.arange(28.0, dtype=torch.float64), indexing="ij"
    )
    m = w.sum((1, 2))
    cx, cy = (w * xs).sum((1, 2)) / m, (w * ys).sum((1, 2)) / m
    dx, dy = xs - cx[:, None, None], ys - cy[:, None, None]
    mu20, mu02, mu11 = (w * dx * dx).sum((1, 2)), (w * dy * dy).sum((1, 2)), (w * dx * dy).sum((1, 2))
    return torch.rad2deg(0.5 * torch.atan2(2 * mu11, mu20 - mu02)) % 180


def test_mnist_rot_draws_disjoint_splits_from_the_pooled_images(mnist_root):
    mnist = data.load("mnist", mnist_root)
    ds = data.load("mnist-rot", mnist_root, train_size=25, test_size=15)
    assert (
        ds.name == "mnist-rot" and ds.train_images.shape == (25, 1, 28, 28) and ds.test_images.shape == (15, 1, 28, 28)
    )
    # The fake digits are disks (label 1) and empty images (label 0): labels follow their images,
    # and the 40 drawn images hold as many of each kind as the pool gave them.
    for images, labels in ((ds.train_images, ds.train_labels), (ds.test_images, ds.test_labels)):
        ink = images.double().sum((1, 2, 3))
        assert ink[labels == 1].min() > 0 and ink[labels == 0].max() == 0
    pool = torch.cat((mnist.train_labels, mnist.test_labels))
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(0))
    assert torch.equal(ds.train_labels, pool[order[:25]]) and torch.equal(ds.test_labels, pool[order[25:40]])
    with pytest.raises(ValueError, match="takes train_size \\+ test_size"):
        data.load("mnist-rot", mnist_root, train_size=30, test_size=30)
    with pytest.raises(ValueError, match="train_size"):
        data.load("mnist-rot", mnist_root, train_size=0)


def test_mnist_rot_is_seeded_and_cached(mnist_root):
    first = data.load("mnist-rot", mnist_root, train_size=20, test_size=20, cache=False)
    again = data.load("mnist-rot", mnist_root, train_size=20, test_size=20)
    cached = data.load("mnist-rot", mnist_root, train_size=20, test_size=20)
    for ds in (again, cached):
        assert torch.equal(ds.train_images, first.train_images) and torch.equal(ds.test_labels, first.test_labels)
    other = data.load("mnist-rot", mnist_root, seed=1, train_size=20, test_size=20)
    assert not torch.equal(other.train_labels, first.train_labels)
    key = data.builder("mnist-rot", mnist_root).key
    assert key != data.builder("mnist-rot", mnist_root, seed=1).key
    assert key != data.builder("mnist-rot", mnist_root, test_size=10).key
    assert "mnist-rot" in data.names()


def test_mnist_rot_rotates_over_the_full_turn():
    ds = rotated_split(bars(400), seed=3, train_size=200, test_size=200)
    for images in (ds.train_images, ds.test_images):
        angles = orientation(images)
        counts = torch.histc(angles, bins=6, min=0, max=180)
        assert counts.min() >= 15  # every 30° sector of the bar's orientation is hit
    # The bar's orientation (mod 180°) is uniform: its mean resultant length on the doubled circle is small.
    doubled = torch.deg2rad(2 * orientation(ds.train_images))
    assert math.hypot(float(doubled.cos().mean()), float(doubled.sin().mean())) < 0.2


def test_mnist_subset_is_balanced_seeded_and_repeatable(tmp_path, monkeypatch):
    root = ten_class_mnist(tmp_path / "data", monkeypatch=monkeypatch)
    ds = data.load("mnist-subset", root, train_size=23)
    assert ds.train_images.shape == (23, 1, 28, 28) and ds.test_images.shape == (20, 1, 28, 28)
    assert torch.bincount(ds.train_labels, minlength=10).tolist() == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    # Each image's label is its number of bright pixels minus one.
    assert torch.equal((ds.train_images[:, 0, 0] > 0).sum(1) - 1, ds.train_labels)
    again = data.load("mnist-subset", root, train_size=23)
    assert torch.equal(again.train_images, ds.train_images)
    other = data.load("mnist-subset", root, train_size=23, seed=5)
    assert torch.equal(torch.bincount(other.train_labels), torch.bincount(ds.train_labels))
    repeated = data.load("mnist-subset", root, train_size=23, repeat=3, test_size=7)
    assert torch.equal(repeated.train_images, ds.train_images.repeat(3, 1, 1, 1)) and len(repeated.test_labels) == 7
    assert repeated.mean == pytest.approx(ds.mean) and repeated.std == pytest.approx(ds.std)
    with pytest.raises(ValueError, match="class"):
        data.load("mnist-subset", root, train_size=100)
    with pytest.raises(ValueError, match="repeat"):
        data.load("mnist-subset", root, repeat=0)


def test_balanced_subset_draws_other_images_for_another_seed():
    images = torch.zeros(200, 1, 28, 28, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(200)  # each image knows its index
    pool = Dataset("mnist", images, torch.arange(200) % 10, images[:10], torch.arange(10), [str(i) for i in range(10)])

    def picked(seed):
        return pool_subset(seed).train_images[:, 0, 0, 0].tolist()

    def pool_subset(seed):
        return balanced_subset(pool, 30, seed)

    assert picked(0) == picked(0) and picked(0) != picked(1)
    assert picked(0) == sorted(picked(0)) and len(set(picked(0))) == 30
    assert torch.bincount(pool_subset(1).train_labels).tolist() == [3] * 10


def test_mnist_rot_fresh_rotations_turn_the_same_training_digits_anew(mnist_root):
    fixed = data.load("mnist-rot", mnist_root, train_size=20, test_size=10)
    fresh = data.load("mnist-rot", mnist_root, train_size=20, test_size=10, fresh_distortions=True)
    assert fixed.draw_train is None and fresh.draw_train is not None
    assert torch.equal(fresh.train_images, fixed.train_images) and torch.equal(fresh.test_images, fixed.test_images)
    index = torch.arange(20)
    one = fresh.draw_train(index, torch.Generator().manual_seed(1))
    two = fresh.draw_train(index, torch.Generator().manual_seed(2))
    assert one.shape == fixed.train_images.shape and one.dtype == torch.uint8 and not torch.equal(one, two)
    ink = one.double().sum((1, 2, 3))  # each draw is its label's digit: disks stay disks, empty stays empty
    assert ink[fresh.train_labels == 1].min() > 0 and ink[fresh.train_labels == 0].max() == 0
    with pytest.raises(ValueError, match="fresh_distortions"):
        data.load("mnist-rot", mnist_root, fresh_distortions="yes")
