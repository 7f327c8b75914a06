"""All the pictures of one trained run (what ``stn visualize RUN_DIR`` writes)."""

from __future__ import annotations

import os
from pathlib import Path

from stn.engine.run import Run, load_model
from stn.engine.statistics import run_statistics
from stn.viz.curves import plot_curves
from stn.viz.grids import before_after
from stn.viz.images import save, titled
from stn.viz.learning import write_learning
from stn.viz.outlines import draw_regions, regions_title
from stn.viz.samples import sampled_warps, samples_picture
from stn.viz.statistics import plot_histograms, plot_statistics
from stn.viz.views import TransformerView, from_run

__all__ = ["FILES", "write_figures"]

FILES = {
    "curves": "curves.png",  # loss and accuracy per epoch
    "before_after": "before_after.png",  # test images beside the transformer's outputs (volumes: middle slices)
    "regions": "regions.png",  # the region each image's transformer samples (not drawn for volumes)
    "learning": "learning.gif",  # one frame per epoch
    "stills": "learning.png",  # a few of those frames
    "statistics": "statistics.png",  # the transformers' statistics per epoch (stn inspect's table)
    "histograms": "histograms.png",  # the best checkpoint's family statistics and share outside, per image
    "samples": "samples.png",  # a sampling transformer: each image beside warps drawn for it
}


def write_figures(
    run_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    count: int | None = None,
    data_root: str | os.PathLike | None = None,
    curves: bool = True,
) -> dict[str, Path]:
    """Write a run's pictures into ``out`` (default ``RUN_DIR/figures``) under the names of
    :data:`FILES`, and return ``{key: path}`` of those written.

    Transformer pictures use the best checkpoint on ``count`` test images (default: the run's
    snapshot batch; more are read from the data set, under ``data_root`` if given). A model
    without a transformer gets only its curves; ``curves=False`` skips those. Volumes are drawn
    as their middle slices (:func:`~stn.viz.slices.middle_slices`), and where their transformer
    looks (``regions``) is not drawn.

    Args:
        run_dir: the run directory.
        out: the folder to write into.
        count: test images in the transformer pictures.
        data_root: where the run's data set is read when the snapshots do not hold ``count``
            images.
        curves: write the learning curves.

    Examples:
        >>> import io, os
        >>> from unittest import mock
        >>> from stn.engine import from_recipe, train
        >>> cfg = from_recipe("demo", model="tutorial-mnist", epochs=2, device="cpu", amp="off",
        ...                   dataset_options=dict(train_size=32, test_size=16, canvas=28))  # a tiny run
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> with mock.patch.dict(os.environ, {"STN_CACHE": str(folder)}):  # the drawn glyphs are cached there
        ...     _ = train(cfg, folder / "run", stream=io.StringIO(), progress=False)
        >>> written = write_figures(folder / "run")
        >>> sorted(written)
        ['before_after', 'curves', 'histograms', 'learning', 'regions', 'statistics', 'stills']
        >>> written["regions"].relative_to(folder).as_posix()
        'run/figures/regions.png'
    """
    run = Run.open(run_dir)
    out = Path(out) if out is not None else run.dir / "figures"
    written: dict[str, Path] = {}
    view = from_run(run.dir, count, data_root)  # everything is read before anything is written
    snapshots, gif, stills = run.snapshots(), out / FILES["learning"], out / FILES["stills"]
    if curves:
        written["curves"] = plot_curves([run.dir], out / FILES["curves"])
    if snapshots is not None and write_learning(snapshots, gif, stills):
        written.update(learning=gif, stills=stills)
    if view is not None:
        if view.outputs is not None:
            written["before_after"] = out / FILES["before_after"]
            save(before_after(view), written["before_after"])
        if not view.volumes:  # outlines on volumes are not drawn
            written["regions"] = out / FILES["regions"]
            regions = draw_regions(view.images, view.transform, view.params, view.align_corners)
            save(titled(regions, regions_title(view.k)), written["regions"])
        written.update(_statistics(run, view, out))
        if not view.volumes:
            written.update(_samples(run, view, out))
    return {key: written[key] for key in FILES if key in written}


def _samples(run: Run, view: TransformerView, out: Path, count: int = 6) -> dict[str, Path]:
    """For a sampling transformer (P-STN), the first ``count`` images of the view beside warps
    drawn from the best checkpoint's distribution over θ; nothing for other transformers."""
    model, payload, _ = load_model(run.dir)
    images = view.images[:count]
    warps = sampled_warps(model, images, payload["mean"], payload["std"])
    if warps is None:
        return {}
    path = out / FILES["samples"]
    save(samples_picture(images, warps), path)
    return {"samples": path}


def _statistics(run: Run, view: TransformerView, out: Path) -> dict[str, Path]:
    """The statistics plot over the epochs and the histograms of the best checkpoint's view."""
    written: dict[str, Path] = {}
    rows, _ = run_statistics(run)
    ndim = view.images.dim() - 2
    if rows:
        written["statistics"] = plot_statistics(rows, out / FILES["statistics"], title=run.dir.name, ndim=ndim)
    size = tuple(view.outputs.shape[-ndim:]) if view.outputs is not None else tuple(view.images.shape[2:])
    written["histograms"] = plot_histograms(
        view.transform,
        view.params if view.k > 1 else view.params[:, 0],
        out / FILES["histograms"],
        output_size=size,
        input_size=tuple(view.images.shape[2:]),
        align_corners=view.align_corners,
        title=f"{run.dir.name}: per test {'volume' if view.volumes else 'image'}, best checkpoint",
    )
    return written
