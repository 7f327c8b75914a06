"""Learning curves from runs' ``metrics.csv``: train and test loss, and test accuracy, per epoch,
one colour per run (e.g. STN against no STN on one plot)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from stn.engine.run import Run
from stn.files import write_atomic

__all__ = ["plot_curves", "read_metrics", "run_labels"]

COLUMNS = ("epoch", "train_loss", "test_loss", "test_accuracy")


def read_metrics(run_dir: str | os.PathLike) -> dict[str, list[float]]:
    """The columns of a run's metrics (``epoch``, ``train_loss``, ``test_loss``,
    ``test_accuracy``, ...) as lists of numbers, one entry per epoch.

    Args:
        run_dir: the run directory; ``ValueError`` before its first epoch ends.

    Examples:
        >>> from stn.engine import Run, TrainConfig
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> run = Run.create(folder / "run", TrainConfig(epochs=2))
        >>> run.write_metrics([dict(epoch=1, train_loss=1.5, test_loss=1.25, test_accuracy=60.0, seconds=1.0),
        ...                    dict(epoch=2, train_loss=1.0, test_loss=0.75, test_accuracy=75.0, seconds=2.0)])
        >>> metrics = read_metrics(run.dir)
        >>> metrics["epoch"], metrics["test_accuracy"]
        ([1.0, 2.0], [60.0, 75.0])
    """
    rows = Run.open(run_dir).metrics()
    if not rows:
        raise ValueError(f"{run_dir} has no finished epoch yet")
    return {key: [float(row[key]) for row in rows] for key in rows[0]}


def run_labels(run_dirs: Sequence[str | os.PathLike]) -> list[str]:
    """A short, distinct label per run: its directory name, with parent folders added where two
    names clash."""
    paths = [Path(r).resolve() for r in run_dirs]
    depth = 1
    while True:
        labels = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels) or depth >= max(len(p.parts) for p in paths):
            return labels
        depth += 1


def plot_curves(
    run_dirs: Sequence[str | os.PathLike], path: str | os.PathLike, labels: Sequence[str] | None = None
) -> Path:
    """Plot train loss (dashed) and test loss (solid), and test accuracy, against epoch for every
    run into the PNG ``path``; runs are labelled by ``labels`` (default :func:`run_labels`).

    Args:
        run_dirs: the run directories, each with a finished epoch.
        path: the PNG file to write.
        labels: one legend label per run.

    Examples:
        >>> from PIL import Image
        >>> from stn.engine import Run, TrainConfig
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> for name, accuracy in (("stn", 75.0), ("cnn", 70.0)):
        ...     rows = [dict(epoch=1, train_loss=1.5, test_loss=1.25, test_accuracy=60.0, seconds=1.0),
        ...             dict(epoch=2, train_loss=1.0, test_loss=0.75, test_accuracy=accuracy, seconds=2.0)]
        ...     Run.create(folder / name, TrainConfig(epochs=2)).write_metrics(rows)
        >>> path = plot_curves([folder / "stn", folder / "cnn"], folder / "curves.png")
        >>> path.name, Image.open(path).format
        ('curves.png', 'PNG')
    """
    labels = list(labels) if labels is not None else run_labels(run_dirs)
    if len(labels) != len(run_dirs):
        raise ValueError(f"{len(labels)} labels for {len(run_dirs)} runs")
    figure = Figure(figsize=(11, 4), layout="constrained")
    loss, accuracy = figure.subplots(1, 2)
    colours = [f"C{i % 10}" for i in range(len(run_dirs))]  # matplotlib's default cycle
    for run_dir, label, colour in zip(run_dirs, labels, colours, strict=True):
        m = read_metrics(run_dir)
        marker = "o" if len(m["epoch"]) <= 20 else None
        loss.plot(m["epoch"], m["train_loss"], "--", color=colour, marker=marker, label=f"{label} train")
        loss.plot(m["epoch"], m["test_loss"], "-", color=colour, marker=marker, label=f"{label} test")
        accuracy.plot(m["epoch"], m["test_accuracy"], "-", color=colour, marker=marker, label=label)
    loss.set(title="Loss", xlabel="epoch", ylabel="cross-entropy")
    accuracy.set(title="Test accuracy", xlabel="epoch", ylabel="accuracy (%)")
    for axes in (loss, accuracy):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # 1 epoch: one tick, "1"
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: figure.savefig(f, format="png", dpi=100))
    return path
