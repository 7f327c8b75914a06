"""Pictures of what a spatial transformer learned, and run reports.

* :mod:`~stn.viz.views`: what a transformer did to a batch (:class:`TransformerView`), from a
  model, a run's best checkpoint or each epoch of its ``snapshots.pt``.
* :mod:`~stn.viz.grids`: test images beside the transformer's outputs.
* :mod:`~stn.viz.outlines`: the region each image's transformer samples, drawn on it.
* :mod:`~stn.viz.learning`: one frame per epoch, as a GIF and a strip of stills.
* :mod:`~stn.viz.curves`: loss and accuracy per epoch of one or several runs.
* :mod:`~stn.viz.figures`: all of those for a run (``stn visualize``).
* :mod:`~stn.viz.report`: ``report.md`` and ``report.html`` (``stn report``).

Everything renders headless (Pillow, and matplotlib's Agg canvas for the curves).
"""

from stn.viz.curves import plot_curves, read_metrics
from stn.viz.figures import write_figures
from stn.viz.grids import before_after
from stn.viz.images import denormalize, image_grid, normalize
from stn.viz.learning import learning_frames, save_gif, write_learning
from stn.viz.outlines import draw_regions, region_lines, to_pixels
from stn.viz.report import write_report
from stn.viz.views import TransformerView, from_run, load_snapshots, look, snapshot_views

__all__ = [
    "TransformerView",
    "before_after",
    "denormalize",
    "draw_regions",
    "from_run",
    "image_grid",
    "learning_frames",
    "load_snapshots",
    "look",
    "normalize",
    "plot_curves",
    "read_metrics",
    "region_lines",
    "save_gif",
    "snapshot_views",
    "to_pixels",
    "write_figures",
    "write_learning",
    "write_report",
]
