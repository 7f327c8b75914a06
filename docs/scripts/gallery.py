"""The transform families' gallery: one picture per family (and for parallel and recurrent
transformers), and the table of parameters and identities, made from the library itself.

    python docs/scripts/gallery.py            # writes docs/images/families/*.png and docs/generated/family*.md
    python docs/scripts/gallery.py --check    # exit 1 if a family lacks its picture or a snippet is stale

Each picture shows a test card (a colour ramp, a white grid every 16 pixels and an "F", so that
rotation and reflection show) with the sampling grid of the warp drawn on it: the lattice of the
output's pixel positions carried into the input by the family's ``transform_points`` (where each
output location reads), and beside it the output that ``stn.warp`` makes. Parameters map output
locations to the input locations they read (see docs/conventions.md).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

import stn  # noqa: E402
from stn import transforms as T  # noqa: E402

PICTURES = ROOT / "docs" / "images" / "families"
SNIPPETS = ROOT / "docs" / "generated"
SIZE = 128  # the test card, pixels a side
OUT = 96  # the output, pixels a side
LATTICE = 9  # lines per side of the drawn sampling grid

# What each parameter means, for the table (P, options and identity come from the code).
MEANING = {
    "translation": "`(tx, ty)`: output point `p` reads input `p + t`",
    "attention": "`(s, tx, ty)`: isotropic scale and shift, output `p` reads `s p + t` (the paper's CUB transformer)",
    "similarity": "`(a, b, tx, ty)`: matrix `[[a, -b, tx], [b, a, ty]]`, `a = s cos φ`, `b = s sin φ`",
    "affine": "the 2x3 matrix row by row (`F.affine_grid`'s `theta`)",
    "projective": "the 3x3 homography row by row, `h33 = 1`",
    "tps": "offsets `(dx, dy)` of K control points on a regular grid, row-major: control point `c` reads `c + d`",
    "diffeomorphic": "the 2x3 Lie-algebra element `A` row by row; the map is `exp(A)` (never reflects or collapses)",
    "polar": "origin `(x0, y0)` of a log-polar resampling: rows are angles (a full turn), columns log-spaced radii",
    "field": "displacements `(dx, dy)` at the nodes of a coarse grid, bilinear in between",
}

# The parameters each picture shows (one sample, N = 1).
EXAMPLES = {
    "translation": [0.3, -0.2],
    "attention": [0.6, 0.25, 0.15],
    "similarity": None,  # from_angle below
    "affine": [0.8, 0.3, 0.1, -0.2, 0.9, 0.05],
    "projective": [0.9, 0.05, 0.0, 0.0, 0.9, 0.0, 0.35, 0.2],
    "tps": None,  # seeded offsets below
    "diffeomorphic": [0.1, -0.45, 0.1, 0.45, 0.1, 0.0],
    "polar": [0.1, -0.05],
    "field": None,  # a smooth field below
}


def example_params(name: str, family: T.Transform) -> torch.Tensor:
    """The ``(1, P)`` parameters the picture of family ``name`` shows."""
    if name == "similarity":
        angle = torch.tensor([math.radians(30)])
        return T.Similarity.from_angle(angle, torch.tensor([0.85]), torch.tensor([[0.05, 0.0]]))
    if name == "tps":
        generator = torch.Generator().manual_seed(0)
        return 0.12 * torch.randn(1, family.num_params, generator=generator)
    if name == "field":
        rows, cols = family.grid_size
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, rows), torch.linspace(-1, 1, cols), indexing="ij")
        dx, dy = 0.15 * torch.sin(math.pi * ys), 0.15 * torch.sin(math.pi * xs)
        return torch.stack((dx, dy), -1).reshape(1, -1)
    return torch.tensor([EXAMPLES[name]])


def test_card(size: int = SIZE) -> torch.Tensor:
    """``(1, 3, size, size)`` in ``[0, 1]``: a colour ramp, a white grid every 16 pixels and an "F"."""
    ramp = torch.linspace(0, 1, size)
    image = torch.stack(
        (
            0.25 + 0.7 * ramp.view(1, -1).expand(size, size),  # red grows to the right
            0.35 + 0.3 * ramp.view(-1, 1).expand(size, size) * ramp.view(1, -1),
            0.95 - 0.7 * ramp.view(-1, 1).expand(size, size),  # blue fades downwards
        )
    )
    image[:, ::16, :] = 1.0
    image[:, :, ::16] = 1.0
    image[:, -1, :] = 1.0
    image[:, :, -1] = 1.0
    s = size / 128
    for top, bottom, left, right in ((34, 94, 44, 56), (34, 46, 44, 88), (58, 70, 44, 76)):  # the F
        image[:, int(top * s) : int(bottom * s), int(left * s) : int(right * s)] = 0.05
    return image.unsqueeze(0)


def lattice(family: T.Transform, params: torch.Tensor, input_size: int, steps: int = 200) -> list[torch.Tensor]:
    """Polylines, in input pixel points, of the output's lattice lines carried into the input."""
    line = torch.linspace(-1, 1, steps)
    lines = []
    for value in torch.linspace(-1, 1, LATTICE):
        for points in (torch.stack((line, value.expand(steps)), -1), torch.stack((value.expand(steps), line), -1)):
            read = family.transform_points(params, points.unsqueeze(0))[0]
            lines.append(T.to_pixel_points(read, (input_size, input_size)))
    return lines


