"""Wall time of whole recipes: the seed recipe (50 epochs at batch 64, evaluated every epoch),
the fast recipe and the tutorial loop, beside the floor that the FLOP count sets.

    python benchmarks/recipe_time.py --runs results/seed-cifar results/fast-cifar
    python benchmarks/recipe_time.py --measure --data-root ../shared/data/cifar10-jpeg

Two sources, marked in every row. ``--runs`` reads run directories: the last cumulative
``seconds`` of metrics.csv is what the run took (checkpoints and snapshots included). ``--measure``
times one epoch here (the training pass, then the evaluation) and multiplies it by the
recipe's epochs: an extrapolation. A floor is the FLOPs of the run's own model (with or without
its transformer; evaluated twice with flip test-time augmentation) at the matmul peak of this
machine with all of torch's threads: the machine's limit, whatever threads a run chose.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
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


class Floors:
    """Least seconds per epoch on this machine, by model and dtype; FLOPs and peaks counted once."""

    def __init__(self, device: torch.device, quick: bool) -> None:
        self.device, self.quick = device, quick
        self.peaks: dict[str, float] = {}
        self.per_image: dict[tuple[str, bool, str], dict[str, float]] = {}

    def __call__(self, config: dict[str, Any], dtype: str, sizes: tuple[int, int] | None = None) -> float:
        """Seconds of one epoch of ``config``'s model (CIFAR-10's sizes unless given) at the peak."""
        key = config["model"], bool(config["stn"]), config["transform"]
        if key not in self.per_image:
            model = models.create(key[0], stn=key[1], transform=key[2]).to(self.device)
            counted = flops.count_flops(model, (3, 32, 32))
            sampled = flops.sampling_flops(3, 32, 32) if key[1] else dict(forward=0.0, train=0.0)
            self.per_image[key] = {k: counted[k] + sampled[k] for k in ("forward", "train")}
        if dtype not in self.peaks:
            self.peaks[dtype] = flops.matmul_peak(self.device, flops.DTYPES[dtype], self.quick)
        train, test = sizes or (flops.TRAIN_IMAGES, flops.TEST_IMAGES)
        tests = 2 if config.get("flip_tta") else 1
        return flops.epoch_floor(self.per_image[key], self.peaks[dtype], train, tests * test)["epoch"]


def read_run(run: Path, floors: Floors, device: torch.device) -> dict[str, Any]:
    """A row from a run directory's metrics.csv, config.json and (if there) summary.json."""
    metrics = list(csv.DictReader((run / "metrics.csv").read_text().splitlines()))
    config = json.loads((run / "config.json").read_text())
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    ran_on = summary.get("device") or _logged_device(run / "train.log") or config["device"]
    seconds = float(metrics[-1]["seconds"])
    dtype = "bf16" if config["amp"] == "bf16" or (config["amp"] == "auto" and ran_on.startswith("cuda")) else "fp32"
    here = ran_on.split(":")[0] == device.type
    floor = len(metrics) * floors(config, dtype) if here else None
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


def measure(args: argparse.Namespace, device: torch.device, floors: Floors) -> list[dict[str, Any]]:
    """One epoch of the tutorial loop and of each recipe, timed here, times the recipe's epochs."""
    dataset = harness.cifar10(args)
    overrides = dict(_setting(item) for item in args.set)
    configs = [from_recipe(recipe, **overrides) for recipe in ("seed", "fast")]
    contenders = [tutorial(from_recipe("seed"), dataset, device, args.workers)]
    contenders += [engine(cfg, dataset, device, DeviceData(dataset, device, cfg.channels_last)) for cfg in configs]
    rows = []
    for c, cfg in zip(contenders, [configs[0], *configs], strict=True):  # the tutorial runs the seed recipe
        n_epochs = cfg.epochs
        c.run(3 if args.quick else 10, device)  # warm-up
        steps = len(dataset.train_labels) // c.batch_size  # one epoch's images (the last partial batch left out)
        train_seconds = steps * c.batch_size / c.run(steps, device)
        harness.sync(device)
        tic = time.perf_counter()
        c.test()
        harness.sync(device)
        epoch = train_seconds + time.perf_counter() - tic
        sizes = len(dataset.train_labels), len(dataset.test_labels)
        floor = n_epochs * floors(dataclasses.asdict(cfg), c.dtype, sizes)
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
    floors = Floors(device, args.quick)
    rows = [read_run(run, floors, device) for run in args.runs]
    if args.measure:
        rows += measure(args, device, floors)
    changed = " ".join(sorted(args.set))
    print(harness.table(rows, "whole recipes: wall time against the floor" + (f" ({changed})" if changed else "")))
    # Runs with values changed get their own section, beside the presets' rather than over them.
    harness.save(
        args.out,
        f"recipe_time {changed}" if changed else "recipe_time",
        device,
        dict(
            quick=args.quick,
            changed=args.set,
            peak_tflops={dtype: peak / 1e12 for dtype, peak in floors.peaks.items()},
            rows=rows,
        ),
    )


if __name__ == "__main__":
    main()
