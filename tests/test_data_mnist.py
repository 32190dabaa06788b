"""Dynamic MNIST and Fashion-MNIST from tiny idx files, with the split sizes shrunk to fit."""

from __future__ import annotations

import numpy as np
import pytest

from tests.data_helpers import isolated_data_dirs, write_idx, write_mnist_like  # noqa: F401
from vae_core import data
from vae_core.data import mnist
from vae_core.errors import DatasetError


@pytest.mark.parametrize("name, folder", [("mnist", "mnist"), ("fashion-mnist", "fashion_mnist")])
def test_idx_loader_splits_scales_and_binarises(tmp_path, monkeypatch, name, folder):
    monkeypatch.setattr(mnist, "MNIST_SPLIT", (8, 2, 3))
    train, train_labels, test, test_labels = write_mnist_like(tmp_path, folder, 10, 3)
    splits = data.load_dataset(name, tmp_path)
    assert splits.x_train.shape == (8, 1, 28, 28) and splits.x_val.shape == (2, 1, 28, 28)
    assert splits.x_test.shape == (3, 1, 28, 28)
    for x in (splits.x_train, splits.x_val, splits.x_test):
        assert x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1
    np.testing.assert_allclose(splits.x_train[:, 0], train[:8] / 255.0, rtol=1e-6)  # first 8, in order
    assert set(np.unique(splits.x_val)) | set(np.unique(splits.x_test)) <= {0.0, 1.0}
    np.testing.assert_array_equal(splits.y_train, train_labels[:8])
    np.testing.assert_array_equal(splits.y_val, train_labels[8:])  # the last ones validate
    np.testing.assert_array_equal(splits.y_test, test_labels)
    assert splits.y_train.dtype == np.int64
    # fixed seeds: the same binarised validation and test sets every time
    again = data.load_dataset(name, tmp_path)
    np.testing.assert_array_equal(again.x_val, splits.x_val)
    np.testing.assert_array_equal(again.x_test, splits.x_test)


def test_mnist_reads_the_rebuilt_training_file(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "MNIST_SPLIT", (4, 1, 2))
    train, *_ = write_mnist_like(tmp_path, "mnist", 5, 2, train_name="train-images-idx3-ubyte.rebuilt.gz")
    splits = data.load_dataset("mnist", tmp_path)
    np.testing.assert_allclose(splits.x_train[:, 0], train[:4] / 255.0, rtol=1e-6)


def test_mnist_wrong_sizes_are_an_error(tmp_path):
    write_mnist_like(tmp_path, "mnist", 10, 3)
    with pytest.raises(DatasetError, match="expected 60000"):
        data.load_dataset("mnist", tmp_path)


def test_mnist_float_or_nan_pixels_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "MNIST_SPLIT", (8, 2, 3))
    write_mnist_like(tmp_path, "mnist", 10, 3)
    grey = np.full((3, 28, 28), np.nan, np.float32)
    write_idx(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz", grey)
    with pytest.raises(DatasetError, match="uint8") as info:
        data.load_dataset("mnist", tmp_path)
    assert str(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz") in str(info.value)


def test_mnist_wrong_image_shape_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "MNIST_SPLIT", (8, 2, 3))
    write_mnist_like(tmp_path, "mnist", 10, 3)
    write_idx(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 27), np.uint8))
    with pytest.raises(DatasetError, match="28x28") as info:
        data.load_dataset("mnist", tmp_path)
    assert str(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz") in str(info.value)
