"""Predict with a trained model on image files: a run directory (PyTorch) or an exported
``.onnx`` (ONNX Runtime) or ``.pt2`` (``torch.export``) file.

Each image is read as the run's data were and as a viewer shows it: upright by its EXIF
orientation, 16-bit grey scaled, transparency composited on white, converted to the model's
channels (``L`` or ``RGB``), resized to its input size with the same bilinear filter (all by
:func:`stn.data.formats.decode_image`, as :func:`stn.data.formats.read_image_folder` reads), and
normalised with the run's ``mean`` and ``std``. Files stream through in batches, so
memory does not grow with their number; folders are walked lazily, in sorted order, for the
suffixes in :data:`stn.data.formats.IMAGE_SUFFIXES`.

Regions (``boxes``): where the model's first spatial transformer reads each image, as the
quadrilateral its output's corners ``(-1, -1), (1, -1), (1, 1), (-1, 1)`` (top-left, top-right,
bottom-right, bottom-left) map to under :meth:`~stn.transforms.Transform.transform_points`, in
pixels of the ORIGINAL image as a viewer shows it (upright by its EXIF orientation): ``(0, 0)`` is
its top-left corner and ``(width, height)`` its bottom-right one (pixel ``(i, j)`` covers
``[j, j + 1] x [i, i + 1]``). With ``align_corners=False`` (the library's default) those corners
are the output's outer edges, so the quadrilateral is the whole area the output shows; a
thin-plate spline's or a displacement field's region has curved sides, of which these are the
corners. ``polar`` reads a disk (the annulus between ``min_radius`` and ``max_radius`` around its
predicted origin, every output corner on one ray of it), so its region is the box around that
disk instead: origin ``± max_radius`` along each axis, corners in the same order and pixels (a
square in normalised units: a rectangle in the pixels of a non-square image). Parallel
transformers give one region each; a recurrent (IC-STN) transformer, that of its final parameters.

The ONNX and ``.pt2`` backends read the classes, mean, std, input shape and transformer from the
file's metadata (see :mod:`stn.export`) and import no training code (``stn.engine``, ``stn.models``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stn.predict.backends import Predictor, load_predictor
from stn.predict.images import ImageError, image_files, read_image
from stn.predict.output import SHEET_ROWS, PredictionWriter, table_lines
from stn.predict.predictions import CORNERS, Prediction, PredictionBatch, predict, regions

__all__ = [
    "CORNERS",
    "SHEET_ROWS",
    "ImageError",
    "PredictedFiles",
    "Prediction",
    "PredictionBatch",
    "PredictionWriter",
    "Predictor",
    "image_files",
    "load_predictor",
    "predict",
    "predict_files",
    "read_image",
    "regions",
    "table_lines",
]


def __getattr__(name: str):
    if name == "Summary":  # "summary" is a run's results; kept for one release
        import warnings

        warnings.warn("stn.predict.Summary is now stn.predict.PredictedFiles", DeprecationWarning, stacklevel=2)
        return PredictedFiles
    raise AttributeError(f"module 'stn.predict' has no attribute {name!r}")


@dataclass
class PredictedFiles:
    """What :func:`predict_files` did: images predicted, unreadable images skipped
    ``(file, reason)``, and the files it wrote.

    Attributes:
        count: the images predicted.
        skipped: ``(file, reason)`` of each unreadable image left out.
        written: the files written into the output folder.

    Examples:
        >>> from PIL import Image
        >>> from torch import nn
        >>> from stn.export import export
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2), nn.LogSoftmax(1))
        >>> meta = {"classes": ["cat", "dog"], "mean": [0.5], "std": [0.25]}
        >>> path = export(model, (1, 8, 8), folder / "m.pt2", metadata=meta)
        >>> Image.new("L", (8, 8)).save(folder / "a.png")
        >>> _ = (folder / "b.png").write_text("not an image")
        >>> done = predict_files(load_predictor(path), [folder / "a.png", folder / "b.png"], folder / "out",
        ...                      skip_bad_images=True)
        >>> done.count, Path(done.skipped[0][0]).name, [p.name for p in done.written]
        (1, 'b.png', ['predictions.csv', 'predictions.json'])
    """

    count: int
    skipped: list[tuple[str, str]]
    written: list[Path]


def predict_files(
    predictor: Predictor,
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike | None = None,
    *,
    top_k: int = 5,
    batch_size: int = 64,
    boxes: bool = False,
    save_transformed: bool = False,
    skip_bad_images: bool = False,
    progress: bool | None = None,
    echo: Callable[[str], None] | None = None,
) -> PredictedFiles:
    """:func:`predict` the ``inputs``, give each table line to ``echo``, and write the outputs
    of :class:`PredictionWriter` into ``out`` (none without ``out``; ``boxes`` and
    ``save_transformed`` need it).

    Args:
        predictor: the model (:func:`load_predictor`).
        inputs: image files and folders (see :func:`image_files`).
        out: the folder to write into (``None``: nothing is written).
        top_k: classes kept per image.
        batch_size: images predicted at a time.
        boxes: each image's regions (see :func:`predict`).
        save_transformed: the transformer's outputs and contact sheets (see
            :class:`PredictionWriter`).
        skip_bad_images: leave unreadable images out (listed in the result) instead of raising
            :class:`ImageError`.
        progress: a tqdm bar on stderr (default: when stderr is a terminal).
        echo: called with each line of the table (:func:`table_lines`); ``None``: no table.

    Returns:
        What was done: a :class:`PredictedFiles`.

    Examples:
        >>> import tempfile
        >>> from PIL import Image
        >>> import stn
        >>> from stn.export import export
        >>> folder = Path(tempfile.mkdtemp())
        >>> meta = {"classes": [str(d) for d in range(10)], "mean": [0.1307], "std": [0.3081]}
        >>> path = export(stn.models.create("tutorial-mnist"), (1, 28, 28), folder / "m.pt2", metadata=meta)
        >>> predictor = load_predictor(path)
        >>> Image.new("L", (28, 28)).save(folder / "blank.png")
        >>> done = predict_files(predictor, [folder / "blank.png"], folder / "out", top_k=3, boxes=True)
        >>> done.count, [p.name for p in done.written]
        (1, ['predictions.csv', 'predictions.json'])
    """
    if out is None and (boxes or save_transformed):
        raise ValueError("boxes and transformed images are written to files: give an output folder")
    predictor.check_reads_images()
    writer = PredictionWriter(out, predictor, top_k, save_transformed) if out is not None else None
    count, skipped, width = 0, [], None
    try:
        batches = predict(
            predictor,
            inputs,
            top_k=top_k,
            batch_size=batch_size,
            boxes=boxes,
            keep_transformed=save_transformed,
            skip_bad_images=skip_bad_images,
            progress=progress,
        )
        for batch in batches:
            count += len(batch.predictions)
            skipped += batch.skipped
            if echo is not None and batch.predictions:
                header = width is None
                width = width or min(60, max(4, *(len(p.file) for p in batch.predictions)))
                for line in table_lines(batch, min(top_k, len(predictor.classes)), width, header):
                    echo(line)
            if writer is not None:
                writer.write(batch)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    written: list[Path] = []
    if writer is not None:
        writer.close()
        written = [writer.out / "predictions.csv", writer.out / "predictions.json", *writer.sheets]
    return PredictedFiles(count, skipped, written)
