"""Caltech 101 Silhouettes from a tiny .mat in Marlin's layout (column-major, 1 = background)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from tests.data_helpers import column_major, isolated_data_dirs, upright_marker_images  # noqa: F401
from vae_core import data
from vae_core.data import caltech101
from vae_core.errors import DatasetError


def write_caltech(root: Path, sizes=(5, 3, 4)) -> dict:
    """Silhouettes with the object = 0 on background 1, column-major; the label of image i is
    encoded as the number of object pixels in its bottom row, so shuffles can be checked."""
    contents, labels = {}, {}
    for split, n in zip(("train", "val", "test"), sizes):
        images = upright_marker_images(n)
        y = np.arange(n) + 1  # 1-based, like the file
        for i, label in enumerate(y):
            images[i, 27, :label] = 1
        contents[f"{split}_data"] = column_major(1 - images).astype(np.uint8)
        contents[f"{split}_labels"] = y.reshape(-1, 1).astype(np.uint8)
        labels[split] = y
    (root / "caltech101_silhouettes").mkdir(parents=True)
    scipy.io.savemat(root / caltech101.CALTECH101_FILE, contents)
    return labels


def test_caltech101_upright_inverted_and_labels_follow_images(tmp_path, monkeypatch):
    monkeypatch.setattr(caltech101, "CALTECH101_SPLIT", (5, 3, 4))
    write_caltech(tmp_path)
    splits = data.load_dataset("caltech101", tmp_path)
    assert (splits.x_train.shape, splits.x_val.shape, splits.x_test.shape) == (
        (5, 1, 28, 28), (3, 1, 28, 28), (4, 1, 28, 28))  # fmt: skip
    for x, y in ((splits.x_train, splits.y_train), (splits.x_val, splits.y_val), (splits.x_test, splits.y_test)):
        assert x.dtype == np.float32 and set(np.unique(x)) == {0.0, 1.0}
        assert np.all(x[:, 0, 0:3, 4:24] == 1), "the bar must be at the top: images are upright"
        assert np.all(x[:, 0, 14, 0] == 1) and np.all(x[:, 0, 0, 14] == 1)
        assert np.all(x[:, 0, 10, 10] == 0), "background must be 0 after the inversion"
        assert y.dtype == np.int64 and y.min() >= 0
        np.testing.assert_array_equal(x[:, 0, 27].sum(axis=1), y + 1)  # labels 0-based, kept with images
    np.testing.assert_array_equal(splits.y_test, np.arange(4))  # the test set keeps the file order


def test_caltech101_wrong_size(tmp_path):
    write_caltech(tmp_path)
    with pytest.raises(DatasetError, match="expected 4100"):
        data.load_dataset("caltech101", tmp_path)


@pytest.mark.parametrize("bad, expected", [(-1.0, "binary"), (np.nan, "NaN"), (0.5, "binary"), (2.0, "binary")])
def test_caltech101_bad_pixels_name_the_file(tmp_path, monkeypatch, bad, expected):
    monkeypatch.setattr(caltech101, "CALTECH101_SPLIT", (5, 3, 4))
    write_caltech(tmp_path)
    contents = {k: v for k, v in scipy.io.loadmat(tmp_path / caltech101.CALTECH101_FILE).items() if k[0] != "_"}
    contents["val_data"] = contents["val_data"].astype(np.float64)
    contents["val_data"][1, 100] = bad
    scipy.io.savemat(tmp_path / caltech101.CALTECH101_FILE, contents)
    with pytest.raises(DatasetError, match=expected) as info:
        data.load_dataset("caltech101", tmp_path)
    assert str(tmp_path / caltech101.CALTECH101_FILE) in str(info.value) and "val_data" in str(info.value)
