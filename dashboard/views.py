"""The pages' cached computations (Streamlit side of the pure builders), and an image grid with
its download button.

Every key holds the checkpoint path, the device and the weights' modification time (so a retrained
checkpoint is recomputed), the evaluation images' key where images are used, plus seeds and sizes;
values are numpy arrays or small dataclasses, so switching pages with a loaded model reuses them
instead of running the network again.

Where a model's p(x|z) is autoregressive (a PixelCNN: one network pass per pixel), the functions
that decode images run in the background instead (`dashboard.background`): they return None while
it runs and draw a progress bar in the images' place; the page reruns by itself when they are done.
"""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from vae_core import checkpoint as ckpt
from vae_core import imaging, projections
from vae_core.evaluate import posterior_means

from . import background, compare, gallery, latent_map, prior_posterior, probe
from .disk_cache import weights_digest
from .loaders import (
    data_key,
    evaluation_data,
    load_model,
    test_posterior_means,
    weights_mtime,
)
from .projections import is_precomputed, latent_projection

NEIGHBOURS = 8  # nearest training images kept per component
POLL_SECONDS = 1.0  # how often a progress bar of a background computation refreshes


def _key(path, device) -> tuple:
    return str(path), device, weights_mtime(path), data_key(path)


# --------------------------------------------------------------------------------------------
# Pseudo-inputs and samples


@st.cache_data(show_spinner="Analysing the prior's components…", max_entries=16)
def _mixture_analysis(path: str, device: str, mtime: float, data: tuple) -> gallery.MixtureAnalysis | None:
    model = load_model(path, device)
    return gallery.analyse_mixture(model, test_posterior_means(path, device)[model.prior_layer],
                                   evaluation_data(path).x_train, NEIGHBOURS)


def mixture_analysis(path, device) -> gallery.MixtureAnalysis | None:
    """Responsibilities, order, component images, reconstructions, neighbours; None for a non-mixture."""
    return _mixture_analysis(*_key(path, device))


@st.cache_data(show_spinner=False, max_entries=16)
def _component_images(path: str, device: str, mtime: float) -> np.ndarray | None:
    pseudo_inputs = ckpt.read_pseudo_inputs(path)  # a file read: no model is built for a glance at them
    if pseudo_inputs is not None:
        return pseudo_inputs.numpy()
    return gallery.component_images(load_model(path, device))


def component_images(path, device) -> np.ndarray | None:
    """The prior's component images (pseudo-inputs or decoded means), in component order; None if no mixture."""
    return _component_images(str(path), device, weights_mtime(path))


# --------------------------------------------------------------------------------------------
# Decoded images: at once for a one-pass p(x|z), in the background for an autoregressive one


def decodes_in_one_pass(path, device) -> bool:
    """Whether the checkpoint's p(x|z) gives an image in one pass (else: one pass per pixel)."""
    return gallery.decodes_in_one_pass(load_model(path, device))


def generation_passes(path, device, input_shape) -> int:
    """Network passes the checkpoint's p(x|z) needs to draw one image of `input_shape`."""
    return load_model(path, device).likelihood.generation_passes(tuple(input_shape))


def in_background(what: str, key: tuple, compute, unit: str = "passes", container=None):
    """The result of `compute(progress)` once this process has computed it for `key`, else None.

    While it is queued or running, a progress bar takes its place (a fragment refreshed every
    POLL_SECONDS; the whole page reruns when it ends, to draw the result); after a failure, the
    one-line error and a button to try again. `what` names it in those lines ("Drawing 16 samples").
    """
    status = background.REGISTRY.submit(key, compute, unit)
    if status.state == "finished":
        return status.result
    with container or st.container():
        if status.state == "failed":
            st.error(f"{what} failed: {status.error}")
            st.button("↻ Try again", key=f"retry-{_digest(key)}", on_click=background.REGISTRY.forget, args=(key,))
        else:
            st.fragment(_progress_bar, run_every=POLL_SECONDS)(key, what)
    return None


