"""Fuzzed image files in an image folder: a file that is not a whole image is one ``DataError``
naming it (or, with ``skip_bad``, skipped), never another exception; the files are never changed."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from stn.data import DataError
from stn.data.formats import read_image_folder

FUZZ = settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def encoded(fmt: str, **options) -> bytes:
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **options)
    return buffer.getvalue()


FILES = {
    "png": encoded("PNG"),
    "interlaced.png": encoded("PNG", interlace=1),
    "jpg": encoded("JPEG", quality=90),
    "progressive.jpg": encoded("JPEG", quality=90, progressive=True),
}


def folder_with(tmp_path, name: str, blob: bytes):
    """``tmp_path/<n>/train`` holding one good image and ``name`` with contents ``blob``."""
    root = tmp_path / str(len(list(tmp_path.iterdir())))
    (root / "train" / "a").mkdir(parents=True)
    (root / "train" / "a" / "good.png").write_bytes(FILES["png"])
    (root / "train" / "a" / name).write_bytes(blob)
    return root / "train", root / "train" / "a" / name


def refused(folder, bad) -> None:
    before = bad.read_bytes()
    with pytest.raises(DataError) as err:
        read_image_folder(folder)
    message = str(err.value)
    assert "\n" not in message and message.startswith("1 of 2 images") and str(bad) in message
    assert read_image_folder(folder, skip_bad=True).skipped == [bad]
    assert bad.read_bytes() == before


def test_the_whole_files_are_read():
    for name, blob in FILES.items():
        with Image.open(io.BytesIO(blob)) as img:
            img.load()
            assert img.size == (20, 24), name


@FUZZ
@given(blob=st.binary(max_size=2048), suffix=st.sampled_from([".png", ".jpg", ".gif", ".bmp", ".tif", ".webp"]))
def test_random_bytes(tmp_path, blob, suffix):
    refused(*folder_with(tmp_path, "random" + suffix, blob))


@FUZZ
@given(name=st.sampled_from(sorted(FILES)), data=st.data())
def test_truncated_anywhere(tmp_path, name, data):
    blob = FILES[name]
    keep = data.draw(st.integers(0, len(blob) - 1))
    refused(*folder_with(tmp_path, "cut." + name, blob[:keep]))
