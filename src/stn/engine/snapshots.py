"""Every epoch, what the model's first spatial transformer makes of a fixed batch of test images
(or volumes).

Saved as ``snapshots.pt`` in the run directory (a dict of tensors and lists, readable with
``weights_only=True``); :mod:`stn.viz` turns it into the learning GIF and its strip of stills
(volumes as their middle slices).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stn.data import Dataset
from stn.files import save_atomic
from stn.observe import TransformerView, fixed_batch, observe

__all__ = ["KEYS", "Snapshots", "load_snapshots"]

KEYS = frozenset({"images", "mean", "std", "transform", "transform_options", "epochs", "outputs", "params"})


def load_snapshots(path: str | os.PathLike) -> dict[str, Any]:
    """Read a run's ``snapshots.pt``; ``ValueError`` naming the file if it is not one.

    Args:
        path: the ``snapshots.pt`` file.

    Returns:
        A dict: ``images`` (uint8 ``(N, C, H, W)``, volumes ``(N, C, D, H, W)``), ``labels``,
        ``classes``, ``mean``, ``std``, ``transform`` and ``transform_options``, and per captured
        epoch (``epochs``) its ``params`` and ``outputs`` (see :class:`Snapshots`).

    Examples:
        >>> import io, os
        >>> from unittest import mock
        >>> from stn.engine import from_recipe, train
        >>> cfg = from_recipe("demo", model="tutorial-mnist", epochs=2, device="cpu", amp="off",
        ...                   dataset_options=dict(train_size=32, test_size=16, canvas=28))  # a tiny run
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> with mock.patch.dict(os.environ, {"STN_CACHE": str(folder)}):  # the drawn glyphs are cached there
        ...     _ = train(cfg, folder / "run", stream=io.StringIO(), progress=False)
        >>> snapshots = load_snapshots(folder / "run" / "snapshots.pt")
        >>> snapshots["epochs"], snapshots["transform"], tuple(snapshots["images"].shape)
        ([1, 2], 'affine', (16, 1, 28, 28))
    """
    try:
        state = torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"no such snapshots file: {path}") from None
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} is not a readable snapshots file: {first}") from None
    if not isinstance(state, dict) or not set(state) >= KEYS:
        raise ValueError(f"{path} is not a snapshots file (expected the keys {', '.join(sorted(KEYS))})")
    return state


class Snapshots:
    """Captures ``(epoch, transformer output, parameters)`` for a fixed batch.

    ``outputs`` are uint8 pictures, ``(N, C, h, w)`` for one transformer and ``(N, k, C, h, w)`` for
    ``k`` parallel ones (volumes: ``(N, C, d, h, w)`` and ``(N, k, C, d, h, w)``; empty when the
    transformer reads a feature map); ``params`` ``(N, P)`` or ``(N, k, P)``."""

    def __init__(self, path: Path, state: dict[str, Any] | None) -> None:
        self.path = path
        self.state = state

    @classmethod
    def for_run(cls, path: Path, dataset: Dataset, count: int, keep_epochs: int = 0) -> Snapshots:
        """Open (on resume: keep the first ``keep_epochs`` epochs of) or start the file at ``path``."""
        if count == 0:
            return cls(path, None)
        if keep_epochs and path.is_file():
            state = load_snapshots(path)
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

    def capture(self, epoch: int, model: nn.Module) -> TransformerView | None:
        """Keep what the model's first transformer does to the fixed batch (the model's mode is
        kept), and return it; ``None`` without snapshots or without a transformer."""
        if self.state is None:
            return None
        view = observe(model, self.state["images"], self.state["mean"], self.state["std"])
        if view is None:
            return None
        self.state["transform"] = view.transform.name
        self.state["transform_options"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in view.transform.options.items()
        }
        self.state["epochs"].append(epoch)
        self.state["params"].append(view.params.squeeze(1) if view.k == 1 else view.params)
        outputs = view.outputs if view.outputs is not None else torch.empty(0, dtype=torch.uint8)
        self.state["outputs"].append(outputs.squeeze(1) if view.k == 1 and outputs.numel() else outputs)
        return view

    def save(self) -> None:
        if self.state is None or not self.state["epochs"]:
            return
        save_atomic(self.state, self.path)
