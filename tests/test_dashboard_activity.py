"""dashboard.activity: activity bars, curves, tables and units over training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dashboard import activity as act
from vae_core import paths
from vae_core.config import ModelConfig
from vae_core.models import build_model


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """Every test gets its own cache folder: nothing is written under the real home."""
    monkeypatch.setenv(paths.CACHE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def points():
    return np.random.default_rng(0).normal(size=(120, 6)).astype(np.float32)


def tiny_model(prior="vampprior", latent_dim=2, components=5, model="vae", seed=0):
    torch.manual_seed(seed)
    config = ModelConfig(model=model, prior=prior, input_shape=(1, 8, 8), latent_dim=latent_dim,
                         latent_dim_z1=3, hidden=16, components=components)
    return build_model(config).eval()


def images(n=40, seed=0):
    return np.random.default_rng(seed).random((n, 1, 8, 8)).astype(np.float32)


@pytest.mark.parametrize("log_y", [True, False])
def test_activity_bars_sorted_coloured_and_thresholded(log_y):
    activity = np.array([0.5, 1e-4, 0.02, 0.0, 0.009, 1.3])
    fig = act.activity_bar_figure(activity, threshold=0.01, layer="z", log_y=log_y)
    (bar,) = [t for t in fig.data if t.type == "bar"]
    assert len(bar.x) == len(activity)
    assert list(bar.x) == ["z[5]", "z[0]", "z[2]", "z[4]", "z[1]", "z[3]"]
    values = np.asarray(bar.customdata)[:, 0]
    assert np.all(np.diff(values) <= 0), "sorted, most active first"
    assert list(bar.marker.color) == [act.ACTIVE_COLOUR] * 3 + [act.INACTIVE_COLOUR] * 3
    (line,) = fig.layout.shapes
    assert line.y0 == line.y1 == 0.01
    assert fig.layout.yaxis.type == ("log" if log_y else "linear")
    assert "3 of 6" in fig.layout.title.text


def test_activity_curves_and_table():
    activities = {"a": {"z": np.array([0.1, 0.001, 0.5])},
                  "b": {"z1": np.array([0.2, 0.3]), "z2": np.array([0.0, 0.05])}}
    curves = {f"{m} · {layer}": v for m, layers in activities.items() for layer, v in layers.items()}
    fig = act.activity_curves_figure(curves, threshold=0.01)
    assert [t.name for t in fig.data] == list(curves)
    assert list(fig.data[0].y) == pytest.approx([0.5, 0.1, 0.001])
    assert fig.layout.shapes[0].y0 == 0.01
    rows = act.active_unit_table(activities, threshold=0.01)
    assert rows[0] == {"checkpoint": "a", "active in z": 2, "active in z1": None, "active in z2": None,
                       "latent sizes": "z=3"}
    assert rows[1]["active in z1"] == 2 and rows[1]["active in z2"] == 1

