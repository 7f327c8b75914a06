"""Where predictions go: the table on standard output, ``predictions.csv`` and ``predictions.json``
(streamed as batches come), and with the transformed images, contact sheets."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from stn.predict.backends import Predictor
from stn.predict.predictions import Prediction, PredictionBatch

__all__ = ["SHEET_ROWS", "PredictionWriter", "table_lines"]

SHEET_ROWS = 16  # images per contact sheet


def table_lines(batch: PredictionBatch, top_k: int, width: int, header: bool = False) -> list[str]:
    """Rows of the stdout table for ``batch``: the file (padded to ``width``), then each of the
    ``top_k`` classes with its probability; with ``header``, the column titles first.

    Args:
        batch: the predictions.
        top_k: the classes each prediction holds.
        width: the file column's width.
        header: begin with the column titles.

    Examples:
        >>> images = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
        >>> batch = PredictionBatch([Prediction("a.png", 8, 8, [("dog", 1, 0.75), ("cat", 0, 0.25)])], [], images)
        >>> for line in table_lines(batch, 2, 8, header=True):
        ...     print(line)
        file      top-1         prob  top-2         prob
        a.png     dog          0.750  cat          0.250
    """
    lines = []
    if header:
        lines.append(f"{'file':<{width}}" + "".join(f"  {f'top-{r + 1}':<12}{'prob':>6}" for r in range(top_k)))
    for p in batch.predictions:
        lines.append(f"{p.file:<{width}}" + "".join(f"  {c:<12}{prob:6.3f}" for c, _, prob in p.top))
    return lines


class PredictionWriter:
    """Writes ``predictions.csv`` and ``predictions.json`` into ``out`` as batches come (each file
    appears, whole, when :meth:`close` renames it into place), and with ``save_transformed``
    each image's transformer output as ``transformed/<n>-<name>.png`` and contact sheets
    ``contact-sheet-<n>.png`` (the input, where the transformer looks, its output;
    :data:`SHEET_ROWS` images per sheet).

    ``predictions.json``: ``{"model", "backend", "classes", "input_shape", "tta", "top_k",
    "predictions": [{"file", "width", "height", "top_k": [{"class", "index", "probability"}],
    "regions"?}], "skipped": [{"file", "error"}], "count", "skipped_count"}``; ``regions`` (with
    ``--boxes``) as :class:`Prediction` describes. ``predictions.csv``: ``file``, then
    ``top<r>_class`` and ``top<r>_probability`` for each rank ``r``.

    Args:
        out: the folder to write into (made if missing).
        predictor: the model the predictions are of (its classes, shape, source).
        top_k: classes per image in the files (at most the number of classes).
        save_transformed: write the transformer outputs and contact sheets (the batches must
            hold ``params`` and ``transformed``).

    Examples:
        >>> import json, torch
        >>> from stn.predict import Predictor
        >>> predictor = Predictor(Path("m.pt2"), "torch.export", ["cat", "dog"], (1, 8, 8), (0.5,), (0.5,))
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> out = folder / "out"
        >>> writer = PredictionWriter(out, predictor, top_k=2)
        >>> images = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
        >>> writer.write(PredictionBatch([Prediction("a.png", 8, 8, [("dog", 1, 0.75), ("cat", 0, 0.25)])], [], images))
        >>> writer.close()
        >>> print((out / "predictions.csv").read_text().strip())
        file,top1_class,top1_probability,top2_class,top2_probability
        a.png,dog,0.75,cat,0.25
        >>> json.loads((out / "predictions.json").read_text())["count"]
        1
    """

    def __init__(self, out: str | os.PathLike, predictor: Predictor, top_k: int, save_transformed: bool = False):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.predictor, self.save_transformed = predictor, save_transformed
        self.top_k = min(top_k, len(predictor.classes))
        self.count, self.skipped = 0, []
        self._rows: list[Any] = []
        self.sheets: list[Path] = []
        self._csv_tmp, self._csv_file = self._temp("predictions.csv", newline="")
        self._csv = csv.writer(self._csv_file)
        ranks = range(1, self.top_k + 1)
        self._csv.writerow(["file", *[f"top{r}_{what}" for r in ranks for what in ("class", "probability")]])
        self._json_tmp, self._json = self._temp("predictions.json")
        head = {
            "model": str(predictor.source),
            "backend": predictor.backend,
            "classes": predictor.classes,
            "input_shape": list(predictor.input_shape),
            "tta": predictor.tta,
            "top_k": self.top_k,
        }
        self._json.write(json.dumps(head, indent=1)[:-2] + ',\n "predictions": [')

    def _temp(self, name: str, newline: str | None = None) -> tuple[Path, io.TextIOWrapper]:
        fd, tmp = tempfile.mkstemp(dir=self.out, prefix=f".{name}.", suffix=".tmp")
        return Path(tmp), open(fd, "w", encoding="utf-8", newline=newline)

    def write(self, batch: PredictionBatch) -> None:
        """Add a batch's predictions (and pictures) to the outputs."""
        for i, p in enumerate(batch.predictions):
            self._csv.writerow([p.file, *[v for c, _, prob in p.top for v in (c, f"{prob:.6g}")]])
            self._json.write(("\n  " if self.count == 0 else ",\n  ") + json.dumps(p.record()))
            self.count += 1
            if self.save_transformed:
                self._picture(batch, i, p)
        self.skipped += batch.skipped

    def _picture(self, batch: PredictionBatch, i: int, p: Prediction) -> None:
        from torchvision.transforms.functional import to_pil_image

        from stn.viz.images import save

        stem = f"{self.count:05d}-{Path(p.file).stem}"
        crops = batch.transformed[i]
        for j, crop in enumerate(crops):
            suffix = "" if len(crops) == 1 else f"-t{j + 1}"
            save(to_pil_image(crop), self.out / "transformed" / f"{stem}{suffix}.png")
        self._rows.append((batch.images[i], batch.params[i], crops, f"{Path(p.file).name}: {p.top[0][0]}"))
        if len(self._rows) == SHEET_ROWS:
            self._sheet()

    def _sheet(self) -> None:
        from stn.viz.images import cell_scale, hstack, image_grid, save, titled, vstack
        from stn.viz.outlines import draw_regions

        rows = []
        for image, params, crops, caption in self._rows:
            h, w = image.shape[-2:]
            scale = cell_scale((h, w))
            crop_scale = max(1, round(scale * max(h, w) / max(crops.shape[-2:])))
            where = draw_regions(image[None], self.predictor.transform, params[None], self.predictor.align_corners)
            cells = [image_grid(image[None], scale=scale), where, image_grid(crops, nrow=len(crops), scale=crop_scale)]
            rows.append(titled(hstack(cells), caption))
        title = "Input | where it looks | transformed"
        path = self.out / f"contact-sheet-{len(self.sheets) + 1:03d}.png"
        save(titled(vstack(rows), title, size=16), path)
        self.sheets.append(path)
        self._rows = []

    def close(self) -> None:
        """Finish the files and move them into place."""
        if self._rows:
            self._sheet()
        skipped = [{"file": f, "error": e} for f, e in self.skipped]
        tail = {"skipped": skipped, "count": self.count, "skipped_count": len(skipped)}
        self._json.write("\n ],\n" + json.dumps(tail, indent=1)[2:])
        for tmp, handle, name in (
            (self._csv_tmp, self._csv_file, "predictions.csv"),
            (self._json_tmp, self._json, "predictions.json"),
        ):
            handle.close()
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.out / name)

    def abort(self) -> None:
        """Drop the unfinished files."""
        for tmp, handle in ((self._csv_tmp, self._csv_file), (self._json_tmp, self._json)):
            handle.close()
            tmp.unlink(missing_ok=True)
