"""``stn bench pstn``: accuracy and calibration of the probabilistic spatial transformer (P-STN)
against the plain one, trained on small MNIST subsets.

Rows: ST-CNN with an affine transformer (``paper-cnn``) and the same network behind a
probabilistic spatial transformer (``pstn-cnn``). Columns: training subsets of MNIST
(``mnist-subset``: 100, 1,000 and 10,000 images, balanced over the digits, drawn by the
training seed); every model is tested on all of MNIST's 10,000 test images. Every run trains
for the same number of optimizer steps per subset (small subsets are repeated within an epoch,
so that the test set is not evaluated after every handful of steps) with Adam, lr 1e-3, cosine
decay, batch 128, black outside the image, float32. The final model's test error, negative
log-likelihood (NLL, nats per image) and expected calibration error (ECE, 15 equal-width
confidence bins) go into ``table.md`` and ``table.json`` with the command, machine, date and
precision.
"""

from __future__ import annotations

import json
import math
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stn.engine import RECIPES, Run, from_recipe, load_model, resolve_device
from stn.engine.machine import describe
from stn.experiments.runs import check_seeds, footer, train_or_reuse
from stn.files import write_text_atomic
from stn.normalization import Normalizer

__all__ = ["BINS", "BUDGETS", "ROWS", "SIZES", "Budget", "calibration", "run"]

RECIPE = "paper-cpu"  # Adam lr 1e-3, cosine decay, batch 128, black fill; the epochs are the budget's
BINS = 15
SIZES = (100, 1000, 10000)
ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "ST-CNN Aff": ("paper-cnn", {}),
    "P-STN Aff": ("pstn-cnn", {}),
}
# A probe row: the P-STN's runs tested on their mean warp alone (no average over samples).
MEAN_WARP = "P-STN Aff, mean warp only"


@dataclass(frozen=True)
class Budget:
    """How long every run trains: ``epochs`` of at least ``images_per_epoch`` training images (a
    subset smaller than that is repeated); the P-STN's options (``samples``, ``prior_scale``,
    ``kl_weight``); its KL weight ramps up over the first ``anneal`` share of the steps."""

    name: str
    epochs: int
    images_per_epoch: int
    description: str
    pstn: tuple[tuple[str, Any], ...] = (("samples", 4), ("prior_scale", 0.1), ("kl_weight", 1.0))
    anneal: float = 0.5
    test_size: int | None = None


BUDGETS: dict[str, Budget] = {
    "smoke": Budget("smoke", 1, 128, "one epoch of 128 images, 256 test images: checks the pipeline", test_size=256),
    "cpu": Budget(
        "cpu",
        5,
        10000,
        "5 epochs of at least 10,000 training images each (the subset repeated: 400 steps of 128 for 100 and "
        "1,000 images, 395 for 10,000); the P-STN draws 4 samples per image, prior N(identity, 0.1²), KL weight 1 "
        "ramped up over the first half of the steps",
    ),
}


def calibration(log_probs: Tensor, labels: Tensor, bins: int = BINS) -> dict[str, float]:
    """Error (%), NLL (nats per image), expected calibration error (%) and mean confidence (%,
    the mean top probability) of ``(N, K)`` log-probabilities against ``(N,)`` labels.

    ECE: the predictions are grouped by their confidence (the top probability) into ``bins``
    equal-width bins on ``[0, 1]``; it is the mean over the bins, weighted by their share of the
    predictions, of ``|accuracy - mean confidence|`` in the bin.

    Example:
        >>> import torch
        >>> right = torch.log(torch.tensor([[0.9, 0.1], [0.9, 0.1]]))
        >>> calibration(right, torch.tensor([0, 1]))["ece"]  # 90% confident, 50% right
        40.0
    """
    log_probs = log_probs.double()
    confidence, predicted = log_probs.exp().max(1)
    correct = (predicted == labels).double()
    which = (confidence * bins).long().clamp(max=bins - 1)
    count = torch.bincount(which, minlength=bins).double()
    gap = torch.bincount(which, correct - confidence, minlength=bins).abs()
    n = len(labels)
    return dict(
        error=round(100.0 * float(1 - correct.mean()), 2),
        nll=round(float(torch.nn.functional.nll_loss(log_probs, labels)), 4),
        ece=round(100.0 * float(gap.sum() / n), 2) if n else math.nan,
        confidence=round(100.0 * float(confidence.mean()), 2),
        bins_used=int((count > 0).sum()),
    )


