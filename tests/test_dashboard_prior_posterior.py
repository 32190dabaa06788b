"""dashboard.prior_posterior: densities, samples, marginals, KL and the decoded manifold."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dashboard import prior_posterior
from vae_core import paths
from vae_core.config import ModelConfig
from vae_core.models import build_model
from vae_core.priors import GaussianMixturePrior


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """Every test gets its own cache folder: nothing is written under the real home."""
    monkeypatch.setenv(paths.CACHE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def points():
    return np.random.default_rng(0).normal(size=(120, 6)).astype(np.float32)


def tiny_model(prior="vampprior", latent_dim=2, components=5, model="vae", seed=0):
    torch.manual_seed(seed)
    config = ModelConfig(model=model, prior=prior, input_shape=(1, 8, 8), latent_dim=latent_dim,
                         latent_dim_z1=3, hidden=16, components=components)
    return build_model(config).eval()


def images(n=40, seed=0):
    return np.random.default_rng(seed).random((n, 1, 8, 8)).astype(np.float32)


def test_contour_grid_is_the_prior_log_density_on_the_grid():
    torch.manual_seed(0)
    prior = GaussianMixturePrior(torch.randn(3, 2), torch.randn(3, 2) * 0.3, learnable=False)
    xs, ys, log_p = prior_posterior.density_grid(lambda z: prior_posterior.prior_log_prob(prior, z), (-2, 2), (-1, 3), resolution=25)
    fig = prior_posterior.prior_contour_figure(xs, ys, log_p, samples=np.zeros((4, 2)), labels=[0, 0, 1, 1])
    (contour,) = [t for t in fig.data if t.type == "contour"]
    gx, gy = np.meshgrid(xs, ys)
    grid = torch.tensor(np.stack([gx, gy], axis=-1), dtype=torch.float32)
    expected = prior.log_prob(grid.reshape(-1, 2)).reshape(25, 25).double().numpy()
    np.testing.assert_allclose(np.asarray(contour.z), expected, rtol=1e-5)
    assert np.asarray(contour.z)[3, 7] == pytest.approx(prior.log_prob(torch.tensor([[xs[7], ys[3]]])).item(), rel=1e-5)
    assert [t.name for t in fig.data if t.type == "scatter"] == ["label 0", "label 1"]
    density = prior_posterior.prior_contour_figure(xs, ys, log_p, density=True)
    np.testing.assert_allclose(np.asarray(density.data[0].z), np.exp(log_p))


def test_vampprior_log_prob_frozen_matches_live():
    model = tiny_model()
    z = np.random.default_rng(0).normal(size=(17, 2))
    np.testing.assert_allclose(prior_posterior.prior_log_prob(model.prior.frozen(), z), prior_posterior.prior_log_prob(model.prior, z),
                               rtol=1e-5)


def test_grid_limits_cover_the_points():
    xlim, ylim = prior_posterior.grid_limits(np.array([[0.0, 0.0], [1.0, 2.0]]))
    assert xlim[0] < 0 < 1 < xlim[1] and ylim[0] < 0 < 2 < ylim[1]


def test_marginal_and_log_prob_histograms_have_two_traces_per_panel():
    rng = np.random.default_rng(0)
    prior, post = rng.normal(size=(50, 6)), rng.normal(size=(50, 6))
    fig = prior_posterior.marginals_figure(prior, post, dims=[0, 3, 5], layer="z2")
    assert len(fig.data) == 6 and all(t.type == "histogram" for t in fig.data)
    assert [a.text for a in fig.layout.annotations] == ["z2[0]", "z2[3]", "z2[5]"]
    assert sum(t.showlegend for t in fig.data) == 2
    hist = prior_posterior.log_prob_histogram_figure(rng.normal(size=20), rng.normal(size=30))
    assert [len(t.x) for t in hist.data] == [30, 20]


def test_aggregated_posterior_samples_are_reproducible():
    model, x = tiny_model(), images(12)
    z, labels = prior_posterior.aggregated_posterior_samples(model, x, np.arange(12), per_image=3, seed=4)
    again, _ = prior_posterior.aggregated_posterior_samples(model, x, np.arange(12), per_image=3, seed=4)
    assert z.shape == (36, 2) and list(labels[:6]) == [0, 0, 0, 1, 1, 1]
    np.testing.assert_array_equal(z, again)
    z, labels = prior_posterior.aggregated_posterior_samples(model, x, None, per_image=1, max_images=5)
    assert z.shape == (5, 2) and labels is None


def test_kl_is_zero_when_the_prior_is_the_aggregated_posterior():
    """A VampPrior whose pseudo-inputs are exactly the N images IS q(z) = 1/N sum_n q(z|x_n)."""
    x = images(20)
    model = tiny_model(components=20)
    with torch.no_grad():
        model.prior.pseudo_input_params.copy_(torch.as_tensor(x))
    assert prior_posterior.estimate_aggregated_kl(model, x) == pytest.approx(0.0, abs=1e-4)
    other = tiny_model(prior="standard", seed=1)
    assert prior_posterior.estimate_aggregated_kl(other, x, seed=3) == prior_posterior.estimate_aggregated_kl(other, x, seed=3)
