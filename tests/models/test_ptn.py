"""The polar transformer network ``ptn-cnn``: wrap-around classifier, invariance, the whole model."""

from __future__ import annotations

import pytest
import torch

from stn import models
from stn.models.ptn import PolarClassifier, WrapConv2d
from stn.observe import first_transformer
from stn.polar import PolarTransformer


def test_wrap_conv_pads_the_rows_circularly_and_the_columns_with_zeros():
    conv = WrapConv2d(1, 1, 3, stride=2).double()
    x = torch.randn(2, 1, 6, 9, dtype=torch.float64)
    wrapped = torch.cat((x[:, :, -1:], x, x[:, :, :1]), dim=2)  # rows wrap around
    expected = torch.nn.functional.conv2d(wrapped, conv.weight, stride=(1, 2), padding=(0, 1))
    torch.testing.assert_close(conv(x), expected)
    assert conv(x).shape == (2, 1, 6, 5)  # stride on the radius axis only
    with pytest.raises(ValueError, match="odd"):
        WrapConv2d(1, 1, 4)


@pytest.mark.parametrize("pool", ["angle", "all"])
def test_rolling_the_polar_image_by_one_row_leaves_the_pooled_features_unchanged(pool):
    classifier = PolarClassifier(1, 12, 10, channels=(4, 6, 6), strides=(1, 2, 1), pool=pool).double().eval()
    with torch.no_grad():  # batch norm statistics that are not the identity
        for m in classifier.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(3, 1, 16, 12, dtype=torch.float64)
    features = classifier.pooled(x)
    assert features.shape == (3, 6 * (6 if pool == "angle" else 1))
    for shift in (1, 5, -3):
        torch.testing.assert_close(classifier.pooled(x.roll(shift, dims=2)), features, atol=1e-12, rtol=0)
    # ... but not rolling along the radius axis, nor changing the image: the test can fail.
    assert (classifier.pooled(x.roll(1, dims=3)) - features).abs().max() > 1e-3
    assert (classifier.pooled(x.flip(2)) - features).abs().max() > 1e-3


def test_wrap_conv_and_classifier_gradcheck_float64():
    conv = WrapConv2d(2, 3, 3, stride=2).double()
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(conv, (x,))
    classifier = PolarClassifier(1, 6, 3, channels=(2, 2), strides=(1, 2)).double().eval()
    y = torch.randn(2, 1, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(classifier, (y,))


def test_the_model_returns_log_probabilities_and_holds_one_polar_transformer():
    model = models.create("ptn-cnn", input_shape=(1, 28, 28), num_classes=10, transform="polar")
    out = model(torch.randn(4, 1, 28, 28))
    assert out.shape == (4, 10) and (out <= 0).all()
    torch.testing.assert_close(out.exp().sum(1), torch.ones(4))
    st = first_transformer(model)
    assert isinstance(st, PolarTransformer) and st.last_params.shape == (4, 2)
    assert models.describe("ptn-cnn").default_dataset == "mnist-rot"
    rts = models.create("ptn-cnn", input_shape=(1, 42, 42), num_classes=10, transform="polar", polar_size=(20, 14))
    assert rts(torch.randn(2, 1, 42, 42)).shape == (2, 10) and rts.stn.output_size == (20, 14)


def test_an_untrained_model_is_invariant_to_quarter_turns_about_the_centre():
    # The origin starts at the centre; a quarter turn of the input rolls the polar image's rows,
    # and the classifier does not see a roll.
    model = models.create("ptn-cnn", transform="polar", polar_size=(16, 12)).double().eval()
    x = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    torch.testing.assert_close(model(torch.rot90(x, 1, (2, 3))), model(x), atol=1e-9, rtol=0)
    shifted = torch.roll(x, 3, dims=3)  # a different image gives another answer
    assert (model(shifted) - model(x)).abs().max() > 1e-6


def test_without_its_transformer_it_samples_about_the_centre():
    with_st = models.create("ptn-cnn", transform="polar").eval()
    without = models.create("ptn-cnn", transform="polar", stn=False).eval()
    without.classifier.load_state_dict(with_st.classifier.state_dict())
    assert first_transformer(without) is None
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(without(x), with_st(x), atol=1e-5, rtol=1e-5)


def test_the_origin_predictor_learns_from_the_classification_loss():
    model = models.create("ptn-cnn", transform="polar")
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    torch.nn.functional.nll_loss(model(x), y).backward()
    last = model.stn.localization[-1]
    assert last.weight.grad is not None and last.weight.grad.abs().sum() > 0


def test_bad_options_are_value_errors():
    with pytest.raises(ValueError, match="transform must be 'polar'"):
        models.create("ptn-cnn", transform="affine")
    with pytest.raises(ValueError, match="pool"):
        models.create("ptn-cnn", transform="polar", pool="max")
    with pytest.raises(ValueError, match="equally long"):
        models.create("ptn-cnn", transform="polar", channels=(8, 8), strides=(1,))
