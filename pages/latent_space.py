"""Latent space: the test set's posterior means in 2-D, with the prior's components and samples."""

from contextlib import nullcontext

import streamlit as st

from dashboard import gallery, latent_map
from dashboard.loaders import load_model, test_posterior_means
from dashboard.state import (
    device,
    image_scale,
    plotly_chart,
    require_data,
    require_entry,
)
from dashboard.views import hover_thumbnails, point_images, precomputed, projection
from vae_core.imaging import image_grid, png_bytes

AXES = {"raw": ("z₁", "z₂"), "PCA": ("PC 1", "PC 2"), "UMAP": ("UMAP 1", "UMAP 2"), "t-SNE": ("t-SNE 1", "t-SNE 2")}
NOTES = {
    "raw": "The latent is 2-D: these are the posterior means themselves, no projection.",
    "PCA": "PCA is linear and instant: distances are faithful, but clusters may overlap.",
    "UMAP": "UMAP was fitted on the test means; the component means and prior samples are placed by its "
            "`transform`. It keeps neighbourhoods, not global distances.",
    "t-SNE": "t-SNE cannot place new points, so it was fitted on the test means, the component means and the "
             "prior samples together. Distances between clusters mean little.",
}


def _typed_index():
    st.session_state["latent_focus"] = ("test", int(st.session_state["latent_index"]))


entry = require_entry()
config = entry.info.config
path, dev = str(entry.path), device()
st.title("🗺️ Latent space")
st.markdown(
    "Every test image x is encoded to the mean of its posterior q(z|x); this page draws those means as "
    "points, coloured by the digit they came from. A latent with more than two dimensions is "
    "projected to 2-D (PCA instantly; UMAP or t-SNE for a map that keeps neighbourhoods). The **black ×** "
    "are the prior's components: for a VampPrior the encoded pseudo-inputs E[q(z|u_k)], for a mixture of "
    "Gaussians its means. The **grey cloud** is samples from the prior p(z). A good prior puts its mass "
    "where the encoded data actually lies: compare how the grey cloud covers the coloured points for a "
    "standard-normal prior and for a VampPrior."
)

model = load_model(path, dev)
data = require_data(entry)
means = test_posterior_means(path, dev)
top = model.prior_layer
layers = list(means)
left, right = st.columns([1, 2]) if len(layers) > 1 else (None, st.container())
layer = top
if len(layers) > 1:
    layer = left.radio("Latent layer", layers, index=layers.index(top), horizontal=True,
                       help="The prior p(z2) lives on z2; z1 has a conditional prior p(z1|z2), "
                            "so only its test means are shown.")
dim = means[layer].shape[1]
methods = (["raw"] if dim == 2 else []) + ["PCA", "UMAP", "t-SNE"]
shipped_umap = dim > 2 and precomputed(path, dev, layer, "UMAP")  # then UMAP is as instant as PCA
method = right.radio("Projection", methods, horizontal=True, key=f"latent_method_{dim == 2}_{shipped_umap}",
                     index=methods.index("UMAP") if shipped_umap else 0,
                     format_func=lambda m: "raw 2-D latent" if m == "raw" else m,
                     help="UMAP and t-SNE take a few seconds the first time; then they are cached on disk.")

show_components = show_prior = False
if layer == top:
    has_components = config.has_components
    components_name = f"{model.prior.component_name}s" if has_components else ""
    a, b = st.columns(2)
    show_components = a.toggle(f"Show the prior's {components_name}" if has_components else "Show components",
                               value=has_components, disabled=not has_components,
                               help=None if has_components else "A standard normal prior has no components.")
    show_prior = b.toggle("Show samples from the prior", value=True)
else:
    st.caption(f"{layer} has no unconditional prior, so only the test posterior means are shown.")

slow = method in ("UMAP", "t-SNE")
hint = " The first UMAP after a server start also compiles numba (15–30 s)." if method == "UMAP" else ""
with st.spinner(f"Fitting {method}…{hint}") if slow else nullcontext():
    coords, origin = projection(path, dev, layer, method)

n_test = len(data.x_test)
fig = latent_map.latent_scatter_figure(
    coords["points"], data.y_test,
    hover_texts=hover_thumbnails(path) if n_test <= 2000 else None,  # they would bloat big maps
    components=coords.get("components") if show_components else None,
    components_name=components_name if show_components else "",
    prior_samples=coords.get("prior_samples") if show_prior else None,
    axis_titles=AXES[method],
)
event = plotly_chart(fig, on_select="rerun", selection_mode="points", key="latent_map")
ORIGINS = {"checkpoint": " Precomputed in the checkpoint.", "disk cache": " Served from the on-disk cache."}
st.caption(NOTES[method] + (ORIGINS.get(origin, "") if slow else "")
           + f" {n_test} test images, layer {layer} ({dim}-D). Click legend entries to hide or show them.")

# --- the image behind a point: clicked on the map, or typed as an index ---------------------------
st.subheader("Inspect a point")
picked = latent_map.selected_point(event.selection if event else None)
if picked and picked != st.session_state.get("latent_last_pick"):
    st.session_state["latent_last_pick"] = picked
    st.session_state["latent_focus"] = picked
    if picked[0] == "test":
        st.session_state["latent_index"] = picked[1]
if st.session_state.get("latent_index", 0) >= n_test:  # left over from a checkpoint with a bigger test set
    st.session_state["latent_index"] = 0
controls, images = st.columns([1, 3])
controls.number_input("Test image index", min_value=0, max_value=n_test - 1, step=1, key="latent_index",
                      on_change=_typed_index, help="Or click a point on the map.")
kind, index = st.session_state.get("latent_focus", ("test", int(st.session_state["latent_index"])))
num_components = len(coords.get("components", []))
if (kind == "test" and index >= n_test) or (kind == "component" and index >= num_components):
    kind, index = "test", int(st.session_state["latent_index"])  # the focus belonged to another checkpoint
found = point_images(path, dev, kind, index, data.x_test, container=images)
if found is not None:
    pictures, captions = found
    scale = image_scale(gallery.display_scale(pictures.shape, 112))
    grid = image_grid(pictures, columns=len(pictures), padding=2, scale=scale)
    with images:
        label = f", label {data.y_test[index]}" if kind == "test" and data.y_test is not None else ""
        st.image(grid, caption=" · ".join(captions) + label, output_format="PNG")
        st.download_button("Download PNG", lambda: png_bytes(grid), file_name=f"{entry.path.name}-{kind}-{index}.png",
                           mime="image/png")
