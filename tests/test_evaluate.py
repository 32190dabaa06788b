"""Evaluation metrics on constructed cases whose answer is known."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from vae_core import evaluate as ev
from vae_core import models


class ConstantEncoder(nn.Module):
    """q(z|x) = N(0, I) for every x."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.anchor = nn.Parameter(torch.zeros(()))  # so model_device() finds a parameter

    def forward(self, x):
        zeros = torch.zeros(x.shape[0], self.latent_dim, device=x.device) * self.anchor
        return zeros, zeros


class SignEncoder(nn.Module):
    """1-D q(z|x) = N(+-2, 0.25), the sign from the first pixel being on or off."""

    def forward(self, x):
        mean = torch.where(x.flatten(1)[:, :1] > 0.5, 2.0, -2.0)
        return mean, torch.full_like(mean, math.log(0.25))


def deterministic_samples(monkeypatch):
    """Make every draw z = mean (the IS weight is then the same for every sample)."""

    def at_mean(mean, logvar, num_samples=None):
        return mean if num_samples is None else mean.expand(num_samples, *mean.shape)

    monkeypatch.setattr(models, "reparameterize", at_mean)


# --------------------------------------------------------------------------------------------
# Active units


def test_active_units_counts_the_dimensions_the_encoder_uses(build, digits):
    model = build(latent_dim=5, hidden=32)
    with torch.no_grad():  # dims 1 and 3 ignore x; the others are scaled up to be clearly active
        head = model.encoder.head.mean
        head.weight.mul_(10.0)
        head.weight[[1, 3]] = 0.0
        head.bias[[1, 3]] = 0.7
    x = digits.x_test[:200]
    assert ev.active_units(model, x) == {"z": 3}
    means = ev.posterior_means(model, x, batch_size=64)
    activity = ev.unit_activity(means)
    assert activity["z"][[1, 3]].max() < 1e-9  # zero up to float32 rounding
    assert (activity["z"][[0, 2, 4]] > 0.01).all()


def test_unit_activity_is_the_variance_of_the_posterior_means(build, digits):
    model = build(model="hvae", latent_dim=4, latent_dim_z1=3)
    x = digits.x_test[:100]
    means = ev.posterior_means(model, x, batch_size=30)
    assert set(means) == {"z1", "z2"} and means["z1"].shape == (100, 3) and means["z2"].shape == (100, 4)
    with torch.no_grad():
        direct = model.encode(torch.as_tensor(x)).mean.numpy()
    np.testing.assert_allclose(means["z2"], direct, atol=1e-6)
    activity = ev.unit_activity(means)
    np.testing.assert_allclose(activity["z2"], np.var(direct, axis=0), rtol=1e-5)
    assert ev.active_units(model, x, threshold=0.0) == {"z1": 3, "z2": 4}
    assert ev.active_units(model, x, threshold=1e9) == {"z1": 0, "z2": 0}


def test_default_active_unit_threshold():
    assert ev.ACTIVE_UNIT_THRESHOLD == 0.01


# --------------------------------------------------------------------------------------------
# Aggregated posterior KL


def test_aggregated_posterior_kl_is_zero_when_q_z_is_the_prior(build, digits):
    model = build(prior="standard", latent_dim=3)
    model.encoder = ConstantEncoder(3)
    assert ev.aggregated_posterior_kl(model, digits.x_test[:300]) == pytest.approx(0.0, abs=1e-6)


def test_aggregated_posterior_kl_matches_numerical_integration(build):
    """q(z) = 1/2 N(-2, 0.25) + 1/2 N(2, 0.25) against N(0, 1): KL by quadrature on a grid."""
    model = build(prior="standard", latent_dim=1)
    model.encoder = SignEncoder()
    model.add_module("anchor", nn.Linear(1, 1))  # model_device() needs a parameter
    x = np.zeros((2000, 1, 2, 2), dtype=np.float32)
    x[::2, 0, 0, 0] = 1.0  # half the images on, half off
    grid = torch.linspace(-10, 10, 20_001, dtype=torch.float64)
    q = 0.5 * (torch.distributions.Normal(-2.0, 0.5).log_prob(grid).exp()
               + torch.distributions.Normal(2.0, 0.5).log_prob(grid).exp())
    p = torch.distributions.Normal(0.0, 1.0).log_prob(grid).exp()
    exact = torch.trapezoid(q * torch.log(q / p), grid).item()
    estimate = ev.aggregated_posterior_kl(model, x, max_points=2000)
    assert estimate == pytest.approx(exact, abs=0.1)
    assert exact > 1.0


