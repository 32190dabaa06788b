"""Prior versus aggregated posterior: does p(z) put its mass where the encoded data lies?"""

import pandas as pd
import streamlit as st

from dashboard import activity, prior_posterior
from dashboard.catalog import model_title
from dashboard.loaders import load_model, test_posterior_means
from dashboard.state import (
    device,
    entries,
    lecture_mode,
    plotly_chart,
    require_data,
    require_entry,
)
from dashboard.views import (
    aggregated_kl,
    decoded_manifold,
    decodes_in_one_pass,
    prior_grid,
    prior_posterior_samples,
)
from vae_core.evaluate import unit_activity

entry = require_entry()
config = entry.info.config
path, dev = str(entry.path), device()
st.title("⛰️ Prior vs aggregated posterior")
st.markdown(
    "The **aggregated posterior** q(z) = 1/N Σ_n q(z|x_n) is where the encoder actually puts the data. "
    "Training pulls the prior p(z) towards it (the KL term of the ELBO, averaged over the data, contains "
    "KL(q(z) ‖ p(z))), and decoding samples from p(z) only gives good images where p(z) and q(z) agree. "
    "A standard normal prior is a fixed blob; a **VampPrior** p(z) = 1/K Σ_k q(z|u_k) is by construction a "
    "mixture of posteriors, the optimal prior is q(z) itself, so it can follow the data's clusters. "
    "Here: the prior's density with posterior samples over it (2-D latents), per-dimension marginals of "
    "both, and log p(z) at samples of each."
)
model = load_model(path, dev)
layer = model.prior_layer
if layer != "z":
    st.caption(f"This is a hierarchical VAE: the prior lives on the top layer {layer}, "
               f"so everything here is about {layer}.")
data = require_data(entry)
n_test = len(data.x_test)
per_image = min(8, max(1, 2000 // n_test))  # about 2,000 points in all
if not lecture_mode():  # not needed to show it
    per_image = st.slider("Posterior samples per test image", 1, 10, per_image,
                          help="z_n ~ q(z|x_n); the same number of samples is drawn from the prior.")
paired = prior_posterior_samples(path, dev, per_image)
z_post, labels, z_prior = paired.posterior, paired.labels, paired.prior
dim = z_post.shape[1]

# --- KL ------------------------------------------------------------------------------------------
kl = aggregated_kl(path, dev)
left, right = st.columns([1, 2])
left.metric("KL(q(z) ‖ p(z)), Monte Carlo", f"{kl:.2f} nats",
            help="One z_n ~ q(z|x_n) per test image; log q(z_n) is the mixture of all N posteriors.")
rows = [{"checkpoint": e.path.name, "model": model_title(e.info.config), "prior": e.info.config.prior_title,
         "KL(q(z) ‖ p(z))": e.info.metrics.get("aggregated_posterior_kl")}
        for e in entries() if e.ready and e.info.config.dataset == config.dataset]
right.dataframe(pd.DataFrame(rows), hide_index=True, placeholder="—",
               column_config={"KL(q(z) ‖ p(z))": st.column_config.NumberColumn(format="%.2f nats")})
right.caption("From each checkpoint's metrics.json. Lower means the prior matches where the data is encoded; "
              "a VampPrior is designed to match the aggregated posterior, so the paper's argument predicts it lower "
              "than for a standard normal prior of the same model. "
              "(Monte Carlo estimates, noisy in the second digit; log q(z) uses the finite test set.)")

# --- 2-D: the density itself -----------------------------------------------------------------
if dim == 2:
    st.subheader("Prior density and posterior samples")
    scale = st.radio("Colour by", ["log-density", "density"], horizontal=True,
                     help="log p(z) shows the shape of every component; p(z) shows where the mass is.")
    xlim, ylim = prior_posterior.grid_limits(z_post, z_prior)
    xs, ys, log_p = prior_grid(path, dev, xlim, ylim)
    plotly_chart(prior_posterior.prior_contour_figure(xs, ys, log_p, z_post, labels, density=scale == "density"))
    st.caption("Contours: the prior p(z). Points: z ~ q(z|x) for test images, coloured by label. "
               "Dark regions without points are prior mass that decodes to no real image; points on pale regions are "
               "data the prior finds improbable.")

    st.subheader("The decoded manifold")
    one_pass = decodes_in_one_pass(path, dev)
    default_steps = 15 if one_pass else 6  # an autoregressive p(x|z): a pass per pixel for every tile
    steps = default_steps if lecture_mode() else st.slider(
        "Images per side", 6, 30, default_steps, key="manifold_steps" if one_pass else "manifold_steps_autoregressive")
    if not one_pass:
        st.caption(f"This model's p(x|z) draws each pixel in turn, so the {steps}×{steps} tiles are decoded in the "
                   "background (fewer by default), each the conditional means along one random draw.")
    images = decoded_manifold(path, dev, xlim, ylim, steps)
    if images is not None:
        plotly_chart(prior_posterior.manifold_figure(images, xlim, ylim, xs, ys, log_p))
    st.caption("Each tile is the decoder's mean image at that point of the latent plane; the lines are contours of "
               "log p(z). Samples from the prior come from inside the contours: where the prior puts mass between "
               "the data's clusters, the tiles there are the blurred in-between images it draws.")

# --- marginals -------------------------------------------------------------------------------
st.subheader("Marginals per dimension")
order, _ = activity.sorted_activity(unit_activity(test_posterior_means(path, dev))[layer])
dims = st.multiselect("Dimensions (default: the 8 most active)", list(range(dim)),
                      default=[int(d) for d in order[:8]], format_func=lambda d: f"{layer}[{d}]")
if dims:
    plotly_chart(prior_posterior.marginals_figure(z_prior, z_post, dims, layer=layer))
    st.caption("Grey: samples from the prior; red: samples from the aggregated posterior. An inactive unit "
               "shows two matching bell curves: its posterior has collapsed to the prior.")

st.subheader("How probable does the prior find the encoded data?")
plotly_chart(prior_posterior.log_prob_histogram_figure(paired.log_p_posterior, paired.log_p_prior))
st.caption("log p(z) at prior samples (grey) and at aggregated-posterior samples (red). If the red mass sits "
           "far left of the grey, the data lives where the prior puts little density: a prior hole.")
