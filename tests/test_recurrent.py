"""RecurrentSpatialTransformer: the inverse-compositional STN (IC-STN)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import stn
from stn import models
from stn import transforms as T

COMPOSABLE = ["translation", "similarity", "affine", "projective"]


def small_loc(channels: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2))


class Recorder(nn.Module):
    """A localisation 'net' that keeps what it was shown and outputs a constant feature."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return torch.ones(x.shape[0], 1, dtype=x.dtype)


@pytest.mark.parametrize("name", COMPOSABLE)
def test_starts_as_identity_and_keeps_every_step(name, dtype):
    x = torch.rand(3, 2, 12, 10, dtype=dtype)
    st = stn.RecurrentSpatialTransformer(small_loc(2), name, steps=3, in_features=16).to(dtype)
    torch.testing.assert_close(st(x), x, atol=1e-5, rtol=1e-5)
    assert len(st.last_step_params) == 3
    for params in st.last_step_params:
        torch.testing.assert_close(params, st.transform.identity(3, dtype=dtype))
    assert st.last_params is st.last_step_params[-1]


@pytest.mark.parametrize("name", COMPOSABLE)
def test_each_step_warps_the_original_and_composes_the_update(name):
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    recorder = Recorder()
    st = stn.RecurrentSpatialTransformer(recorder, name, output_size=(8, 8), steps=3, in_features=1)
    family = st.transform
    update = family.identity(1, dtype=torch.float64)[0] + 0.05 * torch.randn(family.num_params, dtype=torch.float64)
    st.double()
    with torch.no_grad():
        st.fc_loc.bias.copy_(update)  # zero weights: every step predicts the same update
    out = st(x)
    step = family.matrix(update[None])
    expected = step.clone()
    for i, params in enumerate(st.last_step_params):
        # After step i the map is the update composed i + 1 times: M_θ @ M_Δ (up to scale: h33 = 1).
        want = (expected / expected[:, 2:, 2:]).expand(2, 3, 3)
        torch.testing.assert_close(family.matrix(params).expand(2, 3, 3), want)
        if i + 1 < len(recorder.seen):  # step i + 1 saw the ORIGINAL warped by step i's params
            torch.testing.assert_close(recorder.seen[i + 1], stn.warp(x, family, params, (16, 16)))
        expected = expected @ step
    assert recorder.seen[0].equal(x)  # the first step reads the input itself
    torch.testing.assert_close(out, stn.warp(x, family, st.last_params, (8, 8)))


def test_translation_steps_add_up():
    recorder = Recorder()
    st = stn.RecurrentSpatialTransformer(recorder, "translation", steps=4, in_features=1)
    with torch.no_grad():
        st.fc_loc.bias.copy_(torch.tensor([0.1, -0.05]))
    st(torch.rand(1, 1, 8, 8))
    torch.testing.assert_close(st.last_params, torch.tensor([[0.4, -0.2]]))


def test_fill_padding_and_gradients_reach_every_step():
    x = torch.rand(2, 3, 12, 12, requires_grad=True)
    st = stn.RecurrentSpatialTransformer(small_loc(3), "affine", (6, 6), steps=2, in_features=16, fill=0.25)
    with torch.no_grad():
        st.fc_loc.bias.copy_(torch.tensor([0.3, 0.0, 2.0, 0.0, 0.3, 0.0]))  # looks far outside the image
    out = st(x)
    torch.testing.assert_close(out, torch.full_like(out, 0.25))
    st.fc_loc.bias.data.copy_(torch.tensor([0.9, 0.1, 0.0, -0.1, 0.9, 0.0]))
    updates = []  # the gradient reaching each step's predicted update

    def watch(module, inputs, out) -> None:
        out.register_hook(updates.append)

    hook = st.fc_loc.register_forward_hook(watch)
    st(x).sum().backward()
    hook.remove()
    assert len(updates) == st.steps and all(bool(g.abs().sum() > 0) for g in updates)
    assert x.grad is not None and all(p.grad is not None for p in st.parameters())


def test_gradcheck_float64():
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(1)
    st = stn.RecurrentSpatialTransformer(small_loc(1), "affine", (5, 5), steps=2, in_features=16).double()
    with torch.no_grad():
        st.fc_loc.weight.normal_(0, 0.05)
    assert torch.autograd.gradcheck(st, (x,))


