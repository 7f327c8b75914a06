"""Throughput of ``stn.warp``, forward and forward + backward, for every transform family at a
few image sizes.

    python benchmarks/warp_throughput.py --device cpu

The backward pass is the one a spatial transformer on images needs: gradients reach the
parameters (and through them the localisation net), not the images. ``sampler`` says how:
``warp`` is what ``stn.warp`` chooses on the device; for the axis-aligned families (translation,
attention) both ``grid_sample`` and the separable sampler (``stn.sampling``: two batched matrix
products) are timed too. Times are medians of
``torch.utils.benchmark`` (which synchronises CUDA); the parameters are the identity plus noise.
"""

from __future__ import annotations

import harness
import torch
import torch.nn.functional as F
from torch.utils import benchmark

import stn
from stn import sampling, transforms

# (channels, side, batch on the CPU); CUDA batches are 8 times larger.
SHAPES = [(1, 28, 256), (3, 64, 64), (3, 224, 8)]


STATEMENTS = {
    "warp": "warp(x, family, params, check_finite=False)",
    "grid_sample": "F.grid_sample(x, transform.grid(params, x.shape[-2:]), align_corners=False)",
    "separable": "sampling.warp_separable(x, transform, params, x.shape[-2:])",
}


def time_warp(
    family: str, shape: tuple[int, int, int, int], device: torch.device, seconds: float, sampler: str = "warp"
) -> tuple[float, float]:
    """Median seconds of the forward pass and of forward + backward, with ``sampler`` (a key of
    ``STATEMENTS``)."""
    transform = transforms.get(family)
    n = shape[0]
    x = torch.randn(shape, device=device)
    params = transform.identity(n, device=device) + 0.05 * torch.randn(n, transform.num_params, device=device)
    params.requires_grad_(True)
    grad = torch.randn_like(x)
    names = dict(
        warp=stn.warp, F=F, sampling=sampling, transform=transform, x=x, params=params, family=family, grad=grad
    )
    forward = STATEMENTS[sampler]
    both = f"{forward}.backward(grad)"
    threads = torch.get_num_threads()
    return tuple(
        benchmark.Timer(stmt, globals=names, num_threads=threads).blocked_autorange(min_run_time=seconds).median
        for stmt in (forward, both)
    )


def main() -> None:
    p = harness.parser(__doc__.split("\n\n")[0])
    args = p.parse_args()
    device = harness.setup(args)
    seconds = 0.02 if args.quick else 0.5
    shapes = [
        (c, side, max(1, batch // 8) if args.quick else batch * (8 if device.type == "cuda" else 1))
        for c, side, batch in SHAPES
    ]

    rows = []
    for c, side, batch in shapes:
        for family in transforms.names():
            x = torch.empty(0, device=device)
            chosen = "separable" if sampling.prefer_separable(x, transforms.get(family)) else "grid_sample"
            samplers = ["warp", "grid_sample", "separable"] if sampling.separable(transforms.get(family)) else ["warp"]
            for sampler in samplers:
                forward, both = time_warp(family, (batch, c, side, side), device, seconds, sampler)
                rows.append(
                    dict(
                        family=family,
                        sampler=f"warp ({chosen})" if sampler == "warp" else sampler,
                        size=f"{batch}x{c}x{side}x{side}",
                        forward_ms=1e3 * forward,
                        train_ms=1e3 * both,
                        images_per_s=batch / both,
                        mpixels_per_s=batch * side * side / both / 1e6,
                    )
                )
    print(harness.table(rows, f"stn.warp on {device}, {torch.get_num_threads()} threads (train = forward + backward)"))
    harness.save(args.out, "warp_throughput", device, dict(quick=args.quick, rows=rows))


if __name__ == "__main__":
    main()