def test_aggregated_posterior_kl_subsamples_reproducibly(build, digits):
    model = build(prior="vampprior")
    x = digits.x_test[:250]
    torch.manual_seed(1)
    a = ev.aggregated_posterior_kl(model, x, max_points=100, seed=3)
    torch.manual_seed(1)
    b = ev.aggregated_posterior_kl(model, x, max_points=100, seed=3)
    assert a == b and math.isfinite(a)


# --------------------------------------------------------------------------------------------
# ELBO and log-likelihood


def test_elbo_terms_are_the_means_of_the_forward_pass(build, digits):
    model = build(prior="mog")
    x = digits.x_test[:50]
    torch.manual_seed(7)
    terms = ev.elbo_terms(model, x, batch_size=50)
    torch.manual_seed(7)
    with torch.no_grad():
        out = model(torch.as_tensor(x))
    assert set(terms) == {"elbo", "reconstruction", "kl", "loss"}
    assert terms["elbo"] == pytest.approx(out.elbo.mean().item(), rel=1e-6)
    assert terms["reconstruction"] == pytest.approx(out.reconstruction.mean().item(), rel=1e-6)
    assert terms["kl"] == pytest.approx(out.kl.mean().item(), rel=1e-6)
    assert terms["loss"] == -terms["elbo"]


def test_elbo_terms_do_not_depend_on_the_batch_size(build, digits, monkeypatch):
    deterministic_samples(monkeypatch)
    model = build(prior="vampprior")
    x = digits.x_test[:50]
    whole = ev.elbo_terms(model, x, batch_size=1000)
    chunked = ev.elbo_terms(model, x, batch_size=7)
    for name in whole:
        assert chunked[name] == pytest.approx(whole[name], rel=1e-5)


@pytest.mark.parametrize("model_name", ["vae", "hvae"])
@pytest.mark.parametrize("num_samples, max_rows", [(1, 1), (1, 10_000), (5, 3), (5, 12), (7, 10_000), (40, 16)])
def test_log_likelihood_chunks_cover_every_point_and_sample_in_order(build, digits, monkeypatch, model_name,
                                                                     num_samples, max_rows):
    """With z at the posterior mean every importance weight of a point is the same number w(x), so
    log (1/S) sum_s w = log w(x) whatever the chunking; a chunk that is skipped, repeated or
    misaligned shows up as log(k/S) or as another point's value."""
    deterministic_samples(monkeypatch)
    model = build(model=model_name, prior="vampprior")
    x = digits.x_test[:23]
    with torch.no_grad():
        expected = model.log_importance_weights(torch.as_tensor(x), 1)[0].double().numpy()
    assert len(np.unique(expected.round(4))) > 20  # distinct per point, so the order is checked
    seen = []
    ll = ev.log_likelihood(model, x, num_samples=num_samples, max_rows=max_rows,
                           progress=lambda done, total: seen.append((done, total)))
    assert ll.shape == (23,) and ll.dtype == np.float64
    np.testing.assert_allclose(ll, expected, atol=1e-4)
    assert seen[-1] == (23, 23) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_log_likelihood_chunking_agrees_within_monte_carlo_noise(build, digits):
    model = build(prior="vampprior").eval()
    x = digits.x_test[:20]
    a = ev.log_likelihood(model, x, num_samples=400, max_rows=10_000)
    b = ev.log_likelihood(model, x, num_samples=400, max_rows=64)  # the samples of a point in 7 chunks
    difference = a - b  # independent estimates of the same numbers: mean zero
    assert abs(difference.mean()) < 4 * difference.std(ddof=1) / math.sqrt(len(x)) + 1e-3
    assert np.abs(difference).max() < 1.0


