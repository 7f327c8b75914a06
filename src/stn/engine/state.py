"""Everything a run carries from one epoch to the next, and the checkpoints made of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["TrainState"]


def _rng_state(generator: torch.Generator) -> dict[str, Tensor]:
    state = {"cpu": torch.get_rng_state(), "data": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Tensor], generator: torch.Generator) -> None:
    torch.set_rng_state(state["cpu"])
    generator.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


@dataclass
class TrainState:
    """The model, optimizer, schedule and random state of a run, and what it has measured so far.

    ``state_dict()`` is ``last.pt``'s payload (less the run's description, see
    :meth:`stn.engine.run.Run.save_checkpoint`); ``best_state_dict()`` is ``best.pt``'s.

    Attributes:
        model: the network being trained.
        optimizer: its optimizer.
        scheduler: the learning-rate schedule, stepped every batch.
        generator: draws the batches and their augmentation.
        epoch: the last finished epoch (0 before the first).
        metrics: one ``metrics.csv`` row per finished epoch.
        best_accuracy: the best test accuracy so far, in % (-1 before the first epoch).
        elapsed: seconds of training so far.
        class_correct: the last epoch's correct test images per class.
        class_total: the test images per class.

    Examples:
        >>> from torch import nn
        >>> model = nn.Linear(4, 2)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> state = TrainState(model, opt, torch.optim.lr_scheduler.ConstantLR(opt, 1.0), torch.Generator())
        >>> state.record({"epoch": 1, "test_accuracy": 50.0}, [1, 0], [1, 1])  # the best so far
        True
        >>> state.record({"epoch": 2, "test_accuracy": 40.0}, [0, 1], [1, 1])
        False
        >>> state.epoch, state.best_accuracy, sorted(state.best_state_dict())
        (2, 50.0, ['best_accuracy', 'class_correct', 'class_total', 'epoch', 'metrics', 'state_dict'])
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    epoch: int = 0
    metrics: list[dict[str, Any]] = field(default_factory=list)
    best_accuracy: float = -1.0
    elapsed: float = 0.0
    class_correct: list[int] = field(default_factory=list)
    class_total: list[int] = field(default_factory=list)

    def record(self, row: dict[str, Any], class_correct: list[int], class_total: list[int]) -> bool:
        """Add one finished epoch's metrics row; return whether it is the best so far."""
        self.epoch = row["epoch"]
        self.metrics.append(row)
        self.class_correct, self.class_total = class_correct, class_total
        is_best = row["test_accuracy"] > self.best_accuracy
        self.best_accuracy = max(self.best_accuracy, row["test_accuracy"])
        return is_best

    def best_state_dict(self) -> dict[str, Any]:
        return dict(
            state_dict=self.model.state_dict(),
            epoch=self.epoch,
            metrics=self.metrics,
            best_accuracy=self.best_accuracy,
            class_correct=self.class_correct,
            class_total=self.class_total,
        )

    def state_dict(self) -> dict[str, Any]:
        return dict(
            self.best_state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            rng=_rng_state(self.generator),
            elapsed=self.elapsed,
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"], self.generator)
        self.epoch, self.metrics = state["epoch"], list(state["metrics"])
        self.best_accuracy, self.elapsed = state["best_accuracy"], state["elapsed"]
        self.class_correct, self.class_total = list(state["class_correct"]), list(state["class_total"])
