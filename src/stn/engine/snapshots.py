"""Every epoch, what the model's first spatial transformer makes of a fixed batch of test images.

Saved as ``snapshots.pt`` in the run directory (a dict of tensors and lists, readable with
``weights_only=True``); :mod:`stn.viz` turns it into the learning GIF and its strip of stills.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from stn.data import Dataset
from stn.files import save_atomic
from stn.layers import SpatialTransformer

__all__ = ["Snapshots", "first_transformer", "fixed_batch"]


def first_transformer(model: nn.Module) -> SpatialTransformer | None:
    """The first :class:`SpatialTransformer` inside ``model`` (``None`` if it has none)."""
    return next((m for m in model.modules() if isinstance(m, SpatialTransformer)), None)


def fixed_batch(labels: Tensor, count: int) -> Tensor:
    """Indices of ``count`` test images taking the classes in turn: class 0's first image,
    class 1's first, ..., then each class's second image, ..."""
    labels = labels.cpu()
    per_class = [torch.nonzero(labels == c).flatten().tolist() for c in range(int(labels.max()) + 1)]
    picked: list[int] = []
    for rank in range(max(len(p) for p in per_class)):
        picked += [p[rank] for p in per_class if rank < len(p)]
        if len(picked) >= count:
            break
    return torch.tensor(picked[:count], dtype=torch.long)


class Snapshots:
    """Captures ``(epoch, transformer output, parameters)`` for a fixed batch."""

    def __init__(self, path: Path, state: dict[str, Any] | None) -> None:
        self.path = path
        self.state = state

    @classmethod
    def for_run(cls, path: Path, dataset: Dataset, count: int, keep_epochs: int = 0) -> Snapshots:
        """Open (on resume: keep the first ``keep_epochs`` epochs of) or start the file at ``path``."""
        if count == 0:
            return cls(path, None)
        if keep_epochs and path.is_file():
            state = torch.load(path, weights_only=True)
            n = sum(1 for e in state["epochs"] if e <= keep_epochs)
            for key in ("epochs", "outputs", "params"):
                state[key] = state[key][:n]
            return cls(path, state)
        index = fixed_batch(dataset.test_labels, count)
        state = dict(
            images=dataset.test_images[index].clone(),
            labels=dataset.test_labels[index].clone(),
            classes=list(dataset.classes),
            mean=list(dataset.mean),
            std=list(dataset.std),
            transform=None,
            transform_options={},
            epochs=[],
            outputs=[],
            params=[],
        )
        return cls(path, state)

    @torch.no_grad()
    def capture(self, epoch: int, model: nn.Module, data) -> None:
        """Run the fixed batch through ``model`` (eval mode) and keep what its first transformer did."""
        st = first_transformer(model)
        if self.state is None or st is None:
            return
        seen: dict[str, Tensor] = {}
        hook = st.register_forward_hook(lambda m, inputs, output: seen.update(input=inputs[0], output=output))
        try:
            model.eval()
            images = data.normalize(self.state["images"].to(data.device))
            model(images)
        finally:
            hook.remove()
        self.state["transform"] = st.transform.name
        self.state["transform_options"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in st.transform.options.items()
        }
        self.state["epochs"].append(epoch)
        self.state["params"].append(st.last_params.float().cpu())
        # Outputs are pictures only when the transformer reads the image itself (not a feature map).
        image_like = seen["input"].shape == images.shape and seen["output"].shape[1] == images.shape[1]
        self.state["outputs"].append(
            data.denormalize(seen["output"]) if image_like else torch.empty(0, dtype=torch.uint8)
        )

    def save(self) -> None:
        if self.state is None or not self.state["epochs"]:
            return
        save_atomic(self.state, self.path)
