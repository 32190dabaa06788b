"""Imports warmed at server start (dashboard/server.py), so the first pages do not wait for them.

On a small CPU most of the first page's wait is two things: the browser loading Streamlit's
frontend, and the page script importing torch and the model library (seconds each; the emoji
catalogue that the first page's icons look up, a tenth of one). `lifespan`
starts `warm_imports` in a thread as soon as the server is up, so the two overlap; the page's own
imports then find the modules loaded (or wait for the thread's import to finish: Python's import
locks are per module). Once the first page has run, `start_model_check` warms what the first
model load needs (`warm_model_check`).
"""

from __future__ import annotations

import importlib
import threading
from contextlib import asynccontextmanager

WARM_MODULES = ("streamlit.emojis", "torch", "pandas", "plotly.graph_objects", "dashboard.state", "dashboard.views",
                "dashboard.gallery")
THREAD_NAME = "vampviz-warm-imports"
MODEL_CHECK_THREAD = "vampviz-warm-model-check"


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


def warm_model_check() -> None:
    """Check a tiny model's weights as loading a checkpoint does, on the meta device: the first such
    build in a process makes torch import sympy, dynamo and more for its random initialisation
    (2.4 s here), which the first page does not need but the first page that loads a model would."""
    from vae_core.checkpoint import expected_tensors
    from vae_core.config import ModelConfig

    expected_tensors(ModelConfig(input_shape=(1, 2, 2), latent_dim=1, hidden=1, components=1))


_model_check = threading.Lock()  # held for good by the first `start_model_check`


# After the first page's script, the browser draws it for about another second; the model check's
# imports started at once took a core from it (page drawn 4.9 s after health instead of 4.4, measured).
MODEL_CHECK_DELAY = 1.0


def start_model_check() -> None:
    """Start `warm_model_check` in a daemon thread, MODEL_CHECK_DELAY seconds from now, once per
    process. app.py calls it after its first page has run: started with the imports, it slowed that
    page by more than a second."""
    if _model_check.acquire(blocking=False):
        timer = threading.Timer(MODEL_CHECK_DELAY, _warm_model_check_quietly)
        timer.name, timer.daemon = MODEL_CHECK_THREAD, True
        timer.start()


def _warm_model_check_quietly() -> None:
    try:
        warm_model_check()
    except Exception:  # noqa: BLE001 - the page that loads a model reports its own errors
        pass


@asynccontextmanager
async def lifespan(_app):
    """st.App's lifespan: start the imports in a daemon thread, then serve."""
    threading.Thread(target=warm_imports, name=THREAD_NAME, daemon=True).start()
    yield
