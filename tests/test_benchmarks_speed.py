"""benchmarks/authors_reference.py against vae_core, and the optimiser it times."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from conftest import tiny_config

from benchmarks import authors_reference as authors
from vae_core.evaluate import log_likelihood
from vae_core.models import build_model


@pytest.fixture
def pair():
    """A tiny vae_core VAE + VampPrior (Bernoulli pixels) and the authors' network with its weights."""
    model = build_model(tiny_config(prior="vampprior"))
    return model, authors.AuthorsVampVAE.from_vae_core(model)


@pytest.fixture
def images():
    return (torch.rand(24, 1, 8, 8, generator=torch.Generator().manual_seed(3)) < 0.4).float()


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_the_authors_loss_is_vae_cores_for_the_same_weights_and_noise(pair, images, dtype, tolerance):
    model, reference = (m.to(dtype) for m in pair)
    x = images.to(dtype)
    with torch.no_grad():
        assert model.decoder(model.encoder(x)[0]).abs().max() < math.log(1 / authors.BERNOULLI_CLAMP)  # no clamping
    torch.manual_seed(7)
    ours = model(x, beta=0.3)
    torch.manual_seed(7)  # the same draws: both take one standard normal per latent unit of the batch
    loss, reconstruction, kl = reference.calculate_loss(x.flatten(1), beta=0.3)
    scale = ours.reconstruction.abs().max().item()
    assert (reconstruction - ours.reconstruction).abs().max() <= tolerance * scale
    assert (kl - ours.kl).abs().max() <= tolerance * scale
    assert loss.mean().item() == pytest.approx(ours.loss.item(), rel=tolerance)
    average = reference.calculate_loss(x.flatten(1), beta=0.3, average=True)
    assert all(value.dim() == 0 for value in average)


def test_the_authors_pseudo_inputs_and_mixture_are_the_vampprior(pair):
    model, reference = pair
    pseudo = torch.nn.functional.hardtanh(reference.pseudo_inputs(reference.idle_input), 0.0, 1.0)
    assert torch.allclose(pseudo, model.prior.pseudo_inputs.flatten(1))
    z = torch.randn(9, 3)
    constant = 0.5 * z.shape[1] * math.log(2 * math.pi)  # their log-densities omit it
    assert torch.allclose(reference.log_p_z(z) - constant, model.prior.log_prob(z), atol=1e-5)


def test_the_authors_log_likelihood_estimates_what_vae_cores_does(pair, images):
    model, reference = pair
    points = images[:3]
    theirs = authors.log_likelihood(reference, points, num_samples=2000, batch=100)
    ours = log_likelihood(model, points.numpy(), num_samples=2000)
    assert theirs.shape == ours.shape == (3,)
    assert abs(theirs - ours).max() < 0.2  # two independent estimates of the same log p(x)
    one_pass = authors.log_likelihood(reference, points, num_samples=50, batch=100)  # S <= batch: one pass
    assert abs(one_pass - ours).max() < 1.0


def test_adam_norm_grad_is_adam_on_gradients_divided_by_their_norms():
    """With eps = 0 their update form equals torch's Adam fed the normalised gradients."""
    torch.manual_seed(0)
    weights = [torch.randn(5, 4, requires_grad=True), torch.randn(3, requires_grad=True)]
    twins = [w.detach().clone().requires_grad_() for w in weights]
    theirs = authors.AdamNormGrad(weights, lr=0.01, eps=0.0)
    torch_adam = torch.optim.Adam(twins, lr=0.01, eps=0.0, foreach=False)
    for step in range(4):
        grads = [torch.randn_like(w) * 10 ** step for w in weights]
        for w, twin, g in zip(weights, twins, grads):
            w.grad = g.clone()
            twin.grad = g / (g.norm() + authors.NORM_EPS)
        theirs.step()
        torch_adam.step()
    for w, twin in zip(weights, twins):
        assert torch.allclose(w, twin, atol=1e-6)


def test_the_first_adam_norm_grad_step_moves_each_weight_by_the_learning_rate():
    weight = torch.zeros(6, requires_grad=True)
    weight.grad = torch.tensor([3.0, -1.0, 2.0, -5.0, 0.5, 1.0])
    authors.AdamNormGrad([weight], lr=0.1).step()
    assert torch.allclose(weight, -0.1 * weight.grad.sign(), atol=1e-6)


def test_the_authors_training_loop_trains(pair, images):
    _, reference = pair
    before = copy.deepcopy(reference.state_dict())
    optimizer = authors.AdamNormGrad(reference.parameters(), lr=1e-3)
    loader = authors.train_loader(images, batch_size=10)
    assert authors.train_epoch(reference, optimizer, loader, 1.0, torch.device("cpu")) == 3
    assert authors.train_epoch(reference, optimizer, loader, 1.0, torch.device("cpu"), max_steps=1) == 1
    changed = [name for name, value in reference.state_dict().items() if not torch.equal(value, before[name])]
    assert set(changed) == set(before)  # every parameter moved
