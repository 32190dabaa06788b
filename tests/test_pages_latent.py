"""AppTests of the Latent space, Active units and Prior vs posterior pages on shipped checkpoints.

Each page must render without an exception and show the expected Plotly traces. The latent map
defaults to PCA (or the raw 2-D latent), so none of these tests may import umap.
"""

from __future__ import annotations

import base64
import sys

import numpy as np
import pytest

from tests.page_helpers import SHIPPED, figures, open_page
from vae_core import paths, projections

VAMPPRIOR, HVAE, TWO_D = "digits-vae-vampprior", "digits-hvae-vampprior", "digits-vae2d-vampprior"
N_TEST = 250  # the digits test split


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.CACHE_DIR_ENV, str(tmp_path / "cache"))


def values(data) -> np.ndarray:
    """A trace's x/y/z as numpy, whether Plotly wrote a list or a typed array (base64)."""
    if isinstance(data, dict) and "bdata" in data:
        array = np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"])
        shape = data.get("shape")
        return array.reshape([int(s) for s in str(shape).split(",")]) if shape else array
    return np.asarray(data)


def traces(figure: dict, prefix: str) -> list[dict]:
    return [t for t in figure["data"] if str(t.get("name", "")).startswith(prefix)]


@pytest.fixture
def no_umap(monkeypatch):
    """Fails a test whose page fits UMAP without being asked (PCA is the instant default)."""
    def refuse():
        raise AssertionError("the page fitted UMAP without being asked")

    monkeypatch.setattr(projections, "_umap", refuse)


# ---- Latent space -----------------------------------------------------------------------------


def test_latent_space_vampprior(no_umap):
    at = open_page("latent_space", VAMPPRIOR)
    assert next(r for r in at.radio if r.label == "Projection").value == "PCA"
    (fig,) = figures(at)
    labels = traces(fig, "label ")
    assert len(labels) == 10 and sum(len(values(t["x"])) for t in labels) == N_TEST
    (pseudo,) = traces(fig, "pseudo-inputs")
    assert pseudo["marker"]["symbol"] == "x-thin" and len(values(pseudo["x"])) == 100
    (prior,) = traces(fig, "prior samples")
    assert prior["marker"]["opacity"] < 1
    assert fig["layout"]["xaxis"]["title"]["text"] == "PC 1"
    # toggles hide the overlays; the index box picks an image below the map
    at.toggle[1].set_value(False).run()
    assert not traces(figures(at)[0], "prior samples")
    at.number_input(key="latent_index").set_value(17).run()
    assert not at.exception
    assert "#17" in at.get("image")[0].proto.imgs[0].caption


def test_latent_space_hvae_layers(no_umap):
    at = open_page("latent_space", HVAE)
    layer = next(r for r in at.radio if r.label == "Latent layer")
    assert layer.value == "z2"
    assert traces(figures(at)[0], "pseudo-inputs")
    layer.set_value("z1").run()
    assert not at.exception
    (fig,) = figures(at)
    assert [t["name"] for t in fig["data"]] == [f"label {d}" for d in range(10)]


def test_latent_space_two_dimensional_shows_the_raw_latent(no_umap):
    at = open_page("latent_space", TWO_D)
    assert next(r for r in at.radio if r.label == "Projection").value == "raw"
    (fig,) = figures(at)
    assert fig["layout"]["xaxis"]["title"]["text"] == "z₁"
    assert len(values(traces(fig, "pseudo-inputs")[0]["x"])) == 100


# ---- Active units -----------------------------------------------------------------------------


def test_active_units_vampprior():
    at = open_page("active_units", VAMPPRIOR)
    charts = figures(at)
    bar = charts[0]["data"][0]
    assert bar["type"] == "bar" and len(bar["x"]) == 20
    assert charts[0]["layout"]["shapes"][0]["y0"] == pytest.approx(0.01)
    assert at.metric[0].label == "Active units in z" and at.metric[0].value.endswith("/ 20")
    comparison = charts[-1]
    assert all(t["type"] == "scatter" for t in comparison["data"])
    assert any(t["name"] == f"{VAMPPRIOR} · z" for t in comparison["data"])
    table = at.dataframe[0].value
    assert VAMPPRIOR in set(table["checkpoint"]) and "active in z" in table.columns
    at.number_input[0].set_value(1e9).run()  # nothing is that active
    assert at.metric[0].value == "0 / 20"


def test_active_units_hvae_has_a_chart_per_layer():
    at = open_page("active_units", HVAE)
    bars = [f["data"][0] for f in figures(at) if f["data"][0]["type"] == "bar"]
    assert [len(b["x"]) for b in bars] == [20, 20]
    assert [m.label for m in at.metric] == ["Active units in z1", "Active units in z2"]


# ---- Prior vs aggregated posterior -----------------------------------------------------------


def test_prior_vs_posterior_two_dimensional_contour():
    at = open_page("prior_vs_posterior", TWO_D)
    contour_figure = figures(at)[0]
    (contour,) = [t for t in contour_figure["data"] if t["type"] == "contour"]
    assert values(contour["z"]).shape == (150, 150)
    assert sum(len(values(t["x"])) for t in traces(contour_figure, "label ")) == 8 * N_TEST
    assert at.metric[0].value.endswith("nats")
    manifold, marginals, log_probs = figures(at)[1:]
    assert [t["type"] for t in manifold["data"]] == ["heatmap", "contour"]  # decoded images under log p(z)
    assert values(manifold["data"][0]["z"]).shape == (15 * 8, 15 * 8)  # 15 x 15 decoded 8x8 digits
    assert manifold["layout"]["xaxis"]["title"]["text"] == "z₁"
    assert len(marginals["data"]) == 4 and len(log_probs["data"]) == 2


def test_prior_vs_posterior_hvae_is_about_z2():
    at = open_page("prior_vs_posterior", HVAE)
    charts = figures(at)
    assert not any(t["type"] == "contour" for f in charts for t in f["data"])
    assert len(charts[0]["data"]) == 16 and all(t["type"] == "histogram" for t in charts[0]["data"])
    assert charts[0]["layout"]["annotations"][0]["text"].startswith("z2[")
    assert len(charts[1]["data"]) == 2


# ---- every shipped checkpoint ---------------------------------------------------------------


@pytest.mark.parametrize("page", ["latent_space", "active_units", "prior_vs_posterior"])
def test_every_shipped_checkpoint_renders(page, no_umap):
    """Standard and mixture priors too: a missing piece is explained, never an exception."""
    names = sorted(p.name for p in SHIPPED.glob("*/") if (p / "model.safetensors").exists())
    if not names:
        pytest.skip("checkpoints/ is empty: run `bash checkpoints/make_checkpoints.sh` first")
    for name in names:
        at = open_page(page, name)
        assert at.get("plotly_chart"), f"{name}: {page} drew no chart"
        if page == "latent_space" and "standard" in name:
            (fig,) = figures(at)
            assert not traces(fig, "pseudo-inputs") and traces(fig, "prior samples")


def test_lecture_mode_enlarges_figures_and_hides_the_sample_slider():
    at = open_page("prior_vs_posterior", VAMPPRIOR)
    assert at.slider
    at.toggle(key="lecture_mode").set_value(True).run()
    assert not at.exception and not at.slider
    assert figures(at)[0]["layout"]["font"]["size"] >= 18
    for page in ("latent_space", "active_units"):
        at.switch_page(f"../pages/{page}.py")
        at.run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert figures(at)[0]["layout"]["font"]["size"] >= 18
