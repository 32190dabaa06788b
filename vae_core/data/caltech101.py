"""Caltech 101 Silhouettes 28x28 (Marlin et al. 2010), split1: binary, 4,100 / 2,264 / 2,307.

Reads B. Marlin's `caltech101_silhouettes_28_split1.mat` (column-major rows, 1 = background).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .arrays import SPLIT_SEED, check_count, check_pixels, check_rows, column_major_images
from .formats import read_mat
from .registry import DatasetSpec, DatasetSplits, DownloadPlan, RemoteFile, locate, register

CALTECH101_SPLIT = (4_100, 2_264, 2_307)
CALTECH101_FILE = "caltech101_silhouettes/caltech101_silhouettes_28_split1.mat"


def _load_caltech101(root: Path) -> DatasetSplits:
    """Caltech 101 Silhouettes: binary 28x28, 4,100 / 2,264 / 2,307 as published, no dynamic binarisation.

    Paper/original loader: `1 - x` of the column-major images (the file stores 1 = background), so
    objects are 1 on a 0 background and upright; the training and validation images are shuffled.
    Here the shuffle is seeded and keeps the labels with their images (the original's does not);
    labels are 0-based class ids (the file's 1..101 minus one).
    """
    (path,) = locate("caltech101", root)
    mat = read_mat(path, ("train_data", "val_data", "test_data"), ("train_labels", "val_labels", "test_labels"))
    splits, rng = {}, np.random.default_rng(SPLIT_SEED)
    for split, size in zip(("train", "val", "test"), CALTECH101_SPLIT):
        data, where = mat[f"{split}_data"], f"{path} '{split}_data'"
        check_count("caltech101", f"{split}_data", len(data), size)
        check_rows(data, where, 784)
        check_pixels(data, where, binary=True)
        x = 1.0 - column_major_images(data, 28)
        labels = mat.get(f"{split}_labels")
        y = None if labels is None or labels.size != size else labels.reshape(-1).astype(np.int64) - 1
        order = rng.permutation(size) if split != "test" else np.arange(size)
        splits[split] = (x[order], None if y is None else y[order])
    return DatasetSplits(
        x_train=splits["train"][0], x_val=splits["val"][0], x_test=splits["test"][0],
        y_train=splits["train"][1], y_val=splits["val"][1], y_test=splits["test"][1],
    )  # fmt: skip


SPEC = register(
    DatasetSpec(
        name="caltech101",
        input_shape=(1, 28, 28),
        input_type="binary",
        likelihood="bernoulli",
        pseudo_init_mean=0.5,
        pseudo_init_std=0.02,
        loader=_load_caltech101,
        description="Caltech 101 Silhouettes 28x28 (split1), binary, 4,100 / 2,264 / 2,307",
        files=(CALTECH101_FILE,),
        download=DownloadPlan(
            (
                RemoteFile(
                    CALTECH101_FILE,
                    ("https://people.cs.umass.edu/~marlin/data/caltech101_silhouettes_28_split1.mat",),
                    "sha256:eb6735e8d84b1850fabc5590124aab1755e90c9fd28123585324398405e1e42a",
                    max_bytes=4 << 20,  # the file has 872,124 bytes
                ),
            )
        ),
    )
)
