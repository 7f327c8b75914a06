"""``stn bench ptn``: polar transformer networks against the paper's CNN and ST-CNN on rotated MNIST.

Rows (:data:`ROWS`): the paper's CNN (``paper-cnn --no-stn``), ST-CNN with an affine transformer
(``paper-cnn``) and the polar transformer network (``ptn-cnn``). Columns (:data:`VARIANTS`):
rotated MNIST (``mnist-rot``: 12,000 training and 50,000 test images rotated over the full
turn) and the R and RTS cells of the STN paper's Table 1 (``mnist-r``, ``mnist-rts``). Every
run uses the ``ptn`` recipe (Adam, lr 1e-3, cosine decay, batch 128, black outside the image) in
float32, for the budget's epochs; finished runs are reused, interrupted ones resumed. The table
(``table.md`` and ``table.json``) holds the test errors beside the published ones, with the
command, machine, date and precision.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from stn.engine import RECIPES, from_recipe, resolve_device
from stn.engine.machine import describe
from stn.experiments.runs import check_seeds, footer, train_or_reuse
from stn.files import write_text_atomic

__all__ = ["BUDGETS", "PUBLISHED", "ROWS", "VARIANTS", "Budget", "Row", "run"]

RECIPE = "ptn"


@dataclass(frozen=True)
class Row:
    """A model of the table: its label, registered model, and transformer (``None``: none)."""

    label: str
    model: str
    transform: str | None

    @property
    def slug(self) -> str:
        return self.label.lower().replace(" ", "-")


ROWS: tuple[Row, ...] = (
    Row("CNN", "paper-cnn", None),
    Row("ST-CNN Aff", "paper-cnn", "affine"),
    Row("PTN", "ptn-cnn", "polar"),
)
VARIANTS: dict[str, str] = {"rot": "mnist-rot", "R": "mnist-r", "RTS": "mnist-rts"}

# Test errors in % as published: rotated MNIST from the PTN paper (Esteves et al. 2018, Table 1:
# PTN-B+ 1.14, PTN-B++ 0.95 with test-time rotations, PTN-CNN-B++ 0.89, STN-B+ 1.31), R and RTS from
# the STN paper's Table 1 (CNN and ST-CNN Aff) and the PTN paper's (PTN on R and RTS).
PUBLISHED: dict[str, dict[str, float]] = {
    "CNN": {"R": 1.2, "RTS": 0.8},
    "ST-CNN Aff": {"rot": 1.31, "R": 0.7, "RTS": 0.5},
    "PTN": {"rot": 1.14, "R": 0.62, "RTS": 0.57},
}
PUBLISHED_NOTES = (
    "rotated MNIST: the PTN paper's PTN-B+ (1.14; 0.95 with test-time rotations, PTN-B++; 0.89 for PTN-CNN-B++) "
    "and its STN-B+ (1.31), all trained with rotation augmentation; R and RTS: the STN paper's CNN and ST-CNN "
    "Aff, and the PTN paper's PTN"
)


@dataclass(frozen=True)
class Budget:
    """Epochs per variant, and data set options (smaller sets for a smoke run)."""

    name: str
    epochs: dict[str, int]
    description: str
    dataset_options: tuple[tuple[str, Any], ...] = ()


BUDGETS: dict[str, Budget] = {
    "smoke": Budget(
        "smoke",
        {"rot": 1, "R": 1, "RTS": 1},
        "one epoch on 256 training and 256 test images: checks the pipeline, says nothing about the models",
        (("train_size", 256), ("test_size", 256)),
    ),
    "cpu": Budget(
        "cpu",
        {"rot": 16, "R": 3, "RTS": 3},
        "16 epochs of the 12,000 rotated-MNIST training images (1,504 steps of 128), 3 epochs of R's and "
        "RTS's 60,000 (1,407 steps)",
    ),
}


def config_for(variant: str, row: Row, budget: Budget, data_root: str | None, seed: int, threads: int | None):
    """The training configuration of one cell: the ``ptn`` recipe for this model and data set,
    float32 on the CPU (``--amp off``)."""
    return from_recipe(
        RECIPE,
        model=row.model,
        dataset=VARIANTS[variant],
        dataset_options=dict(budget.dataset_options),
        data_root=data_root,
        stn=row.transform is not None,
        transform=row.transform or "affine",
        epochs=budget.epochs[variant],
        seed=seed,
        device="cpu",
        threads=threads,
        amp="off",
    )


def run(
    budget: str = "cpu",
    out: str | Path = "results/ptn",
    runs: str | Path | None = None,
    data_root: str | None = None,
    variants: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    seeds: Sequence[int] = (1,),
    threads: int | None = None,
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train every (variant, model, seed) under ``budget`` one after the other, and write
    ``table.md`` and ``table.json`` into ``out``; returns the markdown file.

    Args:
        runs: where the run directories go (default ``runs/ptn-<budget>``), one per cell and seed,
            ``<variant>-<model>-seed<N>``; finished ones are reused.
        variants, models: subsets of :data:`VARIANTS` and of the labels (or slugs) of :data:`ROWS`.
        seeds: training seeds; the table shows the mean and half the range.
    """
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")
    spec = BUDGETS[budget]
    seeds = check_seeds(seeds)
    chosen_variants = list(VARIANTS) if variants is None else list(variants)
    for v in chosen_variants:
        if v not in VARIANTS:
            raise ValueError(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
    names = {**{r.label.lower(): r for r in ROWS}, **{r.slug: r for r in ROWS}}
    rows = list(ROWS) if models is None else []
    for name in models or ():
        if name.lower() not in names:
            raise ValueError(f"unknown model {name!r}; choose from {', '.join(r.slug for r in ROWS)}")
        rows.append(names[name.lower()])
    runs = Path(runs) if runs is not None else Path("runs") / f"ptn-{budget}"
    cells = [(v, r) for v in chosen_variants for r in rows]
    log(f"stn bench ptn: {len(cells) * len(seeds)} runs, budget {spec.name} ({spec.description}); runs in {runs}")
    started = time.perf_counter()
    results = []
    for variant, row in cells:
        errors, seconds, dirs = [], 0.0, []
        for seed in seeds:
            run_dir = runs / f"{variant.lower()}-{row.slug}-seed{seed}"
            summary = train_or_reuse(config_for(variant, row, spec, data_root, seed, threads), run_dir)
            error = round(100.0 - summary["final_accuracy"], 2)
            log(f"{variant:<4} {row.label:<11} seed {seed}: test error {error:6.2f}%  ({summary['seconds']:.0f} s)")
            errors.append(error)
            seconds += summary["seconds"]
            dirs.append(str(run_dir))
        results.append(
            dict(
                variant=variant,
                dataset=VARIANTS[variant],
                model=row.label,
                epochs=spec.epochs[variant],
                error=round(sum(errors) / len(errors), 2),
                spread=round((max(errors) - min(errors)) / 2, 2),
                seeds=list(seeds),
                errors=errors,
                published=PUBLISHED.get(row.label, {}).get(variant),
                seconds=round(seconds, 1),
                run_dirs=dirs,
            )
        )
    meta = dict(
        budget=spec.name,
        budget_description=spec.description,
        recipe={**RECIPES[RECIPE], "amp": "off", "epochs": spec.epochs},
        precision="fp32 (--amp off)",
        seeds=list(seeds),
        machine={**describe(resolve_device("cpu")), **({"threads": threads} if threads else {})},
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=command if command is not None else shlex.join(["stn", *sys.argv[1:]]),
        seconds=round(sum(r["seconds"] for r in results), 1),
        wall_seconds=round(time.perf_counter() - started, 1),
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "table.json", json.dumps(dict(meta, results=results), indent=2) + "\n")
    path = out / "table.md"
    write_text_atomic(path, markdown(results, meta))
    return path


def _recipe_text(recipe: dict[str, Any]) -> str:
    """``Adam lr 0.003, cosine decay, batch 128, black outside the image`` from a recipe's values."""
    outside = {"black": "black", "zeros": "the mean colour", "border": "the border"}[recipe.get("stn_fill", "zeros")]
    return (
        f"{recipe['optimizer'].capitalize()} lr {recipe['lr']:g}, {recipe['schedule']} decay, batch "
        f"{recipe['batch_size']}, {outside} outside the image"
    )


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The table of test errors (ours / published) and the run's particulars, as markdown."""
    variants = [v for v in VARIANTS if any(r["variant"] == v for r in results)]
    labels = [r.label for r in ROWS if any(x["model"] == r.label for x in results)]
    cell = {(r["model"], r["variant"]): r for r in results}
    lines = [
        f"# Polar transformer networks: budget `{meta['budget']}`",
        "",
        f"Test error in %, **ours / published**. Budget `{meta['budget']}`: {meta['budget_description']}; the "
        f"`{RECIPE}` recipe ({_recipe_text(meta['recipe'])}), {meta['precision']}. Published: {PUBLISHED_NOTES}.",
    ]
    if len(meta["seeds"]) > 1:
        lines += ["", f"Ours: mean over seeds {', '.join(map(str, meta['seeds']))} ± half the range."]
    lines += ["", "| model | " + " | ".join(f"{v} ({VARIANTS[v]})" for v in variants) + " |"]
    lines.append("|---|" + "---|" * len(variants))
    for label in labels:
        texts = []
        for v in variants:
            r = cell.get((label, v))
            if r is None:
                texts.append("")
                continue
            text = f"{r['error']:.2f}" + (f" ± {r['spread']:.2f}" if len(r["errors"]) > 1 else "")
            texts.append(text + (f" / {r['published']}" if r["published"] is not None else ""))
        lines.append(f"| {label} | " + " | ".join(texts) + " |")
    lines += ["", "| model | " + " | ".join(f"{v} epochs, minutes" for v in variants) + " |"]
    lines.append("|---|" + "---|" * len(variants))
    for label in labels:
        texts = [
            f"{cell[label, v]['epochs']}, {cell[label, v]['seconds'] / 60:.1f}" if (label, v) in cell else ""
            for v in variants
        ]
        lines.append(f"| {label} | " + " | ".join(texts) + " |")
    return "\n".join(lines + footer(meta))
