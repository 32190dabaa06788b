"""The authors' VAE + VampPrior training step and test log-likelihood, re-implemented for timing.

What jmtomczak/vae_vampprior computes for the paper's MLP VAE with a VampPrior on binary images
(models/VAE.py, models/Model.py, utils/nn.py, utils/optimizer.py, utils/training.py), written
for current PyTorch so that benchmarks/speed.py can time it beside vae_core in one process. It
keeps every choice that sets their speed:

- gated layers as two `nn.Linear`, h(x) * sigmoid(g(x)): two matmuls per layer;
- the K pseudo-inputs made at every call of log p(z): a (K, K) identity matrix through
  Linear(K, D, bias=False) and Hardtanh(0, 1), then through the encoder;
- log p(z) from a (B, K, D) tensor of per-dimension log-densities and a max-shifted logsumexp;
- Bernoulli pixels on sigmoid means clamped to [1e-5, 1 - 1e-5];
- Adam on gradients each divided by its own L2 norm (their AdamNormGrad), a Python loop over the
  parameters;
- an epoch as a shuffling DataLoader over a TensorDataset of flat images and dummy labels;
- the test log-likelihood one point at a time: S / 100 forward passes of 100 copies of it, each
  re-encoding the pseudo-inputs, and a logsumexp over the S weights on the host.

Their log-densities omit the -1/2 log 2 pi terms; those cancel in log q(z|x) - log p(z), so the
loss equals vae_core's for the same weights and noise (tests/test_benchmarks_speed.py checks it).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

BERNOULLI_CLAMP = 1e-5  # their min_epsilon: sigmoid means are clamped to [1e-5, 1 - 1e-5]
NORM_EPS = 1e-7  # AdamNormGrad divides each gradient by (its L2 norm + 1e-7)
LOGVAR_RANGE = (-6.0, 2.0)  # Hardtanh on the encoder's log-variance


def log_normal_diag(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, dim: int) -> torch.Tensor:
    """log N(x; mean, exp(logvar)) without the -1/2 log 2 pi terms, summed over `dim`."""
    return (-0.5 * (logvar + (x - mean) ** 2 / torch.exp(logvar))).sum(dim)


class TwoMatmulGate(nn.Module):
    """h(x) * sigmoid(g(x)) with h and g as separate linear layers."""

    def __init__(self, inputs: int, outputs: int):
        super().__init__()
        self.h = nn.Linear(inputs, outputs)
        self.g = nn.Linear(inputs, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.h(x) * torch.sigmoid(self.g(x))


class AuthorsVampVAE(nn.Module):
    """The authors' one-level VAE with a VampPrior for flat binary images (B, D)."""

    def __init__(self, pixels: int = 784, hidden: int = 300, latent: int = 40, components: int = 500,
                 pseudo_mean: float = 0.05, pseudo_std: float = 0.01):
        super().__init__()
        self.components = components
        self.encoder = nn.Sequential(TwoMatmulGate(pixels, hidden), TwoMatmulGate(hidden, hidden))
        self.z_mean = nn.Linear(hidden, latent)
        self.z_logvar = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(TwoMatmulGate(latent, hidden), TwoMatmulGate(hidden, hidden))
        self.x_mean = nn.Linear(hidden, pixels)
        for layer in self.modules():  # He-normal weights, PyTorch's default biases
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, 0.0, math.sqrt(2.0 / layer.in_features))
        self.pseudo_inputs = nn.Linear(components, pixels, bias=False)  # weight (D, K): one column per u_k
        nn.init.normal_(self.pseudo_inputs.weight, pseudo_mean, pseudo_std)
        self.register_buffer("idle_input", torch.eye(components), persistent=False)  # (K, K)

    @classmethod
    def from_vae_core(cls, model: nn.Module) -> AuthorsVampVAE:
        """The same network with the weights of a vae_core MLP VAE + VampPrior (Bernoulli pixels)."""
        state = model.state_dict()  # GatedDense's state dict names its halves h.* and g.*
        pseudo = state["prior.pseudo_input_params"]  # (K, C, H, W)
        components, pixels = pseudo.shape[0], math.prod(pseudo.shape[1:])
        hidden, latent = state["encoder.head.mean.weight"].shape[1], state["encoder.head.mean.weight"].shape[0]
        reference = cls(pixels, hidden, latent, components).to(pseudo.device, pseudo.dtype)
        names = {"encoder.trunks.0.1.": "encoder.", "encoder.head.mean.": "z_mean.",
                 "encoder.head.logvar.": "z_logvar.", "decoder.trunks.0.": "decoder.", "decoder.output.0.": "x_mean."}
        mapped = {"pseudo_inputs.weight": pseudo.reshape(components, pixels).T}
        for key, value in state.items():
            prefix = next((p for p in names if key.startswith(p)), None)
            if prefix is not None:
                mapped[names[prefix] + key[len(prefix):]] = value
        reference.load_state_dict(mapped)
        return reference

    def q_z(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder(x)
        return self.z_mean(features), F.hardtanh(self.z_logvar(features), *LOGVAR_RANGE)

    def p_x(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.x_mean(self.decoder(z)))  # (B, D) Bernoulli means

    def log_p_z(self, z: torch.Tensor) -> torch.Tensor:
        """The VampPrior's log-density, (B, L) -> (B,), the pseudo-inputs made and encoded anew."""
        pseudo = F.hardtanh(self.pseudo_inputs(self.idle_input), 0.0, 1.0)  # (K, D)
        means, logvars = self.q_z(pseudo)  # (K, L)
        a = log_normal_diag(z.unsqueeze(1), means.unsqueeze(0), logvars.unsqueeze(0), dim=2)  # (B, K)
        a = a - math.log(self.components)
        a_max = a.max(1).values
        return a_max + torch.log(torch.exp(a - a_max.unsqueeze(1)).sum(1))

    def calculate_loss(self, x: torch.Tensor, beta: float = 1.0, average: bool = False):
        """(loss, reconstruction, KL): per example, or their batch means with `average`."""
        mean, logvar = self.q_z(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        probs = self.p_x(z).clamp(BERNOULLI_CLAMP, 1.0 - BERNOULLI_CLAMP)
        reconstruction = (x * torch.log(probs) + (1.0 - x) * torch.log(1.0 - probs)).sum(1)
        kl = log_normal_diag(z, mean, logvar, dim=1) - self.log_p_z(z)
        loss = -reconstruction + beta * kl
        if average:
            return loss.mean(), reconstruction.mean(), kl.mean()
        return loss, reconstruction, kl


class AdamNormGrad(torch.optim.Optimizer):
    """Adam on each parameter's gradient divided by its L2 norm, with their update's form:
    step lr * sqrt(1 - beta2^t) / (1 - beta1^t) on m / (sqrt(v) + eps)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad / (torch.linalg.vector_norm(p.grad) + NORM_EPS)
                state = self.state[p]
                if not state:
                    state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                state["step"] += 1
                exp_avg, exp_avg_sq, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step_size = group["lr"] * math.sqrt(1 - beta2**t) / (1 - beta1**t)
                p.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(group["eps"]), value=-step_size)


def train_loader(images: torch.Tensor, batch_size: int = 100) -> torch.utils.data.DataLoader:
    """Their training loader: flat images with dummy labels, shuffled, batch by batch; on CUDA one
    worker and pinned memory."""
    flat = images.detach().flatten(1).cpu()
    labels = torch.zeros(len(flat), 1, dtype=torch.float64)
    cuda = images.device.type == "cuda"
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(flat, labels), batch_size=batch_size,
                                       shuffle=True, **({"num_workers": 1, "pin_memory": True} if cuda else {}))


def train_epoch(model: AuthorsVampVAE, optimizer: torch.optim.Optimizer, loader, beta: float,
                device: torch.device, max_steps: int | None = None) -> int:
    """One epoch of their training loop (or its first `max_steps` steps); the steps run."""
    model.train()
    steps = 0
    for data, _ in loader:
        x = data.to(device)
        optimizer.zero_grad()
        loss, reconstruction, kl = model.calculate_loss(x, beta, average=True)
        loss.backward()
        optimizer.step()
        loss.item(), reconstruction.item(), kl.item()  # their running sums read each value on the host
        steps += 1
        if max_steps and steps >= max_steps:
            break
    return steps


@torch.no_grad()
def log_likelihood(model: AuthorsVampVAE, images: torch.Tensor, num_samples: int = 5000,
                   batch: int = 100) -> np.ndarray:
    """Their importance-sampled log p(x) per image, (N,) in nats: for each point, num_samples /
    batch full forward passes of `batch` copies (one pass of num_samples copies when fewer).

    Run without autograd (their code, on PyTorch >= 0.4, also records every pass's graph, which
    only adds time)."""
    model.eval()
    passes, copies = (1, num_samples) if num_samples <= batch else (num_samples // batch, batch)
    results = []
    for x in images.flatten(1):
        repeated = x.unsqueeze(0).expand(copies, -1)
        weights = np.concatenate([(-model.calculate_loss(repeated)[0]).cpu().numpy() for _ in range(passes)])
        weights = weights.astype(np.float64)
        top = weights.max()
        results.append(top + math.log(np.exp(weights - top).sum()) - math.log(len(weights)))
    return np.asarray(results)
