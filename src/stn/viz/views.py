"""What a spatial transformer did to a batch of images (:class:`TransformerView`), from a model
(:func:`look`), a trained run (:func:`from_run`) or each epoch of its ``snapshots.pt``
(:func:`snapshot_views`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from stn import data as stn_data
from stn import transforms as T
from stn.engine import checkpoint
from stn.engine.snapshots import first_transformer, fixed_batch
from stn.viz.images import denormalize, normalize

__all__ = ["TransformerView", "from_run", "load_snapshots", "look", "snapshot_views", "test_images"]

DEFAULT_COUNT = 16


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


@torch.no_grad()
def look(model: nn.Module, images: Tensor, mean: Sequence[float], std: Sequence[float]) -> TransformerView | None:
    """Run uint8 ``images`` ``(N, C, H, W)`` through ``model`` (in eval mode, normalised with
    ``mean`` and ``std``) and keep what its first spatial transformer did; ``None`` if it has none."""
    st = first_transformer(model)
    if st is None:
        return None
    device = next(model.parameters(), torch.empty(0)).device
    x = normalize(images, mean, std).to(device)
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
    params = st.last_params.float().cpu()
    n, c = x.shape[:2]
    k = params.shape[1] if params.dim() == 3 else 1
    out = seen["output"]
    # Pictures only when the transformer read the image itself (not a feature map).
    reads_image = seen["input"].shape == x.shape and torch.equal(seen["input"], x) and out.shape[1] == k * c
    outputs = None
    if reads_image:
        outputs = denormalize(out.reshape(n * k, c, *out.shape[-2:]), mean, std).view(n, k, c, *out.shape[-2:])
    return TransformerView(images.cpu(), st.transform, params, outputs, st.align_corners)


def from_run(
    run_dir: str | os.PathLike, count: int | None = None, data_root: str | os.PathLike | None = None
) -> TransformerView | None:
    """What the transformer of a run's best checkpoint does to its fixed batch of test images
    (see :func:`test_images`); ``None`` for a model without a transformer."""
    model, payload, _ = checkpoint.load_model(run_dir)
    if first_transformer(model) is None:
        return None
    images = test_images(run_dir, payload, count, data_root)
    return look(model, images, payload["mean"], payload["std"])


def test_images(
    run_dir: str | os.PathLike,
    payload: dict[str, Any],
    count: int | None = None,
    data_root: str | os.PathLike | None = None,
) -> Tensor:
    """``count`` test images, taking the classes in turn, uint8 ``(N, C, H, W)``.

    They come from the run's ``snapshots.pt`` when it holds enough (so no data set is needed), else
    from the data set named in the checkpoint ``payload``, read from ``data_root`` (default: the
    run's own). ``count=None``: the snapshot batch, or 16.
    """
    if count is not None and (not isinstance(count, int) or count < 1):
        raise ValueError(f"count must be a positive integer, got {count!r}")
    path = Path(run_dir) / "snapshots.pt"
    if path.is_file():
        images = load_snapshots(path)["images"]
        if count is None or count <= len(images):
            return images[:count]
    config = payload.get("config", {})
    options = {"image_size": tuple(config["image_size"])} if config.get("image_size") else {}
    dataset = stn_data.load(payload["dataset"], data_root or config.get("data_root"), **options)
    return dataset.test_images[fixed_batch(dataset.test_labels, count or DEFAULT_COUNT)]


def load_snapshots(path: str | os.PathLike) -> dict[str, Any]:
    """Read a run's ``snapshots.pt`` (see :mod:`stn.engine.snapshots`); ``ValueError`` if it is not one."""
    try:
        state = torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"no such snapshots file: {path}") from None
    except Exception as err:
        raise ValueError(f"{path} is not a readable snapshots file: {str(err).splitlines()[0]}") from None
    keys = {"images", "mean", "std", "transform", "transform_options", "epochs", "outputs", "params"}
    if not isinstance(state, dict) or not keys <= set(state):
        raise ValueError(f"{path} is not a snapshots file (expected the keys {', '.join(sorted(keys))})")
    return state


def snapshot_views(snapshots: dict[str, Any]) -> list[tuple[int, TransformerView]]:
    """``(epoch, view)`` for every epoch captured in ``snapshots`` (as :func:`load_snapshots` returns)."""
    if not snapshots["epochs"]:
        return []
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in snapshots["transform_options"].items()}
    transform = T.get(snapshots["transform"], **options)
    views = []
    for epoch, params, outputs in zip(snapshots["epochs"], snapshots["params"], snapshots["outputs"], strict=True):
        pictures = outputs.unsqueeze(1) if outputs.numel() else None
        views.append((epoch, TransformerView(snapshots["images"], transform, params, pictures)))
    return views