def decoded(path, device, at_once, what: str, key: tuple, compute, container=None):
    """What the checkpoint's p(x|z) decodes: `at_once()` (a cached call) where it decodes in one pass;
    for an autoregressive one, `compute(model, progress)` in the background under `key`, None until
    it is done (see `in_background`, which `what` and `container` are for)."""
    if decodes_in_one_pass(path, device):
        return at_once()
    model = load_model(path, device)
    return in_background(what, key, lambda progress: compute(model, progress), container=container)


def _digest(key: tuple) -> str:
    """A short stable name for a key (widget keys; a key holding an image's bytes would be long)."""
    return hashlib.sha1(repr(key).encode()).hexdigest()[:16]


def _progress_bar(key: tuple, what: str) -> None:
    status = background.REGISTRY.status(key)
    if status is None or not status.active:
        st.rerun()  # it just ended: a full rerun draws the result in the bar's place
    st.progress(status.fraction, text=background.progress_text(status, what))


@st.cache_data(show_spinner="Sampling…", max_entries=64)
def _prior_samples(path: str, device: str, mtime: float, n: int, seed: int) -> np.ndarray:
    return gallery.prior_samples(load_model(path, device), n, seed)


def prior_samples(path, device, n: int, seed: int, container=None) -> np.ndarray | None:
    """n images drawn from the model (None while an autoregressive draw runs: see `decoded`)."""
    args = str(path), device, weights_mtime(path), n, seed
    return decoded(path, device, lambda: _prior_samples(*args), f"Drawing {n} samples", ("prior samples", *args),
                   lambda model, progress: gallery.prior_samples(model, n, seed, progress), container)


@st.cache_data(show_spinner="Sampling the component…", max_entries=64)
def _component_samples(path: str, device: str, mtime: float, component: int, n: int, seed: int) -> np.ndarray:
    return gallery.component_samples(load_model(path, device), component, n, seed)


def component_samples(path, device, component: int, n: int, seed: int, container=None) -> np.ndarray | None:
    """n images decoded from one prior component (None while an autoregressive draw runs)."""
    args = str(path), device, weights_mtime(path), int(component), n, seed
    return decoded(path, device, lambda: _component_samples(*args),
                   f"Drawing {n} samples from component {int(component)}", ("component samples", *args),
                   lambda model, progress: gallery.component_samples(model, int(component), n, seed, progress),
                   container)


@st.cache_data(show_spinner="Reconstructing…", max_entries=32)
def _test_reconstructions(path: str, device: str, mtime: float, data: tuple, start: int, n: int) -> np.ndarray:
    return gallery.reconstruct(load_model(path, device), evaluation_data(path).x_test[start : start + n])


