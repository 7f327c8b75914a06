"""Export of a model and its spatial transformers, ONNX or ``torch.export``, checked against PyTorch.

The exported graph is the model as :class:`stn.inference.InferenceGraph` runs it: it takes float32
images ``(N, C, H, W)`` normalised as in training (``(pixel / 255 - mean) / std``), with the batch
size ``N`` free, and returns ``output``, the ``(N, classes)`` log-probabilities (with ``tta``,
those of the mean probabilities of each image and its mirror image), then, when the first
transformer reads the image, ``params`` ``(N, k, P)`` and ``transformed`` ``(N, k*C, h, w)``.

Metadata (ONNX: the file's ``metadata_props``, strings, JSON for anything else; ``.pt2``: the
archive's extra file ``stn-metadata.json``) holds what the caller passes (``stn export``: the
classes, mean, std, model and its options), the ``input_shape``, the ``outputs``, ``tta``, the
``transformer`` (family, options, ``align_corners``, ``k``) and, once :func:`check` has run, the
``parity`` report (the largest absolute difference from PyTorch on random inputs).

ONNX sampling is ``GridSample`` (opset 16 and later), or two ``MatMul`` for the axis-aligned
families (translation, attention: see :mod:`stn.sampling`), so the transformer runs wherever the
model does. Volume models (input ``(N, C, D, H, W)``, a volume family such as ``affine3d``) need
opset 20 or later, where ``GridSample`` takes 5-D inputs (:data:`VOLUME_OPSET`, their default);
ONNX Runtime 1.32 runs them at every opset up to the newest ``onnx`` defines, and ``.pt2`` needs
no opset at all. Needs the ``export`` extra (``pip install 'torch-stn[export]'``: onnx, onnxscript and, to
check the file, onnxruntime); ``.pt2`` needs only torch.
"""

from __future__ import annotations

import importlib
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from stn.files import write_atomic
from stn.inference import InferenceGraph

__all__ = [
    "FORMATS",
    "OPSET",
    "PT2_METADATA",
    "VOLUME_OPSET",
    "ExportError",
    "check",
    "default_opset",
    "export",
    "export_onnx",
    "export_pt2",
    "load_pt2",
    "newest_opset",
    "onnx_difference",
    "pt2_difference",
    "read_metadata",
]

OPSET = 18
MIN_OPSET = 16  # GridSample
VOLUME_OPSET = 20  # GridSample on 5-D inputs
EXPORTER_OPSET = 18  # what torch.onnx writes natively; others are converted from it
FORMATS = ("onnx", "pt2")
PT2_METADATA = "stn-metadata.json"


class ExportError(ValueError):
    """The export cannot run: a missing package or a bad argument.

    Examples:
        >>> export(torch.nn.Identity(), (1, 8, 8), "model.bin", format="zip")
        Traceback (most recent call last):
        ...
        stn.export.ExportError: unknown export format 'zip'; choose one of: onnx, pt2
    """