def test_chunks_are_sized_by_the_memory_a_row_takes(build, digits, monkeypatch):
    """A row's largest activation is measured, not assumed: a PixelCNN's (64 maps per pixel) is far
    larger than an MLP's, so fewer of its rows fit in one chunk; within the budget, the cap holds."""
    x = torch.as_tensor(digits.x_test[:1])
    mlp = build(model="hvae", prior="vampprior")
    pixel = build(model="hvae", prior="vampprior", architecture="conv", pixel_model="pixelcnn")
    mlp_bytes = ev.activation_bytes_per_row(mlp, x, mlp.prior.frozen())
    pixel_bytes = ev.activation_bytes_per_row(pixel, x, pixel.prior.frozen())
    assert mlp_bytes == 4 * 64  # the decoder's 64 logits of an 8 x 8 image, float32
    assert pixel_bytes == 4 * 64 * 64  # the PixelCNN's 64 maps of 8 x 8
    assert ev.memory_sized_rows(mlp, x, mlp.prior.frozen()) == ev.CPU_MAX_ROWS
    monkeypatch.setattr(ev, "CPU_MEMORY_BUDGET", 100 * ev.ACTIVATION_OVERHEAD * pixel_bytes)
    assert ev.memory_sized_rows(pixel, x, pixel.prior.frozen()) == 100


def test_sizing_and_timing_the_chunks_leave_the_random_numbers_alone(build, digits):
    """The same seed gives the same estimate as before these measurements existed."""
    model = build(prior="vampprior").eval()
    x = digits.x_test[:5]
    torch.manual_seed(4)
    expected = ev.log_likelihood(model, x, num_samples=50, max_rows=1000)  # given max_rows: no probe
    torch.manual_seed(4)
    ev.estimate_seconds(model, x, num_samples=50)
    np.testing.assert_array_equal(ev.log_likelihood(model, x, num_samples=50), expected)


def test_the_time_estimate_extrapolates_one_timed_chunk(build, digits, monkeypatch):
    model = build(prior="vampprior").eval()
    clock = iter([10.0, 10.5])  # one chunk takes 0.5 s
    monkeypatch.setattr(ev.time, "perf_counter", lambda: next(clock))
    # 30 points, 100 samples, 40 rows a chunk: 3 chunks per point (40 + 40 + 20 samples)
    assert ev.estimate_seconds(model, digits.x_test[:30], num_samples=100, max_rows=40) == pytest.approx(45.0)
    clock = iter([0.0, 2.0])  # 400 samples, 1,000 rows: 2 points a chunk, 15 chunks
    assert ev.estimate_seconds(model, digits.x_test[:30], num_samples=400, max_rows=1000) == pytest.approx(30.0)


def test_log_likelihood_rejects_zero_samples(build, digits):
    with pytest.raises(AssertionError):
        ev.log_likelihood(build(), digits.x_test[:2], num_samples=0)


def test_bits_per_dim_formula():
    assert ev.bits_per_dim(-784 * math.log(2) * 2.5, (1, 28, 28)) == pytest.approx(2.5)
    # 256 equally likely grey levels per pixel are 8 bits
    assert ev.bits_per_dim(-3 * 4 * 4 * math.log(256), (3, 4, 4)) == pytest.approx(8.0)


# --------------------------------------------------------------------------------------------
# Sharpness: the decoder's entropy


def test_decoder_entropy_of_bernoulli_pixels_is_the_sum_of_binary_entropies():
    torch.manual_seed(0)
    likelihood = models.LIKELIHOODS["bernoulli"]()
    params = torch.randn(3, 1, 1, 8, 8) * 2  # logits
    p = torch.sigmoid(params[:, 0])
    exact = -(p * p.log() + (1 - p) * (1 - p).log()).flatten(1).sum(-1)
    torch.testing.assert_close(ev.decoder_entropy(likelihood, params, draws=4000), exact, atol=0.25, rtol=0)  # ~4 MC errors


def test_decoder_entropy_of_the_discretised_logistic_sums_over_its_256_bins():
    torch.manual_seed(0)
    likelihood = models.LIKELIHOODS["logistic"]()
    params = torch.stack([torch.randn(2, 1, 4, 4), torch.full((2, 1, 4, 4), -3.0)], dim=1)  # scale e^-3
    bins = (torch.arange(256) + 0.5) / 256
    exact = torch.zeros(2)  # log_prob sums over pixels: enumerate each pixel's 256 bins on its own
    for i in range(4):
        for j in range(4):
            pixel = params[:, :, :, i : i + 1, j : j + 1]  # (2, 2, 1, 1, 1)
            log_p = torch.stack([likelihood.log_prob(torch.full((2, 1, 1, 1), float(b)), pixel) for b in bins])
            exact -= (log_p.exp() * log_p).sum(0)
    torch.testing.assert_close(ev.decoder_entropy(likelihood, params, draws=4000), exact, atol=0.25, rtol=0)  # ~4 MC errors


