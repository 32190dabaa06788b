"""Active units: how much each latent dimension's posterior mean varies over the data (Plotly)."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

ACTIVE_COLOUR, INACTIVE_COLOUR = "#1F77B4", "#C7C7C7"


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


def units_over_training(history: list[dict]) -> tuple[list[int], list[int], list[float]]:
    """(epochs, active units summed over layers, beta) from a history that records them per epoch."""
    rows = [r for r in history if isinstance(r.get("active_units"), dict)]
    return ([int(r.get("epoch", i + 1)) for i, r in enumerate(rows)],
            [int(sum(r["active_units"].values())) for r in rows], [float(r.get("beta", 1.0)) for r in rows])


def activity_history_figure(histories: dict[str, list[dict]], sizes: dict[str, int]) -> go.Figure:
    """Active units per epoch of several runs on one chart (on the validation images the trainer
    used), with each run's latent size as a dotted ceiling: units switching off as training goes on."""
    fig = go.Figure()
    for name, history in histories.items():
        epochs, counts, betas = units_over_training(history)
        if not epochs:
            continue
        fig.add_trace(go.Scatter(
            x=epochs, y=counts, mode="lines", name=name, customdata=betas,
            hovertemplate=f"{name}<br>epoch %{{x}}<br>%{{y}} of {sizes.get(name, '?')} units active"
                          "<br>β %{customdata:.2f}<extra></extra>"))
    for size in sorted(set(sizes.values())):
        fig.add_hline(y=size, line=dict(color=INACTIVE_COLOUR, dash="dot", width=1),
                      annotation_text=f"{size} units", annotation_position="top left")
    fig.update_layout(xaxis_title="epoch", yaxis_title="active units (Cov_x E[z_d|x] > 0.01, validation images)",
                      height=420, margin=dict(t=20), hovermode="closest", legend=dict(orientation="h", y=-0.2))
    fig.update_yaxes(rangemode="tozero")
    return fig
