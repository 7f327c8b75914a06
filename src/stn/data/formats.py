"""Readers for the official data formats: MNIST-style IDX, CIFAR-10 python batches (folder or
``.tar.gz``) and image-folder trees. Each raises ``DataError`` naming the bad file."""

from __future__ import annotations

import codecs
import contextlib
import gzip
import io
import math
import os
import pickle
import tarfile
import threading
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "BACKGROUND",
    "GREY_MODES",
    "IMAGE_SUFFIXES",
    "DataError",
    "ImageFolder",
    "UnreadableImage",
    "decode_image",
    "idx_bytes",
    "parse_idx",
    "read_cifar_batches",
    "read_idx",
    "read_image_folder",
    "shows_grey",
    "strict_pillow",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class DataError(ValueError):
    """A data set is missing, incomplete or corrupt; the message says what and where.

    Examples:
        >>> stn.data.load("nope")
        Traceback (most recent call last):
        ...
        stn.data.formats.DataError: unknown data set 'nope'; choose one of: cifar10, mnist, ...
    """


def idx_bytes(path: Path) -> bytes:
    """The contents of an IDX file, decompressed if its name ends in ``.gz``."""
    try:
        return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"cannot read {path}: {_first_line(err)}") from None


def read_idx(path: Path) -> Tensor:
    """An IDX file (``.gz`` or raw) of unsigned bytes as a uint8 tensor of its stored shape."""
    return parse_idx(idx_bytes(path), path)


