"""Before and after: a batch of images beside what the transformer made of them (the PyTorch
tutorial's "Dataset Images" and "Transformed Images" panels)."""

from __future__ import annotations

from PIL import Image

from stn.viz.images import cell_scale, hstack, image_grid, titled
from stn.viz.outlines import COLOURS
from stn.viz.views import TransformerView

__all__ = ["before_after", "transformed_panels"]


def transformed_panels(view: TransformerView, nrow: int | None = None, scale: int | None = None) -> list[Image.Image]:
    """One titled grid of outputs per transformer, shown at the inputs' size (``scale`` as for the
    inputs: pixel upscaling, default to ~96 px per image)."""
    if view.outputs is None:
        raise ValueError("this transformer reads a feature map, not the image: it makes no pictures to show")
    h, w = view.images.shape[-2:]
    scale = scale or cell_scale((h, w))
    out_scale = max(1, round(scale * max(h, w) / max(view.outputs.shape[-2:])))
    names = list(COLOURS)
    panels = []
    for i in range(view.k):
        title = "Transformed Images" if view.k == 1 else f"Transformer {i + 1} ({names[i % len(names)]})"
        panels.append(titled(image_grid(view.outputs[:, i], nrow, out_scale), title))
    return panels


def before_after(view: TransformerView, nrow: int | None = None, scale: int | None = None) -> Image.Image:
    """The inputs ("Dataset Images") beside the transformer's outputs ("Transformed Images"; one
    panel per transformer when there are several), de-normalised, as one RGB picture."""
    h, w = view.images.shape[-2:]
    scale = scale or cell_scale((h, w))
    inputs = titled(image_grid(view.images, nrow, scale), "Dataset Images")
    return hstack([inputs, *transformed_panels(view, nrow, scale)])
