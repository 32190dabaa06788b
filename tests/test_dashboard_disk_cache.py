"""dashboard.disk_cache and dashboard.projections: the on-disk cache of fitted maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dashboard import disk_cache
from dashboard import projections as dashboard_projections
from vae_core import paths, projections
from vae_core.checkpoint import WEIGHTS_FILE
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


def test_arrays_round_trip_and_a_corrupt_file_reads_as_missing(tmp_path):
    arrays = {"points": np.arange(6, dtype=np.float32).reshape(3, 2), "components": np.ones((2, 2), np.float32)}
    path = tmp_path / "a.npz"
    disk_cache.save_arrays(path, arrays)
    loaded = disk_cache.load_arrays(path)
    assert loaded.keys() == arrays.keys()
    for name in arrays:
        np.testing.assert_array_equal(loaded[name], arrays[name])
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file is renamed into place"
    path.write_bytes(b"not an npz")
    assert disk_cache.load_arrays(path) is None
    assert disk_cache.load_arrays(tmp_path / "missing.npz") is None


def test_load_or_compute_computes_once(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"points": np.zeros((2, 2), np.float32)}

    first, hit1 = disk_cache.load_or_compute("k", compute, tmp_path)
    second, hit2 = disk_cache.load_or_compute("k", compute, tmp_path)
    assert (hit1, hit2, len(calls)) == (False, True, 1)
    np.testing.assert_array_equal(first["points"], second["points"])


def test_key_changes_with_weights_layer_method_and_params(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / WEIGHTS_FILE).write_bytes(b"weights one")
    digest = disk_cache.weights_digest(folder)
    (folder / WEIGHTS_FILE).write_bytes(b"weights two, longer")
    changed = disk_cache.weights_digest(folder)
    assert digest != changed and len(digest) == 64
    key = disk_cache.projection_key(digest, "z", "UMAP", {"n": 10})
    assert key == disk_cache.projection_key(digest, "z", "UMAP", {"n": 10})
    assert len({key, disk_cache.projection_key(changed, "z", "UMAP", {"n": 10}),
                disk_cache.projection_key(digest, "z2", "UMAP", {"n": 10}),
                disk_cache.projection_key(digest, "z", "PCA", {"n": 10}),
                disk_cache.projection_key(digest, "z", "UMAP", {"n": 11})}) == 5


def test_latent_projection_caches_all_overlays_together(cache_dir, tmp_path):
    model = tiny_model(latent_dim=4)
    means = np.random.default_rng(1).normal(size=(30, 4)).astype(np.float32)
    folder = tmp_path / "no-precomputed"
    coords, origin = dashboard_projections.latent_projection(folder, model, means, "z", "PCA", digest="abc")
    assert origin == "computed"
    shapes = {k: v.shape for k, v in coords.items()}
    assert shapes == {"points": (30, 2), "components": (5, 2), "prior_samples": (500, 2)}
    assert len(list((cache_dir / "projections").glob("*.npz"))) == 1
    again, origin = dashboard_projections.latent_projection(folder, model, means, "z", "PCA", digest="abc")
    assert origin == "disk cache"
    np.testing.assert_array_equal(again["prior_samples"], coords["prior_samples"])
    _, origin = dashboard_projections.latent_projection(folder, model, means, "z", "PCA", digest="new weights")
    assert origin == "computed"


def test_a_checkpoints_precomputed_projection_is_used_only_for_its_weights_and_points(cache_dir, tmp_path):
    model = tiny_model(latent_dim=4)
    means = np.random.default_rng(1).normal(size=(30, 4)).astype(np.float32)
    projections.write_precomputed(tmp_path, model, {"z": means}, digest="abc", methods=("PCA",))
    coords, origin = dashboard_projections.latent_projection(tmp_path, model, means, "z", "PCA", digest="abc")
    assert origin == "checkpoint" and coords["points"].shape == (30, 2) and coords["components"].shape == (5, 2)
    assert not list((cache_dir / "projections").glob("*.npz")), "nothing fitted or cached"
    fitted = projections.codes_projection(model, means, "z", "PCA")
    np.testing.assert_allclose(coords["points"], fitted["points"], atol=1e-5)
    for digest, points in (("other weights", means), ("abc", means[:20])):  # another model or other images
        _, origin = dashboard_projections.latent_projection(tmp_path, model, points, "z", "PCA", digest=digest)
        assert origin == "computed"
    (tmp_path / projections.PROJECTIONS_FILE).write_bytes(b"garbage")
    _, origin = dashboard_projections.latent_projection(tmp_path, model, means, "z", "PCA",
                                                        digest="abc")
    assert origin == "computed"  # a damaged file is ignored, never an error


def test_hvae_bottom_layer_gets_no_prior_overlays(tmp_path):
    model = tiny_model(model="hvae", latent_dim=4)
    means = np.random.default_rng(1).normal(size=(20, 3)).astype(np.float32)
    coords, _ = dashboard_projections.latent_projection(tmp_path, model, means, "z1", "PCA", digest="h")
    assert set(coords) == {"points"}
    assert model.prior_layer == "z2"


def test_standard_prior_has_no_components():
    assert projections.component_means(tiny_model(prior="standard")) is None
    assert projections.component_means(tiny_model(prior="mog")).shape == (5, 2)


@pytest.mark.slow
def test_umap_fit_transform_and_disk_cache(points, cache_dir, monkeypatch, request):
    # numba's compiled code is kept between runs in .pytest_cache, so only the first run pays ~30 s
    if getattr(request.config, "cache", None) is not None:  # absent under -p no:cacheprovider
        monkeypatch.setenv("NUMBA_CACHE_DIR", str(request.config.cache.mkdir("numba")))
    data = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    calls = []

    def compute():
        calls.append(1)
        return projections.project(data, "UMAP", {"prior_samples": data[:25] + 0.1})

    coords, hit = disk_cache.load_or_compute("umap-test", compute)
    assert not hit and coords["points"].shape == (200, 2) and coords["prior_samples"].shape == (25, 2)
    assert np.isfinite(coords["points"]).all() and np.isfinite(coords["prior_samples"]).all()
    assert (cache_dir / "numba").is_dir(), "numba's cache is pointed at a writable folder first"
    cached, hit = disk_cache.load_or_compute("umap-test", compute)
    assert hit and len(calls) == 1
    np.testing.assert_array_equal(cached["points"], coords["points"])

