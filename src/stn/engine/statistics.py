"""What a spatial transformer does, in numbers, and warnings when it drifts into a known failure.

:func:`measure` runs a batch of (normalised) images through a model and returns, for each of its
spatial transformers, the statistics of :func:`transformer_stats` as flat ``{column: value}``
pairs: the columns that go into ``metrics.csv`` and ``summary.json``. :class:`Monitor` turns
each epoch's statistics into one-line warnings, once per condition; :func:`format_table` prints
them for ``stn inspect``.

Conventions are those of :mod:`stn.transforms`: parameters map an **output** location to the
**input** location it reads, coordinates are normalised to ``[-1, 1]``, ``(x, y)`` order
(``(x, y, z)`` for volumes). So a scale above 1 reads more than the image (zooms out) and a scale
below 1 zooms in. Volume families (``affine3d``, ``rigid3d``, ..., ``field3d``) have the same
statistics, in 3-D, as noted below.

Statistics
----------
``P`` is the transformer's prefix: ``stn``, or ``stn1``, ``stn2``, ... when a model holds several
transformers or a :class:`~stn.layers.ParallelSpatialTransformers`. Every family:

* ``P_outside_share``: the share of all sampling-grid points that read outside the input
  (``|x| > 1`` or ``|y| > 1`` (or ``|z| > 1``) with ``align_corners=False``; beyond the corner
  pixels' outer edges ``1 + 1/(W-1)`` with ``align_corners=True``), averaged over samples;
* ``P_outside_samples``: the share of samples that read more than :data:`OUTSIDE_LARGE` of their
  grid outside the input;
* ``P_displacement_mean``/``_std``: how far the grid lies from the identity grid, the mean
  distance of a grid point from where the identity would read (normalised units: 2 = the width);
* ``P_pinned_share`` (bounded families only: ``translation`` with ``max_shift``, ``attention``
  with ``scale_range``, ``tps`` with ``max_offset``): the share of bounded values within 5 % of
  their bound (``|tanh| >`` :data:`PINNED_LEVEL`; for the scale, ``|2σ - 1| >`` it).

Matrix families (for ``projective``, of the linear map that approximates it at the centre,
``A - t vᵀ`` for the matrix ``[[A, t], [vᵀ, 1]]``), with ``A = [[a, b], [c, d]]``:

* ``P_scale``: ``sqrt(|det A|)``; ``P_anisotropy``: the ratio of the singular values (≥ 1);
* ``P_rotation``: the angle of the rotation nearest to ``A``, ``atan2(c - b, a + d)`` in degrees;
* ``P_shear``: how far the images of the x and y axes are from perpendicular,
  ``atan2(col₀ · col₁, |det A|)`` in degrees (0 for rotations and for scaling along the axes);
* ``P_translation``: the length of ``t``, the input location read by the output's centre;
* volumes (``A`` 3x3, ``t`` of length 3): ``P_scale`` is ``|det A|^(1/3)``, ``P_anisotropy`` the
  largest singular value over the smallest, ``P_rotation`` the angle (0 to 180°, about whichever
  axis) of the rotation nearest to ``A`` (``U diag(1, 1, ±1) Vᵀ`` of its SVD), and ``P_shear`` the
  largest of the three pairs of axes' images' departures from perpendicular,
  ``atan2(|cᵢ · cⱼ|, |cᵢ × cⱼ|)`` (0 to 90°);

  each as ``_mean`` and ``_std`` (population standard deviation over the samples);

* ``P_reflection_share``: samples with ``det A <= 0`` (mirror images);
* ``P_collapse_share``: samples with ``|det A| <`` :data:`COLLAPSE_DET`: the whole output reads
  less than 5 % of the input's area (a few pixels blown up; for volumes, of its volume).

``tps``: ``P_tps_offset_max`` (the largest control-point offset over all samples),
``P_tps_offset_mean`` (mean offset length) and ``P_tps_bending`` (mean bending energy
``trace(dᵀ B d)``, ``B`` the top-left ``K x K`` block of the inverse spline system for the kernel
``U = r² log r²``; zero for every affine map of the control points).

``field`` and ``field3d``: ``P_field_max`` (the longest displacement of a grid point from where
the identity reads, over all samples) and ``P_folding_share`` (the share of the grid's cells where
the map folds over itself: the Jacobian determinant of the grid, by finite differences between
neighbouring grid points, is ``<= 0``; averaged over samples; 0 for every map that keeps the
orientation, including any ``diffeomorphic=True`` field integrated finely enough).

``polar``: ``P_origin_mean``/``_std``: the distance of the origin of the log-polar resampling
from the centre of the input (normalised units).

A sampling transformer (one with ``predict_distribution``, as
:class:`~stn.probabilistic.ProbabilisticSpatialTransformer`) adds the spread of its parameters
(:func:`spread_stats`): ``P_spread_mean``/``_std``, each image's mean predicted scale ``σ`` of θ,
and ``P_spread_p{i}``, the mean ``σ`` of parameter ``i``.

Thresholds
----------
Zooming out: more than :data:`ZOOM_OUT_SAMPLES` of the samples read more than
:data:`OUTSIDE_LARGE` of their grid outside. Collapse: more than :data:`COLLAPSE_SHARE` of the
samples with ``|det A| <`` :data:`COLLAPSE_DET`. Reflection: more than :data:`REFLECTION_SHARE`
mirrored. Pinned: more than :data:`PINNED_SHARE` of the bounded values past :data:`PINNED_LEVEL`
(where a bound passes less than a tenth of the gradient). No movement: less than
:data:`IDENTITY_DISPLACEMENT` from the identity after :data:`IDENTITY_EPOCHS` epochs. The runs
they were chosen from are in ``results/diagnostics.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

from stn import transforms as T
from stn.engine.run import Run
from stn.layers import ParallelSpatialTransformers, SpatialTransformer
from stn.observe import eval_mode, tap, transformers

__all__ = [
    "COLLAPSE_DET",
    "COLLAPSE_SHARE",
    "IDENTITY_DISPLACEMENT",
    "IDENTITY_EPOCHS",
    "OUTSIDE_LARGE",
    "PINNED_LEVEL",
    "PINNED_SHARE",
    "REFLECTION_SHARE",
    "ZOOM_OUT_SAMPLES",
    "Monitor",
    "family_keys",
    "format_table",
    "measure",
    "per_sample",
    "prefixes",
    "run_ndim",
    "run_statistics",
    "spread_stats",
    "transformer_stats",
    "warnings_for",
]

# A sample "reads a large share outside" when more than this share of its grid lies outside the input.
OUTSIDE_LARGE = 0.15
# Zooming out: more than this share of the samples read a large share outside.
ZOOM_OUT_SAMPLES = 0.5
# A sample has collapsed when |det| of its linear part is below this: it reads < 5 % of the input's area.
COLLAPSE_DET = 0.05
# Warn when at least this share of the samples collapsed.
COLLAPSE_SHARE = 0.10
# Warn when at least this share of the samples is mirrored (det <= 0).
REFLECTION_SHARE = 0.10
# A bounded value is pinned when its squashing function (tanh, or 2σ - 1 for a scale) exceeds this.
PINNED_LEVEL = 0.95
# Warn when at least this share of the bounded values is pinned.
PINNED_SHARE = 0.5
# The transformer has not moved when its grid lies on average less than this from the identity's ...
IDENTITY_DISPLACEMENT = 0.01
# ... after this many epochs.
IDENTITY_EPOCHS = 3

_MATRIX_KEYS = ("scale", "anisotropy", "rotation", "shear", "translation")


def family_keys(transform: str | T.Transform) -> tuple[str, ...]:
    """The keys of :func:`per_sample` that belong to ``transform``'s family, in the order they are
    shown; every family also has ``outside`` and ``displacement`` (and, when bounded, ``pinned``).
    Empty for a family without statistics of its own.

    Examples:
        >>> family_keys("tps"), family_keys("polar")
        (('offset_max', 'offset_mean', 'bending'), ('origin',))
    """
    transform = T.get(transform)
    if isinstance(transform, T.MatrixTransform):
        return ("det", *_MATRIX_KEYS)
    if isinstance(transform, T.ThinPlateSpline):
        return ("offset_max", "offset_mean", "bending")
    if isinstance(transform, (T.DisplacementField, T.DisplacementField3d)):
        return ("field_max", "folding")
    if isinstance(transform, T.Polar):
        return ("origin",)
    return ()


def _folding(grid: Tensor) -> Tensor:
    """``(N,)`` share of the cells of grids ``(N, H, W, 2)`` (volumes: ``(N, D, H, W, 3)``) whose
    Jacobian determinant, by forward differences between neighbouring points, is ``<= 0`` (0 for a
    grid one point wide)."""
    d = grid.shape[-1]
    if min(grid.shape[1:-1]) < 2:
        return grid.new_zeros(grid.shape[0])
    corner = (slice(None), *[slice(None, -1)] * d)
    origin = grid[corner]

    def step(axis: int) -> Tensor:  # to the next point along grid axis ``axis`` (1 = the first spatial one)
        index = list(corner)
        index[axis] = slice(1, None)
        return grid[tuple(index)] - origin

    # Coordinate i (x, y, z) runs along grid axis d - i: the columns of the Jacobian, in (x, y, z) order.
    columns = [step(d - i) for i in range(d)]
    if d == 2:
        det = columns[0][..., 0] * columns[1][..., 1] - columns[0][..., 1] * columns[1][..., 0]
    else:
        det = (columns[0] * torch.linalg.cross(columns[1], columns[2])).sum(-1)
    return (det <= 0).flatten(1).double().mean(1)


def _outside_limits(size: Sequence[int], align_corners: bool) -> tuple[float, ...]:
    """Normalised bounds of the input's area (outer pixel edges), per coordinate: ``(x, y)`` for an
    image ``(H, W)``, ``(x, y, z)`` for a volume ``(D, H, W)``."""
    sides = T.check_size(tuple(size), "input size", 3 if len(size) == 3 else 2)
    if not align_corners:
        return (1.0,) * len(sides)

    def edge(n: int) -> float:
        return math.inf if n == 1 else 1.0 + 1.0 / (n - 1)

    return tuple(edge(n) for n in reversed(sides))


def _bounded(transform: T.Transform, params: Tensor) -> Tensor | None:
    """``(N, B)`` values in ``[-1, 1]`` whose magnitude near 1 means a bound is reached; ``None``
    for an unbounded family."""
    if isinstance(transform, T.Translation) and transform.max_shift is not None:
        return torch.tanh(params)
    if isinstance(transform, T.Attention) and transform.scale_range is not None:
        return 2 * torch.sigmoid(params[:, :1]) - 1
    if isinstance(transform, T.ThinPlateSpline) and transform.max_offset is not None:
        return torch.tanh(params)
    return None


def _linear_part(transform: T.MatrixTransform, params: Tensor) -> tuple[Tensor, Tensor]:
    """``(N, d, d)`` linear map at the output's centre and ``(N, d)`` point the centre reads
    (``d`` = 2 for images, 3 for volumes)."""
    m = transform.matrix(params)
    d = transform.ndim
    a, t = m[:, :d, :d], m[:, :d, d]
    if transform.projective:  # derivative of (A p + t) / (v·p + 1) at p = 0
        a = a - t.unsqueeze(2) * m[:, 2:, :2]
    return a, t


def _rotation_and_shear(a: Tensor, det: Tensor) -> tuple[Tensor, Tensor]:
    """The rotation and the shear of linear maps ``(N, d, d)``, in degrees (see the module docstring)."""
    if a.shape[-1] == 2:
        col0, col1 = a[:, :, 0], a[:, :, 1]
        rotation = torch.atan2(a[:, 1, 0] - a[:, 0, 1], a[:, 0, 0] + a[:, 1, 1])
        return torch.rad2deg(rotation), torch.rad2deg(torch.atan2((col0 * col1).sum(1), det.abs()))
    # The nearest rotation (Kabsch: U diag(1, 1, ±1) Vᵀ of the SVD), and its angle from its trace and
    # its skew part (exact near 0 and 180°, where acos of the trace is not).
    u, _, vh = torch.linalg.svd(a)
    sign = torch.ones_like(a[:, 0])
    sign[:, 2] = torch.sign(torch.linalg.det(u @ vh))
    r = u @ (sign.unsqueeze(-1) * vh)
    skew = torch.stack((r[:, 2, 1] - r[:, 1, 2], r[:, 0, 2] - r[:, 2, 0], r[:, 1, 0] - r[:, 0, 1]), 1)
    rotation = torch.atan2(skew.norm(dim=1), r.diagonal(dim1=1, dim2=2).sum(1) - 1)
    # Each pair of axes' images: how far from perpendicular, atan2(cᵢ · cⱼ, |cᵢ × cⱼ|); the largest.
    pairs = [(0, 1), (0, 2), (1, 2)]
    shear = torch.stack(
        [
            torch.atan2((a[:, :, i] * a[:, :, j]).sum(1).abs(), torch.linalg.cross(a[:, :, i], a[:, :, j]).norm(dim=1))
            for i, j in pairs
        ],
        1,
    ).amax(1)
    return torch.rad2deg(rotation), torch.rad2deg(shear)


def per_sample(
    transform: str | T.Transform,
    params: Tensor,
    output_size: Sequence[int],
    input_size: Sequence[int],
    align_corners: bool = False,
) -> dict[str, Tensor]:
    """Per-sample statistics of one transformer's parameters ``(N, P)``: ``(N,)`` float64 tensors
    (sizes ``(H, W)``, or ``(D, H, W)`` for a volume family).

    Keys: ``outside`` (share of the grid outside the input), ``displacement`` (mean distance from
    the identity grid), ``pinned`` (bounded families: share of bounded values at a bound);
    matrix families: ``det``, ``scale``, ``anisotropy``, ``rotation``, ``shear``,
    ``translation`` (see the module docstring); ``tps``: ``offset_max``, ``offset_mean``,
    ``bending``; ``field``: ``field_max`` (longest displacement), ``folding`` (share of folded
    grid cells); ``polar``: ``origin`` (distance of the origin from the centre). :func:`family_keys`
    names a family's keys.

    Examples:
        >>> zoom_out = torch.tensor([[1.5, 0.0, 0.0, 0.0, 1.5, 0.0]])
        >>> stats = per_sample("affine", zoom_out, (28, 28), (28, 28))
        >>> stats["scale"], stats["outside"] > 0.5
        (tensor([1.5000], dtype=torch.float64), tensor([True]))
    """
    transform = T.get(transform)
    params = transform.check_params(params).detach().to("cpu", torch.float64)
    output_size = T.check_size(tuple(output_size), "output size", transform.ndim)
    input_size = T.check_size(tuple(input_size), "input size", transform.ndim)
    chunk = max(1, _GRID_POINTS // math.prod(output_size))  # grids of volumes are large: a few at a time
    if params.shape[0] > chunk:
        parts = [_per_sample(transform, p, output_size, input_size, align_corners) for p in params.split(chunk)]
        return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
    return _per_sample(transform, params, output_size, input_size, align_corners)


# per_sample works on at most this many grid points at once (about 25 MB per float64 grid of volumes).
_GRID_POINTS = 2**20


def _per_sample(
    transform: T.Transform, params: Tensor, output_size: T.Size, input_size: T.Size, align_corners: bool
) -> dict[str, Tensor]:
    """:func:`per_sample` of float64 parameters on the CPU, checked sizes, in one piece."""
    limits = torch.tensor(_outside_limits(input_size, align_corners), dtype=torch.float64)
    grid = transform.grid(params, output_size, align_corners)
    outside = (grid.abs() > limits).any(-1)
    base = T.base_grid(output_size, align_corners, dtype=torch.float64)
    moved = (grid - base).norm(dim=-1).flatten(1)
    out = {"outside": outside.flatten(1).double().mean(1), "displacement": moved.mean(1)}
    bounded = _bounded(transform, params)
    if bounded is not None:
        out["pinned"] = (bounded.abs() > PINNED_LEVEL).double().mean(1)
    if isinstance(transform, T.MatrixTransform):
        a, t = _linear_part(transform, params)
        det = torch.linalg.det(a)
        singular = torch.linalg.svdvals(a)
        rotation, shear = _rotation_and_shear(a, det)
        out.update(
            det=det,
            scale=det.abs() ** (1 / transform.ndim),
            anisotropy=singular[:, 0] / singular[:, -1].clamp_min(1e-12),
            rotation=rotation,
            shear=shear,
            translation=t.norm(dim=1),
        )
    elif isinstance(transform, T.ThinPlateSpline):
        lengths = transform.offsets(params).norm(dim=-1)
        out.update(
            offset_max=lengths.max(1).values,
            offset_mean=lengths.mean(1),
            bending=transform.bending_energy(params),
        )
    elif isinstance(transform, (T.DisplacementField, T.DisplacementField3d)):
        out.update(field_max=moved.max(1).values, folding=_folding(grid))
    elif isinstance(transform, T.Polar):
        out.update(origin=params.norm(dim=1))
    return out


def _mean_std(values: Tensor) -> tuple[float, float]:
    return float(values.mean()), float(values.std(correction=0))


def transformer_stats(
    transform: str | T.Transform,
    params: Tensor,
    output_size: Sequence[int],
    input_size: Sequence[int],
    align_corners: bool = False,
    prefix: str = "stn",
) -> dict[str, float]:
    """Statistics of one transformer over a batch of parameters ``(N, P)``, as flat columns
    ``{prefix}_{name}`` (see the module docstring for each name).

    Args:
        transform: the family (name or instance, with its options: bounds matter).
        params: ``(N, P)`` parameters as the transformer predicted them, ``N >= 1``.
        output_size: ``(H, W)`` of the transformer's output (the sampling grid); ``(D, H, W)``
            for a volume family.
        input_size: ``(H, W)`` (``(D, H, W)``) of its input (where "outside" begins with
            ``align_corners=True``).
        align_corners: the transformer's setting.
        prefix: column prefix, e.g. ``stn`` or ``stn2``.

    Examples:
        >>> params = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0, 1.0, 0.0]])  # one mirrored
        >>> stats = transformer_stats("affine", params, (28, 28), (28, 28), prefix="stn2")
        >>> stats["stn2_scale_mean"], stats["stn2_reflection_share"]
        (1.0, 0.5)
    """
    transform = T.get(transform)
    params = transform.check_params(params)
    if params.shape[0] == 0:
        raise ValueError("transformer statistics need at least one sample")
    values = per_sample(transform, params, output_size, input_size, align_corners)
    stats: dict[str, float] = {}
    if "det" in values:
        for key in _MATRIX_KEYS:
            stats[f"{prefix}_{key}_mean"], stats[f"{prefix}_{key}_std"] = _mean_std(values[key])
        det = values["det"]
        stats[f"{prefix}_reflection_share"] = float((det <= 0).double().mean())
        stats[f"{prefix}_collapse_share"] = float((det.abs() < COLLAPSE_DET).double().mean())
    if "bending" in values:
        stats[f"{prefix}_tps_offset_max"] = float(values["offset_max"].max())
        stats[f"{prefix}_tps_offset_mean"] = float(values["offset_mean"].mean())
        stats[f"{prefix}_tps_bending"] = float(values["bending"].mean())
    if "folding" in values:
        stats[f"{prefix}_field_max"] = float(values["field_max"].max())
        stats[f"{prefix}_folding_share"] = float(values["folding"].mean())
    if "origin" in values:
        stats[f"{prefix}_origin_mean"], stats[f"{prefix}_origin_std"] = _mean_std(values["origin"])
    stats[f"{prefix}_outside_share"] = float(values["outside"].mean())
    stats[f"{prefix}_outside_samples"] = float((values["outside"] > OUTSIDE_LARGE).double().mean())
    stats[f"{prefix}_displacement_mean"], stats[f"{prefix}_displacement_std"] = _mean_std(values["displacement"])
    if "pinned" in values:
        stats[f"{prefix}_pinned_share"] = float(values["pinned"].mean())
    return stats


def _transformers(model: nn.Module) -> list[tuple[SpatialTransformer, list[str]]]:
    """The model's transformers in order, each with the prefixes of its parameter sets."""
    found = transformers(model)
    sizes = [m.k if isinstance(m, ParallelSpatialTransformers) else 1 for m in found]
    if sum(sizes) == 1:
        return [(found[0], ["stn"])]
    names, start = [], 1
    for size in sizes:
        names.append([f"stn{start + i}" for i in range(size)])
        start += size
    return list(zip(found, names, strict=True))


