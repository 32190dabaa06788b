"""Static MNIST from a tiny npz or three tiny .amat files, and its download's .amat -> npz step."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.data_helpers import (  # noqa: F401
    amat_text,
    binary_rows,
    fake_urlopen,
    isolated_data_dirs,
    sha256_checksum,
    use_plan,
)  # fmt: skip
from vae_core import data
from vae_core.data import mnist_static
from vae_core.errors import DatasetError


def test_mnist_static_from_npz_and_amat(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_static, "MNIST_STATIC_SPLIT", (6, 2, 3))
    arrays = {"train": binary_rows(6, 0), "valid": binary_rows(2, 1), "test": binary_rows(3, 2)}
    npz_root, amat_root = tmp_path / "npz", tmp_path / "amat"
    (npz_root / "mnist_static").mkdir(parents=True)
    np.savez(npz_root / mnist_static.MNIST_STATIC_NPZ, **arrays)
    (amat_root / "mnist_static").mkdir(parents=True)
    for f, rows in zip(mnist_static.MNIST_STATIC_AMAT, arrays.values()):
        (amat_root / f).write_text(amat_text(rows))

    a, b = data.load_dataset("mnist-static", npz_root), data.load_dataset("mnist-static", amat_root)
    for field in ("x_train", "x_val", "x_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.x_train.shape == (6, 1, 28, 28) and a.x_train.dtype == np.float32
    assert a.y_train is None and a.y_val is None and a.y_test is None
    np.testing.assert_array_equal(a.x_val[:, 0], arrays["valid"].reshape(-1, 28, 28))  # as published
    np.testing.assert_array_equal(a.x_test[:, 0], arrays["test"].reshape(-1, 28, 28))
    # the training set is shuffled with a fixed seed: same rows, some order
    assert sorted(map(bytes, a.x_train.astype(np.uint8).reshape(6, -1))) == sorted(map(bytes, arrays["train"]))


def test_mnist_static_rejects_grey_or_miscounted(tmp_path, monkeypatch):
    (tmp_path / "mnist_static").mkdir()
    np.savez(tmp_path / mnist_static.MNIST_STATIC_NPZ, train=binary_rows(6, 0) * 3, valid=binary_rows(2, 1),
             test=binary_rows(3, 2))  # fmt: skip
    with pytest.raises(DatasetError, match="expected 50000"):
        data.load_dataset("mnist-static", tmp_path)
    monkeypatch.setattr(mnist_static, "MNIST_STATIC_SPLIT", (6, 2, 3))
    with pytest.raises(DatasetError, match="binary"):
        data.load_dataset("mnist-static", tmp_path)


def test_download_static_mnist_converts_amat_to_npz(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_static, "MNIST_STATIC_SPLIT", (4, 2, 3))
    rows = {"train": binary_rows(4, 0), "valid": binary_rows(2, 1), "test": binary_rows(3, 2)}
    served, files = {}, []
    for path, r in zip(mnist_static.MNIST_STATIC_AMAT, rows.values()):
        text = amat_text(r).encode()
        url = mnist_static.LAROCHELLE_URL + Path(path).name
        served[url] = text
        files.append(data.RemoteFile(path, (url,), sha256_checksum(text)))
    plan = data.get_spec("mnist-static").download
    assert [f.urls for f in plan.files] == [(u,) for u in served]  # the real plan fetches these URLs
    use_plan(monkeypatch, "mnist-static", data.DownloadPlan(tuple(files), plan.convert))
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen(served))
    assert data.download("mnist-static", tmp_path, log=lambda m: None) == [tmp_path / mnist_static.MNIST_STATIC_NPZ]
    assert os.listdir(tmp_path / "mnist_static") == ["binarized_mnist_static.npz"]  # .amat files removed
    splits = data.load_dataset("mnist-static", tmp_path)
    np.testing.assert_array_equal(splits.x_test[:, 0], rows["test"].reshape(-1, 28, 28))


@pytest.mark.parametrize(
    "bad, expected",
    [
        (np.where(binary_rows(6, 0) == 1, np.nan, 0.0), "NaN"),
        (binary_rows(6, 0).astype(np.int8) - 1, "binary"),
        (binary_rows(6, 0) * 0.5, "binary"),
        (binary_rows(6, 0)[:, :783], "784"),
    ],
)
def test_mnist_static_bad_pixels_name_the_file(tmp_path, monkeypatch, bad, expected):
    monkeypatch.setattr(mnist_static, "MNIST_STATIC_SPLIT", (6, 2, 3))
    (tmp_path / "mnist_static").mkdir()
    np.savez(tmp_path / mnist_static.MNIST_STATIC_NPZ, train=bad, valid=binary_rows(2, 1), test=binary_rows(3, 2))
    with pytest.raises(DatasetError, match=expected) as info:
        data.load_dataset("mnist-static", tmp_path)
    assert str(tmp_path / mnist_static.MNIST_STATIC_NPZ) in str(info.value)


def test_static_test_labels_are_the_canonical_digit_counts_in_order():
    labels = mnist_static.static_test_labels()
    assert labels.shape == (10_000,) and labels.dtype == np.int64
    assert np.all(np.diff(labels) >= 0) and np.bincount(labels).tolist() == list(mnist_static.MNIST_TEST_LABEL_COUNTS)
