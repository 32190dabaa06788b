"""Prior versus aggregated posterior: densities on a grid, samples, marginals, KL (Plotly)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from vae_core.evaluate import aggregated_posterior_kl, model_device
from vae_core.projections import sample_prior
from vae_core.seeding import seeded

from . import gallery
from .latent_map import PRIOR_COLOUR, label_colours

POSTERIOR_COLOUR = "#D62728"


@torch.no_grad()
def prior_log_prob(prior, z: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """log p(z) for points (M, D), in batches; pass `prior.frozen()` to encode pseudo-inputs once."""
    anchor = next(iter(prior.buffers()), None)
    anchor = anchor if anchor is not None else next(prior.parameters())
    z = torch.as_tensor(np.asarray(z), dtype=anchor.dtype, device=anchor.device)
    return torch.cat([prior.log_prob(chunk).cpu() for chunk in z.split(batch_size)]).double().numpy()


@torch.no_grad()
def aggregated_posterior_samples(model, images: np.ndarray, labels=None, per_image: int = 1, seed: int = 0,
                                 max_images: int = 2000) -> tuple[np.ndarray, np.ndarray | None]:
    """z ~ q(z|x_n) on the prior's layer, `per_image` draws per image: (N * per_image, D), labels."""
    if len(images) > max_images:
        keep = np.sort(np.random.default_rng(seed).choice(len(images), max_images, replace=False))
        images, labels = images[keep], (None if labels is None else np.asarray(labels)[keep])
    device = model_device(model)
    chunks = []
    with seeded(seed, device):
        for start in range(0, len(images), 1000):
            x = torch.as_tensor(images[start:start + 1000], dtype=torch.float32, device=device)
            z = model.encode(x).sample((per_image,))  # (S, B, D)
            chunks.append(z.transpose(0, 1).reshape(-1, z.shape[-1]).float().cpu())
    samples = torch.cat(chunks).numpy()
    return samples, (None if labels is None else np.repeat(np.asarray(labels), per_image))


@dataclass(frozen=True)
class PairedSamples:
    """As many draws from the aggregated posterior as from the prior, with log p(z) at each."""

    posterior: np.ndarray  # (M, D) z ~ q(z|x_n)
    labels: np.ndarray | None  # (M,) the label of each draw's image
    prior: np.ndarray  # (M, D) z ~ p(z)
    log_p_posterior: np.ndarray  # (M,)
    log_p_prior: np.ndarray  # (M,)


def paired_samples(model, images: np.ndarray, labels=None, per_image: int = 1, seed: int = 0) -> PairedSamples:
    """`per_image` posterior draws per image (at most 2,000 images) and as many prior draws."""
    z_post, z_labels = aggregated_posterior_samples(model, images, labels, per_image, seed)
    z_prior = sample_prior(model, len(z_post), seed)
    frozen = model.prior.frozen()  # a VampPrior encodes its pseudo-inputs once
    return PairedSamples(z_post, z_labels, z_prior, prior_log_prob(frozen, z_post), prior_log_prob(frozen, z_prior))


@torch.no_grad()
def decoded_manifold(model, xlim, ylim, steps: int = 15, progress=None) -> np.ndarray:
    """The decoder's mean image at each point of a steps x steps grid over a 2-D latent plane:
    (steps, steps, C, H, W), row 0 at the top (largest z2), as the plane is drawn; `progress(done,
    total)` follows an autoregressive decoding (seeded: see `gallery.decode`)."""
    assert model.prior.latent_dim == 2, "the decoded manifold needs a 2-D latent"
    xs = np.linspace(*xlim, steps, dtype=np.float32)
    ys = np.linspace(*ylim, steps, dtype=np.float32)[::-1]
    gx, gy = np.meshgrid(xs, ys)
    images = gallery.decode(model, np.stack([gx.ravel(), gy.ravel()], axis=1), progress)
    return images.reshape(steps, steps, *images.shape[1:])


