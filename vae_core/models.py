"""The one-level VAE and the two-level HVAE of the paper, and `build_model` from a config.

A model receives its networks, prior and likelihood as objects and never branches on names.
`model(x, beta)` returns a `ModelOutput`; the KL term is the single-sample Monte Carlo estimate
log q(z|x) - log p(z) (a mixture prior has no closed-form KL), as in the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .config import ModelConfig
from .distributions import diagonal_normal, gaussian_log_prob, reparameterize
from .likelihoods import LIKELIHOODS, Likelihood
from .networks import (
    ARCHITECTURES,
    GatedDense,
    GaussianNet,
    ImageNet,
    gated_mlp,
    he_init,
)
from .pixelcnn import PIXEL_MODELS
from .priors import PRIORS, Prior


@dataclass
class ModelOutput:
    loss: torch.Tensor  # scalar: mean over the batch of -(reconstruction - beta * kl)
    elbo: torch.Tensor  # (B,) reconstruction - kl (at beta = 1)
    reconstruction: torch.Tensor  # (B,) log p(x | z)
    kl: torch.Tensor  # (B,) log q(z|x) - log p(z), summed over latent layers


def _output(reconstruction: torch.Tensor, kl: torch.Tensor, beta: float) -> ModelOutput:
    return ModelOutput(
        loss=-(reconstruction - beta * kl).mean(),
        elbo=reconstruction - kl,
        reconstruction=reconstruction,
        kl=kl,
    )


class VAE(nn.Module):
    """q(z|x) -> p(x|z), prior p(z)."""

    latent_layers = ("z",)  # bottom to top; the prior lives on the last

    @staticmethod
    def latent_sizes(config: ModelConfig) -> dict[str, int]:
        return {"z": config.latent_dim}

    @property
    def prior_layer(self) -> str:
        return self.latent_layers[-1]

    def __init__(self, encoder: GaussianNet, decoder: ImageNet, prior: Prior, likelihood: Likelihood):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior
        self.likelihood = likelihood

    @classmethod
    def build(cls, config: ModelConfig, architecture, likelihood: Likelihood, make_prior) -> VAE:
        """The paper's networks for `config`; `make_prior(encoder)` builds the prior."""
        h, shape = config.hidden, config.input_shape
        trunk = architecture.image_encoder(shape, 2)
        encoder = GaussianNet([trunk], [trunk.out_features], h, config.latent_dim)
        decoder = ImageNet([gated_mlp(config.latent_dim, h, 2)], [h], h,
                           architecture.image_decoder(shape, likelihood.params_per_pixel))
        return cls(encoder, decoder, make_prior(encoder), likelihood)

    def forward(self, x: torch.Tensor, beta: float = 1.0) -> ModelOutput:
        mean, logvar = self.encoder(x)
        z = reparameterize(mean, logvar)
        reconstruction = self.likelihood.log_prob(x, self.decoder(z))
        kl = gaussian_log_prob(z, mean, logvar) - self.prior.log_prob(z)
        return _output(reconstruction, kl, beta)

    def encode(self, x: torch.Tensor) -> torch.distributions.Distribution:
        return diagonal_normal(*self.encoder(x))

    def decode(self, z: torch.Tensor, progress=None) -> torch.Tensor:
        """The mean image of p(x|z), (B, C, H, W); `progress(done, total)` for an autoregressive p(x|z)."""
        return self.likelihood.mean(self.decoder(z), progress)

    def reconstruct(self, x: torch.Tensor, progress=None) -> torch.Tensor:
        return self.decode(self.encoder(x)[0], progress)

    def sample(self, n: int, progress=None) -> torch.Tensor:
        return self.likelihood.mean(self.prior_decoder_params(n), progress)

    def prior_decoder_params(self, n: int) -> torch.Tensor:
        """The parameters of p(x|z) at n draws z ~ p(z): the generative model's samples before the pixels."""
        return self.decoder(self.prior.sample(n))

    def posterior_decoder_params(self, x: torch.Tensor) -> torch.Tensor:
        """The parameters of p(x|z) at one draw z ~ q(z|x) per image."""
        return self.decoder(reparameterize(*self.encoder(x)))

    def latent_means(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"z": self.encoder(x)[0]}

    def log_importance_weights(self, x: torch.Tensor, num_samples: int, prior: Prior | None = None) -> torch.Tensor:
        """log p(x, z_s) - log q(z_s|x) for z_s ~ q(z|x): (num_samples, B).

        x is encoded once; all S x B samples are decoded in one batch.
        """
        prior = prior or self.prior
        mean, logvar = self.encoder(x)
        z = reparameterize(mean, logvar, num_samples)  # (S, B, D)
        flat_z = z.flatten(0, 1)  # (S*B, D)
        flat_x = x.expand(num_samples, *x.shape).flatten(0, 1)
        log_px = self.likelihood.log_prob(flat_x, self.decoder(flat_z)).view(num_samples, -1)
        return log_px + prior.log_prob(flat_z).view(num_samples, -1) - gaussian_log_prob(z, mean, logvar)


