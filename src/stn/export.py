"""ONNX export of a model and its spatial transformers, checked against PyTorch with ONNX Runtime.

The exported graph takes float32 images ``(N, C, H, W)`` normalised as in training
(``(pixel / 255 - mean) / std``; ``mean``, ``std`` and ``classes`` are in the file's metadata),
with the batch size ``N`` free, and returns the model's output (``(N, classes)``
log-probabilities for the registry's models). Sampling becomes ONNX's ``GridSample`` (opset 16
and later), or two ``MatMul`` for the axis-aligned families (translation, attention: see
:mod:`stn.sampling`), so the transformer runs wherever the model does. Needs the ``export`` extra
(``pip install 'torch-stn[export]'``: onnx, onnxscript and, to check the file, onnxruntime).
"""

from __future__ import annotations

import importlib
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

__all__ = ["OPSET", "ExportError", "export_onnx", "onnx_difference"]

OPSET = 18


class ExportError(ValueError):
    """The export cannot run: a missing package or a bad argument."""


def _require(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ExportError(f"ONNX export needs the {name} package: pip install 'torch-stn[export]'") from None


@contextmanager
def _on_cpu_in_eval(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` on the CPU in eval mode, without gradients; its device and mode restored after."""
    device, training = next(model.parameters()).device, model.training
    try:
        with torch.no_grad():
            yield model.cpu().eval()
    finally:
        model.to(device).train(training)


def export_onnx(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    path: str | os.PathLike,
    *,
    metadata: dict[str, Any] | None = None,
    opset: int = OPSET,
) -> Path:
    """Write ``model`` in eval mode as an ONNX file at ``path`` (atomically) and return the path.

    Args:
        model: takes ``(N, *input_shape)`` float32 images; exported on the CPU, its mode restored.
        input_shape: ``(C, H, W)`` of one image.
        path: the ``.onnx`` file to write.
        metadata: strings (others are written as JSON) stored in the file's ``metadata_props``.
        opset: ONNX opset version (16 or later: ``GridSample``).
    """
    _require("onnxscript")
    onnx = _require("onnx")
    if len(input_shape) != 3 or any(not isinstance(n, int) or n < 1 for n in input_shape):
        raise ExportError(f"input_shape must be three positive ints (C, H, W), got {tuple(input_shape)}")
    if opset < 16:
        raise ExportError(f"opset must be 16 or later (GridSample), got {opset}")
    example = torch.randn(2, *input_shape)
    with _on_cpu_in_eval(model):
        # One eager call first: the transforms cache what depends only on sizes (a TPS's solved
        # system, its grid weights), so the export sees those as constants.
        model(example)
        program = torch.onnx.export(
            model,
            (example,),
            input_names=["images"],
            output_names=["output"],
            dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    proto = program.model_proto
    props = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    onnx.helper.set_model_props(proto, props)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: f.write(proto.SerializeToString()))
    return path


def onnx_difference(path: str | os.PathLike, model: nn.Module, inputs: Tensor) -> float:
    """Largest absolute difference between ONNX Runtime running the file at ``path`` on
    ``inputs`` ``(N, C, H, W)`` and ``model`` (eval mode, on the CPU) on the same inputs."""
    ort = _require("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = inputs.detach().float().cpu()
    (got,) = session.run(None, {session.get_inputs()[0].name: inputs.numpy()})
    with _on_cpu_in_eval(model):
        want = model(inputs)
    return float((torch.from_numpy(got) - want).abs().max())
