"""2-D maps of latent codes: PCA, UMAP and t-SNE, and the projections a checkpoint carries.

Projections are fitted on the test set's posterior means and then *transform* the prior's
component means and samples from the prior, so all three live in one map (`project`,
`codes_projection`). Shipped checkpoints carry theirs precomputed for their embedded test images:

    DIR/projections.safetensors   "<layer>/<method>/<name>" -> (N, 2) float32, with the weights'
                                  sha256 and the fit's settings in the metadata

so the dashboard shows UMAP at once (`read_precomputed`); `write_precomputed` (the CLI's `project`
command) makes the file. No Streamlit here: the dashboard adds its caches on top.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_safetensors_bytes

from . import checkpoint as ckpt
from . import paths
from .errors import CheckpointError
from .files import atomic_write_bytes
from .priors import MixturePrior
from .seeding import seeded

METHODS = ("PCA", "UMAP", "t-SNE", "raw")
PROJECTIONS_FILE = "projections.safetensors"
PROJECTION_VERSION = 1  # bump when what a projection means changes
PRECOMPUTED_METHODS = ("PCA", "UMAP")
DEFAULT_PRIOR_SAMPLES = 500


def configure_numba_cache() -> Path:
    """Point numba's compile cache at a writable folder; call before the first `import umap`."""
    path = paths.cache_dir() / "numba"
    path.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(path))
    return path


def _umap():
    """The umap module (its first import compiles with numba for ~15 s; the cache makes later ones fast)."""
    configure_numba_cache()
    import umap

    return umap


def _pad_to_2d(points: np.ndarray) -> np.ndarray:
    return np.pad(points, ((0, 0), (0, max(0, 2 - points.shape[1]))))


def pca_transform(points: np.ndarray, components: int = 2):
    """The map x -> its coordinates on the first `components` principal axes of `points` (N, D).

    scikit-learn's PCA, written out (importing it costs seconds): the axes are the leading
    eigenvectors of the covariance, each signed so that its largest loading is positive.
    """
    points = np.asarray(points, dtype=np.float64)
    mean = points.mean(axis=0)
    centred = points - mean
    _, vectors = np.linalg.eigh(centred.T @ centred)  # by ascending eigenvalue
    axes = vectors[:, ::-1][:, :components].T  # (components, D), largest variance first
    axes *= np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])[:, None]
    return lambda x: ((np.asarray(x, dtype=np.float64) - mean) @ axes.T).astype(np.float32)


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
        transform = pca_transform(points)
        fitted = transform(points)
    elif method == "UMAP":
        reducer = _umap().UMAP(n_components=2, n_neighbors=min(n_neighbors, len(points) - 1), min_dist=min_dist,
                               random_state=seed, n_jobs=1)  # random_state makes it single-threaded anyway
        fitted = reducer.fit_transform(points)
        transform = reducer.transform
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


@torch.no_grad()
def component_means(model) -> np.ndarray | None:
    """Means of the prior's components, (K, D) (a VampPrior's: of q(z|u_k)), or None for a non-mixture."""
    if not isinstance(model.prior, MixturePrior):
        return None
    return model.prior.components()[0].float().cpu().numpy()


@torch.no_grad()
def sample_prior(model, n: int, seed: int = 0) -> np.ndarray:
    """n draws from p(z), reproducible for a given seed."""
    with seeded(seed):
        return model.prior.sample(n).float().cpu().numpy()


def codes_projection(model, means: np.ndarray, layer: str, method: str, n_prior_samples: int = DEFAULT_PRIOR_SAMPLES,
                     seed: int = 0) -> dict[str, np.ndarray]:
    """Project one layer's test means; on the prior's layer also the component means and prior samples.

    Everything is fitted together, so toggling overlays never refits. Keys: "points", and on the
    prior's layer "components" (mixtures only) and "prior_samples".
    """
    extras = {}
    if layer == model.prior_layer:
        extras["components"] = component_means(model)
        extras["prior_samples"] = sample_prior(model, n_prior_samples, seed) if n_prior_samples else None
    return project(means, method, extras, seed=seed)


def projection_params(means: np.ndarray, layer: str, on_prior_layer: bool, seed: int = 0,
                      n_prior_samples: int = DEFAULT_PRIOR_SAMPLES) -> dict:
    """The settings that identify a fitted projection (with the weights' digest and the method)."""
    return {"n": int(len(means)), "dim": int(means.shape[1]), "seed": seed, "layer": layer,
            "prior_samples": n_prior_samples if on_prior_layer else 0,
            "points_sha256": hashlib.sha256(np.ascontiguousarray(means, dtype=np.float32).tobytes()).hexdigest()}


# --------------------------------------------------------------------------------------------
# Precomputed in a checkpoint folder


def write_precomputed(checkpoint_dir: str | Path, model, means: dict[str, np.ndarray], digest: str,
                      methods=PRECOMPUTED_METHODS, seed: int = 0, progress=None) -> Path:
    """Fit each method on each layer's `means` and store the maps in DIR/projections.safetensors."""
    tensors, settings = {}, {}
    for layer, layer_means in means.items():
        for method in methods:
            if progress:
                progress(f"{method} of {layer}")
            fitted = codes_projection(model, layer_means, layer, method, seed=seed)
            for name, coords in fitted.items():
                tensors[f"{layer}/{method}/{name}"] = torch.from_numpy(np.ascontiguousarray(coords, dtype=np.float32))
            settings[f"{layer}/{method}"] = projection_params(layer_means, layer, layer == model.prior_layer, seed)
    path = Path(checkpoint_dir) / PROJECTIONS_FILE
    metadata = {"weights_sha256": digest, "version": str(PROJECTION_VERSION), "settings": json.dumps(settings)}
    atomic_write_bytes(path, save_safetensors_bytes(tensors, metadata=metadata))
    return path


def has_precomputed(checkpoint_dir: str | Path, digest: str, layer: str, method: str, params: dict) -> bool:
    """Whether DIR/projections.safetensors holds (layer, method) fitted on these weights and points;
    reads its header only."""
    path = Path(checkpoint_dir) / PROJECTIONS_FILE
    if not path.is_file():
        return False
    try:
        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
        settings = json.loads(metadata.get("settings", "{}"))
    except (OSError, SafetensorError, ValueError, RecursionError):
        return False
    return (metadata.get("weights_sha256") == digest and metadata.get("version") == str(PROJECTION_VERSION)
            and isinstance(settings, dict) and settings.get(f"{layer}/{method}") == params)


def read_precomputed(checkpoint_dir: str | Path, digest: str, layer: str, method: str,
                     params: dict) -> dict[str, np.ndarray] | None:
    """The stored map for (layer, method) when it was fitted on these weights and points, else None."""
    if not has_precomputed(checkpoint_dir, digest, layer, method, params):
        return None
    path = Path(checkpoint_dir) / PROJECTIONS_FILE
    try:
        tensors = ckpt.read_tensors(path)
    except CheckpointError:
        return None
    prefix = f"{layer}/{method}/"
    found = {name[len(prefix):]: t.numpy() for name, t in tensors.items() if name.startswith(prefix)}
    return found if "points" in found and len(found["points"]) == params["n"] else None
