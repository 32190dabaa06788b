"""Cached loaders shared by the pages: models (cache_resource), arrays (cache_data).

Cache keys include the checkpoint's weights modification time, so a retrained checkpoint is
reloaded rather than served stale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st
import torch

from vae_core import checkpoint as ckpt
from vae_core.data import DatasetSplits, load_dataset
from vae_core.evaluate import posterior_means
from vae_core.snapshots import Snapshot, load_snapshot
from vae_core.train import resolve_device


def weights_mtime(path: str | Path) -> float:
    weights = Path(path) / ckpt.WEIGHTS_FILE
    return weights.stat().st_mtime if weights.exists() else 0.0


def available_devices() -> list[str]:
    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


@st.cache_resource(show_spinner="Loading model…", max_entries=16)
def _load_model(path: str, device: str, mtime: float) -> torch.nn.Module:
    return ckpt.load(path, device=resolve_device(device))


def load_model(path: str | Path, device: str = "cpu") -> torch.nn.Module:
    """The checkpoint's model in eval mode on `device` (auto: CUDA, then MPS, then CPU)."""
    return _load_model(str(path), device, weights_mtime(path))


@st.cache_data(show_spinner="Loading dataset…", max_entries=8)
def load_splits(dataset: str, data_dir: str | None = None) -> DatasetSplits:
    return load_dataset(dataset, data_dir)


@st.cache_data(show_spinner="Encoding the test set…", max_entries=32)
def _test_posterior_means(path: str, device: str, mtime: float, dataset: str) -> dict[str, np.ndarray]:
    model = _load_model(path, device, mtime)
    return posterior_means(model, load_splits(dataset).x_test)


def test_posterior_means(path: str | Path, device: str = "cpu") -> dict[str, np.ndarray]:
    """E_q[z|x] of every test image for each latent layer: {layer: (N, D)}."""
    config, _ = ckpt.read_config(path)
    return _test_posterior_means(str(path), device, weights_mtime(path), config.dataset)


@st.cache_data(show_spinner=False, max_entries=64)
def _load_snapshot(path: str, mtime: float) -> Snapshot:  # mtime: cache key only
    return load_snapshot(path)


def snapshot(path: str | Path) -> Snapshot:
    """One training snapshot (vae_core.snapshots), re-read when the file changes."""
    return _load_snapshot(str(path), Path(path).stat().st_mtime)