@pytest.mark.parametrize("model_name", ["vae", "hvae"])
def test_sample_sharpness_compares_prior_and_posterior_draws_reproducibly(build, digits, model_name):
    model = build(model=model_name, prior="vampprior").eval()
    first = ev.sample_sharpness(model, digits.x_test, num_samples=60, draws=2, seed=3, batch_size=25)
    assert set(first) == {"prior", "posterior"} and all(0 < v < 64 * math.log(2) for v in first.values())
    assert ev.sample_sharpness(model, digits.x_test, num_samples=60, draws=2, seed=3, batch_size=25) == first
    torch.manual_seed(5)
    params = model.prior_decoder_params(7)
    torch.manual_seed(5)
    torch.testing.assert_close(model.sample(7), model.likelihood.mean(params))
    assert params.shape == (7, 1, 1, 8, 8) and model.posterior_decoder_params(
        torch.as_tensor(digits.x_test[:4])).shape == (4, 1, 1, 8, 8)


# --------------------------------------------------------------------------------------------
# evaluate()


@pytest.mark.parametrize("model_name, input_type", [("vae", "binary"), ("hvae", "gray")])
def test_evaluate_returns_the_documented_metrics(build, digits, model_name, input_type):
    model = build(model=model_name, prior="vampprior")
    x = digits.x_test[:30]
    progress = []
    metrics = ev.evaluate(model, x, num_samples=20, input_type=input_type,
                          progress=lambda done, total: progress.append(done))
    expected = {"log_likelihood", "log_likelihood_stderr", "elbo", "reconstruction", "kl", "active_units",
                "unit_activity", "aggregated_posterior_kl", "decoder_entropy", "samples", "n_test", "seconds"}
    if input_type == "gray":
        expected.add("bits_per_dim")
        assert metrics["bits_per_dim"] == pytest.approx(ev.bits_per_dim(metrics["log_likelihood"], (1, 8, 8)))
    assert set(metrics) == expected
    json.loads(json.dumps(metrics))  # JSON-able as is
    layers = {"z"} if model_name == "vae" else {"z1", "z2"}
    assert set(metrics["active_units"]) == layers == set(metrics["unit_activity"])
    assert metrics["samples"] == 20 and metrics["n_test"] == 30 and progress[-1] == 30
    assert metrics["elbo"] == pytest.approx(metrics["reconstruction"] - metrics["kl"], abs=1e-4)
    assert metrics["log_likelihood"] > metrics["elbo"] - 1.0  # IS is a tighter bound (up to MC noise)
    assert not model.training


def test_evaluate_per_point_values_average_to_the_reported_log_likelihood(build, digits):
    model = build(model="vae", prior="vampprior")
    torch.manual_seed(0)
    metrics = ev.evaluate(model, digits.x_test[:12], num_samples=10, per_point=True)
    values = np.asarray(metrics["log_likelihood_per_point"])
    assert values.shape == (12,) and np.isfinite(values).all()
    assert values.mean() == pytest.approx(metrics["log_likelihood"])
    assert values.std(ddof=1) / np.sqrt(12) == pytest.approx(metrics["log_likelihood_stderr"])


def test_one_test_image_has_an_undefined_standard_error(build, digits):
    metrics = ev.evaluate(build(prior="vampprior"), digits.x_test[:1], num_samples=5)
    assert metrics["n_test"] == 1 and metrics["log_likelihood_stderr"] is None
    assert json.loads(json.dumps(metrics))["log_likelihood_stderr"] is None


def test_an_empty_test_set_is_a_clear_error(build, digits):
    with pytest.raises(ValueError, match="no test images"):
        ev.evaluate(build(), digits.x_test[:0], num_samples=5)


def test_standard_error():
    values = [1.0, 2.0, 4.0, 7.0]
    assert ev.standard_error(values) == pytest.approx(np.std(values, ddof=1) / 2)
    assert ev.standard_error(np.array([3.0, 3.0])) == 0.0
    assert ev.standard_error([5.0]) is None and ev.standard_error([]) is None


def test_count_active_counts_dimensions_above_the_threshold():
    activity = {"z1": np.array([0.0, 0.02, 0.5]), "z2": [0.01, 0.011]}
    assert ev.count_active(activity) == {"z1": 2, "z2": 1}
    assert ev.count_active(activity, threshold=0.1) == {"z1": 1, "z2": 0}
    metrics_activity = {"z": np.array([0.001, 0.3, 0.02])}
    assert ev.count_active(metrics_activity) == ev.count_active({"z": metrics_activity["z"].tolist()})
