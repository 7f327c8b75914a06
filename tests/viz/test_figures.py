"""All the pictures of tiny trained runs, for every kind of transformer (and none)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from stn.viz.figures import FILES, write_figures
from tests.viz.conftest import EPOCHS


def opened(path) -> Image.Image:
    """The (first frame of the) picture at ``path``, read into memory."""
    with Image.open(path) as picture:
        picture.load()
        return picture.copy()


def frame_count(path) -> int:
    with Image.open(path) as picture:
        return picture.n_frames


def not_blank(picture: Image.Image) -> bool:
    return pil_to_tensor(picture.convert("RGB")).float().std() > 10


def drawn(picture: Image.Image) -> bool:
    """Whether ``picture`` looks drawn, not like noise: a figure (axes, grids of images with gutters,
    outlines on a background) has a background colour covering a large share of it, and a handful of
    colours at least; a noise image has neither a dominant colour nor a background."""
    pixels = pil_to_tensor(picture.convert("RGB")).flatten(1).T
    colours, counts = pixels.unique(dim=0, return_counts=True)
    return len(colours) >= 8 and counts.max().item() / len(pixels) > 0.2


@pytest.mark.parametrize("name", ["affine", "tps", "colour", "parallel", "featuremap"])
def test_every_transformer_gets_its_pictures(trained, name, tmp_path):
    written = write_figures(trained(name), tmp_path)
    has_outputs = name != "featuremap"  # a transformer on a feature map makes no images
    expected = {"curves", "regions", "learning", "stills", "statistics", "histograms"} | (
        {"before_after"} if has_outputs else set()
    )
    assert set(written) == expected
    for key, path in written.items():
        assert path == tmp_path / FILES[key] and path.is_file()
        with Image.open(path) as picture:
            assert picture.format == ("GIF" if key == "learning" else "PNG")
        assert not_blank(opened(path)) and drawn(opened(path)), key
    epochs = 1 if name == "colour" else EPOCHS
    assert frame_count(written["learning"]) == epochs


def test_the_figure_check_refuses_noise_and_blanks():
    noise = Image.fromarray(torch.randint(0, 256, (120, 160, 3), dtype=torch.uint8).numpy())
    blank = Image.new("RGB", (160, 120), "white")
    assert not drawn(noise) and not not_blank(blank)


def test_colour_runs_stay_in_colour_and_grayscale_runs_gray(trained, tmp_path):
    for name, colourful in (("colour", True), ("affine", False)):
        written = write_figures(trained(name), tmp_path / name)
        pixels = pil_to_tensor(opened(written["before_after"])).int()
        assert pixels.shape[0] == 3
        # The bars are grey in both data sets: a colour run must not tint them, and a grayscale
        # run is drawn with three equal channels.
        assert (pixels[0] - pixels[2]).abs().max() <= (2 if colourful else 0)


def test_the_before_panel_is_the_raw_test_images(trained, tmp_path):
    run = trained("affine")
    written = write_figures(run, tmp_path)
    snapshot = torch.load(run / "snapshots.pt", weights_only=True)
    first = snapshot["images"][0, 0]  # 28 x 28, drawn 3x, 2 pixels in from the left under the title
    picture = pil_to_tensor(opened(written["before_after"]))[0]
    top = int(torch.nonzero(picture[:, 2:5].min(dim=1).values < 255)[0])
    assert torch.equal(picture[top : top + 84 : 3, 2 : 2 + 84 : 3], first)
    assert torch.equal(picture[top + 2 : top + 84 : 3, 4 : 2 + 84 : 3], first)  # each pixel a 3x3 block


def test_a_run_without_a_transformer_gets_curves_only(trained, tmp_path):
    assert set(write_figures(trained("no-stn"), tmp_path)) == {"curves"}


def test_default_folder_and_errors(trained, tmp_path):
    run = trained("affine")
    written = write_figures(run, curves=False)
    assert all(path.parent == run / "figures" for path in written.values()) and "curves" not in written
    with pytest.raises(ValueError, match="no such run directory"):
        write_figures(tmp_path / "missing")
