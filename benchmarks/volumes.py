"""stn's volumes beside MONAI and VoxelMorph, in one run: 3-D warps, registration, classification.

    python benchmarks/volumes.py --device cpu --threads 1 --data-root /work/shared/data

1. Warp: one volume and one field, warped by stn (``field3d`` dense, ``affine3d``), MONAI (``Warp``,
   ``AffineTransform``, ``DVF2DDF``) and VoxelMorph (``SpatialTransformer``,
   ``IntegrateVelocityField``): the largest difference from stn and the median time of the forward
   pass and of forward + backward (gradients to the field or the matrix), at 64³ and 128³.
2. Registration on ``shapes3d`` (32³, 48 training and 16 test subjects): stn's network
   (diffeomorphic, and a plain field) and MONAI's ``VoxelMorph`` network of the same widths, trained
   by the same loop (:func:`stn.registration.register`: the same pairs, local NCC + smoothness,
   Adam) for the same epochs; Dice on the test pairs' label maps, % folding, seconds per epoch.
3. Classification on ``mnist3d-rts``: ``volume-mnist`` without (CNN) and with an ``affine3d``
   transformer (ST-CNN), trained by ``stn train``'s engine at a short budget.

Everything in float32 (autocast off), on one process. Writes ``results/volumes/``: ``volumes.md``
(the tables, the command, machine, date and precision), ``volumes.json`` and each run's small
files (config, log, metrics, summary; the registration report and its pictures), never a
checkpoint. ``--quick`` checks that the script runs, in a minute, on tiny sizes (random volumes
instead of MNIST with ``--synthetic``).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import harness
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils import benchmark

import stn
from stn import transforms as T

RESULTS = Path(__file__).resolve().parents[1] / "results" / "volumes"
REGISTRATION_SEEDS = (0, 1)
SMALL_FILES = ("config.json", "train.log", "metrics.csv", "summary.json", "report.md")


def median_seconds(stmt: str, names: dict[str, Any], seconds: float) -> float:
    timer = benchmark.Timer(stmt, globals=names, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=seconds).median


def smooth_field(size: int, amplitude: float, vanish: bool = False, seed: int = 0) -> Tensor:
    """``(1, S, S, S, 3)`` smooth normalised displacements (coarse noise, upsampled); with
    ``vanish``, zero near the border (so that no padding is read and every tool agrees)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, 3, 4, 4, 4, generator=g)
    field = amplitude * F.interpolate(coarse, size=(size,) * 3, mode="trilinear", align_corners=True)
    if vanish:
        mask = torch.zeros((size,) * 3)
        edge = max(4, size // 8)
        mask[edge:-edge, edge:-edge, edge:-edge] = 1
        field = field * F.avg_pool3d(mask[None, None], 5, stride=1, padding=2)[0]
    return field.movedim(1, -1).contiguous()


# ----------------------------------------------------------------------------------------- 1


def warp_rows(sizes: list[int], seconds: float) -> list[dict[str, Any]]:
    from monai.networks.blocks import DVF2DDF, Warp
    from monai.networks.layers import AffineTransform
    from voxelmorph.nn.modules import IntegrateVelocityField, SpatialTransformer

    rows = []
    for size in sizes:
        shape = (size,) * 3
        x = torch.rand(1, 1, *shape, generator=torch.Generator().manual_seed(1))
        field = smooth_field(size, 0.05)
        voxels = T.to_voxel_displacement(field, align_corners=True).contiguous()
        family = T.get("field3d", grid_size=shape)
        ours = stn.warp(x, family, field.reshape(1, -1), align_corners=True)

        monai_warp, vxm_warp = Warp(mode="bilinear", padding_mode="zeros"), SpatialTransformer()
        theta = T.get("affine3d").identity(1) + 0.05 * torch.randn(1, 12, generator=torch.Generator().manual_seed(2))
        index = T.to_index_matrix(T.get("affine3d").matrix(theta), shape, shape)
        monai_affine = AffineTransform(normalized=False, align_corners=False)
        affine_ours = stn.warp(x, "affine3d", theta)
        velocity = smooth_field(size, 0.08, vanish=True, seed=3)
        voxel_velocity = T.to_voxel_displacement(velocity, True).contiguous()
        diffeo = T.get("field3d", grid_size=shape, diffeomorphic=True)
        flow = diffeo.grid(velocity.reshape(1, -1), shape, True) - T.base_grid(shape, True)
        ddf_ours = T.to_voxel_displacement(flow, True)
        dvf2ddf, integrate = DVF2DDF(num_steps=7), IntegrateVelocityField(steps=7)
        names = dict(
            stn=stn, x=x, family=family, monai_warp=monai_warp, vxm_warp=vxm_warp, monai_affine=monai_affine,
            diffeo=diffeo, dvf2ddf=dvf2ddf, integrate=integrate, shape=shape,
        )  # fmt: skip
        dense, integrated = "dense field: ", "integration (7 squarings): "
        # (operation, statement of p, its output as the reference's, the reference, p)
        every = [
            (dense + "stn.warp field3d", "stn.warp(x, family, p, align_corners=True, check_finite=False)", None,
             ours, field.reshape(1, -1)),
            (dense + "MONAI Warp", "monai_warp(x, p)", monai_warp(x, voxels), ours, voxels),
            (dense + "VoxelMorph SpatialTransformer", "vxm_warp(x, p)", vxm_warp(x, voxels), ours, voxels),
            ("affine: stn.warp affine3d", "stn.warp(x, 'affine3d', p, check_finite=False)", None, affine_ours, theta),
            ("affine: MONAI AffineTransform", "monai_affine(x, p)", monai_affine(x, index), affine_ours, index),
            (integrated + "stn field3d diffeomorphic", "diffeo.grid(p, shape, True)", None, ddf_ours,
             velocity.reshape(1, -1)),
            (integrated + "MONAI DVF2DDF", "dvf2ddf(p)", dvf2ddf(voxel_velocity), ddf_ours, voxel_velocity),
            (integrated + "VoxelMorph IntegrateVelocityField", "integrate(p)", integrate(voxel_velocity), ddf_ours,
             voxel_velocity),
        ]  # fmt: skip
        for name, stmt, out, reference, p in every:
            p = p.detach().clone().requires_grad_(True)
            forward = median_seconds(stmt, {**names, "p": p}, seconds)
            result = eval(stmt, {**names, "p": p})  # our own statement, as timed above
            grad = torch.randn_like(result)
            both = median_seconds(f"({stmt}).backward(grad)", {**names, "p": p, "grad": grad}, seconds)
            difference = None if out is None else float((out - reference).abs().max())
            rows.append(
                dict(
                    size=f"{size}^3",
                    operation=name,
                    max_abs_difference_from_stn=difference,
                    forward_ms=1e3 * forward,
                    forward_backward_ms=1e3 * both,
                )
            )
            print(f"  {size}^3 {name}: {1e3 * forward:.1f} ms, {1e3 * both:.1f} ms", file=sys.stderr)
    return rows


# ----------------------------------------------------------------------------------------- 2


class MonaiVoxelMorph(nn.Module):
    """MONAI's ``VoxelMorph`` network with the interface of :class:`stn.registration.RegistrationNet`,
    so that :func:`stn.registration.register` trains and measures it as it does stn's: it returns
    MONAI's own warped image, and the grid of MONAI's displacement (voxels, ``(i, j, k)``) in stn's
    convention for the smoothness, the label maps and the Jacobian."""

    dense = True

    def __init__(self, size: tuple[int, int, int], features: tuple[int, ...], final: tuple[int, ...]) -> None:
        super().__init__()
        from monai.networks.nets import VoxelMorph, VoxelMorphUNet

        backbone = VoxelMorphUNet(
            spatial_dims=3, in_channels=2, unet_out_channels=features[0], channels=_monai_channels(features),
            final_conv_channels=final,
        )  # fmt: skip
        self.net = VoxelMorph(backbone=backbone, integration_steps=7)
        self.size = size
        self.family = T.get("field3d", grid_size=size, diffeomorphic=True)  # what the run records: the same map

    def forward(self, moving: Tensor, fixed: Tensor) -> tuple[Tensor, Tensor]:
        warped, ddf = self.net(moving, fixed)
        return warped, T.base_grid(self.size, True) + T.from_voxel_displacement(ddf, align_corners=True)

    sample = staticmethod(stn.registration.RegistrationNet.sample)

    def displacement(self, grid: Tensor) -> Tensor:
        return grid - T.base_grid(self.size, True)


def _monai_channels(features: tuple[int, ...]) -> tuple[int, ...]:
    """MONAI's ``channels`` for a VoxelMorph U-Net of stn's encoder ``features``: the encoder's
    widths, then the decoder's (``(8, 16, 16, 16)`` -> ``(8, 16, 16, 16, 16, 16)``, the same layers)."""
    return (*features, *features[-2:0:-1])


def registration_rows(out: Path, quick: bool, epochs: int, device: torch.device) -> list[dict[str, Any]]:
    from stn.registration import RegisterConfig, register
    from stn.registration.report import write_report

    options = dict(size=12, train=8, test=4) if quick else dict(size=32, train=48, test=16)
    features, final = ((4, 8, 8), (4, 4)) if quick else ((8, 16, 16, 16), (8, 8))
    base = dict(
        data="shapes3d", data_options=options, features=features, final=final, epochs=epochs, batch_size=4,
        lr=1e-3, threads=torch.get_num_threads(), device=str(device),
    )  # fmt: skip
    size = (options["size"],) * 3
    # (name, run folder, config, the network's maker: None for stn's own). Each network is made right
    # after torch.manual_seed(seed), as register() makes stn's, so that a seed fixes its first weights.
    runs = [
        ("stn, diffeomorphic field3d", "stn-diffeomorphic", dict(), None),
        ("stn, plain field3d", "stn-plain", dict(diffeomorphic=False), None),
        ("MONAI VoxelMorph (diffeomorphic, 7 steps)", "monai", dict(), lambda: MonaiVoxelMorph(size, features, final)),
    ]
    rows = []
    for name, folder, changes, make in runs:
        for seed in (0,) if quick else REGISTRATION_SEEDS:
            cfg = RegisterConfig(**base, **changes, seed=seed)
            torch.manual_seed(seed)
            net = None if make is None else make()
            with tempfile.TemporaryDirectory() as tmp:
                run = Path(tmp) / "run"
                print(f"  registration: {name}, seed {seed}", file=sys.stderr)
                summary = register(cfg, run, net=net, stream=io.StringIO())
                if net is None:
                    write_report(run)
                keep(run, out / f"registration-{folder}-seed{seed}")
            rows.append(
                dict(
                    network=name,
                    seed=seed,
                    parameters=summary["parameters"],
                    dice_before=summary["dice_before"],
                    dice=summary["dice"],
                    folding_percent=summary["folding_percent"],
                    folding_max_percent=summary["folding_max_percent"],
                    seconds_per_epoch=summary["seconds_per_epoch"],
                    run=f"registration-{folder}-seed{seed}",
                )
            )
    return rows


# ----------------------------------------------------------------------------------------- 3


def classification_rows(out: Path, args: Any, epochs: int, device: torch.device) -> list[dict[str, Any]]:
    from stn.engine import from_recipe, train

    sizes = dict(train_size=256, test_size=64) if args.quick else dict(train_size=args.train_size, test_size=2000)
    common = dict(
        model="volume-mnist", dataset="mnist3d-rts", data_root=args.data_root, dataset_options=sizes, epochs=epochs,
        batch_size=32, test_batch_size=500, optimizer="adam", lr=1e-3, threads=torch.get_num_threads(),
        device=str(device), amp="off", channels_last=False, log_interval=50, seed=1,
    )  # fmt: skip
    rows = []
    # The transformer learns at a tenth of the rate (--stn-lr-scale 0.1): at the full rate it moved the
    # digits out of view in the first epoch and the classifier stayed at chance (measured: 11.7% after 4 epochs).
    for name, folder, stn_on in (("CNN", "cnn", False), ("ST-CNN (affine3d)", "st-cnn", True)):
        cfg = from_recipe("seed", **common, stn=stn_on, transform="affine3d", stn_lr_scale=0.1 if stn_on else 1.0)
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / "run"
            print(f"  classification: {name}", file=sys.stderr)
            with open(Path(tmp) / "stdout.txt", "w") as stream:
                summary = train(cfg, run, stream=stream, progress=False)
            keep(run, out / f"classification-{folder}")
        rows.append(
            dict(
                model=name,
                test_error_percent=round(100 - summary["final_accuracy"], 2),
                best_error_percent=round(100 - summary["best_accuracy"], 2),
                epochs=summary["epochs"],
                seconds_per_epoch=round(summary["seconds"] / summary["epochs"], 1),
                run=f"classification-{folder}",
            )
        )
    return rows


def synthetic_volumes(root: Path) -> None:
    """A fake MNIST under ``root`` for ``--synthetic``: disks whose size is their label, let through
    the official-file check for this process (as the tests do), its tensors cached under ``root``."""
    import gzip
    import hashlib

    import numpy as np

    from stn.data import official

    os.environ["STN_CACHE"] = str(root / "cache")

    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[:28, :28]
    fingerprints = {}
    for split, n in (("train", 300), ("t10k", 100)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        radius = 3 + labels[:, None, None].astype(float)
        images = ((((xs - 13.5) ** 2 + (ys - 13.5) ** 2) <= radius**2) * 255).astype(np.uint8)
        for name, array in (("images-idx3", images), ("labels-idx1", labels)):
            header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
            (folder / f"{split}-{name}-ubyte.gz").write_bytes(gzip.compress(header + array.tobytes()))
            raw = header + array.tobytes()
            fingerprints[f"{split}-{name}-ubyte"] = (len(raw), hashlib.md5(raw).hexdigest())
    official.IDX_FINGERPRINTS["mnist"] = fingerprints


def keep(run: Path, where: Path) -> None:
    """Copy a run's small files (and its figures) to ``where``; checkpoints stay behind."""
    if where.exists():
        shutil.rmtree(where)
    where.mkdir(parents=True)
    for name in SMALL_FILES:
        if (run / name).is_file():
            shutil.copy2(run / name, where / name)
    if (run / "figures").is_dir():
        shutil.copytree(run / "figures", where / "figures")


# ---------------------------------------------------------------------------------- report


def markdown(results: dict[str, Any], command: str) -> str:
    machine = results["machine"]
    lines = [
        "# Volumes: stn beside MONAI and VoxelMorph",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine['cpu']}, {machine['cpu_count']} cores shared with other jobs (load average "
        f"{machine['load_average']} at the end), {machine['threads']} torch thread; torch {machine['torch']}, "
        f"MONAI {results['versions']['monai']}, VoxelMorph {results['versions']['voxelmorph']}. "
        f"Date {machine['date']}. Precision: float32 everywhere (autocast off). Whole run: "
        f"{results['minutes']:.1f} minutes.",
        "",
        "## 1. Warps: one volume, one field",
        "",
        "Median of `torch.utils.benchmark`; forward + backward sends the gradient to the field or the matrix. "
        "Differences are against stn's output (MONAI and VoxelMorph given the same field in their voxel "
        "convention, `stn.transforms.to_voxel_displacement`, and the same affine map as an index matrix).",
        "",
        table(
            results["warp"], ["size", "operation", "max_abs_difference_from_stn", "forward_ms", "forward_backward_ms"]
        ),
        "",
        "## 2. Registration on shapes3d (32³)",
        "",
        f"{results['registration_budget']}",
        "",
        table(
            results["registration"],
            [
                "network",
                "seed",
                "parameters",
                "dice_before",
                "dice",
                "folding_percent",
                "folding_max_percent",
                "seconds_per_epoch",
            ],
        ),
        "",
        "![stn registration](registration-stn-diffeomorphic-seed0/figures/slices.png)",
        "",
        "## 3. Classification on mnist3d-rts",
        "",
        f"{results['classification_budget']}",
        "",
        table(
            results["classification"],
            ["model", "test_error_percent", "best_error_percent", "epochs", "seconds_per_epoch"],
        ),
        "",
    ]
    return "\n".join(lines)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:,.4g}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    p = harness.parser(__doc__.split("\n\n")[0])
    p.add_argument("--data-root", help="folder holding MNIST (default: $STN_DATA, else ~/.cache/stn)")
    p.add_argument("--synthetic", action="store_true", help="random blobs instead of MNIST (speed only)")
    p.add_argument("--only", default="warp,registration,classification", help="parts to run, comma-separated")
    p.add_argument("--registration-epochs", type=int, default=10)
    p.add_argument("--classification-epochs", type=int, default=4)
    p.add_argument("--train-size", type=int, default=5000, help="mnist3d-rts training volumes")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder for volumes.md and the runs' files")
    args = p.parse_args()
    if args.out is None and not args.quick:
        args.out = args.results / "volumes.json"
    device = harness.setup(args)
    warnings.filterwarnings("ignore", message="monai.networks.blocks.Warp")
    import monai
    import voxelmorph

    parts = set(args.only.split(","))
    out = args.results if not args.quick else Path(tempfile.mkdtemp(prefix="stn-volumes-"))
    out.mkdir(parents=True, exist_ok=True)
    tic = time.perf_counter()
    results: dict[str, Any] = dict(
        quick=args.quick, versions=dict(monai=monai.__version__, voxelmorph=voxelmorph.__version__), precision="float32"
    )
    if "warp" in parts:
        results["warp"] = warp_rows([16] if args.quick else [64, 128], 0.05 if args.quick else 1.5)
        print(harness.table(results["warp"], "Warps"))
    if "registration" in parts:
        epochs = 1 if args.quick else args.registration_epochs
        results["registration_budget"] = (
            f"Seeds {', '.join(map(str, REGISTRATION_SEEDS))} for each network (its first weights and the pairs); "
            f"{epochs} epochs of 48 training pairs (random moving and fixed subjects, batch 4), Adam lr 1e-3, "
            "local NCC (window 9) + 1.0 x smoothness (mean squared gradient of the displacement, voxels); U-Nets of "
            "the same widths (encoder 8, 16, 16, 16; final convolutions 8, 8). Dice: mean over the 4 labels on 15 "
            "fixed test pairs, label maps warped by nearest sampling."
        )
        results["registration"] = registration_rows(out, args.quick, epochs, device)
        print(harness.table(results["registration"], "Registration"))
    if "classification" in parts:
        epochs = 1 if args.quick else args.classification_epochs
        if args.synthetic:
            args.data_root = str(out / "synthetic-data")
            synthetic_volumes(Path(args.data_root))
        results["classification_budget"] = (
            f"{epochs} epochs, {256 if args.quick else args.train_size} training and {64 if args.quick else 2000} "
            "test volumes of 24³, Adam lr 1e-3, batch 32, seed 1: the command "
            f"`stn train --model volume-mnist --dataset mnist3d-rts --dataset-option train_size={args.train_size} "
            f"--dataset-option test_size=2000 --epochs {epochs} --batch-size 32 --optimizer adam --lr 0.001 "
            "--amp off --no-channels-last --threads 1 --seed 1 --stn-lr-scale 0.1` (`--no-stn` instead of "
            "`--stn-lr-scale 0.1` for the CNN)."
        )
        results["classification"] = classification_rows(out, args, epochs, device)
        print(harness.table(results["classification"], "Classification"))
    results["minutes"] = round((time.perf_counter() - tic) / 60, 1)
    from stn.engine.machine import describe

    results["machine"] = {**describe(device), "load_average": [round(v, 2) for v in os.getloadavg()]}
    command = "python benchmarks/volumes.py " + " ".join(sys.argv[1:])
    if not args.quick and parts == {"warp", "registration", "classification"}:
        (out / "volumes.md").write_text(markdown(results, command))
        print(f"wrote {out / 'volumes.md'}")
    harness.save(args.out, "volumes", device, {k: v for k, v in results.items() if k != "machine"})
    if args.out is not None and not args.quick:
        (out / "volumes.json").write_text(json.dumps(json.loads(args.out.read_text()), indent=2) + "\n")


if __name__ == "__main__":
    main()
