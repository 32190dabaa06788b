"""Builders for the Compare priors page. Pure functions, no Streamlit.

A comparison table of test metrics (read from each checkpoint's metrics.json; what is missing is
computed by `compute_missing_metrics`), which cells are best, side-by-side latent maps on one axis
range, and plain-language notes on whether the numbers show the paper's claim.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from vae_core.evaluate import (
    ACTIVE_UNIT_THRESHOLD,
    aggregated_posterior_kl,
    elbo_terms,
    log_likelihood,
    model_device,
    posterior_means,
    sample_sharpness,
    unit_activity,
)
from vae_core.priors import PRIORS, PseudoInputPrior, StandardNormalPrior
from vae_core.seeding import seeded

from .catalog import model_title
from .latent_map import label_colours, scatter_trace

MAX_MODELS = 4
LL, ELBO, KL, ACTIVE, AGG_KL = "test LL", "ELBO", "KL", "active units", "KL(q(z)‖p(z))"
SAMPLE_H = "H samples"  # the decoder's entropy H[p(x|z)] at z ~ p(z), nats per image: lower is sharper
TABLE_COLUMNS = ["checkpoint", "model", "prior", "family", "K", "latent", LL, "LL ± (s.e.)", ELBO, KL, ACTIVE, AGG_KL, SAMPLE_H,
                 "source"]
# which way is better, per highlighted column; the KL term is a trade-off (more information in the
# code costs more KL), so it is shown but never called best
BETTER = {LL: "max", ELBO: "max", ACTIVE: "max", AGG_KL: "min", SAMPLE_H: "min"}
METRIC_KEYS = ("log_likelihood", "elbo", "kl", "active_units", "aggregated_posterior_kl", "decoder_entropy")
HIGHLIGHT = "background-color: #c7e9c0; font-weight: bold"
COMPUTED_LL_SAMPLES, COMPUTED_MAX_IMAGES = 500, 1000  # cheaper than evaluate's 5000 samples, said on the page
# an autoregressive p(x|z) (a PixelCNN) scores an image in one pass too, but a deep network runs at
# every pixel: about a second per image at 500 samples on a CPU for 8 x 8 digits, so a page measures less
AUTOREGRESSIVE_LL_SAMPLES, AUTOREGRESSIVE_MAX_IMAGES = 100, 100


VAMPPRIOR, STANDARD, OTHER = "VampPrior", "standard normal", "other"


def prior_family(name: str) -> str:
    """Which side of the paper's comparison a prior is on, by what it is (its class), not its name:
    a prior built from pseudo-inputs, the standard normal, or another prior."""
    cls = PRIORS[name]
    if issubclass(cls, PseudoInputPrior):
        return VAMPPRIOR
    return STANDARD if issubclass(cls, StandardNormalPrior) else OTHER


# --------------------------------------------------------------------------------------------
# Which checkpoints can be compared


def mixed_datasets_message(datasets: dict[str, str]) -> str | None:
    """A one-line refusal when the chosen checkpoints (name -> dataset) were trained on different data."""
    groups: dict[str, list[str]] = {}
    for name, dataset in datasets.items():
        groups.setdefault(dataset, []).append(name)
    if len(groups) <= 1:
        return None
    listing = "; ".join(f"{dataset}: {', '.join(names)}" for dataset, names in groups.items())
    return (f"These checkpoints were trained on different datasets ({listing}). Their log-likelihoods are "
            "measured on different test sets and cannot be compared: pick checkpoints of one dataset.")


# --------------------------------------------------------------------------------------------
# The table


def missing_metrics(metrics: dict) -> list[str]:
    """The keys of METRIC_KEYS that metrics.json lacks (or holds as null)."""
    return [key for key in METRIC_KEYS if metrics.get(key) is None]


@torch.no_grad()
def compute_missing_metrics(model, x_test: np.ndarray, keys, seed: int = 0,
                            ll_samples: int | None = None, max_images: int | None = None) -> dict:
    """The metrics named in `keys` (METRIC_KEYS), computed on at most `max_images` test images.

    The log-likelihood uses `ll_samples` importance samples rather than evaluate's 5000, so a page
    can afford it; "computed" in the result says how it was measured. By default COMPUTED_* budgets,
    AUTOREGRESSIVE_* ones for an autoregressive p(x|z).
    """
    slow = model.likelihood.autoregressive
    ll_samples = ll_samples or (AUTOREGRESSIVE_LL_SAMPLES if slow else COMPUTED_LL_SAMPLES)
    max_images = max_images or (AUTOREGRESSIVE_MAX_IMAGES if slow else COMPUTED_MAX_IMAGES)
    images = np.asarray(x_test)[:max_images]
    out: dict = {}
    with seeded(seed, model_device(model)):
        if "log_likelihood" in keys:
            ll = log_likelihood(model, images, ll_samples)
            out["log_likelihood"] = float(ll.mean())
            out["log_likelihood_stderr"] = float(ll.std(ddof=1) / math.sqrt(len(ll))) if len(ll) > 1 else 0.0
        if "elbo" in keys or "kl" in keys:
            terms = elbo_terms(model, images)
            out.update({k: terms[k] for k in ("elbo", "kl") if k in keys})
        if "active_units" in keys:
            activity = unit_activity(posterior_means(model, images))
            out["active_units"] = {name: int((a > ACTIVE_UNIT_THRESHOLD).sum()) for name, a in activity.items()}
            out["unit_activity"] = {name: a.tolist() for name, a in activity.items()}
        if "aggregated_posterior_kl" in keys:
            out["aggregated_posterior_kl"] = aggregated_posterior_kl(model, images, seed=seed)
        if "decoder_entropy" in keys:
            out["decoder_entropy"] = sample_sharpness(model, images, seed=seed)
    out["computed"] = (f"{', '.join(keys)} computed here on {len(images)} test images"
                       + (f" (LL with {ll_samples} importance samples)" if "log_likelihood" in keys else ""))
    return out


def metrics_row(name: str, config, metrics: dict, computed: dict | None = None) -> dict:
    """One table row from a ModelConfig and its metrics (metrics.json, completed by `computed`)."""
    m = dict(metrics) | {k: v for k, v in (computed or {}).items() if metrics.get(k) is None or k == "computed"}
    active = m.get("active_units") or {}
    stderr = m.get("log_likelihood_stderr")
    return {
        "checkpoint": name,
        "model": model_title(config),
        "prior": config.prior,
        "family": prior_family(config.prior),
        "K": config.components if config.has_components else None,
        "latent": " / ".join(f"{k}={v}" for k, v in config.latent_sizes.items()),
        LL: m.get("log_likelihood"),
        "LL ± (s.e.)": stderr,
        ELBO: m.get("elbo"),
        KL: m.get("kl"),
        ACTIVE: sum(active.values()) if active else None,  # an HVAE's layers together
        AGG_KL: m.get("aggregated_posterior_kl"),
        SAMPLE_H: (m.get("decoder_entropy") or {}).get("prior"),
        "source": m.get("computed") or "metrics.json",
    }


def comparison_table(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    for column in (LL, "LL ± (s.e.)", ELBO, KL, AGG_KL, SAMPLE_H):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame[ACTIVE] = pd.to_numeric(frame[ACTIVE], errors="coerce").astype("Int64")
    frame["K"] = pd.to_numeric(frame["K"], errors="coerce").astype("Int64")
    return frame


def best_mask(frame: pd.DataFrame, better: dict[str, str] = BETTER, atol: float = 1e-9) -> pd.DataFrame:
    """True where a cell is the best of its column (ties: all of them); missing values never win."""
    mask = pd.DataFrame(False, index=frame.index, columns=frame.columns)
    for column, direction in better.items():
        values = pd.to_numeric(frame[column], errors="coerce").astype(float)
        if values.notna().sum() == 0:
            continue
        target = values.max() if direction == "max" else values.min()
        mask[column] = np.isclose(values.to_numpy(), target, rtol=0.0, atol=atol) & values.notna().to_numpy()
    return mask


def scored_columns(binary_pixels: bool) -> dict[str, str]:
    """BETTER, less the samples' entropy where pixels are not binary: a Bernoulli decoder's entropy
    measures the blur of the mean image it shows, a discretised logistic's does not (its entropy is
    set by the predicted scale, and is low both for a very narrow and for a very wide one)."""
    return BETTER if binary_pixels else {k: v for k, v in BETTER.items() if k != SAMPLE_H}


def styled_table(frame: pd.DataFrame, binary_pixels: bool = True):
    """A pandas Styler with the best cell(s) of each scored column highlighted and sensible formats."""
    mask = best_mask(frame, scored_columns(binary_pixels))
    formats = {LL: "{:.2f}", "LL ± (s.e.)": "± {:.2f}", ELBO: "{:.2f}", KL: "{:.2f}", AGG_KL: "{:.3f}",
               SAMPLE_H: "{:.2f}"}
    return (frame.style
            .apply(lambda _: np.where(mask, HIGHLIGHT, ""), axis=None)
            .format(formats, na_rep="–"))


# --------------------------------------------------------------------------------------------
# What the reader should see


def _fmt(value: float) -> str:
    return f"{value:.2f}".replace("-", "−")


def claim_notes(frame: pd.DataFrame, binary_pixels: bool = True) -> list[str]:
    """Sentences saying, metric by metric, whether this table shows the paper's claim (or not, and why).

    The claim is about the prior, so priors are compared on the same model only: where the table
    holds several (a VAE and an HVAE, other latent sizes), each model's checkpoints get their own
    notes under a heading, and a model without a VampPrior among them is named as left out. The
    samples' entropy is read as sharpness only for binary pixels (see `scored_columns`)."""
    groups = [group for _, group in frame.groupby(["model", "latent"], sort=False)]
    if len(groups) == 1 or not (frame["family"] == VAMPPRIOR).any():  # the latter: says no VampPrior was chosen
        return _prior_notes(frame, binary_pixels)
    notes = []
    for group in groups:
        title = f"{group['model'].iloc[0]} · {group['latent'].iloc[0]}"
        names = ", ".join(f"`{name}`" for name in group["checkpoint"])
        if not (group["family"] == VAMPPRIOR).any():
            notes.append(f"ℹ️ **{title}** ({names}): no VampPrior of this model is chosen, so the notes leave it "
                         "out (they compare priors on the same model only); its figures are in the table.")
            continue
        notes.append(f"**{title}** ({names}):")
        notes += _prior_notes(group, binary_pixels)
    return notes


