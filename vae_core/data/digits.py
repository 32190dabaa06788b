"""digits: scikit-learn's 8x8 handwritten digits (1,797 images, 17 grey levels), embedded.

The default dataset: it needs no download, and a model trains on it in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .arrays import EVAL_BINARIZATION_SEED, binarize, split_indices
from .registry import DatasetSpec, DatasetSplits, register

DIGITS_SPLIT = (1297, 250, 250)
DIGITS_SPLIT_SEED = 0


def _load_digits(_: Path | None) -> DatasetSplits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8), in [0, 1]
    labels = bunch.target.astype(np.int64)
    train, val, test = split_indices(len(images), DIGITS_SPLIT, DIGITS_SPLIT_SEED)
    return DatasetSplits(
        x_train=images[train],
        x_val=binarize(images[val], EVAL_BINARIZATION_SEED),
        x_test=binarize(images[test], EVAL_BINARIZATION_SEED + 1),
        y_train=labels[train],
        y_val=labels[val],
        y_test=labels[test],
    )


SPEC = register(
    DatasetSpec(
        name="digits",
        input_shape=(1, 8, 8),
        input_type="binary",
        likelihood="bernoulli",
        pseudo_init_mean=0.3,
        pseudo_init_std=0.05,
        loader=_load_digits,
        dynamic_binarization=True,
        description="scikit-learn's 8x8 digits, binarised dynamically (1,297 / 250 / 250), embedded",
    )
)
