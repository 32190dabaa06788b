"""Latent maps for the pages: a checkpoint's precomputed projection, else the disk cache, else a fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vae_core import projections

from . import disk_cache


def latent_projection(checkpoint: str | Path, model, means: np.ndarray, layer: str, method: str, digest: str,
                      seed: int = 0, directory: Path | None = None) -> tuple[dict[str, np.ndarray], str]:
    """(coordinates by name, where they came from: "checkpoint", "disk cache" or "computed").

    The checkpoint's own projections.safetensors is used when it was fitted on these weights and
    these points (a shipped checkpoint's embedded test images); otherwise the disk cache.
    """
    params = projections.projection_params(means, layer, layer == model.prior_layer, seed)
    stored = projections.read_precomputed(checkpoint, digest, layer, method, params)
    if stored is not None:
        return stored, "checkpoint"
    arrays, cached = disk_cache.load_or_compute(
        disk_cache.projection_key(digest, layer, method, params),
        lambda: projections.codes_projection(model, means, layer, method, seed=seed), directory)
    return arrays, "disk cache" if cached else "computed"


def is_precomputed(checkpoint: str | Path, model, means: np.ndarray, layer: str, method: str, digest: str,
                   seed: int = 0) -> bool:
    """Whether `latent_projection` would serve this map from the checkpoint's own file (no fit)."""
    params = projections.projection_params(means, layer, layer == model.prior_layer, seed)
    return projections.has_precomputed(checkpoint, digest, layer, method, params)