def test_reconstructions(path, device, start: int, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Evaluation test images start..start+n and their reconstructions (None while an autoregressive
    p(x|z) draws them)."""
    images = evaluation_data(path).x_test[start : start + n]
    return images, decoded(path, device, lambda: _test_reconstructions(*_key(path, device), start, n),
                           f"Reconstructing {len(images)} test images",
                           ("reconstructions", *_key(path, device), start, n),
                           lambda model, progress: gallery.reconstruct(model, images, progress))


@st.cache_data(show_spinner="Interpolating…", max_entries=32)
def _interpolation(path: str, device: str, mtime: float, data: tuple, a: int, b: int, steps: int) -> np.ndarray:
    model = load_model(path, device)
    return gallery.decode(model, _interpolation_codes(path, device, a, b, steps))


def _interpolation_codes(path, device, a: int, b: int, steps: int) -> np.ndarray:
    means = test_posterior_means(path, device)[load_model(path, device).prior_layer]
    return gallery.interpolate(means[a], means[b], steps)


def interpolation(path, device, a: int, b: int, steps: int) -> np.ndarray | None:
    """Decoded points on the line between the posterior means of test images a and b: (steps, C, H, W)
    (None while an autoregressive p(x|z) draws them)."""
    a, b, steps = int(a), int(b), int(steps)
    z = _interpolation_codes(path, device, a, b, steps)
    return decoded(path, device, lambda: _interpolation(*_key(path, device), a, b, steps),
                   f"Decoding {steps} points between test images {a} and {b}",
                   ("interpolation", *_key(path, device), a, b, steps),
                   lambda model, progress: gallery.decode(model, z, progress))


@st.cache_data(show_spinner="Decoding the latent plane…", max_entries=16)
def _decoded_manifold(path: str, device: str, mtime: float, xlim: tuple, ylim: tuple, steps: int) -> np.ndarray:
    return prior_posterior.decoded_manifold(load_model(path, device), xlim, ylim, steps)


def decoded_manifold(path, device, xlim, ylim, steps: int) -> np.ndarray | None:
    """Images decoded on a steps x steps grid over a 2-D latent plane: (steps, steps, C, H, W) (None
    while an autoregressive p(x|z) draws them)."""
    xlim, ylim, steps = tuple(xlim), tuple(ylim), int(steps)
    args = str(path), device, weights_mtime(path), xlim, ylim, steps
    return decoded(path, device, lambda: _decoded_manifold(*args),
                   f"Decoding {steps}×{steps} points of the latent plane", ("manifold", *args),
                   lambda model, progress: prior_posterior.decoded_manifold(model, xlim, ylim, steps, progress))


def point_images(path, device, kind: str, index: int, x_test: np.ndarray,
                 container=None) -> tuple[np.ndarray, list[str]] | None:
    """`latent_map.point_images` for a picked point (None while an autoregressive p(x|z) draws them)."""
    return decoded(path, device, lambda: latent_map.point_images(load_model(path, device), kind, index, x_test),
                   f"Decoding the images of {kind} point {index}",
                   ("point images", *_key(path, device), kind, int(index)),
                   lambda model, progress: latent_map.point_images(model, kind, index, x_test, progress), container)


def one_reconstruction(path, device, x: np.ndarray, what: str, container=None) -> np.ndarray | None:
    """The reconstruction (C, H, W) of one image x; None while an autoregressive p(x|z) draws it
    (the one-pass case is never asked for: `probe.probe` reconstructs those at once)."""
    model = load_model(path, device)
    key = ("one reconstruction", str(path), device, weights_mtime(path), _digest((np.asarray(x).tobytes(),)))
    found = in_background(f"Reconstructing {what}", key, lambda progress: gallery.reconstruct(model, x[None], progress),
                          unit="passes", container=container)
    return None if found is None else found[0]


# --------------------------------------------------------------------------------------------
# Latent maps


@st.cache_data(show_spinner=False, max_entries=8)
def _hover_thumbnails(data: tuple) -> list[str]:
    return latent_map.text_thumbnails(evaluation_data(data[0]).x_test)


def hover_thumbnails(path) -> list[str]:
    """The checkpoint's evaluation test images as text thumbnails, for the latent map's hovers."""
    return _hover_thumbnails(data_key(path))


@st.cache_data(show_spinner=False, max_entries=32)
def _projection(path: str, device: str, mtime: float, data: tuple, layer: str, method: str):
    model = load_model(path, device)
    means = test_posterior_means(path, device)[layer]
    return latent_projection(path, model, means, layer, method, weights_digest(path))


def projection(path, device, layer: str, method: str) -> tuple[dict[str, np.ndarray], str]:
    """A layer's latent map by `method`, and where it came from ("checkpoint", "disk cache", "computed")."""
    return _projection(*_key(path, device), layer, method)


@st.cache_data(show_spinner=False, max_entries=32)
def _precomputed(path: str, device: str, mtime: float, data: tuple, layer: str, method: str) -> bool:
    return is_precomputed(path, load_model(path, device), test_posterior_means(path, device)[layer], layer, method,
                          weights_digest(path))


def precomputed(path, device, layer: str, method: str) -> bool:
    """Whether the checkpoint ships this layer's `method` map for the images shown (then it costs no fit)."""
    return _precomputed(*_key(path, device), layer, method)


@st.cache_data(show_spinner="Projecting the latent codes…", max_entries=16)
def _pca_map(path: str, device: str, mtime: float, data: tuple) -> dict[str, np.ndarray]:
    model = load_model(path, device)
    means = posterior_means(model, evaluation_data(data[0]).x_test)[model.prior_layer]
    return projections.project(means, "PCA", {"components": projections.component_means(model)})


def pca_map(path, device, images_of=None) -> dict[str, np.ndarray]:
    """The PCA of the test means on the prior's layer, with the component means placed in it; the test
    images are those of checkpoint `images_of` (default: `path`), so several models share one set."""
    return _pca_map(str(path), device, weights_mtime(path), data_key(images_of or path))


# --------------------------------------------------------------------------------------------
# Prior versus aggregated posterior


@st.cache_data(show_spinner="Sampling the prior and the aggregated posterior…", max_entries=16)
def _prior_posterior_samples(path: str, device: str, mtime: float, data: tuple, per_image: int):
    images = evaluation_data(path)
    return prior_posterior.paired_samples(load_model(path, device), images.x_test, images.y_test, per_image)


def prior_posterior_samples(path, device, per_image: int) -> prior_posterior.PairedSamples:
    """Aggregated-posterior and prior samples with log p(z) at both."""
    return _prior_posterior_samples(*_key(path, device), per_image)


@st.cache_data(show_spinner="Evaluating log p(z) on a grid…", max_entries=16)
def _prior_grid(path: str, device: str, mtime: float, xlim: tuple, ylim: tuple, resolution: int):
    frozen = load_model(path, device).prior.frozen()
    return prior_posterior.density_grid(lambda z: prior_posterior.prior_log_prob(frozen, z), xlim, ylim, resolution)


def prior_grid(path, device, xlim, ylim, resolution: int = 150):
    """xs, ys and log p(z) on a grid over a 2-D latent."""
    return _prior_grid(str(path), device, weights_mtime(path), tuple(xlim), tuple(ylim), resolution)


@st.cache_data(show_spinner="Estimating KL(q(z) ‖ p(z))…", max_entries=16)
def _aggregated_kl(path: str, device: str, mtime: float, data: tuple) -> float:
    return prior_posterior.estimate_aggregated_kl(load_model(path, device), evaluation_data(path).x_test)


def aggregated_kl(path, device) -> float:
    return _aggregated_kl(*_key(path, device))


# --------------------------------------------------------------------------------------------
# Compare priors and Probe an image


@st.cache_data(show_spinner="Computing the metrics missing from metrics.json…", max_entries=16)
def _computed_metrics(path: str, device: str, mtime: float, data: tuple, keys: tuple[str, ...]) -> dict:
    return compare.compute_missing_metrics(load_model(path, device), evaluation_data(path).x_test, keys)


def computed_metrics(path, device, keys: tuple[str, ...]) -> dict:
    return _computed_metrics(*_key(path, device), tuple(keys))


@st.cache_data(show_spinner="Encoding the image…", max_entries=64)
def _probe_image(path: str, device: str, mtime: float, x: np.ndarray) -> probe.ProbeResult:
    return probe.probe(load_model(path, device), x)


def probe_image(path, device, x: np.ndarray) -> probe.ProbeResult:
    return _probe_image(str(path), device, weights_mtime(path), x)


@st.cache_data(show_spinner="Projecting…", max_entries=64)
def _probe_map(path: str, device: str, mtime: float, data: tuple, code: np.ndarray) -> dict:
    model = load_model(path, device)
    means = test_posterior_means(path, device)[model.prior_layer]
    method = "raw" if means.shape[1] == 2 else "PCA"
    return projections.project(means, method, {"components": projections.component_means(model), "probe": code[None]})


def probe_map(path, device, code: np.ndarray) -> dict:
    """PCA (or the raw 2-D latent) of the test means, with the components and the probed code placed in it."""
    return _probe_map(*_key(path, device), code)


@st.cache_data(max_entries=8)
def _dataset_background(data: tuple) -> float:
    return probe.border_mean(evaluation_data(data[0]).x_train[:2000])


def dataset_background(path) -> float:
    """The mean border pixel of the training images (dark for digits: ink is 1)."""
    return _dataset_background(data_key(path))


# --------------------------------------------------------------------------------------------
# Layout


def show_grid(array: np.ndarray, name: str, caption: str | None = None, container=st) -> None:
    """An upscaled image grid with a PNG download button under it (`name` is the file stem and key);
    the PNG is encoded when the button is clicked, not on every run."""
    container.image(array, caption=caption)
    container.download_button("⬇️ PNG", lambda: imaging.png_bytes(array), file_name=f"{name}.png", mime="image/png",
                              key=f"download-{name}", on_click="ignore", help=f"Download {name}.png")
