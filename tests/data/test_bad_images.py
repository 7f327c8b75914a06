"""Image folders with broken files: every unreadable file is named, or skipped on request."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFile

from stn import data
from stn.data import DataError
from stn.data.formats import read_image_folder

from ..conftest import make_bars_folder


def jpeg_bytes(size: int = 28) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def break_files(root):
    """Three kinds of unreadable file in ``root``'s train split; returns their paths."""
    truncated = root / "train" / "horizontal" / "cut.jpg"
    truncated.write_bytes(jpeg_bytes()[:300])
    garbage = root / "train" / "vertical" / "text.png"
    garbage.write_bytes(b"this is not an image\n")
    lab = root / "train" / "vertical" / "lab.tif"
    Image.new("LAB", (28, 28)).save(lab)  # a mode Pillow cannot convert to L or RGB
    return [truncated, garbage, lab]


def test_every_unreadable_file_is_named(tmp_path):
    root = make_bars_folder(tmp_path / "bars", train=4, test=2)
    bad = break_files(root)
    with pytest.raises(DataError) as err:
        data.load("folder", root)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"3 of 11 images under {root / 'train'} cannot be read: ")
    for path in bad:
        assert str(path) in message
    assert "truncated" in message.lower() and "not an image file" in message and "LAB" in message
    assert "skip_bad_images=True (--skip-bad-images)" in message


def test_the_first_ten_are_named_then_counted(tmp_path):
    root = make_bars_folder(tmp_path / "bars", train=8, test=2)
    for i in range(13):
        (root / "train" / "horizontal" / f"bad{i:02d}.png").write_bytes(b"")
    with pytest.raises(DataError) as err:
        data.load("folder", root)
    message = str(err.value)
    assert message.startswith("13 of 29 images") and "; and 3 more;" in message
    assert "bad09.png" in message and "bad10.png" not in message


def test_skip_bad_images_leaves_them_out_and_says_how_many(tmp_path, capsys):
    root = make_bars_folder(tmp_path / "bars", train=4, test=2)
    bad = break_files(root)
    ds = data.load("folder", root, skip_bad_images=True)
    assert sorted(ds.skipped) == sorted(str(p) for p in bad)
    assert ds.train_labels.tolist() == [0] * 4 + [1] * 4
    assert "stn: skipped 3 unreadable image(s) of folder" in capsys.readouterr().err
    again = data.load("folder", root, skip_bad_images=True)  # from the cache, still counted
    assert again.skipped == ds.skipped and "skipped 3" in capsys.readouterr().err
    with pytest.raises(DataError, match="3 of 11 images"):  # the skipping build is not reused without the option
        data.load("folder", root)


def test_a_folder_of_only_bad_files_is_an_error_even_when_skipping(tmp_path):
    folder = tmp_path / "train" / "a"
    folder.mkdir(parents=True)
    (folder / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(DataError, match=r"1 of 1 images .* cannot be read: .*x\.png .*; none is readable"):
        read_image_folder(tmp_path / "train", skip_bad=True)


def test_truncated_files_are_refused_even_if_pillow_is_told_to_accept_them(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    root = make_bars_folder(tmp_path / "bars", train=2, test=1)
    (root / "train" / "vertical" / "cut.jpg").write_bytes(jpeg_bytes()[:-40])
    png = root / "train" / "vertical" / "0000.png"
    png.write_bytes(png.read_bytes()[:-12])  # all image data there, IEND chunk gone
    with pytest.raises(DataError) as err:
        data.load("folder", root)
    assert "2 of 5 images" in str(err.value) and "cut.jpg" in str(err.value) and "IEND" in str(err.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored


def test_size_error_says_height_by_width(tmp_path):
    root = make_bars_folder(tmp_path / "bars", train=2, test=1)
    Image.new("L", (30, 20)).save(root / "train" / "vertical" / "wide.png")  # 30 wide, 20 high
    with pytest.raises(DataError, match=r"wide\.png is 20x30 but .* is 28x28 \(HxW\)"):
        data.load("folder", root)


def test_a_cifar10_image_folder_can_skip_too(tmp_path):
    root = make_bars_folder(tmp_path / "cifar10", train=3, test=2, size=32, channels=3)
    (root / "test" / "vertical" / "bad.jpg").write_bytes(jpeg_bytes(32)[:100])
    with pytest.raises(DataError, match=r"1 of 5 images under .*test cannot be read: .*bad\.jpg"):
        data.load("cifar10", tmp_path)
    ds = data.load("cifar10", tmp_path, skip_bad_images=True)
    assert len(ds.test_labels) == 4 and ds.skipped == [str(root / "test" / "vertical" / "bad.jpg")]
