"""Cached loaders shared by the pages: models and evaluation images (cache_resource), codes (cache_data).

Keys hold the checkpoint's weights modification time, so a retrained checkpoint is reloaded rather
than served stale; evaluation images are keyed by the embedded sample's time and the data folder
too, so a newly downloaded dataset replaces the sample.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st
import torch

from vae_core import checkpoint as ckpt
from vae_core import embedded, paths
from vae_core.evaluate import posterior_means
from vae_core.snapshots import Snapshot, load_snapshot
from vae_core.train import resolve_device


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


def weights_mtime(path: str | Path) -> float:
    return _mtime(Path(path) / ckpt.WEIGHTS_FILE)


def data_key(path: str | Path) -> tuple[str, float, str]:
    """What the evaluation images of a checkpoint depend on: the folder, its sample, the data folder."""
    return str(path), _mtime(Path(path) / embedded.SAMPLE_FILE), str(paths.data_dir())


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


@st.cache_resource(show_spinner="Loading the images…", max_entries=8)  # shared, never copied: read-only
def _evaluation_data(key: tuple[str, float, str]) -> embedded.EvaluationData:
    return embedded.evaluation_data(key[0], key[2])


def evaluation_data(path: str | Path) -> embedded.EvaluationData:
    """The checkpoint's test and training images: the dataset's files, else its embedded sample.

    Raises VampvizError (one line) when neither is there or the sample is damaged."""
    return _evaluation_data(data_key(path))


@st.cache_data(show_spinner="Encoding the test images…", max_entries=32)
def _test_posterior_means(path: str, device: str, mtime: float, key: tuple) -> dict[str, np.ndarray]:
    model = _load_model(path, device, mtime)
    return posterior_means(model, _evaluation_data(key).x_test)


def test_posterior_means(path: str | Path, device: str = "cpu") -> dict[str, np.ndarray]:
    """E_q[z|x] of every evaluation test image for each latent layer: {layer: (N, D)}."""
    return _test_posterior_means(str(path), device, weights_mtime(path), data_key(path))


@st.cache_data(show_spinner=False, max_entries=64)
def _load_snapshot(path: str, mtime: float) -> Snapshot:  # mtime: cache key only
    return load_snapshot(path)


def snapshot(path: str | Path) -> Snapshot:
    """One training snapshot (vae_core.snapshots), re-read when the file changes."""
    return _load_snapshot(str(path), Path(path).stat().st_mtime)