def _show(ax, image: torch.Tensor, title: str) -> None:
    ax.imshow(image[0].permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_lattice(ax, lines: list[torch.Tensor], colour: str, size: int) -> None:
    for pts in lines:
        ax.plot(pts[:, 0].numpy(), pts[:, 1].numpy(), color=colour, linewidth=0.9, alpha=0.9)
    margin = 0.25 * size
    ax.set_xlim(-0.5 - margin, size - 0.5 + margin)
    ax.set_ylim(size - 0.5 + margin, -0.5 - margin)


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=100, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)


def family_picture(name: str, path: Path) -> torch.Tensor:
    import matplotlib.pyplot as plt

    family = T.get(name)
    params = example_params(name, family)
    card = test_card()
    out = stn.warp(card, family, params, (OUT, OUT))
    fig, axes = plt.subplots(1, 2, figsize=(5.6, 2.8))
    _show(axes[0], card, "input and where the output reads")
    _draw_lattice(axes[0], lattice(family, params, SIZE), "#ffcc00", SIZE)
    _show(axes[1], out, f"output ({name})")
    _save(fig, path)
    return params


def parallel_picture(path: Path) -> torch.Tensor:
    import matplotlib.pyplot as plt

    family = T.get("attention")
    params = torch.tensor([[[0.45, -0.35, -0.3], [0.45, 0.35, 0.3]]])  # (N, k, P)
    card = test_card()
    colours = ("#ffcc00", "#00e5ff")
    fig, axes = plt.subplots(1, 3, figsize=(8.4, 2.8))
    _show(axes[0], card, "input and where each reads")
    for i, colour in enumerate(colours):
        _draw_lattice(axes[0], lattice(family, params[:, i], SIZE), colour, SIZE)
        _show(axes[i + 1], stn.warp(card, family, params[:, i], (OUT, OUT)), f"transformer {i + 1} (channels {i})")
    _save(fig, path)
    return params


def recurrent_updates() -> torch.Tensor:
    """Four affine updates ``(4, 6)``, each a small zoom and turn, as a recurrent transformer's steps."""
    updates = []
    for i in range(4):
        angle, scale = math.radians(8 + 2 * i), 0.88
        c, s = scale * math.cos(angle), scale * math.sin(angle)
        updates.append([c, -s, 0.04 * (i + 1), s, c, -0.03])
    return torch.tensor(updates)


def recurrent_picture(path: Path) -> torch.Tensor:
    import matplotlib.pyplot as plt

    family = T.get("affine")
    matrix, composed = None, []
    for update in recurrent_updates():
        step = family.matrix(update.unsqueeze(0))
        matrix = step if matrix is None else matrix @ step  # as RecurrentSpatialTransformer composes them
        composed.append(T.Affine.from_matrix(matrix))
    card = test_card()
    colours = ("#fff3a0", "#ffd54f", "#ffab00", "#ff6d00")
    fig, axes = plt.subplots(1, 5, figsize=(12.5, 2.8))
    _show(axes[0], card, "input; steps 1 (light) to 4")
    for i, params in enumerate(composed):
        _draw_lattice(axes[0], lattice(family, params, SIZE), colours[i], SIZE)
        _show(axes[i + 1], stn.warp(card, family, params, (OUT, OUT)), f"after step {i + 1}")
    _save(fig, path)
    return torch.stack(composed, 1)


