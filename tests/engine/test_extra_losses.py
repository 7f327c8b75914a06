"""The training step adds the extra losses any module reports, and scores several predictions per
image; the statistics and views of sampling and polar transformers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from stn import models
from stn.engine.loop import extra_loss, train_step
from stn.engine.statistics import format_table, measure, spread_stats
from stn.inference import InferenceGraph
from stn.observe import observe


class Penalised(nn.Module):
    """A linear classifier whose weight reports ``strength * |w|²`` as its extra loss, and that can
    answer ``copies`` times per image in training (stacked sample-major)."""

    def __init__(self, strength: float, copies: int = 1) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.strength, self.copies = strength, copies
        self._pending = None

    def forward(self, x):
        self._pending = self.strength * self.linear.weight.pow(2).sum()
        out = torch.log_softmax(self.linear(x), 1)
        return out.repeat(self.copies, 1) if self.training else out

    def extra_loss(self):
        pending, self._pending = self._pending, None
        return pending


def test_train_step_adds_what_any_module_reports():
    torch.manual_seed(0)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    model = nn.Sequential(Penalised(0.25))
    weight = model[0].linear.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the step leaves the weights, the loss stands
    loss = train_step(model, optimizer, x, y)
    expected = nn.functional.nll_loss(model[0].linear(x).log_softmax(1), y) + 0.25 * weight.pow(2).sum()
    torch.testing.assert_close(loss, expected.detach())
    # The gradient holds the extra loss's: 2 * 0.25 * w beside the classification's.
    model.zero_grad()
    nn.functional.nll_loss(model[0].linear(x).log_softmax(1), y).backward()
    classification = model[0].linear.weight.grad.clone()
    optimizer.zero_grad()
    train_step(model, optimizer, x, y)
    torch.testing.assert_close(model[0].linear.weight.grad, classification + 0.5 * weight)
    assert extra_loss(model) is None  # taken by the step


def test_several_predictions_per_image_are_each_scored_against_its_label():
    x, y = torch.randn(5, 4), torch.randint(0, 3, (5,))
    once, thrice = Penalised(0.0, 1), Penalised(0.0, 3)
    thrice.load_state_dict(once.state_dict())
    optimizer = torch.optim.SGD(list(once.parameters()) + list(thrice.parameters()), lr=0.0)
    torch.testing.assert_close(train_step(thrice, optimizer, x, y), train_step(once, optimizer, x, y))


def test_a_model_without_extra_losses_trains_as_before():
    model = nn.Sequential(nn.Linear(4, 3), nn.LogSoftmax(1))
    x, y = torch.randn(6, 4), torch.randint(0, 3, (6,))
    expected = nn.functional.nll_loss(model(x), y)
    assert extra_loss(model) is None
    torch.testing.assert_close(train_step(model, torch.optim.SGD(model.parameters(), lr=0.0), x, y), expected.detach())


def test_the_pstn_kl_term_reaches_the_loss():
    model = models.create("pstn-cnn", input_shape=(1, 28, 28), samples=2, prior_scale=0.2, init_scale=0.05)
    x, y = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    loss = train_step(model, torch.optim.SGD(model.parameters(), lr=0.0), x, y)
    # At the identity mean with σ = 0.05 against the prior's 0.2: log 4 + 0.05²/(2 · 0.2²) - 1/2 per parameter.
    kl = 6 * (math.log(4) + 0.0025 / 0.08 - 0.5)
    with torch.no_grad():
        classification = nn.functional.nll_loss(model.train()(x), y.repeat(2))
    assert float(loss) == pytest.approx(float(classification) + kl, abs=0.1)  # drawn anew: close, not equal
    assert kl > 5


def test_measure_reports_the_spread_of_a_sampling_transformer_and_the_table_shows_it():
    model = models.create("pstn-cnn", input_shape=(1, 28, 28), samples=3, init_scale=0.07)
    stats = measure(model, torch.randn(10, 1, 28, 28))
    assert stats["stn_spread_mean"] == pytest.approx(0.07, abs=1e-6) and stats["stn_spread_std"] < 1e-6
    assert [stats[f"stn_spread_p{i}"] for i in range(6)] == pytest.approx([0.07] * 6, abs=1e-6)
    assert stats["stn_scale_mean"] == pytest.approx(1.0, abs=1e-5)  # the mean: the identity
    table = format_table([{"epoch": 1, **stats}])
    assert "σ" in table and "σ5" in table and "0.070±0.000" in table
    assert spread_stats(torch.tensor([[0.1, 0.3], [0.3, 0.5]]))["stn_spread_p1"] == pytest.approx(0.4)


def test_measure_reports_where_the_polar_origin_lies():
    model = models.create("ptn-cnn", transform="polar")
    stats = measure(model, torch.randn(6, 1, 28, 28))
    assert stats["stn_origin_mean"] < 1e-6  # an untrained origin predictor: the centre
    assert "origin" in format_table([stats])


def test_views_and_the_inference_graph_show_a_sampling_transformers_mean_warp():
    model = models.create("pstn-cnn", input_shape=(1, 28, 28), samples=4).eval()
    with torch.no_grad():
        model.stn.fc_loc[-1].bias.add_(torch.tensor([-0.2, 0.0, 0.1, 0.0, -0.2, 0.0]))
    images = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    view = observe(model, images, [0.5], [0.25])
    assert view.params.shape == (3, 1, 6) and view.outputs.shape == (3, 1, 1, 28, 28)
    graph = InferenceGraph(model, (1, 28, 28))
    x = (images.float() / 255 - 0.5) / 0.25
    output, params, transformed = graph(x)
    assert output.shape == (3, 10) and params.shape == (3, 1, 6) and transformed.shape == (3, 1, 28, 28)
    torch.testing.assert_close(transformed, model.stn.sample(x, params[:, 0]))
    torch.testing.assert_close(output, model(x))
