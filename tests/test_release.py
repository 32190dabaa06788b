"""Shippable checkpoints: float16 weights without resume state, and precomputed projections."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vae_core import checkpoint as ckpt
from vae_core import embedded, projections, release
from vae_core.config import ModelConfig
from vae_core.errors import CheckpointError
from vae_core.train import TrainConfig, train


@pytest.fixture
def trained(tmp_path, small_digits):
    config = ModelConfig.for_dataset("digits", latent_dim=3, hidden=16, components=4)
    train(config, TrainConfig(epochs=2, warmup=1, device="cpu"), tmp_path / "run", data=small_digits)
    return tmp_path / "run"


def test_compact_halves_the_weights_and_drops_the_resume_state(trained, digits):
    x = torch.as_tensor(digits.x_test[:16])
    before = ckpt.load(trained)
    sizes = release.compact(trained)
    assert sizes["after"] < 0.6 * sizes["before"]
    assert not (trained / ckpt.LAST_FILE).exists()
    assert all(t.dtype == torch.float16 for t in ckpt.read_tensors(trained / ckpt.WEIGHTS_FILE).values())
    after = ckpt.load(trained)  # cast back to float32 on load
    assert all(p.dtype == torch.float32 for p in after.parameters())
    with torch.no_grad():
        torch.testing.assert_close(after.reconstruct(x), before.reconstruct(x), atol=5e-3, rtol=0)
    with pytest.raises(ValueError, match="float32 or float16"):
        release.compact(trained, "int8")


@pytest.mark.slow  # fits UMAP (numba compiles it the first time)
def test_precomputed_projections_cover_every_layer_of_the_embedded_sample(trained):
    with pytest.raises(CheckpointError, match="embed-sample"):
        release.precompute_projections(trained)
    embedded.write_sample(trained, test=60, train=20)
    path = release.precompute_projections(trained)
    model = ckpt.load(trained)
    sample = embedded.read_sample(trained, "digits", (1, 8, 8))
    means = model.latent_means(torch.as_tensor(sample.x_test))["z"].detach().numpy()
    params = projections.projection_params(means, "z", True)
    stored = projections.read_precomputed(trained, release.weights_sha256(trained), "z", "PCA", params)
    assert path.is_file() and stored["points"].shape == (60, 2) and stored["prior_samples"].shape == (500, 2)
    np.testing.assert_allclose(stored["points"], projections.codes_projection(model, means, "z", "PCA")["points"],
                               atol=1e-4)
