"""The evaluation sample embedded in a checkpoint: exact round trips, damage detection, and the
choice between the dataset's files and the sample."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vae_core import checkpoint as ckpt
from vae_core import embedded
from vae_core.config import ModelConfig
from vae_core.errors import CheckpointError, DatasetError
from vae_core.models import build_model


@pytest.mark.parametrize("images", [
    np.random.default_rng(0).integers(0, 2, (5, 1, 28, 28)).astype(np.float32),  # bits, 784 = 98 bytes
    np.random.default_rng(1).integers(0, 2, (3, 1, 5, 3)).astype(np.float32),  # 15 bits: a padded last byte
    ((np.random.default_rng(2).integers(0, 256, (4, 1, 28, 20)) + 0.5) / 256).astype(np.float32),  # Frey's grid
    (np.random.default_rng(3).integers(0, 256, (4, 1, 28, 28)) / np.float32(255)).astype(np.float32),  # grey MNIST
    (np.random.default_rng(4).integers(0, 17, (4, 1, 8, 8)) / np.float32(16)).astype(np.float32),  # digits
])
def test_images_round_trip_exactly(images):
    encoding = embedded.encoding_for(images)
    stored = embedded.encode_images(images, encoding)
    assert stored.dtype == np.uint8
    if encoding["kind"] == "bits":
        assert stored.shape[1] == -(-images[0].size // 8)  # one bit a pixel
    assert np.array_equal(embedded.decode_images(stored, encoding, images.shape[1:]), images)


def test_images_off_every_grid_are_refused():
    with pytest.raises(DatasetError, match="cannot be embedded"):
        embedded.encoding_for(np.full((1, 1, 2, 2), 0.123, np.float32))


@pytest.fixture
def digits_checkpoint(tmp_path):
    config = ModelConfig.for_dataset("digits", latent_dim=2, hidden=8, components=3)
    return ckpt.save(tmp_path / "run", build_model(config), config)


def test_write_and_read_a_sample(digits_checkpoint, digits):
    embedded.write_sample(digits_checkpoint, test=40, train=30, seed=3)
    meta = json.loads((digits_checkpoint / embedded.SAMPLE_META_FILE).read_text())
    assert meta["dataset"] == "digits" and meta["n_test_total"] == len(digits.x_test)
    assert meta["credit"]
    sample = embedded.read_sample(digits_checkpoint, "digits", (1, 8, 8))
    assert sample.embedded and len(sample.x_test) == 40 and len(sample.x_train) == 30
    assert np.all(np.diff(sample.test_indices) > 0)
    assert np.array_equal(sample.x_test, digits.x_test[sample.test_indices])  # exactly the loader's images
    assert np.array_equal(sample.y_test, digits.y_test[sample.test_indices])
    assert "40 of the 250 digits test images, embedded in the checkpoint" == sample.description


def test_evaluation_data_prefers_the_dataset_files(digits_checkpoint, digits):
    embedded.write_sample(digits_checkpoint, test=10, train=10)
    full = embedded.evaluation_data(digits_checkpoint)  # digits is always available
    assert not full.embedded and len(full.x_test) == len(digits.x_test)
    assert full.description.startswith("all 250 digits test images")


def test_evaluation_data_falls_back_to_the_sample_or_says_what_to_download(digits_checkpoint, monkeypatch):
    spec = embedded.datasets.get_spec("digits")
    monkeypatch.setattr(type(spec), "available", lambda self, data_dir=None: False)
    with pytest.raises(DatasetError, match="python -m vae_core download digits"):
        embedded.evaluation_data(digits_checkpoint)
    embedded.write_sample(digits_checkpoint, test=10, train=5)
    assert embedded.evaluation_data(digits_checkpoint).embedded


@pytest.mark.parametrize("damage", ["truncate", "meta-dataset", "meta-shape", "indices", "not-json"])
def test_a_damaged_sample_is_one_checkpoint_error(digits_checkpoint, damage):
    embedded.write_sample(digits_checkpoint, test=10, train=5)
    tensors_path = digits_checkpoint / embedded.SAMPLE_FILE
    meta_path = digits_checkpoint / embedded.SAMPLE_META_FILE
    meta = json.loads(meta_path.read_text())
    if damage == "truncate":
        tensors_path.write_bytes(tensors_path.read_bytes()[:100])
    elif damage == "meta-dataset":
        meta_path.write_text(json.dumps(meta | {"dataset": "mnist"}))
    elif damage == "meta-shape":
        meta_path.write_text(json.dumps(meta | {"n_test_total": 3}))  # indices beyond it
    elif damage == "indices":
        meta_path.write_text(json.dumps(meta | {"encoding": {"kind": "jpeg"}}))
    else:
        meta_path.write_text("{not json")
    with pytest.raises(CheckpointError) as error:
        embedded.read_sample(digits_checkpoint, "digits", (1, 8, 8))
    assert "\n" not in str(error.value)


def test_sizes_are_bounded(digits_checkpoint):
    with pytest.raises(ValueError, match="embed 1 to"):
        embedded.write_sample(digits_checkpoint, test=10**7)
