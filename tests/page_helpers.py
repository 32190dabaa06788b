"""Helpers shared by the AppTests of the dashboard pages (they run the real app on shipped checkpoints)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from vae_core import embedded

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "checkpoints"


def shipped(name: str) -> Path:
    """A shipped checkpoint's folder; skips when checkpoints/ is empty, fails when just this one is missing."""
    if not any((p / "config.json").exists() for p in SHIPPED.glob("*/")):
        pytest.skip("checkpoints/ holds no checkpoint: run `bash checkpoints/make_checkpoints.sh` first")
    path = SHIPPED / name
    assert (path / "model.safetensors").exists(), f"shipped checkpoint {name} is missing"
    return path


def shipped_paper_checkpoints(*required: str) -> list[str]:
    """Names of the shipped paper checkpoints, sorted: the folders of checkpoints/ that carry an
    embedded sample (`vampviz embed-sample`), and every file named in `required` too (e.g.
    "metrics.json"). Empty when none is shipped: callers skip."""
    return sorted(p.name for p in SHIPPED.glob("*/")
                  if all((p / name).exists() for name in (embedded.SAMPLE_FILE, *required)))


def open_page(page: str | None = None, checkpoint: str | None = None, checkpoint_path: str | None = None,
              query: dict[str, str] | None = None, **state) -> AppTest:
    """Run the app (on `page`, else the default page) with a checkpoint and session state preset:
    `checkpoint` names a shipped one, `checkpoint_path` is any folder (with `user_dir` above it);
    `query` holds the address's query parameters."""
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    if checkpoint or checkpoint_path:
        at.session_state["checkpoint"] = checkpoint_path or str(shipped(checkpoint))
    for key, value in state.items():
        at.session_state[key] = value
    if page:
        at.switch_page(f"../pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def figures(at: AppTest) -> list[dict]:
    """Every Plotly chart on the page as its figure JSON."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def image_count(at: AppTest) -> int:
    return sum(len(image.proto.imgs) for image in at.image)
