"""Samples: images generated from the prior, from one component, reconstructions, interpolations."""

import streamlit as st

from dashboard import gallery
from dashboard.catalog import pixel_model_title
from dashboard.state import device, require_data, require_entry
from dashboard.views import (
    component_samples,
    decodes_in_one_pass,
    generation_passes,
    interpolation,
    mixture_analysis,
    prior_samples,
    show_grid,
    test_reconstructions,
)

entry = require_entry()
config, name = entry.info.config, entry.path.name
st.title("🖼️ Samples")
st.markdown(
    "A VAE is a generative model: draw a code z from the prior p(z) and decode it, and you get a new "
    "image. How good these samples look depends on the prior: with N(0, I), codes land in regions the "
    "encoder never used, giving blurry or mixed-up digits; the VampPrior puts its mass where the "
    "encoder puts real images. Below: **samples from the prior** (a mixture first picks a component "
    "at random, then draws z from it), **samples from a single component**, **test images next to "
    "their reconstructions** (how much the code keeps) and a **walk in latent space** between two "
    "test images (is the space smooth between them?). The same seed always gives the same images.")

st.session_state.setdefault("samples_seed", 0)
one_pass = decodes_in_one_pass(entry.path, device())
if not one_pass:
    passes = generation_passes(entry.path, device(), config.input_shape)
    st.info(f"This model's p(x|z) is autoregressive: a {pixel_model_title(config)} draws each pixel in turn, "
            f"{passes:,} network passes per image. So the images below are drawn in the background, fewer of them "
            "by default, with a bar showing the passes done; each is the conditional means along one random draw.")


def _resample():
    st.session_state["samples_seed"] = (st.session_state["samples_seed"] + 1) % 2**31


st.subheader("Samples from the prior p(z)")
a, b, c = st.columns([3, 2, 1], vertical_alignment="bottom")
n = a.slider("Number of samples", 8, 256, 64 if one_pass else 16, step=8)
seed = b.number_input("Seed", 0, 2**31 - 1, key="samples_seed")
c.button("🎲 Re-sample", on_click=_resample, help="Next seed")
samples = prior_samples(entry.path, device(), n, int(seed))
if samples is not None:
    show_grid(gallery.grid(samples, gallery.columns_for(n)), f"{name}-prior-samples-seed{seed}")
sharpness = entry.info.metrics.get("decoder_entropy")
if sharpness and config.likelihood == "bernoulli":  # for grey pixels the entropy is no blur measure
    st.caption(f"How sure the decoder is at draws from this prior: an entropy H[p(x|z)] of {sharpness['prior']:.2f} "
               f"nats per image, against {sharpness['posterior']:.2f} at the codes of test images (its "
               "reconstructions); lower is sharper (from metrics.json; Compare priors puts models side by side).")

st.subheader("Samples from one component")
if not config.has_components:
    st.info(f"The {config.prior_title} prior has a single component, so the samples above are already "
            "'from one component'. Pick a VampPrior or mixture-of-Gaussians checkpoint to sample its components "
            "separately.")
else:
    data = require_data(entry)
    analysis = mixture_analysis(entry.path, device())
    order, K = analysis.order, len(analysis.order)
    rank = st.number_input(f"Component rank (1 = explains most test data, {K} = least)", 1, K, 1)
    k = int(order[rank - 1])
    left, right = st.columns([1, 4])
    left.image(gallery.grid(analysis.heads[k : k + 1], 1, gallery.display_scale(config.input_shape, 128)),
               caption=f"{analysis.name} {analysis.symbol[0]}_{k}" if analysis.images_are_inputs
               else f"decoded {analysis.name} {analysis.symbol[0]}_{k}")
    right.markdown(f"z ~ {analysis.density} for k = {k}, decoded "
                   f"(explains {analysis.mean_resp[k]:.1%} of the test set)")
    drawn = component_samples(entry.path, device(), k, 32, int(seed), container=right)
    if drawn is not None:
        show_grid(gallery.grid(drawn, 8), f"{name}-component-{k}-seed{seed}", container=right)

st.subheader("Reconstructions")
data = require_data(entry)
x_test = data.x_test
a, b = st.columns(2)
count = a.slider("Test images", 8, 64, 32, step=8)
start = b.number_input("First test image", 0, max(0, len(x_test) - count), 0)
st.caption("Odd rows: test images; even rows: their reconstructions decode(E[z|x]) just below.")
images, reconstructions = test_reconstructions(entry.path, device(), int(start), count)
if reconstructions is not None:
    show_grid(gallery.grid(gallery.interleave_rows(images, reconstructions, 16), 16),
              f"{name}-reconstructions-{start}")

st.subheader("Interpolation in latent space")
layer = config.prior_layer
a, b, c = st.columns(3)
first = a.number_input("From test image", 0, len(x_test) - 1, 0)
default_last = min(len(x_test) - 1, gallery.other_class_index(data.y_test, 0))  # a different digit
last = b.number_input("To test image", 0, len(x_test) - 1, default_last)
steps = c.slider("Steps", 3, 20, 10)
st.caption(f"The posterior means E[{layer}|x] of the two test images (shown at the ends), joined by a straight "
           f"line in {layer}-space; each point on it is decoded"
           + (f" (the lower layer {list(config.latent_sizes)[0]} is taken at the mean of its conditional prior)."
              if len(config.latent_sizes) > 1 else "."))
path_images = interpolation(entry.path, device(), int(first), int(last), steps)
if path_images is not None:
    strip = gallery.with_ends(x_test[first], path_images, x_test[last])
    show_grid(gallery.grid(strip, len(strip)), f"{name}-interpolation-{first}-{last}")
