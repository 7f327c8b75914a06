"""Volume models with their 3-D transformer inside, exported to ONNX (5-D GridSample, opset 20 and
later) and torch.export, run beside PyTorch."""

from __future__ import annotations

import pytest
import torch

from stn import models
from stn.export import (
    VOLUME_OPSET,
    ExportError,
    export_onnx,
    export_pt2,
    newest_opset,
    onnx_difference,
    pt2_difference,
    read_metadata,
)

SHAPE = (1, 12, 12, 12)


def volume_model(transform: str, **options) -> torch.nn.Module:
    model = models.create("volume-mnist", input_shape=SHAPE, num_classes=3, transform=transform, **options)
    with torch.no_grad():  # away from the identity: sampling matters
        model.stn.fc_loc[-1].bias.add_(0.05 * torch.randn_like(model.stn.fc_loc[-1].bias))
    return model.eval()


@pytest.mark.parametrize(
    ("transform", "options"),
    [
        ("affine3d", {}),
        ("rigid3d", {}),  # the rotation's matrix exponential, from matrix products in the graph
        ("field3d", {"transform_options": {"grid_size": 3, "diffeomorphic": True}}),
    ],
)
def test_onnx_export_of_volume_transformers_matches_pytorch(transform, options, tmp_path):
    pytest.importorskip("onnxruntime")
    model = volume_model(transform, **options)
    newest = newest_opset()
    for opset in sorted({VOLUME_OPSET, newest}):
        path = export_onnx(model, SHAPE, tmp_path / f"model-{opset}.onnx", opset=opset)
        assert onnx_difference(path, model, torch.randn(3, *SHAPE)) < 1e-4
    meta = read_metadata(path)
    assert meta["input_shape"] == list(SHAPE) and meta["outputs"] == ["output", "params", "transformed"]
    assert meta["transformer"]["transform"] == model.stn.transform.name


def test_volumes_default_to_opset_20_and_refuse_older(tmp_path):
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    model = volume_model("affine3d")
    path = export_onnx(model, SHAPE, tmp_path / "model.onnx")
    proto = onnx.load(str(path))
    assert next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == VOLUME_OPSET
    assert any(node.op_type == "GridSample" for node in proto.graph.node)
    with pytest.raises(ExportError, match="opset 20 or later"):
        export_onnx(model, SHAPE, tmp_path / "old.onnx", opset=18)
    with pytest.raises(ExportError, match=r"\(C, D, H, W\)"):
        export_onnx(model, (1, 2, 3, 4, 5), tmp_path / "bad.onnx")


def test_pt2_export_of_a_volume_transformer(tmp_path):
    model = volume_model("similarity3d")
    path = export_pt2(model, SHAPE, tmp_path / "model.pt2")
    assert pt2_difference(path, model, torch.randn(2, *SHAPE)) < 1e-5
