"""Where a training step of ``seed-cifar`` goes, by operator, in fp32 and in bf16 autocast.

    python benchmarks/step_profile.py --device cpu --data-root ../shared/data/cifar10-jpeg

The engine's step (``stn.engine.loop.train_step``: batch from the device data, forward under the
run's autocast, loss, backward, fused SGD) runs under ``torch.profiler``; every profiled
operator's own time goes to the part of the network it serves, found from the outermost
operator above it that names one: convolutions, fully-connected layers, ``affine_grid``,
``grid_sample``, pooling, dropout, activations, the loss, autocast's casts, the optimizer, the data
(drawing, augmenting and normalising a batch) and the rest. Shares are of the profiled time;
``ms/step`` is each part's time per step. A second table takes each convolution apart, forward
and backward, with the rate it ran at against the matmul peak (its FLOPs from
``torch.utils.flop_counter``, per layer). The tables are printed, written as markdown to
``--table`` (default ``benchmarks/step_profile.md``, not with ``--quick``) and merged into the
results file. Profiling slows small operators; the step time without the profiler is given beside.
"""

from __future__ import annotations

import os
import re
import time
from collections import defaultdict
from itertools import chain, count
from pathlib import Path
from typing import Any

import flops
import harness
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from stn import models
from stn.engine import DeviceData, from_recipe
from stn.engine.loop import build_model, make_optimizer, train_step
from stn.engine.precision import autocast_dtype, resolve_amp

TABLE = Path(__file__).resolve().parent / "step_profile.md"

# (part, pattern on an operator's or autograd node's name); the first that matches wins.
PARTS = [
    ("data", r"^data$"),
    ("optimizer", r"^Optimizer\.|_fused_sgd|sgd"),
    ("affine_grid", r"affine_grid|AffineGridGenerator"),
    ("grid_sample", r"grid_sampler|GridSampler"),
    ("sampling (separable)", r"^sampling$"),
    ("convolution", r"conv|Convolution"),
    ("fully connected", r"aten::linear|aten::addmm|AddmmBackward|aten::mm\b|MmBackward|TBackward"),
    ("pooling", r"max_pool|MaxPool"),
    ("dropout", r"dropout|bernoulli|Dropout"),
    ("activation", r"relu|Relu|threshold"),
    ("loss", r"log_softmax|LogSoftmax|nll_loss|NllLoss|cross_entropy"),
    ("autocast casts", r"aten::to$|_to_copy|ToCopyBackward"),
]
PATTERNS = [(part, re.compile(pattern)) for part, pattern in PARTS]


def part_of(event: Any) -> str:
    """The part an event's own time belongs to: that of its outermost ancestor (itself included)
    that names one; ``other`` if none does."""
    chain_up = []
    while event is not None:
        chain_up.append(event.name)
        event = event.cpu_parent
    for name in reversed(chain_up):
        for part, pattern in PATTERNS:
            if pattern.search(name.removeprefix("autograd::engine::evaluate_function: ")):
                return part
    return "other"


def conv_layers(model: nn.Module, input_shape: tuple[int, ...], by_module: dict[str, Any]) -> list[dict[str, Any]]:
    """Each convolution of ``model``: its name, weight shape, input size and FLOPs per image of
    its forward and its backward (input gradient where one is needed, weight and bias), from
    ``by_module`` (:func:`flops.count_flops`)."""
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    size: dict[nn.Module, int] = {}

    def record_size(module: nn.Module, args: tuple[torch.Tensor, ...], _: Any) -> None:
        size[module] = args[0].shape[-1]

    hooks = [m.register_forward_hook(record_size) for _, m in convs]
    with torch.no_grad():
        model(torch.randn(1, *input_shape, device=next(model.parameters()).device))
    for hook in hooks:
        hook.remove()
    return [
        dict(
            layer=name,
            shape=f"{m.in_channels}->{m.out_channels} k{m.kernel_size[0]} on {size[m]}x{size[m]}",
            weight=tuple(m.weight.shape),
            forward_flop=by_module.get(name, {}).get("aten.convolution", 0.0),
            backward_flop=by_module.get(name, {}).get("aten.convolution_backward", 0.0),
        )
        for name, m in convs
    ]


