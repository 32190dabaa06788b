"""vae_core.projections: PCA, UMAP, t-SNE, the model-codes projection and the precomputed file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vae_core import paths, projections
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


def test_pca_shapes_and_transform_of_fitted_points_equals_the_fit(points):
    extras = {"same": points, "new": points[:7] + 1.0}
    out = projections.project(points, "PCA", extras)
    assert out["points"].shape == (120, 2) and out["new"].shape == (7, 2)
    np.testing.assert_allclose(out["same"], out["points"], atol=1e-5)


@pytest.mark.parametrize("shape", [(120, 6), (2000, 40), (50, 2)])
def test_pca_is_scikit_learns(shape):
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(1)
    points = (rng.normal(size=shape) * rng.uniform(0.1, 3.0, size=shape[1])).astype(np.float32)
    new = rng.normal(size=(9, shape[1])).astype(np.float32)
    theirs = PCA(n_components=2).fit(points)
    ours = projections.project(points, "PCA", {"new": new})
    np.testing.assert_allclose(ours["points"], theirs.transform(points), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(ours["new"], theirs.transform(new), atol=1e-4, rtol=1e-4)


def test_raw_needs_two_dims_and_passes_points_through(points):
    two = points[:, :2]
    out = projections.project(two, "raw", {"extra": two[:3]})
    np.testing.assert_array_equal(out["points"], two)
    np.testing.assert_array_equal(out["extra"], two[:3])
    with pytest.raises(AssertionError, match="2-D"):
        projections.project(points, "raw")


def test_one_dimensional_latents_are_padded_to_a_plane():
    out = projections.project(np.arange(10, dtype=np.float32)[:, None], "PCA")
    assert out["points"].shape == (10, 2)


def test_tsne_fits_the_union_and_splits_it_back(points):
    out = projections.project(points[:40], "t-SNE", {"components": points[40:45], "prior_samples": points[45:60]})
    assert {k: v.shape for k, v in out.items()} == {"points": (40, 2), "components": (5, 2), "prior_samples": (15, 2)}

