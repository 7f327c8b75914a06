"""Where the official data sets live on disk, how to read them, and how to fetch them.

Each data set is looked for in a few places under the data root (the layouts people have: the
official archives, torchvision's ``<Name>/raw/`` folders, image-folder trees); the first place
that holds a complete copy wins. Files in an official format are checked against the official
ones (size and md5 of their decompressed contents) when they are decoded, so MNIST's files are
never read as Fashion-MNIST's; the check runs once per build, and built data sets are cached.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from stn.data.dataset import Dataset
from stn.data.formats import DataError, cifar_files, idx_bytes, parse_idx, read_cifar_batches, read_image_folder

__all__ = ["CIFAR10_MD5", "IDX_FINGERPRINTS", "Source", "find_cifar10", "find_folder", "find_idx", "read_source"]

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

# Size and md5 of the DECOMPRESSED official IDX files: the same whether a copy is gzipped, re-gzipped
# or extracted (torchvision's raw/ folder). MNIST and Fashion-MNIST files share names and sizes, so
# only the md5 tells them apart.
IDX_FINGERPRINTS: dict[str, dict[str, tuple[int, str]]] = {
    "mnist": {
        "train-images-idx3-ubyte": (47040016, "6bbc9ace898e44ae57da46a324031adb"),
        "train-labels-idx1-ubyte": (60008, "a25bea736e30d166cdddb491f175f624"),
        "t10k-images-idx3-ubyte": (7840016, "2646ac647ad5339dbf082846283269ea"),
        "t10k-labels-idx1-ubyte": (10008, "27ae3e4e09519cfbb04c329615203637"),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": (47040016, "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        "train-labels-idx1-ubyte": (60008, "9018921c3c673c538a1fc5bad174d6f9"),
        "t10k-images-idx3-ubyte": (7840016, "8181f5470baa50b63fa0f6fddb340f0a"),
        "t10k-labels-idx1-ubyte": (10008, "15d484375f8d13e6eb1aabb0c3f46965"),
    },
}
# md5 of the official CIFAR-10 python batches (the members of cifar-10-python.tar.gz), as torchvision checks them.
CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
PARTS = {
    "train-images-idx3-ubyte": "training images",
    "train-labels-idx1-ubyte": "training labels",
    "t10k-images-idx3-ubyte": "test images",
    "t10k-labels-idx1-ubyte": "test labels",
}


@dataclass(frozen=True)
class Source:
    """A complete copy of a data set on disk: its format and the files or folders it reads."""

    kind: str  # "cifar-python", "idx", "image-folder"
    paths: tuple[Path, ...]
    classes: tuple[str, ...] = ()
    image_size: tuple[int, int] | None = None
    skip_bad_images: bool = False

    def fingerprint(self) -> str:
        """Changes when any file it reads is added, removed, resized or touched."""
        options = f"|{self.image_size}" + ("|skip-bad" if self.skip_bad_images else "")
        digest = hashlib.sha1(f"{self.kind}|{self.classes}{options}".encode())
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


def find_folder(
    root: Path, image_size: tuple[int, int] | None = None, skip_bad_images: bool = False
) -> tuple[Source | None, list[str]]:
    """A ``train/<class>/`` + ``test/<class>/`` image tree at ``root``."""
    source = _image_folder(root)
    if source:
        source = Source(source.kind, source.paths, image_size=image_size, skip_bad_images=skip_bad_images)
    return source, [f"{root}/train/<class>/ + {root}/test/<class>/ images"]


def _known_idx(size: int, md5: str) -> str | None:
    for name, parts in IDX_FINGERPRINTS.items():
        for part, fingerprint in parts.items():
            if fingerprint == (size, md5):
                return f"{TITLES.get(name, name)}'s {PARTS.get(part, part)}"
    return None


def verify_idx(name: str, part: str, path: Path, raw: bytes, array: Tensor) -> None:
    """Refuse ``path`` (decompressed contents ``raw``, decoded ``array``) unless it is the official
    ``part`` of data set ``name``; the message says what the file holds instead."""
    expected = IDX_FINGERPRINTS.get(name, {}).get(part)
    if expected is None:
        return
    md5 = hashlib.md5(raw).hexdigest()
    if (len(raw), md5) == expected:
        return
    title, what = TITLES.get(name, name), PARTS.get(part, part)
    if known := _known_idx(len(raw), md5):
        raise DataError(f"{path} holds {known}, not {title}'s {what}: point --data-root at a copy of {title}")
    shape = "x".join(str(d) for d in array.shape)
    raise DataError(
        f"{path} is not {title}'s official {what}: it holds an IDX array of shape {shape} "
        f"({len(raw)} bytes, md5 {md5}; the official one has {expected[0]} bytes, md5 {expected[1]})"
    )


def verify_cifar(name: str, blob: bytes) -> None:
    """Refuse a CIFAR-10 batch ``name`` (e.g. ``.../data_batch_1``) that is not the official one."""
    part = Path(name.rsplit(":", 1)[-1]).name
    expected = CIFAR10_MD5.get(part)
    md5 = hashlib.md5(blob).hexdigest()
    if expected is not None and md5 != expected:
        raise DataError(
            f"{name} is not CIFAR-10's official {part}: {len(blob)} bytes with md5 {md5} "
            f"(the official one has md5 {expected})"
        )


def read_source(name: str, source: Source) -> Dataset:
    """Decode a located copy into a :class:`Dataset` (statistics computed from train)."""
    if source.kind == "cifar-python":
        train_files = cifar_files(source.paths[0], CIFAR_TRAIN)
        test_files = cifar_files(source.paths[0], ["test_batch"])
        for member, blob in [*train_files, *test_files]:
            verify_cifar(member, blob)
        train_x, train_y = read_cifar_batches(train_files)
        test_x, test_y = read_cifar_batches(test_files)
        return Dataset(name, train_x, train_y, test_x, test_y, list(source.classes), source=str(source))
    if source.kind == "idx":
        arrays = []
        for path, part in zip(source.paths, IDX_NAMES, strict=True):
            raw = idx_bytes(path)
            arrays.append(parse_idx(raw, path))
            verify_idx(name, part, path, raw, arrays[-1])
        train_x, train_y, test_x, test_y = arrays
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
        skip = source.skip_bad_images
        train = read_image_folder(train_dir, source.image_size, skip_bad=skip)
        size = source.image_size or tuple(train.images.shape[-2:])
        test = read_image_folder(test_dir, size, train.channels, skip_bad=skip)
        if test.classes != train.classes:
            raise DataError(f"{test_dir} has classes {test.classes}, {train_dir} has {train.classes}: they must match")
        names = list(source.classes) or train.classes
        skipped = [str(p) for p in (*train.skipped, *test.skipped)]
        return Dataset(
            name, train.images, train.labels, test.images, test.labels, names, source=str(source), skipped=skipped
        )
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