def measure(model: nn.Module, images: Tensor, batch_size: int = 500) -> dict[str, float]:
    """Statistics of every spatial transformer of ``model`` on ``images``.

    Args:
        model: any module holding spatial transformers (:func:`stn.observe.transformers`); it
            runs in eval mode without gradients, and every submodule's mode is restored afterwards.
            The forward pass stops once every transformer has run (the classifier after it is not
            computed).
        images: ``(N, C, H, W)`` images or ``(N, C, D, H, W)`` volumes, **normalised** as the
            model expects them (a fixed set of test images, so that epochs compare); sent to the
            model's device in batches of ``batch_size``.
        batch_size: images per forward pass.

    Returns:
        ``{column: value}`` from :func:`transformer_stats` for each transformer that ran (prefix
        ``stn`` for a model with one, else ``stn1``, ``stn2``, ... in order, one per parameter
        set of a parallel layer); empty for a model without transformers.
    """
    if not isinstance(images, Tensor) or images.dim() not in (4, 5) or images.shape[0] == 0:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(
            f"measure expects a non-empty batch of images (N, C, H, W) or volumes (N, C, D, H, W), got {shape}"
        )
    found = _transformers(model)
    if not found:
        return {}
    first = next(model.parameters(), None)
    device = first.device if first is not None else images.device
    with eval_mode(model), tap(model, stop=True) as seen:
        for chunk in images.split(batch_size):
            seen.run(model, chunk.to(device))
    stats: dict[str, float] = {}
    for module, names in found:
        calls = seen.of(module)
        if not calls:
            continue
        params = torch.cat([call.params.float().cpu() for call in calls])
        if params.dim() == 2:
            params = params.unsqueeze(1)
        for i, name in enumerate(names):
            stats.update(
                transformer_stats(
                    module.transform,
                    params[:, i],
                    calls[0].output_size,
                    calls[0].input_size,
                    module.align_corners,
                    prefix=name,
                )
            )
        if callable(getattr(module, "predict_distribution", None)) and len(names) == 1:
            with eval_mode(model):
                scales = [module.predict_distribution(call.input)[1].float().cpu() for call in calls]
            stats.update(spread_stats(torch.cat(scales), names[0]))
    return stats


