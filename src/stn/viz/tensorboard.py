"""TensorBoard for a training run (``stn train --tensorboard``): :class:`TensorBoard`, a
:class:`~stn.engine.loop.Callback` of :func:`stn.engine.train` that logs the losses, accuracy,
learning rate and transformer statistics as scalars, the before/after grid and where-it-looks
outlines as images, histograms of θ every epoch, and the hyperparameters with the final metrics at
the end; over :class:`TensorBoardLogger` (:class:`torch.utils.tensorboard.SummaryWriter`).

Optional: ``pip install 'torch-stn[tensorboard]'``. Nothing here is imported by ``import stn``;
the writer is imported when a :class:`TensorBoardLogger` is made, and a missing package is one
:class:`TensorBoardUnavailable` error naming the install command. Watch a run with
``tensorboard --logdir RUN_DIR/tensorboard``.

Scalar tags: ``loss/train``, ``loss/test``, ``accuracy/test``, ``lr``, and the transformer
statistics of :mod:`stn.engine.statistics` as ``stn/scale_mean``, ``stn2/outside_share``, ...
(:func:`tag_for`); histograms of θ as ``theta/stn/0``, ``theta/stn/1``, ...
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from stn.engine.config import TrainConfig
from stn.engine.loop import EpochEnd
from stn.viz.grids import before_after
from stn.viz.images import titled
from stn.viz.outlines import draw_regions, regions_title

__all__ = ["INSTALL", "TensorBoard", "TensorBoardLogger", "TensorBoardUnavailable", "require_tensorboard", "tag_for"]

INSTALL = "pip install 'torch-stn[tensorboard]'"

_TAGS = {
    "train_loss": "loss/train",
    "test_loss": "loss/test",
    "test_accuracy": "accuracy/test",
    "train_accuracy": "accuracy/train",
    "lr": "lr",
    "seconds": "time/seconds",
}
_STAT = re.compile(r"^(stn\d*)_(.+)$")


class TensorBoardUnavailable(ImportError, ValueError):
    """The ``tensorboard`` package is not installed (a ``ValueError`` too, so that the CLI reports
    it as one line)."""


def tag_for(key: str) -> str:
    """The TensorBoard tag of a metric or statistic column: ``test_loss`` -> ``loss/test``,
    ``stn2_scale_mean`` -> ``stn2/scale_mean``; other keys are kept as they are."""
    if key in _TAGS:
        return _TAGS[key]
    match = _STAT.match(key)
    return f"{match[1]}/{match[2]}" if match else key


def _hparam(value: object) -> bool | int | float | str:
    """A value TensorBoard's hyperparameter plugin accepts (numbers, strings, booleans)."""
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def require_tensorboard() -> None:
    """Raise :class:`TensorBoardUnavailable` (one line) unless the tensorboard package is there."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise TensorBoardUnavailable(f"TensorBoard logging needs the tensorboard package: {INSTALL}") from None


class TensorBoardLogger:
    """Writes one run's scalars, images, hyperparameters and θ histograms to ``log_dir``.

    Use as a context manager (or call :meth:`close`). Every method takes the epoch as the
    global step, so curves line up with ``metrics.csv``.
    """

    def __init__(self, log_dir: str | os.PathLike) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch raises it when the tensorboard package is missing
            raise TensorBoardUnavailable(f"TensorBoard logging needs the tensorboard package: {INSTALL}") from None
        self.log_dir = os.fspath(log_dir)
        self.writer = SummaryWriter(self.log_dir)

    def scalars(self, epoch: int, values: Mapping[str, float]) -> None:
        """One point per value at ``epoch``: losses, accuracy, learning rate, transformer
        statistics (tags from :func:`tag_for`; ``epoch`` keys and non-numbers are skipped)."""
        for key, value in values.items():
            if key == "epoch" or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            self.writer.add_scalar(tag_for(key), float(value), epoch)

    def image(self, tag: str, epoch: int, picture: Any) -> None:
        """A picture at ``epoch``: a PIL image, or a uint8 array/tensor ``(H, W)`` or ``(H, W, C)``
        with ``C`` in 1, 3, 4 (e.g. the before/after grid, the where-it-looks outlines)."""
        array = np.asarray(picture.convert("RGB")) if hasattr(picture, "convert") else picture
        if isinstance(array, Tensor):
            array = array.detach().cpu().numpy()
        array = np.asarray(array)
        if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
            raise ValueError(f"image must be uint8 (H, W) or (H, W, C), got {array.dtype} {array.shape}")
        if array.ndim == 2:
            array = array[:, :, None]
        self.writer.add_image(tag, array, epoch, dataformats="HWC")

    def params(self, epoch: int, params: Tensor, prefix: str = "stn", names: Sequence[str] | None = None) -> None:
        """Histograms of θ at ``epoch``, one per parameter: ``(N, P)`` (tags
        ``theta/{prefix}/{name}``, names default ``0 .. P-1``) or ``(N, k, P)`` for parallel
        transformers (prefixes ``{prefix}1 .. {prefix}k``)."""
        if not isinstance(params, Tensor) or params.dim() not in (2, 3) or params.shape[0] == 0:
            shape = tuple(params.shape) if isinstance(params, Tensor) else type(params).__name__
            raise ValueError(f"params must be (N, P) or (N, k, P) with N >= 1, got {shape}")
        if params.dim() == 3:
            for i in range(params.shape[1]):
                self.params(epoch, params[:, i], f"{prefix}{i + 1}", names)
            return
        names = [str(i) for i in range(params.shape[1])] if names is None else list(names)
        if len(names) != params.shape[1]:
            raise ValueError(f"{len(names)} names for {params.shape[1]} parameters")
        values = params.detach().float().cpu()
        for i, name in enumerate(names):
            column = values[:, i]
            if torch.isfinite(column).all():
                self.writer.add_histogram(f"theta/{prefix}/{name}", column, epoch)

    def hparams(self, hparams: Mapping[str, object], metrics: Mapping[str, float], step: int = 0) -> None:
        """The run's hyperparameters (e.g. its config) with its final metrics at ``step`` (the last
        epoch: a resumed run's final metrics land at its new last epoch, beside the earlier ones), in
        this run's own event file (the HPARAMS tab); values that are not numbers, strings or booleans
        are written as text, metrics that are not finite numbers are left out."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        clean = {str(k): _hparam(v) for k, v in hparams.items()}
        final = {
            f"final/{tag_for(k)}": float(v)
            for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        }
        for summary in hparams_summary(clean, final):
            self.writer._get_file_writer().add_summary(summary)
        for tag, value in final.items():
            self.writer.add_scalar(tag, value, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> TensorBoardLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TensorBoard:
    """Logs a run to TensorBoard event files in ``log_dir`` (default: the run directory's
    ``tensorboard/``; view with ``tensorboard --logdir DIR``). Nothing is written before the first
    epoch ends, but a missing ``tensorboard`` package is an error at once.

    Args:
        log_dir: the folder of the event files (default: the run directory's ``tensorboard/``).

    Examples:
        >>> import io, os, pytest
        >>> from unittest import mock
        >>> _ = pytest.importorskip("tensorboard")  # the tensorboard extra
        >>> from stn.engine import from_recipe, train
        >>> cfg = from_recipe("demo", model="tutorial-mnist", epochs=1, device="cpu", amp="off",
        ...                   dataset_options=dict(train_size=32, test_size=16, canvas=28))  # a tiny run
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> with mock.patch.dict(os.environ, {"STN_CACHE": str(folder)}):  # the drawn glyphs are cached there
        ...     _ = train(cfg, folder / "run", stream=io.StringIO(), progress=False, callbacks=[TensorBoard()])
        >>> [p.name.startswith("events.out.tfevents") for p in (folder / "run" / "tensorboard").iterdir()]
        [True]
    """

    def __init__(self, log_dir: str | os.PathLike | None = None) -> None:
        require_tensorboard()
        self.log_dir = log_dir
        self._logger: TensorBoardLogger | None = None

    @property
    def logger(self) -> TensorBoardLogger:
        if self._logger is None:
            raise RuntimeError("TensorBoard logging starts with the first finished epoch")
        return self._logger

    def on_epoch(self, end: EpochEnd) -> None:
        if self._logger is None:
            self._logger = TensorBoardLogger(self.log_dir or end.run.path("tensorboard"))
        self.logger.scalars(end.epoch, {**end.row, "lr": end.lr})
        view = end.view
        if view is not None:
            if view.outputs is not None:
                self.logger.image("transformer/before_after", end.epoch, before_after(view))
            if not view.volumes:  # outlines on volumes are not drawn
                regions = draw_regions(view.images, view.transform, view.params, view.align_corners)
                self.logger.image("transformer/where_it_looks", end.epoch, titled(regions, regions_title(view.k)))
            self.logger.params(end.epoch, view.params if view.k > 1 else view.params[:, 0])
        self.logger.flush()

    def on_end(self, cfg: TrainConfig, summary: dict[str, Any]) -> None:
        if self._logger is None:
            return
        metrics = {k: v for k, v in summary.items() if k in ("final_accuracy", "best_accuracy")}
        hparams = {k: v for k, v in cfg.to_dict().items() if not isinstance(v, dict)}
        self.logger.hparams(hparams, metrics, summary.get("epochs", 0))
        self.logger.close()
