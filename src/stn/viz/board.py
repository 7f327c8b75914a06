"""TensorBoard for a training run (``stn train --tensorboard``): the losses, accuracy, learning
rate and transformer statistics as scalars, the before/after grid and where-it-looks outlines as
images, histograms of θ every epoch, and the hyperparameters with the final metrics at the end.

It is a :class:`~stn.engine.loop.Callback` of :func:`stn.engine.train`, over
:class:`~stn.engine.tensorboard.TensorBoardLogger` (``torch.utils.tensorboard``)."""

from __future__ import annotations

import os
from typing import Any

from stn.engine.config import TrainConfig
from stn.engine.loop import EpochEnd
from stn.engine.tensorboard import TensorBoardLogger, require_tensorboard
from stn.viz.grids import before_after
from stn.viz.images import titled
from stn.viz.outlines import draw_regions, regions_title

__all__ = ["TensorBoard"]


class TensorBoard:
    """Logs a run to TensorBoard event files in ``log_dir`` (default: the run directory's
    ``tensorboard/``; view with ``tensorboard --logdir DIR``). Nothing is written before the first
    epoch ends, but a missing ``tensorboard`` package is an error at once."""

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
