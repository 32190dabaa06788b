"""Dataset registry and the paper's datasets.

Every dataset is a `DatasetSpec`: its image shape, input type, default likelihood, the paper's
pseudo-input initialisation, and a loader returning `DatasetSplits` with images as float32 arrays
of shape (N, C, H, W) in [0, 1]. Binary datasets with `dynamic_binarization` keep grey training
images; the trainer draws x ~ Bernoulli(grey) afresh for every batch, while validation and test
sets are binarised once with a fixed seed, as in the paper.

The embedded default `digits` (scikit-learn's 8x8 digits) needs no download. The paper's datasets
(Tomczak & Welling 2018: static and dynamic MNIST, OMNIGLOT, Caltech 101 Silhouettes, Frey Faces;
plus Fashion-MNIST) read files from the data directory (`resolve_data_dir`), one subfolder each:

    <data_dir>/mnist_static/binarized_mnist_static.npz   (or the three Larochelle .amat files)
    <data_dir>/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    <data_dir>/omniglot/chardata.mat                     (or omniglot_raw_105/images_*.npz)
    <data_dir>/caltech101_silhouettes/caltech101_silhouettes_28_split1.mat
    <data_dir>/freyfaces/freyfaces.pkl
    <data_dir>/fashion_mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz

Loading never downloads: a missing file raises a one-line `DatasetError` that says where the file
belongs and how to get it. `download(name, data_dir)` fetches a dataset's files from their public
URLs, checks each file's checksum and only then moves it into place. Where the original loader
shuffles with numpy's unseeded global RNG, these loaders use the fixed `SPLIT_SEED`, so every split
is reproducible (the paper's exact orders cannot be: its code never seeds numpy before loading).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import os
import pickle
import stat
import struct
import sys
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import DatasetError

DATA_DIR_ENV = "VAMPVIZ_DATA_DIR"
EVAL_BINARIZATION_SEED = 777  # the paper's seed for binarising validation and test sets once


@dataclass(frozen=True)
class DatasetSplits:
    """Images are float32 (N, C, H, W) in [0, 1]; labels are int64 (N,) or None."""

    x_train: np.ndarray
    x_val: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray | None = None
    y_val: np.ndarray | None = None
    y_test: np.ndarray | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    input_shape: tuple[int, int, int]  # (C, H, W)
    input_type: str  # "binary" or "gray"
    likelihood: str  # default likelihood, a key of likelihoods.LIKELIHOODS
    pseudo_init_mean: float  # the paper's N(mean, std) initialisation of random pseudo-inputs
    pseudo_init_std: float
    loader: Callable[[Path | None], DatasetSplits]
    dynamic_binarization: bool = False
    description: str = ""
    files: tuple[str, ...] = ()  # files the loader needs under the data directory (empty: embedded)
    # other complete sets of files the loader accepts instead of `files` (e.g. a rebuilt file)
    alternative_files: tuple[tuple[str, ...], ...] = ()

    def file_sets(self) -> tuple[tuple[str, ...], ...]:
        """`files` followed by each alternative set; the loader needs any one complete set."""
        return (self.files, *self.alternative_files)

    def available(self, data_dir: str | Path | None = None) -> bool:
        """Whether the dataset can be loaded without a download."""
        if not self.files:
            return True
        root = resolve_data_dir(data_dir)
        return any(all((root / f).exists() for f in fs) for fs in self.file_sets())


DATASETS: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    DATASETS[spec.name] = spec
    return spec


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The folder holding dataset files: the argument, else $VAMPVIZ_DATA_DIR, else ~/.cache/vampviz."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    return Path.home() / ".cache" / "vampviz" / "data"


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise DatasetError(f"unknown dataset {name!r}; choose one of: {known}") from None


def load_dataset(name: str, data_dir: str | Path | None = None) -> DatasetSplits:
    """Load a registered dataset's train/val/test splits (see the module docstring for the format)."""
    spec = get_spec(name)
    splits = spec.loader(resolve_data_dir(data_dir) if spec.files else None)
    for split in (splits.x_train, splits.x_val, splits.x_test):
        if split.shape[1:] != spec.input_shape:
            raise DatasetError(
                f"dataset {name!r} produced images of shape {split.shape[1:]}, expected {spec.input_shape}"
            )
    return splits


def binarize(images: np.ndarray, seed: int) -> np.ndarray:
    """Draw x ~ Bernoulli(images) once with a fixed seed (for validation and test sets)."""
    rng = np.random.default_rng(seed)
    return (rng.random(images.shape, dtype=np.float32) < images).astype(np.float32)


def split_indices(n: int, sizes: tuple[int, int, int], seed: int) -> tuple[np.ndarray, ...]:
    """A seeded permutation of range(n) cut into train/val/test index arrays of the given sizes."""
    assert sum(sizes) <= n, f"split sizes {sizes} exceed {n} examples"
    order = np.random.default_rng(seed).permutation(n)
    a, b, c = sizes
    return order[:a], order[a : a + b], order[a + b : a + b + c]


# --------------------------------------------------------------------------------------------
# digits: scikit-learn's 8x8 handwritten digits (1,797 images, 17 grey levels), embedded.


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


register(
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