def manifold_figure(images: np.ndarray, xlim, ylim, xs: np.ndarray, ys: np.ndarray, log_p: np.ndarray) -> go.Figure:
    """The decoded manifold as one picture spread over the latent plane, with the prior's log-density
    contours drawn over it, so the eye sees which images the prior's mass decodes to."""
    steps = images.shape[0]
    tiles = np.concatenate([np.concatenate(list(row), axis=-1) for row in images], axis=-2)  # (C, steps*H, steps*W)
    picture = (np.clip(tiles.mean(axis=0), 0, 1) * 255).astype(np.uint8)
    dx, dy = (xlim[1] - xlim[0]) / steps, (ylim[1] - ylim[0]) / steps
    fig = go.Figure(go.Heatmap(z=picture[::-1], x0=xlim[0] + dx / (2 * images.shape[-1]), dx=dx / images.shape[-1],
                               y0=ylim[0] + dy / (2 * images.shape[-2]), dy=dy / images.shape[-2],
                               colorscale="Greys", reversescale=True, showscale=False, hoverinfo="skip"))
    top = float(np.max(log_p))
    fig.add_trace(go.Contour(x=xs, y=ys, z=log_p, contours=dict(coloring="lines", start=top - 12, end=top, size=1.5),
                             line=dict(width=1.5), colorscale=[[0, "#7A9CC6"], [1, "#D62728"]], showscale=False,
                             name="log p(z)", hovertemplate="z=(%{x:.2f}, %{y:.2f})<br>log p(z) = %{z:.2f}<extra></extra>"))
    fig.update_layout(xaxis_title="z₁", yaxis_title="z₂", height=620, margin=dict(t=20),
                      xaxis_range=list(xlim), yaxis_range=list(ylim), yaxis_scaleanchor="x", xaxis_constrain="domain")
    return fig


def estimate_aggregated_kl(model, images: np.ndarray, seed: int = 0, max_points: int = 2000) -> float:
    """Monte Carlo KL(q(z) || p(z)) (vae_core.evaluate), reproducible for a given seed."""
    with seeded(seed, model_device(model)):
        return aggregated_posterior_kl(model, images, max_points=max_points, seed=seed)


def grid_limits(*point_sets: np.ndarray, margin: float = 0.15,
                square: bool = True) -> tuple[tuple[float, float], tuple[float, float]]:
    """x and y ranges covering the central 99% of the points, widened by `margin` (and made square)."""
    points = np.concatenate([np.asarray(p)[:, :2] for p in point_sets])
    low, high = np.quantile(points, 0.005, axis=0), np.quantile(points, 0.995, axis=0)
    pad = (high - low) * margin + 1e-3
    if square:  # the same span on both axes, so a round density looks round
        half = float(np.max(high - low + 2 * pad)) / 2
        centre = (low + high) / 2
        return (float(centre[0] - half), float(centre[0] + half)), (float(centre[1] - half), float(centre[1] + half))
    return (float(low[0] - pad[0]), float(high[0] + pad[0])), (float(low[1] - pad[1]), float(high[1] + pad[1]))


