"""Shared fixtures: seeded RNGs, tiny model configs and the embedded `digits` data set.

Everything here is small enough that a test builds, trains or evaluates a model in well under a
second on two CPU cores; nothing needs the downloaded data sets.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from vae_core import paths
from vae_core.config import ModelConfig
from vae_core.data import DatasetSplits, load_dataset
from vae_core.models import build_model

DIGITS_SHAPE = (1, 8, 8)
MODELS = ("vae", "hvae")
PRIORS = ("standard", "mog", "vampprior", "vampprior-data")
ARCHITECTURES = ("mlp", "conv")
LIKELIHOODS = ("bernoulli", "logistic", "gaussian")


# The models here are tiny and the machine's cores are shared: one intra-op thread is faster than
# several fighting over two cores, and keeps float reductions in one fixed order.
torch.set_num_threads(1)


# The dashboard's tests see no dataset files, as a fresh clone does: pages then serve the shipped
# checkpoints' embedded samples, whether or not $VAMPVIZ_DATA_DIR holds the paper's datasets.
DASHBOARD_TESTS = ("test_pages_", "test_lecture_mode", "test_browser")


@pytest.fixture(scope="session")
def empty_data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("no-datasets")


@pytest.fixture(autouse=True)
def dashboard_without_datasets(request, empty_data_dir, monkeypatch):
    if request.module.__name__.rpartition(".")[2].startswith(DASHBOARD_TESTS):
        monkeypatch.setenv(paths.DATA_DIR_ENV, str(empty_data_dir))


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same RNG state (torch, numpy, random)."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    yield


def tiny_config(**overrides) -> ModelConfig:
    """A model small enough for unit tests, shaped for the 8x8 digits."""
    settings = dict(
        model="vae", prior="standard", architecture="mlp", likelihood="bernoulli", dataset="digits",
        input_shape=DIGITS_SHAPE, latent_dim=3, latent_dim_z1=2, hidden=16, components=5,
        pseudo_init_mean=0.3, pseudo_init_std=0.05,
    )
    settings.update(overrides)
    return ModelConfig(**settings)


@pytest.fixture
def make_config():
    return tiny_config


@pytest.fixture(scope="session")
def digits() -> DatasetSplits:
    """scikit-learn's digits as the library splits them: (N, 1, 8, 8) float32 in [0, 1]."""
    return load_dataset("digits")


@pytest.fixture(scope="session")
def small_digits(digits) -> DatasetSplits:
    """A 300 / 100 / 100 subset of `digits`, for quick training runs."""
    return DatasetSplits(
        x_train=digits.x_train[:300], x_val=digits.x_val[:100], x_test=digits.x_test[:100],
        y_train=digits.y_train[:300], y_val=digits.y_val[:100], y_test=digits.y_test[:100],
    )


@pytest.fixture
def binary_batch(digits) -> torch.Tensor:
    """Eight binarised digits, (8, 1, 8, 8)."""
    return torch.as_tensor(digits.x_test[:8])


def make_model(config: ModelConfig, train_images=None, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(config, train_images=train_images)


@pytest.fixture
def build():
    """build(config=None, **overrides) -> a freshly initialised, seeded tiny model."""

    def _build(config: ModelConfig | None = None, train_images=None, seed: int = 0, **overrides):
        config = config or tiny_config(**overrides)
        if config.prior == "vampprior-data" and train_images is None:
            train_images = np.random.default_rng(seed).random((50, *config.input_shape), dtype=np.float32)
        return make_model(config, train_images, seed)

    return _build
