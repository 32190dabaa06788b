"""Priors p(z) over the top latent layer, and what each can do.

Each prior is an `nn.Module` with `log_prob(z) -> (B,)` and `sample(n) -> (n, D)`, plus `frozen()`,
an equivalent prior with constant parameters, cheap to evaluate many times (the evaluator uses it:
the VampPrior's K encoder passes are then done once instead of once per batch).

What a prior offers beyond that is said by the class it derives from, never by its name:

- `MixturePrior`: a uniform mixture of K diagonal Gaussians, with `components()`,
  `responsibilities(z)` and `component_sample(k, n)`;
- `PseudoInputPrior`: a mixture whose components are the encoder's posteriors at K images in data
  space, `pseudo_inputs`, which the dashboard shows as they are.

`PRIORS` maps each name of the command line and config.json to its class; `Prior.build(...)` makes
one from a model's sizes. A new prior is one new class and one registry entry.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from .distributions import gaussian_mixture_log_prob, mixture_responsibilities, reparameterize, standard_normal_log_prob


class Prior(nn.Module):
    """p(z) on the top latent layer."""

    title: ClassVar[str] = "prior"  # how pages and tables name it
    latent_dim: int

    @classmethod
    def build(cls, *, latent_dim: int, encoder: nn.Module, num_components: int, input_shape, init_mean: float,
              init_std: float, train_images=None) -> Prior:
        """A freshly initialised prior for a model with these sizes (each class takes what it needs)."""
        raise NotImplementedError

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:  # (B, D) -> (B,)
        raise NotImplementedError

    def sample(self, n: int) -> torch.Tensor:  # -> (n, D)
        raise NotImplementedError

    def frozen(self) -> Prior:
        return self


class MixturePrior(Prior):
    """A uniform mixture of K diagonal Gaussians, (1/K) sum_k N(z; m_k, diag v_k)."""

    #: how pages and captions name one component, its symbol and its density
    component_name: ClassVar[str] = "mixture mean"
    component_symbol: ClassVar[str] = "m_k"
    component_density: ClassVar[str] = "N(m_k, diag v_k)"
    #: whether `component_images` are images in data space (pseudo-inputs) or decodings of the means
    images_are_inputs: ClassVar[bool] = False

    @property
    def num_components(self) -> int:
        raise NotImplementedError

    def components(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and log-variances of the K components, each (K, D)."""
        raise NotImplementedError

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return gaussian_mixture_log_prob(z, *self.components())

    def sample(self, n: int) -> torch.Tensor:
        return sample_mixture(*self.components(), n)

    def responsibilities(self, z: torch.Tensor) -> torch.Tensor:
        """p(k | z) of each component for each point: (B, D) -> (B, K)."""
        return mixture_responsibilities(z, *self.components())

    def component_sample(self, k: int, n: int) -> torch.Tensor:
        """n draws from component k alone: (n, D)."""
        means, logvars = self.components()
        assert 0 <= k < len(means), f"component {k} out of range 0..{len(means) - 1}"
        return reparameterize(means[k].expand(n, -1), logvars[k].expand(n, -1))

    def component_images(self, decode, max_decoded: int | None = None) -> torch.Tensor:
        """One image per component, (K, C, H, W): `decode` (the model's) applied to the means; only
        the first `max_decoded` components when given (decoding may take a pass per pixel)."""
        return decode(self.components()[0][:max_decoded])

    def frozen(self) -> MixturePrior:
        with torch.no_grad():
            means, logvars = self.components()
        return GaussianMixturePrior(means, logvars, learnable=False)


class PseudoInputPrior(MixturePrior):
    """A mixture whose k-th component is the encoder's posterior q(z | u_k) at an image u_k."""

    component_name = "pseudo-input"
    component_symbol = "u_k"
    component_density = "q(z | u_k)"
    images_are_inputs = True

    @property
    def pseudo_inputs(self) -> torch.Tensor:
        """The K pseudo-inputs in data space, (K, C, H, W) in [0, 1]."""
        raise NotImplementedError

    @staticmethod
    def pseudo_inputs_from_state(state: dict[str, torch.Tensor], prefix: str) -> torch.Tensor | None:
        """`pseudo_inputs` from a state_dict (the prior's keys under `prefix`), without building a
        model; None where a prior cannot say (then callers build the model and ask it)."""
        return None

    def component_images(self, decode=None, max_decoded: int | None = None) -> torch.Tensor:
        """The pseudo-inputs themselves, all K: they already are images (nothing is decoded)."""
        return self.pseudo_inputs


