"""The shipped paper checkpoints' metrics.json can be reproduced from the weights as shipped.

Each metrics.json was measured on the full test set (S = 5000). Re-estimating the test LL on a few
hundred of the embedded test images (a uniform random subset of the test set) must agree with it
within the subset's standard error: sd(log p(x)) / sqrt(n), where sd is recovered from the stored
standard error of the full-set mean.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.page_helpers import SHIPPED, shipped_paper_checkpoints
from vae_core import checkpoint, embedded
from vae_core.evaluate import DEFAULT_SAMPLES, log_likelihood

PAPER = shipped_paper_checkpoints("metrics.json")
POINTS = 200


@pytest.mark.slow
@pytest.mark.parametrize("name", PAPER[:1] or [pytest.param("none", marks=pytest.mark.skip("no shipped paper checkpoint"))])
def test_shipped_test_ll_is_reproduced_on_the_embedded_images(name):
    folder = SHIPPED / name
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["samples"] == DEFAULT_SAMPLES and metrics["test_points"] == "all"
    model = checkpoint.load(folder)
    config, _ = checkpoint.read_config(folder)
    sample = embedded.read_sample(folder, config.dataset, config.input_shape)
    picked = np.random.default_rng(0).choice(len(sample.x_test), POINTS, replace=False)
    estimate = log_likelihood(model, sample.x_test[picked], DEFAULT_SAMPLES)
    spread = metrics["log_likelihood_stderr"] * math.sqrt(metrics["n_test"])  # per-image sd on the full set
    stderr = spread / math.sqrt(POINTS)
    assert abs(estimate.mean() - metrics["log_likelihood"]) < 3 * stderr, (estimate.mean(), metrics["log_likelihood"], stderr)
