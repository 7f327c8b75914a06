"""One training step of each model beyond the paper's (``stn.experiments.paper.NEW_ROWS``) against
plain affine ST-CNN, on each distorted-MNIST variant's input shape.

    python benchmarks/paper_steps.py --device cpu --threads 1

A step is forward, backward and an Adam step on random images (batch 128) of the variant's shape;
each model is built with the options the paper bench trains it with (``--budget``). The two models of
a row take their steps in turn, so that both see the same machine load; the figure is the median of
``--repeats`` steps after two that warm caches up. No data set is read.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import harness
import torch
import torch.nn.functional as F

from stn import models
from stn.experiments import paper

# The input of each variant, (C, H, W): the classifier sees 28x28 where the canvas is larger.
INPUT_SHAPES = {"R": (1, 28, 28), "RTS": (1, 42, 42), "P": (1, 28, 28), "E": (1, 28, 28), "TC": (1, 60, 60)}


def training_step(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    """A closure taking one Adam step of ``model`` on ``images`` ``(N, C, H, W)``."""
    model(images[:1])  # lazy layers
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.nll_loss(model(images), labels).backward()
        optimizer.step()

    return step


def step_seconds(steps: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds of each step, the steps taken in turn."""
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(repeats + 2):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            if i >= 2:
                seconds[name].append(time.perf_counter() - start)
    return {name: sorted(s)[len(s) // 2] for name, s in seconds.items()}


def main() -> None:
    p = harness.parser(__doc__.split("\n\n")[0])
    p.add_argument("--budget", default="cpu", choices=list(paper.BUDGETS), help="whose model options (default cpu)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    device = harness.setup(args)
    batch, repeats = (8, 1) if args.quick else (args.batch_size, args.repeats)
    budget = paper.BUDGETS[args.budget]
    entries = {e.label: e for e in paper.ENTRIES}
    generator = torch.Generator().manual_seed(0)
    rows = []
    for variant, label in [(v, label) for label, vs in paper.NEW_ROWS.items() for v in vs]:
        shape = INPUT_SHAPES[variant]
        images = torch.randn(batch, *shape, generator=generator).to(device)
        labels = torch.randint(0, 10, (batch,), generator=generator).to(device)
        built = {}
        for name, entry in (("model", entries[label]), ("affine", entries["ST-CNN Aff"])):
            cfg = paper.config_for(variant, entry, budget, None, 1, str(device), args.threads)
            options = {**cfg.model_options, "input_shape": shape, "stn": cfg.stn, "transform": cfg.transform}
            built[name] = training_step(models.create(cfg.model, **options).to(device), images, labels)
        seconds = step_seconds(built, repeats)
        rows.append(
            dict(
                variant=variant,
                model=label,
                ms=1e3 * seconds["model"],
                st_cnn_aff_ms=1e3 * seconds["affine"],
                ratio=seconds["model"] / seconds["affine"],
            )
        )
    title = f"one training step (batch {batch}, forward + backward + Adam) against ST-CNN Aff, {device}"
    print(harness.table(rows, title))
    harness.save(args.out, "paper_steps", device, dict(quick=args.quick, budget=args.budget, batch=batch, rows=rows))


if __name__ == "__main__":
    main()
