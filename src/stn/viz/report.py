"""The report of one or several trained runs: ``report.md``, and ``report.html`` with the pictures
inline. It holds each run's configuration, final and best accuracy, per-class accuracy, learning
curves (all runs on one plot) and the transformer pictures of :mod:`stn.viz.figures`."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stn.data import DataError
from stn.engine.run import Run
from stn.engine.statistics import run_ndim, run_statistics, warnings_for
from stn.files import write_text_atomic
from stn.viz.curves import plot_curves, run_labels
from stn.viz.document import Block, Heading, Paragraph, Picture, Table, to_html, to_markdown
from stn.viz.figures import write_figures
from stn.viz.slices import SLICES_TITLE
from stn.viz.statistics import histogram_panels

__all__ = ["run_summary", "write_report"]

TITLE = "Spatial transformer report"


def run_summary(run_dir: str | os.PathLike) -> dict[str, Any]:
    """What a run achieved: ``final_accuracy``, ``best_accuracy``, ``best_epoch``, ``seconds``,
    ``per_class_accuracy`` (final epoch, ``{class: %}``), ``epochs_done``, its ``config`` (see
    :meth:`stn.engine.run.Run.summary`) and ``transformer``, the transform family its transformer
    used (a volume model reads ``affine`` as ``affine3d``; ``none`` without a transformer).

    Args:
        run_dir: the run directory.
    """
    run = Run.open(run_dir)
    config = run.config.to_dict()
    return {**run.summary(), "epochs_done": run.epochs_done, "config": config, "transformer": _family(run, config)}


def write_report(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike | None = None) -> Path:
    """Write ``report.md`` and ``report.html`` about ``run_dirs`` into ``out`` (default: the first
    run's directory), pictures under ``out/figures``; return the path of ``report.md``.

    Args:
        run_dirs: the run directories, each with a finished epoch.
        out: the folder to write into.

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
        >>> path = write_report([folder / "run"], folder / "report")
        >>> path.name, sorted(p.name for p in path.parent.iterdir())
        ('report.md', ['figures', 'report.html', 'report.md'])
        >>> path.read_text().splitlines()[0]
        '# Spatial transformer report'
    """
    runs = [Path(r) for r in run_dirs]
    if not runs:
        raise ValueError("a report needs at least one run directory")
    out = Path(out) if out is not None else runs[0]
    labels = run_labels(runs)
    summaries = [run_summary(run) for run in runs]  # every run is read before anything is written
    for run in map(Run.open, runs):
        if run.has_checkpoint("best") or run.has_checkpoint("last"):
            run.checkpoint("best")
    out.mkdir(parents=True, exist_ok=True)
    figures = out / "figures"

    blocks: list[Block] = [Heading(TITLE, 1), *_overview(labels, summaries)]
    curves = plot_curves(runs, figures / "curves.png", labels)
    blocks += [
        Heading("Learning curves"),
        Picture(curves, "Train loss (dashed), test loss (solid) and test accuracy per epoch."),
    ]
    for run, label, summary in zip(runs, labels, summaries, strict=True):
        run_figures = figures if len(runs) == 1 else figures / label.replace("/", "-")
        blocks += _run_section(run, label, summary, run_figures)

    write_text_atomic(out / "report.md", to_markdown(blocks, out))
    write_text_atomic(out / "report.html", to_html(blocks, TITLE))
    return out / "report.md"


def _overview(labels: Sequence[str], summaries: Sequence[dict[str, Any]]) -> list[Block]:
    rows = []
    for label, s in zip(labels, summaries, strict=True):
        config = s["config"]
        planned = config.get("epochs", s["epochs_done"])
        epochs = s["epochs_done"] if planned == s["epochs_done"] else f"{s['epochs_done']} of {planned}"
        seconds = s.get("seconds")
        rows.append(
            [
                label,
                config.get("model", "?"),
                config.get("dataset", "?"),
                s["transformer"],
                epochs,
                f"{s['final_accuracy']:.2f}",
                f"{s['best_accuracy']:.2f} (epoch {s['best_epoch']})",
                "" if seconds is None else f"{seconds:.0f}",
            ]
        )
    header = [
        "run",
        "model",
        "data set",
        "transformer",
        "epochs",
        "final accuracy (%)",
        "best accuracy (%)",
        "time (s)",
    ]
    blocks: list[Block] = [Heading("Results"), Table(header, rows)]

    classes: list[str] = []
    for s in summaries:
        classes += [name for name in s["per_class_accuracy"] if name not in classes]
    if classes:
        per_class = [[name, *(_percent(s["per_class_accuracy"].get(name)) for s in summaries)] for name in classes]
        blocks += [Heading("Per-class accuracy (%), final epoch", 3), Table(["class", *labels], per_class)]
    return blocks


def _family(run: Run, config: dict[str, Any]) -> str:
    """The transform family the run's transformer used: its snapshots say (a volume model reads
    ``affine`` as ``affine3d``), else its configuration; ``none`` without a transformer."""
    if not config.get("stn", True):
        return "none"
    snapshots = run.snapshots()
    return snapshots["transform"] if snapshots and snapshots["transform"] else config["transform"]


def _run_section(run: Path, label: str, summary: dict[str, Any], figures: Path) -> list[Block]:
    blocks: list[Block] = [
        Heading(f"Run {label}"),
        Paragraph(
            f"Run directory {run}: final accuracy {summary['final_accuracy']:.2f}%, "
            f"best {summary['best_accuracy']:.2f}% at epoch {summary['best_epoch']}."
        ),
    ]
    try:
        written = write_figures(run, figures, curves=False)
    except DataError as err:  # no snapshot batch and no data set here: no pictures, the rest stands
        written = {}
        blocks.append(Paragraph(f"No transformer pictures: they need the test images ({err})."))
    volumes = run_ndim(Run.open(run)) == 3
    if volumes and "before_after" in written:
        blocks += [
            Heading("What the transformer does", 3),
            Picture(
                written["before_after"],
                f"Test volumes (left; of each, its {SLICES_TITLE}) and what the transformer of the best checkpoint "
                "made of them (right).",
            ),
            Paragraph("Where the transformer looks (its outline on the input) is not drawn for volumes."),
        ]
    elif "regions" in written:
        blocks.append(Heading("What the transformer does", 3))
        if "before_after" in written:
            blocks.append(
                Picture(
                    written["before_after"],
                    "Test images (left) and what the transformer of the best checkpoint made of them (right).",
                )
            )
        else:
            blocks.append(
                Paragraph(
                    "The transformer reads a feature map, so it makes no images; its regions are "
                    "drawn on the input images (normalised coordinates are the same)."
                )
            )
        grid_lines = " and the lines through its control points" if summary["config"].get("transform") == "tps" else ""
        blocks.append(
            Picture(
                written["regions"],
                f"Where it looks: each test image with the border of the output{grid_lines} mapped into it "
                "by the transformer of the best checkpoint.",
            )
        )
    elif not summary["config"].get("stn", True):
        blocks.append(Paragraph("This model has no spatial transformer, so there are no transformer pictures."))
    if "samples" in written:
        blocks.append(
            Picture(
                written["samples"],
                "The transformer samples θ: each test image (left) beside warps drawn from the distribution the "
                "best checkpoint predicts for it.",
            )
        )
    if "statistics" in written:
        blocks += _statistics(run, summary, written, volumes)
    if "learning" in written:
        what = f"test volumes ({SLICES_TITLE})" if volumes else "test images"
        blocks += [
            Heading("How it learned", 3),
            Picture(written["learning"], f"The transformer on the same {what} after each epoch."),
            Picture(written["stills"], "Stills of the animation, first to last epoch."),
        ]
    config = summary["config"]
    if config:
        rows = [[key, value if isinstance(value, str) else json.dumps(value)] for key, value in config.items()]
        blocks += [Heading("Configuration", 3), Table(["option", "value"], rows)]
    return blocks


def _statistics(run: Path, summary: dict[str, Any], written: dict[str, Path], volumes: bool) -> list[Block]:
    """The transformer's statistics over the epochs, its histograms, and the warnings it raised."""
    opened = Run.open(run)
    warnings = summary.get("warnings")
    if warnings is None:  # a run from before the warnings: raised now from its statistics
        rows, _ = run_statistics(opened)
        config = summary["config"]
        warnings = warnings_for(rows, config.get("stn_fill"), config.get("stn_lr_scale"), 3 if volumes else 2)
    shown = [label for _, label, _ in histogram_panels(summary["transformer"])]
    return [
        Heading("Transformer statistics", 3),
        Picture(written["statistics"], "What the transformer does, per epoch (stn inspect prints the numbers)."),
        Picture(
            written["histograms"], f"Per test {'volume' if volumes else 'image'}, best checkpoint: {'; '.join(shown)}."
        ),
        Paragraph("Warnings: " + ("; ".join(warnings) if warnings else "none: the transformer looks healthy.")),
    ]


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"
