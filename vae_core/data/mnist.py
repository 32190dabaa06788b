"""Dynamic MNIST and Fashion-MNIST: grey idx files, binarised afresh for every training batch.

Both read LeCun's four idx files, `{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`, from their own
folder (`mnist/`, `fashion_mnist/`). MNIST also accepts the rebuilt training images described in
the shared data README (`train-images-idx3-ubyte.rebuilt.gz`, the canonical pixels re-gzipped).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .arrays import EVAL_BINARIZATION_SEED, binarize, check_count, row_major_images
from .formats import read_idx
from .registry import DatasetSpec, DatasetSplits, DownloadPlan, RemoteFile, locate, register

MNIST_SPLIT = (50_000, 10_000, 10_000)  # train = first 50,000 of the 60,000, val = last 10,000
# https mirrors first; LeCun's site and the bucket's website endpoint serve http only (checksums guard them)
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
FASHION_MNIST_MIRRORS = (
    "https://fashion-mnist.s3.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
MIB = 1 << 20
IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")  # fmt: skip
# the canonical training images, rebuilt losslessly and re-gzipped (see the shared data README)
MNIST_REBUILT_TRAIN = "mnist/train-images-idx3-ubyte.rebuilt.gz"


def _load_idx_dataset(name: str, root: Path) -> DatasetSplits:
    """Grey MNIST-format images, as the paper's dynamic MNIST.

    Paper/original loader: pixels / 255; train = the first 50,000 training images, validation =
    the last 10,000, test = the 10,000 test images, no shuffle. Training images stay grey
    (binarised for every batch); validation and test are binarised once with a fixed seed.
    """
    paths = locate(name, root)
    train_images, train_labels, test_images, test_labels = (read_idx(p) for p in paths)
    for path, images, labels in ((paths[0], train_images, train_labels), (paths[2], test_images, test_labels)):
        if images.dtype != np.uint8 or images.shape[1:] != (28, 28):
            raise DatasetError(f"{path}: expected uint8 28x28 images, got {images.dtype} {images.shape[1:]}")
        if labels.dtype.kind not in "iu" or labels.shape != images.shape[:1]:
            raise DatasetError(f"dataset {name!r}: the label files do not match the image files")
    n_train, n_val, n_test = MNIST_SPLIT
    check_count(name, "the training file", len(train_images), n_train + n_val)
    check_count(name, "the test file", len(test_images), n_test)
    x_train = row_major_images(train_images, 28, 28, scale=255.0)
    x_test = row_major_images(test_images, 28, 28, scale=255.0)
    y_train, y_test = train_labels.astype(np.int64), test_labels.astype(np.int64)
    return DatasetSplits(
        x_train=x_train[:n_train],
        x_val=binarize(x_train[n_train:], EVAL_BINARIZATION_SEED),
        x_test=binarize(x_test, EVAL_BINARIZATION_SEED + 1),
        y_train=y_train[:n_train],
        y_val=y_train[n_train:],
        y_test=y_test,
    )


def _idx_spec(name: str, folder: str, description: str, mirrors: tuple[str, ...], md5s: tuple[str, ...],
              limits: tuple[int, ...], alternative_files: tuple[tuple[str, ...], ...] = ()) -> DatasetSpec:
    """A grey MNIST-format dataset in `folder`: the paper's dynamic-MNIST settings, the four idx
    files fetched from `mirrors` with their md5s and size limits."""
    plan = DownloadPlan(tuple(
        RemoteFile(f"{folder}/{f}", tuple(m + f for m in mirrors), f"md5:{md5}", max_bytes=limit)
        for f, md5, limit in zip(IDX_FILES, md5s, limits)
    ))  # fmt: skip
    return register(DatasetSpec(
        name=name, input_shape=(1, 28, 28), input_type="binary", likelihood="bernoulli",
        pseudo_init_mean=0.05, pseudo_init_std=0.01, loader=functools.partial(_load_idx_dataset, name),
        dynamic_binarization=True, description=description, files=tuple(f"{folder}/{f}" for f in IDX_FILES),
        alternative_files=alternative_files, download=plan,
    ))  # fmt: skip


MNIST = _idx_spec(
    "mnist", "mnist", "MNIST binarised dynamically, 50,000 / 10,000 / 10,000", MNIST_MIRRORS,
    ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
     "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"),
    (32 * MIB, MIB, 8 * MIB, MIB),  # the files have 9.9 MB, 29 kB, 1.6 MB, 4.5 kB
    alternative_files=((MNIST_REBUILT_TRAIN, *(f"mnist/{f}" for f in IDX_FILES[1:])),),
)  # fmt: skip

FASHION_MNIST = _idx_spec(
    "fashion-mnist", "fashion_mnist",
    "Fashion-MNIST (not in the paper) binarised dynamically, 50,000 / 10,000 / 10,000", FASHION_MNIST_MIRRORS,
    ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
     "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"),
    (64 * MIB, MIB, 16 * MIB, MIB),  # the files have 26 MB, 30 kB, 4.4 MB, 5 kB
)  # fmt: skip
