"""ONNX export: ONNX Runtime computes what PyTorch does, transformer included."""

from __future__ import annotations

import json
import math
import re
import sys

import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from stn import models
from stn.cli import main
from stn.engine import checkpoint as ckpt
from stn.export import (
    ExportError,
    export_onnx,
    export_pt2,
    load_pt2,
    newest_opset,
    onnx_difference,
    pt2_difference,
    read_metadata,
)
from stn.inference import InferenceGraph
from stn.layers import ParallelSpatialTransformers, SpatialTransformer

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
    assert props["classes"] == '["a", "b"]' and props["note"] == "x" and props["input_shape"] == "[1, 28, 28]"
    assert json.loads(props["outputs"]) == ["output", "params", "transformed"]
    assert json.loads(props["transformer"])["transform"] == transform


def test_onnx_difference_sees_a_different_model(tmp_path):
    model = models.create("tutorial-mnist")
    path = export_onnx(model, SHAPE, tmp_path / "model.onnx")
    with torch.no_grad():
        model.fc2.bias[0] += 1.0
    assert onnx_difference(path, model, torch.randn(3, *SHAPE)) > 0.1


class Tiny(nn.Module):
    """A small classifier behind one transformer (or ``k`` parallel ones) of any family."""

    def __init__(self, transform: str, k: int = 0, shape=(2, 12, 12)) -> None:
        super().__init__()
        c, h, w = shape
        loc = nn.Sequential(nn.Conv2d(c, 4, 3), nn.MaxPool2d(2), nn.ReLU())
        features = 4 * ((h - 2) // 2) * ((w - 2) // 2)
        if k:
            self.st = ParallelSpatialTransformers(k, loc, transform, (8, 10), in_features=features, hidden=(8,))
        else:
            self.st = SpatialTransformer(loc, transform, (8, 10), in_features=features, hidden=(8,))
        self.fc = nn.Linear(max(k, 1) * c * 80, 3)
        with torch.no_grad():  # away from the identity: sampling and the point map matter
            last = self.st.fc_loc[-1]
            last.bias.add_(0.15 * torch.randn_like(last.bias))
            last.weight.normal_(0, 0.05)

    def forward(self, x):
        return torch.log_softmax(self.fc(self.st(x).flatten(1)), 1)


CASES = [(t, 0) for t in ("translation", "attention", "similarity", "affine", "projective", "tps")] + [("attention", 2)]


@pytest.mark.parametrize("opset", [16, "newest"])
@pytest.mark.parametrize(("transform", "k"), CASES, ids=[f"{t}-k{k}" if k else t for t, k in CASES])
def test_onnx_parity_for_every_family_at_both_opsets(transform, k, opset, tmp_path):
    opset = newest_opset() if opset == "newest" else opset
    model = Tiny(transform, k)
    path = export_onnx(model, (2, 12, 12), tmp_path / "m.onnx", opset=opset)
    proto = onnx.load(str(path))
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [opset]
    assert [o.name for o in proto.graph.output] == ["output", "params", "transformed"]
    assert onnx_difference(path, model, torch.randn(3, 2, 12, 12)) < 1e-4
    meta = read_metadata(path)
    assert meta["transformer"]["transform"] == transform and meta["transformer"]["k"] == max(k, 1)


def test_inference_graph_outputs_and_flip_tta():
    model = Tiny("affine", 2).eval()
    x = torch.randn(4, 2, 12, 12)
    output, params, transformed = InferenceGraph(model, (2, 12, 12)).eval()(x)
    with torch.no_grad():
        assert torch.equal(output, model(x))
        assert params.shape == (4, 2, 6) and torch.equal(params, model.st.last_params)
        assert torch.equal(transformed, model.st(x))
        tta, tta_params, _ = InferenceGraph(model, (2, 12, 12), tta=True).eval()(x)
        want = torch.logaddexp(model(x), model(x.flip(-1))) - math.log(2.0)
    assert torch.allclose(tta, want, atol=1e-6) and torch.equal(tta_params, params)  # params of the unmirrored image
    assert not torch.allclose(tta, output, atol=1e-3)


def test_tta_in_the_onnx_graph(tmp_path):
    model = Tiny("projective")
    path = export_onnx(model, (2, 12, 12), tmp_path / "tta.onnx", tta=True)
    assert read_metadata(path)["tta"] is True
    inputs = torch.randn(3, 2, 12, 12)
    assert onnx_difference(path, model, inputs) < 1e-4  # against the TTA graph, as the metadata says
    plain = export_onnx(model, (2, 12, 12), tmp_path / "plain.onnx")
    (without,), (with_tta,) = (
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(["output"], {"images": inputs.numpy()})
        for p in (plain, path)
    )
    assert abs(with_tta - without).max() > 1e-3


def test_pt2_export_loads_and_matches(tmp_path):
    model = Tiny("tps")
    path = export_pt2(model, (2, 12, 12), tmp_path / "m.pt2", metadata={"classes": ["a", "b", "c"]})
    _, meta = load_pt2(path)
    assert meta["classes"] == ["a", "b", "c"] and meta["outputs"] == ["output", "params", "transformed"]
    for batch in (1, 5):  # the batch size is free
        assert pt2_difference(path, model, torch.randn(batch, 2, 12, 12)) < 1e-5
    with torch.no_grad():
        model.fc.bias[0] += 1.0
    assert pt2_difference(path, model, torch.randn(3, 2, 12, 12)) > 0.1
    (tmp_path / "junk.pt2").write_bytes(b"junk")
    with pytest.raises(ExportError, match=r"not a readable torch.export program"):
        load_pt2(tmp_path / "junk.pt2")


def test_bad_arguments_and_missing_packages(tmp_path, monkeypatch):
    model = models.create("tutorial-mnist")
    with pytest.raises(ExportError, match="three positive ints"):
        export_onnx(model, (28, 28), tmp_path / "m.onnx")
    with pytest.raises(ExportError, match="opset must be 16 or later"):
        export_onnx(model, SHAPE, tmp_path / "m.onnx", opset=11)
    with pytest.raises(ExportError, match="newer than the installed onnx knows"):
        export_onnx(model, SHAPE, tmp_path / "m.onnx", opset=newest_opset() + 1)
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
    parity = json.loads(props["parity"])
    assert parity["max_abs_difference"] == difference or f"{parity['max_abs_difference']:.2e}" == f"{difference:.2e}"
    assert parity["runtime"].startswith("onnxruntime")

    assert main(["export", str(tmp_path / "best.pt"), "--format", "pt2", "--tta"]) == 0
    out = capsys.readouterr().out
    assert f"Wrote {tmp_path / 'model.pt2'}" in out and "with flip test-time augmentation" in out
    assert "torch.export.load against PyTorch on 8 random inputs: max |difference|" in out
    meta = read_metadata(tmp_path / "model.pt2")
    assert meta["tta"] is True and meta["parity"]["max_abs_difference"] < 1e-5 and meta["classes"][0] == "0"
    assert main(["export", str(tmp_path / "best.pt"), "--format", "pt2", "--opset", "17"]) == 2
