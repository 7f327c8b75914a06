"""Wall time of whole recipes: the seed recipe (50 epochs at batch 64, evaluated every epoch),
the fast recipe and the tutorial loop, beside the floor that the FLOP count sets.

    python benchmarks/recipe_time.py --runs results/seed-cifar results/fast-cifar
    python benchmarks/recipe_time.py --measure --data-root ../shared/data/cifar10-jpeg

Two sources, marked in every row. ``--runs`` reads run directories: the last cumulative
``seconds`` of metrics.csv is what the run took (checkpoints and snapshots included). ``--measure``
times one epoch here (the training pass, then the evaluation) and multiplies it by the
recipe's epochs: an extrapolation. Floors use the matmul peak of this machine, measured with the
run's own thread count.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import time
from pathlib import Path
from typing import Any

import flops
import harness
import torch
from train_throughput import engine, tutorial

from stn import models
from stn.engine import DeviceData, from_recipe


class Peaks:
    """Matmul peaks of this machine, measured once per (dtype, thread count)."""

    def __init__(self, device: torch.device, quick: bool) -> None:
        self.device, self.quick = device, quick
        self.known: dict[tuple[str, int], float] = {}

    def __call__(self, dtype: str, threads: int | None = None) -> float:
        threads = threads or torch.get_num_threads()
        if (dtype, threads) not in self.known:
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            self.known[dtype, threads] = flops.matmul_peak(self.device, flops.DTYPES[dtype], self.quick)
            torch.set_num_threads(before)
        return self.known[dtype, threads]


def read_run(run: Path, per_image: dict[str, float], peaks: Peaks, device: torch.device) -> dict[str, Any]:
    """A row from a run directory's metrics.csv, config.json and (if there) summary.json."""
    metrics = list(csv.DictReader((run / "metrics.csv").read_text().splitlines()))
    config = json.loads((run / "config.json").read_text())
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    ran_on = summary.get("device") or _logged_device(run / "train.log") or config["device"]
    seconds = float(metrics[-1]["seconds"])
    dtype = "bf16" if config["amp"] == "bf16" or (config["amp"] == "auto" and ran_on.startswith("cuda")) else "fp32"
    here = ran_on.split(":")[0] == device.type
    floor = len(metrics) * flops.epoch_floor(per_image, peaks(dtype, config["threads"]))["epoch"] if here else None
    return dict(
        source="metrics.csv",
        run=run.name,
        recipe=config["recipe"],
        batch=config["batch_size"],
        device=ran_on,
        threads=config["threads"],
        dtype=dtype,
        epochs=len(metrics),
        hours=seconds / 3600,
        s_per_epoch=seconds / len(metrics),
        floor_hours=floor / 3600 if floor else None,
        x_floor=seconds / floor if floor else None,
        final_accuracy=float(metrics[-1]["test_accuracy"]),
        best_accuracy=max(float(row["test_accuracy"]) for row in metrics),
    )


def _logged_device(log: Path) -> str | None:
    """The device a run's log says it trains on (its last start or resume)."""
    if not log.is_file():
        return None
    found = re.findall(r", device (\S+)$", log.read_text(), flags=re.MULTILINE)
    return found[-1] if found else None


def measure(
    args: argparse.Namespace, device: torch.device, per_image: dict[str, float], peaks: Peaks
) -> list[dict[str, Any]]:
    """One epoch of the tutorial loop and of each recipe, timed here, times the recipe's epochs."""
    dataset = harness.cifar10(args)
    overrides = dict(_setting(item) for item in args.set)
    configs = [from_recipe(recipe, **overrides) for recipe in ("seed", "fast")]
    contenders = [tutorial(from_recipe("seed"), dataset, device, args.workers)]
    contenders += [engine(cfg, dataset, device, DeviceData(dataset, device, cfg.channels_last)) for cfg in configs]
    epochs = [configs[0].epochs, *(cfg.epochs for cfg in configs)]
    rows = []
    for c, n_epochs in zip(contenders, epochs, strict=True):
        c.run(3 if args.quick else 10, device)  # warm-up
        steps = len(dataset.train_labels) // c.batch_size  # one epoch's images (the last partial batch left out)
        train_seconds = steps * c.batch_size / c.run(steps, device)
        harness.sync(device)
        tic = time.perf_counter()
        c.test()
        harness.sync(device)
        epoch = train_seconds + time.perf_counter() - tic
        sizes = len(dataset.train_labels), len(dataset.test_labels)
        floor = n_epochs * flops.epoch_floor(per_image, peaks(c.dtype), *sizes)["epoch"]
        rows.append(
            dict(
                source="1 epoch x epochs",
                run=c.loop,
                recipe=c.recipe,
                batch=c.batch_size,
                device=str(device),
                threads=torch.get_num_threads(),
                dtype=c.dtype,
                epochs=n_epochs,
                hours=n_epochs * epoch / 3600,
                s_per_epoch=epoch,
                floor_hours=floor / 3600,
                x_floor=n_epochs * epoch / floor,
            )
        )
    return rows


def _setting(item: str) -> tuple[str, Any]:
    key, _, text = item.partition("=")
    try:
        return key.replace("-", "_"), json.loads(text)
    except json.JSONDecodeError:
        return key.replace("-", "_"), text


def main() -> None:
    p = harness.parser(__doc__.split("\n\n")[0])
    harness.add_data_options(p)
    p.add_argument("--runs", type=Path, nargs="*", default=[], help="run directories to read (metrics.csv)")
    p.add_argument("--measure", action="store_true", help="time one epoch of each recipe and extrapolate")
    p.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="change a value of both recipes, e.g. amp=bf16"
    )
    p.add_argument("--workers", type=int, default=4, help="the tutorial's DataLoader workers (default 4, as it has)")
    args = p.parse_args()
    if not args.runs and not args.measure:
        p.error("give --runs, --measure or both")
    device = harness.setup(args)
    counted = flops.count_flops(models.create("seed-cifar").to(device), (3, 32, 32))
    sampled = flops.sampling_flops(3, 32, 32)
    per_image = {k: counted[k] + sampled[k] for k in ("forward", "train")}
    peaks = Peaks(device, args.quick)

    rows = [read_run(run, per_image, peaks, device) for run in args.runs]
    if args.measure:
        rows += measure(args, device, per_image, peaks)
    print(harness.table(rows, "whole recipes: wall time against the floor"))
    harness.save(
        args.out,
        "recipe_time",
        device,
        dict(quick=args.quick, mflop_per_image={k: v / 1e6 for k, v in per_image.items()}, rows=rows),
    )


if __name__ == "__main__":
    main()
