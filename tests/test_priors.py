"""Priors: densities against torch.distributions, sampling against the density, the VampPrior's
wiring into the model (pseudo-inputs, gradients, shared encoder, state dict)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import distributions as td
from torch import nn

from vae_core.priors import PRIORS, GaussianMixturePrior, StandardNormalPrior, VampPrior


def uniform_mixture(means: torch.Tensor, stddevs: torch.Tensor) -> td.Distribution:
    means, stddevs = means.double(), stddevs.double()
    weights = td.Categorical(logits=torch.zeros(means.shape[0], dtype=torch.float64))
    return td.MixtureSameFamily(weights, td.Independent(td.Normal(means, stddevs), 1))


def binned_probabilities(log_density, edges: torch.Tensor, points_per_bin: int = 50) -> np.ndarray:
    """Probability of each bin [edges[i], edges[i+1]) by the trapezoid rule on a fine grid."""
    probabilities = []
    for low, high in zip(edges[:-1], edges[1:]):
        grid = torch.linspace(low.item(), high.item(), points_per_bin, dtype=torch.float64)
        probabilities.append(torch.trapezoid(log_density(grid).exp(), grid).item())
    return np.array(probabilities)


def histogram_total_variation(samples: torch.Tensor, log_density, edges: torch.Tensor) -> float:
    counts, _ = np.histogram(samples.detach().numpy().ravel(), bins=edges.numpy())
    return 0.5 * np.abs(counts / len(samples) - binned_probabilities(log_density, edges)).sum()


def test_registry_lists_the_four_priors():
    assert set(PRIORS) == {"standard", "mog", "vampprior", "vampprior-data"}


# --------------------------------------------------------------------------------------------
# Standard normal


def test_standard_prior_log_prob_and_samples():
    prior = StandardNormalPrior(4)
    z = 2 * torch.randn(10, 4)
    expected = td.Independent(td.Normal(torch.zeros(4), torch.ones(4)), 1).log_prob(z)
    torch.testing.assert_close(prior.log_prob(z), expected, atol=1e-5, rtol=1e-6)
    samples = prior.sample(20_000)
    assert samples.shape == (20_000, 4)
    torch.testing.assert_close(samples.mean(0), torch.zeros(4), atol=0.04, rtol=0)
    torch.testing.assert_close(samples.std(0), torch.ones(4), atol=0.04, rtol=0)
    assert list(prior.parameters()) == [] and prior.state_dict() == {}
    assert prior.frozen().log_prob(z).equal(prior.log_prob(z))


def test_standard_prior_follows_the_model_to_another_dtype():
    prior = StandardNormalPrior(2).to(torch.float64)
    assert prior.sample(3).dtype == torch.float64


# --------------------------------------------------------------------------------------------
# Mixture of Gaussians


def test_mog_prior_log_prob_matches_mixture_same_family():
    prior = GaussianMixturePrior(torch.randn(6, 3), -6 + 8 * torch.rand(6, 3))
    z = 2 * torch.randn(25, 3)
    expected = uniform_mixture(prior.means.detach(), torch.exp(0.5 * prior.logvars.detach())).log_prob(z.double())
    torch.testing.assert_close(prior.log_prob(z).double(), expected, atol=1e-4, rtol=1e-6)


def test_mog_prior_parameters_are_learnable():
    prior = GaussianMixturePrior.build(latent_dim=3, num_components=5)
    assert prior.num_components == 5 and prior.latent_dim == 3
    assert {name for name, _ in prior.named_parameters()} == {"means", "logvars"}
    prior.log_prob(torch.randn(8, 3)).sum().backward()
    assert prior.means.grad.abs().sum() > 0 and prior.logvars.grad.abs().sum() > 0


def test_mog_prior_samples_follow_its_density():
    means = torch.tensor([[-6.0], [0.0], [5.0]])
    logvars = torch.log(torch.tensor([[0.5], [1.0], [0.25]]) ** 2)
    prior = GaussianMixturePrior(means, logvars)
    samples = prior.sample(20_000)
    assert samples.shape == (20_000, 1)
    edges = torch.linspace(-10, 9, 77, dtype=torch.float64)
    tv = histogram_total_variation(samples, lambda g: prior.log_prob(g[:, None].float()).double(), edges)
    assert tv < 0.03
    # every component gets its third of the samples
    nearest = (samples - means.T).abs().argmin(-1)
    shares = torch.bincount(nearest, minlength=3) / len(samples)
    torch.testing.assert_close(shares, torch.full((3,), 1 / 3), atol=0.02, rtol=0)


def test_mog_frozen_prior_is_a_constant_copy():
    prior = GaussianMixturePrior.build(latent_dim=2, num_components=4)
    frozen = prior.frozen()
    z = torch.randn(9, 2)
    assert torch.equal(frozen.log_prob(z), prior.log_prob(z).detach())
    assert list(frozen.parameters()) == []
    assert not frozen.log_prob(z).requires_grad
    with torch.no_grad():
        prior.means.add_(1.0)  # training the prior later does not change the snapshot
    assert not torch.equal(frozen.log_prob(z), prior.log_prob(z))


# --------------------------------------------------------------------------------------------
# VampPrior inside a model


@pytest.mark.parametrize("model_name", ["vae", "hvae"])
@pytest.mark.parametrize("prior_name", ["vampprior", "vampprior-data"])
def test_vampprior_is_the_mixture_of_encoder_posteriors_at_the_pseudo_inputs(build, model_name, prior_name):
    model = build(model=model_name, prior=prior_name, latent_dim=3, components=7)
    prior = model.prior
    u = prior.pseudo_inputs
    with torch.no_grad():
        q = model.encode(u)  # q(z | u_k) (q(z2 | u_k) for the HVAE)
    assert q.mean.shape == (7, 3)
    reference = uniform_mixture(q.mean, q.stddev)
    z = torch.cat([q.sample((3,)).reshape(-1, 3), 3 * torch.randn(10, 3)])
    torch.testing.assert_close(prior.log_prob(z).detach().double(), reference.log_prob(z.double()),
                               atol=1e-4, rtol=1e-6)


@pytest.mark.parametrize("prior_name", ["vampprior", "vampprior-data"])
def test_pseudo_inputs_are_images_in_the_unit_interval(build, make_config, prior_name):
    config = make_config(prior=prior_name, components=6)
    model = build(config)
    u = model.prior.pseudo_inputs
    assert u.shape == (6, *config.input_shape)
    assert u.min().item() >= 0.0 and u.max().item() <= 1.0
    with torch.no_grad():  # even when the unconstrained values leave [0, 1]
        model.prior.pseudo_input_params.mul_(10).sub_(3)
    u = model.prior.pseudo_inputs
    assert u.min().item() == 0.0 and u.max().item() == 1.0


def test_random_init_follows_the_configured_normal(build, make_config):
    config = make_config(prior="vampprior", components=200, pseudo_init_mean=0.3, pseudo_init_std=0.05)
    u = build(config).prior.pseudo_inputs.detach()
    assert u.mean().item() == pytest.approx(0.3, abs=0.005)
    assert u.std().item() == pytest.approx(0.05, abs=0.005)


def test_data_init_uses_real_training_images(build, make_config, digits):
    config = make_config(prior="vampprior-data", components=10)
    images = torch.as_tensor(digits.x_train)
    u = build(config, train_images=digits.x_train).prior.pseudo_inputs.detach()
    # each pseudo-input is one of the training images up to the paper's N(0, 0.01) jitter
    distance = (u[:, None] - images[None]).abs().flatten(2).max(-1).values  # (K, N) max pixel difference
    nearest = distance.min(-1)
    assert nearest.values.max().item() < 0.06
    assert len(set(nearest.indices.tolist())) == 10  # K different images
    assert (u - images[nearest.indices]).abs().mean().item() < 0.01


def test_pseudo_inputs_are_a_parameter_that_receives_gradients(build, binary_batch):
    model = build(prior="vampprior")
    params = model.prior.pseudo_input_params
    assert isinstance(params, nn.Parameter)
    assert any(p is params for p in model.parameters())  # so the optimiser trains them
    model(binary_batch).loss.backward()
    assert params.grad is not None and params.grad.abs().sum().item() > 0
    assert torch.isfinite(params.grad).all()


def test_data_initialised_pseudo_inputs_receive_gradients_on_binary_images(build, make_config):
    """Binary images sit exactly on Hardtanh's kinks at 0 and 1, where its gradient is zero."""
    images = (np.random.default_rng(0).random((40, 1, 8, 8)) < 0.3).astype(np.float32)
    model = build(make_config(prior="vampprior-data", components=8), train_images=images)
    model(torch.as_tensor(images[:10])).loss.backward()
    moving = (model.prior.pseudo_input_params.grad != 0).float().mean().item()
    assert moving > 0.25


