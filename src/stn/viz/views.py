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
    (see :func:`test_images`); ``None`` for a model without a transformer.

    Args:
        run_dir: the run directory.
        count: test images to show (default: the run's snapshot batch, else 16).
        data_root: where the run's data set is read when the snapshots do not hold ``count``
            images (default: the run's own).

    Examples:
        >>> import io, os
        >>> from unittest import mock
        >>> from stn.engine import from_recipe, train
        >>> cfg = from_recipe("demo", model="tutorial-mnist", epochs=1, device="cpu", amp="off",
        ...                   dataset_options=dict(train_size=32, test_size=16, canvas=28))  # a tiny run
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> with mock.patch.dict(os.environ, {"STN_CACHE": str(folder)}):  # the drawn glyphs are cached there
        ...     _ = train(cfg, folder / "run", stream=io.StringIO(), progress=False)
        >>> view = from_run(folder / "run")
        >>> tuple(view.images.shape), tuple(view.params.shape), tuple(view.outputs.shape)
        ((16, 1, 28, 28), (16, 1, 6), (16, 1, 1, 28, 28))
    """
    model, payload, _ = load_model(run_dir)
    if first_transformer(model) is None:
        return None
    return observe(model, test_images(Run.open(run_dir), count, data_root), payload["mean"], payload["std"])


def test_images(run: Run, count: int | None = None, data_root: str | os.PathLike | None = None) -> Tensor:
    """``count`` test images of ``run``, taking the classes in turn, uint8 ``(N, C, H, W)``
    (volumes ``(N, C, D, H, W)``).

    They come from the run's snapshots when those hold enough (so no data set is needed), else
    from exactly the run's test set, read from ``data_root`` (default: the run's own).
    ``count=None``: the snapshot batch, or 16; at most :data:`MAX_COUNT`.

    Args:
        run: the run.
        count: how many images.
        data_root: where the run's data set is read if needed.
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
    """``(epoch, view)`` for every epoch captured in ``snapshots`` (as :func:`load_snapshots` returns).

    Args:
        snapshots: a run's snapshots (:meth:`~stn.engine.run.Run.snapshots`).

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
        >>> views = snapshot_views(load_snapshots(folder / "run" / "snapshots.pt"))
        >>> [(epoch, tuple(view.params.shape)) for epoch, view in views]
        [(1, (16, 1, 6)), (2, (16, 1, 6))]
    """
    if not snapshots["epochs"]:
        return []
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in snapshots["transform_options"].items()}
    transform = T.get(snapshots["transform"], **options)
    views = []
    for epoch, params, outputs in zip(snapshots["epochs"], snapshots["params"], snapshots["outputs"], strict=True):
        pictures = None
        if outputs.numel():  # one transformer's outputs have no k axis
            pictures = outputs.unsqueeze(1) if outputs.dim() == snapshots["images"].dim() else outputs
        views.append((epoch, TransformerView(snapshots["images"], transform, params, pictures)))
    return views