@torch.no_grad()
def predict_test_set(
    run_dir: Path, which: str = "last", batch_size: int = 1000, mean_warp: bool = False
) -> tuple[Tensor, Tensor]:
    """The ``(N, K)`` test log-probabilities of a run's model (its ``which`` checkpoint, eval
    mode, float32 on the CPU) and the ``(N,)`` labels, on exactly the test set the run used.

    ``mean_warp``: a P-STN predicts from its mean warp alone (one eval sample, the mean θ) instead
    of averaging its samples."""
    model, payload, _ = load_model(run_dir, which)
    data = Run.open(run_dir).dataset()
    normalize = Normalizer(payload["mean"], payload["std"])
    model.eval()
    if mean_warp:
        model.stn.samples = 1  # eval sample 0 is the mean itself
    out = [model(normalize(images)).float() for images in data.test_images.split(batch_size)]
    return torch.cat(out), data.test_labels


def config_for(label: str, size: int, budget: Budget, data_root: str | None, seed: int, threads: int | None):
    """One run: ``label``'s model on a ``size``-image subset (drawn with ``seed``), under ``budget``."""
    model, options = ROWS[label]
    repeat = max(1, math.ceil(budget.images_per_epoch / size))
    options = dict(options)
    if model == "pstn-cnn":
        steps = budget.epochs * math.ceil(size * repeat / RECIPES[RECIPE]["batch_size"])
        options.update(dict(budget.pstn), kl_anneal_steps=max(1, round(budget.anneal * steps)))
    dataset_options: dict[str, Any] = dict(train_size=size, seed=seed, repeat=repeat)
    if budget.test_size is not None:
        dataset_options["test_size"] = budget.test_size
    return from_recipe(
        RECIPE,
        model=model,
        dataset="mnist-subset",
        dataset_options=dataset_options,
        data_root=data_root,
        transform="affine",
        model_options=options,
        epochs=budget.epochs,
        seed=seed,
        device="cpu",
        threads=threads,
        amp="off",
        log_interval=100,
    )


