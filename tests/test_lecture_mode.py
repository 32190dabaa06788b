"""Lecture mode: the sidebar toggle, its CSS, bigger figures, hidden controls that keep their values."""

from __future__ import annotations

import json
from pathlib import Path

import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots
from streamlit.testing.v1 import AppTest

from dashboard.state import LECTURE_CSS, figure_style

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "checkpoints"


def test_figure_style_enlarges_fonts_and_height_only_in_lecture_mode():
    fig = make_subplots(rows=1, cols=2, subplot_titles=["a", "b"])
    fig.add_trace(go.Scatter(x=[0], y=[0]), row=1, col=1)
    fig.update_layout(height=400)
    assert figure_style(fig, lecture=False).layout.font.size is None  # untouched
    styled = figure_style(fig, lecture=True)
    assert styled.layout.font.size >= 18 and styled.layout.height == 520
    assert styled.layout.xaxis.tickfont.size >= 15 and styled.layout.yaxis2.title.font.size >= 18
    assert all(a.font.size >= 18 for a in styled.layout.annotations)


def test_lecture_css_enlarges_the_root_font():
    assert "html { font-size:" in LECTURE_CSS and "h1" in LECTURE_CSS


@pytest.mark.skipif(not (SHIPPED / "digits-vae-vampprior" / "model.safetensors").exists(),
                    reason="shipped checkpoints missing")
def test_toggle_injects_css_hides_controls_and_persists_across_pages():
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.session_state["device"] = "cpu"
    at.run()
    assert not at.get("html") and [s.key for s in at.sidebar.selectbox] == ["checkpoint", "device"]

    at.toggle(key="lecture_mode").set_value(True).run()
    assert not at.exception
    assert any("font-size" in h.proto.body for h in at.get("html"))
    assert [s.key for s in at.sidebar.selectbox] == ["checkpoint"] and not at.sidebar.text_input
    assert at.session_state["device"] == "cpu"  # hidden, not forgotten

    for page in ("compare", "probe", "samples"):
        at.switch_page(f"../pages/{page}.py")
        at.run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert at.session_state["lecture_mode"] and at.get("html"), page
    at.switch_page("../pages/compare.py")
    at.run()
    assert not at.slider  # the samples' count and seed are not needed to show
    maps = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert maps["layout"]["font"]["size"] >= 18

    at.toggle(key="lecture_mode").set_value(False).run()
    assert not at.exception and not at.get("html")
    assert [s.key for s in at.sidebar.selectbox] == ["checkpoint", "device"] and at.sidebar.selectbox[1].value == "cpu"
    assert at.slider  # controls are back
