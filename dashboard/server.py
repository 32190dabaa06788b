"""The dashboard's server: `streamlit run dashboard/server.py` (what `vampviz dashboard` runs)
serves dashboard/app.py and, while the first browser is still loading, imports what its first
page needs (dashboard/warmup.py). `streamlit run dashboard/app.py` runs the same app without that."""

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dashboard.warmup import lifespan  # noqa: E402

app = st.App("app.py", lifespan=lifespan)
