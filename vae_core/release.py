"""Making a trained checkpoint folder shippable: smaller weights and precomputed views.

`compact` drops the resume state (optimiser moments, RNG, counters: only a run in progress needs
them) and can store the weights in float16, which `checkpoint.load` casts back to float32; the
shipped metrics are measured after that rounding. `precompute_projections` fits the PCA and UMAP
maps of the folder's embedded test images, so the dashboard shows them at once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from . import checkpoint as ckpt
from . import embedded, projections
from .errors import CheckpointError
from .evaluate import posterior_means

RESUME_FILES = (ckpt.LAST_FILE,)
WEIGHT_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def weights_sha256(checkpoint_dir: str | Path) -> str:
    """sha256 of the folder's model.safetensors: what precomputed views are keyed by."""
    path = Path(checkpoint_dir) / ckpt.WEIGHTS_FILE
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise CheckpointError(f"{path} cannot be read ({error})") from None


def compact(checkpoint_dir: str | Path, dtype: str = "float16") -> dict[str, int]:
    """Rewrite the best weights in `dtype` and delete the resume state; {"before": bytes, "after": bytes}."""
    if dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weights can be stored as {' or '.join(WEIGHT_DTYPES)}, not {dtype!r}")
    folder = Path(checkpoint_dir)
    ckpt.load(folder)  # refuses a folder whose weights do not match its config
    path = folder / ckpt.WEIGHTS_FILE
    before = path.stat().st_size
    tensors = ckpt.read_tensors(path)
    target = WEIGHT_DTYPES[dtype]
    ckpt.save_tensors(path, {name: t.to(target) if t.is_floating_point() else t for name, t in tensors.items()})
    for name in RESUME_FILES:
        (folder / name).unlink(missing_ok=True)
    return {"before": before, "after": path.stat().st_size}


def precompute_projections(checkpoint_dir: str | Path, device: str = "cpu", progress=None) -> Path:
    """PCA and UMAP of the embedded test images' codes on every layer, into projections.safetensors."""
    folder = Path(checkpoint_dir)
    config, _ = ckpt.read_config(folder)
    if not embedded.has_sample(folder):
        raise CheckpointError(f"{folder} embeds no evaluation sample: run `python -m vae_core embed-sample` first")
    sample = embedded.read_sample(folder, config.dataset, config.input_shape)
    model = ckpt.load(folder, device=device)
    means = posterior_means(model, sample.x_test)
    return projections.write_precomputed(folder, model, means, weights_sha256(folder), progress=progress)
