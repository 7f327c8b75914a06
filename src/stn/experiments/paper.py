"""``stn bench paper``: the paper's distorted-MNIST table (Table 1) with this library's models and engine.

Every model of the table (:data:`ENTRIES`) is trained by :func:`stn.engine.train` on every
distorted data set (:data:`VARIANTS`, from :mod:`stn.data.distorted`) under one :class:`Budget`,
and its final test error is written beside the paper's number, with how much ST-CNN gains on
CNN. Finished runs are kept (their run directories), so an interrupted bench continues where it
stopped when run again with the same arguments.

Beyond the paper (:data:`NEW_ROWS`): ST-CNNs with the diffeomorphic, polar and field families and
the inverse-compositional IC-STN, trained the same way; for these the table also times one
training step beside plain affine ST-CNN on the same input.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from stn.engine import (
    RECIPES,
    TrainConfig,
    from_recipe,
    resolve_device,
)
from stn.engine.machine import describe
from stn.experiments.runs import check_seeds, train_or_reuse
from stn.files import write_text_atomic

__all__ = ["BUDGETS", "ENTRIES", "PAPER_ERRORS", "VARIANTS", "Budget", "Entry", "plan", "run"]


@dataclass(frozen=True)
class Entry:
    """A model of the table: its row label, registered model, and transformer (if any)."""

    label: str  # "ST-CNN Aff"
    model: str  # registry name
    stn: bool
    transform: str = "affine"
    options: tuple[tuple[str, Any], ...] = ()  # more model options, e.g. (("recurrent_steps", 4),)

    @property
    def slug(self) -> str:
        return self.label.lower().replace(" ", "-")


ENTRIES: tuple[Entry, ...] = (
    Entry("FCN", "paper-fcn", False),
    Entry("CNN", "paper-cnn", False),
    Entry("ST-FCN Aff", "paper-fcn", True, "affine"),
    Entry("ST-FCN Proj", "paper-fcn", True, "projective"),
    Entry("ST-FCN TPS", "paper-fcn", True, "tps"),
    Entry("ST-CNN Aff", "paper-cnn", True, "affine"),
    Entry("ST-CNN Proj", "paper-cnn", True, "projective"),
    Entry("ST-CNN TPS", "paper-cnn", True, "tps"),
    Entry("ST-CNN Diffeomorphic", "paper-cnn", True, "diffeomorphic"),
    Entry("ST-CNN Polar", "paper-cnn", True, "polar"),
    Entry("ST-CNN Field", "paper-cnn", True, "field"),
    Entry("IC-STN Aff", "paper-cnn", True, "affine", (("recurrent_steps", 4),)),
)

# Rows beyond the paper, and the variants each is trained on.
NEW_ROWS: dict[str, tuple[str, ...]] = {
    "ST-CNN Diffeomorphic": ("R", "RTS", "P", "E"),
    "ST-CNN Polar": ("R", "RTS"),
    "ST-CNN Field": ("R", "RTS", "P", "E"),
    "IC-STN Aff": ("R", "RTS", "P", "E"),
}

VARIANTS: dict[str, str] = {"R": "mnist-r", "RTS": "mnist-rts", "P": "mnist-p", "E": "mnist-e", "TC": "mnist-tc"}

# The paper's Table 1, test error in %. For TC it gives one number per network family; we train
# the affine transformer there.
PAPER_ERRORS: dict[str, dict[str, float]] = {
    "FCN": {"R": 2.1, "RTS": 5.2, "P": 3.1, "E": 3.2, "TC": 13.2},
    "CNN": {"R": 1.2, "RTS": 0.8, "P": 1.5, "E": 1.4, "TC": 3.5},
    "ST-FCN Aff": {"R": 1.2, "RTS": 0.8, "P": 1.5, "E": 2.7, "TC": 2.0},
    "ST-FCN Proj": {"R": 1.3, "RTS": 0.9, "P": 1.4, "E": 2.6},
    "ST-FCN TPS": {"R": 1.1, "RTS": 0.8, "P": 1.4, "E": 2.4},
    "ST-CNN Aff": {"R": 0.7, "RTS": 0.5, "P": 0.8, "E": 1.2, "TC": 1.7},
    "ST-CNN Proj": {"R": 0.8, "RTS": 0.6, "P": 0.8, "E": 1.3},
    "ST-CNN TPS": {"R": 0.7, "RTS": 0.5, "P": 0.8, "E": 1.1},
}
PAPER_MODELS = tuple(PAPER_ERRORS)  # the paper's eight rows: what the long budgets train unless told


class CellOptions(NamedTuple):
    """Changes to a budget's recipe for some cells: those of the rows named (a label, or a family
    such as ``"ST-CNN"``; empty: every row) on the variants named (empty: every variant)."""

    options: dict[str, Any]
    rows: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()

    def covers(self, variant: str, entry: Entry) -> bool:
        return (not self.variants or variant in self.variants) and (not self.rows or _in_rows(entry, self.rows))


def _in_rows(entry: Entry, rows: Sequence[str]) -> bool:
    """Whether ``entry``'s label is one of ``rows`` or in one of their families (``"ST-CNN"``)."""
    return any(entry.label == row or entry.label.startswith(row + " ") for row in rows)