@pytest.mark.parametrize("model_name", ["vae", "hvae"])
def test_encoder_weights_are_stored_once(build, model_name):
    model = build(model=model_name, prior="vampprior")
    keys = list(model.state_dict())
    assert [k for k in keys if k.startswith("prior.")] == ["prior.pseudo_input_params"]
    encoder_keys = [k for k in keys if k.startswith("encoder.")]
    assert encoder_keys and len(encoder_keys) == len(model.encoder.state_dict())
    # parameters are not duplicated either (the optimiser would see the encoder twice)
    assert len(list(model.parameters())) == len({id(p) for p in model.parameters()})
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == sum(t.numel() for t in model.state_dict().values())


def test_vampprior_uses_the_models_current_encoder(build):
    model = build(prior="vampprior")
    z = torch.randn(5, 3)
    before = model.prior.log_prob(z).detach()
    with torch.no_grad():
        model.encoder.head.mean.bias.add_(0.5)
    after = model.prior.log_prob(z).detach()
    assert not torch.allclose(before, after)
    q = model.encode(model.prior.pseudo_inputs)
    torch.testing.assert_close(after.double(), uniform_mixture(q.mean.detach(), q.stddev.detach()).log_prob(z.double()),
                               atol=1e-4, rtol=1e-6)


def test_vampprior_gradient_reaches_the_encoder_through_the_prior(build):
    model = build(prior="vampprior")
    model.prior.log_prob(torch.randn(4, 3)).sum().backward()
    assert model.encoder.head.mean.weight.grad.abs().sum() > 0
    assert model.decoder.output[0].weight.grad is None  # the prior alone does not touch the decoder


