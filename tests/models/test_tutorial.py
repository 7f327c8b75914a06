"""The seed CIFAR-10 network and the tutorial's MNIST network, and the model registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stn import models
from stn.layers import SpatialTransformer

SEED_MODULES = {
    "conv1": "Conv2d(3, 16, kernel_size=(5, 5), stride=(1, 1))",
    "conv2": "Conv2d(16, 32, kernel_size=(5, 5), stride=(1, 1))",
    "conv2_drop": "Dropout2d(p=0.5, inplace=False)",
    "fc1": "Linear(in_features=800, out_features=1024, bias=True)",
    "fc2": "Linear(in_features=1024, out_features=10, bias=True)",
    "stn.localization.0": "Conv2d(3, 64, kernel_size=(7, 7), stride=(1, 1))",
    "stn.localization.1": "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)",
    "stn.localization.2": "ReLU(inplace=True)",
    "stn.localization.3": "Conv2d(64, 128, kernel_size=(5, 5), stride=(1, 1))",
    "stn.localization.4": "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)",
    "stn.localization.5": "ReLU(inplace=True)",
    "stn.fc_loc.0": "Linear(in_features=2048, out_features=256, bias=True)",
    "stn.fc_loc.1": "ReLU(inplace=True)",
    "stn.fc_loc.2": "Linear(in_features=256, out_features=6, bias=True)",
}


def test_seed_cifar_is_the_reference_network():
    model = models.create("seed-cifar")
    leaves = {name: repr(m) for name, m in model.named_modules() if name and not list(m.children())}
    assert leaves == SEED_MODULES
    printed = str(model)
    for line in ("(localization): Sequential(", "(fc_loc): Sequential(", *SEED_MODULES.values()):
        assert line in printed
    assert sum(p.numel() for p in model.parameters()) == 1_585_008


def test_seed_cifar_forward_is_log_softmax_and_starts_at_identity():
    model = models.create("seed-cifar").eval()
    x = torch.randn(5, 3, 32, 32)
    out = model(x)
    assert out.shape == (5, 10)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(5))
    torch.testing.assert_close(model.stn.last_params, torch.tensor([[1.0, 0, 0, 0, 1, 0]]).expand(5, 6))
    torch.testing.assert_close(model.stn(x), x, atol=1e-5, rtol=1e-5)


def test_tutorial_mnist_shapes():
    model = models.create("tutorial-mnist")
    assert model.fc1.in_features == 320 and model.fc1.out_features == 50
    assert model.stn.fc_loc[0].in_features == 90 and model.stn.fc_loc[0].out_features == 32
    assert model.stn.localization[0].out_channels == 8 and model.stn.localization[3].out_channels == 10
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert sum(p.numel() for p in model.parameters()) == 27_360


@pytest.mark.parametrize("name", ["seed-cifar", "tutorial-mnist"])
def test_without_stn_and_with_other_families(name):
    baseline = models.create(name, stn=False)
    assert baseline.stn is None and not any(isinstance(m, SpatialTransformer) for m in baseline.modules())
    for family in ("translation", "projective", "tps"):
        model = models.create(name, transform=family)
        assert model.stn.transform.name == family
        shape = (2, 3, 32, 32) if name == "seed-cifar" else (2, 1, 28, 28)
        assert model(torch.randn(*shape)).shape == (2, 10)


def test_other_input_shapes():
    model = models.create("seed-cifar", input_shape=(1, 28, 28), num_classes=7)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 7)


def test_registry():
    names = models.list_models()
    assert {"seed-cifar", "tutorial-mnist"} <= set(names)
    assert isinstance(models.create("tutorial-mnist"), nn.Module)
    with pytest.raises(ValueError, match="unknown model 'resnet-9000'"):
        models.create("resnet-9000")
    with pytest.raises(ValueError, match="model 'seed-cifar' does not take wings; it takes stn, transform"):
        models.create("seed-cifar", wings=2)
    with pytest.warns(DeprecationWarning, match="list_models"):
        assert models.list() == names
    with pytest.raises(ValueError, match="unknown transform"):
        models.create("seed-cifar", transform="twirl")