def spread_stats(scale: Tensor, prefix: str = "stn") -> dict[str, float]:
    """How uncertain a sampling transformer is (one with ``predict_distribution``, as
    :class:`~stn.probabilistic.ProbabilisticSpatialTransformer`): from its predicted scales ``σ``
    ``(N, P)`` of θ, ``{prefix}_spread_mean`` and ``_std`` (over the images, of each image's mean
    ``σ``) and ``{prefix}_spread_p{i}`` (the mean ``σ`` of parameter ``i``)."""
    scale = scale.detach().to("cpu", torch.float64)
    stats = dict(zip((f"{prefix}_spread_mean", f"{prefix}_spread_std"), _mean_std(scale.mean(1)), strict=True))
    stats.update({f"{prefix}_spread_p{i}": float(v) for i, v in enumerate(scale.mean(0))})
    return stats


def prefixes(stats: Mapping[str, object]) -> list[str]:
    """The transformer prefixes (``stn``, ``stn1``, ...) present in a row of statistics.

    Examples:
        >>> prefixes({"stn1_outside_share": 0.1, "stn2_outside_share": 0.0, "epoch": 3})
        ['stn1', 'stn2']
    """
    suffix = "_outside_share"
    return [key[: -len(suffix)] for key in stats if key.endswith(suffix)]


