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

import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from stn import transforms as T
from stn.data.formats import IMAGE_SUFFIXES
from stn.normalization import Normalizer

__all__ = [
    "CORNERS",
    "ImageError",
    "Prediction",
    "PredictionBatch",
    "PredictionWriter",
    "Predictor",
    "Summary",
    "image_files",
    "load_predictor",
    "predict",
    "predict_files",
    "read_image",
    "regions",
    "table_lines",
]

# The output's corners, normalised (x, y): top-left, top-right, bottom-right, bottom-left.
CORNERS = ((-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0))
SHEET_ROWS = 16  # images per contact sheet


class ImageError(ValueError):
    """An image file cannot be read or converted; the message names the file and the reason."""


# ------------------------------------------------------------------------------- reading images
def image_files(inputs: Sequence[str | os.PathLike]) -> Iterator[Path]:
    """The files named in ``inputs``, folders expanded (recursively, sorted, lazily) to the image
    files under them. A file named directly is taken whatever its suffix. ``ValueError`` for a
    path that does not exist (checked for all of them before the first is yielded)."""
    paths = [Path(p) for p in inputs]
    for path in paths:
        if not path.exists():
            raise ValueError(f"no such file or folder: {path}")
    for path in paths:
        yield from _walk(path) if path.is_dir() else (path,)


def _walk(folder: Path) -> Iterator[Path]:
    entries = sorted(os.scandir(folder), key=lambda e: e.name)
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _walk(Path(entry.path))
        elif entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES):
            yield Path(entry.path)


