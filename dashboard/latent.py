"""Latent-space maths and figures for the Latent space, Active units and Prior vs posterior pages.

Pure functions: arrays (or a model) in, arrays or Plotly figures out; no Streamlit. Projections to
2-D (PCA, UMAP, t-SNE) are fitted on the test posterior means and then *transform* the prior's
component means and samples from the prior, so all three live in one map. Fitted coordinates are
kept in a small on-disk cache (.npz, never pickle) keyed by the checkpoint's weights, so a UMAP
map survives a server restart:

    $VAMPVIZ_CACHE_DIR (default ~/.cache/vampviz)/projections/<key>.npz
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from vae_core import paths
from vae_core.checkpoint import WEIGHTS_FILE
from vae_core.evaluate import aggregated_posterior_kl, model_device
from vae_core.files import atomic_write_bytes

from .gallery import prior_components

CACHE_VERSION = 1  # bump when what a cached projection means changes
METHODS = ("PCA", "UMAP", "t-SNE", "raw")
ACTIVE_COLOUR, INACTIVE_COLOUR = "#1F77B4", "#C7C7C7"
PRIOR_COLOUR, POSTERIOR_COLOUR = "#7F7F7F", "#D62728"


# --------------------------------------------------------------------------------------------
# Caches on disk


def cache_root() -> Path:
    return paths.cache_dir()


def projection_dir() -> Path:
    return cache_root() / "projections"


def configure_numba_cache() -> Path:
    """Point numba's compile cache at a writable folder; call before the first `import umap`."""
    path = cache_root() / "numba"
    path.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(path))
    return path


@lru_cache(maxsize=64)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def weights_digest(checkpoint: str | Path) -> str:
    """sha256 of the checkpoint's weights (memoised on path, mtime and size)."""
    weights = Path(checkpoint) / WEIGHTS_FILE
    stat = weights.stat()
    return _digest(str(weights.resolve()), stat.st_mtime_ns, stat.st_size)


def projection_key(digest: str, layer: str, method: str, params: dict) -> str:
    payload = {"weights": digest, "layer": layer, "method": method, "params": params, "version": CACHE_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays as one .npz atomically (temporary file, then rename)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(a) for name, a in arrays.items()})
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays saved at `path`, or None when missing or unreadable (a stale file is ignored)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError):
        return None


def load_or_compute(key: str, compute: Callable[[], dict[str, np.ndarray]],
                    directory: Path | None = None) -> tuple[dict[str, np.ndarray], bool]:
    """(arrays, True) from the disk cache, else (compute(), False) after saving them."""
    path = Path(directory or projection_dir()) / f"{key}.npz"
    cached = load_arrays(path)
    if cached is not None:
        return cached, True
    arrays = compute()
    try:
        save_arrays(path, arrays)
    except OSError as error:  # a read-only home must not break the page
        warnings.warn(f"could not cache the projection in {path.parent}: {error}", stacklevel=2)
    return arrays, False


# --------------------------------------------------------------------------------------------
# Projections


def _pad_to_2d(points: np.ndarray) -> np.ndarray:
    return np.pad(points, ((0, 0), (0, max(0, 2 - points.shape[1]))))


