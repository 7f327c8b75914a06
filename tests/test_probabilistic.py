"""The probabilistic spatial transformer (stn.probabilistic) and the ``pstn-cnn`` model."""

from __future__ import annotations

import math

import pytest
import torch

import stn
from stn import models
from stn.observe import tap
from stn.probabilistic import ProbabilisticSpatialTransformer, gaussian_kl


def layer(samples: int = 4, **options) -> ProbabilisticSpatialTransformer:
    loc, features = stn.conv_localization((1, 28, 28))
    return ProbabilisticSpatialTransformer(
        loc, "affine", in_features=features, hidden=(16,), samples=samples, **options
    )


def test_identity_start_every_image_at_the_initial_scale():
    st = layer(init_scale=0.05)
    mean, scale = st.predict_distribution(torch.randn(5, 1, 28, 28))
    torch.testing.assert_close(mean, st.transform.identity(5))
    torch.testing.assert_close(scale, torch.full((5, 6), 0.05))
    assert layer().init_scale == layer().prior_scale == 0.1  # the initial scale defaults to the prior's


def test_one_sample_and_zero_scale_is_the_plain_spatial_transformer():
    loc, features = stn.conv_localization((1, 28, 28))
    plain = stn.SpatialTransformer(loc, "affine", in_features=features, hidden=(16,))
    st = ProbabilisticSpatialTransformer(loc, "affine", in_features=features, hidden=(16,), samples=1, init_scale=0)
    st.fc_loc.load_state_dict(plain.fc_loc.state_dict())
    with torch.no_grad():
        plain.fc_loc[-1].bias.add_(0.1 * torch.randn(6))  # away from the identity
        st.fc_loc[-1].bias.copy_(plain.fc_loc[-1].bias)
    x = torch.randn(3, 1, 28, 28)
    for mode in (True, False):
        plain.train(mode), st.train(mode)
        torch.testing.assert_close(st(x), plain(x))
        torch.testing.assert_close(st.last_params, plain.last_params)
    assert torch.equal(st.last_scale, torch.zeros(3, 6))


def test_the_model_with_one_sample_and_zero_scale_is_st_cnn():
    x = torch.randn(2, 1, 28, 28)
    plain = models.create("paper-cnn", input_shape=(1, 28, 28), stn=True, transform="affine")
    prob = models.create("pstn-cnn", input_shape=(1, 28, 28), samples=1, init_scale=0.0)
    prob.load_state_dict(plain.state_dict(), strict=False)  # all but the scale head
    for mode in (True, False):
        torch.testing.assert_close(prob.train(mode)(x), plain.train(mode)(x))


def test_samples_are_stacked_sample_major():
    st = layer(samples=3).eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        st.fc_scale[-1].bias.fill_(-1.0)  # a visible spread
    out = st(x)
    assert out.shape == (12, 1, 28, 28)
    params = st.sample_params(st.last_params, st.last_scale)  # eval: the fixed draws
    assert params.shape == (3, 4, 6)
    for s in range(3):
        for n in (0, 3):
            torch.testing.assert_close(out[s * 4 + n], st.sample(x[n : n + 1], params[s, n : n + 1])[0])
    torch.testing.assert_close(out[:4], st.sample(x, st.last_params))  # the first sample is the mean


def test_the_tap_sees_the_mean_and_the_mean_warp_and_a_stopping_tap_keeps_the_scale():
    st = layer(samples=3).eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad(), tap(st, stop=True) as seen:
        seen.run(st, x)  # cut short at the report: what the layer keeps is kept before it
    (call,) = seen.calls
    assert call.module is st and call.output.shape == (4, 1, 28, 28)
    torch.testing.assert_close(call.params, st.last_params)
    torch.testing.assert_close(call.output, st.sample(x, st.last_params))  # eval: the mean warp
    assert st.last_scale is not None and st.last_scale.shape == (4, 6)


def test_eval_is_deterministic_training_draws_afresh():
    st = layer(samples=2)
    x = torch.randn(3, 1, 28, 28)
    st.eval()
    torch.testing.assert_close(st(x), st(x))
    st.train()
    assert (st(x) - st(x)).abs().max() > 1e-3


