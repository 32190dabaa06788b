"""Evaluation: ELBO, importance-sampled log-likelihood, active units, KL(q(z) || p(z)), and how
sharp the samples are (the decoder's entropy at prior draws against posterior draws).

The log-likelihood is log p(x) ~= log (1/S) sum_s p(x, z_s) / q(z_s | x), z_s ~ q(z|x), with
S = 5000 by default as in the paper. Each test point is encoded once; its samples are decoded
together in large batches (`max_rows` decoder rows at a time); the prior is frozen first, so a
VampPrior's K pseudo-inputs are encoded once for the whole test set.

Chunks are sized by memory: one short pass measures the largest activation a row makes (forward
hooks), and a chunk holds as many rows as fit in `CPU_MEMORY_BUDGET` (a quarter of the free memory
on a GPU), at most `CPU_MAX_ROWS` on a CPU: with the paper's MLP, 2,500 decoder rows per chunk
evaluate ~1.4x faster than 10,000, whose (rows, 784) intermediates spill out of the caches
(benchmarks/speed.py measures it). A PixelHVAE's rows are ~100x larger (64 maps per pixel), so
its chunks are smaller. `estimate_seconds` times one chunk to say how long an evaluation will take.

An evaluation can stop and go on: `log_likelihood` hands a `PartialLogLikelihood` (the values so
far, the RNG state after them, the chunking) to a `commit` callback after each chunk of points, and
continues from one given as `resume` with the very draws it would have made (evaluation_progress
keeps it in a file between runs).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from .distributions import gaussian_mixture_log_prob, reparameterize
from .seeding import rng_state, seeded, set_rng_state, untouched

DEFAULT_SAMPLES = 5000
CPU_MAX_ROWS = 2500  # decoder rows per log-likelihood chunk on a CPU: cache-sized (see the module docstring)
ACCELERATOR_MAX_ROWS = 10000
CPU_MEMORY_BUDGET = 1 << 30  # bytes of activations per chunk on a CPU (or an MPS device)
ACCELERATOR_MEMORY_SHARE = 0.25  # of the free memory of a CUDA device
ACTIVATION_OVERHEAD = 4  # live tensors per largest activation (a layer's input, output, temporaries)
SHARPNESS_SAMPLES = 1000  # prior draws for the decoder's entropy
AUTOREGRESSIVE_SHARPNESS_SAMPLES = 64  # the same where each draw takes a pass per pixel
ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. (2016): a unit is active if Cov_x(E_q[z_d]) > 0.01


def _batches(images, batch_size: int, device):
    for start in range(0, len(images), batch_size):
        yield torch.as_tensor(images[start : start + batch_size], dtype=torch.float32, device=device)


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def elbo_terms(model: nn.Module, images, batch_size: int = 1000) -> dict[str, float]:
    """Mean ELBO, reconstruction log p(x|z) and KL over `images` (one sample of z per image)."""
    device = model_device(model)
    totals = {"elbo": 0.0, "reconstruction": 0.0, "kl": 0.0}
    for x in _batches(images, batch_size, device):
        out = model(x, beta=1.0)
        for name in totals:
            totals[name] += getattr(out, name).sum().item()
    means = {name: total / len(images) for name, total in totals.items()}
    return means | {"loss": -means["elbo"]}


@torch.no_grad()
def activation_bytes_per_row(model: nn.Module, x: torch.Tensor, prior, rows: int = 4) -> int:
    """The largest tensor a module outputs per importance-sampling row, measured on `rows` rows of x[:1]."""
    largest = 0

    def record(module, inputs, output):
        nonlocal largest
        if isinstance(output, torch.Tensor):
            largest = max(largest, output.numel() * output.element_size())

    hooks = [module.register_forward_hook(record) for module in model.modules()]
    try:
        with untouched(x.device):  # measuring must not change the estimate that follows
            model.log_importance_weights(x[:1], rows, prior=prior)
    finally:
        for hook in hooks:
            hook.remove()
    return max(1, largest // rows)


def memory_sized_rows(model: nn.Module, x: torch.Tensor, prior) -> int:
    """Rows (samples x points) per log-likelihood chunk: what fits in the device's activation budget,
    at most CPU_MAX_ROWS on a CPU and ACCELERATOR_MAX_ROWS elsewhere."""
    device = model_device(model)
    if device.type == "cuda":
        budget, cap = ACCELERATOR_MEMORY_SHARE * torch.cuda.mem_get_info(device)[0], ACCELERATOR_MAX_ROWS
    else:
        budget, cap = CPU_MEMORY_BUDGET, CPU_MAX_ROWS if device.type == "cpu" else ACCELERATOR_MAX_ROWS
    per_row = ACTIVATION_OVERHEAD * activation_bytes_per_row(model, x, prior)
    return int(min(cap, max(1, budget // per_row)))


def _chunking(num_samples: int, max_rows: int) -> tuple[int, int]:
    """(points, samples) per chunk for at most `max_rows` rows."""
    return max(1, max_rows // num_samples), min(num_samples, max_rows)


@torch.no_grad()
def estimate_seconds(model: nn.Module, images, num_samples: int = DEFAULT_SAMPLES, max_rows: int | None = None) -> float:
    """How long `log_likelihood(model, images, num_samples)` will take, from one timed chunk."""
    device = model_device(model)
    prior = model.prior.frozen()
    x = next(_batches(images, 1, device))
    max_rows = max_rows or memory_sized_rows(model, x, prior)
    points, samples = _chunking(num_samples, max_rows)
    x = next(_batches(images, points, device))
    with untouched(device):  # an estimate first must not change the evaluation's draws
        model.log_importance_weights(x[:1], 1, prior=prior)  # warm up (first-call allocations, kernels)
        start = time.perf_counter()
        model.log_importance_weights(x, samples, prior=prior)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    chunks = math.ceil(len(images) / points) * math.ceil(num_samples / samples)
    return (time.perf_counter() - start) * chunks


@dataclass(frozen=True)
class PartialLogLikelihood:
    """Where an interrupted `log_likelihood` stands: log p(x) of the first len(values) images, the
    RNG state right after them ({"rng.torch": ..., "rng.cuda": ...}) and the chunking it used."""

    values: np.ndarray
    rng: dict[str, torch.Tensor]
    points_per_chunk: int
    samples_per_chunk: int


@torch.no_grad()
def log_likelihood(model: nn.Module, images, num_samples: int = DEFAULT_SAMPLES, max_rows: int | None = None,
                   progress: Callable[[int, int], None] | None = None, resume: PartialLogLikelihood | None = None,
                   commit: Callable[[PartialLogLikelihood], None] | None = None) -> np.ndarray:
    """Importance-sampled log p(x) for each image: (N,) float64 numpy array, in nats.

    `max_rows` bounds the decoder rows (samples x points) per chunk; by default what fits in
    memory (`memory_sized_rows`). It changes speed and memory, not the estimate's distribution.
    `commit` receives the state after each chunk of points; given that state as `resume` (same
    model, images and S), the result is exactly that of a run never interrupted.
    """
    assert num_samples >= 1, "num_samples must be at least 1"
    device = model_device(model)
    prior = model.prior.frozen()
    # filled in place: one small tensor kept per point between the chunks' large temporaries
    # fragments the C heap, whose resident size then grows with the number of points
    results = np.empty(len(images), dtype=np.float64)
    if resume is not None:
        if len(resume.values) > len(images) or resume.samples_per_chunk > num_samples:
            raise ValueError(f"cannot resume: the partial evaluation holds {len(resume.values)} of "
                             f"{len(images)} images, {resume.samples_per_chunk} of {num_samples} samples a chunk")
        points_per_chunk, samples_per_chunk = resume.points_per_chunk, resume.samples_per_chunk
        done = len(resume.values)
        results[:done] = resume.values
        set_rng_state(resume.rng, device)
    else:
        if max_rows is None:
            max_rows = memory_sized_rows(model, next(_batches(images, 1, device)), prior)
        points_per_chunk, samples_per_chunk = _chunking(num_samples, max_rows)
        done = 0
    for x in _batches(images[done:], points_per_chunk, device):
        log_sum = torch.full((x.shape[0],), -math.inf, dtype=torch.float64, device=device)
        for start in range(0, num_samples, samples_per_chunk):
            count = min(samples_per_chunk, num_samples - start)
            weights = model.log_importance_weights(x, count, prior=prior).double()  # (count, B)
            log_sum = torch.logaddexp(log_sum, torch.logsumexp(weights, dim=0))
        results[done : done + x.shape[0]] = (log_sum - math.log(num_samples)).cpu().numpy()
        done += x.shape[0]
        if commit:
            commit(PartialLogLikelihood(results[:done], rng_state(device), points_per_chunk, samples_per_chunk))
        if progress:
            progress(done, len(images))
    return results


def bits_per_dim(log_likelihood_nats: float, input_shape: tuple[int, ...]) -> float:
    """-log2 p(x) per pixel, the usual unit for grey images with 256 levels."""
    return -log_likelihood_nats / (math.prod(input_shape) * math.log(2))


@torch.no_grad()
def posterior_means(model: nn.Module, images, batch_size: int = 1000) -> dict[str, np.ndarray]:
    """E_q[z | x] for every latent layer: {layer name: (N, D_layer)}."""
    device = model_device(model)
    chunks: dict[str, list] = {}
    for x in _batches(images, batch_size, device):
        for name, mean in model.latent_means(x).items():
            chunks.setdefault(name, []).append(mean.cpu())
    return {name: torch.cat(parts).numpy() for name, parts in chunks.items()}


def unit_activity(means: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Cov_x(E_q[z_d]) per dimension of each layer: {layer: (D,)}."""
    return {name: m.var(axis=0) for name, m in means.items()}