def test_models_take_recurrent_steps_and_export(tmp_path):
    pytest.importorskip("onnxruntime")
    from stn.export import export_onnx, onnx_difference

    paper = models.create("paper-cnn", input_shape=(1, 42, 42), recurrent_steps=4)
    assert isinstance(paper.stn, stn.RecurrentSpatialTransformer) and paper.stn.steps == 4
    assert paper(torch.rand(2, 1, 42, 42)).shape == (2, 10) and len(paper.stn.last_step_params) == 4
    model = models.create("tutorial-mnist", transform="projective", recurrent_steps=3)
    with torch.no_grad():
        model.stn.fc_loc[-1].bias.add_(0.02 * torch.randn_like(model.stn.fc_loc[-1].bias))
    path = export_onnx(model, (1, 28, 28), tmp_path / "model.onnx")
    assert onnx_difference(path, model, torch.randn(3, 1, 28, 28)) < 1e-4


@pytest.mark.parametrize("tta", [False, True])
def test_prediction_and_export_give_the_final_parameters_not_the_last_update(tta, tmp_path):
    from stn.export import export_pt2
    from stn.inference import InferenceGraph
    from stn.predict import load_predictor

    model = models.create("paper-cnn", input_shape=(1, 28, 28), transform="affine", recurrent_steps=3).eval()
    with torch.no_grad():  # each update moves: the composed parameters differ from the last update
        model.stn.fc_loc[-1].bias.add_(0.1 * torch.randn_like(model.stn.fc_loc[-1].bias))
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        _, params, transformed = InferenceGraph(model, (1, 28, 28), tta)(x)
        steps = model.stn.predict_steps(x)
        want = steps[-1]
        last_update = model.stn.fc_loc(model.stn.localization(model.stn.sample(x, steps[-2])).flatten(1))
        assert not torch.allclose(want, last_update, atol=1e-3)
        torch.testing.assert_close(params[:, 0], want)
        torch.testing.assert_close(transformed, model.stn(x))
    path = export_pt2(
        model,
        (1, 28, 28),
        tmp_path / "model.pt2",
        metadata=dict(classes=list("0123456789"), mean=[0.0], std=[1.0]),
        tta=tta,
    )
    _, exported, _ = load_predictor(path).run(x, extras=True)
    torch.testing.assert_close(exported[:, 0], want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["polar", "tps", "field", "diffeomorphic"])
def test_families_that_cannot_compose_are_refused(name):
    with pytest.raises(ValueError, match="from_matrix"):
        stn.RecurrentSpatialTransformer(small_loc(1), name)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        stn.RecurrentSpatialTransformer(small_loc(1), "affine", steps=0)


def test_from_matrix_round_trips_for_the_composable_families(dtype):
    for family in (
        T.get("translation"),
        T.get("translation", max_shift=0.5),
        T.get("attention"),
        T.get("attention", scale_range=(0.3, 1.5)),
        T.get("similarity"),
    ):
        params = family.identity(3, dtype=dtype) + 0.1 * torch.randn(3, family.num_params, dtype=dtype)
        torch.testing.assert_close(family.from_matrix(family.matrix(params)), params, atol=1e-4, rtol=1e-4)


def test_observe_and_snapshots_show_every_step(tmp_path):
    from stn import models
    from stn.data import Dataset
    from stn.engine.snapshots import Snapshots
    from stn.observe import observe

    model = models.create("paper-cnn", input_shape=(1, 40, 40), num_classes=3, recurrent_steps=3)
    images = (torch.rand(6, 1, 40, 40) * 255).to(torch.uint8)
    view = observe(model, images, [0.2], [0.3])
    assert view.params.shape == (6, 3, 6) and view.k == 3
    assert view.outputs is not None and view.outputs.shape[:3] == (6, 3, 1)
    final = model.stn.last_params.float()
    torch.testing.assert_close(view.params[:, -1], final)  # the last step is the transformer's output

    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    data = Dataset("tiny", images, labels, images, labels, ["a", "b", "c"])
    snapshots = Snapshots.for_run(tmp_path / "snapshots.pt", data, 6)
    snapshots.capture(1, model)
    assert snapshots.state["params"][0].shape == (6, 3, 6) and snapshots.state["outputs"][0].shape[:2] == (6, 3)
