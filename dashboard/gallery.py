"""Builders for the Models, Pseudo-inputs and Samples pages. Pure functions, no Streamlit.

Figures are `plotly.graph_objects.Figure`s with axis titles and hover text; images are uint8
grids from `vae_core.imaging.image_grid`; computations take arrays (or a model) and return arrays,
so tests call them directly and `dashboard.views` only adds caching and layout helpers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from vae_core.distributions import mixture_responsibilities
from vae_core.evaluate import model_device
from vae_core.imaging import image_grid
from vae_core.priors import MixturePrior
from vae_core.seeding import seeded

TRAIN_COLOR, VAL_COLOR, BETA_COLOR = "#1f77b4", "#ff7f0e", "rgba(120, 120, 120, 0.8)"

# --------------------------------------------------------------------------------------------
# Models page

TABLE_COLUMNS = ["checkpoint", "dataset", "model", "prior", "K", "latent", "epochs", "test LL", "paper LL", "ELBO",
                 "active units"]

# history key suffix -> (chart title, y-axis title)
CURVES = {
    "loss": ("Loss", "loss −(recon − β·KL) (nats)"),
    "reconstruction": ("Reconstruction", "E_q log p(x|z) (nats)"),
    "kl": ("KL", "log q(z|x) − log p(z) (nats)"),
}


def models_table(rows: list[dict]) -> tuple[pd.DataFrame, list[tuple[str, str]], list[tuple[str, str]]]:
    """Split `catalog.summary_row` dicts into a table of usable checkpoints, (name, error) pairs of
    broken folders and (name, state) pairs of folders without weights yet."""
    good = [{c: row.get(c) for c in TABLE_COLUMNS} for row in rows if not row.get("error") and not row.get("pending")]
    broken = [(row["checkpoint"], row["error"]) for row in rows if row.get("error")]
    pending = [(row["checkpoint"], row["pending"]) for row in rows if row.get("pending")]
    return pd.DataFrame(good, columns=TABLE_COLUMNS), broken, pending


def tables_by_dataset(table: pd.DataFrame, first: str | None = None) -> dict[str, pd.DataFrame]:
    """The Models table cut into one table per dataset: dataset `first` (the selected checkpoint's)
    leads, the others follow in the order they first appear."""
    groups = {name: group.drop(columns="dataset").reset_index(drop=True)
              for name, group in table.groupby("dataset", sort=False)}
    return dict(sorted(groups.items(), key=lambda item: item[0] != first))


def training_curve_figure(history: list[dict], quantity: str) -> go.Figure:
    """Train and validation `quantity` ("loss", "reconstruction" or "kl") per epoch, β on a right axis."""
    assert quantity in CURVES, f"quantity must be one of {sorted(CURVES)}, got {quantity!r}"
    title, y_title = CURVES[quantity]
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    fig = go.Figure()
    for split, color in (("train", TRAIN_COLOR), ("val", VAL_COLOR)):
        key = f"{split}_{quantity}"
        if any(key in h for h in history):
            fig.add_trace(go.Scatter(
                x=epochs, y=[h.get(key) for h in history], mode="lines", line=dict(color=color),
                name="train" if split == "train" else "validation",
                hovertemplate=f"epoch %{{x}}<br>{split} {quantity} %{{y:.3f}}<extra></extra>"))
    if any("beta" in h for h in history):
        fig.add_trace(go.Scatter(
            x=epochs, y=[h.get("beta") for h in history], mode="lines", name="β (KL warm-up)", yaxis="y2",
            line=dict(color=BETA_COLOR, dash="dot"), hovertemplate="epoch %{x}<br>β %{y:.2f}<extra></extra>"))
    fig.update_layout(
        title=title, xaxis_title="epoch", yaxis_title=y_title, height=320, margin=dict(l=10, r=10, t=40, b=10),
        yaxis2=dict(title="β", overlaying="y", side="right", range=[0, 1.05], tickvals=[0, 0.5, 1], showgrid=False),
        legend=dict(orientation="h", y=-0.25), hovermode="x unified")
    return fig


def metric_tiles(metrics: dict, epochs: int, paper: tuple[float, str] | None = None) -> list[tuple[str, str, str]]:
    """(label, value, help) for each st.metric tile; metrics missing from metrics.json are skipped.
    `paper` is the paper's test log-likelihood for the model and its source (vae_core.paper), if any."""
    tiles = []

    def add(label, key, fmt, help_text):
        if metrics.get(key) is not None:
            tiles.append((label, fmt.format(metrics[key]), help_text))

    ll, stderr = metrics.get("log_likelihood"), metrics.get("log_likelihood_stderr")
    if ll is not None:
        value = f"{ll:.2f} ± {stderr:.2f}" if stderr is not None else f"{ll:.2f}"
        tiles.append(("test log-likelihood", value, f"importance-sampled log p(x), {metrics.get('samples', '?')} "
                                                    "samples per image, in nats (higher is better)"))
    if paper is not None:
        tiles.append(("the paper's test LL", f"{paper[0]:.2f}", f"Table 2 of Tomczak & Welling (2018), as quoted "
                                                                 f"by {paper[1]}; trained up to 2,000 epochs"))
    add("ELBO", "elbo", "{:.2f}", "evidence lower bound on the test set, nats (higher is better)")
    add("reconstruction", "reconstruction", "{:.2f}", "E_q log p(x|z) on the test set, nats")
    add("KL", "kl", "{:.2f}", "E_q [log q(z|x) − log p(z)] on the test set, nats")
    for layer, count in (metrics.get("active_units") or {}).items():
        size = len((metrics.get("unit_activity") or {}).get(layer, [])) or "?"
        tiles.append((f"active units ({layer})", f"{count} / {size}", "dimensions with Cov_x E[z_d|x] > 0.01"))
    add("KL(q(z) ‖ p(z))", "aggregated_posterior_kl", "{:.2f}",
        "how far the aggregated posterior is from the prior (lower: the prior fits the codes)")
    tiles.append(("epochs", str(epochs), "epochs trained (early stopping on the validation loss)"))
    return tiles


# --------------------------------------------------------------------------------------------
# Pseudo-inputs: responsibilities, ordering, nearest neighbours


def component_responsibilities(test_means, comp_means, comp_logvars) -> np.ndarray:
    """r_nk = p(k | z_n) under the uniform mixture sum_k N(m_k, exp(logvar_k)) / K: (N, D) -> (N, K)."""
    with torch.no_grad():
        r = mixture_responsibilities(torch.as_tensor(np.asarray(test_means), dtype=torch.float64),
                                     torch.as_tensor(np.asarray(comp_means), dtype=torch.float64),
                                     torch.as_tensor(np.asarray(comp_logvars), dtype=torch.float64))
    return r.numpy()


def mean_responsibilities(test_means, comp_means, comp_logvars) -> np.ndarray:
    """(1/N) sum_n r_nk: the share of the data that component k explains, (K,), sums to 1."""
    return component_responsibilities(test_means, comp_means, comp_logvars).mean(axis=0)


def component_order(mean_resp) -> np.ndarray:
    """Component indices from the one explaining most data to the least (ties keep index order)."""
    return np.argsort(-np.asarray(mean_resp), kind="stable")


def responsibility_figure(mean_resp, order=None) -> go.Figure:
    """Bar chart of the mean responsibilities, sorted descending; hover names the component."""
    mean_resp = np.asarray(mean_resp)
    order = component_order(mean_resp) if order is None else np.asarray(order)
    ranks = np.arange(1, len(order) + 1)
    fig = go.Figure(go.Bar(
        x=ranks.tolist(), y=mean_resp[order].tolist(),  # lists, not numpy: plain JSON for readers and tests
        customdata=np.stack([order, np.cumsum(mean_resp[order])], axis=1).tolist(),
        marker_color=TRAIN_COLOR, name="mean responsibility",
        hovertemplate="rank %{x} · component %{customdata[0]}<br>explains %{y:.1%} of the test set"
                      "<br>top %{x} together: %{customdata[1]:.1%}<extra></extra>"))
    fig.add_hline(y=1 / len(order), line_dash="dot", line_color=BETA_COLOR,
                  annotation_text="uniform 1/K", annotation_position="top right")
    fig.update_layout(xaxis_title="component rank (by share of test data explained)",
                      yaxis_title="mean responsibility (1/N) Σ_n p(k | z_n)", yaxis_tickformat=".1%",
                      height=320, margin=dict(l=10, r=10, t=30, b=10), showlegend=False)
    return fig


def nearest_neighbours(queries, data, count: int, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """The `count` rows of `data` nearest to each query in Euclidean distance, images flattened.

    Returns (indices (Q, count), distances (Q, count)), nearest first. `data` is read `chunk` rows at
    a time, so a large training set (e.g. 50,000 MNIST images) never needs a (Q, N) float64 matrix.
    """
    q = np.asarray(queries, dtype=np.float64).reshape(len(queries), -1)
    data = np.asarray(data).reshape(len(data), -1)
    assert q.shape[1] == data.shape[1], f"queries have {q.shape[1]} features, data {data.shape[1]}"
    count = min(count, len(data))
    best_index = np.empty((len(q), 0), dtype=np.int64)
    best_squared = np.empty((len(q), 0))
    for start in range(0, len(data), chunk):
        block = data[start : start + chunk].astype(np.float64)
        squared = (q**2).sum(1)[:, None] - 2 * q @ block.T + (block**2).sum(1)[None, :]  # (Q, chunk)
        block_index = np.broadcast_to(np.arange(start, start + len(block)), squared.shape)
        candidates = np.concatenate([best_index, block_index], axis=1)
        squared = np.concatenate([best_squared, squared], axis=1)
        keep = _smallest(squared, count)
        best_index = np.take_along_axis(candidates, keep, axis=1)
        best_squared = np.take_along_axis(squared, keep, axis=1)
    return best_index, np.sqrt(np.maximum(best_squared, 0))


def _smallest(values: np.ndarray, count: int) -> np.ndarray:
    """Per row, the columns of the `count` smallest values, smallest first, ties in column order: what
    `np.argsort(values, axis=1, kind="stable")[:, :count]` gives, without sorting whole rows (the
    partition finds each row's count-th value; only the few columns up to it are sorted)."""
    if not 0 < count < values.shape[1]:
        return np.argsort(values, axis=1, kind="stable")[:, :count]
    cutoff = np.partition(values, count - 1, axis=1)[:, count - 1 : count]
    keep = np.empty((len(values), count), dtype=np.int64)
    for row, (row_values, limit) in enumerate(zip(values, cutoff)):
        columns = np.flatnonzero(row_values <= limit)  # ascending: ties keep column order
        if len(columns) < count:  # NaNs, which sort last
            columns = np.arange(len(row_values))
        keep[row] = columns[np.argsort(row_values[columns], kind="stable")[:count]]
    return keep


# --------------------------------------------------------------------------------------------
# Images


def display_scale(input_shape, target: int = 64) -> int:
    """Nearest-neighbour upscaling factor that makes an image about `target` pixels tall."""
    return max(1, round(target / input_shape[-2]))


def grid(images, columns: int | None = None, scale: int | None = None) -> np.ndarray:
    """A uint8 grid of (N, C, H, W) images in [0, 1], upscaled for display."""
    images = np.asarray(images)
    scale = display_scale(images.shape) if scale is None else scale
    return image_grid(images, columns=columns, padding=max(1, scale // 2), scale=scale)


def neighbour_rows(heads, data, index) -> np.ndarray:
    """Images for rows [head_i, data[index[i, 0]], data[index[i, 1]], ...]: (Q * (1 + m), C, H, W)."""
    heads, data = np.asarray(heads), np.asarray(data)
    rows = [np.concatenate([heads[i : i + 1], data[index[i]]]) for i in range(len(heads))]
    return np.concatenate(rows)


def interleave_rows(top, bottom, columns: int) -> np.ndarray:
    """Alternate rows of `columns` images from `top` then `bottom` (e.g. test images, reconstructions)."""
    top, bottom = np.asarray(top), np.asarray(bottom)
    assert top.shape == bottom.shape, f"shapes differ: {top.shape} vs {bottom.shape}"
    out = []
    for start in range(0, len(top), columns):
        pair = [top[start : start + columns], bottom[start : start + columns]]
        pad = columns - len(pair[0])
        if pad:  # blank (white) images keep the last pair of rows aligned
            blank = np.ones((pad, *top.shape[1:]), dtype=top.dtype)
            pair = [np.concatenate([p, blank]) for p in pair]
        out.extend(pair)
    return np.concatenate(out)


def with_ends(first, middle, last) -> np.ndarray:
    """[first, *middle, last] as one (len(middle) + 2, C, H, W) array (an interpolation with its endpoints)."""
    return np.concatenate([np.asarray(first)[None], np.asarray(middle), np.asarray(last)[None]])


def other_class_index(labels, index: int) -> int:
    """The first image after `index` (wrapping round) whose label differs, for an interpolation's far end.

    Without labels, or when all labels are equal, the next image (the caller clamps it to the data).
    """
    if labels is not None:
        n = len(labels)
        for step in range(1, n):
            if labels[(index + step) % n] != labels[index]:
                return (index + step) % n
    return index + 1


def columns_for(n: int, max_columns: int = 16) -> int:
    """A near-square number of columns for n images, at most `max_columns`."""
    return max(1, min(max_columns, math.ceil(math.sqrt(n))))


# --------------------------------------------------------------------------------------------
# Model computations (no gradients; seeded so the dashboard is reproducible)


def mixture_prior(model) -> MixturePrior | None:
    """The model's prior when it is a mixture (it has components to show), else None."""
    return model.prior if isinstance(model.prior, MixturePrior) else None


@torch.no_grad()
def prior_components(model) -> tuple[np.ndarray, np.ndarray] | None:
    """(means, logvars) of the prior's K components, each (K, D), or None when it is no mixture."""
    prior = mixture_prior(model)
    if prior is None:
        return None
    means, logvars = prior.components()
    return means.cpu().numpy(), logvars.cpu().numpy()


@torch.no_grad()
def component_images(model) -> np.ndarray | None:
    """One image per prior component, (K, C, H, W): a VampPrior's pseudo-inputs, a mixture's decoded
    means; None when the prior is no mixture."""
    prior = mixture_prior(model)
    return None if prior is None else prior.component_images(model.decode).float().cpu().numpy()


def decodes_in_one_pass(model) -> bool:
    """Whether the model's p(x|z) gives an image in one network pass. An autoregressive one (a
    PixelCNN) draws pixel after pixel, `generation_passes` passes per image: pages then decode in
    the background, fewer images, or not at all."""
    return not model.likelihood.autoregressive


@torch.no_grad()
def decode(model, z, progress=None, seed: int = 0) -> np.ndarray:
    """Mean images of p(x|z) for latent codes z (B, D) on the prior's layer (z2 for the HVAE).

    Seeded: an autoregressive p(x|z) shows its conditional means along one random draw."""
    device = model_device(model)
    with seeded(seed, device):
        return model.decode(torch.as_tensor(np.asarray(z), dtype=torch.float32, device=device), progress).cpu().numpy()


@torch.no_grad()
def reconstruct(model, images, progress=None, seed: int = 0) -> np.ndarray:
    """decode(E[z|x]) for images (N, C, H, W), seeded like `decode`; `progress(passes done, total)`
    for an autoregressive p(x|z)."""
    device = model_device(model)
    with seeded(seed, device):
        x = torch.as_tensor(np.asarray(images), dtype=torch.float32, device=device)
        return model.reconstruct(x, progress).cpu().numpy()


@torch.no_grad()
def prior_samples(model, n: int, seed: int, progress=None) -> np.ndarray:
    """n images from the model: z ~ p(z) (a mixture picks a component per sample), decoded."""
    with seeded(seed, model_device(model)):
        return model.sample(n, progress).cpu().numpy()


@torch.no_grad()
def component_samples(model, component: int, n: int, seed: int, progress=None) -> np.ndarray:
    """n images decoded from draws of one component of a mixture prior (q(z | u_k) for a VampPrior)."""
    with seeded(seed, model_device(model)):
        z = model.prior.component_sample(component, n)
        return model.decode(z, progress).cpu().numpy()


@dataclass(frozen=True)
class MixtureAnalysis:
    """What the Pseudo-inputs page shows about a mixture prior's K components."""

    name: str  # what one component is ("pseudo-input", "mixture mean")
    symbol: str  # "u_k" or "m_k"
    density: str  # "q(z | u_k)" or "N(m_k, diag v_k)"
    images_are_inputs: bool  # heads are images in data space (pseudo-inputs), not decoded means
    mean_resp: np.ndarray  # (K,) share of the test set each component explains
    order: np.ndarray  # (K,) components by mean_resp, largest first
    winners: np.ndarray  # (K,) test images each component is the most likely one for
    heads: np.ndarray  # (K, C, H, W) one image per component
    reconstructions: np.ndarray | None  # (K, C, H, W) the heads reconstructed (pseudo-inputs, one-pass p(x|z) only)
    neighbours: np.ndarray  # (K, m) indices of the nearest training images to each head
    distances: np.ndarray  # (K, m) their pixel-space distances


@torch.no_grad()
def analyse_mixture(model, test_means, train_images, neighbours: int = 8) -> MixtureAnalysis | None:
    """Everything the Pseudo-inputs page shows about a mixture prior; None when the prior is no mixture.

    `test_means` are the test set's posterior means on the prior's layer (N, D); "heads" are the
    prior's component images (the pseudo-inputs of a VampPrior, the decoded means of a mixture of
    Gaussians); the nearest training images are found in pixel space. The pseudo-inputs are
    reconstructed only where p(x|z) decodes in one pass: K autoregressive draws would take minutes.
    """
    prior = mixture_prior(model)
    if prior is None:
        return None
    means, logvars = prior_components(model)
    responsibilities = component_responsibilities(test_means, means, logvars)  # (N, K)
    mean_resp = responsibilities.mean(axis=0)
    heads = component_images(model)
    index, distances = nearest_neighbours(heads, train_images, neighbours)
    return MixtureAnalysis(
        name=prior.component_name, symbol=prior.component_symbol, density=prior.component_density,
        images_are_inputs=prior.images_are_inputs, mean_resp=mean_resp, order=component_order(mean_resp),
        winners=np.bincount(responsibilities.argmax(1), minlength=len(means)), heads=heads,
        reconstructions=reconstruct(model, heads) if prior.images_are_inputs and decodes_in_one_pass(model) else None,
        neighbours=index, distances=distances)


def interpolate(z_a, z_b, steps: int) -> np.ndarray:
    """`steps` points on the segment from z_a to z_b, both ends included: (steps, D)."""
    assert steps >= 2, "an interpolation needs at least 2 steps"
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return (1 - t) * np.asarray(z_a, dtype=np.float32)[None] + t * np.asarray(z_b, dtype=np.float32)[None]
