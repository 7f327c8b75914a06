"""The distortion library: seeded, shaped and ranged as documented, the identity at zero
randomness, and each image keeps its own label."""

from __future__ import annotations

import math

import pytest
import torch

from stn.data import distortions as D
from stn.transforms import apply_matrix

# name -> (distortion with the paper's settings, output side for 28x28 input, the same with no randomness)
DISTORTIONS = {
    "R": (D.rotate, 28, lambda x, g: D.rotate(x, g, max_degrees=0)),
    "RTS": (
        D.rotate_scale_translate,
        42,
        lambda x, g: D.rotate_scale_translate(x, g, max_degrees=0, scale=(1, 1), canvas=28),
    ),
    "P": (D.projective, 28, lambda x, g: D.projective(x, g, corner_std=0, scale=(1, 1))),
    "E": (D.elastic, 28, lambda x, g: D.elastic(x, g, std=0)),
    "TC": (D.translate_clutter, 60, lambda x, g: D.translate_clutter(x, g, canvas=28, pieces=0)),
}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def digits(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` uint8 28x28 images: label 1 is a bright disk of radius 9 (254 px), label 0 is empty."""
    labels = torch.arange(n) % 2
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    disk = (((xs - 13.5) ** 2 + (ys - 13.5) ** 2) <= 81).to(torch.uint8) * 255
    return disk.expand(n, 1, 28, 28) * labels.view(-1, 1, 1, 1).to(torch.uint8), labels


def mnist_like(n: int = 8) -> torch.Tensor:
    """Random strokes: uint8 images with structure everywhere, so any move of a pixel shows."""
    g = gen(123)
    return (torch.rand(n, 1, 28, 28, generator=g) * 255).to(torch.uint8)


@pytest.mark.parametrize("name", DISTORTIONS)
def test_same_seed_same_images_other_seed_other_images(name):
    distort, _, _ = DISTORTIONS[name]
    x = mnist_like()
    assert torch.equal(distort(x, gen(5)), distort(x, gen(5)))
    assert not torch.equal(distort(x, gen(5)), distort(x, gen(6)))


@pytest.mark.parametrize("name", DISTORTIONS)
def test_shape_dtype_and_range(name):
    distort, side, _ = DISTORTIONS[name]
    x = mnist_like(5)
    out = distort(x, gen())
    assert out.dtype == torch.uint8 and out.shape == (5, 1, side, side)
    floats = distort(x.double() / 255, gen())
    assert floats.dtype == torch.float64 and floats.shape == (5, 1, side, side)
    # Bilinear sampling mixes pixels with weights summing to at most 1: values stay in [0, 1].
    assert floats.min() >= 0 and floats.max() <= 1 + 1e-12
    assert torch.allclose(floats * 255, out.double(), atol=0.5 + 1e-6)


@pytest.mark.parametrize("name", DISTORTIONS)
def test_no_randomness_is_the_identity(name):
    _, _, still = DISTORTIONS[name]
    x = mnist_like()
    assert torch.equal(still(x, gen()), x)
    floats = x.float() / 255
    torch.testing.assert_close(still(floats, gen()), floats, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", DISTORTIONS)
def test_labels_follow_their_images(name):
    # Disks keep at least half their ink under every distortion; empty images get none, or at
    # most the clutter's 6 crops of 6x6 (216 pixels) in TC.
    distort, _, _ = DISTORTIONS[name]
    x, labels = digits(40)
    ink = distort(x, gen()).double().sum((1, 2, 3)) / 255
    assert ink[labels == 1].min() > max(127.0, float(ink[labels == 0].max()))
    if name != "TC":
        assert ink[labels == 0].max() == 0


def test_rts_without_randomness_centres_the_image_in_its_canvas():
    x = mnist_like()
    out = D.rotate_scale_translate(x, gen(), max_degrees=0, scale=(1, 1), canvas=42, shift=0)
    assert torch.equal(out, torch.nn.functional.pad(x, (7, 7, 7, 7)))


def test_rotation_turns_about_the_centre_within_its_range():
    # A bar from the centre to the right edge, rotated by up to 90 degrees, keeps its length
    # and points into the right half-plane.
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 13:15, 14:26] = 1.0
    out = D.rotate(x, gen())
    ys, xs = torch.meshgrid(torch.arange(28.0) - 13.5, torch.arange(28.0) - 13.5, indexing="ij")
    mass = out.sum((1, 2, 3))
    cx = (out[:, 0] * xs).sum((1, 2)) / mass
    cy = (out[:, 0] * ys).sum((1, 2)) / mass
    angle = torch.atan2(cy, cx)
    assert angle.abs().max() <= math.pi / 2 + 0.1 and angle.abs().max() > math.pi / 4
    torch.testing.assert_close(torch.hypot(cx, cy), torch.full_like(cx, 6.5), atol=0.6, rtol=0)


def test_rts_scales_within_its_range_and_stays_in_the_canvas():
    x, _ = digits(32)
    x = x[1::2]  # the disks
    out = D.rotate_scale_translate(x, gen())
    area = (out.double() / 255).sum((1, 2, 3)) / (x.double() / 255).sum((1, 2, 3))
    assert area.min() > 0.7**2 - 0.05 and area.max() < 1.2**2 + 0.05
    assert area.max() - area.min() > 0.5  # the scale does vary


def test_translate_moves_whole_pixels_and_clutter_adds_crops_of_other_images():
    x = mnist_like(6)
    placed = D.translate(x, gen(), canvas=40)
    for image, canvas in zip(x, placed, strict=True):
        rows, cols = torch.nonzero(canvas[0], as_tuple=True)
        top, left = int(rows.min()), int(cols.min())
        assert torch.equal(canvas[:, top : top + 28, left : left + 28], image)
        assert int(canvas.sum()) == int(image.sum())
    empty = torch.zeros(6, 1, 40, 40, dtype=torch.uint8)
    cluttered = D.clutter(empty, gen(), sources=torch.full((3, 1, 28, 28), 200, dtype=torch.uint8), pieces=2)
    assert set(cluttered.unique().tolist()) <= {0, 200}
    assert ((cluttered > 0).sum((1, 2, 3)) <= 2 * 36).all() and ((cluttered > 0).sum((1, 2, 3)) >= 36).all()


def test_clutter_never_takes_from_the_image_itself():
    # Each image is a distinct constant: the crops pasted on image i must come from other images.
    values = torch.arange(1, 9, dtype=torch.uint8) * 20
    x = values.view(-1, 1, 1, 1).expand(8, 1, 28, 28).contiguous()
    out = D.clutter(torch.zeros_like(x), gen(), sources=x, pieces=6)
    for i in range(8):
        assert int(values[i]) not in out[i].unique().tolist()


def test_homography_sends_the_points_where_asked():
    g = gen(3)
    src = torch.rand(5, 4, 2, generator=g, dtype=torch.float64) * 2 - 1
    src = torch.tensor([[-1.0, -1], [1, -1], [1, 1], [-1, 1]], dtype=torch.float64) + 0.1 * src
    dst = src + 0.2 * torch.randn(5, 4, 2, generator=g, dtype=torch.float64)
    matrix = D.homography(src, dst)
    torch.testing.assert_close(apply_matrix(matrix, src), dst)
    assert torch.all(matrix[:, 2, 2] == 1)


def test_bad_inputs_are_value_errors():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        D.rotate(torch.zeros(28, 28), gen())
    with pytest.raises(ValueError, match="uint8 or floating"):
        D.elastic(torch.zeros(1, 1, 28, 28, dtype=torch.int32), gen())
    with pytest.raises(ValueError, match="smaller than the images"):
        D.translate(torch.zeros(1, 1, 28, 28), gen(), canvas=20)
