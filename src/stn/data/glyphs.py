"""``glyphs``: distorted digits drawn with the font Pillow ships; a data set that needs no files.

The ten digits are drawn with :func:`PIL.ImageFont.load_default` (Aileron Regular where Pillow has
FreeType, its small bitmap font otherwise) in three stroke weights, and fitted, like MNIST, into a
20x20 box centred in 28x28. Each sample then goes through :mod:`stn.data.distortions`: a mild
elastic warp, a rotation of up to ±60° and a scale in [0.6, 1.2] into the middle of a square
canvas, then ``pieces`` 6x6 crops of other glyphs as clutter. A classifier has to read the digit
at whatever size and angle it comes; a spatial transformer learns to turn it upright and zoom in.

The glyphs stay near the centre on purpose: with random positions as well, a few minutes of
training teach a transformer to find and enlarge the digit but not yet to turn it.

Options (``stn.data.load("glyphs", train_size=12000, test_size=2000, canvas=56, pieces=4, seed=0)``);
they, the Pillow version and its font make the cache key, so the data set needs no files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from torch import Tensor

from stn.data import distortions
from stn.data.dataset import Dataset
from stn.data.registry import Builder, register

__all__ = ["VERSION", "make_glyphs", "render_digits"]

VERSION = 3  # bump whenever the drawing or the distortions below change
CLASSES = [str(d) for d in range(10)]
STROKES = (0, 1, 2)  # stroke widths (pixels at the drawing size): three weights of the font
MAX_DEGREES = 60.0
SCALE = (0.6, 1.2)
SHIFT = 0.0  # fraction of the free room the glyph centre may move (see the module notes)
ELASTIC_STD = 0.03
PIECE_SIZE = 6


def render_digits(size: int = 28, box: int = 20, stroke: int = 0) -> Tensor:
    """The digits 0-9 in Pillow's default font, ``(10, 1, size, size)`` uint8, white on black.

    Each glyph is cropped to its ink, resized to fit a ``box`` square (aspect kept) and centred.
    """
    font = ImageFont.load_default(size=64)
    glyphs = []
    for digit in CLASSES:
        canvas = Image.new("L", (128, 128))
        if isinstance(font, ImageFont.FreeTypeFont):
            ImageDraw.Draw(canvas).text((64, 64), digit, fill=255, font=font, anchor="mm", stroke_width=stroke)
        else:  # Pillow without FreeType: its 6x11 bitmap font, enlarged 8 times, then thickened
            ImageDraw.Draw(canvas).text((4, 4), digit, fill=255, font=font)
            canvas = canvas.crop((0, 0, 16, 16)).resize((128, 128), Image.NEAREST)
            canvas = canvas.filter(ImageFilter.MaxFilter(2 * stroke + 1)) if stroke else canvas
        ink = canvas.crop(canvas.getbbox())
        ratio = box / max(ink.size)
        ink = ink.resize((max(1, round(ink.width * ratio)), max(1, round(ink.height * ratio))), Image.LANCZOS)
        tile = Image.new("L", (size, size))
        tile.paste(ink, ((size - ink.width) // 2, (size - ink.height) // 2))
        glyphs.append(np.asarray(tile))
    return torch.from_numpy(np.stack(glyphs)).unsqueeze(1)


def make_glyphs(count: int, generator: torch.Generator, canvas: int = 56, pieces: int = 4) -> tuple[Tensor, Tensor]:
    """``count`` distorted glyphs, ``(count, 1, canvas, canvas)`` uint8, and their labels ``(count,)``."""
    templates = torch.cat([render_digits(stroke=s) for s in STROKES])
    labels = torch.randint(0, len(CLASSES), (count,), generator=generator)
    weights = torch.randint(0, len(STROKES), (count,), generator=generator)
    glyphs = distortions.elastic(templates[weights * len(CLASSES) + labels], generator, std=ELASTIC_STD)
    placed = distortions.rotate_scale_translate(glyphs, generator, MAX_DEGREES, SCALE, canvas, SHIFT)
    images = distortions.clutter(placed, generator, sources=glyphs, pieces=pieces, piece_size=PIECE_SIZE)
    return images, labels


@register("glyphs", "digits drawn with Pillow's font, rotated and scaled in a cluttered 56x56 canvas: no files needed")
def glyphs(
    root: Path, train_size: int = 12000, test_size: int = 2000, canvas: int = 56, pieces: int = 4, seed: int = 0
) -> Builder:
    checks = (("train_size", train_size, 1), ("test_size", test_size, 1), ("pieces", pieces, 0), ("seed", seed, 0))
    for name, value, low in checks:
        if not isinstance(value, int) or value < low:
            raise ValueError(f"glyphs: {name} must be an int >= {low}, got {value!r}")
    if not isinstance(canvas, int) or canvas < 28:
        raise ValueError(f"glyphs: canvas must be an int >= 28, got {canvas!r}")

    def build() -> Dataset:
        train_x, train_y = make_glyphs(train_size, torch.Generator().manual_seed(2 * seed), canvas, pieces)
        test_x, test_y = make_glyphs(test_size, torch.Generator().manual_seed(2 * seed + 1), canvas, pieces)
        source = f"drawn with Pillow {PIL.__version__}'s default font (seed {seed})"
        return Dataset("glyphs", train_x, train_y, test_x, test_y, list(CLASSES), source=source)

    font = "freetype" if isinstance(ImageFont.load_default(size=64), ImageFont.FreeTypeFont) else "bitmap"
    key = f"glyphs-g{VERSION}-pil{PIL.__version__}-{font}-s{seed}-n{train_size}-{test_size}-c{canvas}-p{pieces}"
    return Builder(key, build)
