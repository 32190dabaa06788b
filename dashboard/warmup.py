"""Imports warmed at server start (dashboard/server.py), so the first page does not wait for them.

On a small CPU most of the first page's wait is two things: the browser loading Streamlit's
frontend, and the page script importing torch and the model library (seconds each). `lifespan`
starts `warm_imports` in a thread as soon as the server is up, so the two overlap; the page's own
imports then find the modules loaded (or wait for the thread's import to finish: Python's import
locks are per module).
"""

from __future__ import annotations

import importlib
import threading
from contextlib import asynccontextmanager

WARM_MODULES = ("torch", "pandas", "plotly.graph_objects", "dashboard.state", "dashboard.views",
                "dashboard.gallery")
THREAD_NAME = "vampviz-warm-imports"


def warm_imports(modules=WARM_MODULES) -> list[str]:
    """Import `modules` in order, stopping at the first that fails (the page imports it again and
    shows its error there); the names imported."""
    done = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - reported by the page that needs it, not here
            break
        done.append(name)
    return done


@asynccontextmanager
async def lifespan(_app):
    """st.App's lifespan: start the imports in a daemon thread, then serve."""
    threading.Thread(target=warm_imports, name=THREAD_NAME, daemon=True).start()
    yield
