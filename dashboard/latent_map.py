"""The latent map: test posterior means in 2-D with the prior's components and samples (Plotly)."""

from __future__ import annotations

import math

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import torch

from vae_core.priors import MixturePrior

from . import gallery

PRIOR_COLOUR = "#7F7F7F"
# Above this many points a figure draws its markers with WebGL (Plotly Express's own threshold): as
# SVG every marker is a page element, and 10,000 of them take the browser seconds to lay out.
WEBGL_POINTS = 1000


def scatter_trace(points: int) -> type:
    """go.Scattergl for a figure of more than WEBGL_POINTS markers, else go.Scatter."""
    return go.Scattergl if points > WEBGL_POINTS else go.Scatter


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


THUMBNAIL_LEVELS = ["\u00a0", "░", "▒", "▓", "█"]  # dark to light; a no-break space so hovers keep the blanks


def text_thumbnails(images: np.ndarray, max_side: int = 14) -> list[str]:
    """Images (N, C, H, W) in [0, 1] as block characters, rows joined by <br> (for Plotly hovers)."""
    grey = np.asarray(images, dtype=np.float32).mean(axis=1)
    step = max(1, math.ceil(max(grey.shape[1:]) / max_side))
    h, w = grey.shape[1] // step * step, grey.shape[2] // step * step
    grey = grey[:, :h, :w].reshape(len(grey), h // step, step, w // step, step).mean(axis=(2, 4))
    cells = np.array([level * 2 for level in THUMBNAIL_LEVELS])  # two characters per cell: square-ish
    index = np.clip((grey * len(THUMBNAIL_LEVELS)).astype(int), 0, len(THUMBNAIL_LEVELS) - 1)
    return ["<br>".join(map("".join, rows)) for rows in cells[index].tolist()]


def latent_scatter_figure(coords: np.ndarray, labels=None, *, hover_texts: list[str] | None = None,
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
    scatter = scatter_trace(n + sum(len(a) for a in (components, prior_samples) if a is not None))
    fig = go.Figure()
    if prior_samples is not None and len(prior_samples):
        fig.add_trace(scatter(x=prior_samples[:, 0], y=prior_samples[:, 1], mode="markers",
                              name=f"prior samples ({len(prior_samples)})",
                              marker=dict(color=PRIOR_COLOUR, size=5, opacity=0.3),
                              hovertemplate="sample from p(z)<extra></extra>"))
    for label, colour in colours.items():
        index = np.flatnonzero(labels == label)
        name = "test images" if label == -1 else f"label {label}"
        extra = "<br>%{text}" if hover_texts else ""
        fig.add_trace(scatter(
            x=coords[index, 0], y=coords[index, 1], mode="markers", name=name,
            marker=dict(color=colour, size=6, opacity=0.85),
            customdata=[[int(i), 0] for i in index],  # plain lists: typed arrays come back from the browser as dicts
            text=[hover_texts[i] for i in index] if hover_texts else None,
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


@torch.no_grad()
def point_images(model, kind: str, index: int, x_test: np.ndarray, progress=None) -> tuple[np.ndarray, list[str]]:
    """Images explaining a picked point (N, C, H, W) and their captions.

    "test": the image and its reconstruction; "component": the pseudo-input u_k (VampPrior only)
    and the decoding of its component mean. `progress(done, total)` follows an autoregressive decoding.
    """
    if kind == "test":
        image = x_test[index:index + 1]
        return (np.concatenate([image, gallery.reconstruct(model, image, progress)]),
                [f"test image #{index}", "its reconstruction"])
    prior = model.prior
    assert isinstance(prior, MixturePrior), "only a mixture prior has components to pick"
    decoded = gallery.decode(model, prior.components()[0][index:index + 1].float().cpu().numpy(), progress)
    if prior.images_are_inputs:
        image = prior.component_images(model.decode)[index:index + 1].float().cpu().numpy()
        return (np.concatenate([image, decoded]),
                [f"{prior.component_name} {prior.component_symbol[0]}_{index}",
                 f"decoded mean of {prior.component_density}"])
    return decoded, [f"decoded {prior.component_name} {index}"]
