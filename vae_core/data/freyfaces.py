"""Frey Faces: 1,965 grey 28x20 frames of Brendan Frey's face, 1,565 / 200 / 200.

Reads `freyfaces/freyfaces.pkl`, the Python 2 pickle that the paper's repository ships. Its sha256
is checked before it is unpickled: a file with the published checksum is the published file; any
other file (a re-pickled copy, another release) is still read, by the same array-only unpickler
(`pickles.py`, which can build nothing but plain numeric arrays) and the same checks of type,
dtype, shape and count, with a warning that it is not the file the paper used.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .arrays import SPLIT_SEED, check_count, row_major_images, split_indices
from .downloads import checksum_ok, published_checksum
from .pickles import read_safe_pickle
from .registry import DatasetSpec, DatasetSplits, DownloadPlan, RemoteFile, locate, register

FREYFACES_SPLIT = (1_565, 200, 200)
FREYFACES_FILE = "freyfaces/freyfaces.pkl"
FREYFACES_URL = "https://raw.githubusercontent.com/jmtomczak/vae_vampprior/master/datasets/Freyfaces/freyfaces.pkl"
FREYFACES_MAX_BYTES = 16 << 20  # the published pickle has 3,568,521 bytes


def _load_freyfaces(root: Path) -> DatasetSplits:
    """Frey Faces: grey 28x20 faces for the discretised logistic likelihood, 1,565 / 200 / 200.

    Paper/original loader: the pickle holds a list with one uint8 (1965, 560) array of row-major
    28x20 images; x = (v + 0.5) / 256 (the centres of 256 bins), shuffle, then cut 1,565 / 200 / 200.
    Here the pickle is read with the array-only unpickler and the shuffle is seeded. No labels.
    """
    (path,) = locate("freyfaces", root)
    checksum = published_checksum("freyfaces", FREYFACES_FILE)
    if checksum and not checksum_ok(path, checksum):
        warnings.warn(f"{path} is not the published Frey Faces file (its {checksum.split(':')[0]} differs); "
                      "it is read as plain arrays and checked, but results may not compare with the paper's",
                      stacklevel=3)  # fmt: skip
    content = read_safe_pickle(path, max_bytes=FREYFACES_MAX_BYTES)
    array = content[0] if isinstance(content, (list, tuple)) and content else content
    if not isinstance(array, np.ndarray) or array.ndim != 2 or array.shape[1] != 28 * 20:
        raise DatasetError(f"{path}: expected a list holding one (N, 560) array")
    if array.dtype != np.uint8:
        raise DatasetError(f"{path}: expected uint8 pixels (0..255), got {array.dtype}")
    check_count("freyfaces", str(path), len(array), sum(FREYFACES_SPLIT))
    images = row_major_images((array.astype(np.float32) + 0.5), 28, 20, scale=256.0)
    train, val, test = split_indices(len(images), FREYFACES_SPLIT, SPLIT_SEED)
    return DatasetSplits(x_train=images[train], x_val=images[val], x_test=images[test])


SPEC = register(
    DatasetSpec(
        name="freyfaces",
        input_shape=(1, 28, 20),
        input_type="gray",
        likelihood="logistic",
        pseudo_init_mean=0.5,
        pseudo_init_std=0.02,
        loader=_load_freyfaces,
        description="Frey Faces 28x20 grey (discretised logistic), 1,565 / 200 / 200",
        files=(FREYFACES_FILE,),
        download=DownloadPlan(
            (
                RemoteFile(
                    FREYFACES_FILE,
                    (FREYFACES_URL,),
                    "sha256:3b69410c6a5fd6e03f09012905168be3712373a094a776f7e58fcd0670d2138a",
                    max_bytes=FREYFACES_MAX_BYTES,
                ),
            )
        ),
    )
)