def count_active(activity: dict[str, np.ndarray], threshold: float = ACTIVE_UNIT_THRESHOLD) -> dict[str, int]:
    """How many dimensions of each layer have Cov_x(E_q[z_d]) > threshold, from `unit_activity`."""
    return {name: int((np.asarray(a) > threshold).sum()) for name, a in activity.items()}


def active_units(model: nn.Module, images, threshold: float = ACTIVE_UNIT_THRESHOLD) -> dict[str, int]:
    """How many dimensions of each latent layer have Cov_x(E_q[z_d]) > threshold."""
    return count_active(unit_activity(posterior_means(model, images)), threshold)


def standard_error(values) -> float | None:
    """The standard error of the mean of `values` (sample std / sqrt(n)); None, undefined, for
    fewer than two values."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return None
    return float(values.std(ddof=1) / math.sqrt(len(values)))


@torch.no_grad()
def aggregated_posterior_kl(model: nn.Module, images, max_points: int = 2000, seed: int = 0) -> float:
    """Monte Carlo KL(q(z) || p(z)) on the prior's layer, q(z) = 1/N sum_n q(z | x_n).

    One z_n ~ q(z | x_n) per image; log q(z_n) is the mixture over the same N posteriors (written
    as matmuls). Uses at most `max_points` images (chosen with `seed`) to bound the N x N cost.
    """
    device = model_device(model)
    if len(images) > max_points:
        index = np.random.default_rng(seed).choice(len(images), max_points, replace=False)
        images = images[np.sort(index)]
    params = [model.encoder(x) for x in _batches(images, 1000, device)]
    means = torch.cat([m for m, _ in params])
    logvars = torch.cat([lv for _, lv in params])
    z = reparameterize(means, logvars)
    prior = model.prior.frozen()
    log_q = torch.cat([gaussian_mixture_log_prob(chunk, means, logvars) for chunk in z.split(1000)])
    log_p = torch.cat([prior.log_prob(chunk) for chunk in z.split(1000)])
    return (log_q - log_p).mean().item()


@torch.no_grad()
def decoder_entropy(likelihood: nn.Module, params: torch.Tensor, draws: int = 4) -> torch.Tensor:
    """H[p(x|z)] in nats per image for each row of decoder `params`: (B,).

    Monte Carlo, E_{x ~ p(x|z)}[-log p(x|z)] over `draws` images drawn per row, so it works for
    every likelihood alike (a sum over hundreds of independent pixels: a few draws suffice).
    """
    return torch.stack([-likelihood.log_prob(likelihood.sample(params), params) for _ in range(draws)]).mean(0)


@torch.no_grad()
def sample_sharpness(model: nn.Module, images, num_samples: int | None = None, draws: int | None = None,
                     seed: int = 0, batch_size: int = 500) -> dict[str, float]:
    """How sure the decoder is where the prior puts codes, against where the encoder puts them.

    "prior": mean H[p(x|z)] over `num_samples` draws z ~ p(z), the model's samples; "posterior":
    the same over one z ~ q(z|x) per image (at most `num_samples` of them), its reconstructions.
    Both in nats per image. For binary pixels lower is sharper (a Bernoulli's entropy is a function
    of the mean image shown), and a prior that puts mass where no image is encoded (the paper's
    argument against N(0, I)) decodes there to blurry images: "prior" well above "posterior". For
    grey pixels it is no blur measure: a discretised logistic's entropy is set by its predicted
    scale, and is low both for a narrow one and for a very wide one (whose mass falls in the two
    outer bins). Reproducible for a given seed. By default SHARPNESS_SAMPLES draws, 4 images each;
    AUTOREGRESSIVE_SHARPNESS_SAMPLES, 1 each, where every image takes a pass per pixel.
    """
    device = model_device(model)
    slow = model.likelihood.autoregressive
    num_samples = num_samples or (AUTOREGRESSIVE_SHARPNESS_SAMPLES if slow else SHARPNESS_SAMPLES)
    draws = draws or (1 if slow else 4)
    images = images[:num_samples]
    with seeded(seed, device):
        prior = [decoder_entropy(model.likelihood, model.prior_decoder_params(len(chunk)), draws)
                 for chunk in torch.arange(num_samples).split(batch_size)]
        posterior = [decoder_entropy(model.likelihood, model.posterior_decoder_params(x), draws)
                     for x in _batches(images, batch_size, device)]
    return {"prior": torch.cat(prior).mean().item(), "posterior": torch.cat(posterior).mean().item()}


def evaluate(model: nn.Module, images, num_samples: int = DEFAULT_SAMPLES, input_type: str = "binary",
             progress: Callable[[int, int], None] | None = None, per_point: bool = False,
             resume: PartialLogLikelihood | None = None,
             commit: Callable[[PartialLogLikelihood], None] | None = None) -> dict:
    """All test metrics in one JSON-able dict (what `python -m vae_core evaluate --json` prints).

    `per_point` adds "log_likelihood_per_point" (one value per image, in order), for paired
    comparisons of two models on the same test points. "log_likelihood_stderr" is None for a
    single image. Raises ValueError for an empty `images`. `resume` and `commit` are those of
    `log_likelihood`: a resumed evaluation returns exactly the metrics of an uninterrupted one.
    """
    if len(images) == 0:
        raise ValueError("there are no test images to evaluate")
    model.eval()
    start = time.perf_counter()
    ll = log_likelihood(model, images, num_samples, progress=progress, resume=resume, commit=commit)
    terms = elbo_terms(model, images)
    activity = unit_activity(posterior_means(model, images))
    metrics = {
        "log_likelihood": float(ll.mean()),
        "log_likelihood_stderr": standard_error(ll),
        "elbo": terms["elbo"],
        "reconstruction": terms["reconstruction"],
        "kl": terms["kl"],
        "active_units": count_active(activity),
        "unit_activity": {name: a.tolist() for name, a in activity.items()},
        "aggregated_posterior_kl": aggregated_posterior_kl(model, images),
        "decoder_entropy": sample_sharpness(model, images),
        "samples": num_samples,
        "n_test": len(images),
    }
    if per_point:
        metrics["log_likelihood_per_point"] = ll.tolist()
    if input_type == "gray":
        shape = tuple(images.shape[1:])
        metrics["bits_per_dim"] = bits_per_dim(metrics["log_likelihood"], shape)
    metrics["seconds"] = time.perf_counter() - start
    return metrics