def _numbers(values: torch.Tensor) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in values.flatten().tolist()) + ")"


def _identity(family: T.Transform) -> str:
    row = family.identity(1)[0]
    if not row.any():
        return "zeros"
    return _numbers(row)


def table() -> str:
    """The families' table: name, P, what the parameters are, options, identity."""
    lines = [
        "| family | `P` | parameters | options (defaults) | identity |",
        "|---|---|---|---|---|",
    ]
    for name in T.names():
        family = T.get(name)
        options = ", ".join(f"`{k}={v!r}`" for k, v in family.options.items()) or "none"
        identity = _identity(family)
        if name == "polar":
            identity += " (origin at the centre; not an identity map)"
        lines.append(
            f"| [`{name}`](#{name}) | {family.num_params} | {MEANING.get(name, '')} | {options} | `{identity}` |"
        )
    return "\n".join(lines) + "\n"


# How the pictures' longer parameter vectors were made (the short ones are printed).
MADE = {
    "tps": "0.12 x standard normal offsets, `torch.Generator().manual_seed(0)`",
    "field": "`dx = 0.15 sin(π y)`, `dy = 0.15 sin(π x)` at the 8x8 nodes",
}


def snippet(name: str, params: torch.Tensor, picture: str, alt: str) -> str:
    shown = _numbers(params) if params.numel() <= 12 else f"{params.numel()} numbers: {MADE[name]}"
    return (
        f"![{alt}](images/families/{picture}){{ loading=lazy }}\n\n"
        f"*The picture's θ: {shown if params.numel() > 12 else f'`{shown}`'}; made by `docs/scripts/gallery.py`.*\n"
    )


def snippets() -> dict[str, str]:
    """The generated Markdown: the table and one snippet per picture (text only, no pictures drawn)."""
    out = {"families-table.md": table()}
    for name in T.names():
        params = example_params(name, T.get(name))
        out[f"family-{name}.md"] = snippet(name, params, f"{name}.png", f"{name}: sampling grid and output")
    out["family-parallel.md"] = snippet(
        "parallel",
        torch.tensor([[[0.45, -0.35, -0.3], [0.45, 0.35, 0.3]]]),
        "parallel.png",
        "two attention transformers",
    )
    out["family-recurrent.md"] = (
        "![recurrent: four composed affine steps](images/families/recurrent.png){ loading=lazy }\n\n"
        f"*The picture's updates, one per step (affine, composed as matrices): "
        f"`{_numbers(recurrent_updates().round(decimals=3))}`; made by `docs/scripts/gallery.py`.*\n"
    )
    return out


def pictures() -> list[str]:
    return [f"{name}.png" for name in T.names()] + ["parallel.png", "recurrent.png"]


def write() -> None:
    import matplotlib

    matplotlib.use("Agg")
    torch.manual_seed(0)
    PICTURES.mkdir(parents=True, exist_ok=True)
    SNIPPETS.mkdir(parents=True, exist_ok=True)
    for name in T.names():
        family_picture(name, PICTURES / f"{name}.png")
    parallel_picture(PICTURES / "parallel.png")
    recurrent_picture(PICTURES / "recurrent.png")
    for file, text in snippets().items():
        (SNIPPETS / file).write_text(text)
    print(
        f"wrote {len(pictures())} pictures to {PICTURES.relative_to(ROOT)}",
        f"and the snippets to {SNIPPETS.relative_to(ROOT)}",
    )


def check() -> list[str]:
    """What is missing or stale: pictures that do not exist, snippets that differ from the code's."""
    problems = [f"missing picture {PICTURES / p}" for p in pictures() if not (PICTURES / p).is_file()]
    for file, text in snippets().items():
        path = SNIPPETS / file
        if not path.is_file() or path.read_text() != text:
            problems.append(f"stale or missing {path.relative_to(ROOT)} (run python docs/scripts/gallery.py)")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="check, do not write")
    args = parser.parse_args()
    if args.check:
        problems = check()
        print("\n".join(problems) or "gallery up to date")
        return 1 if problems else 0
    write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
