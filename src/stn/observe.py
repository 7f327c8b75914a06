"""What a spatial transformer did to a batch of images: :func:`observe` runs a model and keeps,
for its first transformer, the parameters, the outputs as pictures and the transform that reads the
input. Snapshots while training, the views of a trained run and ``stn predict`` all use it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from stn import transforms as T
from stn.layers import RecurrentSpatialTransformer, SpatialTransformer
from stn.normalization import Normalizer

__all__ = ["TransformerView", "first_transformer", "fixed_batch", "observe"]


@dataclass
class TransformerView:
    """One batch of images seen through a spatial transformer.

    Attributes:
        images: the raw inputs, uint8 ``(N, C, H, W)``.
        transform: the transformer's family.
        params: its parameters for each image, ``(N, k, P)``: ``k = 1`` for a
            :class:`~stn.layers.SpatialTransformer`, ``k`` for
            :class:`~stn.layers.ParallelSpatialTransformers`. ``(N, P)`` is taken as ``k = 1``.
        outputs: what it made of them, uint8 ``(N, k, C, h, w)``, de-normalised; ``None`` when it
            works on a feature map rather than on the image.
        align_corners: the transformer's sampling convention (see :mod:`stn.transforms`).
    """

    images: Tensor
    transform: T.Transform
    params: Tensor
    outputs: Tensor | None = None
    align_corners: bool = False

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        n = len(self.images)
        if self.params.dim() == 2:
            self.params = self.params.unsqueeze(1)
        if self.params.dim() != 3 or self.params.shape[0] != n:
            raise ValueError(f"params must be (N, P) or (N, k, P) for {n} images, got {tuple(self.params.shape)}")
        if self.outputs is not None and (self.outputs.dim() != 5 or self.outputs.shape[:2] != self.params.shape[:2]):
            raise ValueError(
                f"outputs must be (N, k, C, h, w) with (N, k) = {tuple(self.params.shape[:2])}, "
                f"got {tuple(self.outputs.shape)}"
            )

    @property
    def k(self) -> int:
        """Number of transformers (parameter sets per image)."""
        return self.params.shape[1]


def first_transformer(model: nn.Module) -> SpatialTransformer | None:
    """The first :class:`~stn.layers.SpatialTransformer` inside ``model`` (``None`` if it has none)."""
    return next((m for m in model.modules() if isinstance(m, SpatialTransformer)), None)


def fixed_batch(labels: Tensor, count: int) -> Tensor:
    """Indices of ``count`` images taking the classes in turn: class 0's first image, class 1's
    first, ..., then each class's second image, ..."""
    labels = labels.cpu()
    per_class = [torch.nonzero(labels == c).flatten().tolist() for c in range(int(labels.max()) + 1)]
    picked: list[int] = []
    for rank in range(max(len(p) for p in per_class)):
        picked += [p[rank] for p in per_class if rank < len(p)]
        if len(picked) >= count:
            break
    return torch.tensor(picked[:count], dtype=torch.long)


@torch.no_grad()
def observe(model: nn.Module, images: Tensor, mean: Sequence[float], std: Sequence[float]) -> TransformerView | None:
    """Run uint8 ``images`` ``(N, C, H, W)`` through ``model`` in eval mode, normalised with
    ``mean`` and ``std``, and keep what its first spatial transformer did; ``None`` if it has none
    (or for volumes ``(N, C, D, H, W)``, which are not drawn).

    The model's mode (train or eval) is restored. The outputs are pictures only when the
    transformer read the images themselves (not a feature map) and gave as many channels per
    transformer; the view's images are on the CPU. A
    :class:`~stn.layers.RecurrentSpatialTransformer` is shown step by step, its steps in place of
    parallel transformers: ``params`` ``(N, steps, P)``, ``outputs`` ``(N, steps, C, h, w)``.
    """
    st = first_transformer(model)
    if st is None or images.dim() == 5:  # volumes are not drawn
        return None
    normalizer = Normalizer(mean, std)
    device = next(model.parameters(), torch.empty(0)).device
    x = normalizer(images.to(device))
    seen: dict[str, Tensor] = {}
    hook = st.register_forward_hook(lambda module, inputs, output: seen.update(input=inputs[0], output=output))
    training = model.training
    try:
        model.eval()
        model(x)
    finally:
        hook.remove()
        model.train(training)
    if not seen:
        raise ValueError(f"the model's first spatial transformer ({type(st).__name__}) was not called in its forward")
    n, c = x.shape[:2]
    reads_image = seen["input"].shape == x.shape and torch.equal(seen["input"], x)
    if isinstance(st, RecurrentSpatialTransformer):  # every step, as k transformers
        return _steps(st, x, images, normalizer, reads_image)
    params = st.last_params.float().cpu()
    k = params.shape[1] if params.dim() == 3 else 1
    out = seen["output"]
    outputs = None
    if reads_image and out.shape[1] == k * c:
        outputs = normalizer.invert(out.reshape(n * k, c, *out.shape[-2:])).view(n, k, c, *out.shape[-2:])
    return TransformerView(images.cpu(), st.transform, params, outputs, st.align_corners)


@torch.no_grad()
def _steps(
    st: RecurrentSpatialTransformer, x: Tensor, images: Tensor, normalizer: Normalizer, reads_image: bool
) -> TransformerView:
    """The view of every step of an inverse-compositional transformer: ``params`` ``(N, steps, P)``
    and, when it reads the image, what each step's parameters make of it."""
    steps = st.last_step_params
    params = torch.stack(steps, 1).float().cpu()
    outputs = None
    if reads_image:
        pictures = [normalizer.invert(st.sample(x, p.to(x.dtype))) for p in steps]
        outputs = torch.stack(pictures, 1)
    return TransformerView(images.cpu(), st.transform, params, outputs, st.align_corners)
