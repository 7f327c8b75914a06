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
    panel per transformer when there are several), de-normalised, as one RGB picture.

    Args:
        view: what the transformer did (:func:`stn.observe.observe`, :func:`~stn.viz.from_run`);
            it must hold the outputs (a transformer that reads the image).
        nrow: images per row (default: a near-square grid).
        scale: pixel upscaling (default: to about 96 pixels per image).

    Examples:
        >>> from stn.observe import observe
        >>> model = stn.models.create("tutorial-mnist")
        >>> view = observe(model, torch.zeros(4, 1, 28, 28, dtype=torch.uint8), [0.13], [0.31])
        >>> picture = before_after(view)
        >>> picture.mode, picture.width > picture.height  # inputs left, outputs right
        ('RGB', True)
    """
    h, w = view.images.shape[-2:]
    scale = scale or cell_scale((h, w))
    inputs = titled(image_grid(view.images, nrow, scale), "Dataset Images")
    return hstack([inputs, *transformed_panels(view, nrow, scale)])