def _prior_notes(frame: pd.DataFrame, binary_pixels: bool) -> list[str]:
    """claim_notes for checkpoints of one model that differ in their prior."""
    vamp = frame[frame["family"] == VAMPPRIOR]
    standard = frame[frame["family"] == STANDARD]
    if vamp.empty:
        return ["ℹ️ None of the chosen checkpoints uses a VampPrior, so the paper's claim cannot be checked "
                "here: add one (e.g. `digits-vae-vampprior`)."]
    notes = []
    lls = frame[LL].dropna()
    if not lls.empty:
        best = frame.loc[lls.idxmax()]
        stderr = frame["LL ± (s.e.)"].dropna()
        noise = (f" For scale: the standard error of each estimate over the test images is about "
                 f"±{stderr.mean():.2f} nats (the models share the test images, so their differences are "
                 f"measured more precisely than that).") if not stderr.empty else ""
        if best["family"] == VAMPPRIOR:
            versus = ""
            if not standard.empty and standard[LL].notna().any():
                gap = best[LL] - standard[LL].max()
                versus = f", {gap:.2f} nats above the standard prior ({_fmt(standard[LL].max())})"
            notes.append(f"✅ **Log-likelihood**: the best is `{best['checkpoint']}` ({best['prior']}, "
                         f"{_fmt(best[LL])} nats){versus}, as the paper reports.{noise}")
        else:
            notes.append(f"❌ **Log-likelihood**: here the best is `{best['checkpoint']}` ({best['prior']}), not a "
                         f"VampPrior ({_fmt(vamp[LL].max())} at best). The paper's margins come from large models "
                         f"trained for hundreds of epochs; a small or short run need not reproduce them.{noise}")
    if not standard.empty and vamp[ACTIVE].notna().any() and standard[ACTIVE].notna().any():
        v, s = int(vamp[ACTIVE].max()), int(standard[ACTIVE].max())
        if v > s:
            notes.append(f"✅ **Active units**: the VampPrior keeps {v} units active, the standard prior {s}.")
        elif v == s:
            notes.append(f"➖ **Active units**: both keep {v} units active, so this part of the claim does not show "
                         "here: when the latent is small for the data, no prior lets units collapse "
                         "(the effect appears with larger latents, e.g. 40 dimensions on MNIST).")
        else:
            notes.append(f"❌ **Active units**: the standard prior keeps more units active ({s}) than the best "
                         f"VampPrior ({v}), contrary to the paper.")
    if not standard.empty and vamp[AGG_KL].notna().any() and standard[AGG_KL].notna().any():
        v, s = vamp[AGG_KL].min(), standard[AGG_KL].min()
        best = vamp.loc[vamp[AGG_KL].idxmin(), "checkpoint"]
        if v < s:
            notes.append(f"✅ **KL(q(z)‖p(z))**: `{best}` fits the aggregated posterior better ({v:.3f} vs {s:.3f} "
                         "nats for the standard prior): a prior built from encoded inputs sits where the codes are.")
        else:
            notes.append(f"❌ **KL(q(z)‖p(z))**: no VampPrior is closer to the aggregated posterior than the standard "
                         f"prior here ({v:.3f} vs {s:.3f} nats); this Monte Carlo estimate is noisy on small test sets.")
    measured = binary_pixels and vamp[SAMPLE_H].notna().any() and standard[SAMPLE_H].notna().any()
    if not standard.empty and measured:
        v, s = vamp[SAMPLE_H].min(), standard[SAMPLE_H].min()
        best = vamp.loc[vamp[SAMPLE_H].idxmin(), "checkpoint"]
        if v < s:
            notes.append(f"✅ **Sharper samples**: the decoder is surer where `{best}` draws its codes: its samples "
                         f"have an entropy H[p(x|z)] of {v:.2f} nats per image against {s:.2f} for the standard "
                         "prior (the paper's reading: N(0, I) puts codes where no image is encoded, and the "
                         "decoder hedges there). Check the grids below by eye.")
        else:
            notes.append(f"❌ **Sharper samples**: the standard prior's samples have the lower entropy here ({s:.2f} "
                         f"vs {v:.2f} nats per image for the best VampPrior); judge the grids below by eye too.")
    else:
        notes.append("👀 **Samples**: the paper also claims sharper, more varied samples; judge the grids below by "
                     "eye (same seed, same number of samples for every model).")
    return notes


