"""Pictures of the transformer statistics (:mod:`stn.engine.statistics`): their course over the
epochs, and histograms of one epoch's per-sample statistics (those the family has)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter
from torch import Tensor

from stn import transforms as T
from stn.engine import statistics as D
from stn.files import write_atomic

__all__ = ["histogram_figure", "histogram_panels", "plot_histograms", "plot_statistics"]

# (title, y label, [(statistic, legend label, line style)], reference line, shown as a percentage);
# titles for images; _FOR_VOLUMES has those of volumes
_PANELS = (
    ("Scale √|det|", "scale (>1 zooms out)", [("scale", "scale", "-")], 1.0, False),
    ("Rotation and shear", "degrees", [("rotation", "rotation", "-"), ("shear", "shear", ":")], 0.0, False),
    (
        "Distance from the identity",
        "normalised units (2 = width)",
        [("displacement", "grid displacement", "-"), ("translation", "centre shift", ":")],
        0.0,
        False,
    ),
    (
        "Reading outside the image",
        "share",
        [("outside_share", "grid points", "-"), ("outside_samples", f"samples > {D.OUTSIDE_LARGE:.0%} outside", ":")],
        D.ZOOM_OUT_SAMPLES,
        True,
    ),
    (
        "Mirrored, collapsed, pinned, folded",
        "share",
        [
            ("reflection_share", "det ≤ 0 (samples)", "-"),
            ("collapse_share", f"|det| < {D.COLLAPSE_DET} (samples)", ":"),
            ("pinned_share", "pinned (bounded values)", "--"),
            ("folding_share", "folded (grid cells)", "-."),
        ],
        None,
        True,
    ),
    (
        "Thin-plate spline",
        "offset / bending",
        [("tps_offset_max", "largest offset", "-"), ("tps_bending", "bending energy", ":")],
        None,
        False,
    ),
    ("Displacement field", "normalised units", [("field_max", "longest displacement", "-")], 0.0, False),
    ("Polar origin", "normalised units", [("origin", "distance from the centre", "-")], 0.0, False),
)

# Per-sample statistic -> (axis label, reference line), in the order the histograms show them.
_HISTOGRAMS = {
    "scale": ("scale √|det|", 1.0),
    "rotation": ("rotation (degrees)", 0.0),
    "offset_max": ("largest control-point offset", 0.0),
    "bending": ("bending energy", 0.0),
    "field_max": ("longest displacement (normalised)", 0.0),
    "folding": ("share of the grid folded", 0.0),
    "origin": ("origin's distance from the centre", 0.0),
    "outside": ("share of the grid outside the image", D.OUTSIDE_LARGE),
}
_PERCENT = {"folding", "outside"}
_FOR_VOLUMES = {  # titles and labels as they read for a transformer of volumes
    "Scale √|det|": "Scale ∛|det|",
    "scale √|det|": "scale ∛|det|",
    "Reading outside the image": "Reading outside the volume",
    "share of the grid outside the image": "share of the grid outside the volume",
}


def _series(rows: Sequence[Mapping[str, float]], key: str) -> tuple[list[float], list[float]]:
    epochs, values = [], []
    for i, row in enumerate(rows, 1):
        if key in row and row[key] == row[key]:
            epochs.append(float(row.get("epoch", i)))
            values.append(float(row[key]))
    return epochs, values


def _save(figure: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: figure.savefig(f, format="png", dpi=100))
    return path


def plot_statistics(
    rows: Sequence[Mapping[str, float]], path: str | os.PathLike, title: str | None = None, ndim: int = 2
) -> Path:
    """Plot a run's transformer statistics against the epoch into the PNG ``path``.

    Args:
        rows: one dict per epoch (``metrics.csv`` rows or :func:`~stn.engine.statistics.measure`
            results, with an ``epoch`` key, else numbered from 1); other keys are ignored.
        path: the PNG file to write.
        title: above the panels (e.g. the run's name).
        ndim: 2 for a transformer of images, 3 for one of volumes (its scale is ``∛|det|``).

    One panel per group of statistics that some row holds (scale, rotation and shear, distance
    from the identity, reading outside, mirrored/collapsed/pinned/folded shares, TPS offsets,
    displacement fields, the polar origin); means with
    a band of ±1 standard deviation; one colour per transformer (``stn``, ``stn1``, ...); dashed
    grey lines at the warning thresholds.

    Examples:
        >>> from PIL import Image
        >>> from stn.engine.statistics import measure
        >>> model = stn.models.create("tutorial-mnist")
        >>> images = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        >>> rows = [{"epoch": epoch, **measure(model, images)} for epoch in (1, 2)]
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> path = plot_statistics(rows, folder / "statistics.png", title="tiny")
        >>> path.name, Image.open(path).format
        ('statistics.png', 'PNG')
    """
    rows = list(rows)
    prefixes: list[str] = []
    for row in rows:
        prefixes += [p for p in D.prefixes(row) if p not in prefixes]
    if not prefixes:
        raise ValueError("no transformer statistics to plot (no *_outside_share column in any row)")
    present = []
    for panel in _PANELS:
        keys = [f"{p}_{stat}{suffix}" for p in prefixes for stat, _, _ in panel[2] for suffix in ("", "_mean")]
        if any(k in row for row in rows for k in keys):
            present.append(panel)
    columns = min(3, len(present))
    lines = -(-len(present) // columns)
    figure = Figure(figsize=(4.2 * columns, 3.3 * lines + (0.4 if title else 0)), layout="constrained")
    if title:
        figure.suptitle(title)
    grid = figure.subplots(lines, columns, squeeze=False)
    for axes in grid.flat[len(present) :]:
        axes.set_axis_off()
    for axes, (heading, ylabel, stats, reference, percent) in zip(grid.flat, present, strict=False):
        heading = _FOR_VOLUMES.get(heading, heading) if ndim == 3 else heading
        _panel(axes, rows, prefixes, stats, percent)
        axes.set(title=heading, xlabel="epoch", ylabel=ylabel)
        if reference is not None:
            axes.axhline(reference, color="grey", linestyle="--", linewidth=0.8)
        if percent:
            top = max(axes.get_ylim()[1], 0.05)
            axes.set_ylim(-0.02 * top, top)  # a line at 0 stays visible above the axis
            axes.yaxis.set_major_formatter(PercentFormatter(1.0))
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend(fontsize="x-small")
    return _save(figure, path)


def _panel(
    axes: Axes, rows: Sequence[Mapping[str, float]], prefixes: Sequence[str], stats: Sequence, percent: bool
) -> None:
    for i, prefix in enumerate(prefixes):
        colour = f"C{i % 10}"
        for stat, label, style in stats:
            name = label if len(prefixes) == 1 else f"{prefix} {label}"
            epochs, means = _series(rows, f"{prefix}_{stat}_mean")
            if epochs:
                _, spread = _series(rows, f"{prefix}_{stat}_std")
                axes.plot(epochs, means, style, color=colour, marker="o" if len(epochs) <= 20 else None, label=name)
                if len(spread) == len(means):
                    low = [m - s for m, s in zip(means, spread, strict=True)]
                    high = [m + s for m, s in zip(means, spread, strict=True)]
                    axes.fill_between(epochs, low, high, color=colour, alpha=0.15, linewidth=0)
                continue
            epochs, values = _series(rows, f"{prefix}_{stat}")
            if epochs:
                axes.plot(epochs, values, style, color=colour, marker="o" if len(epochs) <= 20 else None, label=name)


def histogram_panels(transform: str | T.Transform) -> list[tuple[str, str, float]]:
    """The histograms :func:`plot_histograms` draws for ``transform``: ``(statistic, axis label,
    reference line)`` for each of the family's statistics that has a histogram
    (:func:`~stn.engine.statistics.family_keys`), then the share of the grid read outside."""
    transform = T.get(transform)
    keys = [key for key in D.family_keys(transform) if key in _HISTOGRAMS and key != "outside"]
    panels = [(key, *_HISTOGRAMS[key]) for key in [*keys, "outside"]]
    if transform.ndim == 3:
        panels = [(key, _FOR_VOLUMES.get(label, label), reference) for key, label, reference in panels]
    return panels


def plot_histograms(
    transform: str | T.Transform,
    params: Tensor,
    path: str | os.PathLike,
    output_size: Sequence[int] = (32, 32),
    input_size: Sequence[int] | None = None,
    align_corners: bool = False,
    title: str | None = None,
) -> Path:
    """Draw :func:`histogram_figure` into the PNG ``path`` (the arguments are that function's)."""
    return _save(histogram_figure(transform, params, output_size, input_size, align_corners, title), path)


def histogram_figure(
    transform: str | T.Transform,
    params: Tensor,
    output_size: Sequence[int] = (32, 32),
    input_size: Sequence[int] | None = None,
    align_corners: bool = False,
    title: str | None = None,
) -> Figure:
    """Histograms of one epoch's per-sample statistics, one panel each.

    Args:
        transform: the family (with its options), as in the model.
        params: ``(N, P)`` parameters, or ``(N, k, P)`` from parallel transformers (one colour each).
        output_size: the transformer's output size, ``(H, W)`` or for a volume family
            ``(D, H, W)``; with ``input_size`` it sets the grid on which the share read outside
            is counted.
        input_size: the transformer's input size (default ``output_size``).
        align_corners: the transformer's sampling convention (see the conventions page).
        title: the figure's title.

    One panel per entry of :func:`histogram_panels`. Matrix families: the scale ``√|det|``
    (``∛|det|`` for volumes; 1 = unchanged, > 1 zooms out) and the rotation in degrees; ``tps``:
    the largest control-point offset and the bending energy; ``field`` and ``field3d``: the
    longest displacement and the share of the grid folded; ``polar``: the origin's distance from
    the centre; every family: the share of each sample's grid read outside the image (volume).
    Dashed lines at the identity and at :data:`~stn.engine.statistics.OUTSIDE_LARGE`.
    """
    transform = T.get(transform)
    if not isinstance(params, Tensor) or params.dim() not in (2, 3) or params.shape[0] == 0:
        shape = tuple(params.shape) if isinstance(params, Tensor) else type(params).__name__
        raise ValueError(f"params must be (N, P) or (N, k, P) with N >= 1, got {shape}")
    sets = [params] if params.dim() == 2 else list(params.unbind(1))
    values = [D.per_sample(transform, p, output_size, input_size or output_size, align_corners) for p in sets]
    panels = histogram_panels(transform)
    figure = Figure(figsize=(4.2 * len(panels), 3.3 + (0.4 if title else 0)), layout="constrained")
    if title:
        figure.suptitle(title)
    alpha = 0.6 if len(values) > 1 else 0.9
    for axes, (key, label, reference) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels, strict=True):
        span = None
        if key in _PERCENT:  # shares run from 0 (to 10% at least), also when every sample's is 0
            span = (0.0, max(*(float(v[key].max()) for v in values), 2 * reference, 0.1))
        for i, v in enumerate(values):
            name = None if len(values) == 1 else f"stn{i + 1}"
            axes.hist(v[key].numpy(), bins=30, range=span, color=f"C{i % 10}", alpha=alpha, label=name)
        axes.axvline(reference, color="grey", linestyle="--", linewidth=0.8)
        axes.set(xlabel=label, ylabel="samples")
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        if span:
            axes.set_xlim(0, 1.02 * span[1])
            axes.xaxis.set_major_formatter(PercentFormatter(1.0))
        if len(values) > 1:
            axes.legend(fontsize="x-small")
        axes.grid(alpha=0.3)
    return figure