def conv_seconds(events: Any, device: torch.device, steps: int) -> dict[str, float]:
    """Seconds per step of each convolution call, forward and backward, keyed by
    ``"fwd <weight shape>"`` / ``"bwd <weight shape>"`` (the shapes of profiled events)."""
    seconds: dict[str, float] = defaultdict(float)
    for event in events:
        if event.name == "aten::convolution":
            key = f"fwd {tuple(event.input_shapes[1])}"
        elif event.name == "aten::convolution_backward":
            key = f"bwd {tuple(event.input_shapes[2])}"
        else:
            continue
        total = event.device_time_total if device.type == "cuda" else event.cpu_time_total
        seconds[key] += total / 1e6 / steps
    return dict(seconds)


def profile_steps(amp: str, device: torch.device, dataset: Any, batch_size: int, steps: int) -> dict[str, Any]:
    """Time ``steps`` engine steps without the profiler, then profile as many; seconds by part."""
    cfg = from_recipe("seed", amp=amp, batch_size=batch_size, device=str(device))
    torch.manual_seed(cfg.seed)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    model = build_model(cfg, dataset, device)
    optimizer = make_optimizer(cfg, model, device)
    data = DeviceData(dataset, device, cfg.channels_last)
    batches = chain.from_iterable(data.train_batches(cfg.batch_size, generator, cfg.augment) for _ in count())
    dtype = autocast_dtype(amp, device)

    def step() -> None:
        with record_function("data"):
            images, labels = next(batches)
        train_step(model, optimizer, images, labels, dtype)

    for _ in range(max(3, steps // 4)):
        step()
    harness.sync(device)
    tic = time.perf_counter()
    for _ in range(steps):
        step()
    harness.sync(device)
    plain = (time.perf_counter() - tic) / steps
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as prof:
        for _ in range(steps):
            step()
        harness.sync(device)
    seconds: dict[str, float] = defaultdict(float)
    for event in prof.events():
        seconds[part_of(event)] += event.self_cpu_time_total / 1e6 / steps
    return dict(
        step_seconds=plain,
        profiled_step_seconds=sum(seconds.values()),
        parts=dict(seconds),
        convolutions=conv_seconds(prof.events(), device, steps),
    )


def rows_of(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per part, its ms per step and share in each precision, largest first."""
    names = {p for r in results.values() for p in r["parts"]}
    parts = sorted(names, key=lambda p: -max(r["parts"].get(p, 0) for r in results.values()))
    rows = []
    for part in parts:
        row: dict[str, Any] = dict(part=part)
        for dtype, r in results.items():
            row[f"{dtype}_ms"] = 1e3 * r["parts"].get(part, 0.0)
            row[f"{dtype}_percent"] = 100 * r["parts"].get(part, 0.0) / r["profiled_step_seconds"]
        rows.append(row)
    return rows


def layer_rows(
    layers: list[dict[str, Any]], results: dict[str, dict[str, Any]], batch_size: int
) -> list[dict[str, Any]]:
    """One row per convolution: its ms per step forward and backward in each precision, and the
    rate each ran at as a share of that precision's matmul peak."""
    rows = []
    for layer in layers:
        row: dict[str, Any] = dict(layer=layer["layer"], shape=layer["shape"])
        for dtype, r in results.items():
            peak = r["peak_tflops"] * 1e12
            for way, key in (("forward", "fwd"), ("backward", "bwd")):
                s = r["convolutions"].get(f"{key} {layer['weight']}")
                row[f"{dtype}_{key}_ms"] = 1e3 * s if s else None
                row[f"{dtype}_{key}_peak"] = 100 * layer[f"{way}_flop"] * batch_size / s / peak if s else None
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]], results: dict[str, dict[str, Any]], header: str) -> str:
    dtypes = list(results)
    lines = [header, "", "| part | " + " | ".join(f"{d} ms/step | {d} %" for d in dtypes) + " |"]
    lines.append("|---|" + "---|---|" * len(dtypes))
    for row in rows:
        cells = " | ".join(f"{row[f'{d}_ms']:.2f} | {row[f'{d}_percent']:.1f}%" for d in dtypes)
        lines.append(f"| {row['part']} | {cells} |")
    totals = " | ".join(f"**{1e3 * results[d]['profiled_step_seconds']:.2f}** | 100%" for d in dtypes)
    lines.append(f"| profiled step | {totals} |")
    plain = " | ".join(
        f"{1e3 * results[d]['step_seconds']:.2f} | {results[d]['peak_percent']:.0f}% of peak" for d in dtypes
    )
    lines.append(f"| step without the profiler | {plain} |")
    return "\n".join(lines) + "\n"


