"""Where the official data sets live on disk, how to read them, and how to fetch them.

Each data set is looked for in a few places under the data root (the layouts people have: the
official archives, torchvision's ``<Name>/raw/`` folders, image-folder trees); the first place
that holds a complete copy wins.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stn.data.dataset import Dataset
from stn.data.formats import DataError, cifar_files, read_cifar_batches, read_idx, read_image_folder

__all__ = ["Source", "find_cifar10", "find_folder", "find_idx", "read_source"]

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class Source:
    """A complete copy of a data set on disk: its format and the files or folders it reads."""

    kind: str  # "cifar-python", "idx", "image-folder"
    paths: tuple[Path, ...]
    classes: tuple[str, ...] = ()
    image_size: tuple[int, int] | None = None

    def fingerprint(self) -> str:
        """Changes when any file it reads is added, removed, resized or touched."""
        digest = hashlib.sha1(f"{self.kind}|{self.classes}|{self.image_size}".encode())
        for path in self.paths:
            path = path.resolve()
            if path.is_file():
                stat = path.stat()
                digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
                continue
            for folder, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    stat = os.stat(os.path.join(folder, name))
                    digest.update(f"{folder}/{name}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]

    def __str__(self) -> str:
        return ", ".join(str(p) for p in self.paths)


def _image_folder(folder: Path) -> Source | None:
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        return Source("image-folder", (folder / "train", folder / "test"))
    return None


def find_cifar10(root: Path) -> tuple[Source | None, list[str]]:
    """A CIFAR-10 copy under ``root``, and the places looked at (for the error message)."""
    looked = []
    for folder in (root, root / "cifar10", root / "cifar-10", root / "CIFAR10", root / "cifar10-jpeg"):
        for batches in (folder / "cifar-10-batches-py", folder):
            looked.append(f"{batches}/data_batch_1..5 + test_batch")
            if all((batches / n).is_file() for n in [*CIFAR_TRAIN, "test_batch"]):
                return Source("cifar-python", (batches,), tuple(CIFAR10_CLASSES)), looked
        looked.append(f"{folder}/cifar-10-python.tar.gz")
        if (folder / "cifar-10-python.tar.gz").is_file():
            return Source("cifar-python", (folder / "cifar-10-python.tar.gz",), tuple(CIFAR10_CLASSES)), looked
        looked.append(f"{folder}/train/<class>/ + test/<class>/ images")
        if source := _image_folder(folder):
            return source, looked
    return None, looked


def find_idx(
    root: Path, subfolders: tuple[str, ...], classes: list[str], extra: tuple[Path, ...] = ()
) -> tuple[Source | None, list[str]]:
    """A complete set of the four MNIST-style IDX files (``.gz`` or not) under ``root``."""
    looked = []
    for folder in (*(root / s for s in subfolders), root, *extra):
        looked.append(f"{folder}/{{{','.join(IDX_NAMES)}}}[.gz]")
        files = []
        for name in IDX_NAMES:
            found = next((folder / f for f in (name + ".gz", name) if (folder / f).is_file()), None)
            files.append(found)
        if all(files):
            return Source("idx", tuple(files), tuple(classes)), looked
    return None, looked


def find_folder(root: Path, image_size: tuple[int, int] | None = None) -> tuple[Source | None, list[str]]:
    """A ``train/<class>/`` + ``test/<class>/`` image tree at ``root``."""
    source = _image_folder(root)
    if source and image_size:
        source = Source(source.kind, source.paths, image_size=image_size)
    return source, [f"{root}/train/<class>/ + {root}/test/<class>/ images"]


def read_source(name: str, source: Source) -> Dataset:
    """Decode a located copy into a :class:`Dataset` (statistics computed from train)."""
    if source.kind == "cifar-python":
        train_x, train_y = read_cifar_batches(cifar_files(source.paths[0], CIFAR_TRAIN))
        test_x, test_y = read_cifar_batches(cifar_files(source.paths[0], ["test_batch"]))
        return Dataset(name, train_x, train_y, test_x, test_y, list(source.classes), source=str(source))
    if source.kind == "idx":
        train_x, train_y, test_x, test_y = (read_idx(p) for p in source.paths)
        for images, labels, path in ((train_x, train_y, source.paths[0]), (test_x, test_y, source.paths[2])):
            if images.dim() != 3 or labels.dim() != 1 or len(images) != len(labels):
                raise DataError(f"{path}: images {tuple(images.shape)} do not match labels {tuple(labels.shape)}")
        return Dataset(
            name,
            train_x.unsqueeze(1),
            train_y.long(),
            test_x.unsqueeze(1),
            test_y.long(),
            list(source.classes),
            source=str(source),
        )
    if source.kind == "image-folder":
        train_dir, test_dir = source.paths
        classes, train_x, train_y, channels = read_image_folder(train_dir, source.image_size)
        size = source.image_size or tuple(train_x.shape[-2:])
        test_classes, test_x, test_y, _ = read_image_folder(test_dir, size, channels)
        if test_classes != classes:
            raise DataError(f"{test_dir} has classes {test_classes}, {train_dir} has {classes}: they must match")
        names = list(source.classes) or classes
        return Dataset(name, train_x, train_y, test_x, test_y, names, source=str(source))
    raise DataError(f"unknown source kind {source.kind!r}")


def download(name: str, root: Path) -> None:
    """Fetch ``name`` into ``root`` with torchvision's downloaders (they verify checksums)."""
    import torchvision.datasets as tvd

    fetchers: dict[str, Callable] = {"cifar10": tvd.CIFAR10, "mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST}
    root.mkdir(parents=True, exist_ok=True)
    fetch = fetchers[name]
    for train in (True, False):
        fetch(str(root), train=train, download=True)


def downloads_allowed() -> bool:
    """Downloads are on unless ``STN_NO_DOWNLOAD`` is set to a non-empty, non-zero value."""
    return os.environ.get("STN_NO_DOWNLOAD", "") in ("", "0")
