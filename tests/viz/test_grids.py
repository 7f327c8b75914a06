"""Before and after: the inputs beside the transformer's outputs, colours as they are."""

from __future__ import annotations

import pytest
import torch

from stn import transforms as T
from stn.viz.grids import before_after, pictures
from stn.viz.views import TransformerView


def coloured(n: int, rgb: tuple[int, int, int], size: int = 8) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.uint8).view(1, 3, 1, 1).expand(n, 3, size, size).contiguous()


def test_inputs_left_outputs_right_in_their_own_colours():
    images, outputs = coloured(4, (200, 30, 10)), coloured(4, (10, 30, 200), size=4)
    view = TransformerView(images, T.get("affine"), T.get("affine").identity(4), outputs.unsqueeze(1))
    picture = before_after(view)
    assert picture.mode == "RGB"
    left, right = picture.width // 4, 3 * picture.width // 4
    assert picture.getpixel((left, picture.height // 2)) == (200, 30, 10)
    assert picture.getpixel((right, picture.height // 2)) == (10, 30, 200)


def test_grayscale_and_one_panel_per_parallel_transformer():
    images = torch.randint(0, 256, (6, 1, 10, 10), dtype=torch.uint8)
    one = TransformerView(images, T.get("attention"), torch.zeros(6, 1, 3), images.unsqueeze(1))
    two = TransformerView(images, T.get("attention"), torch.zeros(6, 2, 3), images.unsqueeze(1).expand(6, 2, 1, 10, 10))
    assert before_after(two).width > 1.4 * before_after(one).width
    assert before_after(one).height == before_after(two).height


def test_a_feature_map_transformer_has_no_after():
    view = TransformerView(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), T.get("affine"), torch.zeros(2, 6))
    with pytest.raises(ValueError, match="feature map"):
        before_after(view)


def test_volumes_are_shown_by_their_middle_slices():
    volumes = torch.zeros(5, 1, 6, 8, 10, dtype=torch.uint8)
    volumes[:, :, 3, 4, 5] = 255  # the middle voxel: in each of the three slices
    outputs = (255 - volumes).unsqueeze(1)  # white where the input is black
    view = TransformerView(volumes, T.get("affine3d"), T.get("affine3d").identity(5), outputs)
    inputs, after = pictures(view)
    assert tuple(inputs.shape) == (5, 1, 8, 10 + 10 + 8 + 2) and tuple(after.shape) == (5, 1, 1, 8, 30)
    assert int((inputs == 255).sum()) == 5 * 3
    picture = before_after(view)
    assert picture.mode == "RGB" and picture.width > picture.height
    left, right = (
        picture.crop((0, 30, picture.width // 2, picture.height)),
        picture.crop((picture.width // 2, 30, picture.width, picture.height)),
    )
    assert all(panel.convert("L").getextrema() == (0, 255) for panel in (left, right))
    black = [panel.convert("L").histogram()[0] for panel in (left, right)]
    assert black[0] > 10 * black[1]  # the inputs are black but for a voxel, the outputs white but for one
    frame = learning_frames_of(view)
    assert frame.mode == "RGB" and frame.width > picture.width // 2


def learning_frames_of(view):
    from stn.viz.learning import frame

    return frame(view, "Epoch 1")
