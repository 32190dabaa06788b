"""Observation models p(x | z).

The decoder outputs raw parameters of shape (B, P, C, H, W), P = `params_per_pixel`; a likelihood
turns them into `log_prob(x, params) -> (B,)` (summed over pixels, normalised), the mean image and
samples. Data are images in [0, 1].
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .distributions import LOG_2PI

DECODER_LOGVAR_RANGE = (-4.5, 0.0)  # the paper's Hardtanh on the decoder's log-scale / log-variance


class Likelihood(nn.Module):
    """`log_prob`, `mean` and `sample` of p(x | z) from the decoder's parameters.

    These are one pass each: pixels are independent given z. An autoregressive likelihood
    (vae_core.pixelcnn) says so with `autoregressive` and needs `generation_passes` network passes
    to draw an image; its `mean` and `sample` then report `progress(done, total)`.
    """

    params_per_pixel: int
    autoregressive = False

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mean(self, params: torch.Tensor, progress=None) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, params: torch.Tensor, progress=None) -> torch.Tensor:
        raise NotImplementedError

    def generation_passes(self, input_shape: tuple[int, ...]) -> int:
        """Network passes needed to draw one image of `input_shape` (C, H, W)."""
        return 1


class BernoulliLikelihood(Likelihood):
    """Binary pixels; the parameters are logits."""

    params_per_pixel = 1

    def log_prob(self, x, params):
        logits = params[:, 0]
        return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").flatten(1).sum(-1)

    def mean(self, params, progress=None):
        return torch.sigmoid(params[:, 0])

    def sample(self, params, progress=None):
        return torch.bernoulli(self.mean(params))


class DiscretizedLogisticLikelihood(Likelihood):
    """Grey pixels in 256 bins: bin i covers [i/256, (i+1)/256), the outer bins extend to +-inf.

    p(x) = sigmoid((upper - mu) / s) - sigmoid((lower - mu) / s), with mu = sigmoid(a) and
    log s = Hardtanh(b, -4.5, 0), as in the paper. Probabilities over the 256 bins sum to 1.
    """

    params_per_pixel = 2
    bins = 256

    def _location_scale(self, params):
        return torch.sigmoid(params[:, 0]), F.hardtanh(params[:, 1], *DECODER_LOGVAR_RANGE)

    def log_prob(self, x, params):
        mu, log_scale = self._location_scale(params)
        inv_scale = torch.exp(-log_scale)
        index = torch.clamp(torch.floor(x * self.bins), 0, self.bins - 1)
        upper = (index + 1) / self.bins
        lower = index / self.bins
        log_cdf_upper = F.logsigmoid((upper - mu) * inv_scale)  # log P(X < upper)
        log_cdf_lower = F.logsigmoid((lower - mu) * inv_scale)  # log P(X < lower)
        log_sf_lower = F.logsigmoid(-(lower - mu) * inv_scale)  # log P(X >= lower), for the top bin
        # log(cdf_upper - cdf_lower) = log cdf_upper + log(1 - exp(log cdf_lower - log cdf_upper))
        log_interior = log_cdf_upper + log1mexp(log_cdf_lower - log_cdf_upper)
        log_p = torch.where(index == 0, log_cdf_upper, torch.where(index == self.bins - 1, log_sf_lower, log_interior))
        return log_p.flatten(1).sum(-1)

    def mean(self, params, progress=None):
        return self._location_scale(params)[0]

    def sample(self, params, progress=None):
        mu, log_scale = self._location_scale(params)
        u = torch.rand_like(mu).clamp(1e-5, 1 - 1e-5)
        x = mu + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
        return (torch.clamp(torch.floor(x * self.bins), 0, self.bins - 1) + 0.5) / self.bins


def log1mexp(a: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(a)) for a < 0, accurate everywhere (Maechler 2012).

    Each branch only sees arguments from its own range: `torch.where` back-propagates zeros into
    the branch it did not pick, and 0 * inf is NaN, so log1p(-exp(a)) at a ~ 0 (the bins far above
    a logistic's mean, where both log-CDFs are ~0) would otherwise turn the gradient into NaN.
    """
    near_zero = a > -math.log(2)
    return torch.where(near_zero, torch.log(-torch.expm1(torch.where(near_zero, a, -1.0))),
                       torch.log1p(-torch.exp(torch.where(near_zero, -1.0, a))))


class GaussianLikelihood(Likelihood):
    """Continuous pixels: N(x; sigmoid(a), exp(Hardtanh(b, -4.5, 0))), a density, not a probability."""

    params_per_pixel = 2

    def _mean_logvar(self, params):
        return torch.sigmoid(params[:, 0]), F.hardtanh(params[:, 1], *DECODER_LOGVAR_RANGE)

    def log_prob(self, x, params):
        mean, logvar = self._mean_logvar(params)
        return (-0.5 * (LOG_2PI + logvar + (x - mean) ** 2 * torch.exp(-logvar))).flatten(1).sum(-1)

    def mean(self, params, progress=None):
        return self._mean_logvar(params)[0]

    def sample(self, params, progress=None):
        mean, logvar = self._mean_logvar(params)
        return mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)


LIKELIHOODS = {
    "bernoulli": BernoulliLikelihood,
    "logistic": DiscretizedLogisticLikelihood,
    "gaussian": GaussianLikelihood,
}