class HVAE(nn.Module):
    """Two latent layers: q(z2|x), q(z1|x,z2); p(z2) = prior, p(z1|z2), p(x|z1,z2)."""

    latent_layers = ("z1", "z2")

    @staticmethod
    def latent_sizes(config: ModelConfig) -> dict[str, int]:
        return {"z1": config.latent_dim_z1, "z2": config.latent_dim}

    @property
    def prior_layer(self) -> str:
        return self.latent_layers[-1]

    def __init__(self, encoder: GaussianNet, encoder_z1: GaussianNet, prior_z1: GaussianNet,
                 decoder: ImageNet, prior: Prior, likelihood: Likelihood):
        super().__init__()
        self.encoder = encoder  # q(z2 | x); the VampPrior uses this one
        self.encoder_z1 = encoder_z1  # q(z1 | x, z2)
        self.prior_z1 = prior_z1  # p(z1 | z2)
        self.decoder = decoder  # p(x | z1, z2)
        self.prior = prior  # p(z2)
        self.likelihood = likelihood

    @classmethod
    def build(cls, config: ModelConfig, architecture, likelihood: Likelihood, make_prior) -> HVAE:
        """The paper's two-level networks for `config`; `make_prior(encoder)` builds p(z2)."""
        h, shape = config.hidden, config.input_shape
        d1, d2 = config.latent_dim_z1, config.latent_dim
        trunk, trunk_z1 = architecture.image_encoder(shape, 2), architecture.image_encoder(shape, 1)
        encoder = GaussianNet([trunk], [trunk.out_features], h, d2)
        f = trunk_z1.out_features  # z2's trunk matches x's, as in the authors' convHVAE (294 and 294)
        encoder_z1 = GaussianNet([trunk_z1, GatedDense(d2, f)], [f, f], h, d1)
        prior_z1 = GaussianNet([gated_mlp(d2, h, 2)], [h], h, d1)
        decoder = ImageNet([GatedDense(d1, h), GatedDense(d2, h)], [h, h], h,
                           architecture.image_decoder(shape, likelihood.params_per_pixel))
        return cls(encoder, encoder_z1, prior_z1, decoder, make_prior(encoder), likelihood)

    def forward(self, x: torch.Tensor, beta: float = 1.0) -> ModelOutput:
        mean2, logvar2 = self.encoder(x)
        z2 = reparameterize(mean2, logvar2)
        mean1, logvar1 = self.encoder_z1(x, z2)
        z1 = reparameterize(mean1, logvar1)
        prior_mean1, prior_logvar1 = self.prior_z1(z2)
        reconstruction = self.likelihood.log_prob(x, self.decoder(z1, z2))
        kl = (gaussian_log_prob(z1, mean1, logvar1) - gaussian_log_prob(z1, prior_mean1, prior_logvar1)
              + gaussian_log_prob(z2, mean2, logvar2) - self.prior.log_prob(z2))
        return _output(reconstruction, kl, beta)

    def encode(self, x: torch.Tensor) -> torch.distributions.Distribution:
        """q(z2 | x), the layer the prior lives on."""
        return diagonal_normal(*self.encoder(x))

    def decode(self, z2: torch.Tensor, progress=None) -> torch.Tensor:
        """The mean image of p(x | z1, z2) with z1 at the mean of p(z1 | z2)."""
        return self.likelihood.mean(self.decoder(self.prior_z1(z2)[0], z2), progress)

    def reconstruct(self, x: torch.Tensor, progress=None) -> torch.Tensor:
        means = self.latent_means(x)
        return self.likelihood.mean(self.decoder(means["z1"], means["z2"]), progress)

    def sample(self, n: int, progress=None) -> torch.Tensor:
        return self.likelihood.mean(self.prior_decoder_params(n), progress)

    def prior_decoder_params(self, n: int) -> torch.Tensor:
        """The parameters of p(x|z1,z2) at n draws z2 ~ p(z2), z1 ~ p(z1|z2)."""
        z2 = self.prior.sample(n)
        return self.decoder(reparameterize(*self.prior_z1(z2)), z2)

    def posterior_decoder_params(self, x: torch.Tensor) -> torch.Tensor:
        """The parameters of p(x|z1,z2) at one draw z2 ~ q(z2|x), z1 ~ q(z1|x,z2) per image."""
        z2 = reparameterize(*self.encoder(x))
        return self.decoder(reparameterize(*self.encoder_z1(x, z2)), z2)

    def latent_means(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Posterior means; z1's is taken at z2 = E[z2|x]."""
        mean2 = self.encoder(x)[0]
        return {"z1": self.encoder_z1(x, mean2)[0], "z2": mean2}

    def log_importance_weights(self, x: torch.Tensor, num_samples: int, prior: Prior | None = None) -> torch.Tensor:
        """log p(x, z1, z2) - log q(z1, z2 | x) for (z1, z2) ~ q: (num_samples, B)."""
        prior = prior or self.prior
        S, B = num_samples, x.shape[0]
        mean2, logvar2 = self.encoder(x)
        z2 = reparameterize(mean2, logvar2, S)  # (S, B, D2)
        # x's trunk runs once for the S samples of z2 that share it
        mean1, logvar1 = self.encoder_z1.forward_repeated(x, z2.flatten(0, 1), repeats=S)  # (S*B, D1)
        z1 = reparameterize(mean1, logvar1)
        flat_z2 = z2.flatten(0, 1)
        flat_x = x.expand(S, *x.shape).flatten(0, 1)
        log_px = self.likelihood.log_prob(flat_x, self.decoder(z1, flat_z2))
        log_joint = log_px + gaussian_log_prob(z1, *self.prior_z1(flat_z2)) + prior.log_prob(flat_z2)
        log_q = gaussian_log_prob(z1, mean1, logvar1) + gaussian_log_prob(flat_z2, mean2.repeat(S, 1),
                                                                          logvar2.repeat(S, 1))
        return (log_joint - log_q).view(S, B)


# --------------------------------------------------------------------------------------------
# Construction from a config


MODELS: dict[str, type[VAE] | type[HVAE]] = {"vae": VAE, "hvae": HVAE}


def build_model(config: ModelConfig, train_images: np.ndarray | torch.Tensor | None = None) -> VAE | HVAE:
    """A freshly initialised model; `train_images` (N, C, H, W) seeds "vampprior-data"."""
    config.validate()
    architecture = ARCHITECTURES[config.architecture](hidden=config.hidden)
    likelihood = PIXEL_MODELS[config.pixel_model](LIKELIHOODS[config.likelihood](), config.input_shape[0])

    def make_prior(encoder: nn.Module) -> Prior:
        return PRIORS[config.prior].build(
            latent_dim=config.latent_dim, encoder=encoder, num_components=config.components,
            input_shape=config.input_shape, init_mean=config.pseudo_init_mean,
            init_std=config.pseudo_init_std, train_images=train_images,
        )

    model = MODELS[config.model].build(config, architecture, likelihood, make_prior)
    he_init(model)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in model.parameters())