@dataclass(frozen=True)
class Budget:
    """How much training each model gets: a named recipe of :data:`stn.engine.RECIPES`
    (``paper-<name>``), and one line about it.

    ``cells`` change the recipe for some cells (later ones win where they overlap); ``row_seeds``
    gives rows (labels or families, ``{"ST-CNN": (1, 2)}``) their own seeds when the command
    names none (``--seeds``); ``models`` are the rows trained when the command names none
    (``--models``; empty: every row, the paper's and :data:`NEW_ROWS`)."""

    name: str
    description: str
    cells: tuple[CellOptions, ...] = ()
    row_seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)
    models: tuple[str, ...] = ()

    @property
    def recipe(self) -> str:
        return f"paper-{self.name}"

    def options_for(self, variant: str, entry: Entry) -> dict[str, Any]:
        """The changes to the recipe for ``entry`` on ``variant``."""
        options: dict[str, Any] = {}
        for cell in self.cells:
            if cell.covers(variant, entry):
                options.update(cell.options)
        return options

    def seeds_for(self, entry: Entry, default: Sequence[int]) -> list[int]:
        """The seeds ``entry``'s cells are trained with: its row's, else ``default``."""
        return next((list(s) for rows, s in self.row_seeds.items() if _in_rows(entry, (rows,))), list(default))

    def describe_cells(self) -> list[dict[str, Any]]:
        """:attr:`cells` as JSON."""
        return [dict(rows=list(c.rows), variants=list(c.variants), options=c.options) for c in self.cells]


BUDGETS: dict[str, Budget] = {
    "smoke": Budget(
        "smoke", "a handful of steps per model on 256 images: checks the pipeline, says nothing about the models"
    ),
    "cpu": Budget(
        "cpu",
        "2 epochs of all 60,000 training images (about 940 steps of 128), Adam lr 1e-3 with cosine decay: "
        "seconds to 3 minutes per model on one CPU core, about 30 minutes for the table; far short of the "
        "paper's 150,000 steps of 256",
    ),
    "long": Budget(
        "long",
        "18 epochs of all 60,000 training images (about 8,400 steps of 128), new distortions drawn for every batch "
        "(fresh distortions), Adam lr 1e-3 with cosine decay: the table of the paper's eight models took 1.2 hours "
        "with --jobs 2 --threads 1 on a quiet 2-core CPU (2.2 hours of training); still 36 times fewer images "
        "seen than the paper's 150,000 steps of 256",
        models=PAPER_MODELS,
    ),
    "match": Budget(
        "match",
        "the long budget's recipe (Adam lr 1e-3 with cosine decay, batch 128, fresh distortions) with the CNN "
        "classifier's second convolution at 64 filters (32, 64), so that every network has about as many parameters "
        "as the FCN, as the paper's have; epochs by cell: CNN and ST-CNN 24 on R and RTS, 20 on TC, 12 on P and E; "
        "FCN and ST-FCN 48 on R and RTS, 72 on TC, 15 on P and E; the ST-CNNs on R with the transformer learning at "
        "3 times the rate; two seeds for every ST-CNN cell. Sized to fit 2.5 hours with --jobs 2 --threads 1 on a "
        "quiet 2-core CPU",
        cells=(
            CellOptions({"model_options": {"channels": [32, 64]}}, rows=("CNN", "ST-CNN", "IC-STN")),
            CellOptions({"epochs": 24}, rows=("CNN", "ST-CNN", "IC-STN"), variants=("R", "RTS")),
            CellOptions({"epochs": 20}, rows=("CNN", "ST-CNN", "IC-STN"), variants=("TC",)),
            CellOptions({"epochs": 48}, rows=("FCN", "ST-FCN"), variants=("R", "RTS")),
            CellOptions({"epochs": 72}, rows=("FCN", "ST-FCN"), variants=("TC",)),
            CellOptions({"epochs": 15}, rows=("FCN", "ST-FCN"), variants=("P", "E")),
            CellOptions({"stn_lr_scale": 3.0}, rows=("ST-CNN",), variants=("R",)),
        ),
        row_seeds={"ST-CNN": (1, 2)},
        models=PAPER_MODELS,
    ),
    "full": Budget(
        "full",
        "the paper's budget: 150,000 steps of 256 images (640 epochs), fresh distortions, SGD lr 0.01 with "
        "momentum 0.9 and cosine decay (the paper's schedule is not reproduced exactly); a GPU job",
        models=PAPER_MODELS,
    ),
}


