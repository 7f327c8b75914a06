"""Readers for the official data formats: MNIST-style IDX, CIFAR-10 python batches (folder or
``.tar.gz``) and image-folder trees. Each raises ``DataError`` naming the bad file."""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["IMAGE_SUFFIXES", "DataError", "read_cifar_batches", "read_idx", "read_image_folder"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class DataError(ValueError):
    """A data set is missing, incomplete or corrupt; the message says what and where."""


def read_idx(path: Path) -> Tensor:
    """An IDX file (``.gz`` or raw) of unsigned bytes as a uint8 tensor of its stored shape."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"cannot read {path}: {err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4) if len(raw) >= 4 + 4 * ndim else None
    if dims is None or int(np.prod(dims)) != len(raw) - 4 - 4 * ndim:
        raise DataError(f"{path} is truncated or corrupt (size does not match its header)")
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(tuple(int(d) for d in dims))
    return torch.from_numpy(data.copy())


def read_cifar_batches(files: Iterable[tuple[str, bytes]]) -> tuple[Tensor, Tensor]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels from CIFAR-10 python pickles ``(name, bytes)``."""
    images, labels = [], []
    for name, blob in files:
        try:
            batch = pickle.loads(blob, encoding="latin1")
            data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            label = np.asarray(batch["labels"], dtype=np.int64)
        except Exception as err:  # a pickle can fail in many ways; all mean "corrupt"
            raise DataError(f"corrupt CIFAR-10 batch {name}: {err}") from None
        if len(data) != len(label):
            raise DataError(f"corrupt CIFAR-10 batch {name}: {len(data)} images, {len(label)} labels")
        images.append(torch.from_numpy(data))
        labels.append(torch.from_numpy(label))
    return torch.cat(images), torch.cat(labels)


def cifar_files(source: Path, names: list[str]) -> list[tuple[str, bytes]]:
    """The named members of a ``cifar-10-batches-py`` folder or a ``cifar-10-python.tar.gz``."""
    if source.is_dir():
        missing = [n for n in names if not (source / n).is_file()]
        if missing:
            raise DataError(f"{source} lacks {', '.join(missing)}")
        return [(str(source / n), (source / n).read_bytes()) for n in names]
    try:
        with tarfile.open(source, "r:gz") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            missing = [n for n in names if n not in members]
            if missing:
                raise DataError(f"{source} lacks {', '.join(missing)}")
            return [(f"{source}:{n}", tar.extractfile(members[n]).read()) for n in names]
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataError(f"cannot read {source}: {err}") from None


def image_files(folder: Path) -> tuple[list[str], list[Path], list[int]]:
    """Classes (sorted sub-folders), image paths and labels of a ``<class>/<image>`` folder."""
    classes = sorted(d.name for d in os.scandir(folder) if d.is_dir() and not d.name.startswith("."))
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(
            Path(e.path) for e in os.scandir(folder / name) if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES)
        )
        paths += files
        labels += [label] * len(files)
    return classes, paths, labels


def read_image_folder(
    folder: Path, size: tuple[int, int] | None = None, channels: int | None = None
) -> tuple[list[str], Tensor, Tensor, int]:
    """Decode every image under ``folder/<class>/``.

    Images are converted to ``channels`` (default: those of the first image; 1 or 3) and, if
    ``size`` is given, resized to it; otherwise they must all have the size of the first one.

    Returns:
        classes, images ``(N, C, H, W)`` uint8, labels ``(N,)``, channels.
    """
    from PIL import Image, UnidentifiedImageError

    classes, paths, labels = image_files(folder)
    if not paths:
        raise DataError(f"no images found in {folder}/<class>/ (looked for {', '.join(IMAGE_SUFFIXES)})")

    def decode(path: Path) -> np.ndarray:
        try:
            with Image.open(path) as img:
                img = img.convert("L" if channels == 1 else "RGB")
                if size is not None and img.size != (size[1], size[0]):
                    img = img.resize((size[1], size[0]), Image.BILINEAR)
                return np.asarray(img)
        except (OSError, UnidentifiedImageError, ValueError) as err:
            raise DataError(f"cannot decode image {path}: {err}") from None

    if channels is None:
        with Image.open(paths[0]) as first:
            channels = 1 if first.mode in ("1", "L", "I", "I;16", "F") else 3
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        arrays = list(pool.map(decode, paths, chunksize=256))
    shape = arrays[0].shape
    for path, array in zip(paths, arrays, strict=True):
        if array.shape != shape:
            raise DataError(
                f"{path} is {array.shape[1]}x{array.shape[0]} but {paths[0]} is {shape[1]}x{shape[0]}: "
                "images must share one size (or pass an image size to resize them)"
            )
    stacked = torch.from_numpy(np.stack(arrays))
    images = stacked.unsqueeze(1) if channels == 1 else stacked.permute(0, 3, 1, 2)
    return classes, images.contiguous(), torch.tensor(labels, dtype=torch.int64), channels
