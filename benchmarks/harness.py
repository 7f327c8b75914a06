"""What every benchmark script shares: its command line, the machine it ran on, the table it
prints and its section of ``results/benchmarks.json``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch

from stn import data as stn_data
from stn.engine import resolve_device
from stn.engine.machine import describe, keep_freed_memory
from stn.files import write_text_atomic

RESULTS = Path(__file__).resolve().parents[1] / "results" / "benchmarks.json"
_key: str | None = None  # --key: where save() puts a run under each section
_malloc: str | None = None  # --malloc as it took effect, recorded with the machine


def parser(description: str) -> argparse.ArgumentParser:
    """The options every script takes: ``--device``, ``--threads``, ``--quick`` and ``--out``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's, one per core)")
    p.add_argument("--quick", action="store_true", help="tiny settings: checks that the script runs, in seconds")
    p.add_argument(
        "--out",
        type=Path,
        help=f"JSON file to merge the results into (default {RESULTS.relative_to(RESULTS.parents[1])}; "
        "with --quick: none)",
    )
    p.add_argument(
        "--key",
        help="key of this run under each section of the results file (default: the device type, cpu or cuda); "
        "e.g. a name for the machine, to keep the figures of several machines side by side",
    )
    p.add_argument(
        "--malloc",
        choices=("keep", "default"),
        default="keep",
        help="CPU memory: keep (glibc keeps freed blocks for reuse, as stn train does; the whole process, every "
        "loop measured in it included) or default (glibc as it comes)",
    )
    return p


def add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", help="folder holding CIFAR-10 (default: $STN_DATA, else ~/.cache/stn)")
    p.add_argument(
        "--synthetic", action="store_true", help="random images of CIFAR-10's shape instead (speed only: no data set)"
    )


def cifar10(args: argparse.Namespace) -> stn_data.Dataset:
    """CIFAR-10 from ``--data-root`` (or random images of its shape with ``--synthetic``); with
    ``--quick`` its first 1,024 training and 512 test images."""
    if args.synthetic:
        generator = torch.Generator().manual_seed(0)
        train, test = (1024, 512) if args.quick else (50_000, 10_000)
        dataset = stn_data.Dataset(
            "synthetic",
            torch.randint(0, 256, (train, 3, 32, 32), generator=generator, dtype=torch.uint8),
            torch.randint(0, 10, (train,), generator=generator),
            torch.randint(0, 256, (test, 3, 32, 32), generator=generator, dtype=torch.uint8),
            torch.randint(0, 10, (test,), generator=generator),
            classes=[str(i) for i in range(10)],
            mean=(0.5, 0.5, 0.5),
            std=(0.25, 0.25, 0.25),
        )
    else:
        dataset = stn_data.load("cifar10", args.data_root)
    if not args.quick:
        return dataset
    return dataclasses.replace(
        dataset,
        train_images=dataset.train_images[:1024],
        train_labels=dataset.train_labels[:1024],
        test_images=dataset.test_images[:512],
        test_labels=dataset.test_labels[:512],
    )


def setup(args: argparse.Namespace) -> torch.device:
    """Apply ``--threads`` and ``--malloc``, pick ``--out`` and return the device of ``--device``."""
    global _key, _malloc
    _key = getattr(args, "key", None)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.out is None and not args.quick:
        args.out = RESULTS
    device = resolve_device(args.device)
    if device.type == "cpu":
        _malloc = "keep" if args.malloc == "keep" and keep_freed_memory() else "default"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device


def sync(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (before reading a clock)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def table(rows: list[dict[str, Any]], title: str = "") -> str:
    """``rows`` as aligned text columns (keys of the first row; floats to 3 significant digits)."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
        return "" if value is None else str(value)

    columns = list(rows[0])
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row.get(c), int | float | None) for row in rows) for c in columns]
    lines = [title] if title else []
    lines += ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join("-" * w for w in widths)]
    for row in cells:
        line = (v.rjust(w) if right else v.ljust(w) for v, w, right in zip(row, widths, numeric, strict=True))
        lines.append("  ".join(line).rstrip())
    return "\n".join(lines)


def save(path: Path | None, section: str, device: torch.device, value: dict[str, Any]) -> None:
    """Set ``[section][key]`` of the JSON file at ``path`` (with the machine's description),
    keeping everything else in it; nothing when ``path`` is ``None``. The key is ``--key``, else the
    device type."""
    if path is None:
        return
    key = _key or device.type
    results = json.loads(path.read_text()) if path.is_file() else {}
    # The load average says how busy the machine was: figures from a shared machine are rough.
    load = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    results.setdefault(section, {})[key] = {
        "machine": {**describe(device), "load_average": load, "malloc": _malloc},
        **value,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(results, indent=2) + "\n")
    print(f"\nwrote [{section!r}][{key!r}] of {path}")
