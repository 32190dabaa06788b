"""dashboard.latent: projections, the on-disk cache, and every figure builder, called directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dashboard import latent
from vae_core import paths
from vae_core.checkpoint import WEIGHTS_FILE
from vae_core.config import ModelConfig
from vae_core.models import build_model
from vae_core.priors import GaussianMixturePrior


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


# ---- projections -------------------------------------------------------------------------------


def test_pca_shapes_and_transform_of_fitted_points_equals_the_fit(points):
    extras = {"same": points, "new": points[:7] + 1.0}
    out = latent.project(points, "PCA", extras)
    assert out["points"].shape == (120, 2) and out["new"].shape == (7, 2)
    np.testing.assert_allclose(out["same"], out["points"], atol=1e-5)


def test_raw_needs_two_dims_and_passes_points_through(points):
    two = points[:, :2]
    out = latent.project(two, "raw", {"extra": two[:3]})
    np.testing.assert_array_equal(out["points"], two)
    np.testing.assert_array_equal(out["extra"], two[:3])
    with pytest.raises(AssertionError, match="2-D"):
        latent.project(points, "raw")


def test_one_dimensional_latents_are_padded_to_a_plane():
    out = latent.project(np.arange(10, dtype=np.float32)[:, None], "PCA")
    assert out["points"].shape == (10, 2)


def test_tsne_fits_the_union_and_splits_it_back(points):
    out = latent.project(points[:40], "t-SNE", {"components": points[40:45], "prior_samples": points[45:60]})
    assert {k: v.shape for k, v in out.items()} == {"points": (40, 2), "components": (5, 2), "prior_samples": (15, 2)}


# ---- the on-disk cache ------------------------------------------------------------------------


def test_arrays_round_trip_and_a_corrupt_file_reads_as_missing(tmp_path):
    arrays = {"points": np.arange(6, dtype=np.float32).reshape(3, 2), "components": np.ones((2, 2), np.float32)}
    path = tmp_path / "a.npz"
    latent.save_arrays(path, arrays)
    loaded = latent.load_arrays(path)
    assert loaded.keys() == arrays.keys()
    for name in arrays:
        np.testing.assert_array_equal(loaded[name], arrays[name])
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file is renamed into place"
    path.write_bytes(b"not an npz")
    assert latent.load_arrays(path) is None
    assert latent.load_arrays(tmp_path / "missing.npz") is None


def test_load_or_compute_computes_once(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"points": np.zeros((2, 2), np.float32)}

    first, hit1 = latent.load_or_compute("k", compute, tmp_path)
    second, hit2 = latent.load_or_compute("k", compute, tmp_path)
    assert (hit1, hit2, len(calls)) == (False, True, 1)
    np.testing.assert_array_equal(first["points"], second["points"])


def test_key_changes_with_weights_layer_method_and_params(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / WEIGHTS_FILE).write_bytes(b"weights one")
    digest = latent.weights_digest(folder)
    (folder / WEIGHTS_FILE).write_bytes(b"weights two, longer")
    changed = latent.weights_digest(folder)
    assert digest != changed and len(digest) == 64
    key = latent.projection_key(digest, "z", "UMAP", {"n": 10})
    assert key == latent.projection_key(digest, "z", "UMAP", {"n": 10})
    assert len({key, latent.projection_key(changed, "z", "UMAP", {"n": 10}),
                latent.projection_key(digest, "z2", "UMAP", {"n": 10}),
                latent.projection_key(digest, "z", "PCA", {"n": 10}),
                latent.projection_key(digest, "z", "UMAP", {"n": 11})}) == 5


def test_latent_projection_caches_all_overlays_together(cache_dir):
    model = tiny_model(latent_dim=4)
    means = np.random.default_rng(1).normal(size=(30, 4)).astype(np.float32)
    coords, from_disk = latent.latent_projection(model, means, "z", "PCA", digest="abc", n_prior_samples=12)
    assert not from_disk
    shapes = {k: v.shape for k, v in coords.items()}
    assert shapes == {"points": (30, 2), "components": (5, 2), "prior_samples": (12, 2)}
    assert len(list((cache_dir / "projections").glob("*.npz"))) == 1
    again, from_disk = latent.latent_projection(model, means, "z", "PCA", digest="abc", n_prior_samples=12)
    assert from_disk
    np.testing.assert_array_equal(again["prior_samples"], coords["prior_samples"])
    _, from_disk = latent.latent_projection(model, means, "z", "PCA", digest="new weights", n_prior_samples=12)
    assert not from_disk


def test_hvae_bottom_layer_gets_no_prior_overlays():
    model = tiny_model(model="hvae", latent_dim=4)
    means = np.random.default_rng(1).normal(size=(20, 3)).astype(np.float32)
    coords, _ = latent.latent_projection(model, means, "z1", "PCA", digest="h")
    assert set(coords) == {"points"}
    assert latent.prior_layer(model) == "z2"


def test_standard_prior_has_no_components():
    assert latent.component_means(tiny_model(prior="standard")) is None
    assert latent.component_means(tiny_model(prior="mog")).shape == (5, 2)


@pytest.mark.slow
def test_umap_fit_transform_and_disk_cache(points, cache_dir, monkeypatch, request):
    # numba's compiled code is kept between runs in .pytest_cache, so only the first run pays ~30 s
    if getattr(request.config, "cache", None) is not None:  # absent under -p no:cacheprovider
        monkeypatch.setenv("NUMBA_CACHE_DIR", str(request.config.cache.mkdir("numba")))
    data = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    calls = []

    def compute():
        calls.append(1)
        return latent.project(data, "UMAP", {"prior_samples": data[:25] + 0.1})

    coords, hit = latent.load_or_compute("umap-test", compute)
    assert not hit and coords["points"].shape == (200, 2) and coords["prior_samples"].shape == (25, 2)
    assert np.isfinite(coords["points"]).all() and np.isfinite(coords["prior_samples"]).all()
    assert (cache_dir / "numba").is_dir(), "numba's cache is pointed at a writable folder first"
    cached, hit = latent.load_or_compute("umap-test", compute)
    assert hit and len(calls) == 1
    np.testing.assert_array_equal(cached["points"], coords["points"])


# ---- the latent map -------------------------------------------------------------------------


def test_latent_scatter_has_one_trace_per_label_plus_overlays():
    rng = np.random.default_rng(0)
    coords, labels = rng.normal(size=(30, 2)), np.repeat([0, 1, 2], 10)
    fig = latent.latent_scatter_figure(coords, labels, hover_images=images(30), components=rng.normal(size=(4, 2)),
                                       prior_samples=rng.normal(size=(9, 2)), axis_titles=("PC 1", "PC 2"))
    names = [t.name for t in fig.data]
    assert names == ["prior samples (9)", "label 0", "label 1", "label 2", "pseudo-inputs (4)"]
    assert fig.data[-1].marker.symbol == "x-thin" and fig.data[-1].marker.color == "black"
    assert fig.data[0].marker.opacity < 1
    assert sum(len(t.x) for t in fig.data[1:4]) == 30
    np.testing.assert_array_equal(np.asarray(fig.data[2].customdata)[:, 0], np.arange(10, 20))  # test indices
    assert "█" in fig.data[1].text[0] or "░" in fig.data[1].text[0]
    assert fig.layout.xaxis.title.text == "PC 1"


def test_latent_scatter_without_labels_or_overlays():
    fig = latent.latent_scatter_figure(np.zeros((5, 2)))
    assert [t.name for t in fig.data] == ["test images"]


def test_selected_point_reads_customdata():
    assert latent.selected_point(None) is None
    assert latent.selected_point({"points": [{"x": 0}]}) is None
    assert latent.selected_point({"points": [{"customdata": [7, 0]}]}) == ("test", 7)
    assert latent.selected_point({"points": [{"customdata": [3, 1]}]}) == ("component", 3)
    assert latent.selected_point({"points": [{"customdata": {"0": 9, "1": 0}}]}) == ("test", 9)


def test_text_thumbnail_keeps_the_image_shape():
    image = np.zeros((1, 8, 8), np.float32)
    image[0, :, 0] = 1.0
    rows = latent.text_thumbnail(image).split("<br>")
    assert len(rows) == 8 and all(row.startswith("██") for row in rows)
    assert len(latent.text_thumbnail(np.zeros((1, 28, 28))).split("<br>")) == 14


def test_point_images():
    x = images(6)
    pictures, captions = latent.point_images(tiny_model(), "test", 2, x)
    assert pictures.shape == (2, 1, 8, 8) and len(captions) == 2
    np.testing.assert_array_equal(pictures[0], x[2])
    pictures, _ = latent.point_images(tiny_model(), "component", 1, x)
    assert pictures.shape == (2, 1, 8, 8)  # the pseudo-input and the decoded component mean
    pictures, _ = latent.point_images(tiny_model(prior="mog"), "component", 1, x)
    assert pictures.shape == (1, 1, 8, 8)


# ---- active units ---------------------------------------------------------------------------


@pytest.mark.parametrize("log_y", [True, False])
def test_activity_bars_sorted_coloured_and_thresholded(log_y):
    activity = np.array([0.5, 1e-4, 0.02, 0.0, 0.009, 1.3])
    fig = latent.activity_bar_figure(activity, threshold=0.01, layer="z", log_y=log_y)
    (bar,) = [t for t in fig.data if t.type == "bar"]
    assert len(bar.x) == len(activity)
    assert list(bar.x) == ["z[5]", "z[0]", "z[2]", "z[4]", "z[1]", "z[3]"]
    values = np.asarray(bar.customdata)[:, 0]
    assert np.all(np.diff(values) <= 0), "sorted, most active first"
    assert list(bar.marker.color) == [latent.ACTIVE_COLOUR] * 3 + [latent.INACTIVE_COLOUR] * 3
    (line,) = fig.layout.shapes
    assert line.y0 == line.y1 == 0.01
    assert fig.layout.yaxis.type == ("log" if log_y else "linear")
    assert "3 of 6" in fig.layout.title.text


def test_activity_curves_and_table():
    activities = {"a": {"z": np.array([0.1, 0.001, 0.5])},
                  "b": {"z1": np.array([0.2, 0.3]), "z2": np.array([0.0, 0.05])}}
    curves = {f"{m} · {layer}": v for m, layers in activities.items() for layer, v in layers.items()}
    fig = latent.activity_curves_figure(curves, threshold=0.01)
    assert [t.name for t in fig.data] == list(curves)
    assert list(fig.data[0].y) == pytest.approx([0.5, 0.1, 0.001])
    assert fig.layout.shapes[0].y0 == 0.01
    rows = latent.active_unit_table(activities, threshold=0.01)
    assert rows[0] == {"checkpoint": "a", "active in z": 2, "active in z1": None, "active in z2": None,
                       "latent sizes": "z=3"}
    assert rows[1]["active in z1"] == 2 and rows[1]["active in z2"] == 1


# ---- prior versus aggregated posterior --------------------------------------------------------


def test_contour_grid_is_the_prior_log_density_on_the_grid():
    torch.manual_seed(0)
    prior = GaussianMixturePrior(torch.randn(3, 2), torch.randn(3, 2) * 0.3, learnable=False)
    xs, ys, log_p = latent.density_grid(lambda z: latent.prior_log_prob(prior, z), (-2, 2), (-1, 3), resolution=25)
    fig = latent.prior_contour_figure(xs, ys, log_p, samples=np.zeros((4, 2)), labels=[0, 0, 1, 1])
    (contour,) = [t for t in fig.data if t.type == "contour"]
    gx, gy = np.meshgrid(xs, ys)
    grid = torch.tensor(np.stack([gx, gy], axis=-1), dtype=torch.float32)
    expected = prior.log_prob(grid.reshape(-1, 2)).reshape(25, 25).double().numpy()
    np.testing.assert_allclose(np.asarray(contour.z), expected, rtol=1e-5)
    assert np.asarray(contour.z)[3, 7] == pytest.approx(prior.log_prob(torch.tensor([[xs[7], ys[3]]])).item(), rel=1e-5)
    assert [t.name for t in fig.data if t.type == "scatter"] == ["label 0", "label 1"]
    density = latent.prior_contour_figure(xs, ys, log_p, density=True)
    np.testing.assert_allclose(np.asarray(density.data[0].z), np.exp(log_p))


def test_vampprior_log_prob_frozen_matches_live():
    model = tiny_model()
    z = np.random.default_rng(0).normal(size=(17, 2))
    np.testing.assert_allclose(latent.prior_log_prob(model.prior.frozen(), z), latent.prior_log_prob(model.prior, z),
                               rtol=1e-5)


def test_grid_limits_cover_the_points():
    xlim, ylim = latent.grid_limits(np.array([[0.0, 0.0], [1.0, 2.0]]))
    assert xlim[0] < 0 < 1 < xlim[1] and ylim[0] < 0 < 2 < ylim[1]


def test_marginal_and_log_prob_histograms_have_two_traces_per_panel():
    rng = np.random.default_rng(0)
    prior, post = rng.normal(size=(50, 6)), rng.normal(size=(50, 6))
    fig = latent.marginals_figure(prior, post, dims=[0, 3, 5], layer="z2")
    assert len(fig.data) == 6 and all(t.type == "histogram" for t in fig.data)
    assert [a.text for a in fig.layout.annotations] == ["z2[0]", "z2[3]", "z2[5]"]
    assert sum(t.showlegend for t in fig.data) == 2
    hist = latent.log_prob_histogram_figure(rng.normal(size=20), rng.normal(size=30))
    assert [len(t.x) for t in hist.data] == [30, 20]


def test_aggregated_posterior_samples_are_reproducible():
    model, x = tiny_model(), images(12)
    z, labels = latent.aggregated_posterior_samples(model, x, np.arange(12), per_image=3, seed=4)
    again, _ = latent.aggregated_posterior_samples(model, x, np.arange(12), per_image=3, seed=4)
    assert z.shape == (36, 2) and list(labels[:6]) == [0, 0, 0, 1, 1, 1]
    np.testing.assert_array_equal(z, again)
    z, labels = latent.aggregated_posterior_samples(model, x, None, per_image=1, max_images=5)
    assert z.shape == (5, 2) and labels is None


def test_kl_is_zero_when_the_prior_is_the_aggregated_posterior():
    """A VampPrior whose pseudo-inputs are exactly the N images IS q(z) = 1/N sum_n q(z|x_n)."""
    x = images(20)
    model = tiny_model(components=20)
    with torch.no_grad():
        model.prior.pseudo_input_params.copy_(torch.as_tensor(x))
    assert latent.estimate_aggregated_kl(model, x) == pytest.approx(0.0, abs=1e-4)
    other = tiny_model(prior="standard", seed=1)
    assert latent.estimate_aggregated_kl(other, x, seed=3) == latent.estimate_aggregated_kl(other, x, seed=3)
