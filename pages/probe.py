"""Probe an image: a test image or an upload, its reconstruction, its code in the latent map, its components."""

import numpy as np
import streamlit as st

from dashboard import gallery, latent, probe
from dashboard.gallery_views import show_grid
from dashboard.loaders import (
    load_model,
    load_splits,
    test_posterior_means,
    weights_mtime,
)
from dashboard.state import (
    device,
    image_scale,
    lecture_mode,
    plotly_chart,
    require_entry,
)
from vae_core.data import get_spec

TOP = 6  # components shown as images


@st.cache_data(show_spinner="Encoding the image…", max_entries=64)
def probe_image(path: str, dev: str, mtime: float, x: np.ndarray) -> dict:
    return probe.probe(load_model(path, dev), x)


@st.cache_data(show_spinner="Projecting…", max_entries=64)
def probe_map(path: str, dev: str, mtime: float, code: np.ndarray) -> dict:
    """PCA (or the raw 2-D latent) of the test means, with the components and the probed code placed in it."""
    model = load_model(path, dev)
    means = test_posterior_means(path, dev)[latent.prior_layer(model)]
    method = "raw" if means.shape[1] == 2 else "PCA"
    return latent.project(means, method, {"components": latent.component_means(model), "probe": code[None]})


@st.cache_data(max_entries=8)
def dataset_background(dataset: str) -> float:
    return probe.border_mean(load_splits(dataset).x_train[:2000])


entry = require_entry()
config, path, dev = entry.info.config, str(entry.path), device()
channels, height, width = config.input_shape
spec = get_spec(config.dataset)
st.title("🔍 Probe an image")
st.markdown(
    "Give the model one image and watch what it does with it. The encoder maps it to a posterior q(z|x); its mean "
    "is the image's **code**. Decoding the code gives the **reconstruction**: what the model keeps of the image. "
    "The **star** in the latent map shows where the code lands among the test set's codes: a digit should land "
    "in its own cluster, while an image unlike the training data lands in between or far out (and gets a low "
    "ELBO). For a VampPrior, the prior is a mixture over K pseudo-inputs, and the **responsibilities** "
    "p(k | z) say which components explain this code: the pseudo-inputs shown at the bottom are the model's own "
    "prototypes for your image. Try a test image first, then upload a photo of a digit you drew.")

model = load_model(path, dev)
splits = load_splits(config.dataset)
source = st.radio("What to probe", ["A test image", "An image of your own"], horizontal=True, key="probe_source")
if source == "A test image":
    index = int(st.number_input("Test image index", 0, len(splits.x_test) - 1, 0, key="probe_index"))
    x = splits.x_test[index]
    label = f" (label {splits.y_test[index]})" if splits.y_test is not None else ""
    name, file_stem = f"test image #{index}{label}", f"test-{index}"
else:
    upload = st.file_uploader(f"A PNG or JPEG of any size: it is converted to {width}×{height} {spec.input_type} "
                              "like the dataset", type=["png", "jpg", "jpeg"], key="probe_upload")
    if upload is None:
        st.info("Upload an image: a dark digit on light paper works (it is inverted to match the dataset). "
                f"Draw thick strokes: at {width}×{height} pixels thin lines vanish.")
        st.stop()
    binarize = True
    if spec.input_type == "binary" and not lecture_mode():
        binarize = st.toggle("Binarise at 0.5, like the test images", value=True, key="probe_binarize")
    try:
        x, steps = probe.image_to_input(upload.getvalue(), config.input_shape, spec.input_type, binarize=binarize,
                                        dataset_background=dataset_background(config.dataset))
    except ValueError as error:
        st.error(f"Could not use {upload.name}: {error}")
        st.stop()
    with st.expander("How your image was converted", expanded=not lecture_mode()):
        st.markdown("\n".join(f"{i}. {step}" for i, step in enumerate(steps, start=1)))
    if not x.any():
        st.warning("Nothing is left of the image after the conversion (all pixels are background): draw thicker "
                   "strokes, crop closer, or turn binarisation off.")
    name, file_stem = f"your image ({upload.name})", "upload"

result = probe_image(path, dev, weights_mtime(path), x)
st.subheader("The image and its reconstruction")
left, right = st.columns([2, 3])
big = image_scale(gallery.display_scale(config.input_shape, 128))
show_grid(gallery.grid(np.stack([x, result["reconstruction"]]), 2, big), f"{entry.path.name}-probe-{file_stem}",
          caption=f"{name} · its reconstruction decode(E[z|x])", container=left)
test_elbo = entry.info.metrics.get("elbo")
right.metric("ELBO of this image", f"{result['elbo']:.2f} nats",
             delta=f"{result['elbo'] - test_elbo:+.2f} vs the test-set mean" if test_elbo is not None else None,
             help="Averaged over 64 draws of z ~ q(z|x). Far below the test mean: the model finds the image unusual.")
right.caption("The ELBO is a lower bound on log p(x): how probable the model finds this image.")

st.subheader("Where it lands in the latent space")
layer = latent.prior_layer(model)
coords = probe_map(path, dev, weights_mtime(path), result["means"][layer])
components_name = "pseudo-inputs" if config.prior.startswith("vampprior") else "mixture means"
fig = latent.latent_scatter_figure(coords["points"], splits.y_test, components=coords.get("components"),
                                   components_name=components_name,
                                   axis_titles=("z₁", "z₂") if config.latent_sizes[layer] == 2 else ("PC 1", "PC 2"))
plotly_chart(probe.add_probe_point(fig, coords["probe"][0], name))
st.caption(f"The test set's posterior means on {layer} (PCA to 2-D unless the latent is 2-D), coloured by label; "
           f"the star is {name}.")

st.subheader("Which components explain it")
if result["responsibilities"] is None:
    st.info("This checkpoint uses the standard normal prior N(0, I): a single component, so there is nothing to "
            "attribute. Pick a VampPrior (or mog) checkpoint in the sidebar to see which pseudo-inputs explain it.")
    st.stop()
r, heads, kind = result["responsibilities"], result["heads"], result["kind"]
plotly_chart(probe.probe_responsibility_figure(r, 20, kind))
top = probe.top_components(r, TOP)
st.markdown(f"The {TOP} most responsible components' {kind}s, most first (they explain "
            f"{r[top].sum():.0%} of this image's code together):")
for column, (rank, k) in zip(st.columns(TOP), enumerate(top, start=1)):
    column.image(gallery.grid(heads[k:k + 1], 1, big), caption=f"#{rank} · k={k} · {r[k]:.0%}")
if kind == "decoded mean":
    st.caption("A mixture-of-Gaussians prior has no pseudo-inputs: these are its component means decoded.")
