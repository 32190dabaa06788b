"""VAE and HVAE: the ModelOutput contract for every model x prior x architecture x likelihood,
gradients, the public helpers, and importance sampling against numerical integration."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from conftest import ARCHITECTURES, LIKELIHOODS, MODELS, PRIORS, tiny_config
from torch import distributions as td
from torch import nn

from vae_core import models
from vae_core.distributions import reparameterize, standard_normal_log_prob
from vae_core.evaluate import elbo_terms, log_likelihood
from vae_core.models import HVAE, VAE, ModelOutput, build_model

COMBINATIONS = list(itertools.product(MODELS, PRIORS, ARCHITECTURES, LIKELIHOODS))


def data_for(likelihood: str, n: int = 6, shape=(1, 8, 8)) -> torch.Tensor:
    x = torch.rand(n, *shape)
    if likelihood == "bernoulli":
        return torch.bernoulli(x)
    if likelihood == "logistic":
        return (torch.floor(x * 256) + 0.5) / 256
    return x


@pytest.mark.parametrize("model_name, prior, architecture, likelihood", COMBINATIONS)
def test_forward_backward_and_one_adam_step(build, model_name, prior, architecture, likelihood):
    model = build(model=model_name, prior=prior, architecture=architecture, likelihood=likelihood)
    assert isinstance(model, VAE if model_name == "vae" else HVAE)
    x = data_for(likelihood)

    out = model(x, beta=0.3)
    assert isinstance(out, ModelOutput)
    for term in (out.elbo, out.reconstruction, out.kl):
        assert term.shape == (6,) and torch.isfinite(term).all()
    assert out.loss.shape == ()
    torch.testing.assert_close(out.elbo, out.reconstruction - out.kl)
    torch.testing.assert_close(out.loss, -(out.reconstruction - 0.3 * out.kl).mean())
    if likelihood != "gaussian":  # probabilities of discrete pixels: log p(x|z) <= 0
        assert (out.reconstruction <= 0).all()

    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    optimizer.zero_grad()
    out.loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
    optimizer.step()
    unchanged = [name for name, p in model.named_parameters() if torch.equal(p.detach(), before[name])]
    assert unchanged == []
    assert torch.isfinite(model(x).loss)


@pytest.mark.parametrize("model_name", MODELS)
def test_beta_only_scales_the_kl_in_the_loss(build, model_name):
    model = build(model=model_name, prior="mog")
    x = data_for("bernoulli")
    torch.manual_seed(1)
    full = model(x, beta=1.0)
    torch.manual_seed(1)
    none = model(x, beta=0.0)
    torch.testing.assert_close(full.elbo, none.elbo)  # the ELBO is always at beta = 1
    torch.testing.assert_close(none.loss, -none.reconstruction.mean())
    torch.testing.assert_close(full.loss, -full.elbo.mean())


@pytest.mark.parametrize("prior", PRIORS)
def test_vae_terms_are_evaluated_at_the_drawn_z(build, monkeypatch, prior):
    """reconstruction = log p(x|z) and kl = log q(z|x) - log p(z) at the z the forward pass drew,
    with q and p(z) computed by torch.distributions."""
    model = build(model="vae", prior=prior)
    drawn = []

    def recording_reparameterize(mean, logvar, num_samples=None):
        z = reparameterize(mean, logvar, num_samples)
        drawn.append(z.detach())
        return z

    monkeypatch.setattr(models, "reparameterize", recording_reparameterize)
    x = data_for("bernoulli")
    out = model(x)
    (z,) = drawn
    with torch.no_grad():
        mean, logvar = model.encoder(x)
        log_q = td.Independent(td.Normal(mean.double(), torch.exp(0.5 * logvar.double())), 1).log_prob(z.double())
        if prior == "standard":
            log_p = td.Independent(td.Normal(torch.zeros(3, dtype=torch.float64), 1.0), 1).log_prob(z.double())
        else:
            means, logvars = model.prior.components() if prior != "mog" else (model.prior.means, model.prior.logvars)
            stddevs = torch.exp(0.5 * logvars.double())
            mixture = td.MixtureSameFamily(td.Categorical(logits=torch.zeros(len(means), dtype=torch.float64)),
                                           td.Independent(td.Normal(means.double(), stddevs), 1))
            log_p = mixture.log_prob(z.double())
        log_px = td.Bernoulli(logits=model.decoder(z)[:, 0].double()).log_prob(x.double()).flatten(1).sum(-1)
    torch.testing.assert_close(out.kl.detach().double(), log_q - log_p, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(out.reconstruction.detach().double(), log_px, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_public_helpers_shapes_and_ranges(build, model_name, likelihood):
    model = build(model=model_name, prior="vampprior", likelihood=likelihood, latent_dim=3, latent_dim_z1=2)
    x = data_for(likelihood, n=5)
    with torch.no_grad():
        q = model.encode(x)
        assert isinstance(q, torch.distributions.Distribution)
        assert q.event_shape == (3,) and q.batch_shape == (5,)
        assert q.mean.shape == (5, 3) and q.stddev.shape == (5, 3)
        assert (q.stddev >= math.exp(-3) - 1e-6).all() and (q.stddev <= math.e + 1e-6).all()  # logvar in [-6, 2]

        for images in (model.decode(torch.randn(4, 3)), model.reconstruct(x), model.sample(7)):
            assert images.shape[1:] == (1, 8, 8)
            assert images.min() >= 0 and images.max() <= 1
        assert model.decode(torch.randn(4, 3)).shape[0] == 4
        assert model.reconstruct(x).shape == x.shape
        assert model.sample(7).shape == (7, 1, 8, 8)

        means = model.latent_means(x)
        if model_name == "vae":
            assert set(means) == {"z"} and means["z"].shape == (5, 3)
            torch.testing.assert_close(means["z"], q.mean)
        else:
            assert set(means) == {"z1", "z2"}
            assert means["z1"].shape == (5, 2) and means["z2"].shape == (5, 3)
            torch.testing.assert_close(means["z2"], q.mean)
        assert model.log_importance_weights(x, 4).shape == (4, 5)


def test_decode_is_the_likelihood_mean_of_the_decoder(build):
    model = build(likelihood="bernoulli")
    z = torch.randn(3, 3)
    with torch.no_grad():
        torch.testing.assert_close(model.decode(z), torch.sigmoid(model.decoder(z)[:, 0]))
        torch.testing.assert_close(model.reconstruct(torch.ones(1, 1, 8, 8)),
                                   model.decode(model.encode(torch.ones(1, 1, 8, 8)).mean))


def test_build_is_reproducible_with_a_seed(make_config):
    config = make_config(model="hvae", prior="mog")
    torch.manual_seed(5)
    a = build_model(config).state_dict()
    torch.manual_seed(5)
    b = build_model(config).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_models_move_to_float64(build):
    model = build(prior="vampprior").double()
    x = data_for("bernoulli").double()
    out = model(x)
    assert out.elbo.dtype == torch.float64
    assert model.sample(2).dtype == torch.float64


# --------------------------------------------------------------------------------------------
# Importance sampling


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("prior", ["standard", "vampprior"])
def test_importance_sampled_log_likelihood_is_above_the_elbo(build, digits, model_name, prior):
    model = build(model=model_name, prior=prior).eval()
    x = digits.x_test[:40]
    ll = log_likelihood(model, x, num_samples=300)
    assert ll.shape == (40,) and ll.dtype == np.float64 and np.isfinite(ll).all()
    elbo = np.mean([elbo_terms(model, x)["elbo"] for _ in range(5)])
    assert ll.mean() > elbo


PATTERNS = torch.tensor([[(i >> b) & 1 for b in range(4)] for i in range(16)], dtype=torch.float32)


def pattern_index(images: torch.Tensor) -> torch.Tensor:
    """The number 0..15 of each binary 2x2 image."""
    return (images.flatten(1) * 2 ** torch.arange(4)).sum(-1).round().long()


class LookupEncoder(nn.Module):
    """q(z | x) read from a table with one (mean, logvar) row per 2x2 binary image."""

    def __init__(self, means: torch.Tensor, logvars: torch.Tensor):
        super().__init__()
        self.register_buffer("means", means.float())
        self.register_buffer("logvars", logvars.float())

    def forward(self, images):
        index = pattern_index(images)
        return self.means[index], self.logvars[index]


def fit_encoders(model, x: torch.Tensor, encoders: list[nn.Module], steps: int = 200) -> None:
    """Train only the given encoders on the ELBO of x, then widen them (a safe IS proposal)."""
    optimizer = torch.optim.Adam([p for e in encoders for p in e.parameters()], lr=0.02)
    for _ in range(steps):
        optimizer.zero_grad()
        model(x).loss.backward()
        optimizer.step()
    with torch.no_grad():
        for encoder in encoders:
            encoder.head.logvar.bias.add_(math.log(1.5))
    model.zero_grad(set_to_none=True)


class GridModel:
    """A Bernoulli VAE on the 16 binary 2x2 images, latent_dim 1 or 2, standard prior, whose exact
    log p(x) = log integral p(x|z) p(z) dz is computed on a grid with the model's decoder."""

    def __init__(self, latent_dim: int, half_width: float, points: int, seed: int = 0, weight_scale: float = 2.0):
        torch.manual_seed(seed)
        config = tiny_config(input_shape=(1, 2, 2), latent_dim=latent_dim, hidden=16, prior="standard")
        self.model = build_model(config).eval()
        self.x = PATTERNS.reshape(16, 1, 2, 2)
        with torch.no_grad():  # a decoder that depends strongly on z, so p(x) is not trivial
            for layer in self.model.decoder.modules():
                if isinstance(layer, nn.Linear):
                    layer.weight.mul_(weight_scale)
        axis = torch.linspace(-half_width, half_width, points, dtype=torch.float64)
        self.grid = torch.stack(torch.meshgrid(*[axis] * latent_dim, indexing="ij"), -1).reshape(-1, latent_dim)
        self.log_cell = latent_dim * math.log(axis[1] - axis[0])

    @torch.no_grad()
    def log_joint(self) -> torch.Tensor:
        """log p(x, z) for every image and grid point: (16, G), float64."""
        params = self.model.decoder(self.grid.float())  # (G, 1, 1, 2, 2)
        log_prior = standard_normal_log_prob(self.grid)  # N(0, I), computed independently of the model
        return torch.stack([
            self.model.likelihood.log_prob(x.expand(len(self.grid), 1, 2, 2), params).double() + log_prior
            for x in self.x
        ])

    def exact_log_px(self) -> torch.Tensor:
        return torch.logsumexp(self.log_joint(), dim=1) + self.log_cell

    def use_posterior_moments_as_proposal(self, widen: float = 1.5) -> None:
        """q(z|x) = N(E[z|x], widen * Var[z|x]) per dimension, from the grid posterior."""
        log_joint = self.log_joint()
        posterior = torch.softmax(log_joint, dim=1)  # (16, G)
        mean = posterior @ self.grid
        var = posterior @ self.grid**2 - mean**2
        self.model.encoder = LookupEncoder(mean, torch.log(widen * var))


