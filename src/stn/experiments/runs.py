"""What the benches (``stn bench paper``, ``ptn``, ``pstn``) share: their runs, trained, resumed or
reused by one rule, with the CPU time they took, and the line that says where a table was made."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stn.engine import CheckpointError, Run, TrainConfig, configure_process, train
from stn.files import write_text_atomic

__all__ = ["CPU_FILE", "check_seeds", "cpu_seconds", "footer", "train_or_reuse"]


def check_seeds(seeds: Sequence[int]) -> list[int]:
    """``seeds`` as a list, checked: one or more distinct integers >= 0."""
    seeds = list(seeds)
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be one or more integers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must differ, got {seeds!r}")
    return seeds


def train_or_reuse(cfg: TrainConfig, run_dir: Path) -> dict[str, Any]:
    """The summary of ``cfg``'s run in ``run_dir``: read if finished, resumed if interrupted,
    trained otherwise; with ``cpu_seconds``, the CPU time its training took (``None`` for a run
    trained before the bench recorded it). A run directory holding another configuration is an error."""
    configure_process(cfg)
    held = Run.holds_run(run_dir)
    if held:
        run = Run.open(run_dir)
        refused = run.refused_changes(cfg)  # the one rule for resuming
        if refused:
            raise ValueError(
                f"{run_dir} holds a run with another {refused[0].replace('_', '-')}; pick another --runs folder"
            )
        if run.is_finished:
            return dict(run.summary(), cpu_seconds=cpu_seconds(run_dir))
    # Counted from the first epoch on, or not at all (a run begun before the bench recorded it).
    counted = not held or cpu_seconds(run_dir) is not None
    start = time.process_time()
    try:
        summary = _train_or_resume(cfg, run_dir, held)
    finally:
        if counted:
            _add_cpu_seconds(run_dir, time.process_time() - start)
    return dict(summary, cpu_seconds=cpu_seconds(run_dir))


def _train_or_resume(cfg: TrainConfig, run_dir: Path, held: bool) -> dict[str, Any]:
    if not held:
        return _train(cfg, run_dir)
    try:
        Run.open(run_dir).checkpoint("last")
    except CheckpointError:
        return _train(cfg, run_dir, overwrite=True)  # a damaged run starts again
    return train(cfg, run_dir, resume=True, stream=io.StringIO(), progress=False)


# In a run directory: the CPU seconds the bench's processes spent training it (an interrupted
# epoch's included), on one thread about what it takes on a quiet machine.
CPU_FILE = "bench-cpu.json"


def cpu_seconds(run_dir: Path) -> float | None:
    """The CPU seconds the benches spent training ``run_dir`` (``None`` before they recorded it)."""
    try:
        return float(json.loads((run_dir / CPU_FILE).read_text())["cpu_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _add_cpu_seconds(run_dir: Path, seconds: float) -> None:
    if run_dir.is_dir():
        total = round((cpu_seconds(run_dir) or 0.0) + seconds, 3)
        write_text_atomic(run_dir / CPU_FILE, json.dumps({"cpu_seconds": total}) + "\n")


def _train(cfg: TrainConfig, run_dir: Path, overwrite: bool = False) -> dict[str, Any]:
    if overwrite:
        Run.create(run_dir, cfg, overwrite=True)
    return train(cfg, run_dir, stream=io.StringIO(), progress=False)  # train.log keeps the lines


def footer(meta: dict[str, Any]) -> list[str]:
    """Markdown lines closing a table: machine, torch, precision, time and the command that made it."""
    m = meta["machine"]
    return [
        "",
        f"Run {meta['date']} on {m['cpu']} ({m['cpu_count']} cores, {m['threads']} torch threads), "
        f"torch {m['torch']}, {meta['precision']}; {meta['seconds'] / 60:.1f} minutes of training and testing in "
        f"all, the command took {meta['wall_seconds'] / 60:.1f} minutes (finished runs are reused).",
        "",
        f"Command: `{meta['command']}`",
        "",
    ]
