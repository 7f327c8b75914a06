"""The seed CIFAR-10 network and the tutorial's MNIST network, and the model registry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stn import models
from stn.layers import SpatialTransformer


class Net(nn.Module):
    """The seed's network as its own code writes it (the PyTorch STN tutorial's ``Net``, CIFAR-10
    widths when ``cifar``): the reference the registered models must print and compute as."""

    def __init__(self, cifar: bool = True) -> None:
        super().__init__()
        c, conv, fc, loc, hidden = (
            (3, (16, 32), (800, 1024), (64, 128), 256) if cifar else (1, (10, 20), (320, 50), (8, 10), 32)
        )
        self.conv1 = nn.Conv2d(c, conv[0], kernel_size=5)
        self.conv2 = nn.Conv2d(conv[0], conv[1], kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(*fc)
        self.fc2 = nn.Linear(fc[1], 10)
        self.localization = nn.Sequential(
            nn.Conv2d(c, loc[0], kernel_size=7),
            nn.MaxPool2d(2, stride=2),
            nn.ReLU(True),
            nn.Conv2d(loc[0], loc[1], kernel_size=5),
            nn.MaxPool2d(2, stride=2),
            nn.ReLU(True),
        )
        self.loc_features = loc[1] * (16 if cifar else 9)
        self.fc_loc = nn.Sequential(nn.Linear(self.loc_features, hidden), nn.ReLU(True), nn.Linear(hidden, 3 * 2))
        self.fc_loc[2].weight.data.zero_()
        self.fc_loc[2].bias.data.copy_(torch.tensor([1, 0, 0, 0, 1, 0], dtype=torch.float))

    def stn(self, x):
        xs = self.localization(x).view(-1, self.loc_features)
        theta = self.fc_loc(xs).view(-1, 2, 3)
        grid = F.affine_grid(theta, x.size(), align_corners=False)
        return F.grid_sample(x, grid, align_corners=False)

    def forward(self, x):
        x = self.stn(x)
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.view(-1, self.fc1.in_features)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, training=self.training)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


@pytest.mark.parametrize(("name", "cifar"), [("seed-cifar", True), ("tutorial-mnist", False)])
def test_the_registered_network_prints_as_the_seed_and_the_tutorial_print_theirs(name, cifar):
    ours, theirs = models.create(name), Net(cifar)
    assert str(ours).splitlines() == str(theirs).splitlines()  # the same children, order, names, line for line
    assert list(ours.state_dict()) == list(theirs.state_dict())
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in theirs.parameters()) == (1_585_008 if cifar else 27_360)


@pytest.mark.parametrize(("name", "cifar"), [("seed-cifar", True), ("tutorial-mnist", False)])
def test_weights_travel_both_ways_with_the_seeds_own_code(name, cifar, tmp_path):
    torch.manual_seed(3)
    theirs = Net(cifar)
    with torch.no_grad():  # a transformer that has learned something: not the identity
        theirs.fc_loc[2].weight.normal_(0, 0.01)
        theirs.fc_loc[2].bias.add_(0.1 * torch.randn(6))
    torch.save(theirs.state_dict(), tmp_path / "seed.pth")
    ours = models.create(name, weights=tmp_path / "seed.pth")
    x = torch.randn(4, 3 if cifar else 1, 32 if cifar else 28, 32 if cifar else 28)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), atol=1e-6, rtol=1e-6)
    back = Net(cifar)  # and stn's weights load into the seed's Net
    back.load_state_dict(models.create(name, weights=tmp_path / "seed.pth").state_dict())
    with torch.no_grad():
        torch.testing.assert_close(back.eval()(x), theirs(x), atol=0, rtol=0)


def test_the_transformer_over_the_seeds_layout_is_found_everywhere():
    """No weight twice, and the transformer is reachable where stn looks for one."""
    from stn.observe import observe, transformers

    model = models.create("seed-cifar")
    st = model.stn
    assert transformers(model) == [st] and st.localization is model.localization and st.fc_loc is model.fc_loc
    assert not any(isinstance(m, SpatialTransformer) for m in model.modules())  # not a child: printed as the seed
    model.eval()
    assert not st.training
    view = observe(model, torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8), [0.5] * 3, [0.25] * 3)
    assert view.params.shape == (2, 1, 6)
    fill = models.create("seed-cifar", fill=[0.1, 0.2, 0.3]).to(torch.float64)
    assert fill.stn.fill.dtype == torch.float64  # the transformer's own buffer follows the model


def test_weights_of_earlier_stn_versions_load(tmp_path):
    """stn's own checkpoints kept the transformer under ``stn.``."""
    state = {
        ("stn." + k if k.startswith(("localization", "fc_loc")) else k): v
        for k, v in models.create("seed-cifar").state_dict().items()
    }
    models.create("seed-cifar").load_state_dict(state)


def test_weights_that_do_not_fit_are_one_line(tmp_path):
    torch.save(Net(cifar=False).state_dict(), tmp_path / "mnist.pth")
    with pytest.raises(ValueError, match=r"do not fit Net: .*size mismatch"):
        models.create("seed-cifar", weights=tmp_path / "mnist.pth")
    with pytest.raises(ValueError, match="no such weights file"):
        models.create("seed-cifar", weights=tmp_path / "none.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="holds no state_dict"):
        models.create("seed-cifar", weights=tmp_path / "list.pth")


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


def test_the_transformer_can_be_replaced_or_removed():
    model = models.create("seed-cifar").eval()
    x = torch.randn(2, 3, 32, 32)
    model.stn = None
    assert model.spatial_transformers() == [] and "stn" not in dict(model.named_children())
    plain = models.create("seed-cifar", stn=False).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k in plain.state_dict()})
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x))
    other = models.create("seed-cifar")
    model.stn = other.stn  # other weights: a child of its own, moved and saved with the model
    assert model.spatial_transformers() == [other.stn] and any(k.startswith("stn.") for k in model.state_dict())
