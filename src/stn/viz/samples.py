"""What a probabilistic spatial transformer samples: each image beside several of its sampled
warps (:class:`~stn.probabilistic.ProbabilisticSpatialTransformer`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from stn.normalization import Normalizer
from stn.observe import eval_mode, first_transformer
from stn.viz.images import cell_scale, image_grid, titled

__all__ = ["sampled_warps", "samples_picture"]


@torch.no_grad()
def sampled_warps(
    model: nn.Module, images: Tensor, mean: Sequence[float], std: Sequence[float], samples: int = 6, seed: int = 0
) -> Tensor | None:
    """``samples`` warps of each uint8 image ``(N, C, H, W)`` drawn from the distribution over θ
    that ``model``'s first transformer predicts (``θ = μ + σ ε``, ``ε`` from a generator seeded
    with ``seed``), de-normalised: uint8 ``(N, samples, C, h, w)`` on the CPU. ``None`` when the
    first transformer does not sample (has no ``predict_distribution``). The model's mode is kept.

    Args:
        model: a model whose first transformer predicts a distribution (``pstn-cnn``).
        images: uint8 ``(N, C, H, W)`` images, as the data set stores them.
        mean: the data set's per-channel mean on ``[0, 1]``.
        std: the data set's per-channel standard deviation on ``[0, 1]``.
        samples: ``S``, the warps drawn per image.
        seed: seeds the draws.

    Examples:
        >>> model = stn.models.create("pstn-cnn", input_shape=(1, 28, 28), samples=2)
        >>> images = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
        >>> sampled_warps(model, images, (0.13,), (0.31,), samples=4).shape
        torch.Size([3, 4, 1, 28, 28])
        >>> sampled_warps(stn.models.create("paper-cnn"), images, (0.13,), (0.31,)) is None  # θ is not sampled
        True
    """
    st = first_transformer(model)
    if st is None or not hasattr(st, "predict_distribution"):
        return None
    normalizer = Normalizer(mean, std)
    device = next(model.parameters()).device
    x = normalizer(images.to(device))
    with eval_mode(st):
        mu, sigma = st.predict_distribution(x)
    noise = torch.randn(samples, *mu.shape, generator=torch.Generator().manual_seed(seed), dtype=mu.dtype)
    params = mu + sigma * noise.to(device)
    warps = torch.stack([normalizer.invert(st.sample(x, p)) for p in params], 1)
    return warps.cpu()


def samples_picture(images: Tensor, warps: Tensor, scale: int | None = None) -> Image.Image:
    """One row per image: the image, then its sampled warps (``warps`` uint8 ``(N, S, C, h, w)``,
    shown at the images' size), as one titled RGB picture.

    Args:
        images: uint8 ``(N, C, H, W)``, the images the warps were drawn for.
        warps: uint8 ``(N, S, C, h, w)`` from :func:`sampled_warps`.
        scale: pixels per image pixel (default: about 64 pixels per image).

    Examples:
        >>> images = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
        >>> picture = samples_picture(images, torch.full((2, 3, 1, 8, 8), 255, dtype=torch.uint8), scale=4)
        >>> picture.mode, picture.width > 4 * 8 * 4  # four columns: the image and three warps
        ('RGB', True)
    """
    n, s = warps.shape[:2]
    h, w = images.shape[-2:]
    flat = warps.flatten(0, 1)
    if flat.shape[-2:] != (h, w):
        flat = F.interpolate(flat.float(), size=(h, w), mode="nearest").to(torch.uint8)
    rows = torch.cat((images.cpu().unsqueeze(1), flat.view(n, s, *flat.shape[1:])), 1)
    grid = image_grid(rows.flatten(0, 1), s + 1, scale or cell_scale((h, w), 64))
    return titled(grid, f"Each test image (left) and {s} warps drawn from its distribution over the parameters")
