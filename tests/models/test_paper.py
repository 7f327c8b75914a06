"""The paper's distorted-MNIST networks: FCN, CNN, ST-FCN and ST-CNN with each transform."""

from __future__ import annotations

import pytest
import torch

from stn import models
from stn.layers import SpatialTransformer
from stn.models import paper
from stn.models.paper import classifier_size

TRANSFORMS = ["affine", "projective", "tps"]
SHAPES = [(1, 28, 28), (1, 42, 42), (1, 60, 60)]  # R, P, E; RTS; TC


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[1]}px")
@pytest.mark.parametrize("name", ["paper-fcn", "paper-cnn"])
@pytest.mark.parametrize("transform", [None, *TRANSFORMS])
def test_builds_and_returns_log_probabilities(name, transform, shape):
    options = dict(stn=False) if transform is None else dict(stn=True, transform=transform)
    model = models.create(name, input_shape=shape, num_classes=10, **options)
    out = model(torch.randn(4, *shape))
    assert out.shape == (4, 10)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(4))
    assert (out <= 0).all()
    st = [m for m in model.modules() if isinstance(m, SpatialTransformer)]
    assert len(st) == (0 if transform is None else 1)
    if st:
        assert st[0].transform.name == transform
        assert st[0].last_params.shape == (4, st[0].transform.num_params)


def test_tps_has_the_papers_16_control_points():
    model = models.create("paper-cnn", input_shape=(1, 28, 28), num_classes=10, stn=True, transform="tps")
    assert model.stn.transform.grid_size == (4, 4) and model.stn.transform.num_params == 32


@pytest.mark.parametrize("name", ["paper-fcn", "paper-cnn"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[1]}px")
def test_an_untrained_transformer_sees_what_the_baseline_sees(name, shape):
    # The transformer starts at the identity and samples at the classifier's size: with the same
    # classifier weights, ST network and baseline give the same output.
    st_net = models.create(name, input_shape=shape, num_classes=10, stn=True, transform="affine").eval()
    base = models.create(name, input_shape=shape, num_classes=10, stn=False).eval()
    base.classifier.load_state_dict(st_net.classifier.state_dict())
    x = torch.randn(3, *shape)
    torch.testing.assert_close(st_net(x), base(x), atol=1e-5, rtol=1e-5)


def test_an_fcn_can_have_the_convolutional_localisation_network():
    model = models.create("paper-fcn", input_shape=(1, 56, 56), num_classes=10, stn=True, localization="cnn")
    assert any(isinstance(m, torch.nn.Conv2d) for m in model.stn.localization.modules())
    assert not any(isinstance(m, torch.nn.Conv2d) for m in model.classifier.modules())
    assert model(torch.randn(2, 1, 56, 56)).shape == (2, 10)
    with pytest.raises(ValueError, match="localization"):
        models.create("paper-fcn", input_shape=(1, 28, 28), num_classes=10, stn=True, localization="rnn")


def test_the_cnn_is_the_papers():
    model = models.create("paper-cnn", input_shape=(1, 28, 28), num_classes=10, stn=False)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(32, (9, 9)), (32, (7, 7))]
    assert classifier_size(28, 28) == (28, 28) and classifier_size(42, 42) == (28, 28)
    assert classifier_size(60, 60) == (30, 30)


def test_the_transformer_learns_from_the_classification_loss():
    model = models.create("paper-cnn", input_shape=(1, 42, 42), num_classes=10, stn=True, transform="projective")
    x, y = torch.randn(8, 1, 42, 42), torch.randint(0, 10, (8,))
    torch.nn.functional.nll_loss(model(x), y).backward()
    head = model.stn.fc_loc[-1]
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0


def test_bad_options_are_value_errors():
    with pytest.raises(ValueError, match="too small"):
        models.create("paper-cnn", input_shape=(1, 12, 12), num_classes=10, stn=False)
    with pytest.raises(ValueError, match="unknown transform"):
        models.create("paper-fcn", input_shape=(1, 28, 28), num_classes=10, stn=True, transform="swirl")


@pytest.mark.parametrize("channels_last", [False, True])
def test_the_input_gradient_convolution_gives_nn_conv2ds_gradients(channels_last):
    torch.manual_seed(0)
    fast = paper.InputGradConv2d(1, 4, 5)
    plain = torch.nn.Conv2d(1, 4, 5)
    plain.load_state_dict(fast.state_dict())
    image = torch.randn(3, 1, 11, 9)
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    results = []
    for conv in (fast, plain):
        conv.zero_grad()
        x = image.clone().requires_grad_(True)
        out = conv(x)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out.detach(), x.grad, conv.weight.grad, conv.bias.grad))
    for ours, theirs in zip(*results, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(paper._InputGradConv.apply, (x, weight, None))


def test_the_classifier_behind_a_transformer_takes_the_fast_input_gradient():
    st_cnn = paper.paper_cnn((1, 28, 28), stn=True)
    assert isinstance(st_cnn.classifier[0], paper.InputGradConv2d)
    assert type(paper.paper_cnn((3, 28, 28), stn=True).classifier[0]) is torch.nn.Conv2d
    state = paper.paper_cnn((1, 28, 28), stn=True).state_dict()
    st_cnn.load_state_dict(state)  # the same keys as nn.Conv2d's
    with torch.no_grad():  # no input gradient: nn.Conv2d's own path
        assert st_cnn(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with torch.autocast("cpu", torch.bfloat16):  # nn.Conv2d's path too
        output = st_cnn(torch.zeros(2, 1, 28, 28))
    torch.nn.functional.nll_loss(output.float(), torch.tensor([0, 1])).backward()
    assert st_cnn.classifier[0].weight.grad.dtype == torch.float32


def test_the_cnn_takes_its_filters_and_then_has_about_the_fcns_parameters():
    def count(model):
        return sum(p.numel() for p in model.parameters())

    fcn = count(models.create("paper-fcn", input_shape=(1, 28, 28), stn=False))
    wide = models.create("paper-cnn", input_shape=(1, 28, 28), stn=False, channels=[32, 64])
    convs = [m for m in wide.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64]
    assert 0.85 < count(wide) / fcn < 1.0  # the paper: every network has about the same number
    assert count(models.create("paper-cnn", input_shape=(1, 28, 28), stn=False)) < fcn / 2  # the default's half
    for bad in ([32], [32, 0], [32, 6.5]):
        with pytest.raises(ValueError, match="channels must be 2 positive integers"):
            models.create("paper-cnn", input_shape=(1, 28, 28), channels=bad)
    with pytest.raises(ValueError, match="the FCN has none"):
        models.create("paper-fcn", input_shape=(1, 28, 28), channels=[32, 64])
