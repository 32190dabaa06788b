"""Streamlit side of `dashboard.gallery`: cached wrappers and an image grid with its download button.

Every key holds the checkpoint path, the device and the weights' modification time (so a retrained
checkpoint is recomputed), plus the seed and sizes; values are numpy arrays, so switching pages
with a loaded model reuses them instead of running the network again.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from vae_core import imaging
from vae_core.checkpoint import read_config

from . import gallery
from .latent import prior_layer
from .loaders import load_model, load_splits, test_posterior_means, weights_mtime

NEIGHBOURS = 8  # nearest training images kept per component


@st.cache_data(show_spinner="Analysing the prior's components…", max_entries=16)
def _mixture_analysis(path: str, device: str, mtime: float) -> dict | None:  # mtime: cache key only
    splits = load_splits(read_config(path)[0].dataset)
    model = load_model(path, device)
    return gallery.analyse_mixture(model, test_posterior_means(path, device)[prior_layer(model)], splits.x_train,
                                   NEIGHBOURS)


def mixture_analysis(path, device) -> dict | None:
    """Responsibilities, order, pseudo-inputs (or decoded means), reconstructions, neighbours; None if standard."""
    return _mixture_analysis(str(path), device, weights_mtime(path))


@st.cache_data(show_spinner="Sampling…", max_entries=64)
def _prior_samples(path: str, device: str, mtime: float, n: int, seed: int) -> np.ndarray:
    return gallery.prior_samples(load_model(path, device), n, seed)


def prior_samples(path, device, n: int, seed: int) -> np.ndarray:
    return _prior_samples(str(path), device, weights_mtime(path), n, seed)


@st.cache_data(show_spinner="Sampling the component…", max_entries=64)
def _component_samples(path: str, device: str, mtime: float, component: int, n: int, seed: int) -> np.ndarray:
    return gallery.component_samples(load_model(path, device), component, n, seed)


def component_samples(path, device, component: int, n: int, seed: int) -> np.ndarray:
    return _component_samples(str(path), device, weights_mtime(path), int(component), n, seed)


@st.cache_data(show_spinner="Reconstructing…", max_entries=32)
def _test_reconstructions(path: str, device: str, mtime: float, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    images = load_splits(read_config(path)[0].dataset).x_test[start : start + n]
    return images, gallery.reconstruct(load_model(path, device), images)


def test_reconstructions(path, device, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Test images start..start+n and their reconstructions."""
    return _test_reconstructions(str(path), device, weights_mtime(path), start, n)


@st.cache_data(show_spinner="Interpolating…", max_entries=32)
def _interpolation(path: str, device: str, mtime: float, a: int, b: int, steps: int) -> np.ndarray:
    model = load_model(path, device)
    means = test_posterior_means(path, device)[prior_layer(model)]
    return gallery.decode(model, gallery.interpolate(means[a], means[b], steps))


def interpolation(path, device, a: int, b: int, steps: int) -> np.ndarray:
    """Decoded points on the line between the posterior means of test images a and b: (steps, C, H, W)."""
    return _interpolation(str(path), device, weights_mtime(path), int(a), int(b), int(steps))


def show_grid(array: np.ndarray, name: str, caption: str | None = None, container=st) -> None:
    """An upscaled image grid with a PNG download button under it (`name` is the file stem and key)."""
    container.image(array, caption=caption)
    container.download_button("⬇️ PNG", imaging.png_bytes(array), file_name=f"{name}.png", mime="image/png",
                              key=f"download-{name}", on_click="ignore", help=f"Download {name}.png")
