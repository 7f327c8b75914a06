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
    shown at the images' size), as one titled RGB picture."""
    n, s = warps.shape[:2]
    h, w = images.shape[-2:]
    flat = warps.flatten(0, 1)
    if flat.shape[-2:] != (h, w):
        flat = F.interpolate(flat.float(), size=(h, w), mode="nearest").to(torch.uint8)
    rows = torch.cat((images.cpu().unsqueeze(1), flat.view(n, s, *flat.shape[1:])), 1)
    grid = image_grid(rows.flatten(0, 1), s + 1, scale or cell_scale((h, w), 64))
    return titled(grid, f"Each test image (left) and {s} warps drawn from its distribution over the parameters")
