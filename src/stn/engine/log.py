"""The seed experiment's log lines, a progress bar on terminals, and the run's log file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

__all__ = ["RunLog", "test_line", "train_line"]


def train_line(epoch: int, seen: int, total: int, batch_idx: int, num_batches: int, loss: float) -> str:
    """``Train Epoch: 2 [32000/50000 (64%)]\\tLoss: 1.923332``, as the seed prints it."""
    return f"Train Epoch: {epoch} [{seen}/{total} ({100.0 * batch_idx / num_batches:.0f}%)]\tLoss: {loss:.6f}"


def test_line(loss: float, correct: int, total: int) -> str:
    """``Test set: Average loss: 1.0220, Accuracy: 6586/10000 (66%)``, as the seed prints it."""
    return f"Test set: Average loss: {loss:.4f}, Accuracy: {correct}/{total} ({100.0 * correct / total:.0f}%)"


class RunLog:
    """Writes lines to ``stream`` and appends them to ``path``; shows a progress bar per epoch
    when ``progress`` (by default: when ``stream`` is a terminal)."""

    def __init__(self, path: Path | None, stream: TextIO | None = None, progress: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.file = open(path, "a", buffering=1) if path else None  # noqa: SIM115  (closed in close())
        self.progress = self.stream.isatty() if progress is None else progress
        self._bar: tqdm | None = None

    def __call__(self, text: str = "") -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)
        if self.file:
            self.file.write(text + "\n")

    def bar(self, total: int, desc: str) -> tqdm | None:
        """Start a progress bar (or nothing when progress is off); ``update(n)`` it, then ``end_bar``."""
        if self.progress:
            self._bar = tqdm(total=total, desc=desc, file=self.stream, leave=False, dynamic_ncols=True, unit="img")
        return self._bar

    def end_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        self.end_bar()
        if self.file:
            self.file.close()
            self.file = None
