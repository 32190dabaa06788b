"""Pseudo-inputs: the VampPrior's K learned images, ordered by how much of the data each explains."""

import streamlit as st

from dashboard import gallery
from dashboard.state import device, require_data, require_entry
from dashboard.views import NEIGHBOURS, component_samples, mixture_analysis, one_reconstruction, show_grid

entry = require_entry()
config = entry.info.config
st.title("🧩 Pseudo-inputs")
st.markdown(
    "The VampPrior is p(z) = (1/K) Σ_k q(z | u_k): each of its K components is the encoder's posterior "
    "at a learned **pseudo-input** u_k, an image the model invented during training. Below they are "
    "**ordered by how much of the test set each one explains**: for every test image n we take its "
    "posterior mean z_n and compute the responsibility r_nk = p(k | z_n), the probability that "
    "component k produced that code; averaging r_nk over the test set gives each component's share. "
    "Some components carry several times more of the data than others. Next to each "
    "pseudo-input you see its reconstruction (what the decoder makes of it) and the training images "
    "nearest to it **in pixel space** (Euclidean distance between images), which tells you whether it "
    "looks like a real digit or like a blurred prototype of one.")

if not config.has_components:
    st.info(f"This checkpoint's prior is the **{config.prior_title}**: it is no mixture, so it has no components "
            "and no pseudo-inputs. Pick a VampPrior checkpoint in the sidebar, or a mixture-of-Gaussians one to "
            "see its decoded component means.")
    st.stop()
data = require_data(entry)  # the components are ordered by the test images they explain
analysis = mixture_analysis(entry.path, device())
pseudo = analysis.images_are_inputs
order, mean_resp, heads = analysis.order, analysis.mean_resp, analysis.heads
K = len(order)
what = f"{analysis.name}s" if pseudo else f"decoded {analysis.name}s"
if not pseudo:
    st.info(f"This checkpoint's prior is a **{config.prior_title}** with learned means {analysis.symbol} in latent "
            "space, not a VampPrior: it has no pseudo-inputs. What you see instead are the component means pushed "
            "through the decoder, ordered the same way (by the share of test codes each component explains). "
            "Nearest training images are measured to these decoded means.")

st.subheader("Share of the test set explained by each component")
st.plotly_chart(gallery.responsibility_figure(mean_resp, order), width="stretch")
top10 = mean_resp[order[:10]].sum()
st.caption(f"The top 10 of {K} components explain {top10:.0%} of the test set "
           f"(a uniform prior would give them {10 / K:.0%}).")

columns = gallery.columns_for(K, 20)
left, right = st.columns(2)
left.markdown(f"**{what.capitalize()}**, most used first (row by row)")
show_grid(gallery.grid(heads[order], columns), f"{entry.path.name}-{what.replace(' ', '-')}", container=left)
if pseudo and analysis.reconstructions is not None:
    right.markdown("**Their reconstructions** (each pseudo-input encoded, then decoded), same order")
    show_grid(gallery.grid(analysis.reconstructions[order], columns), f"{entry.path.name}-pseudo-reconstructions",
              container=right)
elif pseudo:
    right.caption(f"No reconstructions of all {K} here: this model's p(x|z) draws pixel by pixel, one network pass "
                  "each, which would take minutes. Pick one below to see its reconstruction.")

st.subheader("Nearest training images")
rows = st.slider("Components to show (most used first)", 1, K, min(10, K))
st.caption(f"Each row: the {what[:-1]} (first column), then its {NEIGHBOURS} nearest training images in "
           "pixel space, nearest first.")
train = data.x_train
neighbours = analysis.neighbours
show_grid(gallery.grid(gallery.neighbour_rows(heads[order[:rows]], train, neighbours[order[:rows]]), NEIGHBOURS + 1),
          f"{entry.path.name}-nearest-training-images")

st.subheader("Pick one to see it large")
rank = st.select_slider("Component, by rank (1 = explains most data)", options=list(range(1, K + 1)), value=1,
                        format_func=lambda r: f"#{r} · k={order[r - 1]}")
k = int(order[rank - 1])
st.markdown(f"Component **k = {k}** (rank {rank} of {K}) explains **{mean_resp[k]:.1%}** of the test set and is "
            f"the most likely component for {analysis.winners[k]} of {analysis.winners.sum()} test images.")
big = gallery.display_scale(config.input_shape, 160)
one, two, three = st.columns([1, 1, 3])
one.image(gallery.grid(heads[k : k + 1], 1, big), caption=what[:-1])
if pseudo:
    reconstruction = (analysis.reconstructions[k] if analysis.reconstructions is not None
                      else one_reconstruction(entry.path, device(), heads[k], f"{what[:-1]} {k}", container=two))
    if reconstruction is not None:
        two.image(gallery.grid(reconstruction[None], 1, big), caption="reconstruction")
distances = ", ".join(f"{d:.1f}" for d in analysis.distances[k][:4])
three.image(gallery.grid(train[neighbours[k]], NEIGHBOURS // 2, big // 2),
            caption=f"nearest training images (pixel distances {distances}, …)")
seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="pseudo_seed")
st.markdown(f"**Samples from this component**: z ~ {analysis.density}, decoded. "
            "They show how much variety one component covers.")
drawn = component_samples(entry.path, device(), k, 32, int(seed))
if drawn is not None:
    show_grid(gallery.grid(drawn, 16), f"{entry.path.name}-component-{k}-samples")