# a milder decoder in 2-D: its posteriors are correlated, which a diagonal q cannot follow
@pytest.mark.parametrize("latent_dim, half_width, points, weight_scale", [(1, 10.0, 20_001, 2.0), (2, 8.0, 321, 1.5)])
def test_importance_sampling_matches_numerical_integration(latent_dim, half_width, points, weight_scale):
    grid = GridModel(latent_dim, half_width, points, seed=1, weight_scale=weight_scale)
    exact = grid.exact_log_px()
    assert torch.logsumexp(exact, 0).item() == pytest.approx(0.0, abs=1e-4)  # p(x) sums to 1 over the 16 images
    grid.use_posterior_moments_as_proposal()
    estimate = log_likelihood(grid.model, grid.x.numpy(), num_samples=4000)
    error = np.abs(estimate - exact.numpy())
    assert error.max() < 0.05, error
    assert error.mean() < 0.015, error


def test_importance_sampling_with_the_prior_as_proposal_is_unbiased_on_average():
    """q(z|x) = N(0, 1.5 I) for every x: a poor proposal, so each estimate is noisy, but the mean
    error over the 16 images stays small."""
    grid = GridModel(1, 10.0, 20_001)
    exact = grid.exact_log_px()
    grid.model.encoder = LookupEncoder(torch.zeros(16, 1), torch.full((16, 1), math.log(1.5)))
    estimate = log_likelihood(grid.model, grid.x.numpy(), num_samples=5000)
    assert abs((estimate - exact.numpy()).mean()) < 0.03