_HINT_BOUNDED = "a bounded family (attention scale_range, translation max_shift, tps max_offset)"
# Families that cannot mirror, for images and for volumes.
_HINT_NO_MIRROR = {
    2: "a family that cannot mirror (similarity, attention)",
    3: "a family that cannot mirror (rigid3d, similarity3d, diffeomorphic3d)",
}


def _try(*hints: str | None) -> str:
    """``try a, b, or c`` from the hints that apply."""
    hints = tuple(h for h in hints if h)
    return "try " + (hints[0] if len(hints) == 1 else ", ".join(hints[:-1]) + f", or {hints[-1]}")


def _hints(fill: str | None, lr_scale: float | None) -> tuple[str | None, str]:
    """The hints about the fill (none when it is already black) and the transformers' learning rate."""
    hint_fill = {"black": None, "border": "--stn-fill black"}.get(
        fill, "--stn-fill black (zero padding reads the mean colour)"
    )
    if lr_scale is None:
        return hint_fill, "a lower --stn-lr-scale (e.g. 0.1)"
    return hint_fill, f"a lower --stn-lr-scale (now {lr_scale:g}; e.g. {lr_scale / 10:g})"


def _conditions(
    prefix: str,
    stats: Mapping[str, float],
    epochs_seen: int,
    fill: str | None,
    lr_scale: float | None,
    ndim: int = 2,
) -> list[tuple[str, str]]:
    """``(condition, message)`` for every warning condition that holds in one epoch's stats (of a
    transformer on images, ``ndim`` 2, or on volumes, 3)."""

    def value(name: str) -> float | None:
        v = stats.get(f"{prefix}_{name}")
        return None if v is None or v != v else float(v)

    hint_fill, hint_lr = _hints(fill, lr_scale)
    hint_bounded = _HINT_BOUNDED if ndim == 2 else None  # no volume family is bounded
    what = "image" if ndim == 2 else "volume"
    extent = "the image's area" if ndim == 2 else "the volume"
    found: list[tuple[str, str]] = []
    samples, share = value("outside_samples"), value("outside_share")
    if samples is not None and samples > ZOOM_OUT_SAMPLES:
        found.append(
            (
                "zoom-out",
                f"{prefix} reads outside the {what} (zooming out): {samples:.0%} of the samples read more than "
                f"{OUTSIDE_LARGE:.0%} of their grid outside it ({share:.0%} of all grid points); "
                + _try(hint_fill, hint_lr, hint_bounded),
            )
        )
    collapse = value("collapse_share")
    if collapse is not None and collapse >= COLLAPSE_SHARE:
        found.append(
            (
                "collapse",
                f"{prefix} is collapsing: {collapse:.0%} of the samples read less than {COLLAPSE_DET:.0%} of "
                f"{extent} (|det| < {COLLAPSE_DET}); " + _try(hint_lr, hint_bounded),
            )
        )
    reflection = value("reflection_share")
    if reflection is not None and reflection >= REFLECTION_SHARE:
        found.append(
            (
                "reflection",
                f"{prefix} mirrors the {what}: {reflection:.0%} of the samples have det <= 0; "
                + _try(hint_lr, _HINT_NO_MIRROR[ndim]),
            )
        )
    pinned = value("pinned_share")
    if pinned is not None and pinned >= PINNED_SHARE:
        found.append(
            (
                "pinned",
                f"{prefix} is pinned at its bound: {pinned:.0%} of its bounded values are within "
                f"{1 - PINNED_LEVEL:.0%} of the bound, where it barely learns; "
                + _try(hint_lr, hint_fill, "a wider bound"),
            )
        )
    moved = value("displacement_mean")
    if moved is not None and epochs_seen >= IDENTITY_EPOCHS and moved < IDENTITY_DISPLACEMENT:
        found.append(
            (
                "identity",
                f"{prefix} has not moved from the identity after {epochs_seen} epochs (mean grid displacement "
                f"{moved:.4f} < {IDENTITY_DISPLACEMENT}): it adds nothing; check that its parameters are trained, "
                "or try a higher --stn-lr-scale",
            )
        )
    return found


