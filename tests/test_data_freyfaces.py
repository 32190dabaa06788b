"""Frey Faces from tiny pickles written the way Python 2 + numpy 1.x wrote freyfaces.pkl."""

from __future__ import annotations

import numpy as np
import pytest

from tests.data_helpers import isolated_data_dirs, py2_pickle_of  # noqa: F401
from vae_core import data
from vae_core.data import freyfaces
from vae_core.errors import DatasetError

pytestmark = pytest.mark.filterwarnings("ignore:.*not the published Frey Faces file")  # tiny test pickles


def test_freyfaces_scaling_shape_and_seeded_split(tmp_path, monkeypatch):
    monkeypatch.setattr(freyfaces, "FREYFACES_SPLIT", (6, 2, 2))
    faces = (np.arange(10 * 560) % 256).astype(np.uint8).reshape(10, 560)
    faces[:, 0] = np.arange(10)  # identifies each face
    (tmp_path / "freyfaces").mkdir()
    (tmp_path / freyfaces.FREYFACES_FILE).write_bytes(py2_pickle_of(faces))
    splits = data.load_dataset("freyfaces", tmp_path)
    assert (splits.x_train.shape, splits.x_val.shape, splits.x_test.shape) == (
        (6, 1, 28, 20), (2, 1, 28, 20), (2, 1, 28, 20))  # fmt: skip
    assert splits.y_train is None
    every = np.concatenate([splits.x_train, splits.x_val, splits.x_test])
    assert every.dtype == np.float32 and every.min() >= 0.5 / 256 and every.max() <= 255.5 / 256
    ids = np.rint(every[:, 0, 0, 0] * 256 - 0.5).astype(int)
    assert sorted(ids) == list(range(10))  # a partition of all faces
    row = faces[ids[0]].reshape(28, 20)  # row-major 28x20, x = (v + 0.5) / 256
    np.testing.assert_allclose(every[0, 0], (row + 0.5) / 256, rtol=1e-6)
    again = data.load_dataset("freyfaces", tmp_path)
    np.testing.assert_array_equal(again.x_train, splits.x_train)


def test_freyfaces_wrong_content(tmp_path):
    (tmp_path / "freyfaces").mkdir()
    (tmp_path / freyfaces.FREYFACES_FILE).write_bytes(py2_pickle_of(np.zeros((3, 7), np.uint8)))
    with pytest.raises(DatasetError, match="560"):
        data.load_dataset("freyfaces", tmp_path)
