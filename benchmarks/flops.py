"""Count the work: floating-point operations per image of ``seed-cifar``'s forward and backward
pass, the device's peak rate, and so the least time an epoch can take.

    python benchmarks/flops.py --device cpu

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix products.
It has no formula for ``grid_sample`` nor for ``affine_grid``'s forward (its backward is a
batched matmul and is counted); an estimate of those is added beside. Elementwise work (ReLU,
pooling, dropout, softmax, normalisation, the optimizer) is memory-bound and left out of the
floor. The peak is a large matmul measured here, in the dtype the recipe computes in (fp32 on
the CPU, bf16 autocast on CUDA); on known GPUs the datasheet's dense figure is shown beside it.
"""

from __future__ import annotations

from typing import Any

import harness
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import benchmark
from torch.utils.flop_counter import FlopCounterMode

from stn import models

TRAIN_IMAGES, TEST_IMAGES = 50_000, 10_000  # CIFAR-10
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}

# Dense (no sparsity) tensor-core bf16, TF32 and plain fp32 rates from NVIDIA's datasheets, TFLOP/s;
# the first key found in the device's name wins.
DATASHEET = {
    "H100 PCIe": {"bf16": 756.0, "tf32": 378.0, "fp32": 51.0},
    "H100 NVL": {"bf16": 835.5, "tf32": 417.5, "fp32": 60.0},
    "H100": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},  # SXM5
    "H200": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},
}


def count_flops(model: nn.Module, input_shape: tuple[int, ...], batch: int = 64) -> dict[str, Any]:
    """FLOPs per image of a training-mode forward pass and of forward + backward, in total, by
    operator, and by module (``by_module``: each module's name in ``model``, ``""`` for the model
    itself, to its forward + backward FLOPs by operator)."""
    device = next(model.parameters()).device
    x = torch.randn(batch, *input_shape, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    model.train()
    with FlopCounterMode(display=False) as forward:
        model(x)
    with FlopCounterMode(display=False) as both:
        F.nll_loss(model(x), labels).backward()
    model.zero_grad(set_to_none=True)
    by_op = {
        str(op): dict(forward=forward.get_flop_counts()["Global"].get(op, 0) / batch, train=n / batch)
        for op, n in both.get_flop_counts()["Global"].items()
    }
    root = type(model).__name__
    by_module = {
        name.removeprefix(root).removeprefix("."): {str(op): n / batch for op, n in counts.items()}
        for name, counts in both.get_flop_counts().items()
        if name == root or name.startswith(f"{root}.")
    }
    return dict(
        forward=forward.get_total_flops() / batch,
        train=both.get_total_flops() / batch,
        by_op=by_op,
        by_module=by_module,
    )


def sampling_flops(channels: int, height: int, width: int) -> dict[str, float]:
    """An estimate of the FLOPs per image that ``FlopCounterMode`` does not count: per output pixel,
    ``affine_grid``'s forward (a 2x3 matrix on a point: 12) and bilinear ``grid_sample`` (about 12
    to turn the point into four corner weights, then four multiply-adds per channel); the
    backward of ``grid_sample`` about twice its forward."""
    grid, sample = 12 * height * width, height * width * (12 + 8 * channels)
    return dict(forward=float(grid + sample), train=float(grid + 3 * sample))


def matmul_peak(device: torch.device, dtype: torch.dtype, quick: bool = False) -> float:
    """FLOP/s of a large square matmul in ``dtype`` on ``device`` with all of torch's threads: the
    practical peak of the device's BLAS (``quick``: a small one, far from it)."""
    n = 512 if quick else 8192 if device.type == "cuda" else 4096
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    timer = benchmark.Timer("a @ b", globals=dict(a=a, b=b), num_threads=torch.get_num_threads())
    return 2 * n**3 / timer.blocked_autorange(min_run_time=0.1 if quick else 2.0).median


def datasheet(device: torch.device) -> dict[str, float] | None:
    """The datasheet's dense TFLOP/s of this GPU, when it is one we know."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((rates for key, rates in DATASHEET.items() if key in name), None)


def compute_dtype(device: torch.device) -> str:
    """The dtype the recipes' convolutions and matmuls run in with ``amp="auto"``: a key of ``DTYPES``."""
    from stn.engine.precision import resolve_amp

    return "bf16" if resolve_amp("auto", device) == "bf16" else "fp32"


def epoch_floor(
    flops: dict[str, float], peak: float, train_images: int = TRAIN_IMAGES, test_images: int = TEST_IMAGES
) -> dict[str, float]:
    """Seconds an epoch (a training pass, then evaluation; CIFAR-10's by default) takes at ``peak`` FLOP/s."""
    train = train_images * flops["train"] / peak
    test = test_images * flops["forward"] / peak
    return dict(train=train, test=test, epoch=train + test)


def main() -> None:
    p = harness.parser(__doc__.split("\n\n")[0])
    args = p.parse_args()
    device = harness.setup(args)

    model = models.create("seed-cifar").to(device)
    counted = count_flops(model, (3, 32, 32))
    sampled = sampling_flops(3, 32, 32)
    flops = {k: counted[k] + sampled[k] for k in ("forward", "train")}
    rows = [
        dict(op=op, forward=n["forward"] / 1e6, forward_backward=n["train"] / 1e6) for op, n in counted["by_op"].items()
    ]
    rows.append(
        dict(
            op="affine_grid fwd, grid_sample (estimate)",
            forward=sampled["forward"] / 1e6,
            forward_backward=sampled["train"] / 1e6,
        )
    )
    rows.append(dict(op="total", forward=flops["forward"] / 1e6, forward_backward=flops["train"] / 1e6))
    print(harness.table(rows, "seed-cifar: MFLOP per image"))

    peaks = {name: matmul_peak(device, dtype, args.quick) for name, dtype in DTYPES.items()}
    sheet = datasheet(device) or {}
    print()
    print(
        harness.table(
            [dict(dtype=k, measured_tflops=v / 1e12, datasheet_tflops=sheet.get(k)) for k, v in peaks.items()],
            f"peak: a large matmul on {device}, {torch.get_num_threads()} threads",
        )
    )

    dtype = compute_dtype(device)
    floors = {"measured matmul": epoch_floor(flops, peaks[dtype])}
    if sheet:
        floors["datasheet"] = epoch_floor(flops, sheet[dtype] * 1e12)
    print()
    print(
        harness.table(
            [dict(peak=k, train_s=v["train"], test_s=v["test"], epoch_s=v["epoch"]) for k, v in floors.items()],
            f"floor: one epoch ({TRAIN_IMAGES:,} train + {TEST_IMAGES:,} test images) at the {dtype} peak",
        )
    )
    harness.save(
        args.out,
        "flops",
        device,
        dict(
            model="seed-cifar",
            mflop_per_image={k: v / 1e6 for k, v in flops.items()},
            mflop_per_image_by_op={op: {k: v / 1e6 for k, v in n.items()} for op, n in counted["by_op"].items()},
            uncounted_mflop_estimate={k: v / 1e6 for k, v in sampled.items()},
            peak_tflops={k: v / 1e12 for k, v in peaks.items()},
            datasheet_tflops=sheet or None,
            floor_dtype=dtype,
            floor_seconds_per_epoch=floors,
        ),
    )


if __name__ == "__main__":
    main()
