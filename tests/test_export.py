"""ONNX export: ONNX Runtime computes what PyTorch does, transformer included."""

from __future__ import annotations

import re
import sys

import onnx
import pytest
import torch

from stn import models
from stn.cli import main
from stn.engine import checkpoint as ckpt
from stn.export import ExportError, export_onnx, onnx_difference

SHAPE = (1, 28, 28)


@pytest.mark.parametrize("transform", ["affine", "projective", "tps"])
def test_onnx_runtime_matches_pytorch(transform, tmp_path):
    model = models.create("tutorial-mnist", transform=transform)
    with torch.no_grad():  # a transformer that does not start at the identity: sampling matters
        model.stn.fc_loc[-1].bias.add_(0.1 * torch.randn_like(model.stn.fc_loc[-1].bias))
    path = export_onnx(model.train(), SHAPE, tmp_path / "model.onnx", metadata={"classes": ["a", "b"], "note": "x"})
    assert model.training  # the caller's mode is restored
    for batch in (1, 5):  # the batch size is free
        assert onnx_difference(path, model, torch.randn(batch, *SHAPE)) < 1e-4
    proto = onnx.load(str(path))
    assert "GridSample" in {node.op_type for node in proto.graph.node}
    props = {p.key: p.value for p in proto.metadata_props}
    assert props == {"classes": '["a", "b"]', "note": "x"}


def test_onnx_difference_sees_a_different_model(tmp_path):
    model = models.create("tutorial-mnist")
    path = export_onnx(model, SHAPE, tmp_path / "model.onnx")
    with torch.no_grad():
        model.fc2.bias[0] += 1.0
    assert onnx_difference(path, model, torch.randn(3, *SHAPE)) > 0.1


def test_bad_arguments_and_missing_packages(tmp_path, monkeypatch):
    model = models.create("tutorial-mnist")
    with pytest.raises(ExportError, match="three positive ints"):
        export_onnx(model, (28, 28), tmp_path / "m.onnx")
    with pytest.raises(ExportError, match="opset must be 16 or later"):
        export_onnx(model, SHAPE, tmp_path / "m.onnx", opset=11)
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ExportError, match=r"needs the onnxscript package: pip install 'torch-stn\[export\]'"):
        export_onnx(model, SHAPE, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_stn_export_command(tmp_path, capsys):
    model = models.create("tutorial-mnist")
    options = dict(input_shape=SHAPE, num_classes=10, stn=True, transform="affine")
    payload = dict(model="tutorial-mnist", model_options=options, dataset="mnist", classes=list("0123456789"))
    ckpt.save({**payload, "mean": [0.1307], "std": [0.3081], "state_dict": model.state_dict()}, tmp_path / "best.pt")

    assert main(["export", str(tmp_path / "best.pt")]) == 0
    out = capsys.readouterr().out
    assert f"Wrote {tmp_path / 'model.onnx'}" in out
    difference = float(re.search(r"max \|difference\| (\S+)", out).group(1))
    assert difference < 1e-4
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "model.onnx")).metadata_props}
    assert props["model"] == "tutorial-mnist" and props["mean"] == "[0.1307]"
