"""Observation models p(x | z): normalisation, agreement with torch.distributions, samples."""

from __future__ import annotations

import decimal
import math

import numpy as np
import pytest
import torch
from torch import distributions as td
from torch.nn import functional as F

from vae_core.likelihoods import (
    DECODER_LOGVAR_RANGE,
    LIKELIHOODS,
    BernoulliLikelihood,
    DiscretizedLogisticLikelihood,
    GaussianLikelihood,
    log1mexp,
)

BINS = 256
BIN_CENTRES = (torch.arange(BINS, dtype=torch.float32) + 0.5) / BINS


def bin_log_probs(likelihood, location: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log P(bin i) for each of M parameter pairs: (M,) raw parameters -> (M, 256)."""
    m = location.shape[0]
    params = torch.stack([location, log_scale], dim=1)  # (M, 2)
    params = params[:, None, :].expand(m, BINS, 2).reshape(m * BINS, 2, 1, 1, 1)
    x = BIN_CENTRES.repeat(m).reshape(m * BINS, 1, 1, 1)
    return likelihood.log_prob(x, params).reshape(m, BINS)


def reference_bin_probabilities(mu: float, log_scale: float) -> np.ndarray:
    """float64 logistic CDF differences; the outer bins reach to -inf and +inf."""
    s = math.exp(log_scale)
    edges = np.arange(BINS + 1, dtype=np.float64) / BINS
    cdf = 1 / (1 + np.exp(-(edges - mu) / s))
    cdf[0], cdf[-1] = 0.0, 1.0
    return np.diff(cdf)


# --------------------------------------------------------------------------------------------
# Discretised logistic


def test_discretized_logistic_sums_to_one_over_all_bins():
    likelihood = DiscretizedLogisticLikelihood()
    location = torch.cat([6 * torch.randn(40), torch.tensor([-30.0, 30.0, 0.0, -30.0, 30.0, 0.0])])
    log_scale = torch.cat([-6 + 7 * torch.rand(40), torch.tensor([-10.0, -10.0, -10.0, 5.0, 5.0, 5.0])])
    log_p = bin_log_probs(likelihood, location, log_scale)
    assert torch.isfinite(log_p).all()
    total = torch.logsumexp(log_p.double(), dim=-1).exp()
    torch.testing.assert_close(total, torch.ones_like(total), atol=1e-5, rtol=0)


@pytest.mark.parametrize("location, log_scale", [(0.0, -4.5), (0.0, 0.0), (2.0, -2.0), (-3.0, -1.0),
                                                 (8.0, -4.5), (-8.0, -3.0)])
def test_discretized_logistic_bins_match_float64_cdf_differences(location, log_scale):
    log_p = bin_log_probs(DiscretizedLogisticLikelihood(), torch.tensor([location]), torch.tensor([log_scale]))[0]
    mu = 1 / (1 + math.exp(-location))
    clamped = min(max(log_scale, DECODER_LOGVAR_RANGE[0]), DECODER_LOGVAR_RANGE[1])
    expected = reference_bin_probabilities(mu, clamped)
    reliable = expected > 1e-9  # float64 CDF differences are accurate there
    np.testing.assert_allclose(log_p.double().numpy()[reliable], np.log(expected[reliable]), atol=2e-4, rtol=1e-4)


def test_discretized_logistic_log_prob_is_finite_in_the_far_tails():
    likelihood = DiscretizedLogisticLikelihood()
    # the sharpest scale with the mean at one end and x at the other
    params = torch.tensor([[-40.0, -9.0], [40.0, -9.0]]).reshape(2, 2, 1, 1, 1)
    x = torch.tensor([1.0, 0.0]).reshape(2, 1, 1, 1)
    log_p = likelihood.log_prob(x, params)
    assert torch.isfinite(log_p).all() and (log_p < -50).all()
    params.requires_grad_(True)
    likelihood.log_prob(x, params).sum().backward()
    assert torch.isfinite(params.grad).all()


def test_discretized_logistic_gradients_are_finite_everywhere():
    likelihood = DiscretizedLogisticLikelihood()
    params = torch.cat([10 * torch.randn(64, 1), -6 + 7 * torch.rand(64, 1)], dim=1).requires_grad_(True)
    x = BIN_CENTRES[torch.randint(BINS, (64,))]
    likelihood.log_prob(x.reshape(64, 1, 1, 1), params.reshape(64, 2, 1, 1, 1)).sum().backward()
    assert torch.isfinite(params.grad).all()


def test_discretized_logistic_puts_the_mode_at_the_mean():
    log_p = bin_log_probs(DiscretizedLogisticLikelihood(), torch.tensor([0.0]), torch.tensor([-4.5]))[0]
    assert log_p.argmax().item() in (127, 128)  # mu = sigmoid(0) = 0.5 is the edge between these bins


def test_discretized_logistic_treats_a_whole_bin_alike():
    likelihood = DiscretizedLogisticLikelihood()
    params = torch.randn(3, 2, 1, 2, 2)
    x = torch.full((3, 1, 2, 2), 100.2 / 256)
    torch.testing.assert_close(likelihood.log_prob(x, params), likelihood.log_prob(x + 0.6 / 256, params))
    # x = 1.0 exactly belongs to the top bin
    top = torch.ones(3, 1, 2, 2)
    torch.testing.assert_close(likelihood.log_prob(top, params), likelihood.log_prob(top - 0.5 / 256, params))


def test_discretized_logistic_samples_follow_the_bin_probabilities():
    likelihood = DiscretizedLogisticLikelihood()
    location, log_scale = torch.tensor([0.3]), torch.tensor([-2.0])
    params = torch.stack([location, log_scale], 1).reshape(1, 2, 1, 1, 1).expand(20_000, 2, 1, 1, 1)
    samples = likelihood.sample(params).flatten()
    assert samples.shape == (20_000,)
    index = torch.floor(samples * BINS)
    torch.testing.assert_close(samples, (index + 0.5) / BINS)  # every sample is a bin centre
    frequencies = torch.bincount(index.long(), minlength=BINS).double() / len(samples)
    probabilities = bin_log_probs(likelihood, location, log_scale)[0].double().exp()
    assert 0.5 * (frequencies - probabilities).abs().sum().item() < 0.05


# --------------------------------------------------------------------------------------------
# Bernoulli and Gaussian


def test_bernoulli_matches_torch_bernoulli():
    likelihood = BernoulliLikelihood()
    logits = 5 * torch.randn(6, 1, 1, 3, 4)
    x = torch.bernoulli(torch.full((6, 1, 3, 4), 0.4))
    expected = td.Bernoulli(logits=logits[:, 0].double()).log_prob(x.double()).flatten(1).sum(-1)
    torch.testing.assert_close(likelihood.log_prob(x, logits).double(), expected, atol=1e-4, rtol=1e-6)


def test_bernoulli_probabilities_of_all_outcomes_sum_to_one():
    likelihood = BernoulliLikelihood()
    logits = torch.randn(1, 1, 1, 2, 2).expand(16, 1, 1, 2, 2)
    outcomes = torch.tensor([[(i >> b) & 1 for b in range(4)] for i in range(16)], dtype=torch.float32)
    log_p = likelihood.log_prob(outcomes.reshape(16, 1, 2, 2), logits)
    assert torch.logsumexp(log_p, 0).item() == pytest.approx(0.0, abs=1e-5)


def test_bernoulli_is_stable_for_extreme_logits():
    likelihood = BernoulliLikelihood()
    logits = torch.tensor([200.0, -200.0]).reshape(2, 1, 1, 1, 1)
    x = torch.tensor([1.0, 0.0]).reshape(2, 1, 1, 1)
    assert torch.allclose(likelihood.log_prob(x, logits), torch.zeros(2))
    assert torch.allclose(likelihood.log_prob(1 - x, logits), torch.full((2,), -200.0))


def test_gaussian_matches_torch_normal_with_the_papers_mapping():
    likelihood = GaussianLikelihood()
    params = torch.cat([3 * torch.randn(5, 1, 2, 3, 3), -8 + 10 * torch.rand(5, 1, 2, 3, 3)], dim=1)
    x = torch.rand(5, 2, 3, 3)
    mean = torch.sigmoid(params[:, 0])
    logvar = torch.clamp(params[:, 1], -4.5, 0.0)  # Hardtanh(-4.5, 0)
    expected = td.Normal(mean.double(), torch.exp(0.5 * logvar.double())).log_prob(x.double()).flatten(1).sum(-1)
    torch.testing.assert_close(likelihood.log_prob(x, params).double(), expected, atol=1e-4, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_log_prob_is_one_number_per_example(name):
    likelihood = LIKELIHOODS[name]()
    params = torch.randn(4, likelihood.params_per_pixel, 1, 5, 3)
    x = torch.rand(4, 1, 5, 3)
    if name == "bernoulli":
        x = torch.bernoulli(x)
    log_p = likelihood.log_prob(x, params)
    assert log_p.shape == (4,)
    # the sum over pixels: one pixel changed changes only its own example
    x2 = x.clone()
    x2[2, 0, 1, 1] = 1 - x2[2, 0, 1, 1]
    changed = likelihood.log_prob(x2, params) != log_p
    assert changed.tolist() == [False, False, True, False]


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_mean_and_sample_shapes_and_ranges(name):
    likelihood = LIKELIHOODS[name]()
    params = 3 * torch.randn(7, likelihood.params_per_pixel, 2, 4, 4)
    mean = likelihood.mean(params)
    assert mean.shape == (7, 2, 4, 4)
    assert mean.min() > 0 and mean.max() < 1
    sample = likelihood.sample(params)
    assert sample.shape == (7, 2, 4, 4)
    if name == "bernoulli":
        assert set(sample.unique().tolist()) <= {0.0, 1.0}
    elif name == "logistic":
        assert sample.min() > 0 and sample.max() < 1
    else:
        assert torch.isfinite(sample).all()


def test_gaussian_samples_have_the_right_moments():
    likelihood = GaussianLikelihood()
    params = torch.tensor([0.4, -2.0]).reshape(1, 2, 1, 1, 1).expand(20_000, 2, 1, 1, 1)
    samples = likelihood.sample(params).flatten()
    assert samples.mean().item() == pytest.approx(torch.sigmoid(torch.tensor(0.4)).item(), abs=0.01)
    assert samples.std().item() == pytest.approx(math.exp(-1.0), abs=0.01)


def test_bernoulli_samples_have_the_right_frequency():
    likelihood = BernoulliLikelihood()
    params = torch.full((20_000, 1, 1, 1, 1), -1.0)
    assert likelihood.sample(params).mean().item() == pytest.approx(1 / (1 + math.e), abs=0.01)


def test_decoder_clamp_range_is_the_papers():
    assert DECODER_LOGVAR_RANGE == (-4.5, 0.0)
    x = torch.linspace(-10, 10, 11)
    torch.testing.assert_close(F.hardtanh(x, *DECODER_LOGVAR_RANGE), x.clamp(-4.5, 0.0))


# --------------------------------------------------------------------------------------------
# log1mexp


def test_log1mexp_matches_a_float64_reference():
    a32 = torch.tensor(-np.concatenate([np.logspace(-7, 2, 400), [math.log(2)]]), dtype=torch.float32)
    with decimal.localcontext() as context:  # 50 digits at exactly the float32 inputs
        context.prec = 50
        expected = np.array([float((1 - decimal.Decimal(a).exp()).ln()) for a in a32.double().tolist()])
    actual = log1mexp(a32).double().numpy()
    np.testing.assert_allclose(actual, expected, rtol=2e-6, atol=1e-30)


def test_log1mexp_gradient_is_finite_and_correct():
    a = torch.tensor([-1e-30, -1e-9, -1e-3, -0.5, -math.log(2), -1.0, -20.0, -200.0], requires_grad=True)
    log1mexp(a).sum().backward()
    expected = -1 / torch.expm1(-a.detach().double())  # d/da log(1 - e^a) = -e^a / (1 - e^a) = -1 / (e^-a - 1)
    assert torch.isfinite(a.grad[1:]).all()
    torch.testing.assert_close(a.grad[1:].double(), expected[1:], rtol=1e-5, atol=1e-30)


def test_log1mexp_at_the_extremes():
    assert log1mexp(torch.tensor(-100.0)).item() == pytest.approx(-math.exp(-100), abs=1e-40)
    assert log1mexp(torch.tensor(-1e-6, dtype=torch.float64)).item() == pytest.approx(math.log(1e-6), rel=1e-6)
    assert log1mexp(torch.tensor(0.0)).item() == -math.inf
