"""Figures and images for the Train and Training history pages (pure: arrays in, figures out)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from vae_core.snapshots import Snapshot

from . import gallery

MARKER_COLOR = "#d62728"


def curve_with_marker(history: list[dict], quantity: str, epoch: int | None) -> go.Figure:
    """`gallery.training_curve_figure` with a vertical line at `epoch` (the snapshot shown)."""
    fig = gallery.training_curve_figure(history, quantity)
    if epoch is not None:
        fig.add_vline(x=epoch, line_color=MARKER_COLOR, line_dash="dash", line_width=2,
                      annotation_text=f"epoch {epoch}", annotation_position="top left",
                      annotation_font_color=MARKER_COLOR)
    return fig


def heads_title(snapshot: Snapshot) -> str | None:
    """What the snapshot's prior images are, or None for a standard normal prior."""
    if snapshot.pseudo_inputs is not None:
        return f"the {len(snapshot.pseudo_inputs)} pseudo-inputs u_k"
    if snapshot.decoded_means is not None:
        shown = len(snapshot.decoded_means)
        if snapshot.components and snapshot.components > shown:  # an autoregressive decoder: a few of K
            return f"the first {shown} of the {snapshot.components} mixture means, decoded"
        return f"the {shown} mixture means, decoded"
    return None


def heads_grid(snapshot: Snapshot, max_columns: int = 20) -> np.ndarray | None:
    """The prior's images in component order (the same k in the same cell at every epoch), or None."""
    heads = snapshot.heads
    return None if heads is None else gallery.grid(heads, gallery.columns_for(len(heads), max_columns))


def samples_grid(snapshot: Snapshot) -> np.ndarray:
    return gallery.grid(snapshot.samples, gallery.columns_for(len(snapshot.samples)))
