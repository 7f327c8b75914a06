"""(De)normalisation with a data set's own statistics, and image grids as Pillow pictures."""

from __future__ import annotations

import pytest
import torch

from stn.data import Dataset
from stn.engine import DeviceData
from stn.viz.images import denormalize, hstack, image_grid, normalize, titled


@pytest.mark.parametrize(("mean", "std"), [((0.1307,), (0.3081,)), ((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))])
def test_denormalize_inverts_normalize(mean, std):
    images = torch.randint(0, 256, (5, len(mean), 7, 9), dtype=torch.uint8)
    x = normalize(images, mean, std)
    assert x.dtype == torch.float32
    assert x.mean().abs() > 0.01  # really normalised, not passed through
    assert torch.equal(denormalize(x, mean, std), images)


def test_normalize_is_what_training_feeds_the_model():
    images = torch.randint(0, 256, (4, 3, 6, 6), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 0, 1])
    dataset = Dataset("t", images, labels, images, labels, ["a", "b"], (0.2, 0.5, 0.7), (0.3, 0.1, 0.2))
    expected = DeviceData(dataset, torch.device("cpu")).normalize(images)
    torch.testing.assert_close(normalize(images, dataset.mean, dataset.std), expected)


def test_denormalize_clamps_to_the_uint8_range():
    x = torch.tensor([-100.0, 100.0]).view(1, 1, 1, 2)
    assert denormalize(x, (0.5,), (0.25,)).flatten().tolist() == [0, 255]


def test_statistics_must_match_the_channels():
    with pytest.raises(ValueError, match="one mean and std per channel"):
        normalize(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), (0.5,), (0.2,))


def test_grid_size_mode_and_pixels():
    images = torch.arange(5, dtype=torch.uint8).mul(40).view(5, 1, 1, 1).expand(5, 1, 4, 6).contiguous()
    grid = image_grid(images, nrow=3, scale=2, padding=2)
    assert grid.mode == "RGB"
    assert grid.size == (3 * (12 + 2) + 2, 2 * (8 + 2) + 2)  # (width, height)
    assert grid.getpixel((2, 2)) == (0, 0, 0)  # first image, top-left pixel
    assert grid.getpixel((2 + 14 + 11, 2 + 7)) == (40, 40, 40)  # second image, bottom-right pixel
    assert grid.getpixel((0, 0)) == (255, 255, 255)  # padding


def test_grid_keeps_colour_channels_in_order():
    red = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    red[:, 0] = 200
    assert image_grid(red).getpixel((3, 3)) == (200, 0, 0)


def test_grid_rejects_float_images():
    with pytest.raises(ValueError, match="uint8"):
        image_grid(torch.zeros(2, 1, 4, 4))


def test_titles_and_stacking_grow_the_picture():
    picture = image_grid(torch.zeros(4, 1, 8, 8, dtype=torch.uint8))
    with_title = titled(picture, "Dataset Images")
    assert with_title.width >= picture.width and with_title.height > picture.height
    both = hstack([with_title, with_title], gap=10)
    assert both.size == (2 * with_title.width + 10, with_title.height)