class HierarchicalGridModel:
    """An HVAE with one-dimensional z1 and z2 on the 16 binary 2x2 images; log p(x) is the 2-D
    integral over (z1, z2) of p(x | z1, z2) p(z1 | z2) N(z2; 0, 1)."""

    def __init__(self, seed: int = 2):
        torch.manual_seed(seed)
        config = tiny_config(model="hvae", input_shape=(1, 2, 2), latent_dim=1, latent_dim_z1=1, hidden=16)
        self.model = build_model(config)
        self.x = PATTERNS.reshape(16, 1, 2, 2)
        with torch.no_grad():  # p(z1 | z2) with unit variance, so the grid resolves it
            self.model.prior_z1.head.logvar.weight.zero_()
            self.model.prior_z1.head.logvar.bias.zero_()
        fit_encoders(self.model, self.x, [self.model.encoder, self.model.encoder_z1])
        self.model.eval()

    @torch.no_grad()
    def exact_log_px(self, half_width: float = 9.0, points: int = 601) -> torch.Tensor:
        axis = torch.linspace(-half_width, half_width, points, dtype=torch.float64)
        z1, z2 = (t.reshape(-1, 1) for t in torch.meshgrid(axis, axis, indexing="ij"))
        mean1, logvar1 = self.model.prior_z1(z2.float())
        log_p_z1 = torch.distributions.Normal(mean1.double(), torch.exp(0.5 * logvar1.double())).log_prob(z1)[:, 0]
        log_p_z2 = torch.distributions.Normal(0.0, 1.0).log_prob(z2)[:, 0]
        params = self.model.decoder(z1.float(), z2.float())
        log_cell = 2 * math.log(axis[1] - axis[0])
        rows = []
        for x in self.x:
            log_px = self.model.likelihood.log_prob(x.expand(len(z1), 1, 2, 2), params).double()
            rows.append(torch.logsumexp(log_px + log_p_z1 + log_p_z2, 0) + log_cell)
        return torch.stack(rows)


def test_hvae_importance_sampling_matches_numerical_integration():
    grid = HierarchicalGridModel()
    exact = grid.exact_log_px()
    assert torch.logsumexp(exact, 0).item() == pytest.approx(0.0, abs=1e-4)
    estimate = log_likelihood(grid.model, grid.x.numpy(), num_samples=4000)
    error = np.abs(estimate - exact.numpy())
    assert error.max() < 0.05, error
    assert error.mean() < 0.015, error
    elbo = np.mean([elbo_terms(grid.model, grid.x.numpy())["elbo"] for _ in range(20)])
    assert estimate.mean() >= elbo