def plan(variants: Sequence[str] | None = None, models: Sequence[str] | None = None) -> list[tuple[str, Entry]]:
    """The ``(variant, entry)`` runs of the table, variant by variant; TC has the paper's four
    networks (FCN, CNN and the affine ST-FCN and ST-CNN). Models are named by label
    (``"ST-CNN Aff"``) or slug (``"st-cnn-aff"``)."""
    variants = list(VARIANTS) if variants is None else [v.upper() for v in variants]
    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
    names = {**{e.label.lower(): e for e in ENTRIES}, **{e.slug: e for e in ENTRIES}}
    chosen = list(ENTRIES) if models is None else []
    for name in models or ():
        if name.lower() not in names:
            raise ValueError(f"unknown model {name!r}; choose from {', '.join(e.slug for e in ENTRIES)}")
        chosen.append(names[name.lower()])
    return [(v, e) for v in variants for e in chosen if v in PAPER_ERRORS.get(e.label, NEW_ROWS.get(e.label, ()))]


def config_for(
    variant: str,
    entry: Entry,
    budget: Budget,
    data_root: str | None,
    seed: int,
    device: str,
    threads: int | None,
    amp: str = "off",
) -> TrainConfig:
    """The training configuration of one cell of the table: the budget's recipe for this model
    and variant, in the precision ``amp`` (``off``: fp32; ``bf16``)."""
    options = budget.options_for(variant, entry)
    model_options = {**options.pop("model_options", {}), **dict(entry.options)}
    return from_recipe(
        budget.recipe,
        **options,
        amp=amp,
        model=entry.model,
        dataset=VARIANTS[variant],
        data_root=data_root,
        stn=entry.stn,
        transform=entry.transform,
        model_options=model_options,
        seed=seed,
        device=device,
        threads=threads,
    )


