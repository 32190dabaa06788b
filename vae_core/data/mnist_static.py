"""Static MNIST: Larochelle & Murray's fixed binarisation of MNIST (50,000 / 10,000 / 10,000).

Reads `mnist_static/binarized_mnist_static.npz` (keys train/valid/test, uint8 (N, 784)) or the three
published `.amat` text files; `download` fetches the `.amat` files and converts them to the npz.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .arrays import SPLIT_SEED, check_count, check_pixels, check_rows, row_major_images
from .formats import read_amat, read_npz, save_npz
from .registry import DatasetSpec, DatasetSplits, DownloadPlan, RemoteFile, locate, register

MNIST_STATIC_SPLIT = (50_000, 10_000, 10_000)
MNIST_STATIC_FOLDER = "mnist_static"
MNIST_STATIC_NPZ = f"{MNIST_STATIC_FOLDER}/binarized_mnist_static.npz"
MNIST_STATIC_AMAT = tuple(f"{MNIST_STATIC_FOLDER}/binarized_mnist_{s}.amat" for s in ("train", "valid", "test"))
LAROCHELLE_URL = "https://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
# Digits 0..9 in the canonical MNIST test set. The static test set is that set binarised and stably
# sorted by digit (Salakhutdinov & Murray's per-class origin; checked pixel by pixel against the
# canonical images and labels), so its labels are these counts in order.
MNIST_TEST_LABEL_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)


def static_test_labels() -> np.ndarray:
    """The digit of each static-MNIST test image: (10,000,) int64, sorted."""
    return np.repeat(np.arange(10, dtype=np.int64), MNIST_TEST_LABEL_COUNTS)


def _load_mnist_static(root: Path) -> DatasetSplits:
    """Static MNIST: the fixed binary images of Larochelle & Murray (2011), split as published.

    Paper/original loader: read the three `.amat` files, shuffle the training set, use validation
    and test as they are; no dynamic binarisation, no labels. Here the shuffle is seeded, and the
    test images get their digits (`static_test_labels`); the training images have none.
    """
    paths = locate("mnist-static", root)
    if len(paths) == 1:
        arrays = list(read_npz(paths[0], ("train", "valid", "test")).values())
        sources = [f"{paths[0]} '{k}'" for k in ("train", "valid", "test")]
    else:
        arrays, sources = [read_amat(p) for p in paths], [str(p) for p in paths]
    for what, array, source, size in zip(("train", "valid", "test"), arrays, sources, MNIST_STATIC_SPLIT):
        check_count("mnist-static", what, len(array), size)
        check_rows(array, source, 784)
        check_pixels(array, source, binary=True)
    train, val, test = (row_major_images(a, 28, 28) for a in arrays)
    train = train[np.random.default_rng(SPLIT_SEED).permutation(len(train))]
    labels = static_test_labels()
    return DatasetSplits(x_train=train, x_val=val, x_test=test, y_test=labels if len(test) == len(labels) else None)


def _convert_amat_to_npz(root: Path) -> None:
    """After `download`: turn the three `.amat` text files into the compact npz, then delete them."""
    arrays = dict(zip(("train", "valid", "test"), (read_amat(root / f) for f in MNIST_STATIC_AMAT)))
    save_npz(root / MNIST_STATIC_NPZ, arrays)
    for f in MNIST_STATIC_AMAT:
        (root / f).unlink()


SPEC = register(
    DatasetSpec(
        name="mnist-static",
        input_shape=(1, 28, 28),
        input_type="binary",
        likelihood="bernoulli",
        pseudo_init_mean=0.05,
        pseudo_init_std=0.01,
        loader=_load_mnist_static,
        description="statically binarised MNIST (Larochelle & Murray), 50,000 / 10,000 / 10,000",
        files=(MNIST_STATIC_NPZ,),
        alternative_files=(MNIST_STATIC_AMAT,),
        download=DownloadPlan(
            files=tuple(
                RemoteFile(path, (LAROCHELLE_URL + Path(path).name,), checksum, max_bytes=limit)
                for path, checksum, limit in zip(
                    MNIST_STATIC_AMAT,
                    (  # sha256 as listed by tensorflow_datasets for these URLs
                        "sha256:ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d",
                        "sha256:1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2",
                        "sha256:e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c",
                    ),
                    (128 << 20, 32 << 20, 32 << 20),  # the files have 78.4 MB, 15.7 MB, 15.7 MB
                )
            ),
            convert=_convert_amat_to_npz,
        ),
    )
)
