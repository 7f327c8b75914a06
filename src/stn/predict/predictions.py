"""Predicting image files in batches: what each image is, and where the transformer reads it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from stn import transforms as T
from stn.normalization import Normalizer
from stn.pixels import output_region
from stn.predict import images
from stn.predict.backends import Predictor
from stn.predict.images import ImageError, image_files

__all__ = ["CORNERS", "Prediction", "PredictionBatch", "predict", "regions"]

# The output's corners, normalised (x, y): top-left, top-right, bottom-right, bottom-left.
CORNERS = ((-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0))


@dataclass
class Prediction:
    """One image's prediction: its ``file``, original ``width`` and ``height``, the ``top``
    classes as ``(class, index, probability)`` best first, and with ``boxes`` its ``regions``:
    one quadrilateral per transformer, four ``(x, y)`` corners in pixels of the original image
    (see the module notes).

    Attributes:
        file: the image file, as named or found.
        width: the original image's width, as a viewer shows it.
        height: its height.
        top: ``(class, index, probability)``, best first.
        regions: ``k`` quadrilaterals of four ``(x, y)`` corners, or ``None`` (without ``boxes``).

    Examples:
        >>> p = Prediction("cat.png", 40, 30, [("cat", 0, 0.75), ("dog", 1, 0.25)])
        >>> p.record()
        {'file': 'cat.png', 'width': 40, 'height': 30,
         'top_k': [{'class': 'cat', 'index': 0, 'probability': 0.75},
                   {'class': 'dog', 'index': 1, 'probability': 0.25}]}
    """

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

    Examples:
        >>> images = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
        >>> batch = PredictionBatch([Prediction("a.png", 8, 8, [("dog", 1, 0.75)])], [("b.png", "unreadable")], images)
        >>> len(batch.predictions), batch.skipped[0][0], batch.params is None
        (1, 'b.png', True)
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
        transform: the transformer's family.
        params: ``(N, P)`` or ``(N, k, P)``.
        input_size: ``(H, W)`` the model read (each image was resized to it).
        image_sizes: ``(width, height)`` of each original image.
        align_corners: the transformer's convention: with ``True``, ``±1`` are the centres of the
            corner pixels of the ``(H, W)`` image the model read.

    Returns:
        ``(N, k, 4, 2)`` pixel ``(x, y)``: ``(0, 0)`` the original's top-left corner,
        ``(width, height)`` its bottom-right corner.

    Examples:
        >>> from stn import transforms as T
        >>> half = torch.tensor([[0.5, 0.0, 0.0]])  # attention: the middle half
        >>> regions(T.get("attention"), half, (28, 28), [(200, 100)])  # of a 200 x 100 original
        tensor([[[[ 50.,  25.],
                  [150.,  25.],
                  [150.,  75.],
                  [ 50.,  75.]]]])
    """
    if params.dim() == 2:
        params = params.unsqueeze(1)
    n, k, _ = params.shape
    if len(image_sizes) != n:
        raise ValueError(f"{len(image_sizes)} image sizes for {n} parameter sets")
    h, w = input_size
    extents = output_region(transform, params.reshape(n * k, -1), (h, w), align_corners).view(n, k, 4, 2)
    pixels = extents / extents.new_tensor([w, h])  # as fractions of the image, then of each original
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
        predictor: the model (:func:`~stn.predict.load_predictor`).
        inputs: image files and folders.
        top_k: classes kept per image (at most the number of classes).
        batch_size: images per batch.
        boxes: compute each image's ``regions`` (needs a transformer that reads the image).
        keep_transformed: fill the batches' ``params`` and ``transformed``.
        skip_bad_images: an unreadable image goes in the batch's ``skipped`` instead of raising
            :class:`ImageError`.
        progress: a tqdm bar on stderr (default: when stderr is a terminal).

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> import stn
        >>> from stn.export import export
        >>> from stn.predict import load_predictor
        >>> folder = Path(tempfile.mkdtemp())
        >>> meta = {"classes": [str(d) for d in range(10)], "mean": [0.1307], "std": [0.3081]}
        >>> path = export(stn.models.create("tutorial-mnist"), (1, 28, 28), folder / "m.pt2", metadata=meta)
        >>> predictor = load_predictor(path)
        >>> for i in range(3):
        ...     Image.new("L", (40, 30), color=80 * i).save(folder / f"image-{i}.png")
        >>> batches = list(predict(predictor, [folder], top_k=2, batch_size=2, boxes=True))
        >>> [len(b.predictions) for b in batches], batches[0].predictions[0].file.endswith("image-0.png")
        ([2, 1], True)
        >>> record = batches[0].predictions[0].record()
        >>> (record["width"], record["height"]), len(record["top_k"]), len(record["regions"][0])
        ((40, 30), 2, 4)
    """
    predictor.check_reads_images()
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
        return images.read_image(path, shape)
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
