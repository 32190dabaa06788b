"""Active units: which latent dimensions carry information about the input, and when they switch off."""

import pandas as pd
import streamlit as st

from dashboard import activity
from dashboard.loaders import test_posterior_means
from dashboard.state import device, entries, plotly_chart, require_data, require_entry
from vae_core.evaluate import ACTIVE_UNIT_THRESHOLD, unit_activity

entry = require_entry()
config = entry.info.config
dev = device()
st.title("📊 Active units")
st.markdown(
    "A latent dimension z_d is **active** when its posterior mean changes with the input: Burda et al. (2016) "
    "measure its *activity* as the variance over the data of E_q[z_d | x], Cov_x(E_q[z_d]), and call the unit "
    "active when it exceeds 0.01. An inactive unit has collapsed to the prior (q(z_d|x) ≈ p(z_d) for every x): "
    "it costs no KL but carries no information, so the model effectively has fewer latent dimensions "
    "(*posterior collapse*). Tomczak & Welling report that the VampPrior leaves **more units active** than the "
    "standard normal prior, because a prior fitted to the aggregated posterior penalises using a dimension less. "
    "Below: how many units each model kept active **as training went on**, the activity of every dimension of "
    "the selected model, and the same curve for several models."
)

same_data = [e for e in entries() if e.ready and e.info.config.dataset == config.dataset]
names = {str(e.path): e.path.name for e in same_data}
chosen = st.multiselect(f"Checkpoints trained on {config.dataset}", list(names), default=list(names),
                        format_func=names.get, key=f"active_units_models_{config.dataset}")
chosen_entries = [e for e in same_data if str(e.path) in chosen]

st.subheader("Active units over training")
histories = {e.path.name: e.info.history for e in chosen_entries}
if any(activity.units_over_training(h)[0] for h in histories.values()):
    sizes = {e.path.name: sum(e.info.config.latent_sizes.values()) for e in chosen_entries}
    plotly_chart(activity.activity_history_figure(histories, sizes))
    st.caption("Counted after every epoch on up to 1,000 validation images. While the KL weight β warms up "
               "(hover for β), units are cheap; as β reaches 1 the standard prior's KL term pushes unused "
               "dimensions onto the prior and they switch off. The dotted lines are the latent sizes.")
else:
    st.info("These checkpoints' histories do not record active units per epoch (older runs); "
            "train with this version of vampviz to see them.")

st.subheader(f"{entry.path.name}: activity of each dimension")
require_data(entry)  # says which images the activities are measured on
left, right = st.columns(2)
threshold = left.number_input("Threshold on Cov_x(E_q[z_d])", min_value=0.0, value=ACTIVE_UNIT_THRESHOLD,
                              step=0.005, format="%.4f", help="Burda et al. use 0.01.")
log_y = right.toggle("Logarithmic y axis", value=True,
                     help="Inactive units have activities near 0: a log axis shows how near.")

activities_here = unit_activity(test_posterior_means(str(entry.path), dev))
metric_columns = st.columns(len(activities_here))
for column, (layer, values) in zip(metric_columns, activities_here.items()):
    column.metric(f"Active units in {layer}", f"{int((values > threshold).sum())} / {len(values)}")
for layer, values in activities_here.items():
    plotly_chart(activity.activity_bar_figure(values, threshold, layer, log_y))

st.subheader("Compare models")
if not chosen_entries:
    st.info("Pick one or more checkpoints above to compare their activity curves.")
    st.stop()
activities = {}
for e in chosen_entries:
    stored = e.info.metrics.get("unit_activity")  # the full test set's, from evaluate
    activities[e.path.name] = stored or unit_activity(test_posterior_means(str(e.path), dev))
curves = {f"{name} · {layer}": values for name, layers in activities.items() for layer, values in layers.items()}
plotly_chart(activity.activity_curves_figure(curves, threshold, log_y))
st.caption("Each line is one layer of one model, its units sorted from most to least active; "
           "units above the dashed line count as active (from each checkpoint's metrics.json where it has them).")
st.dataframe(pd.DataFrame(activity.active_unit_table(activities, threshold)), hide_index=True, placeholder="—")