def _require(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ExportError(f"ONNX export needs the {name} package: pip install 'torch-stn[export]'") from None


def newest_opset() -> int:
    """The newest opset the installed ``onnx`` defines, which the exporter converts to (ONNX
    Runtime's support is checked by the tests, which run every family at this opset).

    Examples:
        >>> import pytest
        >>> _ = pytest.importorskip("onnx")
        >>> newest_opset() >= MIN_OPSET
        True
    """
    return int(_require("onnx").defs.onnx_opset_version())


@contextmanager
def _on_cpu_in_eval(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` on the CPU in eval mode, without gradients; its device and mode restored after."""
    device, training = next(model.parameters()).device, model.training
    try:
        with torch.no_grad():
            yield model.cpu().eval()
    finally:
        model.to(device).train(training)


@contextmanager
def _graph(model: nn.Module, input_shape: tuple[int, ...], tta: bool) -> Iterator[InferenceGraph]:
    """The :class:`InferenceGraph` of ``model`` on the CPU in eval mode; device and mode restored after."""
    _check_shape(input_shape)
    with _on_cpu_in_eval(model):
        yield InferenceGraph(model, input_shape, tta).eval()


def _check_shape(input_shape: tuple[int, ...]) -> None:
    if len(input_shape) not in (3, 4) or any(not isinstance(n, int) or n < 1 for n in input_shape):
        raise ExportError(
            f"input_shape must be three positive ints (C, H, W), or four (C, D, H, W) for volumes, got "
            f"{tuple(input_shape)}"
        )


def default_opset(input_shape: tuple[int, ...]) -> int:
    """:data:`OPSET` for images ``(C, H, W)``, :data:`VOLUME_OPSET` for volumes ``(C, D, H, W)``.

    Args:
        input_shape: ``(C, H, W)`` of one image or ``(C, D, H, W)`` of one volume.

    Examples:
        >>> default_opset((1, 28, 28)), default_opset((1, 16, 16, 16))
        (18, 20)
    """
    return VOLUME_OPSET if len(input_shape) == 4 else OPSET


def _metadata(graph: InferenceGraph, metadata: dict[str, Any] | None) -> dict[str, Any]:
    return {**(metadata or {}), "input_shape": list(graph.input_shape), **graph.metadata()}


def export_onnx(
    model: nn.Module,
    input_shape: tuple[int, ...],
    path: str | os.PathLike,
    *,
    metadata: dict[str, Any] | None = None,
    opset: int | None = None,
    tta: bool = False,
) -> Path:
    """Write ``model`` as an ONNX file at ``path`` (atomically) and return the path.

    Args:
        model: takes ``(N, *input_shape)`` float32 images; exported on the CPU in eval mode, its
            device and mode restored.
        input_shape: ``(C, H, W)`` of one image, or ``(C, D, H, W)`` of one volume.
        path: the ``.onnx`` file to write.
        metadata: stored in the file's ``metadata_props`` (strings as they are, others as JSON),
            beside what the module notes list.
        opset: ONNX opset version (16 or later: ``GridSample``; 20 or later for volumes; at most
            :func:`newest_opset`); default :func:`default_opset`.
        tta: flip test-time augmentation inside the graph.

    Examples:
        >>> import pytest, tempfile
        >>> onnx = pytest.importorskip("onnx")  # the export extra
        >>> from torch import nn
        >>> import stn
        >>> st = stn.SpatialTransformer(nn.Flatten(), "affine", in_features=64)
        >>> model = nn.Sequential(st, nn.Flatten(), nn.Linear(64, 3), nn.LogSoftmax(1))
        >>> path = export_onnx(model, (1, 8, 8), Path(tempfile.mkdtemp()) / "tiny.onnx", opset=16)
        >>> "GridSample" in {node.op_type for node in onnx.load(str(path)).graph.node}
        True
        >>> onnx_difference(path, model, torch.rand(4, 1, 8, 8)) < 1e-5
        True
    """
    _require("onnxscript")
    onnx = _require("onnx")
    _check_shape(input_shape)
    opset = default_opset(input_shape) if opset is None else opset
    if opset < MIN_OPSET:
        raise ExportError(f"opset must be {MIN_OPSET} or later (GridSample), got {opset}")
    if len(input_shape) == 4 and opset < VOLUME_OPSET:
        raise ExportError(f"volumes need opset {VOLUME_OPSET} or later (GridSample on 5-D inputs), got {opset}")
    if opset > newest_opset():
        raise ExportError(f"opset {opset} is newer than the installed onnx knows (at most {newest_opset()})")
    with _graph(model, input_shape, tta) as graph:
        # The graph's eager probe call has run: the transforms cache what depends only on sizes
        # (a TPS's solved system, its grid weights), so the export sees those as constants.
        batch = torch.export.Dim("batch", min=1)
        program = torch.onnx.export(
            graph,
            (torch.randn(2, *input_shape),),
            input_names=["images"],
            output_names=list(graph.output_names),
            dynamic_shapes=({0: batch},),
            opset_version=max(opset, EXPORTER_OPSET),
            dynamo=True,
            verbose=False,
        )
        props = _metadata(graph, metadata)
    proto = program.model_proto
    if opset < EXPORTER_OPSET:
        # The exporter's own down-conversion runs before its optimisations and fails on ops
        # (Pad) that the optimised graph no longer holds; convert that graph instead.
        try:
            proto = _require("onnx.version_converter").convert_version(proto, opset)
        except Exception as err:
            raise ExportError(f"cannot convert the graph to opset {opset}: {str(err).splitlines()[0]}") from None
    written = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if written != opset:
        raise ExportError(f"the exporter could not write opset {opset} (it wrote {written})")
    _set_onnx_metadata(onnx, proto, props)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: f.write(proto.SerializeToString()))
    return path


def _set_onnx_metadata(onnx: ModuleType, proto: Any, metadata: dict[str, Any]) -> None:
    props = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    onnx.helper.set_model_props(proto, props)


def export_pt2(
    model: nn.Module,
    input_shape: tuple[int, ...],
    path: str | os.PathLike,
    *,
    metadata: dict[str, Any] | None = None,
    tta: bool = False,
) -> Path:
    """Write ``model`` as a ``torch.export`` program (``torch.export.save``) at ``path``,
    atomically, batch size free; ``metadata`` as for :func:`export_onnx`. Read it back with
    :func:`load_pt2`.

    Args:
        model: takes ``(N, *input_shape)`` float32 images; exported on the CPU in eval mode, its
            device and mode restored.
        input_shape: ``(C, H, W)`` of one image, or ``(C, D, H, W)`` of one volume.
        path: the ``.pt2`` file to write.
        metadata: stored in the archive's ``stn-metadata.json`` (:data:`PT2_METADATA`), beside
            what the module notes list.
        tta: flip test-time augmentation inside the graph.

    Examples:
        >>> import tempfile
        >>> import stn
        >>> model = stn.models.create("tutorial-mnist").eval()
        >>> path = export_pt2(model, (1, 28, 28), Path(tempfile.mkdtemp()) / "mnist.pt2")
        >>> program, meta = load_pt2(path)
        >>> [tuple(out.shape) for out in program.module()(torch.zeros(5, 1, 28, 28))]
        [(5, 10), (5, 1, 6), (5, 1, 28, 28)]
        >>> pt2_difference(path, model, torch.rand(3, 1, 28, 28))
        0.0
    """
    _check_shape(input_shape)
    with _graph(model, input_shape, tta) as graph:
        batch = torch.export.Dim("batch", min=1)
        program = torch.export.export(graph, (torch.randn(2, *input_shape),), dynamic_shapes=({0: batch},))
        meta = _metadata(graph, metadata)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_pt2(program, path, meta)
    return path


def _save_pt2(program: Any, path: Path, metadata: dict[str, Any]) -> None:
    buffer = io.BytesIO()  # torch.export.save takes a path ending in .pt2 or a buffer without a warning
    torch.export.save(program, buffer, extra_files={PT2_METADATA: json.dumps(metadata)})
    write_atomic(path, lambda f: f.write(buffer.getbuffer()))


def load_pt2(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """The ``torch.export.ExportedProgram`` at ``path`` and its metadata (see the module notes).

    Args:
        path: a ``.pt2`` file written by :func:`export_pt2`; ``ExportError`` if it is missing or
            unreadable.

    Returns:
        ``(program, metadata)``; ``program.module()`` takes ``(N, *input_shape)`` images.

    Examples:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3), nn.LogSoftmax(1))
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> path = export_pt2(model, (1, 8, 8), folder / "tiny.pt2")
        >>> program, meta = load_pt2(path)
        >>> program.module()(torch.zeros(5, 1, 8, 8))[0].shape, meta["input_shape"]
        (torch.Size([5, 3]), [1, 8, 8])
    """
    extra = {PT2_METADATA: ""}
    try:
        program = torch.export.load(str(path), extra_files=extra)
    except FileNotFoundError:
        raise ExportError(f"no such file: {path}") from None
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(f"{path} is not a readable torch.export program: {first}") from None
    return program, json.loads(extra[PT2_METADATA] or "{}")


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of an exported ``.onnx`` or ``.pt2`` file, JSON values decoded.

    Args:
        path: a file written by :func:`export` (by its suffix: ``.pt2``, else ONNX).

    Examples:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2), nn.LogSoftmax(1))
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> path = folder / "tiny.pt2"
        >>> _ = export(model, (1, 8, 8), path, metadata={"classes": ["cat", "dog"], "mean": [0.5]})
        >>> meta = read_metadata(path)
        >>> meta["classes"], meta["mean"], meta["input_shape"], meta["outputs"]
        (['cat', 'dog'], [0.5], [1, 8, 8], ['output'])
    """
    path = Path(path)
    if path.suffix == ".pt2":
        return load_pt2(path)[1]
    onnx = _require("onnx")
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: _decode(p.value) for p in proto.metadata_props}


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _reference(model: nn.Module, inputs: Tensor, tta: bool) -> tuple[Tensor, ...]:
    with _graph(model, tuple(inputs.shape[1:]), tta) as graph:
        return graph(inputs)


def _largest(got: list[Tensor], want: tuple[Tensor, ...]) -> float:
    if len(got) != len(want):
        return float("inf")
    return max(float((g.float() - w.float()).abs().max()) for g, w in zip(got, want, strict=True))


def onnx_difference(path: str | os.PathLike, model: nn.Module, inputs: Tensor) -> float:
    """Largest absolute difference, over all outputs, between ONNX Runtime running the file at
    ``path`` on ``inputs`` ``(N, C, H, W)`` and ``model`` (eval mode, on the CPU, with the
    file's ``tta``) on the same inputs.

    Args:
        path: an ``.onnx`` file written by :func:`export_onnx`.
        model: the model the file was exported from.
        inputs: ``(N, *input_shape)`` images, normalised as in training.

    Examples:
        >>> import pytest
        >>> _ = pytest.importorskip("onnxruntime")  # the export extra
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3), nn.LogSoftmax(1))
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> path = export_onnx(model, (1, 8, 8), folder / "tiny.onnx")
        >>> onnx_difference(path, model, torch.rand(4, 1, 8, 8)) < 1e-5
        True
    """
    ort = _require("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    inputs = inputs.detach().float().cpu()
    got = session.run(None, {session.get_inputs()[0].name: inputs.numpy()})
    want = _reference(model, inputs, json.loads(meta.get("tta", "false")))
    return _largest([torch.from_numpy(g) for g in got], want)


def pt2_difference(path: str | os.PathLike, model: nn.Module, inputs: Tensor) -> float:
    """As :func:`onnx_difference`, for a ``.pt2`` file loaded with ``torch.export.load``.

    Args:
        path: a ``.pt2`` file written by :func:`export_pt2`.
        model: the model the file was exported from.
        inputs: ``(N, *input_shape)`` images, normalised as in training.

    Examples:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3), nn.LogSoftmax(1))
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> path = export_pt2(model, (1, 8, 8), folder / "tiny.pt2")
        >>> pt2_difference(path, model, torch.rand(4, 1, 8, 8)) < 1e-5
        True
    """
    program, meta = load_pt2(path)
    inputs = inputs.detach().float().cpu()
    with torch.no_grad():
        got = program.module()(inputs)
    return _largest(list(got), _reference(model, inputs, bool(meta.get("tta", False))))


def check(path: str | os.PathLike, model: nn.Module, inputs: Tensor) -> dict[str, Any]:
    """Run the exported file at ``path`` (ONNX Runtime for ``.onnx``, ``torch.export.load`` for
    ``.pt2``) beside ``model`` on ``inputs`` and store the report in the file's metadata as
    ``parity``; return the report: ``max_abs_difference``, ``runtime``, ``against``, ``inputs``.

    Args:
        path: an ``.onnx`` or ``.pt2`` file written by :func:`export`; rewritten with the report.
        model: the model the file was exported from.
        inputs: ``(N, *input_shape)`` images, normalised as in training.

    Examples:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3), nn.LogSoftmax(1))
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # a new, empty folder
        >>> path = export(model, (1, 8, 8), folder / "tiny.pt2")
        >>> report = check(path, model, torch.rand(4, 1, 8, 8))
        >>> report["max_abs_difference"] < 1e-5, report["inputs"]
        (True, '4 random images (1, 8, 8)')
        >>> read_metadata(path)["parity"] == report
        True
    """
    path = Path(path)
    if path.suffix == ".pt2":
        difference, runtime = pt2_difference(path, model, inputs), f"torch.export.load (torch {torch.__version__})"
    else:
        ort = _require("onnxruntime")
        difference, runtime = onnx_difference(path, model, inputs), f"onnxruntime {ort.__version__}"
    report = {
        "max_abs_difference": difference,
        "runtime": runtime,
        "against": f"PyTorch {torch.__version__}",
        "inputs": f"{len(inputs)} random images {tuple(inputs.shape[1:])}",
    }
    if path.suffix == ".pt2":
        program, meta = load_pt2(path)
        _save_pt2(program, path, {**meta, "parity": report})
    else:
        onnx = _require("onnx")
        proto = onnx.load(str(path))
        meta = {p.key: p.value for p in proto.metadata_props}
        del proto.metadata_props[:]
        _set_onnx_metadata(onnx, proto, {**meta, "parity": report})
        write_atomic(path, lambda f: f.write(proto.SerializeToString()))
    return report


def export(
    model: nn.Module,
    input_shape: tuple[int, ...],
    path: str | os.PathLike,
    *,
    format: str | None = None,
    metadata: dict[str, Any] | None = None,
    opset: int | None = None,
    tta: bool = False,
) -> Path:
    """:func:`export_onnx` or :func:`export_pt2`, by ``format`` (default: the suffix of
    ``path``, ``.pt2`` or else ONNX).

    Args:
        model: takes ``(N, *input_shape)`` float32 images.
        input_shape: ``(C, H, W)`` of one image, or ``(C, D, H, W)`` of one volume.
        path: the file to write.
        format: ``onnx`` or ``pt2`` (it must agree with a ``.onnx`` or ``.pt2`` suffix).
        metadata: stored in the file (see the module notes).
        opset: the ONNX opset (ONNX only; default :func:`default_opset`).
        tta: flip test-time augmentation inside the graph.

    Examples:
        >>> import tempfile
        >>> from torch import nn
        >>> import stn
        >>> st = stn.SpatialTransformer(nn.Flatten(), "attention", in_features=64)
        >>> model = nn.Sequential(st, nn.Flatten(), nn.Linear(64, 3), nn.LogSoftmax(1))
        >>> path = Path(tempfile.mkdtemp()) / "tiny.pt2"
        >>> path = export(model, (1, 8, 8), path, metadata={"classes": ["a", "b", "c"]})
        >>> check(path, model, torch.rand(4, 1, 8, 8))["max_abs_difference"] < 1e-5
        True
        >>> meta = read_metadata(path)
        >>> meta["outputs"], meta["transformer"]["transform"], meta["classes"]
        (['output', 'params', 'transformed'], 'attention', ['a', 'b', 'c'])
    """
    suffix = Path(path).suffix
    format = format or ("pt2" if suffix == ".pt2" else "onnx")
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of: {', '.join(FORMATS)}")
    if suffix in (".onnx", ".pt2") and suffix != f".{format}":
        raise ExportError(f"{path} ends in {suffix} but the format is {format}: make them agree")
    if format == "pt2":
        return export_pt2(model, input_shape, path, metadata=metadata, tta=tta)
    return export_onnx(model, input_shape, path, metadata=metadata, opset=opset, tta=tta)
