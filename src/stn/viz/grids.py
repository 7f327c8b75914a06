"""Before and after: a batch of images beside what the transformer made of them (the PyTorch
tutorial's "Dataset Images" and "Transformed Images" panels). Volumes are shown by their middle
slices (:func:`~stn.viz.slices.middle_slices`)."""

from __future__ import annotations

import math

from PIL import Image
from torch import Tensor

from stn.viz.images import cell_scale, grid_columns, hstack, image_grid, titled
from stn.viz.outlines import COLOURS
from stn.viz.slices import SLICES_TITLE, middle_slices
from stn.viz.views import TransformerView

__all__ = ["before_after", "input_panel", "pictures", "transformed_panels"]


def pictures(view: TransformerView) -> tuple[Tensor, Tensor | None]:
    """The view's inputs ``(N, C, h, w)`` and outputs ``(N, k, C, h', w')`` (or ``None``) as uint8
    pictures: images as they are, each volume as its three middle slices side by side.

    Examples:
        >>> from stn import transforms as T
        >>> volumes = torch.zeros(2, 1, 8, 8, 8, dtype=torch.uint8)
        >>> view = TransformerView(volumes, T.get("affine3d"), T.get("affine3d").identity(2), volumes.unsqueeze(1))
        >>> inputs, outputs = pictures(view)
        >>> tuple(inputs.shape), tuple(outputs.shape)  # three 8 x 8 slices, a pixel apart
        ((2, 1, 8, 26), (2, 1, 1, 8, 26))
    """
    if not view.volumes:
        return view.images, view.outputs
    outputs = None
    if view.outputs is not None:
        flat = middle_slices(view.outputs.flatten(0, 1))
        outputs = flat.view(*view.outputs.shape[:2], *flat.shape[1:])
    return middle_slices(view.images), outputs


def _layout(view: TransformerView, nrow: int | None, scale: int | None, target: int) -> tuple[int, int, int]:
    """Images per row, pixel upscaling and the white between images: a near-square grid of about
    ``target`` pixels per image (volumes: per slice, a third as many per row, wider apart than
    their slices)."""
    n = len(view.images)
    if view.volumes:
        scale = scale or cell_scale(view.images.shape[2:], target)
        return nrow or max(1, round(math.sqrt(n / 3))), scale, max(2, 2 * scale)
    return nrow or grid_columns(n), scale or cell_scale(view.images.shape[-2:], target), 2


def input_panel(
    view: TransformerView, nrow: int | None = None, scale: int | None = None, target: int = 96
) -> Image.Image:
    """The inputs as one titled grid ("Dataset Images"; volumes: their middle slices).

    Examples:
        >>> from stn.observe import observe
        >>> model = stn.models.create("tutorial-mnist")
        >>> view = observe(model, torch.zeros(4, 1, 28, 28, dtype=torch.uint8), [0.13], [0.31])
        >>> input_panel(view).mode
        'RGB'
    """
    nrow, scale, padding = _layout(view, nrow, scale, target)
    images, _ = pictures(view)
    title = f"Dataset Volumes ({SLICES_TITLE})" if view.volumes else "Dataset Images"
    return titled(image_grid(images, nrow, scale, padding), title)


def transformed_panels(
    view: TransformerView, nrow: int | None = None, scale: int | None = None, target: int = 96
) -> list[Image.Image]:
    """One titled grid of outputs per transformer, shown at the inputs' size (``scale`` as for the
    inputs: pixel upscaling, default to about ``target`` px per image; volumes: their middle
    slices, per slice)."""
    if view.outputs is None:
        raise ValueError("this transformer reads a feature map, not the image: it makes no pictures to show")
    nrow, scale, padding = _layout(view, nrow, scale, target)
    images, outputs = pictures(view)
    out_scale = max(1, round(scale * max(images.shape[-2:]) / max(outputs.shape[-2:])))
    names = list(COLOURS)
    what = "Volumes" if view.volumes else "Images"
    panels = []
    for i in range(view.k):
        title = f"Transformed {what}" if view.k == 1 else f"Transformer {i + 1} ({names[i % len(names)]})"
        panels.append(titled(image_grid(outputs[:, i], nrow, out_scale, padding), title))
    return panels


def before_after(view: TransformerView, nrow: int | None = None, scale: int | None = None) -> Image.Image:
    """The inputs ("Dataset Images") beside the transformer's outputs ("Transformed Images"; one
    panel per transformer when there are several), de-normalised, as one RGB picture. Volumes
    are shown by their middle slices across ``D``, ``H`` and ``W``, side by side
    (:func:`~stn.viz.slices.middle_slices`).

    Args:
        view: what the transformer did (:func:`stn.observe.observe`, :func:`~stn.viz.from_run`);
            it must hold the outputs (a transformer that reads the image).
        nrow: images per row (default: a near-square grid).
        scale: pixel upscaling (default: to about 96 pixels per image, or per slice).

    Examples:
        >>> from stn.observe import observe
        >>> model = stn.models.create("tutorial-mnist")
        >>> view = observe(model, torch.zeros(4, 1, 28, 28, dtype=torch.uint8), [0.13], [0.31])
        >>> picture = before_after(view)
        >>> picture.mode, picture.width > picture.height  # inputs left, outputs right
        ('RGB', True)
    """
    return hstack([input_panel(view, nrow, scale), *transformed_panels(view, nrow, scale)])