@pytest.mark.parametrize("prior_name", ["standard", "mog", "vampprior", "vampprior-data"])
def test_sample_shape(build, prior_name):
    model = build(prior=prior_name, latent_dim=3, components=5)
    with torch.no_grad():
        assert model.prior.sample(11).shape == (11, 3)
        assert model.prior.sample(1).shape == (1, 3)


@pytest.mark.parametrize("prior_name", ["mog", "vampprior"])
def test_frozen_prior_matches_and_has_no_gradients(build, prior_name):
    model = build(prior=prior_name, latent_dim=3, components=5)
    frozen = model.prior.frozen()
    z = 2 * torch.randn(20, 3)
    torch.testing.assert_close(frozen.log_prob(z), model.prior.log_prob(z).detach(), atol=1e-6, rtol=1e-6)
    assert list(frozen.parameters()) == []
    assert not frozen.log_prob(z).requires_grad
    assert frozen.sample(4).shape == (4, 3) and not frozen.sample(4).requires_grad


# --------------------------------------------------------------------------------------------
# VampPrior sampling: from every component, following the density


class LookupEncoder(nn.Module):
    """A known q(z | u): mean = 10 * (pixel value of u), log-variance fixed; 1-D latent."""

    def __init__(self, logvar: float = -6.0):
        super().__init__()
        self.logvar = logvar

    def forward(self, images):
        mean = 10 * images.flatten(1)[:, :1]
        return mean, torch.full_like(mean, self.logvar)


def lookup_vampprior(k: int, logvar: float = -6.0) -> VampPrior:
    levels = torch.linspace(0.05, 0.95, k)  # component k sits at z = 10 * levels[k]
    pseudo_inputs = levels[:, None, None, None].expand(k, 1, 2, 2).clone()
    return VampPrior(LookupEncoder(logvar), latent_dim=1, pseudo_inputs=pseudo_inputs)


def test_vampprior_log_prob_with_a_known_encoder():
    prior = lookup_vampprior(5, logvar=-1.0)
    centres = 10 * torch.linspace(0.05, 0.95, 5)[:, None]
    z = torch.linspace(-2, 12, 57)[:, None]
    expected = uniform_mixture(centres, torch.full_like(centres, np.exp(-0.5))).log_prob(z.double())
    torch.testing.assert_close(prior.log_prob(z).double(), expected, atol=1e-4, rtol=1e-6)