def density_grid(log_prob: Callable[[np.ndarray], np.ndarray], xlim, ylim,
                 resolution: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xs (R,), ys (R,), log p on the grid (R, R) with rows along y (Plotly's contour layout)."""
    xs, ys = np.linspace(*xlim, resolution), np.linspace(*ylim, resolution)
    gx, gy = np.meshgrid(xs, ys)
    values = log_prob(np.stack([gx.ravel(), gy.ravel()], axis=1))
    return xs, ys, np.asarray(values).reshape(resolution, resolution)


def prior_contour_figure(xs: np.ndarray, ys: np.ndarray, log_p: np.ndarray, samples: np.ndarray | None = None,
                         labels=None, density: bool = False, span: float = 12.0) -> go.Figure:
    """Contours of the prior (log p(z), or p(z)) with aggregated-posterior samples on top.

    The log-density colour scale covers the top `span` nats, so the far tails do not wash it out.
    """
    top = float(np.max(log_p))
    z = np.exp(log_p) if density else log_p
    contour = go.Contour(x=xs, y=ys, z=z, colorscale=[[0, "#FFFFFF"], [1, "#7A9CC6"]], ncontours=20, name="prior",
                         colorbar=dict(title="p(z)" if density else "log p(z)", x=1.02),
                         hovertemplate="z=(%{x:.2f}, %{y:.2f})<br>" + ("p" if density else "log p")
                         + "(z) = %{z:.3g}<extra>prior</extra>")
    if not density:
        contour.update(zmin=top - span, zmax=top, zauto=False)
    fig = go.Figure(contour)
    if samples is not None:
        labels = np.asarray(labels) if labels is not None else np.full(len(samples), -1)
        for label, colour in label_colours(labels).items():
            index = labels == label
            name = "q(z) samples" if label == -1 else f"label {label}"
            fig.add_trace(go.Scatter(x=samples[index, 0], y=samples[index, 1], mode="markers", name=name,
                                     marker=dict(color=colour, size=5, opacity=0.8,
                                                 line=dict(width=0.5, color="white")),
                                     hovertemplate=f"z ~ q(z|x), {name}<extra></extra>"))
    fig.update_layout(xaxis_title="z₁", yaxis_title="z₂", height=600, margin=dict(t=20),
                      xaxis_range=[xs[0], xs[-1]], yaxis_range=[ys[0], ys[-1]],
                      legend=dict(x=1.15), yaxis_scaleanchor="x", xaxis_constrain="domain")
    return fig


def marginals_figure(prior_samples: np.ndarray, posterior_samples: np.ndarray, dims, columns: int = 4,
                     layer: str = "z") -> go.Figure:
    """Small multiples: for each chosen dimension, a histogram of prior and of posterior samples."""
    dims = list(dims)
    rows = max(1, math.ceil(len(dims) / columns))
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=[f"{layer}[{d}]" for d in dims],
                        vertical_spacing=min(0.3, 0.45 / rows) if rows > 1 else 0.2)
    for i, d in enumerate(dims):
        row, col = divmod(i, columns)
        for name, values, colour in (("prior p(z)", prior_samples[:, d], PRIOR_COLOUR),
                                     ("aggregated posterior q(z)", posterior_samples[:, d], POSTERIOR_COLOUR)):
            fig.add_trace(go.Histogram(x=values, name=name, legendgroup=name, showlegend=i == 0,
                                       marker_color=colour, opacity=0.55, histnorm="probability density",
                                       nbinsx=40, hovertemplate=f"{layer}[{d}]: %{{x}}<br>density %{{y:.3g}}"
                                                                 f"<extra>{name}</extra>"),
                          row=row + 1, col=col + 1)
    fig.update_layout(barmode="overlay", height=230 * rows + 90, margin=dict(t=80),
                      legend=dict(orientation="h", x=0, y=0.99, yanchor="top", yref="container"))
    fig.update_xaxes(title_text="value", row=rows)
    fig.update_yaxes(title_text="density", col=1)
    return fig


def log_prob_histogram_figure(log_p_posterior: np.ndarray, log_p_prior: np.ndarray) -> go.Figure:
    """log p(z) evaluated at aggregated-posterior samples versus at prior samples."""
    fig = go.Figure()
    for name, values, colour in (("z ~ prior p(z)", log_p_prior, PRIOR_COLOUR),
                                 ("z ~ aggregated posterior q(z)", log_p_posterior, POSTERIOR_COLOUR)):
        fig.add_trace(go.Histogram(x=values, name=name, marker_color=colour, opacity=0.55, nbinsx=60,
                                   histnorm="probability density",
                                   hovertemplate="log p(z) = %{x}<br>density %{y:.3g}<extra>" + name + "</extra>"))
    fig.update_layout(barmode="overlay", xaxis_title="log p(z) under the prior (nats)", yaxis_title="density",
                      height=380, margin=dict(t=20), legend=dict(orientation="h", y=1.1))
    return fig
