"""Priors p(z) over the top latent layer.

Each prior is an `nn.Module` with `log_prob(z) -> (B,)` and `sample(n) -> (n, D)`. A model
receives its prior object and never asks for its name. `frozen()` returns an equivalent prior with
constant parameters, cheap to evaluate many times (the evaluator uses it: the VampPrior's K
encoder passes are then done once instead of once per batch).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .distributions import (
    gaussian_mixture_log_prob,
    reparameterize,
    standard_normal_log_prob,
)


class Prior(nn.Module):
    latent_dim: int

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:  # (B, D) -> (B,)
        raise NotImplementedError

    def sample(self, n: int) -> torch.Tensor:  # -> (n, D)
        raise NotImplementedError

    def frozen(self) -> Prior:
        return self


class StandardNormalPrior(Prior):
    """p(z) = N(0, I)."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # carries device and dtype

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return standard_normal_log_prob(z)

    def sample(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=self._anchor.device, dtype=self._anchor.dtype)


class GaussianMixturePrior(Prior):
    """p(z) = 1/K sum_k N(z; means[k], diag(exp(logvars[k]))), uniform weights.

    With `learnable=True` this is the paper's mixture-of-Gaussians prior (K learnable means and
    log-variances); with `learnable=False` it holds fixed components (a frozen VampPrior).
    """

    def __init__(self, means: torch.Tensor, logvars: torch.Tensor, learnable: bool = True):
        super().__init__()
        assert means.shape == logvars.shape and means.dim() == 2, "means and logvars must both be (K, D)"
        self.latent_dim = means.shape[1]
        if learnable:
            self.means = nn.Parameter(means.clone())
            self.logvars = nn.Parameter(logvars.clone())
        else:
            self.register_buffer("means", means.detach().clone())
            self.register_buffer("logvars", logvars.detach().clone())

    @classmethod
    def initialised(cls, latent_dim: int, num_components: int) -> GaussianMixturePrior:
        """Means from N(0, I) so the components start spread out; unit variances."""
        return cls(torch.randn(num_components, latent_dim), torch.zeros(num_components, latent_dim))

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    def components(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.means, self.logvars

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return gaussian_mixture_log_prob(z, self.means, self.logvars)

    def sample(self, n: int) -> torch.Tensor:
        return sample_mixture(self.means, self.logvars, n)

    def frozen(self) -> Prior:
        return GaussianMixturePrior(self.means, self.logvars, learnable=False)


def sample_mixture(means: torch.Tensor, logvars: torch.Tensor, n: int) -> torch.Tensor:
    """Draw n points: a component uniformly at random for each, then z from that component."""
    index = torch.randint(means.shape[0], (n,), device=means.device)
    return reparameterize(means[index], logvars[index])


DATA_INIT_NOISE_STD = 0.01  # the paper's noise on data-initialised pseudo-inputs


class VampPrior(Prior):
    """p(z) = 1/K sum_k q(z | u_k): a mixture of the encoder's posteriors at K pseudo-inputs.

    The pseudo-inputs are stored unconstrained and mapped to data space with Hardtanh(0, 1), as
    in the paper, so they stay valid images. `encoder` is the model's own q(z|x) network (a module
    mapping images (K, C, H, W) to (mean, logvar), each (K, D)); it is held by reference, not
    registered, so its weights appear once in the state dict (under the model).
    """

    def __init__(self, encoder: nn.Module, latent_dim: int, pseudo_inputs: torch.Tensor):
        super().__init__()
        self.latent_dim = latent_dim
        self._encoder = (encoder,)  # a tuple hides it from nn.Module registration
        self.pseudo_input_params = nn.Parameter(pseudo_inputs.clone())  # (K, C, H, W)

    @classmethod
    def random_init(cls, encoder, latent_dim, num_components, input_shape, mean, std) -> VampPrior:
        """Pseudo-inputs drawn from N(mean, std) per pixel (the paper: 0.05/0.01 for MNIST)."""
        return cls(encoder, latent_dim, mean + std * torch.randn(num_components, *input_shape))

    @classmethod
    def data_init(cls, encoder, latent_dim, images: torch.Tensor, num_components: int,
                  noise_std: float = DATA_INIT_NOISE_STD) -> VampPrior:
        """Pseudo-inputs set to K training images chosen at random, plus N(0, noise_std) noise.

        The noise is the paper's ("vampprior-data" adds N(0, 0.01) to the images): Hardtanh has a
        zero gradient at exactly 0 and 1, so pixels copied from binary or mostly-black images
        would otherwise never move.
        """
        assert len(images) >= num_components, f"need {num_components} training images, got {len(images)}"
        index = torch.randperm(len(images))[:num_components]
        chosen = torch.as_tensor(images[index.numpy()]).float()
        return cls(encoder, latent_dim, chosen + noise_std * torch.randn_like(chosen))

    @property
    def num_components(self) -> int:
        return self.pseudo_input_params.shape[0]

    @property
    def pseudo_inputs(self) -> torch.Tensor:
        """The pseudo-inputs in data space, (K, C, H, W) in [0, 1]."""
        return F.hardtanh(self.pseudo_input_params, 0.0, 1.0)

    def components(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and log-variances of q(z | u_k), each (K, D)."""
        return self._encoder[0](self.pseudo_inputs)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        means, logvars = self.components()
        return gaussian_mixture_log_prob(z, means, logvars)

    def sample(self, n: int) -> torch.Tensor:
        means, logvars = self.components()
        return sample_mixture(means, logvars, n)

    def frozen(self) -> Prior:
        with torch.no_grad():
            means, logvars = self.components()
        return GaussianMixturePrior(means, logvars, learnable=False)


def _standard(latent_dim, **_):
    return StandardNormalPrior(latent_dim)


def _mog(latent_dim, num_components, **_):
    return GaussianMixturePrior.initialised(latent_dim, num_components)


def _vampprior(latent_dim, encoder, num_components, input_shape, init_mean, init_std, **_):
    return VampPrior.random_init(encoder, latent_dim, num_components, input_shape, init_mean, init_std)


def _vampprior_data(latent_dim, encoder, num_components, input_shape, init_mean, init_std, train_images=None):
    if train_images is None:  # rebuilding a saved model: its pseudo-inputs are about to be loaded
        return _vampprior(latent_dim, encoder, num_components, input_shape, init_mean, init_std)
    return VampPrior.data_init(encoder, latent_dim, train_images, num_components)


# name -> factory(latent_dim, encoder, num_components, input_shape, init_mean, init_std, train_images)
PRIORS = {
    "standard": _standard,
    "mog": _mog,
    "vampprior": _vampprior,
    "vampprior-data": _vampprior_data,
}