def layers_markdown(rows: list[dict[str, Any]], dtypes: list[str]) -> str:
    """The convolutions' table: ms per step and % of the matmul peak, forward and backward."""

    def cell(row: dict[str, Any], dtype: str, key: str) -> str:
        ms, peak = row[f"{dtype}_{key}_ms"], row[f"{dtype}_{key}_peak"]
        return "" if ms is None else f"{ms:.2f} ({peak:.0f}%)"

    heads = " | ".join(f"{d} forward | {d} backward" for d in dtypes)
    lines = [
        "Each convolution, ms per step (rate as % of the matmul peak in that precision; a convolution",
        "that reads the image computes no input gradient in its backward, the image needs none):",
        "",
        f"| layer | shape | {heads} |",
        "|---|---|" + "---|---|" * len(dtypes),
    ]
    for row in rows:
        cells = " | ".join(f"{cell(row, d, 'fwd')} | {cell(row, d, 'bwd')}" for d in dtypes)
        lines.append(f"| `{row['layer']}` | {row['shape']} | {cells} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = harness.parser(__doc__.split("\n\n")[0])
    harness.add_data_options(p)
    p.add_argument("--batch-size", type=int, default=64, help="training batch (default 64, the seed recipe's)")
    p.add_argument("--steps", type=int, help="steps timed and profiled per precision (default 40; --quick 4)")
    p.add_argument("--table", type=Path, help=f"markdown file to write (default {TABLE.name}; --quick: none)")
    args = p.parse_args()
    device = harness.setup(args)
    steps = args.steps or (4 if args.quick else 40)
    table_path = args.table or (None if args.quick else TABLE)

    dataset = harness.cifar10(args)
    model = models.create("seed-cifar").to(device)
    counted = flops.count_flops(model, dataset.input_shape)
    layers = conv_layers(model, dataset.input_shape, counted["by_module"])
    per_image = counted["train"] + flops.sampling_flops(*dataset.input_shape)["train"]
    results: dict[str, dict[str, Any]] = {}
    for amp in ("off", "bf16"):
        dtype = "bf16" if resolve_amp(amp, device) == "bf16" else "fp32"
        result = profile_steps(amp, device, dataset, args.batch_size, steps)
        peak = flops.matmul_peak(device, flops.DTYPES[dtype], args.quick)
        result["images_per_s"] = args.batch_size / result["step_seconds"]
        result["peak_tflops"] = peak / 1e12
        result["peak_percent"] = 100 * result["images_per_s"] * per_image / peak
        results[dtype] = result
    rows = rows_of(results)
    title = (
        f"seed-cifar training step by part, batch {args.batch_size}, on {device} "
        f"({torch.get_num_threads()} threads), {steps} steps"
    )
    print(harness.table(rows, title))
    conv_rows = layer_rows(layers, results, args.batch_size)
    print()
    print(harness.table(conv_rows, "each convolution: ms per step and % of the matmul peak"))
    for dtype, r in results.items():
        print(
            f"{dtype}: {1e3 * r['step_seconds']:.1f} ms/step without the profiler, {r['images_per_s']:,.0f} images/s, "
            f"{r['peak_percent']:.0f}% of the {dtype} matmul peak ({r['peak_tflops']:.3g} TFLOP/s)"
        )
    if table_path is not None:
        from stn.engine.machine import describe

        machine = describe(device)
        header = (
            f"# {title}\n\nMachine: {machine['cpu']}, {machine['threads']} torch threads, torch {machine['torch']}, "
            f"{machine['date']}, load average {os.getloadavg()[0]:.1f} (the machine's other users: times are rough). "
            "Written by `benchmarks/step_profile.py`; operators' own times, by the part of the network they serve."
        )
        table_path.write_text(markdown(rows, results, header) + "\n" + layers_markdown(conv_rows, list(results)))
        print(f"\nwrote {table_path}")
    harness.save(
        args.out,
        "step_profile",
        device,
        dict(
            quick=args.quick,
            batch_size=args.batch_size,
            steps=steps,
            mflop_per_image=per_image / 1e6,
            results=results,
            convolutions=conv_rows,
        ),
    )


if __name__ == "__main__":
    main()
