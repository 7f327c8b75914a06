"""Training throughput of ``seed-cifar``, end to end (data included): the engine beside the
PyTorch tutorial's loop in the same run, and each of the engine's speed-ups on its own.

    python benchmarks/train_throughput.py --device cpu --data-root ../shared/data/cifar10-jpeg

Each configuration trains through a warm-up (and its compilation), then for windows of about
``--seconds``; the configurations take turns window by window, so that a change in the
machine's load falls on all of them, and the table shows each one's median window. Images/s
count training images through batching, augmentation, forward, backward and optimizer step;
``% peak`` is the FLOP rate over the device's matmul peak in the same dtype (see flops.py), and
``s/epoch`` the training pass over 50,000 images at that rate (its floor is ``s/epoch x % peak``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain, count
from typing import Any

import flops
import harness
import torch
from torch import Tensor
from torch.utils import benchmark
from tutorial import TutorialLoop

from stn import data as stn_data
from stn import models
from stn.engine import DeviceData, TrainConfig, evaluate, from_recipe
from stn.engine.loop import train_step
from stn.engine.model import build_model, compile_model
from stn.engine.optim import make_optimizer, make_scheduler
from stn.engine.precision import autocast_dtype, resolve_amp


@dataclass
class Contender:
    """One training loop under measurement: where its batches come from, its step and its test."""

    loop: str
    recipe: str
    batch_size: int
    layout: str
    dtype: str  # what its convolutions and matmuls compute in: a key of flops.DTYPES
    compile: str
    batches: Iterator[tuple[Tensor, Tensor]]
    step: Callable[[Tensor, Tensor], object]
    test: Callable[[], object]
    steps: int = 0
    rates: list[float] = field(default_factory=list)

    def run(self, steps: int, device: torch.device) -> float:
        """Train ``steps`` steps; images per second."""
        harness.sync(device)
        tic, images = time.perf_counter(), 0
        for _ in range(steps):
            x, y = next(self.batches)
            self.step(x, y)
            images += len(y)
        harness.sync(device)
        return images / (time.perf_counter() - tic)


def engine(cfg: TrainConfig, dataset: stn_data.Dataset, device: torch.device, data: DeviceData) -> Contender:
    """``cfg`` trained by the engine's own parts, put together as ``stn.engine.train`` does."""
    torch.manual_seed(cfg.seed)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    model = build_model(cfg, dataset, device)
    optimizer = make_optimizer(cfg, model, device)
    scheduler = make_scheduler(cfg, optimizer, data.num_batches(cfg.batch_size, cfg.drop_last))
    forward = compile_model(model, cfg.compile)
    dtype = autocast_dtype(cfg.amp, device)

    def step(images: Tensor, labels: Tensor) -> None:
        train_step(forward, optimizer, images, labels, dtype, cfg.label_smoothing)
        scheduler.step()

    epochs = (
        data.train_batches(cfg.batch_size, generator, cfg.augment, cfg.crop_padding, cfg.drop_last) for _ in count()
    )
    return Contender(
        "engine",
        cfg.recipe,
        cfg.batch_size,
        "NHWC" if cfg.channels_last else "NCHW",
        "fp32" if dtype is None else "bf16",
        cfg.compile,
        chain.from_iterable(epochs),
        step,
        lambda: evaluate(forward, data, cfg.test_batch_size, dtype),
    )


def tutorial(cfg: TrainConfig, dataset: stn_data.Dataset, device: torch.device, workers: int) -> Contender:
    loop = TutorialLoop(cfg, dataset, device, workers)
    return Contender(
        "tutorial", cfg.recipe, cfg.batch_size, "NCHW", "fp32", "off", loop.batches(), loop.step, loop.test
    )


def engine_configs(
    device: torch.device, batch_sizes: list[int], compile: bool, other_precision: bool = True
) -> list[TrainConfig]:
    """The seed recipe as it is, then with one option changed at a time; then at each batch size,
    as it is and in the other precision (unless ``other_precision`` is false); then the fast recipe."""
    other = ["off" if resolve_amp("auto", device) == "bf16" else "bf16"] if other_precision else []
    configs = [from_recipe("seed"), from_recipe("seed", channels_last=False)]
    configs += [from_recipe("seed", amp=amp) for amp in other]
    if compile:
        configs.append(from_recipe("seed", compile="default"))
        if device.type == "cuda":
            configs.append(from_recipe("seed", compile="reduce-overhead"))
    for batch_size in batch_sizes[1:]:
        configs += [from_recipe("seed", batch_size=batch_size)]
        configs += [from_recipe("seed", batch_size=batch_size, amp=amp) for amp in other]
    return [*configs, from_recipe("fast")]


def optimizer_steps(device: torch.device, seconds: float) -> list[dict[str, Any]]:
    """Microseconds per ``optimizer.step()`` on seed-cifar's parameters: for-loop, foreach, fused."""
    params = [torch.nn.Parameter(p.detach().to(device)) for p in models.create("seed-cifar").parameters()]
    for p in params:
        p.grad = torch.randn_like(p)
    rows = []
    fast = dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    for recipe, options in (("seed", dict(lr=0.01)), ("fast", fast)):
        for impl, flag in (
            ("for-loop", dict(foreach=False)),
            ("foreach", dict(foreach=True)),
            ("fused", dict(fused=True)),
        ):
            optimizer = torch.optim.SGD(params, **options, **flag)
            timer = benchmark.Timer(
                "optimizer.step()", globals=dict(optimizer=optimizer), num_threads=torch.get_num_threads()
            )
            rows.append(
                dict(
                    sgd=recipe,
                    implementation=impl,
                    us_per_step=timer.blocked_autorange(min_run_time=seconds).median * 1e6,
                )
            )
    return rows


