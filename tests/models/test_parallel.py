"""The models' ``parallel`` option: k transformers on one localisation net (the paper's 2xST, 4xST)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stn import models
from stn.layers import ParallelSpatialTransformers, SpatialTransformer

SHAPES = {"paper-fcn": (1, 28, 28), "paper-cnn": (1, 28, 28), "tutorial-mnist": (1, 28, 28), "seed-cifar": (3, 32, 32)}


def first_layer(model):
    """The classifier's first layer with weights: what reads the transformers' output."""
    if hasattr(model, "classifier"):
        return next(m for m in model.classifier.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear))
    return model.conv1


@pytest.mark.parametrize("name", list(SHAPES))
def test_k_transformers_share_the_localisation_net_and_the_classifier_reads_k_times_the_channels(name):
    c, h, w = SHAPES[name]
    model = models.create(name, input_shape=(c, h, w), transform="attention", parallel=3).eval()
    assert isinstance(model.stn, ParallelSpatialTransformers) and model.stn.k == 3
    assert model.stn.transform.name == "attention"
    single = models.create(name, input_shape=(c, h, w), transform="attention")
    assert type(single.stn) is SpatialTransformer
    layer, one = first_layer(model), first_layer(single)
    if isinstance(layer, torch.nn.Conv2d):
        assert (layer.in_channels, one.in_channels) == (3 * c, c)
    else:
        assert layer.in_features == 3 * one.in_features
    with torch.no_grad():
        out = model(torch.randn(2, c, h, w))
    assert out.shape == (2, 10) and model.stn.last_params.shape == (2, 3, 3)


@pytest.mark.parametrize("name", list(SHAPES))
def test_at_the_identity_the_network_reads_the_image_k_times(name):
    c, h, w = SHAPES[name]
    model = models.create(name, input_shape=(c, h, w), transform="affine", parallel=2).eval()
    x = torch.randn(2, c, h, w)
    with torch.no_grad():
        out = model(x)
        model.stn = torch.nn.Identity()  # the same network, fed the image twice by hand
        torch.testing.assert_close(out, model(x.repeat(1, 2, 1, 1)), atol=1e-5, rtol=1e-5)


def test_every_family_and_the_gradient_reach_each_transformer():
    for transform in ("affine", "tps", "polar", "field"):
        model = models.create("paper-cnn", input_shape=(1, 28, 28), transform=transform, parallel=2)
        x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
        F.nll_loss(model(x), y).backward()
        head = model.stn.fc_loc[-1]
        assert head.weight.grad is not None
        per_set = head.weight.grad.view(2, -1).abs().sum(1)
        assert (per_set > 0).all(), transform


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"parallel": 0}, "parallel .* at least 1, got 0"),
        ({"parallel": 1.5}, "parallel .* got 1.5"),
        ({"parallel": True}, "parallel .* got True"),
        ({"parallel": 2, "recurrent_steps": 2}, "cannot be combined"),
        ({"recurrent_steps": -1}, "recurrent_steps must be an integer of at least 0"),
    ],
)
@pytest.mark.parametrize("name", ["paper-cnn", "tutorial-mnist"])
def test_bad_counts_are_value_errors(name, options, message):
    with pytest.raises(ValueError, match=message):
        models.create(name, input_shape=(1, 28, 28), **options)


@pytest.mark.parametrize("name", list(SHAPES))
def test_the_registry_lists_the_option(name):
    assert {"parallel", "recurrent_steps"} <= set(models.options(name))


def test_without_a_transformer_the_option_does_not_apply():
    base = models.create("paper-cnn", input_shape=(1, 28, 28), stn=False, parallel=2)
    assert base.stn is None and first_layer(base).in_channels == 1
