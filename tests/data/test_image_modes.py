"""Every kind of image file is read as a viewer shows it, by the one decoder that folder data sets
and ``stn predict`` share (:func:`stn.data.formats.decode_image`). Each file is written by Pillow
in the test: 8-bit grey and colour, 16-bit and float grey (scaled, not clipped), transparency
(composited on white), CMYK, 1-bit, and EXIF orientation (applied, the size reported as shown)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from stn import data
from stn.data.formats import decode_image, read_image_folder, strict_pillow
from stn.predict import read_image

WHITE = 255


def decode(path, channels: int, size=None) -> np.ndarray:
    with strict_pillow():
        return decode_image(path, channels, size)[0]


def luma(rgb: np.ndarray) -> np.ndarray:
    """Pillow's ``RGB`` -> ``L`` (ITU-R 601-2), the reference for colour read as grey."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb.astype(np.uint8))).convert("L"))


def first_channels(tmp_path, img: Image.Image, name: str = "first.png", **options) -> int:
    """The channels a folder data set takes from ``img`` as its first image."""
    (tmp_path / "folder" / "a").mkdir(parents=True)
    img.save(tmp_path / "folder" / "a" / name, **options)
    return read_image_folder(tmp_path / "folder").channels


def digit16() -> np.ndarray:
    """A 28x28 digit-like stroke with soft edges: every 8-bit level 0..255 appears, as 16 bits (x257)."""
    yy, xx = np.mgrid[0:28, 0:28]
    ring = np.abs(np.hypot(yy - 13.5, xx - 13.5) - 8.0)
    levels = np.clip(255 * (1 - ring / 5), 0, 255).round().astype(np.uint16)
    levels.flat[:256] = np.arange(256)  # and the whole ramp in the first rows
    return levels


# ---------------------------------------------------------------------------------- 8-bit
def test_8bit_grey(tmp_path):
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(levels).save(tmp_path / "grey.png")
    assert np.array_equal(decode(tmp_path / "grey.png", 1), levels)
    assert np.array_equal(decode(tmp_path / "grey.png", 3), np.repeat(levels[..., None], 3, axis=2))
    assert first_channels(tmp_path, Image.fromarray(levels)) == 1