def parse_idx(raw: bytes, path: Path) -> Tensor:
    """The IDX contents ``raw`` (read from ``path``, named in errors) as a uint8 tensor."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = [int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)] if len(raw) >= 4 + 4 * ndim else None
    if dims is None or min(dims, default=0) < 0 or math.prod(dims) != len(raw) - 4 - 4 * ndim:
        raise DataError(f"{path} is truncated or corrupt (size does not match its header)")
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(tuple(dims))
    return torch.from_numpy(data.copy())


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays only: a pickle naming any other global is refused,
    so a crafted batch file cannot run code."""

    _GLOBALS: ClassVar[dict[tuple[str, str], object]] = {
        ("numpy.core.multiarray", "_reconstruct"): np.zeros(0).__reduce__()[0],
        ("numpy._core.multiarray", "_reconstruct"): np.zeros(0).__reduce__()[0],
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._GLOBALS[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR-10 batch never holds") from None


def read_cifar_batches(files: Iterable[tuple[str, bytes]]) -> tuple[Tensor, Tensor]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels from CIFAR-10 python pickles ``(name, bytes)``.

    Only plain data and numpy arrays are unpickled: nothing in the file can run code."""
    images, labels = [], []
    for name, blob in files:
        try:
            batch = _ArrayUnpickler(io.BytesIO(blob), encoding="latin1").load()
            data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            label = np.asarray(batch["labels"], dtype=np.int64)
        except Exception as err:  # a pickle can fail in many ways; all mean "corrupt"
            raise DataError(f"corrupt CIFAR-10 batch {name}: {_first_line(err)}") from None
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
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DataError(f"cannot read {source}: {_first_line(err)}") from None


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


class ImageFolder(NamedTuple):
    """What :func:`read_image_folder` read: images ``(N, C, H, W)`` uint8, labels ``(N,)`` int64,
    the class names (index = label), the channel count, and the unreadable files it skipped."""

    classes: list[str]
    images: Tensor
    labels: Tensor
    channels: int
    skipped: list[Path]


LISTED = 10  # unreadable files named in an error; the rest are counted
_PILLOW = threading.Lock()  # guards Pillow's global LOAD_TRUNCATED_IMAGES while a folder is read


def _png_complete(blob: bytes) -> bool:
    """Whether the PNG ``blob`` holds whole chunks up to its ``IEND`` (Pillow stops reading at the
    end of the image data, so a file cut after it would pass)."""
    at = 8
    while at + 8 <= len(blob):
        length, kind = int.from_bytes(blob[at : at + 4], "big"), blob[at + 4 : at + 8]
        at += 12 + length
        if kind == b"IEND":
            return at <= len(blob)
    return False


def _bad_images(folder: Path, bad: list[tuple[Path, str]], total: int) -> str:
    named = "; ".join(f"{path} ({reason})" for path, reason in bad[:LISTED])
    more = f"; and {len(bad) - LISTED} more" if len(bad) > LISTED else ""
    return f"{len(bad)} of {total} images under {folder} cannot be read: {named}{more}"


class UnreadableImage(DataError):
    """An image file that cannot be decoded completely; ``reason`` says why (one line)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot read image {path}: {reason}")
        self.path, self.reason = path, reason


@contextlib.contextmanager
def strict_pillow() -> Iterator[None]:
    """Pillow refuses truncated files inside (its global ``LOAD_TRUNCATED_IMAGES`` off, under a lock)."""
    from PIL import ImageFile

    with _PILLOW:
        tolerant, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = tolerant


BACKGROUND = 255
"""The grey level transparent pixels are composited on: white, as a browser or a document shows a
transparent image (a drawing or a scanned glyph with a transparent background is dark on white).
Every kind of transparency gets it: an alpha band (``LA``, ``PA``, ``RGBA`` and their premultiplied
``La``, ``RGBa``), a palette's transparent entries and a PNG's ``tRNS`` colour (``P``, ``L``,
``RGB``, ``1``, 16-bit grey)."""

GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
"""Pillow modes that show grey (one channel); a palette image (``P``, ``PA``) is grey when
every colour of its palette that is not fully transparent is grey (R = G = B)."""

_HIGH_DEPTH = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
_PLAIN_MODES = frozenset({"1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr"})  # Pillow converts these right


def _palette_is_grey(img) -> bool:
    """Whether every colour of the palette of ``img`` (``P`` or ``PA``) that is not fully
    transparent is grey."""
    colours = np.asarray(img.getpalette("RGB") or [], dtype=np.uint8).reshape(-1, 3)
    shown = np.ones(len(colours), dtype=bool)
    transparency = img.info.get("transparency") if img.mode == "P" else None
    if isinstance(transparency, int) and 0 <= transparency < len(colours):
        shown[transparency] = False
    elif isinstance(transparency, bytes):  # PNG tRNS: the alpha of the first entries
        alpha = np.frombuffer(transparency[: len(colours)], dtype=np.uint8)
        shown[: len(alpha)] = alpha > 0
    return bool((colours[shown] == colours[shown, :1]).all())


def shows_grey(img) -> bool:
    """Whether the Pillow image ``img`` shows grey (1 channel) or colour (3), by the rules of
    :data:`GREY_MODES`: the channels a folder data set takes from its first image."""
    if img.mode in ("P", "PA"):
        return _palette_is_grey(img)
    return img.mode in GREY_MODES


def _high_depth_grey(img) -> np.ndarray:
    """A 16-bit, 32-bit integer or float grey image as uint8 levels: 16-bit (and ``I``, clipped to
    0..65535) scaled by 255/65535 with rounding (``round(v / 257)``, the inverse of 8-to-16-bit's
    ``v * 257``); float (``F``) taken as 0..1 (clipped, NaN as 0) times 255, rounded."""
    raw = np.asarray(img)
    if img.mode == "F":
        return np.rint(np.clip(np.nan_to_num(raw.astype(np.float64), nan=0.0), 0.0, 1.0) * 255).astype(np.uint8)
    levels = np.clip(raw.astype(np.int64), 0, 65535)
    return ((levels * 255 + 32767) // 65535).astype(np.uint8)


def _composite(values: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``values`` (``(H, W)`` or ``(H, W, 3)`` uint8) over :data:`BACKGROUND` by ``alpha`` ``(H, W)``."""
    if values.ndim == 3:
        alpha = alpha[..., None]
    a = alpha.astype(np.uint32)
    return ((values.astype(np.uint32) * a + BACKGROUND * (255 - a) + 127) // 255).astype(np.uint8)


def _as_shown(img, target: str):
    """The loaded, upright Pillow image ``img`` as Pillow mode ``target`` (``L`` or ``RGB``), the
    way a viewer shows it (see :func:`decode_image`). ``ValueError`` for a mode that does not
    convert."""
    from PIL import Image

    mode = img.mode
    transparency = img.info.get("transparency")
    if mode in _HIGH_DEPTH:
        values = _high_depth_grey(img)
        if isinstance(transparency, int | float) and mode != "F":  # a 16-bit grey PNG's tRNS level
            values = _composite(values, np.where(np.asarray(img) == transparency, 0, 255).astype(np.uint8))
    elif mode in _ALPHA_MODES or (mode in _PLAIN_MODES and transparency is not None):
        banded = np.asarray(img.convert("LA" if shows_grey(img) else "RGBA"))
        values = _composite(banded[..., :-1].squeeze(-1) if banded.shape[-1] == 2 else banded[..., :3], banded[..., -1])
    else:  # no transparency and 8 bits deep (or a mode only Pillow knows): Pillow converts it
        return img.convert(target)
    if values.ndim == 2 and target == "RGB":
        values = np.repeat(values[..., None], 3, axis=2)
    shown = Image.fromarray(np.ascontiguousarray(values))
    return shown.convert("L") if target == "L" and values.ndim == 3 else shown


def decode_image(path: Path, channels: int, size: tuple[int, int] | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """The image at ``path`` as a viewer shows it, as uint8 ``(H, W)`` (``channels`` 1: Pillow's
    ``L``) or ``(H, W, 3)`` (``RGB``), bilinearly resized to ``size`` ``(H, W)`` if given, and its
    ``(width, height)`` as shown. The one decoder of folder data sets and ``stn predict``.

    - EXIF orientation is applied (:func:`PIL.ImageOps.exif_transpose`, all 8 orientations):
      the array and the reported size are those of the upright image a viewer shows, so a
      rotated phone photo's width and height are swapped from those stored in the file.
    - 16-bit grey (``I;16``, ``I;16B``, ``I``) is scaled to 8 bits by 255/65535 with rounding
      (``I`` clipped to 0..65535 first), not clipped; float grey (``F``) is taken as 0..1 (a
      viewer's convention), clipped, times 255 and rounded. Pillow itself reads 16-bit colour
      PNGs as 8-bit (the high byte of each sample).
    - Transparency (an alpha band, a palette's transparent entries, a ``tRNS`` colour) is
      composited on white (:data:`BACKGROUND`), for grey and colour images alike.
    - Grey (:data:`GREY_MODES`, or a palette of grey colours) becomes ``RGB`` by repeating its
      level; colour (``RGB``, ``CMYK``, a colour palette...) becomes ``L`` by Pillow's ITU-R
      601-2 luma, after compositing. ``1`` reads as 0 and 255.

    :class:`UnreadableImage` if it is not an image, is truncated or corrupt, or has a mode that
    does not convert. Call inside :func:`strict_pillow` to refuse truncated files."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    target = "L" if channels == 1 else "RGB"
    try:
        blob = Path(path).read_bytes()
        with Image.open(io.BytesIO(blob)) as img:
            img.load()
            if img.format == "PNG" and not _png_complete(blob):
                raise OSError("image file is truncated (it ends before its IEND chunk)")
            ImageOps.exif_transpose(img, in_place=True)
            shown_size, mode = img.size, img.mode
            try:
                img = _as_shown(img, target)
            except ValueError:
                raise UnreadableImage(path, f"cannot convert its mode {mode} to {target}") from None
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            return np.asarray(img), shown_size
    except UnidentifiedImageError:
        raise UnreadableImage(path, "not an image file Pillow can read") from None
    except UnreadableImage:
        raise
    except Exception as err:  # Pillow's decoders fail in many ways on bad files; all mean "unreadable"
        raise UnreadableImage(path, f"truncated or corrupt ({_first_line(err)})") from None


def _decode_or_reason(path: Path, channels: int, size: tuple[int, int] | None) -> np.ndarray | str:
    try:
        return decode_image(path, channels, size)[0]
    except UnreadableImage as err:
        return err.reason


def _first_channels(paths: list[Path]) -> int:
    """1 or 3: the channels of the first readable image, by :func:`shows_grey` (an unreadable
    one is reported later)."""
    from PIL import Image

    for path in paths:
        try:
            with Image.open(path) as first:
                return 1 if shows_grey(first) else 3
        except Exception:  # reported with the others when the folder is decoded
            continue
    return 3


def read_image_folder(
    folder: Path, size: tuple[int, int] | None = None, channels: int | None = None, skip_bad: bool = False
) -> ImageFolder:
    """Decode every image under ``folder/<class>/``.

    Each image is read as a viewer shows it (:func:`decode_image`: EXIF orientation applied,
    16-bit and float grey scaled, transparency composited on white), converted to ``channels``
    (default: 1 if the first readable image shows grey by :func:`shows_grey`, such as ``L``,
    ``LA``, 16-bit grey, ``1`` or a palette of greys, else 3) and, if ``size`` ``(H, W)`` is
    given, resized to it; otherwise they must all have the size of the first one, as shown.

    A file Pillow cannot decode completely (not an image, truncated, a mode that does not
    convert) is an error naming every such file (the first :data:`LISTED`, then a count), or,
    with ``skip_bad``, left out and listed in ``skipped``. Truncated files are refused even if
    ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is set.
    """
    classes, paths, labels = image_files(folder)
    if not paths:
        raise DataError(f"no images found in {folder}/<class>/ (looked for {', '.join(IMAGE_SUFFIXES)})")
    with strict_pillow():
        channels = channels or _first_channels(paths)
        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            decoded = list(pool.map(lambda path: _decode_or_reason(path, channels, size), paths, chunksize=256))

    bad = [(path, result) for path, result in zip(paths, decoded, strict=True) if isinstance(result, str)]
    if bad and (not skip_bad or len(bad) == len(paths)):
        hint = (
            "; none is readable"
            if skip_bad
            else "; fix or remove them, or pass skip_bad_images=True (--skip-bad-images) to skip them"
        )
        raise DataError(_bad_images(folder, bad, len(paths)) + hint)
    kept = [(p, a, y) for p, a, y in zip(paths, decoded, labels, strict=True) if not isinstance(a, str)]
    first, shape = kept[0][0], kept[0][1].shape
    for path, array, _ in kept:
        if array.shape != shape:
            raise DataError(
                f"{path} is {array.shape[0]}x{array.shape[1]} but {first} is {shape[0]}x{shape[1]} (HxW): "
                "images must share one size (or pass an image size to resize them)"
            )
    stacked = torch.from_numpy(np.stack([array for _, array, _ in kept]))
    images = stacked.unsqueeze(1) if channels == 1 else stacked.permute(0, 3, 1, 2)
    kept_labels = torch.tensor([y for _, _, y in kept], dtype=torch.int64)
    return ImageFolder(classes, images.contiguous(), kept_labels, channels, [path for path, _ in bad])
