"""The built-in data sets: ``cifar10``, ``mnist``, ``fashion-mnist`` and ``folder``."""

from __future__ import annotations

import operator
from pathlib import Path

from stn.data.formats import DataError
from stn.data.official import (
    DEBIAN_FASHION,
    FASHION_CLASSES,
    MNIST_CLASSES,
    Source,
    download,
    downloads_allowed,
    find_cifar10,
    find_folder,
    find_idx,
    read_source,
)
from stn.data.registry import Builder, register


def _official(name: str, root: Path, find, how: str) -> Source:
    source, looked = find(root)
    if source is None:
        reason = "downloads are off (STN_NO_DOWNLOAD)"
        if downloads_allowed():
            try:
                download(name, root)
                source, _ = find(root)
            except Exception as err:  # network, permissions, checksum: all mean "not fetched"
                reason = f"download failed: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
        if source is None:
            raise DataError(
                f"{name} not found; looked for {'; '.join(looked)}; {reason}. {how} under --data-root (or $STN_DATA)"
            )
    return source


def _check_flag(name: str, option: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name}: {option} must be True or False, got {value!r}")


def _check_size(size: object) -> tuple[int, int] | None:
    """``size`` as ``(H, W)`` of positive ints (numpy ints and lists accepted), or None."""
    if size is None:
        return None
    try:
        h, w = (operator.index(v) for v in size)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"folder: image_size must be (height, width), two positive ints, got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"folder: image_size must be (height, width), two positive ints, got {size!r}")
    return h, w


def _builder(name: str, source: Source) -> Builder:
    return Builder(f"{name}-{source.fingerprint()}", lambda: read_source(name, source))


@register("cifar10", "CIFAR-10: 50,000 + 10,000 colour 32x32 images, 10 classes")
def cifar10(root: Path, skip_bad_images: bool = False) -> Builder:
    """Options: ``skip_bad_images`` leaves out unreadable files of an image-folder copy."""
    _check_flag("cifar10", "skip_bad_images", skip_bad_images)
    source = _official(
        "cifar10",
        root,
        find_cifar10,
        "Provide cifar-10-python.tar.gz, its cifar-10-batches-py/ folder, or train/<class>/ and test/<class>/ images",
    )
    if source.kind == "image-folder" and skip_bad_images:
        source = Source(source.kind, source.paths, source.classes, skip_bad_images=True)
    return _builder("cifar10", source)


@register("mnist", "MNIST: 60,000 + 10,000 grayscale 28x28 digits")
def mnist(root: Path) -> Builder:
    return _builder(
        "mnist",
        _official(
            "mnist",
            root,
            lambda r: find_idx(r, ("mnist", "MNIST/raw", "mnist/MNIST/raw"), MNIST_CLASSES),
            "Provide the four IDX files (train-images-idx3-ubyte.gz, ...)",
        ),
    )


@register("fashion-mnist", "Fashion-MNIST: 60,000 + 10,000 grayscale 28x28 clothes")
def fashion_mnist(root: Path) -> Builder:
    def find(r: Path):
        return find_idx(
            r,
            ("fashion-mnist", "FashionMNIST/raw", "fashion-mnist/FashionMNIST/raw"),
            FASHION_CLASSES,
            extra=(DEBIAN_FASHION,),
        )

    how = "Install Debian's dataset-fashion-mnist, or provide the four IDX files"
    return _builder("fashion-mnist", _official("fashion-mnist", root, find, how))


@register("folder", "your own images: --data-root holds train/<class>/* and test/<class>/*")
def folder(root: Path, image_size: tuple[int, int] | None = None, skip_bad_images: bool = False) -> Builder:
    """Options: ``image_size`` ``(H, W)`` resizes every image; without it all must share one size.
    ``skip_bad_images`` leaves out unreadable files (and lists them in ``Dataset.skipped``).

    Images are read as a viewer shows them, by the decoder ``stn predict`` uses too
    (:func:`stn.data.formats.decode_image`): EXIF orientation applied, 16-bit grey scaled by
    255/65535 (not clipped), transparency composited on white. The channels are those of the first
    image: 1 if it shows grey (``L``, ``LA``, ``1``, 16-bit or float grey, a palette of greys), else
    3; every other image is converted to them."""
    _check_flag("folder", "skip_bad_images", skip_bad_images)
    image_size = _check_size(image_size)
    source, looked = find_folder(root, image_size, skip_bad_images)
    if source is None:
        raise DataError(f"no image folder at {root}: looked for {looked[0]}; pass --data-root DIR")
    return _builder(f"folder-{root.resolve().name}", source)
