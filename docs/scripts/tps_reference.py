"""stn's thin-plate spline against SciPy's and kornia's, at random points (the FAQ's numbers).

    python docs/scripts/tps_reference.py [--trials 50] [--scale 0.15]

stn's ``tps`` family sends control point ``c_k`` of the output (a regular grid over ``[-1, 1]²``) to
``c_k + d_k`` in the input and interpolates with the thin-plate spline whose kernels are centred at
the control points ``c_k``: the same function as SciPy's
``RBFInterpolator(c, c + d, kernel="thin_plate_spline", degree=1)``.

kornia's ``get_tps_transform(points_src, points_dst)`` solves for kernels centred at its *second*
argument, and ``warp_points_tps`` must be given that argument as ``kernel_centers`` (kornia's own
Convention block). Called as ``get_tps_transform(c, c + d)``, it interpolates the same pairs, so it
agrees with stn at the control points, but with kernels centred at ``c + d`` it is another
function between them. Both are printed here; ``tests/test_tps_reference.py`` holds them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from stn import transforms as T


def offsets(num_params: int, scale: float, generator: torch.Generator) -> torch.Tensor:
    """``(1, num_params)`` float64 offsets, ``scale`` times standard normal draws."""
    return scale * torch.randn(1, num_params, dtype=torch.float64, generator=generator)


def random_points(count: int, generator: torch.Generator) -> torch.Tensor:
    """``(1, count, 2)`` float64 points uniform over ``[-1, 1]²``."""
    return torch.rand(1, count, 2, dtype=torch.float64, generator=generator) * 2 - 1


def scipy_difference(family: T.ThinPlateSpline, params: torch.Tensor, points: torch.Tensor) -> float:
    """Largest ``|stn - SciPy|`` over ``points`` (normalised units)."""
    from scipy.interpolate import RBFInterpolator

    controls = family.control_points(dtype=torch.float64)
    targets = controls + family.offsets(params)[0]
    scipy = RBFInterpolator(controls.numpy(), targets.numpy(), kernel="thin_plate_spline", degree=1)
    ours = family.transform_points(params, points)[0].numpy()
    return float(abs(scipy(points[0].numpy()) - ours).max())


def kornia_differences(family: T.ThinPlateSpline, params: torch.Tensor, points: torch.Tensor) -> tuple[float, float]:
    """Largest distance between stn and kornia at the control points, and at ``points``."""
    from kornia.geometry.transform import get_tps_transform, warp_points_tps

    controls = family.control_points(dtype=torch.float64)[None]
    targets = controls + family.offsets(params)
    kernel_weights, affine_weights = get_tps_transform(controls, targets)
    at_controls = warp_points_tps(controls, targets, kernel_weights, affine_weights)
    elsewhere = warp_points_tps(points, targets, kernel_weights, affine_weights)
    ours = family.transform_points(params, points)
    return float((at_controls - targets).norm(dim=-1).max()), float((elsewhere - ours).norm(dim=-1).max())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--scale", type=float, default=0.15, help="offsets: this times standard normal draws")
    parser.add_argument("--points", type=int, default=1000, help="random points per trial")
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    print(f"{args.trials} trials, offsets {args.scale} x N(0, 1), {args.points} random points in [-1, 1]^2 each")
    for grid_size in (4, (3, 5)):
        family = T.get("tps", grid_size=grid_size)
        scipy, controls, elsewhere = [], [], []
        for _ in range(args.trials):
            params = offsets(family.num_params, args.scale, generator)
            points = random_points(args.points, generator)
            scipy.append(scipy_difference(family, params, points))
            at_controls, between = kornia_differences(family, params, points)
            controls.append(at_controls)
            elsewhere.append(between)
        elsewhere.sort()
        median = elsewhere[len(elsewhere) // 2]
        print(f"grid {family.grid_size}:")
        print(f"  SciPy RBFInterpolator(thin_plate_spline, degree=1): max |difference| {max(scipy):.1e}")
        print(f"  kornia get_tps_transform / warp_points_tps at the control points: max {max(controls):.1e}")
        print(
            f"  kornia at the random points, largest distance per trial: median {median:.2f}, "
            f"min {elsewhere[0]:.2f}, max {elsewhere[-1]:.2f} (normalised units)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