def run(
    budget: str = "cpu",
    out: str | os.PathLike = "results/paper",
    runs: str | os.PathLike | None = None,
    data_root: str | None = None,
    variants: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    seed: int = 1,
    device: str = "auto",
    threads: int | None = None,
    command: str | None = None,
    log: Callable[[str], None] = print,
    seeds: Sequence[int] | None = None,
    jobs: int = 1,
    amp: str = "off",
) -> Path:
    """Train the table's models under ``budget`` and write ``table-<budget>.md`` and
    ``table-<budget>.json`` into ``out``; returns the markdown file.

    Args:
        runs: where the run directories go (default ``runs/paper-<budget>``); finished runs there
            are reused, interrupted ones resumed. Seed 1's run of a cell is ``<variant>-<model>``,
            another seed's ``<variant>-<model>-seed<N>``.
        variants, models: subsets of :data:`VARIANTS` and of the labels of :data:`ENTRIES`
            (default for ``models``: the budget's, :attr:`Budget.models`).
        seeds: train every cell once per seed (default: the budget's seeds for its row, see
            :attr:`Budget.row_seeds`, else ``[seed]``); the table shows the mean and spread (half
            the range), the JSON every seed's error.
        command: the command line to record (default: this process's).
        jobs: runs trained at once, each in its own worker process; on a CPU each gets
            ``threads`` threads (default: the cores shared out among the jobs).
        amp: the precision of every run, whatever the machine: ``off`` (fp32) or ``bf16``.
    """
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")
    default_seeds = check_seeds([seed] if seeds is None else seeds)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    if amp not in PRECISIONS:
        raise ValueError(f"amp must be one of {', '.join(PRECISIONS)} (the table's precision), got {amp!r}")
    spec = BUDGETS[budget]
    cells = plan(variants, models if models is not None else spec.models or None)
    cell_seeds = [default_seeds if seeds is not None else spec.seeds_for(entry, default_seeds) for _, entry in cells]
    out = Path(out)
    runs = Path(runs) if runs is not None else Path("runs") / f"paper-{budget}"
    dev = resolve_device(device)
    if jobs > 1 and threads is None and dev.type == "cpu":
        threads = max(1, (os.cpu_count() or 1) // jobs)  # the cores shared out, not each worker taking all
    todo = [
        Job(v, entry, s, config_for(v, entry, spec, data_root, s, device, threads, amp), runs / _run_name(v, entry, s))
        for (v, entry), cell in zip(cells, cell_seeds, strict=True)
        for s in cell
    ]
    log(
        f"stn bench paper: {len(todo)} runs ({len(cells)} cells), budget {spec.name} ({spec.description}), "
        f"precision {PRECISIONS[amp]}; run directories in {runs}"
    )
    started = time.perf_counter()
    summaries = _train_all(sorted(todo, key=_expected_cost, reverse=True), jobs, log)
    results = [
        _cell(variant, entry, cell, runs, summaries) for (variant, entry), cell in zip(cells, cell_seeds, strict=True)
    ]

    cpu = [r["cpu_seconds"] for r in results]
    meta = dict(
        budget=spec.name,
        budget_description=spec.description,
        config={
            **RECIPES[spec.recipe],
            "amp": amp,
            "seeds": sorted({s for cell in cell_seeds for s in cell}),
            "cells": spec.describe_cells(),
            "row_seeds": {prefix: list(s) for prefix, s in spec.row_seeds.items()} if seeds is None else {},
        },
        precision=PRECISIONS[amp],
        machine={**describe(dev), **({"threads": threads} if threads else {})},
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=command if command is not None else shlex.join(["stn", *sys.argv[1:]]),
        seconds=round(sum(r["seconds"] for r in results), 1),
        cpu_seconds=None if None in cpu else round(sum(cpu), 3),
        wall_seconds=round(time.perf_counter() - started, 1),
        jobs=jobs,
    )
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / f"table-{budget}.json", json.dumps(dict(meta, results=results), indent=2) + "\n")
    path = out / f"table-{budget}.md"
    write_text_atomic(path, markdown(results, meta))
    return path


# The bench's precisions (``--amp``): fixed, so that a table does not depend on the machine it ran on.
PRECISIONS = {"off": "fp32", "bf16": "bf16"}

# Training time of a run relative to FCN's, by network and by canvas, from table-long.json (per
# epoch, on one thread): the bench starts the longest runs first, so that no long run is left
# training alone at the end.
_NETWORK_COST = {"FCN": 1.0, "ST-FCN": 2.0, "CNN": 6.0, "ST-CNN": 15.0, "IC-STN": 30.0}
_CANVAS_COST = {"TC": 2.0, "RTS": 1.1}


def _expected_cost(job: Job) -> float:
    network = next(
        cost
        for prefix, cost in sorted(_NETWORK_COST.items(), key=lambda kv: -len(kv[0]))
        if job.entry.label.startswith(prefix)
    )
    return job.cfg.epochs * network * _CANVAS_COST.get(job.variant, 1.0)


def _run_name(variant: str, entry: Entry, seed: int) -> str:
    """Seed 1's run of a cell is ``<variant>-<model>``, another seed's ``<variant>-<model>-seed<N>``."""
    return f"{variant.lower()}-{entry.slug}" + ("" if seed == 1 else f"-seed{seed}")


class Job(NamedTuple):
    """One run of the table: a cell (variant and model) with one seed."""

    variant: str
    entry: Entry
    seed: int
    cfg: TrainConfig
    run_dir: Path


def _train_all(jobs: list[Job], workers: int, log: Callable[[str], None]) -> dict[Path, dict[str, Any]]:
    """Every job's run summary, by run directory: trained (or reused) one after the other, or
    ``workers`` at a time in worker processes. A line is logged as each run ends."""
    summaries: dict[Path, dict[str, Any]] = {}

    def done(job: Job, summary: dict[str, Any]) -> None:
        summaries[job.run_dir] = summary
        error = 100.0 - summary["final_accuracy"]
        log(
            f"[{len(summaries)}/{len(jobs)}] {job.variant:<3} {job.entry.label:<12} seed {job.seed}: "
            f"test error {error:6.2f}%  ({summary['seconds']:.0f} s)"
        )

    if workers == 1:
        for job in jobs:
            done(job, train_or_reuse(job.cfg, job.run_dir))
        return summaries
    # Spawned, so that no OpenMP or autograd state is forked; leaving the block (an error, Ctrl-C)
    # terminates the workers, and their runs resume next time.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for i, summary in pool.imap_unordered(_train_job, list(enumerate(jobs))):
            done(jobs[i], summary)
    return summaries