def measure(contenders: list[Contender], device: torch.device, warmup: int, seconds: float, repeats: int) -> None:
    """Warm each contender up, size its window to ``seconds``, then time ``repeats`` windows of
    each, taking turns."""
    for c in contenders:
        c.run(warmup, device)
        c.steps = max(2, round(seconds * c.run(warmup, device) / c.batch_size))
    for _ in range(repeats):
        for c in contenders:
            c.rates.append(c.run(c.steps, device))


def summary(contenders: list[Contender], flop_per_image: float, peaks: dict[str, float]) -> list[dict[str, Any]]:
    """A row per contender, its median window against the first contender's."""
    base = statistics.median(contenders[0].rates)
    rows = []
    for c in contenders:
        rate = statistics.median(c.rates)
        rows.append(
            dict(
                loop=c.loop,
                recipe=c.recipe,
                batch=c.batch_size,
                layout=c.layout,
                dtype=c.dtype,
                compile=c.compile,
                images_per_s=rate,
                spread=(max(c.rates) - min(c.rates)) / rate,
                ms_per_step=1e3 * c.batch_size / rate,
                gflops=rate * flop_per_image / 1e9,
                peak_percent=100 * rate * flop_per_image / peaks[c.dtype],
                s_per_epoch=flops.TRAIN_IMAGES / rate,
                x_tutorial=rate / base,
            )
        )
    return rows


def label(row: dict[str, Any]) -> str:
    return f"{row['recipe']}, batch {row['batch']}, {row['layout']}, {row['dtype']}, compile {row['compile']}"


def main() -> None:
    p = harness.parser(__doc__.split("\n\n")[0])
    harness.add_data_options(p)
    p.add_argument("--seconds", type=float, help="length of a timed window (default 3; --quick 0.2)")
    p.add_argument("--repeats", type=int, help="timed windows per configuration (default 5; --quick 2)")
    p.add_argument(
        "--batch-sizes", type=int, nargs="+", help="batch sizes to try (default 64 128 256 512, 1024 on CUDA)"
    )
    p.add_argument("--workers", type=int, default=4, help="the tutorial's DataLoader workers (default 4, as it has)")
    p.add_argument(
        "--compile", action=argparse.BooleanOptionalAction, help="include the torch.compile runs (default: not --quick)"
    )
    p.add_argument(
        "--other-precision",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="include rows in the precision that --amp auto does not pick here (default: yes); leave them out "
        "where it has no native support (bf16 on an AVX2-only CPU is emulated, hundreds of times slower)",
    )
    args = p.parse_args()
    device = harness.setup(args)
    seconds = args.seconds or (0.2 if args.quick else 3.0)
    repeats = args.repeats or (2 if args.quick else 5)
    warmup = 3 if args.quick else 10
    batch_sizes = args.batch_sizes or (
        [64, 128] if args.quick else [64, 128, 256, 512] + [1024] * (device.type == "cuda")
    )

    dataset = harness.cifar10(args)
    counted = flops.count_flops(models.create("seed-cifar").to(device), dataset.input_shape)
    per_image = counted["train"] + flops.sampling_flops(*dataset.input_shape)["train"]

    data = {layout: DeviceData(dataset, device, layout) for layout in (False, True)}
    contenders = [tutorial(from_recipe("seed"), dataset, device, args.workers)]
    contenders += [
        engine(cfg, dataset, device, data[cfg.channels_last])
        for cfg in engine_configs(
            device, batch_sizes, not args.quick if args.compile is None else args.compile, args.other_precision
        )
    ]
    dtypes = {c.dtype for c in contenders}
    peaks = {
        name: flops.matmul_peak(device, dtype, args.quick) for name, dtype in flops.DTYPES.items() if name in dtypes
    }
    measure(contenders, device, warmup, seconds, repeats)
    rows = summary(contenders, per_image, peaks)
    print(harness.table(rows, f"training throughput, seed-cifar on {device}, {torch.get_num_threads()} threads"))
    print(
        f"\n{per_image / 1e6:.1f} MFLOP per training image; matmul peak "
        + ", ".join(f"{k} {v / 1e12:.3g} TFLOP/s" for k, v in peaks.items())
    )

    seed = rows[1]  # the engine on the seed recipe as it is
    as_is = [
        r
        for r in rows
        if r["loop"] == "engine"
        and r["recipe"] == "seed"
        and r["compile"] == "off"
        and (r["layout"], r["dtype"]) == (seed["layout"], seed["dtype"])
    ]
    best = max(as_is, key=lambda r: r["images_per_s"])
    fastest = max(rows, key=lambda r: r["images_per_s"])
    print()
    for what, row in (("seed recipe", seed), ("seed recipe, best batch size", best), ("fastest", fastest)):
        print(f"engine, {what} ({label(row)}): {row['x_tutorial']:.2f}x the tutorial loop")

    steps = optimizer_steps(device, 0.05 if args.quick else 1.0)
    print()
    print(harness.table(steps, "optimizer step on seed-cifar's parameters"))
    harness.save(
        args.out,
        "train_throughput",
        device,
        dict(
            data=dataset.name,
            train_images=len(dataset.train_labels),
            quick=args.quick,
            window_seconds=seconds,
            repeats=repeats,
            tutorial_workers=args.workers,
            mflop_per_image=per_image / 1e6,
            peak_tflops={k: v / 1e12 for k, v in peaks.items()},
            rows=rows,
            best_batch_size=best["batch"],
            speedup_at_batch_64=seed["x_tutorial"],
            speedup_at_best_batch=best["x_tutorial"],
            optimizer_step=steps,
        ),
    )


if __name__ == "__main__":
    main()