class Monitor:
    """Turns each epoch's statistics into warnings, each condition at most once per transformer.

    ``Monitor().update(stats)`` after every epoch returns the new one-line warnings (a list of
    ``str``, usually empty); :attr:`warnings` holds all raised so far. Conditions: zooming out,
    collapse, reflection, pinned at a bound, and no movement from the identity after
    :data:`IDENTITY_EPOCHS` epochs (thresholds: the module's constants).

    Args:
        fill: the run's ``stn_fill``; with ``black`` the hints do not suggest it again.
        lr_scale: the run's ``stn_lr_scale``, to suggest a value below it.
        ndim: 2 for a model of images, 3 for one of volumes (the messages and hints name what fits).

    Examples:
        >>> monitor = Monitor(fill="black")
        >>> row = {"stn_outside_share": 0.01, "stn_outside_samples": 0.0, "stn_reflection_share": 0.3}
        >>> monitor.update({"epoch": 1, **row})
        ['epoch 1: stn mirrors the image: 30% of the samples have det <= 0; try a lower --stn-lr-scale ...']
        >>> monitor.update({"epoch": 2, **row})  # once per condition
        []
    """

    def __init__(self, fill: str | None = None, lr_scale: float | None = None, ndim: int = 2) -> None:
        if ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 (images) or 3 (volumes), got {ndim!r}")
        self.fill, self.lr_scale, self.ndim = fill, lr_scale, ndim
        self.raised: set[tuple[str, str]] = set()
        self.warnings: list[str] = []
        self.epochs_seen = 0

    def update(self, stats: Mapping[str, float]) -> list[str]:
        """Warnings that first hold in ``stats`` (one epoch's statistics; an ``epoch`` key, if
        present, is named in the message)."""
        self.epochs_seen += 1
        epoch = stats.get("epoch")
        new: list[str] = []
        for prefix in prefixes(stats):
            for condition, message in _conditions(prefix, stats, self.epochs_seen, self.fill, self.lr_scale, self.ndim):
                if (prefix, condition) not in self.raised:
                    self.raised.add((prefix, condition))
                    new.append(message if epoch is None else f"epoch {int(epoch)}: {message}")
        self.warnings += new
        return new


