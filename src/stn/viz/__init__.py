"""Pictures of what a spatial transformer learned, and run reports.

* :mod:`~stn.viz.views`: what a transformer did to a batch (:class:`TransformerView`), from a
  model, a run's best checkpoint or each epoch of its ``snapshots.pt``.
* :mod:`~stn.viz.grids`: test images beside the transformer's outputs.
* :mod:`~stn.viz.slices`: volumes as pictures, by their middle slices.
* :mod:`~stn.viz.outlines`: the region each image's transformer samples, drawn on it.
* :mod:`~stn.viz.learning`: one frame per epoch, as a GIF and a strip of stills.
* :mod:`~stn.viz.samples`: a probabilistic transformer's sampled warps of each image.
* :mod:`~stn.viz.curves`: loss and accuracy per epoch of one or several runs.
* :mod:`~stn.viz.statistics`: the transformer's statistics over the epochs, and their histograms.
* :mod:`~stn.viz.figures`: all of those for a run (``stn visualize``).
* :mod:`~stn.viz.report`: ``report.md`` and ``report.html`` (``stn report``).
* :mod:`~stn.viz.tensorboard`: a run in TensorBoard (``stn train --tensorboard``).

Everything renders headless (Pillow, and matplotlib's Agg canvas for the curves).
"""

from __future__ import annotations

import importlib
from typing import Any

# Submodules load on first use (PEP 562), so that the drawing modules (images, outlines) can be
# used without the run-reading ones (views, figures, report), which import the training code.
_WHERE = {
    "plot_curves": "curves",
    "read_metrics": "curves",
    "write_figures": "figures",
    "before_after": "grids",
    "denormalize": "images",
    "image_grid": "images",
    "normalize": "images",
    "learning_frames": "learning",
    "middle_slice": "slices",
    "middle_slices": "slices",
    "save_gif": "learning",
    "write_learning": "learning",
    "draw_regions": "outlines",
    "region_lines": "outlines",
    "write_report": "report",
    "sampled_warps": "samples",
    "samples_picture": "samples",
    "TransformerView": "views",
    "from_run": "views",
    "load_snapshots": "views",
    "TensorBoard": "tensorboard",
    "plot_statistics": "statistics",
    "snapshot_views": "views",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'stn.viz' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"stn.viz.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "TensorBoard",
    "TransformerView",
    "before_after",
    "denormalize",
    "draw_regions",
    "from_run",
    "image_grid",
    "learning_frames",
    "load_snapshots",
    "middle_slice",
    "middle_slices",
    "normalize",
    "plot_curves",
    "plot_statistics",
    "read_metrics",
    "region_lines",
    "sampled_warps",
    "samples_picture",
    "save_gif",
    "snapshot_views",
    "write_figures",
    "write_learning",
    "write_report",
]
