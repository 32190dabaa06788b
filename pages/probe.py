"""Probe an image: a test image or an upload, its reconstruction, its code in the latent map, its components."""

import numpy as np
import streamlit as st

from dashboard import gallery, latent_map, probe
from dashboard.loaders import load_model
from dashboard.state import (
    device,
    image_scale,
    lecture_mode,
    plotly_chart,
    require_data,
    require_entry,
)
from dashboard.views import dataset_background, one_reconstruction, probe_image, probe_map, show_grid
from vae_core.data import get_spec

TOP = 6  # components shown as images


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
data = require_data(entry)
source = st.radio("What to probe", ["A test image", "An image of your own"], horizontal=True, key="probe_source")
if source == "A test image":
    index = int(st.number_input("Test image index", 0, len(data.x_test) - 1, 0, key="probe_index"))
    x = data.x_test[index]
    label = f" (label {data.y_test[index]})" if data.y_test is not None else ""
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
                                        dataset_background=dataset_background(entry.path))
    except ValueError as error:
        st.error(f"Could not use {upload.name}: {error}")
        st.stop()
    with st.expander("How your image was converted", expanded=not lecture_mode()):
        st.markdown("\n".join(f"{i}. {step}" for i, step in enumerate(steps, start=1)))
    if not x.any():
        st.warning("Nothing is left of the image after the conversion (all pixels are background): draw thicker "
                   "strokes, crop closer, or turn binarisation off.")
    name, file_stem = f"your image ({upload.name})", "upload"

result = probe_image(path, dev, x)
st.subheader("The image and its reconstruction")
left, right = st.columns([2, 3])
big = image_scale(gallery.display_scale(config.input_shape, 128))
reconstruction = result.reconstruction
if reconstruction is None:  # p(x|z) draws pixel by pixel: in the background, the image alone meanwhile
    reconstruction = one_reconstruction(path, dev, x, name, container=left)
if reconstruction is None:
    left.image(gallery.grid(x[None], 1, big), caption=name)
else:
    show_grid(gallery.grid(np.stack([x, reconstruction]), 2, big), f"{entry.path.name}-probe-{file_stem}",
              caption=f"{name} · its reconstruction decode(E[z|x])", container=left)
test_elbo = entry.info.metrics.get("elbo")
right.metric("ELBO of this image", f"{result.elbo:.2f} nats",
             delta=f"{result.elbo - test_elbo:+.2f} vs the test-set mean" if test_elbo is not None else None,
             help="Averaged over 64 draws of z ~ q(z|x). Far below the test mean: the model finds the image unusual.")
right.caption("The ELBO is a lower bound on log p(x): how probable the model finds this image.")

st.subheader("Where it lands in the latent space")
layer = model.prior_layer
coords = probe_map(path, dev, result.means[layer])
fig = latent_map.latent_scatter_figure(coords["points"], data.y_test, components=coords.get("components"),
                                   components_name=f"{result.component_name}s" if result.component_name else "",
                                   axis_titles=("z₁", "z₂") if config.latent_sizes[layer] == 2 else ("PC 1", "PC 2"))
plotly_chart(probe.add_probe_point(fig, coords["probe"][0], name))
st.caption(f"The test set's posterior means on {layer} (PCA to 2-D unless the latent is 2-D), coloured by label; "
           f"the star is {name}.")

st.subheader("Which components explain it")
if result.responsibilities is None:
    st.info(f"This checkpoint's prior is the {config.prior_title}: a single component, so there is nothing to "
            "attribute. Pick a VampPrior (or mixture) checkpoint in the sidebar to see which pseudo-inputs explain it.")
    st.stop()
r, heads = result.responsibilities, result.heads
kind = result.component_name if result.images_are_inputs else f"decoded {result.component_name}"
plotly_chart(probe.probe_responsibility_figure(r, 20, kind))
top = probe.top_components(r, TOP)
st.markdown(f"The {TOP} most responsible components' {kind}s, most first (they explain "
            f"{r[top].sum():.0%} of this image's code together):")
for column, (rank, k) in zip(st.columns(TOP), enumerate(top, start=1)):
    column.image(gallery.grid(heads[k:k + 1], 1, big), caption=f"#{rank} · k={k} · {r[k]:.0%}")
if not result.images_are_inputs:
    st.caption(f"A {config.prior_title} prior has no pseudo-inputs: these are its component means decoded.")