def read_image(path: str | os.PathLike, input_shape: Sequence[int]) -> tuple[np.ndarray, tuple[int, int]]:
    """The image at ``path`` as the model reads it: uint8 ``(C, H, W)`` for ``input_shape =
    (C, H, W)`` (``C`` 1: Pillow's ``L``; 3: ``RGB``; bilinear resize), and its original ``(width,
    height)`` as a viewer shows it, the frame of ``boxes``. Decoded exactly as folder data sets
    are, by :func:`stn.data.formats.decode_image`: EXIF orientation applied (a rotated phone photo
    is upright, its width and height those shown), 16-bit grey scaled by 255/65535 and float grey
    read as 0..1 (not clipped), transparency composited on white.
    ``ImageError`` naming the file if it is not an image, is truncated or corrupt, or has a mode
    that cannot be converted."""
    from stn.data.formats import UnreadableImage, decode_image, strict_pillow

    channels, height, width = (int(v) for v in input_shape)
    try:
        with strict_pillow():
            array, size = decode_image(Path(path), channels, (height, width))
    except UnreadableImage as err:
        raise ImageError(str(err)) from None
    array = array[None] if channels == 1 else array.transpose(2, 0, 1)
    return np.ascontiguousarray(array), size


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# ------------------------------------------------------------------------------------ backends
@dataclass
class Predictor:
    """A model ready to predict: what it expects and :meth:`run`.

    Attributes:
        source: the run's checkpoint or the exported file.
        backend: ``"pytorch"``, ``"onnxruntime"`` or ``"torch.export"``.
        classes: class names, in output order.
        input_shape: ``(C, H, W)`` of the images it reads.
        mean, std: per-channel statistics of the normalisation ``(x / 255 - mean) / std``.
        tta: whether flip test-time augmentation is part of the prediction.
        transform, align_corners, k: the first transformer's family, sampling convention and
            count, when it reads the image (else ``transform`` is ``None``).
    """

    source: Path
    backend: str
    classes: list[str]
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    tta: bool = False
    transform: T.Transform | None = None
    align_corners: bool = False
    k: int = 1
    _run: Callable[[Tensor, tuple[str, ...]], tuple[Tensor, ...]] | None = field(default=None, repr=False)

    def run(self, x: Tensor, extras: bool = False) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Normalised float32 images ``(N, C, H, W)`` -> log-probabilities ``(N, classes)`` and,
        with ``extras`` (needs a transformer), ``params`` ``(N, k, P)`` and ``transformed``
        ``(N, k*C, h, w)`` (normalised), else ``None`` for both."""
        if extras and self.transform is None:
            raise ValueError(f"{self.source} has no spatial transformer that reads the image")
        names = ("output", "params", "transformed") if extras else ("output",)
        out = self._run(x, names)
        return (out[0], out[1], out[2]) if extras else (out[0], None, None)


def load_predictor(target: str | os.PathLike, tta: bool | None = None) -> Predictor:
    """A :class:`Predictor` for a run directory or checkpoint (PyTorch), a ``.onnx`` file (ONNX
    Runtime) or a ``.pt2`` file (``torch.export``).

    Args:
        tta: flip test-time augmentation for a run (default: as the run was evaluated, its
            config's ``flip_tta``); an exported file has it in its graph or not (``ValueError``
            if ``tta`` asks otherwise).
    """
    path = Path(target)
    if path.suffix == ".onnx":
        predictor = _onnx_predictor(path)
    elif path.suffix == ".pt2":
        predictor = _pt2_predictor(path)
    else:
        return _torch_predictor(path, tta)
    if tta is not None and tta != predictor.tta:
        have = "has" if predictor.tta else "does not have"
        raise ValueError(f"{path} {have} flip test-time augmentation in its graph: export it again to change that")
    return predictor


def _torch_predictor(target: Path, tta: bool | None) -> Predictor:
    from stn.engine.run import load_model
    from stn.inference import InferenceGraph

    model, payload, path = load_model(target)
    shape = tuple(int(v) for v in payload["model_options"]["input_shape"])
    if tta is None:
        tta = bool(payload.get("config", {}).get("flip_tta", False))
    graph = InferenceGraph(model, shape, tta).eval()

    @torch.no_grad()
    def run(x: Tensor, names: tuple[str, ...]) -> tuple[Tensor, ...]:
        return graph(x)

    st = graph.transformer if graph.reads_image else None
    return Predictor(
        path,
        "pytorch",
        list(payload["classes"]),
        shape,
        tuple(payload["mean"]),
        tuple(payload["std"]),
        tta,
        st.transform if st is not None else None,
        bool(st.align_corners) if st is not None else False,
        graph.k,
        run,
    )


def _from_metadata(path: Path, backend: str, meta: dict[str, Any], run: Callable) -> Predictor:
    shape = meta.get("input_shape") or (meta.get("model_options") or {}).get("input_shape")
    missing = [key for key, value in (("classes", meta.get("classes")), ("input_shape", shape)) if not value]
    missing += [key for key in ("mean", "std") if key not in meta]
    if missing:
        raise ValueError(f"{path} lacks the metadata {', '.join(missing)}: export it with stn export")
    st = meta.get("transformer")
    transform = None
    if st and "params" in meta.get("outputs", []):
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in st.get("options", {}).items()}
        transform = T.get(st["transform"], **options)
    return Predictor(
        path,
        backend,
        [str(c) for c in meta["classes"]],
        tuple(int(v) for v in shape),
        tuple(float(v) for v in meta["mean"]),
        tuple(float(v) for v in meta["std"]),
        bool(meta.get("tta", False)),
        transform,
        bool(st.get("align_corners", False)) if st else False,
        int(st.get("k", 1)) if st else 1,
        run,
    )


def _onnx_predictor(path: Path) -> Predictor:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ValueError("predicting from an ONNX file needs onnxruntime: pip install 'torch-stn[export]'") from None
    if not path.is_file():
        raise ValueError(f"no such ONNX file: {path}")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:
        raise ValueError(f"{path} is not a readable ONNX file: {_first_line(err)}") from None
    meta = {}
    for key, value in session.get_modelmeta().custom_metadata_map.items():
        try:
            meta[key] = json.loads(value)
        except ValueError:
            meta[key] = value
    input_name = session.get_inputs()[0].name

    def run(x: Tensor, names: tuple[str, ...]) -> tuple[Tensor, ...]:
        outputs = session.run(list(names), {input_name: x.detach().float().cpu().numpy()})
        return tuple(torch.from_numpy(o) for o in outputs)

    return _from_metadata(path, "onnxruntime", meta, run)


def _pt2_predictor(path: Path) -> Predictor:
    from stn.export import load_pt2

    program, meta = load_pt2(path)
    module = program.module()
    outputs = list(meta.get("outputs", ["output"]))

    @torch.no_grad()
    def run(x: Tensor, names: tuple[str, ...]) -> tuple[Tensor, ...]:
        out = module(x.detach().float().cpu())
        return tuple(out[outputs.index(name)] for name in names)

    return _from_metadata(path, "torch.export", meta, run)


# ----------------------------------------------------------------------------------- predicting
@dataclass
class Prediction:
    """One image's prediction: its ``file``, original ``width`` and ``height``, the ``top``
    classes as ``(class, index, probability)`` best first, and with ``boxes`` its ``regions``:
    one quadrilateral per transformer, four ``(x, y)`` corners in pixels of the original image
    (see the module notes)."""

    file: str
    width: int
    height: int
    top: list[tuple[str, int, float]]
    regions: list[list[tuple[float, float]]] | None = None

    def record(self) -> dict[str, Any]:
        """As a JSON-ready dict."""
        out: dict[str, Any] = {
            "file": self.file,
            "width": self.width,
            "height": self.height,
            "top_k": [{"class": c, "index": i, "probability": p} for c, i, p in self.top],
        }
        if self.regions is not None:
            out["regions"] = [[list(p) for p in quad] for quad in self.regions]
        return out


@dataclass
class PredictionBatch:
    """A batch of predictions, with what was read and made for them.

    Attributes:
        predictions: one per readable image, in input order.
        skipped: ``(file, reason)`` of each unreadable image (only with ``skip_bad_images``).
        images: uint8 ``(N, C, H, W)``, as the model read them.
        params: ``(N, k, P)`` transformer parameters, or ``None``.
        transformed: uint8 ``(N, k, C, h, w)`` transformer outputs de-normalised, or ``None``.
    """

    predictions: list[Prediction]
    skipped: list[tuple[str, str]]
    images: Tensor
    params: Tensor | None = None
    transformed: Tensor | None = None


def regions(
    transform: T.Transform,
    params: Tensor,
    input_size: Sequence[int],
    image_sizes: Sequence[Sequence[int]],
    align_corners: bool = False,
) -> Tensor:
    """Where each transformer reads each image: the output's :data:`CORNERS` mapped through
    ``transform`` (``polar``: the box around the disk it reads; see the module notes), in pixels
    of the original images.

    Args:
        params: ``(N, P)`` or ``(N, k, P)``.
        input_size: ``(H, W)`` the model read (each image was resized to it).
        image_sizes: ``(width, height)`` of each original image.
        align_corners: the transformer's convention: with ``True``, ``±1`` are the centres of the
            corner pixels of the ``(H, W)`` image the model read.

    Returns:
        ``(N, k, 4, 2)`` pixel ``(x, y)``: ``(0, 0)`` the original's top-left corner,
        ``(width, height)`` its bottom-right corner.
    """
    if params.dim() == 2:
        params = params.unsqueeze(1)
    n, k, _ = params.shape
    if len(image_sizes) != n:
        raise ValueError(f"{len(image_sizes)} image sizes for {n} parameter sets")
    corners = torch.tensor(CORNERS, dtype=params.dtype).expand(n * k, 4, 2)
    if isinstance(transform, T.Polar):
        origin = transform.check_params(params.reshape(n * k, -1))
        points = (origin[:, None, :] + transform.max_radius * corners).view(n, k, 4, 2)
    else:
        points = transform.transform_points(params.reshape(n * k, -1), corners).view(n, k, 4, 2)
    h, w = input_size
    if align_corners:  # pixels of the (H, W) image, then scaled to the original
        pixels = (points + 1) / 2 * points.new_tensor([w - 1, h - 1]) + 0.5
        pixels = pixels / points.new_tensor([w, h])
    else:
        pixels = (points + 1) / 2
    sizes = torch.tensor([list(s) for s in image_sizes], dtype=params.dtype).view(n, 1, 1, 2)
    return pixels * sizes


def predict(
    predictor: Predictor,
    inputs: Sequence[str | os.PathLike],
    *,
    top_k: int = 5,
    batch_size: int = 64,
    boxes: bool = False,
    keep_transformed: bool = False,
    skip_bad_images: bool = False,
    progress: bool | None = None,
) -> Iterator[PredictionBatch]:
    """Predict the images in ``inputs`` (files and folders, see :func:`image_files`) in batches
    of ``batch_size``, yielding one :class:`PredictionBatch` per batch.

    Args:
        top_k: classes kept per image (at most the number of classes).
        boxes: compute each image's ``regions`` (needs a transformer that reads the image).
        keep_transformed: fill the batches' ``params`` and ``transformed``.
        skip_bad_images: an unreadable image goes in the batch's ``skipped`` instead of raising
            :class:`ImageError`.
        progress: a tqdm bar on stderr (default: when stderr is a terminal).
    """
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive int, got {top_k!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    extras = boxes or keep_transformed
    if extras and predictor.transform is None:
        what = "--boxes" if boxes else "the transformed images"
        raise ValueError(f"{predictor.source} has no spatial transformer that reads the image: no {what} to give")
    top_k = min(top_k, len(predictor.classes))
    files = image_files(inputs)
    if progress is None:
        progress = sys.stderr.isatty()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(1 for _ in image_files(inputs)), unit="img", file=sys.stderr, dynamic_ncols=True)
    shape = predictor.input_shape
    try:
        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            for chunk in _chunks(files, batch_size):
                read = list(pool.map(lambda p: _try_read(p, shape), chunk))
                skipped = [(str(p), str(r)) for p, r in zip(chunk, read, strict=True) if isinstance(r, ImageError)]
                if skipped and not skip_bad_images:
                    raise ImageError(skipped[0][1])
                good = [(p, r) for p, r in zip(chunk, read, strict=True) if not isinstance(r, ImageError)]
                if bar is not None:
                    bar.update(len(chunk))
                if not good:
                    yield PredictionBatch([], skipped, torch.empty(0, *shape, dtype=torch.uint8))
                    continue
                yield _predict_batch(predictor, good, skipped, top_k, boxes, keep_transformed)
    finally:
        if bar is not None:
            bar.close()


def _predict_batch(
    predictor: Predictor,
    good: list[tuple[Path, tuple[np.ndarray, tuple[int, int]]]],
    skipped: list[tuple[str, str]],
    top_k: int,
    boxes: bool,
    keep_transformed: bool,
) -> PredictionBatch:
    """One batch of read images ``(path, (uint8 (C, H, W), original (w, h)))`` through the predictor."""
    normalizer = Normalizer(predictor.mean, predictor.std)
    images = torch.from_numpy(np.stack([r[0] for _, r in good]))
    sizes = [r[1] for _, r in good]
    output, params, transformed = predictor.run(normalizer(images), boxes or keep_transformed)
    probs, index = torch.softmax(output.float(), 1).topk(top_k, 1)
    quads = None
    if boxes:
        shape = predictor.input_shape
        quads = regions(predictor.transform, params.double(), shape[1:], sizes, predictor.align_corners)
    predictions = []
    for i, (path, _) in enumerate(good):
        ranked = zip(index[i].tolist(), probs[i].tolist(), strict=True)
        top = [(predictor.classes[c], c, float(p)) for c, p in ranked]
        quad = None if quads is None else [[tuple(map(float, p)) for p in q] for q in quads[i].tolist()]
        predictions.append(Prediction(str(path), sizes[i][0], sizes[i][1], top, quad))
    batch = PredictionBatch(predictions, skipped, images)
    if keep_transformed:
        n, c = images.shape[:2]
        pictures = transformed.reshape(n * predictor.k, c, *transformed.shape[-2:])
        batch.params = params.float()
        batch.transformed = normalizer.invert(pictures).view(n, predictor.k, c, *transformed.shape[-2:])
    return batch


def _try_read(path: Path, shape: Sequence[int]) -> tuple[np.ndarray, tuple[int, int]] | ImageError:
    try:
        return read_image(path, shape)
    except ImageError as err:
        return err


def _chunks(items: Iterable[Path], size: int) -> Iterator[list[Path]]:
    chunk: list[Path] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -------------------------------------------------------------------------------------- output
def table_lines(batch: PredictionBatch, top_k: int, width: int, header: bool = False) -> list[str]:
    """Rows of the stdout table for ``batch``: the file (padded to ``width``), then each of the
    ``top_k`` classes with its probability; with ``header``, the column titles first."""
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


@dataclass
class Summary:
    """What :func:`predict_files` did: images predicted, unreadable images skipped
    ``(file, reason)``, and the files it wrote."""

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
) -> Summary:
    """:func:`predict` the ``inputs``, give each table line to ``echo``, and write the outputs
    of :class:`PredictionWriter` into ``out`` (none without ``out``; ``boxes`` and
    ``save_transformed`` need it)."""
    if out is None and (boxes or save_transformed):
        raise ValueError("boxes and transformed images are written to files: give an output folder")
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
    return Summary(count, skipped, written)
