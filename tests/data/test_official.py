"""A data set knows its own files: official-format copies are checked against the official files."""

from __future__ import annotations

import gzip
import os
import pickle
import shutil

import numpy as np
import pytest

from stn import data
from stn.data import DataError, official

from .test_readers import write_cifar, write_idx, write_mnist


def other_mnist(folder, seed: int = 1) -> None:
    """Four IDX files like ``write_mnist``'s but with other contents."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", 30), ("t10k", 10)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), True)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n), True)


def test_fashion_mnist_refuses_mnist_files(tmp_path, trust_idx):
    write_mnist(tmp_path / "digits")
    other_mnist(tmp_path / "clothes")
    trust_idx("mnist", tmp_path / "digits")
    trust_idx("fashion-mnist", tmp_path / "clothes")
    assert data.load("fashion-mnist", tmp_path / "clothes").classes[0] == "T-shirt/top"
    with pytest.raises(DataError) as err:  # the run's MNIST data root, reused for fashion-mnist
        data.load("fashion-mnist", tmp_path / "digits")
    message = str(err.value)
    assert "\n" not in message
    assert "train-images-idx3-ubyte.gz holds MNIST's training images, not Fashion-MNIST's training images" in message
    with pytest.raises(DataError, match="holds Fashion-MNIST's training images, not MNIST's"):
        data.load("mnist", tmp_path / "clothes")


def test_files_of_no_known_data_set_are_described(tmp_path, trust_idx):
    write_mnist(tmp_path / "mnist")
    trust_idx("mnist", tmp_path / "mnist")
    other_mnist(tmp_path / "own" / "mnist")
    with pytest.raises(DataError) as err:
        data.load("mnist", tmp_path / "own")
    message = str(err.value)
    assert "\n" not in message and "train-images-idx3-ubyte.gz is not MNIST's official training images" in message
    assert "shape 30x28x28" in message and "md5" in message


def test_swapped_parts_are_named(tmp_path, trust_idx):
    folder = tmp_path / "mnist"
    write_mnist(folder)
    trust_idx("mnist", folder)
    shutil.copy(folder / "t10k-labels-idx1-ubyte.gz", folder / "train-labels-idx1-ubyte.gz")
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz holds MNIST's test labels, not MNIST's training"):
        data.load("mnist", tmp_path)


def test_an_extracted_copy_passes_like_the_gzipped_one(tmp_path, trust_idx):
    write_mnist(tmp_path / "gz" / "mnist")
    trust_idx("mnist", tmp_path / "gz" / "mnist")
    raw = tmp_path / "raw" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in (tmp_path / "gz" / "mnist").iterdir():
        (raw / path.stem).write_bytes(gzip.decompress(path.read_bytes()))
    assert len(data.load("mnist", tmp_path / "raw").train_labels) == 30


def test_verification_runs_once_per_build(tmp_path, trust_idx, monkeypatch):
    write_mnist(tmp_path / "mnist")
    trust_idx("mnist", tmp_path / "mnist")
    calls = []
    verify = official.verify_idx
    monkeypatch.setattr(official, "verify_idx", lambda *args: calls.append(args[1]) or verify(*args))
    data.load("mnist", tmp_path)
    data.load("mnist", tmp_path)
    assert len(calls) == 4  # the second load came from the cache


def test_the_shipped_fingerprints_tell_the_data_sets_apart():
    mnist, fashion = official.IDX_FINGERPRINTS["mnist"], official.IDX_FINGERPRINTS["fashion-mnist"]
    assert set(mnist) == set(fashion) == set(official.IDX_NAMES)
    for part in official.IDX_NAMES:
        assert mnist[part][0] == fashion[part][0] and mnist[part][1] != fashion[part][1]
    assert mnist["train-images-idx3-ubyte"][0] == 16 + 60000 * 28 * 28


def test_cifar_batches_are_checked(tmp_path, trust_cifar):
    batches = write_cifar(tmp_path / "c")
    trust_cifar(batches)
    assert len(data.load("cifar10", tmp_path / "c").train_labels) == 20
    (batches / "data_batch_2").write_bytes(pickle.dumps({"data": np.zeros((4, 3072), np.uint8), "labels": [0] * 4}))
    with pytest.raises(DataError, match=r"data_batch_2 is not CIFAR-10's official data_batch_2: .* md5"):
        data.load("cifar10", tmp_path / "c")


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_cifar_batch_never_runs_code(tmp_path, trust_cifar):
    marker = tmp_path / "ran"
    batches = write_cifar(tmp_path / "c")
    (batches / "test_batch").write_bytes(pickle.dumps({"data": _RunsCode(marker), "labels": [0]}))
    trust_cifar(batches)  # even a file that passed the checksum may not run code
    with pytest.raises(DataError, match=r"corrupt CIFAR-10 batch .*test_batch: it refers to posix\.mkdir"):
        data.load("cifar10", tmp_path / "c")
    assert not marker.exists()
