"""The real dataset files, only where $VAMPVIZ_DATA_DIR holds them (see /work/shared/data/README.md
for what they are); every test here skips without them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.data_helpers import isolated_data_dirs, sha256_checksum  # noqa: F401
from vae_core import data, paths
from vae_core.data import caltech101, mnist_static
from vae_core.errors import DatasetError

# read at import: the autouse fixture hides $VAMPVIZ_DATA_DIR from the tests themselves

REAL_DATA_DIR = os.environ.get(paths.DATA_DIR_ENV)
REAL_SIZES = {
    "mnist-static": (50_000, 10_000, 10_000),
    "mnist": (50_000, 10_000, 10_000),
    "fashion-mnist": (50_000, 10_000, 10_000),
    "omniglot": (23_000, 1_345, 8_070),
    "caltech101": (4_100, 2_264, 2_307),
    "freyfaces": (1_565, 200, 200),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REAL_SIZES))
def test_real_datasets(name):
    if not REAL_DATA_DIR or not data.get_spec(name).available(REAL_DATA_DIR):
        pytest.skip(f"{name} is not under ${paths.DATA_DIR_ENV}")
    spec = data.get_spec(name)
    splits = data.load_dataset(name, REAL_DATA_DIR)
    assert (len(splits.x_train), len(splits.x_val), len(splits.x_test)) == REAL_SIZES[name]
    for x in (splits.x_train, splits.x_val, splits.x_test):
        assert x.dtype == np.float32 and x.shape[1:] == spec.input_shape
        assert 0 <= x.min() and x.max() <= 1 and 0.02 < x.mean() < 0.7
    if spec.input_type == "binary":
        assert set(np.unique(splits.x_val[:100])) <= {0.0, 1.0}
        assert set(np.unique(splits.x_test[:100])) <= {0.0, 1.0}
    if spec.dynamic_binarization:
        assert len(np.unique(splits.x_train[:100])) > 2  # grey, binarised per batch
    if name == "caltech101":  # objects = 1 after the inversion: the published training mean
        assert abs(splits.x_train.mean() - 0.449) < 0.002


@pytest.mark.slow
def test_real_static_mnist_is_larochelles_amat():
    """The npz written back as .amat text has the published sha256 of Larochelle's files."""
    if not REAL_DATA_DIR or not (Path(REAL_DATA_DIR) / mnist_static.MNIST_STATIC_NPZ).exists():
        pytest.skip(f"{mnist_static.MNIST_STATIC_NPZ} is not under ${paths.DATA_DIR_ENV}")
    checksums = {Path(r.path).name: r.checksum for r in data.get_spec("mnist-static").download.files}
    with np.load(Path(REAL_DATA_DIR) / mnist_static.MNIST_STATIC_NPZ) as npz:
        for split in ("train", "valid", "test"):
            rows = npz[split]
            text = np.full((len(rows), 2 * rows.shape[1]), ord(" "), np.uint8)
            text[:, 0::2] = rows + ord("0")
            text[:, -1] = ord("\n")
            assert sha256_checksum(text.tobytes()) == checksums[f"binarized_mnist_{split}.amat"]


@pytest.mark.slow
def test_real_caltech_file_damaged_is_a_dataset_error(tmp_path):
    """The published Caltech .mat, truncated or with a bit flipped in its compressed data."""
    source = Path(REAL_DATA_DIR or "/nonexistent") / caltech101.CALTECH101_FILE
    if not source.exists():
        pytest.skip(f"{caltech101.CALTECH101_FILE} is not under ${paths.DATA_DIR_ENV}")
    raw, n = source.read_bytes(), source.stat().st_size
    variants = [raw[:128], raw[: n // 2], raw[: n - 1]]
    for position in (200, n // 3, n // 2, 2 * n // 3, n - 100):
        flipped = bytearray(raw)
        flipped[position] ^= 0x10
        variants.append(bytes(flipped))
    for index, variant in enumerate(variants):
        root = tmp_path / str(index)
        (root / caltech101.CALTECH101_FILE).parent.mkdir(parents=True)
        (root / caltech101.CALTECH101_FILE).write_bytes(variant)
        with pytest.raises(DatasetError) as info:
            data.load_dataset("caltech101", root)
        assert "\n" not in str(info.value) and str(root / caltech101.CALTECH101_FILE) in str(info.value)


def test_real_static_mnist_test_labels_match_the_canonical_mnist_test_set():
    """Each static test image is the binarisation of the canonical MNIST test image of the same digit
    in stable digit order: no pixel is on where that image is blank or off where it is full."""
    root = Path(REAL_DATA_DIR) if REAL_DATA_DIR else None
    if root is None or not (root / mnist_static.MNIST_STATIC_NPZ).exists() or not data.get_spec("mnist").available(root):
        pytest.skip(f"static and grey MNIST are not both under ${paths.DATA_DIR_ENV}")
    static = data.load_dataset("mnist-static", root)
    grey = data.load_dataset("mnist", root)
    canonical = data.read_idx(root / "mnist" / "t10k-images-idx3-ubyte.gz")
    order = np.argsort(grey.y_test, kind="stable")
    np.testing.assert_array_equal(static.y_test, grey.y_test[order])
    binary = static.x_test[:, 0] > 0.5
    impossible = (binary & (canonical[order] == 0)) | (~binary & (canonical[order] == 255))
    assert not impossible.any(axis=(1, 2)).any()
