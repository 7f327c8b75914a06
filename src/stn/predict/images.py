"""Finding image files and reading them as the model reads its data (and as a viewer shows them)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from stn.data.formats import IMAGE_SUFFIXES

__all__ = ["ImageError", "image_files", "read_image"]


class ImageError(ValueError):
    """An image file cannot be read or converted; the message names the file and the reason.

    Examples:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> path = folder / "notes.png"
        >>> _ = path.write_text("not an image")
        >>> read_image(path, (1, 28, 28))
        Traceback (most recent call last):
        ...
        stn.predict.images.ImageError: cannot read image ...notes.png: not an image file Pillow can read
    """


def image_files(inputs: Sequence[str | os.PathLike]) -> Iterator[Path]:
    """The files named in ``inputs``, folders expanded (recursively, sorted, lazily) to the image
    files under them. A file named directly is taken whatever its suffix. ``ValueError`` for a
    path that does not exist (checked for all of them before the first is yielded).

    Args:
        inputs: files and folders.

    Examples:
        >>> import tempfile
        >>> from PIL import Image
        >>> folder = Path(tempfile.mkdtemp())
        >>> (folder / "b").mkdir()
        >>> for name in ("a.png", "b/c.jpg", "notes.txt"):
        ...     Image.new("L", (4, 4)).save(folder / name, format="PNG")
        >>> [p.relative_to(folder).as_posix() for p in image_files([folder])]
        ['a.png', 'b/c.jpg']
    """
    paths = [Path(p) for p in inputs]
    for path in paths:
        if not path.exists():
            raise ValueError(f"no such file or folder: {path}")
    for path in paths:
        yield from _walk(path) if path.is_dir() else (path,)


def _walk(folder: Path) -> Iterator[Path]:
    entries = sorted(os.scandir(folder), key=lambda e: e.name)
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _walk(Path(entry.path))
        elif entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES):
            yield Path(entry.path)


def read_image(path: str | os.PathLike, input_shape: Sequence[int]) -> tuple[np.ndarray, tuple[int, int]]:
    """The image at ``path`` as the model reads it: uint8 ``(C, H, W)`` for ``input_shape =
    (C, H, W)`` (``C`` 1: Pillow's ``L``; 3: ``RGB``; bilinear resize), and its original ``(width,
    height)`` as a viewer shows it, the frame of ``boxes``. Decoded exactly as folder data sets
    are, by :func:`stn.data.formats.decode_image`: EXIF orientation applied (a rotated phone photo
    is upright, its width and height those shown), 16-bit grey scaled by 255/65535 and float grey
    read as 0..1 (not clipped), transparency composited on white.
    ``ImageError`` naming the file if it is not an image, is truncated or corrupt, or has a mode
    that cannot be converted.

    Args:
        path: the image file.
        input_shape: ``(C, H, W)`` the model reads (``C`` 1 or 3).

    Examples:
        >>> import tempfile
        >>> from PIL import Image
        >>> path = Path(tempfile.mkdtemp()) / "wide.png"
        >>> Image.new("RGB", (60, 20), color=(255, 0, 0)).save(path)
        >>> array, size = read_image(path, (1, 28, 28))  # grey, resized to 28 x 28
        >>> array.shape, array.dtype.name, size
        ((1, 28, 28), 'uint8', (60, 20))
    """
    from stn.data.formats import UnreadableImage, decode_image, strict_pillow

    channels, height, width = (int(v) for v in input_shape)
    try:
        with strict_pillow():
            array, size = decode_image(Path(path), channels, (height, width))
    except UnreadableImage as err:
        raise ImageError(str(err)) from None
    array = array[None] if channels == 1 else array.transpose(2, 0, 1)
    return np.ascontiguousarray(array), size


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