def test_a_batch_gives_each_image_what_it_gives_alone_in_eval():
    st = layer(samples=3).eval()
    with torch.no_grad():
        st.fc_loc[-1].weight.normal_(0, 0.01)
        st.fc_scale[-1].weight.normal_(0, 0.1)
    x = torch.randn(4, 1, 28, 28)
    together = st(x).view(3, 4, 1, 28, 28)
    alone = torch.stack([st(x[i : i + 1]) for i in range(4)], 1)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_marginal_is_the_log_of_the_mean_probability():
    st = layer(samples=3)
    log_probs = torch.log_softmax(torch.randn(3 * 5, 10, dtype=torch.float64), 1)
    expected = log_probs.view(3, 5, 10).exp().mean(0).log()
    torch.testing.assert_close(st.marginal(log_probs), expected)
    assert torch.equal(layer(samples=1).marginal(log_probs), log_probs)
    with pytest.raises(ValueError, match="S\\*N"):
        st.marginal(log_probs[:7])


def test_gaussian_kl_against_torch_distributions_and_gradcheck():
    mean, scale = torch.randn(4, 6, dtype=torch.float64), torch.rand(4, 6, dtype=torch.float64) + 0.05
    prior = torch.randn(6, dtype=torch.float64)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, scale), torch.distributions.Normal(prior, torch.full_like(prior, 0.3))
    ).sum(-1)
    torch.testing.assert_close(gaussian_kl(mean, scale, prior, 0.3), expected)
    mean.requires_grad_(), scale.requires_grad_()
    assert torch.autograd.gradcheck(lambda m, s: gaussian_kl(m, s, prior, 0.3), (mean, scale))


def test_layer_gradcheck_float64():
    loc = torch.nn.Sequential(torch.nn.AvgPool2d(4), torch.nn.Flatten())
    st = ProbabilisticSpatialTransformer(loc, "affine", (5, 5), in_features=4, samples=3).double().eval()
    with torch.no_grad():
        st.fc_loc.weight.normal_(0, 0.05)
        st.fc_scale.weight.normal_(0, 0.5)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(st, (x,), atol=1e-6)


def test_extra_loss_is_the_weighted_kl_once_per_training_forward():
    st = layer(kl_weight=0.5)
    x = torch.randn(6, 1, 28, 28)
    st.eval()(x)
    assert st.extra_loss() is None  # eval: no KL term
    st.train()(x)
    mean, scale = st.last_params, st.last_scale
    expected = 0.5 * gaussian_kl(mean, scale, st.transform.identity(1)[0], st.prior_scale).mean()
    loss = st.extra_loss()
    torch.testing.assert_close(loss, expected)
    assert loss.requires_grad and st.extra_loss() is None  # reported once


def test_kl_annealing_ramps_the_weight_up_over_the_steps():
    st = layer(kl_weight=2.0, kl_anneal_steps=4).train()
    x = torch.randn(2, 1, 28, 28)
    weights = []
    for _ in range(6):
        weights.append(float(st.current_kl_weight()))
        st(x)
    assert weights == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.0, 2.0])
    assert int(st.steps) == 6 and "steps" in st.state_dict()  # resumes where it stopped
    assert float(layer(kl_weight=0.3).current_kl_weight()) == pytest.approx(0.3)


def test_the_scale_head_learns_from_the_classification_loss():
    model = models.create("pstn-cnn", input_shape=(1, 28, 28), samples=2)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    log_probs = model(x)
    assert log_probs.shape == (16, 10)
    torch.nn.functional.nll_loss(log_probs, y.repeat(2)).backward()
    head = model.stn.fc_scale[-1]
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0


def test_the_model_marginalises_in_eval():
    model = models.create("pstn-cnn", input_shape=(1, 28, 28), samples=3).eval()
    x = torch.randn(2, 1, 28, 28)
    out = model(x)
    assert out.shape == (2, 10)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(2))
    per_sample = torch.log_softmax(model.classifier(model.stn(x)), 1)
    torch.testing.assert_close(out, torch.logsumexp(per_sample.view(3, 2, 10), 0) - math.log(3))
    assert models.create("pstn-cnn", stn=False)(x).shape == (2, 10)


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(samples=0), "samples"),
        (dict(prior_scale=0), "prior_scale"),
        (dict(init_scale=-1), "init_scale"),
        (dict(kl_weight=-1), "kl_weight"),
        (dict(kl_anneal_steps=1.5), "kl_anneal_steps"),
    ],
)
def test_bad_options_are_value_errors(options, match):
    with pytest.raises(ValueError, match=match):
        layer(**options)