class StandardNormalPrior(Prior):
    """p(z) = N(0, I)."""

    title = "standard normal N(0, I)"

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # carries device and dtype

    @classmethod
    def build(cls, *, latent_dim, **_) -> StandardNormalPrior:
        return cls(latent_dim)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return standard_normal_log_prob(z)

    def sample(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=self._anchor.device, dtype=self._anchor.dtype)


class GaussianMixturePrior(MixturePrior):
    """The paper's mixture-of-Gaussians prior: K learnable means and log-variances, uniform weights.

    With `learnable=False` it holds fixed components (what `frozen()` returns for any mixture).
    """

    title = "mixture of Gaussians"

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
    def build(cls, *, latent_dim, num_components, **_) -> GaussianMixturePrior:
        """Means from N(0, I) so the components start spread out; unit variances."""
        return cls(torch.randn(num_components, latent_dim), torch.zeros(num_components, latent_dim))

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    def components(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.means, self.logvars


def sample_mixture(means: torch.Tensor, logvars: torch.Tensor, n: int) -> torch.Tensor:
    """Draw n points: a component uniformly at random for each, then z from that component."""
    index = torch.randint(means.shape[0], (n,), device=means.device)
    return reparameterize(means[index], logvars[index])


DATA_INIT_NOISE_STD = 0.01  # the paper's noise on data-initialised pseudo-inputs


class VampPrior(PseudoInputPrior):
    """p(z) = 1/K sum_k q(z | u_k): a mixture of the encoder's posteriors at K pseudo-inputs.

    The pseudo-inputs are stored unconstrained and mapped to data space with Hardtanh(0, 1), as
    in the paper, so they stay valid images. `encoder` is the model's own q(z|x) network (a module
    mapping images (K, C, H, W) to (mean, logvar), each (K, D)); it is held by reference, not
    registered, so its weights appear once in the state dict (under the model). The pseudo-inputs
    start as N(init_mean, init_std) noise per pixel (the paper: 0.05 / 0.01 for MNIST).
    """

    title = "VampPrior"

    def __init__(self, encoder: nn.Module, latent_dim: int, pseudo_inputs: torch.Tensor):
        super().__init__()
        self.latent_dim = latent_dim
        self._encoder = (encoder,)  # a tuple hides it from nn.Module registration
        self.pseudo_input_params = nn.Parameter(pseudo_inputs.clone())  # (K, C, H, W)

    @classmethod
    def build(cls, *, latent_dim, encoder, num_components, input_shape, init_mean, init_std, **_) -> VampPrior:
        return cls(encoder, latent_dim, init_mean + init_std * torch.randn(num_components, *input_shape))

    @property
    def num_components(self) -> int:
        return self.pseudo_input_params.shape[0]

    @property
    def pseudo_inputs(self) -> torch.Tensor:
        return F.hardtanh(self.pseudo_input_params, 0.0, 1.0)

    @staticmethod
    def pseudo_inputs_from_state(state: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
        return F.hardtanh(state[prefix + "pseudo_input_params"].float(), 0.0, 1.0)

    def components(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and log-variances of q(z | u_k), each (K, D)."""
        return self._encoder[0](self.pseudo_inputs)


class DataInitVampPrior(VampPrior):
    """The VampPrior with its pseudo-inputs started at K random training images plus N(0, 0.01) noise.

    The noise is the paper's: Hardtanh has a zero gradient at exactly 0 and 1, so pixels copied
    from binary or mostly-black images would otherwise never move. Rebuilding a saved model (no
    training images at hand) starts from noise, since its pseudo-inputs are about to be loaded.
    """

    title = "VampPrior (data-initialised)"

    @classmethod
    def build(cls, *, latent_dim, encoder, num_components, input_shape, init_mean, init_std, train_images=None,
              noise_std: float = DATA_INIT_NOISE_STD) -> VampPrior:
        if train_images is None:
            return super().build(latent_dim=latent_dim, encoder=encoder, num_components=num_components,
                                 input_shape=input_shape, init_mean=init_mean, init_std=init_std)
        assert len(train_images) >= num_components, f"need {num_components} training images, got {len(train_images)}"
        index = torch.randperm(len(train_images))[:num_components]
        chosen = torch.as_tensor(train_images[index.numpy()]).float()
        return cls(encoder, latent_dim, chosen + noise_std * torch.randn_like(chosen))


PRIORS: dict[str, type[Prior]] = {
    "standard": StandardNormalPrior,
    "mog": GaussianMixturePrior,
    "vampprior": VampPrior,
    "vampprior-data": DataInitVampPrior,
}


def has_components(name: str) -> bool:
    """Whether the prior registered as `name` is a mixture (so K, its number of components, applies)."""
    return issubclass(PRIORS[name], MixturePrior)
