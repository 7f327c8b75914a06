"""Pictures and ``report.md`` of a registration run.

Volumes: the middle slice along each axis of the fixed, moving and warped volumes, their
difference from the fixed one, the warped grid lines and the Jacobian determinant of the map (red
where it folds, ``det <= 0``). Congealing: the digits, the same digits aligned to the template,
the template, and the mean image before and after.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from stn.registration.train import Registration, load_registration
from stn.transforms import jacobian_determinant
from stn.viz.slices import middle_slice

__all__ = ["write_report"]


@torch.no_grad()
def _pairs(reg: Registration, count: int) -> tuple:
    index = torch.arange(count)
    moving, _ = reg.images("test", index + (0 if reg.template is not None else 1))
    fixed, _ = reg.fixed_for(moving, "test", index)
    reg.net.eval()
    warped, grid = reg.net(moving, fixed)
    return fixed, moving, warped, grid


def _slices_figure(reg: Registration, path: Path, count: int = 2) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fixed, moving, warped, grid = _pairs(reg, count)
    det = jacobian_determinant(reg.net.displacement(grid), align_corners=True) if reg.net.dense else None
    columns = ["fixed", "moving", "warped", "|warped - fixed|", "det J"]
    volume = reg.data.ndim == 3
    views = [0, 1, 2] if volume else [None]
    rows = [(i, axis) for i in range(count) for axis in views]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.2 * len(columns), 2.2 * len(rows)), squeeze=False)
    for r, (i, axis) in enumerate(rows):

        def cut(x: torch.Tensor, i: int = i, axis: int | None = axis) -> torch.Tensor:
            return (middle_slice(x, axis) if axis is not None else x).cpu()

        images = [fixed[i, 0], moving[i, 0], warped[i, 0], (warped[i, 0] - fixed[i, 0]).abs()]
        for c, image in enumerate(images):
            axes[r, c].imshow(cut(image).numpy(), cmap="gray", vmin=0, vmax=1)
        if det is not None:
            d = cut(det[i])
            shown = axes[r, 4].imshow(d.numpy(), cmap="coolwarm", vmin=0, vmax=2)
            if (d <= 0).any():
                axes[r, 4].contour((d <= 0).numpy(), levels=[0.5], colors="red")
            if r == 0:
                fig.colorbar(shown, ax=axes[r, 4], fraction=0.046)
        for c in range(len(columns)):
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(columns[c], fontsize=9)
        if volume:
            axes[r, 0].set_ylabel(f"pair {i}, {'DHW'[axis]} slice", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


@torch.no_grad()
def _congealing_figure(reg: Registration, path: Path, count: int = 12) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reg.net.eval()
    n = min(len(reg.data.test_images), 200)
    moving, _ = reg.images("test", torch.arange(n))
    fixed, _ = reg.fixed_for(moving, "test", torch.arange(n))
    warped = torch.cat([reg.net(moving[i : i + 50], fixed[i : i + 50])[0] for i in range(0, n, 50)])
    count = min(count, n)
    columns = max(count, 7)
    fig, axes = plt.subplots(3, columns, figsize=(1.1 * columns, 3.8))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for i in range(columns):
        if i < count:
            axes[0, i].imshow(moving[i, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            axes[1, i].imshow(warped[i, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        else:
            axes[0, i].axis("off")
            axes[1, i].axis("off")
        axes[2, i].axis("off")
    summaries = [
        ("template", reg.template[0, 0]),
        ("mean before", moving.mean(0)[0]),
        ("mean after", warped.mean(0)[0]),
    ]
    for j, (title, image) in enumerate(summaries):
        ax = axes[2, 3 * j]
        ax.axis("on")
        ax.imshow(image.detach().clamp(0, 1).cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
    axes[0, 0].set_ylabel("digits", fontsize=8)
    axes[1, 0].set_ylabel("aligned", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_report(run_dir: str | os.PathLike) -> Path:
    """Draw the run's pictures into ``RUN_DIR/figures`` and write ``RUN_DIR/report.md``; its path."""
    run = Path(run_dir)
    reg = load_registration(run)
    summary = json.loads((run / "summary.json").read_text())
    lines = [
        f"# Registration: {summary['transform']} on {reg.data.name}",
        "",
        f"{reg.data.source}. {summary['epochs']} epochs on {summary['device']} ({summary['precision']}), "
        f"{summary['seconds_per_epoch']} s per epoch.",
        "",
        "| Dice before | Dice after | % folding (mean) | % folding (largest) |",
        "| --- | --- | --- | --- |",
        f"| {summary['dice_before']:.4f} | {summary['dice']:.4f} | {summary['folding_percent']:.3f} | "
        f"{summary['folding_max_percent']:.3f} |",
        "",
        "Dice per label after: " + ", ".join(f"{k} {v:.4f}" for k, v in summary["dice_per_label"].items()) + ".",
        "",
    ]
    if reg.template is not None:
        picture = _congealing_figure(reg, run / "figures" / "congealing.png")
        lines += [
            f"![congealing](figures/{picture.name})",
            "",
            "Test digits (top), the same digits aligned to the learned template (middle); the template and "
            "the mean of the digits before and after alignment (bottom).",
        ]
    else:
        picture = _slices_figure(reg, run / "figures" / "slices.png")
        lines += [
            f"![slices](figures/{picture.name})",
            "",
            "Test pairs: the middle slice along each axis of the fixed, moving and warped volumes, the "
            "difference that is left, and the Jacobian determinant of the map (1 keeps volume, below 1 "
            "shrinks, above grows; red contours where it folds, det <= 0).",
        ]
    path = run / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