def test_vampprior_samples_every_component_not_the_first_n():
    k = 8
    prior = lookup_vampprior(k)
    centres = 10 * torch.linspace(0.05, 0.95, k)
    component_of = lambda z: (z - centres).abs().argmin(-1)  # noqa: E731  (components are 1.3 apart, std 0.05)
    # many small draws (n < K): a sampler that decoded the first n pseudo-inputs would only hit 0..n-1
    small = torch.cat([component_of(prior.sample(2)) for _ in range(200)])
    assert set(small.tolist()) == set(range(k))
    shares = torch.bincount(component_of(prior.sample(16_000)), minlength=k) / 16_000
    torch.testing.assert_close(shares, torch.full((k,), 1 / k), atol=0.015, rtol=0)


def test_vampprior_samples_follow_its_density():
    prior = lookup_vampprior(4, logvar=-1.0)
    samples = prior.sample(20_000)
    edges = torch.linspace(-4, 14, 73, dtype=torch.float64)
    tv = histogram_total_variation(samples, lambda g: prior.log_prob(g[:, None].float()).double(), edges)
    assert tv < 0.03


def test_model_vampprior_samples_follow_its_density_in_one_dimension(build):
    """The real encoder at random pseudo-inputs, a 1-D latent: histogram of samples vs log_prob."""
    model = build(prior="vampprior", latent_dim=1, components=6, pseudo_init_std=0.3)
    prior = model.prior.frozen()
    with torch.no_grad():
        samples = model.prior.sample(20_000)
        means, logvars = model.prior.components()
    low = (means - 5 * torch.exp(0.5 * logvars)).min().item()
    high = (means + 5 * torch.exp(0.5 * logvars)).max().item()
    edges = torch.linspace(low, high, 61, dtype=torch.float64)
    with torch.no_grad():
        tv = histogram_total_variation(samples, lambda g: prior.log_prob(g[:, None].float()).double(), edges)
    assert tv < 0.03


def test_frozen_vampprior_is_a_snapshot_of_the_components():
    prior = lookup_vampprior(3, logvar=-1.0)
    frozen = prior.frozen()
    assert isinstance(frozen, GaussianMixturePrior)
    means, logvars = prior.components()
    torch.testing.assert_close(frozen.means, means)
    torch.testing.assert_close(frozen.logvars, logvars)


# --------------------------------------------------------------------------------------------
# Capabilities: what a prior can do is said by its class, never by its name


def test_each_registered_prior_declares_its_capabilities():
    from vae_core.priors import PRIORS, MixturePrior, PseudoInputPrior, has_components

    assert not has_components("standard")
    assert {name for name in PRIORS if has_components(name)} == {"mog", "vampprior", "vampprior-data"}
    assert all(issubclass(PRIORS[n], PseudoInputPrior) for n in ("vampprior", "vampprior-data"))
    assert issubclass(PRIORS["mog"], MixturePrior) and not issubclass(PRIORS["mog"], PseudoInputPrior)
    assert len({PRIORS[n].title for n in PRIORS}) == len(PRIORS)


@pytest.mark.parametrize("prior_name", ["mog", "vampprior", "vampprior-data"])
def test_mixture_responsibilities_are_the_posterior_over_components(build, prior_name):
    model = build(prior=prior_name)
    z = torch.randn(7, model.prior.latent_dim)
    means, logvars = model.prior.components()
    log_components = torch.distributions.Independent(
        torch.distributions.Normal(means.double(), torch.exp(0.5 * logvars.double())), 1).log_prob(z.double()[:, None])
    expected = torch.softmax(log_components, dim=1)
    torch.testing.assert_close(model.prior.responsibilities(z).double(), expected, atol=1e-5, rtol=1e-4)


def test_component_samples_come_from_that_component_only(build):
    model = build(prior="mog")
    with torch.no_grad():
        model.prior.logvars.fill_(-8.0)  # components as narrow as points
        draws = model.prior.component_sample(2, 50)
    means, _ = model.prior.components()
    assert torch.allclose(draws, means[2].expand(50, -1), atol=0.1)
    with pytest.raises(AssertionError, match="out of range"):
        model.prior.component_sample(len(means), 1)


def test_component_images_are_pseudo_inputs_or_decoded_means(build):
    vamp, mog = build(prior="vampprior"), build(prior="mog")
    assert vamp.prior.images_are_inputs and not mog.prior.images_are_inputs
    assert torch.equal(vamp.prior.component_images(vamp.decode), vamp.prior.pseudo_inputs)
    with torch.no_grad():
        assert torch.allclose(mog.prior.component_images(mog.decode), mog.decode(mog.prior.means))
