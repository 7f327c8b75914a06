"""The three ways a trained model runs: PyTorch (a run or checkpoint), ONNX Runtime (``.onnx``) and
``torch.export`` (``.pt2``), behind one :class:`Predictor`. The ONNX and ``.pt2`` backends read the
classes, mean, std, input shape and transformer from the file's metadata (see :mod:`stn.export`)
and import no training code (``stn.engine``, ``stn.models``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stn import transforms as T
from stn.predict.images import _first_line

__all__ = ["Predictor", "load_predictor"]


@dataclass
class Predictor:
    """A model ready to predict: what it expects and :meth:`run`.

    Attributes:
        source: the run's checkpoint or the exported file.
        backend: ``"pytorch"``, ``"onnxruntime"`` or ``"torch.export"``.
        classes: class names, in output order.
        input_shape: ``(C, H, W)`` of the images it reads (``(C, D, H, W)`` for a volume model,
            which predicts no image files: :meth:`check_reads_images`).
        mean: per-channel means of the normalisation ``(x / 255 - mean) / std``.
        std: its per-channel standard deviations.
        tta: whether flip test-time augmentation is part of the prediction.
        transform: the first transformer's family, when it reads the image (else ``None``).
        align_corners: that transformer's sampling convention.
        k: the number of its parameter sets (parallel transformers).

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import stn
        >>> from stn.export import export
        >>> meta = {"classes": [str(d) for d in range(10)], "mean": [0.1307], "std": [0.3081]}
        >>> model = stn.models.create("tutorial-mnist")
        >>> path = export(model, (1, 28, 28), Path(tempfile.mkdtemp()) / "mnist.pt2", metadata=meta)
        >>> predictor = load_predictor(path)
        >>> predictor.backend, predictor.input_shape, predictor.transform.name
        ('torch.export', (1, 28, 28), 'affine')
        >>> output, params, transformed = predictor.run(torch.zeros(2, 1, 28, 28), extras=True)
        >>> tuple(output.shape), tuple(params.shape), tuple(transformed.shape)
        ((2, 10), (2, 1, 6), (2, 1, 28, 28))
    """

    source: Path
    backend: str
    classes: list[str]
    input_shape: tuple[int, ...]
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

    def check_reads_images(self, name: str | os.PathLike | None = None) -> None:
        """``ValueError`` (one line) unless the model reads images ``(C, H, W)``: a volume model
        ``(C, D, H, W)`` cannot predict image files. ``name`` is how the message names the model
        (default: :attr:`source`).

        Examples:
            >>> volumes = Predictor(Path("volumes.pt2"), "torch.export", ["a", "b"], (1, 24, 24, 24), (0.1,), (0.3,))
            >>> volumes.check_reads_images()
            Traceback (most recent call last):
            ...
            ValueError: stn predict reads images; volumes.pt2 is a volume model (1, 24, 24, 24): ...
        """
        if len(self.input_shape) != 3:
            raise ValueError(
                f"stn predict reads images; {name or self.source} is a volume model {tuple(self.input_shape)}: it "
                "classifies volumes (N, C, D, H, W), not image files (stn evaluate tests it on its data set; in "
                "Python, call the model of stn.engine.load_model on volumes)"
            )


def load_predictor(
    target: str | os.PathLike,
    tta: bool | None = None,
    model: str | None = None,
    data_root: str | os.PathLike | None = None,
) -> Predictor:
    """A :class:`Predictor` for a run directory or checkpoint (PyTorch), a ``.onnx`` file (ONNX
    Runtime) or a ``.pt2`` file (``torch.export``).

    Args:
        target: a run directory, a checkpoint, or an exported ``.onnx`` or ``.pt2`` file.
        tta: flip test-time augmentation for a run (default: as the run was evaluated, its
            config's ``flip_tta``); an exported file has it in its graph or not (``ValueError``
            if ``tta`` asks otherwise).
        model: ``target`` is then a plain ``state_dict`` file of this registered model (see
            :func:`stn.engine.run.load_model`), its classes and statistics from its data set.
        data_root: where that data set is read from.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import stn
        >>> from stn.export import export
        >>> meta = {"classes": [str(d) for d in range(10)], "mean": [0.1307], "std": [0.3081]}
        >>> path = Path(tempfile.mkdtemp()) / "m.pt2"
        >>> path = export(stn.models.create("tutorial-mnist"), (1, 28, 28), path, metadata=meta)
        >>> load_predictor(path).classes[:3]
        ['0', '1', '2']
        >>> load_predictor(path, tta=True)
        Traceback (most recent call last):
        ...
        ValueError: ... does not have flip test-time augmentation in its graph: export it again to change that
    """
    path = Path(target)
    if path.suffix == ".onnx":
        predictor = _onnx_predictor(path)
    elif path.suffix == ".pt2":
        predictor = _pt2_predictor(path)
    else:
        return _torch_predictor(path, tta, model, data_root)
    if tta is not None and tta != predictor.tta:
        have = "has" if predictor.tta else "does not have"
        raise ValueError(f"{path} {have} flip test-time augmentation in its graph: export it again to change that")
    return predictor


def _torch_predictor(
    target: Path, tta: bool | None, name: str | None = None, data_root: str | os.PathLike | None = None
) -> Predictor:
    from stn.engine.run import load_model
    from stn.inference import InferenceGraph

    model, payload, path = load_model(target, model=name, data_root=data_root)
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