def test_8bit_rgb(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert np.array_equal(decode(tmp_path / "rgb.png", 3), rgb)
    assert np.array_equal(decode(tmp_path / "rgb.png", 1), luma(rgb))
    assert first_channels(tmp_path, Image.fromarray(rgb)) == 3


# ---------------------------------------------------------------------- 16-bit and float grey
def test_16bit_grey_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "grey16.png"
    Image.fromarray(np.array([[0, 16384, 32768, 65535, 257, 128]], dtype=np.uint16)).save(path)
    with Image.open(path) as written:
        assert written.mode == "I;16"
    got = decode(path, 1).astype(int)[0]
    assert got[0] == 0 and abs(got[1] - 64) <= 1 and abs(got[2] - 128) <= 1 and got[3] == WHITE
    assert got[4] == 1 and got[5] == 0  # round(v / 257): 257 is one 8-bit level; 128 rounds down

    digit = digit16()
    Image.fromarray(digit * 257).save(tmp_path / "digit16.png")
    read = decode(tmp_path / "digit16.png", 1)
    assert np.array_equal(read, digit.astype(np.uint8))  # every grey level kept, not binarised
    assert len(np.unique(read)) == 256
    assert first_channels(tmp_path, Image.fromarray(digit * 257)) == 1


def test_16bit_grey_to_rgb(tmp_path):
    digit = digit16()
    Image.fromarray(digit * 257).save(tmp_path / "digit16.png")
    rgb = decode(tmp_path / "digit16.png", 3)
    assert rgb.shape == (28, 28, 3)
    for channel in range(3):
        assert np.array_equal(rgb[..., channel], digit.astype(np.uint8))


def test_16bit_big_endian_and_32bit_tiff(tmp_path):
    levels = np.array([[0, 16384, 65535, 70000, -5]], dtype=np.int64)
    big = Image.frombytes("I;16B", (3, 1), levels[:, :3].astype(">u2").tobytes())
    big.save(tmp_path / "big.tif")
    Image.fromarray(levels.astype(np.int32)).save(tmp_path / "wide.tif")
    with Image.open(tmp_path / "big.tif") as a, Image.open(tmp_path / "wide.tif") as b:
        assert (a.mode, b.mode) == ("I;16B", "I")
    assert decode(tmp_path / "big.tif", 1).tolist() == [[0, 64, 255]]
    assert decode(tmp_path / "wide.tif", 1).tolist() == [[0, 64, 255, 255, 0]]  # I: clipped to 0..65535


def test_float_tiff_is_read_as_0_to_1(tmp_path):
    values = np.array([[0.0, 0.25, 0.5, 1.0, 2.0, -1.0, np.nan]], dtype=np.float32)
    Image.fromarray(values).save(tmp_path / "float.tif")
    with Image.open(tmp_path / "float.tif") as written:
        assert written.mode == "F"
    assert decode(tmp_path / "float.tif", 1).tolist() == [[0, 64, 128, 255, 255, 0, 0]]
    assert first_channels(tmp_path, Image.fromarray(values), "first.tif") == 1


# ----------------------------------------------------------------------------- transparency
def test_palette_with_transparency(tmp_path):
    palette = Image.new("P", (4, 1))
    palette.putpalette([0, 0, 0, 200, 30, 40, 255, 0, 255, 90, 90, 90])  # black, red, magenta (hidden), grey
    palette.putdata([0, 1, 2, 3])
    palette.save(tmp_path / "p.png", transparency=2)
    palette.save(tmp_path / "p.gif", transparency=2)
    for name in ("p.png", "p.gif"):
        rgb = decode(tmp_path / name, 3)
        assert rgb.tolist() == [[[0, 0, 0], [200, 30, 40], [WHITE] * 3, [90, 90, 90]]], name
        assert decode(tmp_path / name, 1).tolist() == [[0, int(luma(rgb)[0, 1]), WHITE, 90]], name
    # the channels follow the palette's shown colours: greys (the hidden magenta aside) are grey
    greys = palette.copy()
    greys.putpalette([0, 0, 0, 120, 120, 120, 255, 0, 255, 90, 90, 90])
    assert first_channels(tmp_path / "grey", greys, transparency=2) == 1
    assert first_channels(tmp_path / "colour", palette, transparency=2) == 3


def test_grey_with_alpha(tmp_path):
    grey_alpha = np.array([[[100, 255], [100, 0], [0, 128], [200, 64]]], dtype=np.uint8)
    Image.fromarray(grey_alpha, "LA").save(tmp_path / "la.png")
    expected = [[100, WHITE, (255 * 127 + 127) // 255, (200 * 64 + 255 * 191 + 127) // 255]]
    assert decode(tmp_path / "la.png", 1).tolist() == expected
    assert decode(tmp_path / "la.png", 3)[..., 0].tolist() == expected
    assert first_channels(tmp_path, Image.fromarray(grey_alpha, "LA")) == 1


def test_rgba(tmp_path):
    rgba = np.array([[[10, 20, 30, 255], [10, 20, 30, 0], [0, 0, 0, 0], [200, 0, 100, 128]]], dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    half = [(v * 128 + 255 * 127 + 127) // 255 for v in (200, 0, 100)]
    expected = np.array([[[10, 20, 30], [WHITE] * 3, [WHITE] * 3, half]], dtype=np.uint8)
    assert np.array_equal(decode(tmp_path / "rgba.png", 3), expected)
    assert np.array_equal(decode(tmp_path / "rgba.png", 1), luma(expected))
    assert first_channels(tmp_path, Image.fromarray(rgba)) == 3


def test_trns_colour_of_grey_png(tmp_path):
    Image.fromarray(np.array([[10, 20, 30]], dtype=np.uint8)).save(tmp_path / "trns.png", transparency=20)
    assert decode(tmp_path / "trns.png", 1).tolist() == [[10, WHITE, 30]]


# ------------------------------------------------------------------------------ CMYK, 1-bit
def test_cmyk_jpeg(tmp_path):
    blocks = np.array([[[255, 0, 0], [0, 128, 255]], [[20, 200, 60], [240, 240, 240]]], dtype=np.uint8)
    rgb = np.kron(blocks, np.ones((16, 16, 1), dtype=np.uint8))
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    with Image.open(tmp_path / "cmyk.jpg") as written:
        assert written.mode == "CMYK"
    read = decode(tmp_path / "cmyk.jpg", 3).astype(int)
    assert np.abs(read[4:12, 4:12] - rgb[4:12, 4:12]).max() <= 6  # inside the blocks, JPEG's loss only
    assert np.abs(read[20:28, 20:28] - rgb[20:28, 20:28]).max() <= 6
    assert np.abs(decode(tmp_path / "cmyk.jpg", 1).astype(int) - luma(read)).max() <= 1
    assert first_channels(tmp_path, Image.fromarray(rgb).convert("CMYK"), "first.jpg") == 3


def test_1bit(tmp_path):
    bits = np.array([[True, False, True], [False, False, True]])
    Image.fromarray(bits).save(tmp_path / "bits.png")
    with Image.open(tmp_path / "bits.png") as written:
        assert written.mode == "1"
    assert decode(tmp_path / "bits.png", 1).tolist() == (bits * 255).tolist()
    assert decode(tmp_path / "bits.png", 3)[..., 1].tolist() == (bits * 255).tolist()
    assert first_channels(tmp_path, Image.fromarray(bits)) == 1


# --------------------------------------------------------------------------- EXIF orientation
# Where the EXIF standard says the stored picture's rows and columns lie on the upright one a viewer
# shows: the stored array from the upright array (written out here, independently of Pillow).
STORED = {
    1: lambda up: up,
    2: lambda up: up[:, ::-1],  # mirrored left-right
    3: lambda up: up[::-1, ::-1],  # rotated 180°
    4: lambda up: up[::-1],  # mirrored top-bottom
    5: lambda up: up.swapaxes(0, 1),  # transposed
    6: lambda up: np.rot90(up, 1),  # stored a quarter turn anticlockwise: shown turned clockwise
    7: lambda up: up[::-1, ::-1].swapaxes(0, 1),  # transversed
    8: lambda up: np.rot90(up, -1),  # stored a quarter turn clockwise: shown turned anticlockwise
}


def upright() -> np.ndarray:
    """A 32-wide, 48-tall picture of six solid 16-pixel blocks, each its own colour (a JPEG keeps them)."""
    blocks = np.array(
        [[[250, 250, 250], [10, 10, 10]], [[200, 30, 30], [30, 200, 30]], [[30, 30, 200], [200, 200, 30]]],
        dtype=np.uint8,
    )
    return np.kron(blocks, np.ones((16, 16, 1), dtype=np.uint8))


def save_oriented(path, orientation: int, picture: np.ndarray | None = None) -> np.ndarray:
    """Save the upright ``picture`` at ``path`` as a JPEG stored as a camera would with EXIF
    ``orientation``; returns the upright picture."""
    picture = upright() if picture is None else picture
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.ascontiguousarray(STORED[orientation](picture))).save(path, quality=95, exif=exif)
    return picture


def block_means(image: np.ndarray) -> np.ndarray:
    """The mean colour of the middle of each 16-pixel block."""
    return np.array([[image[i + 4 : i + 12, j + 4 : j + 12].mean((0, 1)) for j in (0, 16)] for i in (0, 16, 32)])


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 6, 7, 8])
def test_exif_orientation(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.jpg"
    picture = save_oriented(path, orientation)
    with Image.open(path) as stored:
        assert stored.size == ((48, 32) if orientation >= 5 else (32, 48))
    with strict_pillow():
        read, size = decode_image(path, 3)
    assert size == (32, 48) and read.shape == (48, 32, 3)  # the size as shown: swapped back for 5-8
    assert np.abs(block_means(read) - block_means(picture)).max() <= 8  # each block where a viewer shows it
    grey = decode(path, 1)
    assert np.abs(block_means(grey[..., None])[..., 0] - block_means(luma(picture)[..., None])[..., 0]).max() <= 8


def test_exif_orientation_with_resize(tmp_path):
    """Resizing happens after the rotation: ``size`` is the shown picture's ``(H, W)``."""
    picture = save_oriented(tmp_path / "o6.jpg", 6)
    with strict_pillow():
        read, size = decode_image(tmp_path / "o6.jpg", 3, (24, 16))
    assert size == (32, 48) and read.shape == (24, 16, 3)
    half = np.asarray(Image.fromarray(picture).resize((16, 24), Image.BILINEAR))
    for i in (4, 12, 20):  # the centres of the 8-pixel blocks, away from JPEG's edges
        for j in (4, 12):
            centre = np.s_[i - 2 : i + 2, j - 2 : j + 2]
            assert np.abs(read[centre].mean((0, 1)) - half[centre].mean((0, 1))).max() <= 8


# ------------------------------------------------------------------ one decoder, two readers
def test_folders_and_predict_read_files_alike(tmp_path):
    """A folder data set with a 16-bit PNG and an EXIF-rotated JPEG holds the very arrays
    ``stn predict`` reads from those files, and both are read as shown."""
    digit = digit16()
    root = tmp_path / "set"
    for split in ("train", "test"):
        (root / split / "digit").mkdir(parents=True)
        (root / split / "photo").mkdir(parents=True)
        Image.fromarray(digit * 257).save(root / split / "digit" / "a16.png")
        save_oriented(root / split / "photo" / "b6.jpg", 6)
    files = [root / "train" / "digit" / "a16.png", root / "train" / "photo" / "b6.jpg"]
    for channels, size in ((1, (28, 28)), (3, (48, 32))):
        folder = read_image_folder(root / "train", size, channels)
        assert folder.channels == channels
        for image, path in zip(folder.images, files, strict=True):
            array, _ = read_image(path, (channels, *size))
            assert np.array_equal(image.numpy(), array), (channels, path.name)
    # the data set the ``folder`` name loads: grey, from its first image (the 16-bit PNG)
    dataset = data.load("folder", root, image_size=(28, 28))
    assert dataset.input_shape == (1, 28, 28)
    assert np.array_equal(dataset.train_images[0, 0].numpy(), digit.astype(np.uint8))
    assert np.array_equal(dataset.train_images[1].numpy(), read_image(files[1], (1, 28, 28))[0])
    # read as shown: the 16-bit levels kept, the photo upright (its shown size, its white block top-left)
    assert np.array_equal(read_image(files[0], (1, 28, 28))[0][0], digit.astype(np.uint8))
    photo, shown = read_image(files[1], (3, 48, 32))
    assert shown == (32, 48)
    assert np.abs(block_means(photo.transpose(1, 2, 0)) - block_means(upright())).max() <= 8