def _train_job(indexed: tuple[int, Job]) -> tuple[int, dict[str, Any]]:
    i, job = indexed
    return i, train_or_reuse(job.cfg, job.run_dir)


def _cell(
    variant: str, entry: Entry, seeds: Sequence[int], runs: Path, summaries: dict[Path, dict[str, Any]]
) -> dict[str, Any]:
    """One cell's result row from its runs' summaries (one per seed)."""
    run_dirs = [runs / _run_name(variant, entry, s) for s in seeds]
    errors = [round(100.0 - summaries[d]["final_accuracy"], 2) for d in run_dirs]
    cpu = [summaries[d].get("cpu_seconds") for d in run_dirs]
    return dict(
        variant=variant,
        model=entry.label,
        dataset=VARIANTS[variant],
        error=round(sum(errors) / len(errors), 2),
        spread=round((max(errors) - min(errors)) / 2, 2),
        seeds=list(seeds),
        errors=errors,
        paper_error=PAPER_ERRORS.get(entry.label, {}).get(variant),
        seconds=round(sum(summaries[d]["seconds"] for d in run_dirs), 1),
        cpu_seconds=None if None in cpu else round(sum(cpu), 3),
        run_dir=str(run_dirs[0]),
        run_dirs=[str(d) for d in run_dirs],
    )


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The table (ours beside the paper's, with the spread over seeds), how far each cell is from
    the paper, and the ST-CNN versus CNN comparison, as markdown."""
    error = {(r["model"], r["variant"]): r["error"] for r in results}
    spread = {(r["model"], r["variant"]): r.get("spread") for r in results if len(r.get("errors", ())) > 1}
    variants = [v for v in VARIANTS if any(r["variant"] == v for r in results)]
    labels = [e.label for e in ENTRIES if any(r["model"] == e.label for r in results)]
    lines = [
        f"# Distorted MNIST, the paper's Table 1: budget `{meta['budget']}`",
        "",
        f"Test error in % after training, **ours / the paper's** (Jaderberg et al. 2015, Table 1). Budget "
        f"`{meta['budget']}`: {meta['budget_description']}.",
    ]
    if spread:
        lines += ["", _seeds_sentence(results)]
    if meta["budget"] != "full":
        lines += ["", f"**These are `{meta['budget']}`-budget numbers; the paper trained each model far longer.**"]
    lines += ["", "| model | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
    for label in labels:
        cells = []
        for v in variants:
            ours = error.get((label, v))
            paper = PAPER_ERRORS.get(label, {}).get(v)
            text = (
                "" if ours is None else f"{ours:.2f}" + (f" ± {spread[label, v]:.2f}" if (label, v) in spread else "")
            )
            cells.append(text if ours is None or paper is None else f"{text} / {paper}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += _against_paper(error, variants, labels)
    lines += _comparison(error, variants, [label for label in labels if label.startswith(("ST-CNN", "IC-STN"))])
    m = meta["machine"]
    precision = f", precision {meta['precision']}" if "precision" in meta else ""
    cpu = meta.get("cpu_seconds")
    cpu_time = f" ({cpu / 3600:.2f} hours of CPU time)" if cpu else ""
    lines += [
        "",
        f"Run {meta['date']} on {m['cpu']} ({m['cpu_count']} cores, {m['threads']} torch threads), "
        f"device {m['device']}{' (' + m['gpu'] + ')' if 'gpu' in m else ''}, torch {m['torch']}{precision}; "
        f"{meta['seconds'] / 60:.1f} min ({meta['seconds'] / 3600:.2f} hours) of training in all{cpu_time}"
        + _wall_time(meta)
        + ".",
        "",
        f"Command: `{meta['command']}`",
        "",
    ]
    return "\n".join(lines)


def _seeds_sentence(results: list[dict[str, Any]]) -> str:
    """Which rows were trained with which seeds, and what the table shows for them."""
    rows: dict[tuple[int, ...], list[str]] = {}
    for r in results:
        labels = rows.setdefault(tuple(r.get("seeds", ())), [])
        if r["model"] not in labels:
            labels.append(r["model"])
    spread = "± half the range of their errors (every seed's error is in the JSON)"
    if len(rows) == 1:
        (seeds,) = rows
        return f"Ours is the mean over seeds {', '.join(map(str, seeds))} {spread}."
    parts = [
        f"{', '.join(labels)}: "
        + (f"seed {seeds[0]}" if len(seeds) == 1 else f"the mean over seeds {', '.join(map(str, seeds))} {spread}")
        for seeds, labels in sorted(rows.items(), key=lambda kv: -len(kv[0]))
    ]
    return "Ours is, for " + "; for ".join(parts) + "."


def _wall_time(meta: dict[str, Any]) -> str:
    if "wall_seconds" not in meta:
        return ""
    at_once = f", {meta['jobs']} runs at a time" if meta.get("jobs", 1) > 1 else ""
    return f"; the command took {meta['wall_seconds'] / 3600:.2f} hours{at_once} (finished runs are reused)"


CLOSE = 0.3  # points: the goal for every ST-CNN cell, and the table's bold
GOALS = {"ST-CNN": 0.3, "ST-FCN": 0.5}  # points above the paper each row family aims to stay within


def _against_paper(error: dict[tuple[str, str], float], variants: list[str], labels: list[str]) -> list[str]:
    """Markdown lines: every cell's distance from the paper's error, in points."""
    cells = [
        (label, v) for label in labels for v in variants if (label, v) in error and v in PAPER_ERRORS.get(label, {})
    ]
    if not cells:
        return []
    lines = ["", "## Against the paper", ""]
    lines += [
        "Our error minus the paper's, in points (negative: fewer errors than the paper); **bold**: within "
        f"{CLOSE} points of the paper or below it.",
        "",
        "| model | " + " | ".join(variants) + " |",
        "|---|" + "---|" * len(variants),
    ]
    close = 0
    for label in dict.fromkeys(label for label, _ in cells):  # rows the paper has numbers for
        row = []
        for v in variants:
            if (label, v) not in cells:
                row.append("")
                continue
            gap = error[label, v] - PAPER_ERRORS[label][v]
            close += gap <= CLOSE + 1e-9
            row.append(f"**{gap:+.2f}**" if gap <= CLOSE + 1e-9 else f"{gap:+.2f}")
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    lines += ["", f"{close} of {len(cells)} cells within {CLOSE} points of the paper or below it."]
    goals = []
    for family, goal in GOALS.items():
        gaps = [error[label, v] - PAPER_ERRORS[label][v] for label, v in cells if label.startswith(family + " ")]
        if gaps:
            met = sum(gap <= goal + 1e-9 for gap in gaps)
            goals.append(f"{family}: {met} of {len(gaps)} cells within {goal} points or below (worst {max(gaps):+.2f})")
    if goals:
        lines += ["", "Goals: " + "; ".join(goals) + "."]
    return lines


def _comparison(error: dict[tuple[str, str], float], variants: list[str], st_labels: list[str]) -> list[str]:
    """Markdown lines: each ST-CNN's error beside CNN's, its change in points, and the share of
    CNN's errors the best one removes."""
    if not any(("CNN", v) in error for v in variants):
        return []
    lines = ["", "## ST-CNN against CNN at the same budget", ""]
    lines += ["Test error in %; in brackets, the change from CNN in points (negative: fewer errors).", ""]
    lines += ["| variant | CNN | " + " | ".join(st_labels) + " | every ST-CNN beats CNN | errors removed (best) |"]
    lines += ["|---|---|" + "---|" * len(st_labels) + "---|---|"]
    for v in variants:
        cnn = error.get(("CNN", v))
        st = {label: error[(label, v)] for label in st_labels if (label, v) in error}
        if cnn is None or not st:
            continue
        cells = [f"{st[label]:.2f} ({st[label] - cnn:+.2f})" if label in st else "" for label in st_labels]
        best = min(st.values())
        removed = f"{100 * (cnn - best) / cnn:.0f}%" if cnn > 0 else "n/a"
        beats = "yes" if all(e < cnn for e in st.values()) else "**no**"
        lines.append(f"| {v} | {cnn:.2f} | " + " | ".join(cells) + f" | {beats} | {removed} |")
    return lines
