"""Log densities against torch.distributions (float64 references) and numerical integration."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import distributions as td

from vae_core.distributions import (
    LOG_2PI,
    diagonal_normal,
    gaussian_log_prob,
    gaussian_mixture_log_prob,
    mixture_responsibilities,
    reparameterize,
    standard_normal_log_prob,
)


def reference_mixture(means: torch.Tensor, logvars: torch.Tensor) -> td.Distribution:
    """The uniform mixture as torch.distributions builds it, in float64."""
    means, logvars = means.double(), logvars.double()
    uniform = td.Categorical(logits=torch.zeros(means.shape[0], dtype=torch.float64))
    return td.MixtureSameFamily(uniform, td.Independent(td.Normal(means, torch.exp(0.5 * logvars)), 1))


def random_components(k: int, d: int, scale: float = 1.0, low: float = -6.0, high: float = 2.0):
    means = scale * torch.randn(k, d)
    logvars = low + (high - low) * torch.rand(k, d)
    return means, logvars


# --------------------------------------------------------------------------------------------
# Single Gaussians


def test_gaussian_log_prob_matches_torch_normal():
    z, mean = torch.randn(7, 5), torch.randn(7, 5)
    logvar = -6 + 8 * torch.rand(7, 5)
    expected = td.Independent(td.Normal(mean.double(), torch.exp(0.5 * logvar.double())), 1).log_prob(z.double())
    torch.testing.assert_close(gaussian_log_prob(z, mean, logvar).double(), expected, atol=1e-4, rtol=1e-6)


def test_gaussian_log_prob_keeps_the_normalising_constant():
    # log N(0; 0, 1) in D dimensions is exactly -D/2 log(2 pi)
    d = 6
    value = gaussian_log_prob(torch.zeros(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64),
                              torch.zeros(d, dtype=torch.float64))
    assert value.item() == pytest.approx(-0.5 * d * math.log(2 * math.pi), abs=1e-12)
    assert LOG_2PI == pytest.approx(math.log(2 * math.pi))


def test_gaussian_log_prob_broadcasts_over_samples():
    mean, logvar = torch.randn(4, 3), torch.randn(4, 3)
    z = torch.randn(10, 4, 3)
    out = gaussian_log_prob(z, mean, logvar)
    assert out.shape == (10, 4)
    torch.testing.assert_close(out[3], gaussian_log_prob(z[3], mean, logvar))


def test_standard_normal_log_prob_matches_torch():
    z = 3 * torch.randn(9, 4, dtype=torch.float64)
    expected = td.Independent(td.Normal(torch.zeros(4, dtype=torch.float64), 1.0), 1).log_prob(z)
    torch.testing.assert_close(standard_normal_log_prob(z), expected, atol=1e-12, rtol=1e-12)
    assert standard_normal_log_prob(torch.zeros(1, 2)).item() == pytest.approx(-math.log(2 * math.pi), abs=1e-6)


def test_diagonal_normal_is_an_independent_normal_with_event_dim_d():
    mean, logvar = torch.randn(5, 3), torch.randn(5, 3)
    dist = diagonal_normal(mean, logvar)
    assert dist.batch_shape == (5,) and dist.event_shape == (3,)
    torch.testing.assert_close(dist.stddev, torch.exp(0.5 * logvar))
    z = torch.randn(5, 3)
    torch.testing.assert_close(dist.log_prob(z), gaussian_log_prob(z, mean, logvar), atol=1e-5, rtol=1e-6)


def test_reparameterize_shapes_and_moments():
    mean = torch.tensor([[1.0, -2.0, 0.5]])
    logvar = torch.log(torch.tensor([[0.25, 4.0, 1.0]]))
    assert reparameterize(mean, logvar).shape == (1, 3)
    z = reparameterize(mean, logvar, num_samples=40_000)
    assert z.shape == (40_000, 1, 3)
    torch.testing.assert_close(z.mean(0), mean, atol=0.05, rtol=0)
    torch.testing.assert_close(z.std(0), torch.exp(0.5 * logvar), atol=0.05, rtol=0)


def test_reparameterize_passes_gradients():
    mean = torch.zeros(2, 3, requires_grad=True)
    logvar = torch.zeros(2, 3, requires_grad=True)
    reparameterize(mean, logvar).sum().backward()
    assert torch.equal(mean.grad, torch.ones(2, 3))
    assert logvar.grad is not None and logvar.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------
# Mixtures


@pytest.mark.parametrize("low, high", [(-6.0, 2.0), (-6.0, -5.5), (1.5, 2.0)])
@pytest.mark.parametrize("k, d", [(1, 1), (5, 2), (20, 8)])
def test_mixture_matches_mixture_same_family(k, d, low, high):
    means, logvars = random_components(k, d, low=low, high=high)
    # points near the components (where a mixture prior is evaluated) and far from them
    near = means[torch.randint(k, (30,))] + torch.exp(0.5 * logvars[0]) * torch.randn(30, d)
    z = torch.cat([near, 4 * torch.randn(30, d)])
    expected = reference_mixture(means, logvars).log_prob(z.double())
    actual = gaussian_mixture_log_prob(z, means, logvars)
    assert actual.dtype == torch.float32 and actual.shape == (60,)
    torch.testing.assert_close(actual.double(), expected, atol=1e-4, rtol=1e-6)


def test_mixture_matches_reference_in_float64():
    means, logvars = random_components(7, 4)
    means, logvars = means.double(), logvars.double()
    z = torch.randn(50, 4, dtype=torch.float64)
    actual = gaussian_mixture_log_prob(z, means, logvars)
    assert actual.dtype == torch.float64
    torch.testing.assert_close(actual, reference_mixture(means, logvars).log_prob(z), atol=1e-9, rtol=1e-12)


def test_mixture_is_accurate_at_trained_model_scales():
    """40 latent dimensions, means of size ~3, log-variances at the encoder's floor of -6: the
    z^2/v - 2zm/v + m^2/v expansion used to lose several hundredths of a nat in float32 here."""
    k, d = 50, 40
    means = 3 * torch.randn(k, d)
    logvars = -6 + 0.3 * torch.rand(k, d)
    z = means[torch.randint(k, (200,))] + 0.05 * torch.randn(200, d)
    expected = reference_mixture(means, logvars).log_prob(z.double())
    actual = gaussian_mixture_log_prob(z, means, logvars).double()
    assert (actual - expected).abs().max().item() < 1e-3


def _table_dtypes(monkeypatch) -> list[torch.dtype]:
    """Record the dtype each mixture table is formed in."""
    dtypes = []
    original = torch.addmm

    def spy(input, mat1, mat2, *args, **kwargs):
        dtypes.append(mat1.dtype)
        return original(input, mat1, mat2, *args, **kwargs)

    monkeypatch.setattr(torch, "addmm", spy)
    return dtypes


def test_mixture_uses_float32_for_samples_of_one_point_and_stays_exact(monkeypatch):
    """The importance sampler's case: thousands of samples of one posterior, far from the origin,
    against tight components (log-variance -6) spread around it."""
    k, d = 200, 40
    center = 3 * torch.randn(d)
    means = center + 0.3 * torch.randn(k, d)
    logvars = -6 + 0.5 * torch.rand(k, d)
    z = center + 0.05 * torch.randn(3000, d)
    dtypes = _table_dtypes(monkeypatch)
    actual = gaussian_mixture_log_prob(z, means, logvars).double()
    assert dtypes == [torch.float32]
    expected = reference_mixture(means, logvars).log_prob(z.double())
    assert (actual - expected).abs().max().item() < 1e-3


def test_mixture_falls_back_to_float64_for_spread_out_batches(monkeypatch):
    """A training batch: points of different images, where float32 could lose hundredths of a nat."""
    k, d = 50, 40
    means = 3 * torch.randn(k, d)
    logvars = -6 + 0.3 * torch.rand(k, d)
    z = means[torch.randint(k, (100,))] + 0.05 * torch.randn(100, d)
    dtypes = _table_dtypes(monkeypatch)
    gaussian_mixture_log_prob(z, means, logvars)
    assert dtypes == [torch.float64]


@pytest.mark.parametrize("batch_shape", [(6,), (4, 6), (2, 3, 5)])
def test_mixture_batch_shapes(batch_shape):
    means, logvars = random_components(4, 3)
    z = torch.randn(*batch_shape, 3)
    out = gaussian_mixture_log_prob(z, means, logvars)
    assert out.shape == batch_shape
    expected = reference_mixture(means, logvars).log_prob(z.double())
    torch.testing.assert_close(out.double(), expected, atol=1e-4, rtol=1e-6)


def test_mixture_of_one_component_is_that_gaussian():
    mean, logvar = torch.randn(1, 3), torch.randn(1, 3)
    z = torch.randn(8, 3)
    torch.testing.assert_close(gaussian_mixture_log_prob(z, mean, logvar), gaussian_log_prob(z, mean, logvar),
                               atol=1e-5, rtol=1e-6)


def test_mixture_of_identical_components_equals_one_component():
    mean, logvar = torch.randn(1, 2), torch.randn(1, 2)
    z = torch.randn(8, 2)
    torch.testing.assert_close(gaussian_mixture_log_prob(z, mean.repeat(6, 1), logvar.repeat(6, 1)),
                               gaussian_log_prob(z, mean, logvar), atol=1e-5, rtol=1e-6)


def test_mixture_gradients_match_float64_reference():
    means, logvars = random_components(5, 3)
    means.requires_grad_(True)
    z = torch.randn(20, 3, requires_grad=True)
    gaussian_mixture_log_prob(z, means, logvars).sum().backward()
    means64 = means.detach().double().requires_grad_(True)
    z64 = z.detach().double().requires_grad_(True)
    reference_mixture(means64, logvars).log_prob(z64).sum().backward()
    torch.testing.assert_close(z.grad.double(), z64.grad, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(means.grad.double(), means64.grad, atol=1e-3, rtol=1e-4)


def test_one_dimensional_mixture_integrates_to_one():
    means = torch.tensor([[-3.0], [0.5], [4.0]], dtype=torch.float64)
    logvars = torch.tensor([[-2.0], [0.0], [1.5]], dtype=torch.float64)
    grid = torch.linspace(-30, 30, 60_001, dtype=torch.float64)
    density = gaussian_mixture_log_prob(grid[:, None], means, logvars).exp()
    assert torch.trapezoid(density, grid).item() == pytest.approx(1.0, abs=1e-6)
    # and in float32, as the models use it
    density32 = gaussian_mixture_log_prob(grid[:, None].float(), means.float(), logvars.float()).exp()
    assert torch.trapezoid(density32.double(), grid).item() == pytest.approx(1.0, abs=1e-4)


def test_two_dimensional_mixture_integrates_to_one():
    means = torch.tensor([[-2.0, 1.0], [1.5, -1.0], [0.0, 3.0], [3.0, 3.0]])
    logvars = torch.tensor([[-1.0, 0.0], [0.0, -2.0], [0.5, 0.5], [-3.0, -3.0]])
    axis = torch.linspace(-12, 12, 801, dtype=torch.float64)
    zx, zy = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([zx, zy], dim=-1)  # (801, 801, 2)
    density = gaussian_mixture_log_prob(grid.float(), means, logvars).double().exp()
    total = torch.trapezoid(torch.trapezoid(density, axis, dim=1), axis)
    assert total.item() == pytest.approx(1.0, abs=1e-3)


# --------------------------------------------------------------------------------------------
# Responsibilities


def test_responsibilities_match_bayes_rule():
    means, logvars = random_components(6, 3)
    z = 2 * torch.randn(40, 3)
    resp = mixture_responsibilities(z, means, logvars)
    assert resp.shape == (40, 6)
    torch.testing.assert_close(resp.sum(-1), torch.ones(40), atol=1e-6, rtol=0)
    # p(k | z) = N(z; m_k, v_k) / sum_j N(z; m_j, v_j), the joint computed component by component
    components = td.Independent(td.Normal(means.double(), torch.exp(0.5 * logvars.double())), 1)
    joint = components.log_prob(z.double()[:, None, :])  # (40, 6)
    expected = torch.exp(joint - torch.logsumexp(joint, dim=-1, keepdim=True))
    torch.testing.assert_close(resp.double(), expected, atol=1e-5, rtol=1e-4)


def test_responsibilities_pick_the_nearest_of_well_separated_components():
    means = torch.tensor([[-10.0, 0.0], [0.0, 0.0], [10.0, 0.0]])
    logvars = torch.zeros(3, 2)
    z = torch.tensor([[-9.5, 0.3], [0.2, -0.1], [11.0, 1.0]])
    resp = mixture_responsibilities(z, means, logvars)
    assert np.array_equal(resp.argmax(-1).numpy(), [0, 1, 2])
    assert resp.max(-1).values.min().item() > 0.999
