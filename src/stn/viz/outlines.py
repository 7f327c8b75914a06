"""Where a transformer looks: the output's border (and, for thin-plate splines, its grid lines)
mapped into the input with :meth:`~stn.transforms.Transform.transform_points`, drawn on the input.

Lines are polylines in normalised coordinates (see :mod:`stn.transforms`): the output edge
``[-1, 1]²`` sent to the input locations it reads, so the outline of the identity is the image's
border and that of an attention window of scale ``s`` at ``t`` is the box ``t ± s``.
"""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor, to_pil_image

from stn import transforms as T
from stn.pixels import to_pixel_extents
from stn.viz.images import cell_scale, image_grid

__all__ = ["COLOURS", "border", "draw_regions", "output_lines", "region_lines", "regions_title"]

# Outline colours, transformer i in the i-th (named in figure titles).
COLOURS = {
    "red": (255, 40, 40),
    "cyan": (0, 200, 255),
    "yellow": (255, 210, 0),
    "green": (60, 230, 60),
    "magenta": (255, 60, 255),
    "orange": (255, 140, 0),
}
OUTSIDE = (150, 150, 150)  # the margin around each image, where a zoom-out reads


def border(per_side: int = 16) -> Tensor:
    """The closed edge of ``[-1, 1]²``, clockwise from the top-left corner: ``(4 * per_side + 1, 2)``."""
    t = torch.linspace(-1.0, 1.0, per_side + 1)[:-1]
    one = torch.ones_like(t)
    sides = [(t, -one), (one, t), (-t, one), (-one, -t)]  # top, right, bottom, left
    points = torch.cat([torch.stack(side, dim=1) for side in sides])
    return torch.cat((points, points[:1]))


def output_lines(transform: T.Transform, per_side: int = 16) -> Tensor:
    """The lines to draw, in the output, ``(L, 4 * per_side + 1, 2)``: the border first, then for
    a thin-plate spline the rows and columns of its interior control points."""
    edge = border(per_side)
    if not isinstance(transform, T.ThinPlateSpline):
        return edge.unsqueeze(0)
    rows, cols = transform.grid_size
    along = torch.linspace(-1.0, 1.0, len(edge))
    lines = [edge]
    lines += [torch.stack((torch.full_like(along, float(x)), along), dim=1) for x in torch.linspace(-1, 1, cols)[1:-1]]
    lines += [torch.stack((along, torch.full_like(along, float(y))), dim=1) for y in torch.linspace(-1, 1, rows)[1:-1]]
    return torch.stack(lines)


def region_lines(transform: T.Transform, params: Tensor, per_side: int = 16) -> Tensor:
    """Where the lines of :func:`output_lines` read in the input, normalised.

    Args:
        transform: the transformer's family.
        params: ``(N, P)`` or ``(N, k, P)`` (``k`` parallel transformers).
        per_side: points per side of the output's border.

    Returns:
        ``(N, k, L, S, 2)`` polylines (``k = 1`` for ``(N, P)`` parameters).

    Examples:
        >>> from stn import transforms as T
        >>> half = torch.tensor([[0.5, 0.25, 0.0]])  # attention: half the size, right of the centre
        >>> lines = region_lines(T.get("attention"), half)
        >>> lines.shape  # one image, one transformer, one line (the border) of 4 * 16 + 1 points
        torch.Size([1, 1, 1, 65, 2])
        >>> lines[0, 0, 0].amin(0), lines[0, 0, 0].amax(0)  # the box it reads: x in [-0.25, 0.75]
        (tensor([-0.2500, -0.5000]), tensor([0.7500, 0.5000]))
    """
    if params.dim() == 2:
        params = params.unsqueeze(1)
    if params.dim() != 3:
        raise ValueError(f"params must be (N, P) or (N, k, P), got {tuple(params.shape)}")
    n, k, _ = params.shape
    lines = output_lines(transform, per_side).to(params.dtype)
    points = lines.view(1, -1, 2).expand(n * k, -1, -1)
    return transform.transform_points(params.reshape(n * k, -1), points).view(n, k, *lines.shape)


def draw_regions(
    images: Tensor,
    transform: T.Transform,
    params: Tensor,
    align_corners: bool = False,
    nrow: int | None = None,
    scale: int | None = None,
) -> Image.Image:
    """Each image with the outline of the region the transformer samples drawn on it, as a grid.

    Args:
        images: uint8 ``(N, C, H, W)``, the transformer's input (or the image beneath a
            feature-map transformer: normalised coordinates are the same).
        transform: the transformer's family.
        params: ``(N, P)``, or ``(N, k, P)`` for ``k`` transformers, outlined in different colours.
        align_corners: the transformer's sampling convention.
        nrow: images per row (default: a near-square grid).
        scale: pixel upscaling (default: to about 96 pixels per image).

    Each image sits in a grey margin, so regions reaching outside it stay visible.

    Examples:
        >>> from stn import transforms as T
        >>> images = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
        >>> params = torch.tensor([[0.5, 0.0, 0.0], [1.0, 0.0, 0.0]])  # the middle half, the whole image
        >>> picture = draw_regions(images, T.get("attention"), params, scale=4)
        >>> picture.size, picture.mode  # two cells of 8 * 4 pixels and a margin of 5, side by side
        ((90, 46), 'RGB')
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected uint8 images (N, 1 or 3, H, W), got {images.dtype} {tuple(images.shape)}")
    h, w = images.shape[-2:]
    scale = scale or cell_scale((h, w))
    margin = max(4, round(0.15 * max(h, w) * scale))
    width = 3 if scale >= 2 else 1
    lines = region_lines(transform, params.float().cpu())
    canvas_points = to_pixel_extents(lines, (h, w), align_corners) * scale + margin
    far = 10 * (max(h, w) * scale + margin)  # Pillow needs finite coordinates of moderate size
    # Pillow draws the pixel a coordinate falls in (odd widths centred on it): a line along an
    # edge straddles it.
    canvas_points = torch.nan_to_num(canvas_points).clamp(-far, far).floor().int()
    colours, cells = list(COLOURS.values()), []
    for image, polylines in zip(images.cpu(), canvas_points, strict=True):
        cell = Image.new("RGB", (w * scale + 2 * margin, h * scale + 2 * margin), OUTSIDE)
        picture = to_pil_image(image).convert("RGB").resize((w * scale, h * scale), Image.Resampling.NEAREST)
        cell.paste(picture, (margin, margin))
        draw = ImageDraw.Draw(cell)
        for index, transformer_lines in enumerate(polylines):
            colour = colours[index % len(colours)]
            edge, *grid = transformer_lines.tolist()
            draw.line([tuple(p) for p in edge], fill=colour, width=width, joint="curve")
            for line in grid:
                draw.line([tuple(p) for p in line], fill=colour, width=1)
        cells.append(pil_to_tensor(cell))
    return image_grid(torch.stack(cells), nrow)


def regions_title(k: int = 1) -> str:
    """A title for :func:`draw_regions` pictures of ``k`` transformers, naming their colours."""
    if k == 1:
        return "Where it looks"
    names = list(COLOURS)
    return "Where they look: " + ", ".join(f"{i + 1} {names[i % len(names)]}" for i in range(k))
