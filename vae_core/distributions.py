"""Normalised log densities of diagonal Gaussians and their uniform mixtures.

All densities keep the -1/2 log(2 pi) terms, so the numbers compare with other papers and with
`torch.distributions`. The mixture density is written as one matrix product instead of a
(B, K, D) tensor: for a batch of B points and K components in D dimensions,

    log N(z; m_k, v_k) = -1/2 [D log 2pi + sum_d log v_kd + sum_d (z_d^2 - 2 z_d m_kd + m_kd^2) / v_kd]

so the whole (B, K) table is one addmm, [z^2, z] @ [-1/(2v), m/v]^T + c_k (a single pass over the
result, where separate products and sums take four), which runs at matmul speed and never
materialises B*K*D numbers. The expansion cancels: each term is ~|z|^2/v while their sum is
~|z - m|^2/v, so rounding loses ~eps * D * |z|^2 / v nats (in float32 0.03 nats at D = 40,
|z| ~ 3 and log-variance -6). Two measures keep it exact enough. The coordinates are first centred
on the batch's mean, which does not change the result but shrinks |z| to the batch's spread. Then
the (B, K) table is formed in float32 only where a bound on its rounding error,
eps32 * 4 * max_b sum_d z_bd^2 * max_k 1/v_kd on the centred z, is below `FLOAT32_TOLERANCE` nats,
and in float64 otherwise. The importance sampler's chunks (thousands of samples of one test point,
spread like its posterior) pass and run at float32 speed, about twice float64's; training batches
of different images mostly fall back to float64, where the table is small. A component's own
m^2/v terms round in proportion to its log-density, so the components that dominate the mixture
are the accurate ones. Devices without float64 (Apple MPS) use the direct (B, K, D) form in chunks
instead.
"""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)
FLOAT32_TOLERANCE = 1e-3  # nats: the largest rounding error the mixture density may make in float32


def gaussian_log_prob(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, diag(exp(logvar))) summed over the last dimension; broadcasts."""
    return -0.5 * (LOG_2PI + logvar + (z - mean) ** 2 * torch.exp(-logvar)).sum(-1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (LOG_2PI + z**2).sum(-1)


def gaussian_mixture_log_prob(z: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor) -> torch.Tensor:
    """log (1/K) sum_k N(z; means[k], diag(exp(logvars[k]))).

    z: (..., D); means, logvars: (K, D). Returns (...,).
    """
    batch_shape = z.shape[:-1]
    component_log_probs = _component_log_probs(z.reshape(-1, z.shape[-1]), means, logvars)  # (B, K)
    log_prob = torch.logsumexp(component_log_probs, dim=-1) - math.log(means.shape[0])
    return log_prob.to(z.dtype).reshape(batch_shape)


def mixture_responsibilities(z: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor) -> torch.Tensor:
    """Posterior probability of each of the K equally weighted components given z: (B, D) -> (B, K)."""
    return torch.softmax(_component_log_probs(z, means, logvars), dim=-1).to(z.dtype)


_DIRECT_CHUNK_ELEMENTS = 2**22  # bounds the (chunk, K, D) tensor of the direct form


def _component_log_probs(z: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor) -> torch.Tensor:
    """log N(z_b; means[k], diag(exp(logvars[k]))) for every pair: (B, D), (K, D) -> (B, K).

    Returned in float32 or float64, whichever the rounding bound allows (z's dtype on a device
    without float64); see the module docstring.
    """
    dimension = z.shape[-1]
    if z.device.type == "mps":  # no float64: the direct form, exact up to rounding of each term
        precisions = torch.exp(-logvars)
        constant = -0.5 * (dimension * LOG_2PI + logvars.sum(-1))  # (K,)
        rows = max(1, _DIRECT_CHUNK_ELEMENTS // max(1, means.numel()))
        return torch.cat([
            constant - 0.5 * ((chunk[:, None, :] - means) ** 2 * precisions).sum(-1) for chunk in z.split(rows)
        ])
    center = z.detach().mean(0)  # the result does not depend on it; see the module docstring
    z, means = z - center, means - center
    precisions = torch.exp(-logvars)  # (K, D)
    if z.dtype == torch.float64 or _float32_error_bound(z, precisions) > FLOAT32_TOLERANCE:
        z, means, logvars, precisions = z.double(), means.double(), logvars.double(), precisions.double()
    constant = -0.5 * (dimension * LOG_2PI + logvars.sum(-1) + (means**2 * precisions).sum(-1))  # (K,)
    weights = torch.cat([-0.5 * precisions, means * precisions], dim=-1)  # (K, 2D)
    return torch.addmm(constant, torch.cat([z * z, z], dim=-1), weights.T)  # (B, K)


def _float32_error_bound(z: torch.Tensor, precisions: torch.Tensor) -> float:
    """Bound in nats on the float32 rounding of the (B, K) table's data terms (centred z)."""
    worst = (z.detach() ** 2 @ precisions.detach().amax(0)).max()  # max_b sum_d z_bd^2 max_k 1/v_kd
    return 4 * torch.finfo(torch.float32).eps * worst.item()


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor, num_samples: int | None = None) -> torch.Tensor:
    """z = mean + std * eps; with num_samples, returns (num_samples, *mean.shape)."""
    std = torch.exp(0.5 * logvar)
    shape = mean.shape if num_samples is None else (num_samples, *mean.shape)
    return mean + std * torch.randn(shape, dtype=mean.dtype, device=mean.device)


def diagonal_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.distributions.Distribution:
    """A `torch.distributions` object for N(mean, diag(exp(logvar))) with event dimension D."""
    normal = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    return torch.distributions.Independent(normal, 1)