def run(
    budget: str = "cpu",
    out: str | Path = "results/pstn",
    runs: str | Path | None = None,
    data_root: str | None = None,
    sizes: Sequence[int] = SIZES,
    seeds: Sequence[int] = (1, 2),
    threads: int | None = None,
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train both rows on every subset size with every seed, one run after the other, measure
    the final models on the test set and write ``table.md`` and ``table.json`` into ``out``.

    Args:
        runs: run directories (default ``runs/pstn-<budget>``), ``<size>-<model>-seed<N>``;
            finished ones are reused.
        sizes: training subset sizes.
        seeds: each draws its own subset and trains with that seed.
    """
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")
    spec = BUDGETS[budget]
    seeds = check_seeds(seeds)
    sizes = list(sizes)
    if not sizes or any(not isinstance(s, int) or isinstance(s, bool) or s < 10 for s in sizes):
        raise ValueError(f"sizes must be integers >= 10 (one image per digit), got {sizes!r}")
    runs = Path(runs) if runs is not None else Path("runs") / f"pstn-{budget}"
    log(f"stn bench pstn: {len(sizes) * len(ROWS) * len(seeds)} runs, budget {spec.name} ({spec.description})")
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    mean_warp: list[dict[str, Any]] = []
    for size in sizes:
        for label in ROWS:
            per_seed = []
            for seed in seeds:
                cfg = config_for(label, size, spec, data_root, seed, threads)
                run_dir = runs / f"{size}-{label.lower().replace(' ', '-')}-seed{seed}"
                summary = train_or_reuse(cfg, run_dir)
                log_probs, labels = predict_test_set(run_dir)
                metrics = dict(calibration(log_probs, labels), seed=seed, seconds=summary["seconds"])
                log(
                    f"{size:>6} {label:<11} seed {seed}: error {metrics['error']:5.2f}%  NLL {metrics['nll']:.4f}  "
                    f"ECE {metrics['ece']:5.2f}%  ({summary['seconds']:.0f} s)"
                )
                per_seed.append(metrics)
                if ROWS[label][0] == "pstn-cnn":
                    probe = calibration(*predict_test_set(run_dir, mean_warp=True))
                    mean_warp.append(dict(probe, seed=seed, seconds=summary["seconds"]))
            results.append(dict(size=size, model=label, runs=per_seed, **_means(per_seed)))
            if mean_warp:
                results.append(dict(size=size, model=MEAN_WARP, runs=mean_warp, **_means(mean_warp)))
                mean_warp = []
    meta = dict(
        budget=spec.name,
        budget_description=spec.description,
        recipe={**RECIPES[RECIPE], "amp": "off", "epochs": spec.epochs},
        pstn=dict(spec.pstn),
        precision="fp32 (--amp off)",
        bins=BINS,
        seeds=list(seeds),
        machine={**describe(resolve_device("cpu")), **({"threads": threads} if threads else {})},
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=command if command is not None else shlex.join(["stn", *sys.argv[1:]]),
        seconds=round(sum(r["seconds"] for x in results if x["model"] in ROWS for r in x["runs"]), 1),
        wall_seconds=round(time.perf_counter() - started, 1),
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "table.json", json.dumps(dict(meta, results=results), indent=2) + "\n")
    path = out / "table.md"
    write_text_atomic(path, markdown(results, meta))
    return path


def _means(per_seed: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("error", "nll", "ece", "confidence")
    return {key: round(sum(r[key] for r in per_seed) / len(per_seed), 4) for key in keys}


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The table (error, NLL and ECE per subset size and model, seed means) and its particulars."""
    lines = [
        f"# Probabilistic spatial transformer: calibration, budget `{meta['budget']}`",
        "",
        f"MNIST training subsets (balanced over the digits, drawn by the seed), tested on all 10,000 test images; "
        f"the final model of each run. Budget `{meta['budget']}`: {meta['budget_description']}. Error and ECE in %, "
        f"ECE over {meta['bins']} equal-width confidence bins; NLL in nats per image. Mean over seeds "
        f"{', '.join(map(str, meta['seeds']))} (every seed's numbers are in the JSON); **bold**: the better of the "
        "two models. Mean confidence: the mean top probability, in %; accuracy minus it is positive for an "
        "underconfident model, negative for an overconfident one. The row *mean warp only* is a probe: the same "
        "P-STN runs tested on the warp of their mean θ alone, not the average of their samples' predictions.",
        "",
        "| training images | model | error | NLL | ECE | mean confidence | accuracy - confidence |",
        "|---|---|---|---|---|---|---|",
    ]
    for size in dict.fromkeys(r["size"] for r in results):
        rows = [r for r in results if r["size"] == size]
        compared = [r for r in rows if r["model"] in ROWS]
        best = {key: min(r[key] for r in compared) for key in ("error", "nll", "ece")}
        for r in rows:
            cells = [
                (
                    f"**{r[key]:{fmt}}**"
                    if len(compared) > 1 and r in compared and r[key] == best[key]
                    else f"{r[key]:{fmt}}"
                )
                for key, fmt in (("error", ".2f"), ("nll", ".4f"), ("ece", ".2f"))
            ]
            cells.append(f"{r['confidence']:.2f}")
            cells.append(f"{100 - r['error'] - r['confidence']:+.2f}")
            lines.append(f"| {size:,} | {r['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines + footer(meta))
