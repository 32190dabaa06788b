"""Compare priors: two to four checkpoints of one dataset, metrics, samples, latent maps, active units."""

import streamlit as st

from dashboard import activity, compare, gallery
from dashboard.loaders import evaluation_data, test_posterior_means
from dashboard.state import device, entries, image_scale, lecture_mode, plotly_chart
from dashboard.views import computed_metrics, pca_map, prior_samples, show_grid
from vae_core.errors import VampvizError
from vae_core.evaluate import ACTIVE_UNIT_THRESHOLD, unit_activity

# the paper's static-MNIST models first, then the small digits ones
DEFAULTS = ("mnist-static-vae-standard", "mnist-static-vae-vampprior", "mnist-static-hvae-standard",
            "mnist-static-hvae-vampprior", "digits-vae-standard", "digits-vae-mog", "digits-vae-vampprior",
            "digits-vae-vampprior-data")


st.title("⚖️ Compare priors")
st.markdown(
    "Tomczak & Welling's claim is that replacing the standard normal prior N(0, I) by the VampPrior, a mixture "
    "of the encoder's posteriors at learned pseudo-inputs, gives a **higher test log-likelihood**, **more active "
    "latent units** (fewer dimensions collapse to the prior) and **sharper samples**, because the prior is "
    "learned to match the aggregated posterior q(z) = (1/N) Σ_n q(z|x_n) instead of forcing the codes towards "
    "one Gaussian. Pick two to four checkpoints of the same dataset: the table puts their test metrics side by "
    "side with the best of each column in **green**, and below it you see their samples (same seed), their "
    "latent maps (same axis range, so spreads compare) and their active units on one chart. Under the table, "
    "notes say honestly where these numbers show the claim and where they do not.")

found = [e for e in entries() if e.ready]
by_path = {str(e.path): e for e in found}
current = by_path.get(st.session_state.get("checkpoint"))
shipped = sorted((p for p, e in by_path.items() if e.path.name in DEFAULTS), key=lambda p: DEFAULTS.index(by_path[p].path.name))
by_dataset: dict[str, list[str]] = {}
for p in shipped:
    by_dataset.setdefault(by_path[p].info.config.dataset, []).append(p)
default = next((g for g in by_dataset.values() if len(g) >= 2), [])[:compare.MAX_MODELS]  # the first with a pair
if len(default) < 2 and current is not None:  # no shipped set: the current checkpoint and its dataset's first others
    default = [p for p, e in by_path.items() if e.info.config.dataset == current.info.config.dataset][:4]
picked = st.session_state.get("compare_checkpoints", default)
st.session_state["compare_checkpoints"] = [p for p in picked if p in by_path][:compare.MAX_MODELS]  # gone ones dropped
chosen = st.multiselect("Checkpoints to compare (two to four, same dataset)", list(by_path), key="compare_checkpoints",
                        max_selections=compare.MAX_MODELS, format_func=lambda p: f"{by_path[p].path.name} · {by_path[p].label}")
if len(chosen) < 2:
    st.info("Pick at least two checkpoints to compare.")
    st.stop()
chosen_entries = [by_path[p] for p in chosen]
names = [e.path.name if [x.path.name for x in chosen_entries].count(e.path.name) == 1 else str(e.path)
         for e in chosen_entries]
refusal = compare.mixed_datasets_message({n: e.info.config.dataset for n, e in zip(names, chosen_entries)})
if refusal:
    st.error(refusal)
    st.stop()
dataset, dev = chosen_entries[0].info.config.dataset, device()
try:  # every model is measured on the same images: those of the first checkpoint
    data = evaluation_data(chosen_entries[0].path)
except VampvizError as error:
    st.error(f"The {dataset} test images are needed to compare these models: {error}")
    st.stop()

# ---- the table ------------------------------------------------------------------------------
rows = []
for name, e in zip(names, chosen_entries):
    keys = tuple(compare.missing_metrics(e.info.metrics))
    computed = computed_metrics(e.path, dev, keys) if keys else None
    rows.append(compare.metrics_row(name, e.info.config, e.info.metrics, computed))
table = compare.comparison_table(rows)
st.subheader("Test metrics")
all_stored = (table["source"] == "metrics.json").all()  # then the column says nothing: the caption says it
hidden = {"family"} | ({"source", "latent"} if lecture_mode() else {"source"} if all_stored else set())
binary = all(e.info.config.likelihood == "bernoulli" for e in chosen_entries)  # entropy = blur only then
st.dataframe(compare.styled_table(table, binary), hide_index=True, width="stretch", placeholder="—",
             column_order=[c for c in table.columns if c not in hidden])
st.caption(("Every figure from the checkpoints' metrics.json (evaluate, on their test sets). " if all_stored else
            f"Figures missing from metrics.json are computed here on {data.description}. ")
           + "Test LL: importance-sampled log p(x) in nats; "
           "ELBO and KL: E_q[log p(x|z)] − KL and E_q[log q(z|x) − log p(z)] (KL is a trade-off, not a score, so it is "
           f"not highlighted); active units: dimensions with Cov_x E[z_d|x] > {ACTIVE_UNIT_THRESHOLD} (all layers); "
           "KL(q(z)‖p(z)): how far the aggregated posterior is from the prior; H samples: the decoder's entropy "
           "H[p(x|z)] at draws z from the prior, in nats per image (for binary pixels, lower is sharper). "
           "Green: the best of the column.")
for note in compare.claim_notes(table, binary):
    st.markdown(note)

# ---- samples --------------------------------------------------------------------------------
st.subheader("Samples from each prior")
n, seed = 36, 0
if not lecture_mode():
    a, b = st.columns(2)
    n = a.slider("Samples per model", 9, 100, 36, step=1, key="compare_n")
    seed = int(b.number_input("Seed", 0, 2**31 - 1, 0, key="compare_seed"))
scale = image_scale(gallery.display_scale(chosen_entries[0].info.config.input_shape, 48))
for column, name, e in zip(st.columns(len(chosen_entries)), names, chosen_entries):
    column.markdown(f"**{name}**")
    samples = prior_samples(e.path, dev, n, seed, container=column)  # None while an autoregressive one draws
    if samples is not None:
        show_grid(gallery.grid(samples, gallery.columns_for(n), scale), f"{e.path.name}-samples-seed{seed}",
                  container=column)

# ---- latent maps ----------------------------------------------------------------------------
st.subheader("Latent maps on the same scale")
maps = {name: pca_map(e.path, dev, images_of=chosen_entries[0].path) for name, e in zip(names, chosen_entries)}
plotly_chart(compare.latent_maps_figure(maps, data.y_test, components_name="prior components (×)"))
st.caption(f"On {data.description}.")
st.caption("Each panel: the PCA of one model's test posterior means on its prior's layer (z2 for an HVAE), coloured by "
           "label, with the prior's component means as black ×. All panels share one axis range, so a model whose "
           "codes spread wider really does use more of its latent space. PCA axes of different models are unrelated: "
           "compare spreads and clusters, not directions.")

# ---- active units ---------------------------------------------------------------------------
st.subheader("Active units")
activities = {}
for name, e in zip(names, chosen_entries):
    stored = e.info.metrics.get("unit_activity")
    activities[name] = stored or unit_activity(test_posterior_means(str(e.path), dev))
plotly_chart(activity.activity_curves_figure(compare.activity_curves(activities), ACTIVE_UNIT_THRESHOLD, log_y=True))
st.caption("Each line: one model's latent dimensions sorted from most to least active (log scale); the ones above "
           "the dashed line count as active. A line that drops below it early means collapsed units.")