def warnings_for(
    rows: Iterable[Mapping[str, float]], fill: str | None = None, lr_scale: float | None = None, ndim: int = 2
) -> list[str]:
    """All warnings a :class:`Monitor` raises over a run's per-epoch rows, in order (``fill``,
    ``lr_scale`` and ``ndim`` as for :class:`Monitor`, e.g. from the run's config and
    :func:`run_ndim`).

    Examples:
        >>> rows = [{"epoch": e, "stn_outside_share": 0.0, "stn_displacement_mean": 0.0} for e in (1, 2, 3)]
        >>> warnings_for(rows)
        ['epoch 3: stn has not moved from the identity after 3 epochs (mean grid displacement 0.0000 < 0.01): ...']
    """
    monitor = Monitor(fill, lr_scale, ndim)
    for row in rows:
        monitor.update(row)
    return monitor.warnings


_COLUMNS = (  # (heading, statistic, with its _std, format)
    ("scale", "scale", True, "{:.2f}"),
    ("aniso", "anisotropy", True, "{:.2f}"),
    ("rot°", "rotation", True, "{:.1f}"),
    ("shear°", "shear", True, "{:.1f}"),
    ("shift", "translation", True, "{:.2f}"),
    ("moved", "displacement", True, "{:.3f}"),
    ("outside", "outside_share", False, "{:.1%}"),
    (f"out>{OUTSIDE_LARGE:.0%}", "outside_samples", False, "{:.0%}"),
    ("mirror", "reflection_share", False, "{:.0%}"),
    ("collapse", "collapse_share", False, "{:.0%}"),
    ("pinned", "pinned_share", False, "{:.0%}"),
    ("offset", "tps_offset_max", False, "{:.3f}"),
    ("bending", "tps_bending", False, "{:.3g}"),
    ("field max", "field_max", False, "{:.3f}"),
    ("folded", "folding_share", False, "{:.1%}"),
    ("origin", "origin", True, "{:.2f}"),
    ("σ", "spread", True, "{:.3f}"),
)


