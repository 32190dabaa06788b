"""The embedded default dataset, scikit-learn's 8x8 digits."""

from __future__ import annotations

import numpy as np

from tests.data_helpers import isolated_data_dirs  # noqa: F401
from vae_core import data
from vae_core.data import digits


def test_digits_splits_are_deterministic():
    a, b = data.load_dataset("digits"), data.load_dataset("digits")
    for field in ("x_train", "x_val", "x_test", "y_train", "y_val", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert (len(a.x_train), len(a.x_val), len(a.x_test)) == digits.DIGITS_SPLIT
    assert set(np.unique(a.x_val)) <= {0.0, 1.0} and len(np.unique(a.x_train)) > 2
    assert data.get_spec("digits").available("/nonexistent")


def test_download_embedded_dataset_is_a_no_op(tmp_path):
    assert data.download("digits", tmp_path, log=lambda m: None) == []
