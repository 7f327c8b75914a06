"""The benchmarks a lent GPU should run, in one command of at most 8 minutes on one H100
(``benchmarks/gpu.sh`` calls this): training throughput against the tutorial loop, the seed
recipe's 50-epoch wall time, the fast recipe's time to 75%, and the warp table.

    benchmarks/gpu.sh --data-root ../shared/data/cifar10-jpeg     # on the GPU machine
    benchmarks/gpu.sh --quick                                      # CI: on the CPU, seconds

* ``throughput``: images/s of the tutorial's loop and the engine on the seed recipe in fp32 and
  bf16 autocast, with ``torch.compile`` and with CUDA graphs (``reduce-overhead``; CUDA only),
  taking turns window by window (as ``train_throughput.py``), with % of the matmul peak.
* ``recipes``: the seed and the fast recipe trained epoch by epoch with the engine's own parts
  (``train_step``, the schedule, ``evaluate`` after every epoch; no checkpoints), the cumulative
  seconds and test accuracy of each epoch; the seed recipe's time for its 50 epochs and the fast
  recipe's first epoch at 75% or more. A recipe that would overrun its share of the time limit
  stops early and its 50-epoch time is extrapolated (the row says so). Without CIFAR-10 (no
  ``--data-root``), random images of its shape stand in: times only, accuracies meaningless.
* ``warp``: ``stn.warp`` forward + backward for every family, both samplers for the
  axis-aligned ones (as ``warp_throughput.py``).

Everything goes to the ``gpu_suite`` section of the results file under the device's type
(``--out``; with ``--quick`` nothing unless ``--out`` is given).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import flops
import harness
import torch
import train_throughput as tt
import warp_throughput as wt

from stn import models, sampling, transforms
from stn.engine import DeviceData, evaluate, from_recipe
from stn.engine.loop import build_model, compile_model, make_optimizer, make_scheduler, train_step
from stn.engine.precision import autocast_dtype, resolve_amp

TARGET_ACCURACY = 75.0


def throughput(args: argparse.Namespace, device: torch.device, dataset: Any) -> dict[str, Any]:
    compile_modes = ["default", "reduce-overhead"] if device.type == "cuda" else ["default"]
    if not args.compile:
        compile_modes = []
    configs = [from_recipe("seed", amp="off"), from_recipe("seed", amp="bf16")]
    configs += [from_recipe("seed", amp="bf16", compile=mode) for mode in compile_modes]
    data = DeviceData(dataset, device, True)
    contenders = [tt.tutorial(from_recipe("seed"), dataset, device, 0 if args.quick else 4)]
    contenders += [tt.engine(cfg, dataset, device, data) for cfg in configs]
    seconds, repeats, warmup = (0.1, 1, 2) if args.quick else (2.0, 3, 10)
    tt.measure(contenders, device, warmup, seconds, repeats)
    counted = flops.count_flops(models.create("seed-cifar").to(device), dataset.input_shape)
    per_image = counted["train"] + flops.sampling_flops(*dataset.input_shape)["train"]
    peaks = {name: flops.matmul_peak(device, dtype, args.quick) for name, dtype in flops.DTYPES.items()}
    rows = tt.summary(contenders, per_image, peaks)
    print(harness.table(rows, f"training throughput, seed-cifar on {device}"), flush=True)
    return dict(rows=rows, mflop_per_image=per_image / 1e6, peak_tflops={k: v / 1e12 for k, v in peaks.items()})


def run_recipe(recipe: str, device: torch.device, dataset: Any, epochs: int, limit: float, amp: str) -> dict[str, Any]:
    """Train ``recipe`` for ``epochs`` epochs (evaluating after each) or until ``limit`` seconds."""
    cfg = from_recipe(recipe, epochs=epochs, amp=amp)
    torch.manual_seed(cfg.seed)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    data = DeviceData(dataset, device, cfg.channels_last)
    model = build_model(cfg, dataset, device)
    optimizer = make_optimizer(cfg, model, device)
    scheduler = make_scheduler(cfg, optimizer, data.num_batches(cfg.batch_size, cfg.drop_last))
    forward = compile_model(model, cfg.compile)
    dtype = autocast_dtype(cfg.amp, device)
    curve, elapsed = [], 0.0
    for epoch in range(1, epochs + 1):
        harness.sync(device)
        tic = time.perf_counter()
        model.train()
        for images, labels in data.train_batches(
            cfg.batch_size, generator, cfg.augment, cfg.crop_padding, cfg.drop_last
        ):
            train_step(forward, optimizer, images, labels, dtype, cfg.label_smoothing)
            scheduler.step()
        result = evaluate(forward, data, cfg.test_batch_size, dtype, cfg.flip_tta)
        elapsed += time.perf_counter() - tic
        curve.append(dict(epoch=epoch, seconds=round(elapsed, 2), test_accuracy=round(result.accuracy, 2)))
        if elapsed * (epoch + 1) / epoch > limit and epoch < epochs:
            break
    done = len(curve)
    reached = next((row for row in curve if row["test_accuracy"] >= TARGET_ACCURACY), None)
    return dict(
        recipe=recipe,
        amp=resolve_amp(amp, device),
        epochs=epochs,
        epochs_run=done,
        seconds_per_epoch=elapsed / done,
        seconds_for_all_epochs=elapsed * epochs / done,
        extrapolated=done < epochs,
        final_accuracy=curve[-1]["test_accuracy"],
        first_epoch_at_75=reached and reached["epoch"],
        seconds_to_75=reached and reached["seconds"],
        curve=curve,
    )


def recipes(args: argparse.Namespace, device: torch.device, dataset: Any, limit: float) -> list[dict[str, Any]]:
    epochs = 1 if args.quick else 50
    rows = [run_recipe(recipe, device, dataset, epochs, limit / 2, args.amp) for recipe in ("seed", "fast")]
    shown = [{k: v for k, v in row.items() if k != "curve"} for row in rows]
    print(harness.table(shown, f"recipes on {device} ({dataset.name} data)"), flush=True)
    return rows


def warp_table(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    seconds = 0.01 if args.quick else 0.3
    shapes = [(1, 28, 2), (3, 64, 2)] if args.quick else [(c, side, 8 * batch) for c, side, batch in wt.SHAPES]
    rows = []
    for c, side, batch in shapes:
        for family in transforms.names():
            transform = transforms.get(family)
            samplers = ["warp", "grid_sample", "separable"] if sampling.separable(transform) else ["warp"]
            for sampler in samplers:
                forward, both = wt.time_warp(family, (batch, c, side, side), device, seconds, sampler)
                rows.append(
                    dict(
                        family=family,
                        sampler=sampler,
                        size=f"{batch}x{c}x{side}x{side}",
                        forward_ms=1e3 * forward,
                        train_ms=1e3 * both,
                        mpixels_per_s=batch * side * side / both / 1e6,
                    )
                )
    print(harness.table(rows, f"stn.warp on {device}"), flush=True)
    return rows


def main() -> None:
    p = harness.parser(__doc__.split("\n\n")[0])
    harness.add_data_options(p)
    p.add_argument("--amp", default="auto", help="precision of the recipe runs (default auto)")
    p.add_argument("--limit", type=float, default=420.0, help="seconds for the whole suite (default 420)")
    p.add_argument(
        "--compile", action=argparse.BooleanOptionalAction, help="torch.compile contenders (default: not --quick)"
    )
    args = p.parse_args()
    if args.compile is None:
        args.compile = not args.quick
    start = time.perf_counter()
    device = harness.setup(args)
    if args.data_root is None:
        args.synthetic = True
    dataset = harness.cifar10(args)
    results: dict[str, Any] = dict(quick=args.quick, data=dataset.name, limit_seconds=args.limit)
    results["throughput"] = throughput(args, device, dataset)
    results["warp"] = warp_table(args, device)
    left = args.limit - (time.perf_counter() - start)
    results["recipes"] = recipes(args, device, dataset, max(left, 1.0))
    results["seconds"] = time.perf_counter() - start
    seed, fast = results["recipes"]
    print(
        f"\nseed recipe, {seed['epochs']} epochs: {seed['seconds_for_all_epochs']:.1f} s"
        + (" (extrapolated)" if seed["extrapolated"] else "")
        + f"; fast recipe to {TARGET_ACCURACY:g}%: "
        + (
            f"{fast['seconds_to_75']:.1f} s (epoch {fast['first_epoch_at_75']})"
            if fast["seconds_to_75"]
            else "not reached"
        )
        + f"; suite {results['seconds']:.0f} s"
    )
    speedups = [r["x_tutorial"] for r in results["throughput"]["rows"][1:]]
    results["best_x_tutorial"] = max(speedups) if speedups else None
    results["median_x_tutorial"] = statistics.median(speedups) if speedups else None
    harness.save(args.out, "gpu_suite", device, results)


if __name__ == "__main__":
    main()
