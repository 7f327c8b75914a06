"""Data-parallel training on one machine: ``seed-cifar``'s training images/s in one process with
T threads against T processes of one thread each (``torchrun``, DDP, gloo on the CPU), and the
communication's share of a data-parallel step.

    python benchmarks/ddp_throughput.py --device cpu --synthetic

Both train the global batch ``--batch`` the way ``stn train`` does (device-resident data, a
rank's slice of every global batch, SGD), for ``--steps`` steps after a warm-up; the figure is
images/s of the global batch over the timed steps (one process with one thread is timed too, for
scale: on a busy machine, threads that wait for each other lose more than processes). In the
processes, the same steps are timed again under DDP's ``no_sync()`` (gradients not exchanged):
the communication's share of a step is ``1 - t(no_sync) / t(DDP)`` (it includes waiting for the
slower rank). The all-reduce of a
buffer the size of the model's gradients is also timed on its own. On a shared machine, every
figure here is noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness
import torch

from stn.engine import DeviceData, from_recipe
from stn.engine.distributed import Group
from stn.engine.loop import train_step
from stn.engine.model import build_model
from stn.engine.optim import make_optimizer


def _train(group: Group, dataset: Any, args: Any, sync: bool = True) -> float:
    """Seconds per global-batch step, median over ``args.steps`` steps after ``args.warmup``."""
    device = torch.device("cpu")
    cfg = from_recipe("seed", model="seed-cifar", batch_size=args.batch, amp="off")
    torch.manual_seed(0)
    model = build_model(cfg, dataset, device)
    optimizer = make_optimizer(cfg, model, device)
    forward = group.wrap(model, 0)
    data = DeviceData(dataset, device, channels_last=True)
    generator = torch.Generator().manual_seed(0)
    part = group.part if group.active else None
    times: list[float] = []
    while len(times) < args.warmup + args.steps:
        for images, labels in data.train_batches(args.batch, generator, "crop-flip", drop_last=True, part=part):
            tic = time.perf_counter()
            if sync or not group.active:
                train_step(forward, optimizer, images, labels)
            else:
                with forward.no_sync():  # type: ignore[operator]
                    train_step(forward, optimizer, images, labels)
            times.append(time.perf_counter() - tic)
            if len(times) == args.warmup + args.steps:
                break
    steps = group.sum(torch.tensor(times[args.warmup :], dtype=torch.float64)) / group.world_size  # ranks' mean
    return statistics.median(steps.tolist())


def _allreduce_seconds(group: Group, numel: int, repeats: int) -> float:
    buffer = torch.zeros(numel)
    group.sum(buffer)
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        group.sum(buffer)
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def worker(args: Any) -> None:
    """One rank of the data-parallel measurement (started by torch.distributed.run)."""
    group = Group.from_env()
    group.start(torch.device("cpu"))
    torch.set_num_threads(1)
    dataset = harness.cifar10(args)
    synced = _train(group, dataset, args, sync=True)
    local = _train(group, dataset, args, sync=False)
    numel = sum(p.numel() for p in build_model(from_recipe("seed"), dataset, torch.device("cpu")).parameters())
    allreduce = _allreduce_seconds(group, numel, 20 if args.quick else 100)
    if group.is_main:
        Path(args.worker).write_text(json.dumps(dict(step=synced, step_no_sync=local, allreduce=allreduce)))


def main() -> None:
    p = harness.parser(__doc__.split("\n\n")[0])
    harness.add_data_options(p)
    p.add_argument("--batch", type=int, default=64, help="global batch (default 64, the seed's)")
    p.add_argument("--steps", type=int, default=300, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    p.add_argument("--procs", type=int, default=2, help="processes (each one thread) against one process")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.steps, args.warmup = 10, 2
    if args.worker:
        worker(args)
        return
    device = harness.setup(args)
    if device.type != "cpu":
        raise SystemExit("ddp_throughput.py measures the CPU (gloo); pass --device cpu")
    threads = args.threads or args.procs
    dataset = harness.cifar10(args)
    torch.set_num_threads(1)
    single = _train(Group(), dataset, args)
    torch.set_num_threads(threads)
    one = _train(Group(), dataset, args)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "worker.json"
        forwarded = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch)]
        forwarded += ["--quick"] if args.quick else []
        forwarded += ["--synthetic"] if args.synthetic else ["--data-root", args.data_root] if args.data_root else []
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        env["OMP_NUM_THREADS"] = "1"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.procs}"]
        for attempt in (1, 2):  # a gloo connection can fail to set up on a busy machine: one more try, said
            done = subprocess.run([*command, __file__, "--worker", str(out), *forwarded], env=env)
            if done.returncode == 0:
                break
            print(
                f"ddp_throughput: {args.procs}-process run {attempt} failed (exit {done.returncode})", file=sys.stderr
            )
        done.check_returncode()
        many = json.loads(out.read_text())

    numel = sum(p.numel() for p in build_model(from_recipe("seed"), dataset, torch.device("cpu")).parameters())
    share = max(0.0, 1.0 - many["step_no_sync"] / many["step"])
    rows = [
        dict(config="1 process x 1 thread", images_per_s=args.batch / single, ms_per_step=1e3 * single),
        dict(config=f"1 process x {threads} threads", images_per_s=args.batch / one, ms_per_step=1e3 * one),
        dict(
            config=f"{args.procs} processes x 1 thread (DDP, gloo)",
            images_per_s=args.batch / many["step"],
            ms_per_step=1e3 * many["step"],
        ),
        dict(
            config=f"{args.procs} processes, no gradient exchange",
            images_per_s=args.batch / many["step_no_sync"],
            ms_per_step=1e3 * many["step_no_sync"],
        ),
    ]
    print(harness.table(rows, f"seed-cifar, global batch {args.batch}, {args.steps} steps, median step"))
    print(
        f"communication: {100 * share:.0f}% of a DDP step; all-reduce of {numel:,} fp32 gradients "
        f"({4 * numel / 1e6:.1f} MB) alone: {1e3 * many['allreduce']:.1f} ms"
    )
    harness.save(
        args.out,
        "ddp_throughput",
        device,
        dict(
            quick=args.quick,
            data="synthetic" if args.synthetic else "cifar10",
            batch=args.batch,
            steps=args.steps,
            rows=rows,
            communication_share=share,
            gradient_mb=4 * numel / 1e6,
            allreduce_ms=1e3 * many["allreduce"],
            note="shared 2-core machine: noisy; median step of each configuration, run one after the other",
        ),
    )


if __name__ == "__main__":
    main()