def format_table(rows: Sequence[Mapping[str, float]]) -> str:
    """The statistics of a run as text: one block per transformer, one line per epoch (the
    row's ``epoch`` key, else its position from 1); ``mean±std`` where a spread is kept, ``-``
    where a row lacks a value. Columns that no row holds are left out.

    Examples:
        >>> print(format_table([{"epoch": 1, "stn_scale_mean": 1.2, "stn_scale_std": 0.1, "stn_outside_share": 0.25}]))
        stn
        epoch  scale      outside
            1  1.20±0.10  25.0%
    """
    rows = list(rows)
    names: list[str] = []
    for row in rows:
        names += [p for p in prefixes(row) if p not in names]
    if not names:
        return "no transformer statistics"
    blocks = []
    for prefix in names:
        columns = []
        for heading, stat, spread, fmt in _COLUMNS:
            key = f"{prefix}_{stat}_mean" if spread else f"{prefix}_{stat}"
            if any(key in row for row in rows):
                columns.append((heading, key, f"{prefix}_{stat}_std" if spread else None, fmt))
        per_parameter = sorted({k for row in rows for k in row if k.startswith(f"{prefix}_spread_p")}, key=_index)
        columns += [(f"σ{_index(k)}", k, None, "{:.3f}") for k in per_parameter]
        table = [["epoch", *(c[0] for c in columns)]]
        for i, row in enumerate(rows, 1):
            line = [str(int(row.get("epoch", i)))]
            for _, key, std_key, fmt in columns:
                if key not in row or row[key] != row[key]:
                    line.append("-")
                elif std_key is not None and std_key in row:
                    line.append(f"{fmt.format(row[key])}±{fmt.format(row[std_key])}")
                else:
                    line.append(fmt.format(row[key]))
            table.append(line)
        widths = [max(len(r[j]) for r in table) for j in range(len(table[0]))]
        text = "\n".join("  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in table)
        blocks.append(f"{prefix}\n{text}")
    return "\n\n".join(blocks)


def _index(key: str) -> int:
    """The parameter index of a ``..._spread_p{i}`` column."""
    return int(key.rsplit("_p", 1)[1])


def run_statistics(run: Run) -> tuple[list[dict[str, float]], str]:
    """The per-epoch transformer statistics of a run directory, and where they come from: the
    columns of its ``metrics.csv`` (measured on a fixed set of test images while it trained), or
    for runs that predate them, its snapshots (the few test images kept every epoch). Without
    statistics: ``[]`` and why, a phrase to follow "No transformer statistics: "."""
    rows = run.metrics()
    if any(prefixes(row) for row in rows):
        return rows, "metrics.csv (fixed test images, every epoch)"
    snapshots = run.snapshots()
    if snapshots is None or not snapshots["epochs"]:
        if not rows:
            return [], "the run has no finished epoch yet"
        return [], "its metrics.csv has no statistics columns and it kept no snapshots"
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in snapshots["transform_options"].items()}
    transform = T.get(snapshots["transform"], **options)
    input_size = tuple(snapshots["images"].shape[2:])
    stats_rows = []
    for epoch, params, outputs in zip(snapshots["epochs"], snapshots["params"], snapshots["outputs"], strict=True):
        output_size = tuple(outputs.shape[-len(input_size) :]) if outputs.numel() else input_size
        sets = [params] if params.dim() == 2 else list(params.unbind(1))
        row: dict[str, float] = {"epoch": epoch}
        for i, p in enumerate(sets):
            prefix = "stn" if len(sets) == 1 else f"stn{i + 1}"
            row.update(transformer_stats(transform, p, output_size, input_size, prefix=prefix))
        stats_rows.append(row)
    return stats_rows, f"snapshots.pt ({len(snapshots['images'])} test images, every epoch)"


def run_ndim(run: Run) -> int:
    """2 when the run's model reads images, 3 when it reads volumes: from its snapshots, else the
    input shape of its best (else last) checkpoint; 2 for a run without either."""
    snapshots = run.snapshots()
    if snapshots is not None:
        return snapshots["images"].dim() - 2
    for which in ("best", "last"):
        if run.has_checkpoint(which):
            shape = run.checkpoint(which).get("model_options", {}).get("input_shape", ())
            return 3 if len(shape) == 4 else 2
    return 2
