"""Active units: which latent dimensions carry information about the input."""

import pandas as pd
import streamlit as st

from dashboard import latent
from dashboard.loaders import test_posterior_means
from dashboard.state import device, entries, plotly_chart, require_entry
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
    "Below: the activity of every dimension of the selected model, sorted, and the same curve for several models."
)

left, right = st.columns(2)
threshold = left.number_input("Threshold on Cov_x(E_q[z_d])", min_value=0.0, value=ACTIVE_UNIT_THRESHOLD,
                              step=0.005, format="%.4f", help="Burda et al. use 0.01.")
log_y = right.toggle("Logarithmic y axis", value=True,
                     help="Inactive units have activities near 0: a log axis shows how near.")

activity = unit_activity(test_posterior_means(str(entry.path), dev))
metric_columns = st.columns(len(activity))
for column, (layer, values) in zip(metric_columns, activity.items()):
    column.metric(f"Active units in {layer}", f"{int((values > threshold).sum())} / {len(values)}")
for layer, values in activity.items():
    plotly_chart(latent.activity_bar_figure(values, threshold, layer, log_y))

st.subheader("Compare models")
same_data = [e for e in entries() if e.info is not None and e.info.config.dataset == config.dataset]
names = {str(e.path): e.path.name for e in same_data}
chosen = st.multiselect(f"Checkpoints trained on {config.dataset}", list(names), default=list(names),
                        format_func=names.get)
if not chosen:
    st.info("Pick one or more checkpoints to compare their activity curves.")
    st.stop()
activities = {names[p]: unit_activity(test_posterior_means(p, dev)) for p in chosen}
curves = {f"{name} · {layer}": values for name, layers in activities.items() for layer, values in layers.items()}
plotly_chart(latent.activity_curves_figure(curves, threshold, log_y))
st.caption("Each line is one layer of one model, its units sorted from most to least active; "
           "units above the dashed line count as active.")
st.dataframe(pd.DataFrame(latent.active_unit_table(activities, threshold)), hide_index=True, placeholder="—")