def project(points: np.ndarray, method: str, extras: dict[str, np.ndarray] | None = None, seed: int = 0,
            n_neighbors: int = 15, min_dist: float = 0.1, perplexity: float = 30.0) -> dict[str, np.ndarray]:
    """2-D coordinates of `points` ("points") and of each extra set (same names).

    PCA and UMAP are fitted on `points` alone and transform the extras. t-SNE cannot transform new
    points, so it is fitted on the union and the result is split. "raw" needs 2-D points.
    """
    assert method in METHODS, f"method must be one of {METHODS}, got {method!r}"
    points = _pad_to_2d(np.asarray(points, dtype=np.float32))
    extras = {name: _pad_to_2d(np.asarray(a, dtype=np.float32)) for name, a in (extras or {}).items() if a is not None}
    if method == "raw":
        assert points.shape[1] == 2, f"raw coordinates need a 2-D latent, got {points.shape[1]}-D"
        return {"points": points, **extras}
    if method == "PCA":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed).fit(points)
        transform = pca.transform
        fitted = transform(points)
    elif method == "UMAP":
        configure_numba_cache()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # n_jobs overridden by random_state; numba notices
            import umap

            reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(points) - 1),
                                min_dist=min_dist, random_state=seed)
            fitted = reducer.fit_transform(points)

        def transform(a):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return reducer.transform(a)
    else:  # t-SNE: fit on everything at once
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        union = np.concatenate([points, *extras.values()])
        tsne = TSNE(n_components=2, init="pca", random_state=seed,
                    perplexity=min(perplexity, (len(union) - 1) / 3))
        with threadpool_limits(max(1, (os.cpu_count() or 2) // 2)):  # all cores: oversubscribed, 5x slower
            embedded = tsne.fit_transform(union)
        splits = np.cumsum([len(points)] + [len(a) for a in extras.values()])[:-1]
        parts = np.split(embedded, splits)
        return {name: part.astype(np.float32) for name, part in zip(["points", *extras], parts)}
    out = {"points": fitted}
    out.update({name: transform(a) for name, a in extras.items() if len(a)})
    return {name: np.asarray(a, dtype=np.float32) for name, a in out.items()}


def prior_layer(model) -> str:
    """The latent layer the prior p(z) lives on: 'z' for the VAE, 'z2' for the HVAE."""
    return model.latent_layers[-1]


def component_means(model) -> np.ndarray | None:
    """Means of the prior's components (VampPrior: q(z|u_k) of each pseudo-input; MoG: the means)."""
    components = prior_components(model)
    return None if components is None else components[0].astype(np.float32)


@torch.no_grad()
def sample_prior(model, n: int, seed: int = 0) -> np.ndarray:
    """n draws from p(z), reproducible for a given seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model.prior.sample(n).float().cpu().numpy()


def latent_projection(model, means: np.ndarray, layer: str, method: str, digest: str,
                      n_prior_samples: int = 500, seed: int = 0,
                      directory: Path | None = None) -> tuple[dict[str, np.ndarray], bool]:
    """Project one layer's test means; on the prior's layer also the component means and prior samples.

    Everything is computed at fit time and cached together, so toggling overlays never refits.
    Returns (coordinates by name, whether they came from the disk cache).
    """
    on_prior = layer == prior_layer(model)
    params = {"n": int(len(means)), "dim": int(means.shape[1]), "seed": seed,
              "prior_samples": n_prior_samples if on_prior else 0}

    def compute():
        extras = {}
        if on_prior:
            extras["components"] = component_means(model)
            extras["prior_samples"] = sample_prior(model, n_prior_samples, seed) if n_prior_samples else None
        return project(means, method, extras, seed=seed)

    return load_or_compute(projection_key(digest, layer, method, params), compute, directory)


# --------------------------------------------------------------------------------------------
# The latent map


def label_colours(labels) -> dict:
    """A categorical colour for each distinct label."""
    unique = sorted(set(np.asarray(labels).tolist()))
    if len(unique) <= 10:
        palette = plotly.colors.qualitative.D3
    elif len(unique) <= 26:
        palette = plotly.colors.qualitative.Alphabet
    else:
        palette = plotly.colors.sample_colorscale("Turbo", [i / (len(unique) - 1) for i in range(len(unique))])
    return {label: palette[i % len(palette)] for i, label in enumerate(unique)}


def text_thumbnail(image: np.ndarray, max_side: int = 14) -> str:
    """An image (C, H, W) in [0, 1] as block characters, rows joined by <br> (for Plotly hovers)."""
    grey = np.asarray(image, dtype=np.float32).mean(axis=0)
    step = max(1, math.ceil(max(grey.shape) / max_side))
    h, w = grey.shape[0] // step * step, grey.shape[1] // step * step
    grey = grey[:h, :w].reshape(h // step, step, w // step, step).mean(axis=(1, 3))
    levels = ["\u00a0", "░", "▒", "▓", "█"]  # a no-break space so the hover keeps the blanks
    index = np.clip((grey * len(levels)).astype(int), 0, len(levels) - 1)
    return "<br>".join("".join(levels[i] * 2 for i in row) for row in index)


def latent_scatter_figure(coords: np.ndarray, labels=None, *, hover_images: np.ndarray | None = None,
                          components: np.ndarray | None = None, components_name: str = "pseudo-inputs",
                          prior_samples: np.ndarray | None = None,
                          axis_titles: tuple[str, str] = ("component 1", "component 2"),
                          title: str | None = None) -> go.Figure:
    """Test posterior means coloured by label, optional component means (black x) and prior samples.

    Each test point carries customdata [test index, 0] and each component [k, 1], so a clicked
    point can be traced back (see `selected_point`).
    """
    coords = np.asarray(coords)
    n = len(coords)
    labels = np.asarray(labels) if labels is not None else np.full(n, -1)
    colours = label_colours(labels)
    thumbs = [text_thumbnail(im) for im in hover_images] if hover_images is not None else None
    scatter = go.Scattergl if n > 3000 else go.Scatter
    fig = go.Figure()
    if prior_samples is not None and len(prior_samples):
        fig.add_trace(scatter(x=prior_samples[:, 0], y=prior_samples[:, 1], mode="markers",
                              name=f"prior samples ({len(prior_samples)})",
                              marker=dict(color=PRIOR_COLOUR, size=5, opacity=0.3),
                              hovertemplate="sample from p(z)<extra></extra>"))
    for label, colour in colours.items():
        index = np.flatnonzero(labels == label)
        name = "test images" if label == -1 else f"label {label}"
        extra = "<br>%{text}" if thumbs else ""
        fig.add_trace(scatter(
            x=coords[index, 0], y=coords[index, 1], mode="markers", name=name,
            marker=dict(color=colour, size=6, opacity=0.85),
            customdata=[[int(i), 0] for i in index],  # plain lists: typed arrays come back from the browser as dicts
            text=[thumbs[i] for i in index] if thumbs else None,
            hovertemplate=f"{name}<br>test index %{{customdata[0]}}{extra}<extra></extra>"))
    if components is not None and len(components):
        k = np.arange(len(components))
        fig.add_trace(scatter(x=components[:, 0], y=components[:, 1], mode="markers",
                              name=f"{components_name} ({len(components)})",
                              marker=dict(symbol="x-thin", color="black", size=8, line=dict(width=2, color="black")),
                              customdata=[[int(i), 1] for i in k],
                              hovertemplate=f"{components_name} %{{customdata[0]}}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=axis_titles[0], yaxis_title=axis_titles[1],
                      legend_title_text="click to toggle", hoverlabel=dict(font_family="monospace"),
                      height=600, margin=dict(t=50 if title else 20))
    return fig


def selected_point(selection) -> tuple[str, int] | None:
    """("test", index) or ("component", k) of the first clicked point that carries customdata."""
    points = selection.get("points", []) if selection else []
    for point in points:
        data = point.get("customdata")
        if data is None:
            continue
        if isinstance(data, dict):  # a typed-array row serialised by the browser: {"0": 17, "1": 0}
            data = [data[key] for key in sorted(data, key=int)]
        data = data if isinstance(data, (list, tuple)) else [data, 0]
        return ("component" if int(data[1]) == 1 else "test"), int(data[0])
    return None


# --------------------------------------------------------------------------------------------
# Active units


def sorted_activity(activity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dimension indices, activities), most active first."""
    activity = np.asarray(activity, dtype=np.float64)
    order = np.argsort(-activity, kind="stable")
    return order, activity[order]


def threshold_line(fig: go.Figure, threshold: float, log_y: bool) -> None:
    fig.add_hline(y=threshold, line=dict(color="black", dash="dash", width=1.5))
    fig.add_annotation(x=1, xref="x domain", xanchor="right", yanchor="bottom", showarrow=False,
                       bgcolor="rgba(255,255,255,0.8)",
                       y=math.log10(threshold) if log_y and threshold > 0 else threshold,  # log axes want log10
                       text=f"threshold {threshold:g}")


def _activity_range(fig: go.Figure, values: np.ndarray, threshold: float, log_y: bool) -> None:
    """A y range that always shows the threshold line with some room on both sides."""
    high = max(float(np.max(values, initial=0.0)), threshold)
    if log_y:
        low = max(min(float(np.min(values, initial=high)), threshold if threshold > 0 else high), 1e-8)
        fig.update_yaxes(range=[math.log10(low) - 0.3, math.log10(max(high, 1e-8)) + 0.2])
    else:
        fig.update_yaxes(range=[0, high * 1.1 or 1.0])


def activity_bar_figure(activity: np.ndarray, threshold: float, layer: str = "z", log_y: bool = True) -> go.Figure:
    """One bar per latent dimension, sorted, active ones coloured, the threshold as a dashed line."""
    order, values = sorted_activity(activity)
    active = values > threshold
    floor = 1e-8  # log axes cannot show a zero
    fig = go.Figure(go.Bar(
        x=[f"{layer}[{d}]" for d in order], y=np.maximum(values, floor) if log_y else values,
        marker_color=[ACTIVE_COLOUR if a else INACTIVE_COLOUR for a in active],
        customdata=np.stack([values, active.astype(int)], axis=1),
        hovertemplate="%{x}<br>Cov_x(E_q[z_d]) = %{customdata[0]:.3g}<extra></extra>", name=layer))
    threshold_line(fig, threshold, log_y)
    _activity_range(fig, values, threshold, log_y)
    fig.update_layout(xaxis_title=f"dimension of {layer} (sorted by activity)",
                      yaxis_title="activity Cov_x(E_q[z_d])", yaxis_type="log" if log_y else "linear",
                      title=f"{layer}: {int(active.sum())} of {len(values)} units active", height=380,
                      margin=dict(t=50), showlegend=False)
    return fig


def activity_curves_figure(curves: dict[str, np.ndarray], threshold: float, log_y: bool = True) -> go.Figure:
    """Sorted activity of several models/layers on one chart, one line each."""
    fig = go.Figure()
    for name, activity in curves.items():
        _, values = sorted_activity(activity)
        fig.add_trace(go.Scatter(x=np.arange(1, len(values) + 1), y=np.maximum(values, 1e-8) if log_y else values,
                                 mode="lines+markers", name=name,
                                 hovertemplate=f"{name}<br>rank %{{x}}<br>activity %{{y:.3g}}<extra></extra>"))
    threshold_line(fig, threshold, log_y)
    if curves:
        every = np.concatenate([np.asarray(a, dtype=np.float64) for a in curves.values()])
        _activity_range(fig, every, threshold, log_y)
    fig.update_layout(xaxis_title="units sorted by activity (rank)", yaxis_title="activity Cov_x(E_q[z_d])",
                      yaxis_type="log" if log_y else "linear", height=450, margin=dict(t=20))
    return fig


def active_unit_table(activities: dict[str, dict[str, np.ndarray]], threshold: float) -> list[dict]:
    """One row per checkpoint: active-unit count of each layer and the latent sizes."""
    layer_names = sorted({layer for layers in activities.values() for layer in layers})
    rows = []
    for name, layers in activities.items():
        row = {"checkpoint": name}
        for layer in layer_names:
            row[f"active in {layer}"] = int((np.asarray(layers[layer]) > threshold).sum()) if layer in layers else None
        row["latent sizes"] = " / ".join(f"{layer}={len(a)}" for layer, a in layers.items())
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# Prior versus aggregated posterior


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
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for start in range(0, len(images), 1000):
            x = torch.as_tensor(images[start:start + 1000], dtype=torch.float32, device=device)
            z = model.encode(x).sample((per_image,))  # (S, B, D)
            chunks.append(z.transpose(0, 1).reshape(-1, z.shape[-1]).float().cpu())
    samples = torch.cat(chunks).numpy()
    return samples, (None if labels is None else np.repeat(np.asarray(labels), per_image))


def estimate_aggregated_kl(model, images: np.ndarray, seed: int = 0, max_points: int = 2000) -> float:
    """Monte Carlo KL(q(z) || p(z)) (vae_core.evaluate), reproducible for a given seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
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


# --------------------------------------------------------------------------------------------
# Images of a picked point


@torch.no_grad()
def point_images(model, kind: str, index: int, x_test: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Images explaining a picked point (N, C, H, W) and their captions.

    "test": the image and its reconstruction; "component": the pseudo-input u_k (VampPrior only)
    and the decoding of its component mean.
    """
    device = model_device(model)
    if kind == "test":
        x = torch.as_tensor(x_test[index:index + 1], dtype=torch.float32, device=device)
        return (np.concatenate([x_test[index:index + 1], model.reconstruct(x).float().cpu().numpy()]),
                [f"test image #{index}", "its reconstruction"])
    decoded = model.decode(model.prior.components()[0][index:index + 1]).float().cpu().numpy()
    if hasattr(model.prior, "pseudo_inputs"):
        pseudo = model.prior.pseudo_inputs[index:index + 1].float().cpu().numpy()
        return np.concatenate([pseudo, decoded]), [f"pseudo-input u_{index}", "decoded mean of q(z|u_k)"]
    return decoded, [f"decoded mean of component {index}"]