# --------------------------------------------------------------------------------------------
# Latent maps and active units


def shared_limits(point_sets, margin: float = 0.05) -> tuple[float, float]:
    """One (low, high) range covering every point of every set on both axes, widened by `margin`."""
    points = np.concatenate([np.asarray(p, dtype=np.float64)[:, :2].ravel() for p in point_sets if p is not None])
    low, high = float(points.min()), float(points.max())
    pad = (high - low) * margin or 1.0
    return low - pad, high + pad


def short_names(names: list[str]) -> list[str]:
    """Names without their common dash-separated prefix ("digits-vae-mog" -> "mog"), for narrow panel titles."""
    if len(names) < 2:
        return list(names)
    parts = [name.split("-") for name in names]
    common = 0
    while all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
        common += 1
    return ["-".join(p[common:]) for p in parts]


def latent_maps_figure(maps: dict[str, dict[str, np.ndarray]], labels=None,
                       axis_titles: tuple[str, str] = ("PC 1", "PC 2"), components_name: str = "components") -> go.Figure:
    """One map per model side by side, on the same x and y range, one colour legend by label.

    `maps` is {model name: {"points": (N, 2), "components": (K, 2) or absent}}; every model encodes
    the same test set, so `labels` (N,) colours all of them.
    """
    names = list(maps)
    n_points = len(next(iter(maps.values()))["points"])
    labels = np.asarray(labels) if labels is not None else np.full(n_points, -1)
    colours = label_colours(labels)
    limits = shared_limits([a for m in maps.values() for a in (m["points"], m.get("components"))])
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=short_names(names), horizontal_spacing=0.04)
    scatter = scatter_trace(sum(len(a) for m in maps.values() for a in (m["points"], m.get("components")) if a is not None))
    for col, name in enumerate(names, start=1):
        coords = np.asarray(maps[name]["points"])
        for label, colour in colours.items():
            index = np.flatnonzero(labels == label)
            legend = "test images" if label == -1 else f"label {label}"
            fig.add_trace(scatter(
                x=coords[index, 0].tolist(), y=coords[index, 1].tolist(), mode="markers", name=legend,
                legendgroup=legend, showlegend=col == 1, marker=dict(color=colour, size=5, opacity=0.8),
                customdata=index.tolist(),
                hovertemplate=f"{name}<br>{legend} · test image %{{customdata}}<extra></extra>"), row=1, col=col)
        components = maps[name].get("components")
        if components is not None and len(components):
            components = np.asarray(components)
            fig.add_trace(scatter(
                x=components[:, 0].tolist(), y=components[:, 1].tolist(), mode="markers", name=components_name,
                legendgroup="components", showlegend=not any(t.legendgroup == "components" for t in fig.data),
                marker=dict(symbol="x-thin", size=7, color="black", line=dict(width=1.5, color="black")),
                customdata=list(range(len(components))),
                hovertemplate=f"{name}<br>component %{{customdata}}<extra></extra>"), row=1, col=col)
        fig.update_xaxes(range=list(limits), title_text=axis_titles[0], row=1, col=col)
        fig.update_yaxes(range=list(limits), title_text=axis_titles[1] if col == 1 else None, row=1, col=col)
    fig.update_layout(height=470, margin=dict(l=10, r=10, t=40, b=10), legend_title_text="click to toggle:",
                      legend=dict(orientation="h", y=-0.18, yanchor="top"))
    return fig


def activity_curves(activities: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """{model: {layer: activity}} -> {curve name: activity}; a single-layer model keeps its plain name."""
    return {(name if len(layers) == 1 else f"{name} · {layer}"): np.asarray(values, dtype=np.float64)
            for name, layers in activities.items() for layer, values in layers.items()}
