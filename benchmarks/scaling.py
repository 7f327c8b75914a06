"""How cost grows: the ``seed-cifar`` network's training step, and its three parts, as the input
and the batch grow, in fp32 and bf16; and inference, PyTorch against ONNX Runtime.

    python benchmarks/scaling.py --device cpu

The network is ``seed-cifar`` built for square inputs of each size (its layers' shapes follow
the input; the localisation net's convolutions grow with the area). For each input size, batch
size and precision it times forward + backward of:

* ``localisation``: the localisation net and ``fc_loc`` (image -> parameters);
* ``sampling``: ``affine_grid`` + ``grid_sample`` (gradients to the parameters);
* ``classifier``: the rest (conv, pool, fc, loss), gradients to its input;
* ``step``: the whole model and the loss, as the engine runs it (no optimizer step).

Times are the best of ``--repeats`` calls (a busy machine slows some calls; the best is the
least disturbed one). Combinations whose FLOPs exceed ``--budget`` per step are left out (their
row says so). Inference: images/s of the model in eval mode without gradients, PyTorch fp32 and
bf16 autocast, and the same model exported to ONNX run by ONNX Runtime on the CPU (fp32), at the
seed's input size.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flops
import harness
import torch
import torch.nn.functional as F
from torch import nn

from stn import models
from stn.engine.precision import autocast, autocast_dtype

SIZES = (32, 64, 128, 224)
BATCHES = (1, 8, 64, 512)


def best_time(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Least seconds of ``repeats`` calls of ``fn`` (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        harness.sync(device)
        tic = time.perf_counter()
        fn()
        harness.sync(device)
        best = min(best, time.perf_counter() - tic)
    return best


def build(size: int, device: torch.device) -> nn.Module:
    model = models.create("seed-cifar", input_shape=(3, size, size)).to(device)
    model = model.to(memory_format=torch.channels_last).train()
    model.stn.check_finite = False
    return model


def parts(model: nn.Module, batch: int, size: int, amp: str, device: torch.device) -> dict[str, Callable[[], object]]:
    """Closures running forward + backward of each part of ``model`` (and of the whole step)."""
    dtype = autocast_dtype(amp, device)
    st = model.stn
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (batch,), device=device)
    with torch.no_grad(), autocast(device, dtype):
        params = st.predict(x).float()
        sampled = st.sample(x, params)
    params.requires_grad_(True)
    sampled.requires_grad_(True)
    grad_params = torch.randn_like(params)
    grad_sampled = torch.randn_like(sampled)

    def localisation() -> None:
        with autocast(device, dtype):
            out = st.predict(x)
        out.float().backward(grad_params)

    def sampling() -> None:
        with autocast(device, dtype):
            out = st.sample(x, params)
        out.backward(grad_sampled)

    def classifier() -> None:
        model.stn = None
        try:
            with autocast(device, dtype):
                out = model(sampled)
        finally:
            model.stn = st
        F.nll_loss(out.float(), labels).backward()

    def step() -> None:
        with autocast(device, dtype):
            out = model(x)
        F.nll_loss(out.float(), labels).backward()

    return dict(localisation=localisation, sampling=sampling, classifier=classifier, step=step)


def training_rows(
    device: torch.device, sizes: list[int], batches: list[int], amps: list[str], budget: float, repeats: int
) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        model = build(size, device)
        per_image = flops.count_flops(model, (3, size, size), batch=2)["train"]
        for batch in batches:
            for amp in amps:
                row: dict[str, Any] = dict(size=size, batch=batch, dtype="bf16" if amp == "bf16" else "fp32", note="")
                row["gflop_per_step"] = per_image * batch / 1e9
                if per_image * batch > budget:
                    rows.append({**row, "note": "over budget"})
                    continue
                for name, fn in parts(model, batch, size, amp, device).items():
                    row[f"{name}_ms"] = 1e3 * best_time(fn, device, repeats)
                model.zero_grad(set_to_none=True)
                row["images_per_s"] = batch / (row["step_ms"] / 1e3)
                row["sampling_percent"] = 100 * row["sampling_ms"] / row["step_ms"]
                rows.append(row)
                print(harness.table([row]).splitlines()[-1], flush=True)
    return rows


def inference_rows(device: torch.device, batches: list[int], repeats: int) -> list[dict[str, Any]]:
    """Images/s of seed-cifar's forward in eval mode: PyTorch fp32, bf16 autocast, ONNX Runtime."""
    model = build(32, device).eval()
    runners: dict[str, Callable[[torch.Tensor], object]] = {}

    def pytorch(amp: str) -> Callable[[torch.Tensor], object]:
        dtype = autocast_dtype(amp, device)

        def run(x: torch.Tensor) -> object:
            with torch.no_grad(), autocast(device, dtype):
                return model(x)

        return run

    runners["pytorch fp32"] = pytorch("off")
    runners["pytorch bf16"] = pytorch("bf16")
    try:
        import onnxruntime as ort

        from stn.export import export_onnx
    except ImportError:
        ort = None
    if ort is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(model, (3, 32, 32), Path(tmp) / "model.onnx")
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        runners["onnxruntime fp32"] = lambda x: session.run(None, {name: x.cpu().numpy()})
    rows = []
    for batch in batches:
        x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
        row: dict[str, Any] = dict(batch=batch)
        for what, run in runners.items():
            row[f"{what} images/s".replace(" ", "_")] = batch / best_time(lambda r=run, x=x: r(x), device, repeats)
        rows.append(row)
    return rows


def main() -> None:
    p = harness.parser(__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", help=f"input sides (default {SIZES}; --quick 32 64)")
    p.add_argument("--batches", type=int, nargs="+", help=f"batch sizes (default {BATCHES}; --quick 1 4)")
    p.add_argument("--repeats", type=int, help="timed calls per measurement, the best kept (default 5; --quick 2)")
    p.add_argument(
        "--budget", type=float, help="GFLOP per step above which a combination is left out (default 400; --quick 2)"
    )
    args = p.parse_args()
    device = harness.setup(args)
    sizes = args.sizes or ([32, 64] if args.quick else list(SIZES))
    batches = args.batches or ([1, 4] if args.quick else list(BATCHES))
    repeats = args.repeats or (2 if args.quick else 5)
    budget = 1e9 * (args.budget or (2.0 if args.quick else 400.0))

    rows = training_rows(device, sizes, batches, ["off", "bf16"], budget, repeats)
    print()
    print(harness.table(rows, f"seed-cifar training step by part on {device}, {torch.get_num_threads()} threads"))
    inference = inference_rows(device, [1, 64] if args.quick else [1, 64, 1000], repeats)
    print()
    print(harness.table(inference, "inference, seed-cifar at 32x32, eval mode"))
    harness.save(
        args.out,
        "scaling",
        device,
        dict(quick=args.quick, repeats=repeats, budget_gflop=budget / 1e9, training=rows, inference=inference),
    )


if __name__ == "__main__":
    main()
