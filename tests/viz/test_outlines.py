"""Where it looks: the output's border mapped into the input, in pixels, and drawn in place."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.functional import pil_to_tensor

from stn import transforms as T
from stn.pixels import to_pixel_extents as to_pixels
from stn.viz.outlines import COLOURS, border, draw_regions, output_lines, region_lines

RED, CYAN = COLOURS["red"], COLOURS["cyan"]


def test_border_is_the_closed_edge_of_the_square():
    edge = border(per_side=4)
    assert edge.shape == (17, 2)
    assert torch.equal(edge[0], edge[-1]) and edge[0].tolist() == [-1.0, -1.0]
    assert (edge.abs().amax(dim=1) == 1).all()  # every point on the edge
    assert {tuple(p) for p in edge.tolist()} >= {(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)}


@pytest.mark.parametrize("name", [n for n in T.names() if n != "polar"])  # polar has no identity map
def test_outline_of_the_identity_is_the_image_border(name):
    transform = T.get(name)
    h, w = 20, 30
    pixels = to_pixels(region_lines(transform, transform.identity(2))[:, :, 0], (h, w))
    assert pixels.shape == (2, 1, 4 * 16 + 1, 2)
    x, y = pixels[..., 0], pixels[..., 1]
    torch.testing.assert_close(torch.stack((x.min(), x.max(), y.min(), y.max())), torch.tensor([0.0, w, 0.0, h]))
    on_border = (x.sub(0).abs() < 1e-4) | (x.sub(w).abs() < 1e-4) | (y.sub(0).abs() < 1e-4) | (y.sub(h).abs() < 1e-4)
    assert on_border.all()


def test_outline_of_a_centred_half_zoom_is_the_middle_box():
    params = torch.tensor([[0.5, 0.0, 0.0], [0.5, 0.5, -0.5]])  # (s, tx, ty)
    pixels = to_pixels(region_lines(T.get("attention"), params), (40, 80))[:, 0, 0]
    boxes = torch.cat((pixels.amin(dim=1), pixels.amax(dim=1)), dim=1)  # (x0, y0, x1, y1)
    torch.testing.assert_close(boxes[0], torch.tensor([20.0, 10.0, 60.0, 30.0]))
    torch.testing.assert_close(boxes[1], torch.tensor([40.0, 0.0, 80.0, 20.0]))  # the top-right quarter


def test_align_corners_puts_the_border_on_the_corner_pixel_centres():
    corners = torch.tensor([[[-1.0, -1.0], [1.0, 1.0]]])
    assert to_pixels(corners, (10, 20), align_corners=True).tolist() == [[[0.5, 0.5], [19.5, 9.5]]]
    assert to_pixels(corners, (10, 20)).tolist() == [[[0.0, 0.0], [20.0, 10.0]]]


def test_parallel_transformers_get_one_outline_each():
    params = torch.tensor([[[1.0, 0.0, 0.0], [0.5, 0.0, 0.0]]])  # (N=1, k=2, P=3)
    lines = region_lines(T.get("attention"), params)
    assert lines.shape == (1, 2, 1, 65, 2)
    assert lines[0, 0].abs().max() == pytest.approx(1.0) and lines[0, 1].abs().max() == pytest.approx(0.5)


def test_thin_plate_splines_also_show_their_grid_lines():
    tps = T.get("tps", grid_size=(3, 4))
    assert output_lines(tps).shape[0] == 1 + 1 + 2  # border, 1 interior row, 2 interior columns
    offsets = torch.zeros(1, tps.num_params)
    offsets[0, 0::2] = 0.25  # every control point reads 0.25 further right
    lines = region_lines(tps, offsets)
    torch.testing.assert_close(lines[..., 0], output_lines(tps)[None, None, ..., 0] + 0.25)


def _red(picture) -> torch.Tensor:
    """``(H, W)`` bool: where ``picture`` is the first outline colour."""
    return (pil_to_tensor(picture) == torch.tensor(RED).view(3, 1, 1)).all(0)


def test_drawn_outline_straddles_the_edge_of_the_region():
    image = torch.full((1, 1, 16, 16), 255, dtype=torch.uint8)
    attention = T.get("attention")
    for params, (lo, hi) in (([1.0, 0.0, 0.0], (0, 64)), ([0.5, 0.0, 0.0], (16, 48))):
        picture = draw_regions(image, attention, torch.tensor([params]), scale=4)  # a 64-pixel image
        margin = (picture.width - 64) // 2
        red, middle = _red(picture), margin + 32
        lo, hi = margin + lo, margin + hi  # the region's edges, between pixels lo - 1 and lo, hi - 1 and hi
        for column in (lo - 1, lo, hi - 1, hi):
            assert red[middle, column] and red[column, middle]
        inside = red[lo + 2 : hi - 2, lo + 2 : hi - 2]
        outside = red[:, : lo - 2].any() or red[:, hi + 2 :].any() or red[: lo - 2].any() or red[hi + 2 :].any()
        assert not inside.any() and not outside


def test_k_transformers_are_drawn_in_different_colours_on_colour_images():
    images = torch.randint(0, 100, (3, 3, 12, 12), dtype=torch.uint8)
    params = torch.tensor([[1.0, 0.0, 0.0], [0.4, 0.2, 0.2]]).expand(3, 2, 3)
    picture = draw_regions(images, T.get("attention"), params, nrow=3)
    assert picture.mode == "RGB"
    pixels = pil_to_tensor(picture).flatten(1).T
    for colour in (RED, CYAN):
        assert (pixels == torch.tensor(colour)).all(1).any()


def test_far_away_regions_still_draw():
    params = torch.tensor([[1e9, 0.0, 0.0], [float("nan"), 0.0, 0.0]])
    picture = draw_regions(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), T.get("attention"), params)
    assert picture.width > 0
