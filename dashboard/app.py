"""vampviz dashboard entry point: `streamlit run dashboard/app.py [-- --checkpoints DIR]`."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # Streamlit puts only dashboard/ on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import warmup  # noqa: E402
from dashboard.state import render_sidebar  # noqa: E402

st.set_page_config(page_title="vampviz", page_icon="🧛", layout="wide")

PAGES = [
    st.Page("../pages/models.py", title="Models", icon="📋", default=True),
    st.Page("../pages/pseudo_inputs.py", title="Pseudo-inputs", icon="🧩"),
    st.Page("../pages/latent_space.py", title="Latent space", icon="🗺️"),
    st.Page("../pages/active_units.py", title="Active units", icon="📊"),
    st.Page("../pages/prior_vs_posterior.py", title="Prior vs posterior", icon="⛰️"),
    st.Page("../pages/samples.py", title="Samples", icon="🖼️"),
    st.Page("../pages/compare.py", title="Compare priors", icon="⚖️"),
    st.Page("../pages/probe.py", title="Probe an image", icon="🔍"),
    st.Page("../pages/train.py", title="Train", icon="🏋️"),
    st.Page("../pages/replay.py", title="Training history", icon="📈"),
]

page = st.navigation(PAGES)
render_sidebar()
page.run()
warmup.start_model_check()  # once the first page is out: what the first model load imports
