"""Unit tests of dashboard/gallery.py: figures, image grids and computations, without Streamlit."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from dashboard import gallery
from vae_core.config import ModelConfig
from vae_core.models import build_model


def _history(epochs=5, with_beta=True):
    return [{"epoch": e, **({"beta": min(1.0, e / 3)} if with_beta else {}),
             "train_loss": 50.0 - e, "val_loss": 51.0 - e, "train_reconstruction": -40.0 + e,
             "val_reconstruction": -41.0 + e, "train_kl": 5.0 + e, "val_kl": 5.5 + e} for e in range(1, epochs + 1)]


def _figure_json(fig) -> dict:
    return json.loads(fig.to_json())


@pytest.fixture(scope="module")
def tiny_models():
    """Untrained tiny 8x8 models: a VampPrior VAE, a mog VAE, a standard HVAE and a VampPrior HVAE."""
    torch.manual_seed(0)
    common = dict(dataset="digits", input_shape=(1, 8, 8), latent_dim=3, latent_dim_z1=2, hidden=8, components=5)
    return {name: build_model(ModelConfig(model=model, prior=prior, **common)).eval()
            for name, model, prior in [("vamp", "vae", "vampprior"), ("mog", "vae", "mog"),
                                       ("hvae", "hvae", "standard"), ("hvae-vamp", "hvae", "vampprior")]}


# -------------------------------------------------------------------------------- Models page

def test_models_table_splits_broken_rows():
    rows = [{"checkpoint": "a", "dataset": "digits", "model": "VAE", "prior": "vampprior", "K": 100,
             "latent": "z=20", "epochs": 3, "test LL": -20.0, "ELBO": -21.0, "active units": "z=12", "error": None},
            {"checkpoint": "bad", "error": "config.json is corrupt"},
            {"checkpoint": "new", "error": None, "pending": "training: no weights yet"}]
    table, broken, pending = gallery.models_table(rows)
    assert list(table.columns) == gallery.TABLE_COLUMNS
    assert table["checkpoint"].tolist() == ["a"] and table.loc[0, "test LL"] == -20.0
    assert broken == [("bad", "config.json is corrupt")] and pending == [("new", "training: no weights yet")]
    empty, none, nothing = gallery.models_table([])
    assert empty.empty and list(empty.columns) == gallery.TABLE_COLUMNS and none == nothing == []


@pytest.mark.parametrize("quantity", list(gallery.CURVES))
def test_training_curve_has_train_val_and_beta(quantity):
    spec = _figure_json(gallery.training_curve_figure(_history(), quantity))
    traces = spec["data"]
    assert [t["type"] for t in traces] == ["scatter"] * 3
    assert [t["name"] for t in traces] == ["train", "validation", "β (KL warm-up)"]
    assert traces[0]["y"] == [h[f"train_{quantity}"] for h in _history()]
    assert traces[2]["yaxis"] == "y2" and traces[2]["y"][-1] == 1.0
    layout = spec["layout"]
    assert layout["xaxis"]["title"]["text"] == "epoch"
    assert layout["yaxis"]["title"]["text"] == gallery.CURVES[quantity][1]
    assert layout["yaxis2"]["title"]["text"] == "β" and layout["yaxis2"]["overlaying"] == "y"


def test_training_curve_without_beta_or_validation():
    history = [{k: v for k, v in h.items() if not k.startswith("val")} for h in _history(with_beta=False)]
    traces = _figure_json(gallery.training_curve_figure(history, "kl"))["data"]
    assert [t["name"] for t in traces] == ["train"]
    with pytest.raises(AssertionError, match="quantity"):
        gallery.training_curve_figure(history, "accuracy")


def test_metric_tiles_from_metrics_and_missing_keys():
    metrics = {"log_likelihood": -20.123, "log_likelihood_stderr": 0.2, "elbo": -21.0, "reconstruction": -15.0,
               "kl": 6.0, "active_units": {"z1": 3, "z2": 7}, "unit_activity": {"z1": [1] * 4, "z2": [1] * 9},
               "aggregated_posterior_kl": 1.5, "samples": 5000}
    tiles = dict((label, value) for label, value, _ in gallery.metric_tiles(metrics, 42))
    assert tiles["test log-likelihood"] == "-20.12 ± 0.20"
    assert tiles["active units (z1)"] == "3 / 4" and tiles["active units (z2)"] == "7 / 9"
    assert tiles["epochs"] == "42" and tiles["ELBO"] == "-21.00"
    assert [label for label, _, _ in gallery.metric_tiles({}, 3)] == ["epochs"]
    with_paper = gallery.metric_tiles(metrics, 42, paper=(-19.5, "a source"))  # beside ours, with its source
    assert [label for label, _, _ in with_paper][:2] == ["test log-likelihood", "the paper's test LL"]
    assert with_paper[1][1] == "-19.50" and "a source" in with_paper[1][2]


# -------------------------------------------------------------------------------- responsibilities

def test_responsibility_ordering_on_a_hand_built_mixture():
    # three well-separated unit Gaussians; 6 points at component 1, 3 at component 2, 1 at component 0
    comp_means = np.array([[0.0, 0.0], [10.0, 10.0], [-10.0, 0.0]])
    comp_logvars = np.zeros_like(comp_means)
    rng = np.random.default_rng(0)
    points = np.concatenate([comp_means[[1] * 6 + [2] * 3 + [0]]]) + 0.1 * rng.standard_normal((10, 2))
    r = gallery.component_responsibilities(points, comp_means, comp_logvars)
    assert r.shape == (10, 3)
    np.testing.assert_allclose(r.sum(1), 1.0)
    assert (r.argmax(1) == np.array([1] * 6 + [2] * 3 + [0])).all()
    mean = gallery.mean_responsibilities(points, comp_means, comp_logvars)
    np.testing.assert_allclose(mean, [0.1, 0.6, 0.3], atol=1e-6)
    assert gallery.component_order(mean).tolist() == [1, 2, 0]


def test_responsibilities_respect_component_variances():
    # a point halfway between two means goes to the wider component
    r = gallery.component_responsibilities(np.array([[1.0]]), np.array([[0.0], [2.0]]),
                                           np.log(np.array([[4.0], [0.25]])))
    assert r[0, 0] > r[0, 1]


def test_component_order_is_stable_for_ties():
    assert gallery.component_order([0.2, 0.4, 0.2, 0.2]).tolist() == [1, 0, 2, 3]


def test_responsibility_figure_is_sorted_with_hover():
    mean = np.array([0.1, 0.6, 0.3])
    spec = _figure_json(gallery.responsibility_figure(mean))
    (bar,) = spec["data"]
    assert bar["type"] == "bar" and bar["x"] == [1, 2, 3]
    np.testing.assert_allclose(bar["y"], [0.6, 0.3, 0.1])
    assert [row[0] for row in bar["customdata"]] == [1, 2, 0]  # component index per rank
    assert "component %{customdata[0]}" in bar["hovertemplate"]
    assert spec["layout"]["xaxis"]["title"]["text"].startswith("component rank")
    assert spec["layout"]["yaxis"]["title"]["text"].startswith("mean responsibility")


# -------------------------------------------------------------------------------- neighbours, grids

def test_nearest_neighbours_match_brute_force():
    rng = np.random.default_rng(1)
    queries, data = rng.random((7, 1, 4, 4)), rng.random((50, 1, 4, 4))
    index, distances = gallery.nearest_neighbours(queries, data, 5)
    assert index.shape == distances.shape == (7, 5)
    for q in range(7):
        brute = np.array([np.linalg.norm(queries[q] - d) for d in data])
        assert index[q].tolist() == np.argsort(brute)[:5].tolist()
        np.testing.assert_allclose(distances[q], np.sort(brute)[:5], rtol=1e-6)
    chunked = gallery.nearest_neighbours(queries, data, 5, chunk=8)  # 7 chunks, the last one short
    np.testing.assert_array_equal(chunked[0], index) and np.testing.assert_allclose(chunked[1], distances)
    assert gallery.nearest_neighbours(queries, data[:3], 5)[0].shape == (7, 3)
    index, distances = gallery.nearest_neighbours(data[:2], data, 1)  # a point is its own nearest
    assert index[:, 0].tolist() == [0, 1] and np.allclose(distances, 0, atol=1e-6)


def test_nearest_neighbours_break_ties_by_index_like_a_stable_sort():
    rng = np.random.default_rng(2)
    queries, data = rng.integers(0, 2, (9, 1, 3, 3)), rng.integers(0, 2, (60, 1, 3, 3))  # many equal distances
    for count, chunk in ((1, 4096), (7, 4096), (7, 16), (60, 25)):
        index, _ = gallery.nearest_neighbours(queries, data, count, chunk=chunk)
        squared = ((queries.reshape(9, 1, -1) - data.reshape(1, 60, -1)) ** 2).sum(-1)
        assert index.tolist() == np.argsort(squared, axis=1, kind="stable")[:, :count].tolist(), (count, chunk)
    assert gallery.nearest_neighbours(queries, data, 0)[0].shape == (9, 0)


def test_grid_shapes_and_scale():
    images = np.random.default_rng(0).random((10, 1, 8, 8))
    assert gallery.display_scale((1, 8, 8)) == 8 and gallery.display_scale((1, 28, 28)) == 2
    grid = gallery.grid(images, columns=5)  # scale 8, padding 4: 2 rows x 5 columns of 64px tiles
    assert grid.dtype == np.uint8 and grid.shape == (2 * 68 + 4, 5 * 68 + 4)
    assert gallery.grid(images, columns=10, scale=1).shape == (10, 91)
    rgb = gallery.grid(np.random.default_rng(0).random((4, 3, 8, 8)), columns=2, scale=2)
    assert rgb.shape == (2 * 17 + 1, 2 * 17 + 1, 3)


def test_neighbour_rows_put_the_head_first():
    heads = np.zeros((2, 1, 2, 2))
    data = np.arange(5, dtype=float)[:, None, None, None] * np.ones((5, 1, 2, 2))
    rows = gallery.neighbour_rows(heads, data, np.array([[4, 3], [1, 0]]))
    assert rows.shape == (6, 1, 2, 2)
    assert rows[:, 0, 0, 0].tolist() == [0, 4, 3, 0, 1, 0]


def test_interleave_rows_alternates_and_pads():
    top, bottom = np.zeros((5, 1, 2, 2)), np.full((5, 1, 2, 2), 0.5)
    out = gallery.interleave_rows(top, bottom, columns=3)
    assert out.shape == (12, 1, 2, 2)
    assert out[:, 0, 0, 0].tolist() == [0, 0, 0, 0.5, 0.5, 0.5, 0, 0, 1, 0.5, 0.5, 1]


def test_with_ends_and_columns_for():
    strip = gallery.with_ends(np.zeros((1, 2, 2)), np.full((3, 1, 2, 2), 0.5), np.ones((1, 2, 2)))
    assert strip.shape == (5, 1, 2, 2) and strip[0].max() == 0 and strip[-1].min() == 1
    assert [gallery.columns_for(n) for n in (1, 10, 64, 1000)] == [1, 4, 8, 16]


def test_other_class_index():
    labels = np.array([3, 3, 5, 3])
    assert gallery.other_class_index(labels, 0) == 2
    assert gallery.other_class_index(labels, 2) == 3  # any label other than 5
    assert gallery.other_class_index(np.array([1, 1]), 0) == 1  # all equal: the next one
    assert gallery.other_class_index(None, 4) == 5


def test_interpolate_includes_both_ends():
    path = gallery.interpolate([0.0, 0.0], [1.0, 2.0], 5)
    assert path.shape == (5, 2) and path.dtype == np.float32
    np.testing.assert_allclose(path[0], [0, 0]) and np.testing.assert_allclose(path[-1], [1, 2])
    np.testing.assert_allclose(path[2], [0.5, 1.0])
    with pytest.raises(AssertionError):
        gallery.interpolate([0.0], [1.0], 1)


# -------------------------------------------------------------------------------- model computations

def test_prior_components(tiny_models):
    means, logvars = gallery.prior_components(tiny_models["vamp"])
    assert means.shape == logvars.shape == (5, 3)
    assert gallery.prior_components(tiny_models["mog"])[0].shape == (5, 3)
    assert gallery.prior_components(tiny_models["hvae"]) is None


@pytest.mark.parametrize("name", ["vamp", "mog", "hvae", "hvae-vamp"])
def test_samples_are_seeded_images(tiny_models, name):
    model = tiny_models[name]
    a, b = gallery.prior_samples(model, 6, seed=3), gallery.prior_samples(model, 6, seed=3)
    assert a.shape == (6, 1, 8, 8) and a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, gallery.prior_samples(model, 6, seed=4))
    z = gallery.interpolate(np.zeros(3), np.ones(3), 4)  # the prior's layer is 3-D for all four
    assert gallery.decode(model, z).shape == (4, 1, 8, 8)
    assert gallery.reconstruct(model, np.random.default_rng(0).random((2, 1, 8, 8))).shape == (2, 1, 8, 8)


@pytest.mark.parametrize("name", ["vamp", "mog", "hvae-vamp"])
def test_component_samples(tiny_models, name):
    model = tiny_models[name]
    a = gallery.component_samples(model, 2, 4, seed=0)
    assert a.shape == (4, 1, 8, 8)
    np.testing.assert_array_equal(a, gallery.component_samples(model, 2, 4, seed=0))
    with pytest.raises(AssertionError, match="out of range"):
        gallery.component_samples(model, 5, 4, seed=0)


def test_component_samples_come_from_that_component(tiny_models):
    """Decoding z ~ N(m_k, v_k) with tiny variances gives (almost) decode(m_k)."""
    model = copy.deepcopy(tiny_models["mog"])
    with torch.no_grad():
        model.prior.logvars.fill_(-20.0)
    means, _ = gallery.prior_components(model)
    np.testing.assert_allclose(gallery.component_samples(model, 1, 3, seed=0),
                               np.repeat(gallery.decode(model, means[1:2]), 3, axis=0), atol=1e-4)


@pytest.mark.parametrize("name, inputs", [("vamp", True), ("mog", False), ("hvae-vamp", True)])
def test_analyse_mixture(tiny_models, name, inputs):
    model = tiny_models[name]
    rng = np.random.default_rng(0)
    test_means, train = rng.standard_normal((30, 3)), rng.random((40, 1, 8, 8))
    a = gallery.analyse_mixture(model, test_means, train, neighbours=4)
    assert a.images_are_inputs == inputs and a.name == ("pseudo-input" if inputs else "mixture mean")
    assert a.mean_resp.shape == (5,) and abs(a.mean_resp.sum() - 1) < 1e-9
    assert sorted(a.order.tolist()) == list(range(5))
    assert a.mean_resp[a.order[0]] == a.mean_resp.max() and a.winners.sum() == 30
    assert a.heads.shape == (5, 1, 8, 8)
    assert (a.reconstructions is None) == (not inputs)
    assert a.neighbours.shape == a.distances.shape == (5, 4)
    np.testing.assert_array_equal(a.neighbours, gallery.nearest_neighbours(a.heads, train, 4)[0])
    assert gallery.analyse_mixture(tiny_models["hvae"], test_means, train) is None


def test_models_tables_put_the_selected_checkpoints_dataset_first():
    import pandas as pd

    table = pd.DataFrame({"checkpoint": ["a", "b", "c"], "dataset": ["caltech101", "digits", "mnist-static"]})
    assert list(gallery.tables_by_dataset(table, "mnist-static")) == ["mnist-static", "caltech101", "digits"]
    assert list(gallery.tables_by_dataset(table)) == ["caltech101", "digits", "mnist-static"]
    assert gallery.tables_by_dataset(table)["digits"].columns.tolist() == ["checkpoint"]


def test_analyse_mixture_builds_no_autograd_graph(tiny_models, monkeypatch):
    seen = []
    heads = gallery.component_images
    monkeypatch.setattr(gallery, "component_images", lambda model: seen.append(torch.is_grad_enabled()) or heads(model))
    rng = np.random.default_rng(0)
    gallery.analyse_mixture(tiny_models["vamp"], rng.standard_normal((30, 3)), rng.random((40, 1, 8, 8)), neighbours=4)
    assert seen == [False]
