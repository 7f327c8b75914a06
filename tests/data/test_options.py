"""Options a data set does not take are one clear ValueError, never a TypeError from deep inside."""

from __future__ import annotations

import numpy as np
import pytest

from stn import data

from ..conftest import make_bars_folder


def test_fixed_size_data_sets_refuse_an_image_size(tmp_path):
    for name in ("mnist", "fashion-mnist", "cifar10", "mnist-rts", "glyphs"):
        with pytest.raises(ValueError) as err:
            data.load(name, tmp_path, image_size=(20, 20))
        assert type(err.value) is ValueError
        message = str(err.value)
        assert f"data set {name!r} does not take image_size" in message and "fixed size" in message
        assert "image_size (--image-size) applies to folder" in message and "\n" not in message


def test_unknown_options_list_the_accepted_ones(tmp_path):
    with pytest.raises(ValueError, match=r"'mnist' does not take colour, seed; it takes no options$"):
        data.load("mnist", tmp_path, colour=True, seed=1)
    with pytest.raises(
        ValueError, match=r"'mnist-r' does not take sead; it takes seed, train_size, test_size, fresh_distortions$"
    ):
        data.builder("mnist-r", tmp_path, sead=1)
    with pytest.warns(DeprecationWarning, match="stn.data.builder"):
        data.recipe("folder", make_bars_folder(tmp_path / "bars", train=2, test=1))
    assert data.options("folder") == ["image_size", "skip_bad_images"]
    data.check_options("folder", {"image_size": (8, 8)})
    with pytest.raises(ValueError, match="'glyphs' does not take image_size"):
        data.check_options("glyphs", ["image_size"])


def test_folder_checks_its_options(tmp_path):
    root = make_bars_folder(tmp_path / "bars", train=2, test=1)
    assert data.load("folder", root, image_size=[np.int64(12), 10]).input_shape == (1, 12, 10)
    for bad in (20, (20,), (0, 10), (10.5, 10), "20x20"):
        with pytest.raises(ValueError, match="image_size must be \\(height, width\\), two positive ints"):
            data.load("folder", root, image_size=bad)
    with pytest.raises(ValueError, match="skip_bad_images must be True or False"):
        data.load("folder", root, skip_bad_images="yes")
