"""The distorted MNIST data sets (built from a tiny fake MNIST) and the ``glyphs`` data set."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest
import torch

from stn import data
from stn.data import glyphs

from . import official_files

SHAPES = {"mnist-r": 28, "mnist-rts": 42, "mnist-p": 28, "mnist-e": 28, "mnist-tc": 60}


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def fake_mnist(root, train: int = 30, test: int = 12, monkeypatch: pytest.MonkeyPatch | None = None):
    """MNIST's four IDX files under ``root/mnist``: label 1 a bright disk, label 0 an empty image.
    With ``monkeypatch``, they pass as the official MNIST files for the test."""
    folder = root / "mnist"
    folder.mkdir(parents=True)
    ys, xs = np.mgrid[:28, :28]
    disk = (((xs - 13.5) ** 2 + (ys - 13.5) ** 2) <= 81).astype(np.uint8) * 255
    for split, n in (("train", train), ("t10k", test)):
        labels = (np.arange(n) * 7 % 3 == 0).astype(np.uint8)
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", disk[None] * labels[:, None, None])
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    if monkeypatch is not None:
        official_files.trust_idx(monkeypatch, "mnist", folder)
    return root


@pytest.fixture
def mnist_root(tmp_path, monkeypatch):
    return fake_mnist(tmp_path / "data", monkeypatch=monkeypatch)


@pytest.mark.parametrize("name", SHAPES)
def test_variant_shapes_labels_and_statistics(mnist_root, name):
    mnist = data.load("mnist", mnist_root)
    ds = data.load(name, mnist_root)
    side = SHAPES[name]
    assert ds.train_images.shape == (30, 1, side, side) and ds.test_images.shape == (12, 1, side, side)
    assert torch.equal(ds.train_labels, mnist.train_labels) and torch.equal(ds.test_labels, mnist.test_labels)
    assert ds.classes == mnist.classes and ds.name == name
    # Labels follow their images: every disk keeps more ink than any empty image gets (clutter).
    for images, labels in ((ds.train_images, ds.train_labels), (ds.test_images, ds.test_labels)):
        ink = images.double().sum((1, 2, 3)) / 255
        assert ink[labels == 1].min() > ink[labels == 0].max()
    assert ds.mean[0] > 0 and ds.std[0] > 0


@pytest.mark.parametrize("name", SHAPES)
def test_seeded_and_cached_under_a_key_that_follows_its_inputs(mnist_root, name):
    first = data.load(name, mnist_root, cache=False)
    again = data.load(name, mnist_root)  # built, then cached
    cached = data.load(name, mnist_root)  # read back
    for ds in (again, cached):
        assert torch.equal(ds.train_images, first.train_images) and torch.equal(ds.test_images, first.test_images)
    other = data.load(name, mnist_root, seed=1, cache=False)
    assert not torch.equal(other.train_images, first.train_images)
    assert not torch.equal(first.train_images[:12], first.test_images)  # the splits have their own streams

    key = data.builder(name, mnist_root).key
    assert key != data.builder(name, mnist_root, seed=1).key
    assert key != data.builder(name, mnist_root, train_size=10).key
    images = mnist_root / "mnist" / "train-images-idx3-ubyte.gz"
    os.utime(images, ns=(images.stat().st_atime_ns, images.stat().st_mtime_ns + 10**9))
    assert data.builder(name, mnist_root).key != key


def test_sizes_keep_the_first_images(mnist_root):
    small = data.load("mnist-e", mnist_root, train_size=10, test_size=5)
    full = data.load("mnist", mnist_root)
    assert len(small.train_labels) == 10 and len(small.test_labels) == 5
    assert torch.equal(small.train_labels, full.train_labels[:10])
    with pytest.raises(ValueError, match="train_size"):
        data.load("mnist-e", mnist_root, train_size=0)


def test_variants_need_mnist(tmp_path):
    with pytest.raises(data.DataError, match="mnist not found"):
        data.load("mnist-rts", tmp_path)


def test_glyphs_are_drawn_distinct_and_seeded():
    digits = glyphs.render_digits()
    assert digits.shape == (10, 1, 28, 28) and digits.dtype == torch.uint8
    ink = digits.flatten(1).float()
    assert (ink.sum(1) > 0).all()
    distance = torch.cdist(ink, ink)
    assert distance[~torch.eye(10, dtype=torch.bool)].min() > 255  # no two digits alike
    # The glyph fits the 20x20 box in the middle, like MNIST's digits.
    assert digits[..., :3, :].sum() == 0 and digits[..., -3:, :].sum() == 0

    ds = data.load("glyphs", train_size=60, test_size=20, canvas=40)
    assert ds.train_images.shape == (60, 1, 40, 40) and ds.test_images.shape == (20, 1, 40, 40)
    assert ds.classes == [str(d) for d in range(10)]
    assert ds.train_labels.min() >= 0 and ds.train_labels.max() <= 9 and len(ds.train_labels.unique()) > 5
    again = data.load("glyphs", train_size=60, test_size=20, canvas=40, cache=False)
    assert torch.equal(again.train_images, ds.train_images) and torch.equal(again.test_labels, ds.test_labels)
    other = data.load("glyphs", train_size=60, test_size=20, canvas=40, seed=1, cache=False)
    assert not torch.equal(other.train_images, ds.train_images)


def test_glyph_labels_follow_their_images(monkeypatch):
    # With the distortions' randomness at zero, each image is exactly a template of its label.
    monkeypatch.setattr(glyphs, "MAX_DEGREES", 0.0)
    monkeypatch.setattr(glyphs, "SCALE", (1.0, 1.0))
    monkeypatch.setattr(glyphs, "ELASTIC_STD", 0.0)
    images, labels = glyphs.make_glyphs(40, torch.Generator().manual_seed(0), canvas=28, pieces=0)
    templates = torch.stack([glyphs.render_digits(stroke=s) for s in glyphs.STROKES], dim=1)  # (10, strokes, ...)
    for image, label in zip(images, labels, strict=True):
        assert any(torch.equal(image, t) for t in templates[label])
    assert len(labels.unique()) > 5
    with pytest.raises(ValueError, match="canvas"):
        data.load("glyphs", canvas=20)


def test_glyphs_without_freetype_use_the_bitmap_font(monkeypatch):
    from PIL import ImageFont

    monkeypatch.setattr(glyphs.ImageFont, "load_default", lambda size=None: ImageFont.load_default_imagefont())
    for stroke in glyphs.STROKES:
        ink = glyphs.render_digits(stroke=stroke).flatten(1).float()
        distance = torch.cdist(ink, ink)
        assert distance[~torch.eye(10, dtype=torch.bool)].min() > 255
