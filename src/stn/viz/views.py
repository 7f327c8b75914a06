"""What a spatial transformer did to a batch of images (:class:`~stn.observe.TransformerView`),
from a model (:func:`stn.observe.observe`), a trained run (:func:`from_run`) or each epoch of its snapshots
(:func:`snapshot_views`)."""

from __future__ import annotations

import os
from typing import Any

from torch import Tensor

from stn import transforms as T
from stn.engine.run import Run, load_model
from stn.engine.snapshots import load_snapshots
from stn.observe import TransformerView, first_transformer, fixed_batch, observe

__all__ = ["TransformerView", "from_run", "load_snapshots", "snapshot_views", "test_images"]

DEFAULT_COUNT = 16
MAX_COUNT = 1024  # pictures of more images are too large to look at (and to write)


def from_run(
    run_dir: str | os.PathLike, count: int | None = None, data_root: str | os.PathLike | None = None
) -> TransformerView | None:
    """What the transformer of a run's best checkpoint does to its fixed batch of test images
    (see :func:`test_images`); ``None`` for a model without a transformer."""
    model, payload, _ = load_model(run_dir)
    if first_transformer(model) is None:
        return None
    return observe(model, test_images(Run.open(run_dir), count, data_root), payload["mean"], payload["std"])


def test_images(run: Run, count: int | None = None, data_root: str | os.PathLike | None = None) -> Tensor:
    """``count`` test images of ``run``, taking the classes in turn, uint8 ``(N, C, H, W)``.

    They come from the run's snapshots when those hold enough (so no data set is needed), else
    from exactly the run's test set, read from ``data_root`` (default: the run's own).
    ``count=None``: the snapshot batch, or 16; at most :data:`MAX_COUNT`.
    """
    if count is not None and (not isinstance(count, int) or count < 1):
        raise ValueError(f"count must be a positive integer, got {count!r}")
    if count is not None and count > MAX_COUNT:
        raise ValueError(f"count {count} is too many to draw; at most {MAX_COUNT}")
    snapshots = run.snapshots()
    if snapshots is not None and (count is None or count <= len(snapshots["images"])):
        return snapshots["images"][:count]
    dataset = run.dataset(data_root)
    return dataset.test_images[fixed_batch(dataset.test_labels, count or DEFAULT_COUNT)]


def snapshot_views(snapshots: dict[str, Any]) -> list[tuple[int, TransformerView]]:
    """``(epoch, view)`` for every epoch captured in ``snapshots`` (as :func:`load_snapshots` returns)."""
    if not snapshots["epochs"]:
        return []
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in snapshots["transform_options"].items()}
    transform = T.get(snapshots["transform"], **options)
    views = []
    for epoch, params, outputs in zip(snapshots["epochs"], snapshots["params"], snapshots["outputs"], strict=True):
        pictures = None
        if outputs.numel():
            pictures = outputs.unsqueeze(1) if outputs.dim() == 4 else outputs
        views.append((epoch, TransformerView(snapshots["images"], transform, params, pictures)))
    return views
