"""Dataset loaders: every test writes tiny files in the real formats under tmp_path.

No test reads the shared data folder, except `test_real_datasets`, which runs only when
$VAMPVIZ_DATA_DIR points at a folder holding the real files.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from vae_core import data, paths
from vae_core.errors import DatasetError


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    """Keep every cache inside tmp_path, and ignore a data dir set by the caller."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(paths.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(paths.DATA_DIR_ENV, raising=False)


def _no_network(*args, **kwargs):
    raise AssertionError("urlopen must not be called")


# --------------------------------------------------------------------------------------------
# Writers for tiny files in the real formats.


def write_idx(path: Path, array: np.ndarray, *, compress: bool = True) -> None:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if compress else payload)


def write_mnist_like(root: Path, folder: str, n_train: int, n_test: int, *, train_name=None):
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    train_labels = (np.arange(n_train) % 10).astype(np.uint8)
    test_labels = (np.arange(n_test) % 10).astype(np.uint8)
    write_idx(root / folder / (train_name or "train-images-idx3-ubyte.gz"), train)
    write_idx(root / folder / "train-labels-idx1-ubyte.gz", train_labels)
    write_idx(root / folder / "t10k-images-idx3-ubyte.gz", test)
    write_idx(root / folder / "t10k-labels-idx1-ubyte.gz", test_labels)
    return train, train_labels, test, test_labels


def py2_pickle_of(array: np.ndarray) -> bytes:
    """A protocol-0 pickle of [array] exactly as Python 2 + numpy 1.x wrote freyfaces.pkl."""
    assert array.dtype == np.uint8 and array.ndim == 2
    payload = "".join(f"\\x{b:02x}" for b in array.tobytes())
    text = (
        "(lp0\ncnumpy.core.multiarray\n_reconstruct\np1\n(cnumpy\nndarray\np2\n(I0\ntp3\nS'b'\np4\ntp5\nRp6\n"
        f"(I1\n(I{array.shape[0]}\nI{array.shape[1]}\ntp7\ncnumpy\ndtype\np8\n(S'u1'\np9\nI0\nI1\ntp10\nRp11\n"
        "(I3\nS'|'\np12\nNNNI-1\nI-1\nI0\ntp13\nbI00\n"
        f"S'{payload}'\np14\ntp15\nba."
    )
    return text.encode("ascii")


def column_major(images: np.ndarray) -> np.ndarray:
    """Upright (N, 28, 28) -> (N, 784) rows in MATLAB's column-major order."""
    return images.transpose(0, 2, 1).reshape(len(images), -1)


def upright_marker_images(n: int) -> np.ndarray:
    """(n, 28, 28) binary images, each with a bar along the top rows and a dot at the left edge:
    easy to tell from their transposes and flips."""
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 0:3, 4:24] = 1  # bar at the top
    images[:, 14, 0] = 1  # dot at the left edge
    return images


# --------------------------------------------------------------------------------------------
# Registry, digits, availability.


def test_registry_flags_follow_the_paper():
    expect = {  # name: (input_shape, input_type, likelihood, dynamic, pseudo mean, pseudo std)
        "mnist-static": ((1, 28, 28), "binary", "bernoulli", False, 0.05, 0.01),
        "mnist": ((1, 28, 28), "binary", "bernoulli", True, 0.05, 0.01),
        "fashion-mnist": ((1, 28, 28), "binary", "bernoulli", True, 0.05, 0.01),
        "omniglot": ((1, 28, 28), "binary", "bernoulli", True, 0.05, 0.01),
        "caltech101": ((1, 28, 28), "binary", "bernoulli", False, 0.5, 0.02),
        "freyfaces": ((1, 28, 20), "gray", "logistic", False, 0.5, 0.02),
    }
    for name, (shape, input_type, likelihood, dynamic, mean, std) in expect.items():
        spec = data.get_spec(name)
        assert spec.input_shape == shape
        assert spec.input_type == input_type
        assert spec.likelihood == likelihood
        assert spec.dynamic_binarization is dynamic
        assert (spec.pseudo_init_mean, spec.pseudo_init_std) == (mean, std)
        assert name in data.DOWNLOADS
    assert data.MNIST_SPLIT == (50_000, 10_000, 10_000)
    assert data.MNIST_STATIC_SPLIT == (50_000, 10_000, 10_000)
    assert data.OMNIGLOT_SPLIT == (23_000, 1_345, 8_070)
    assert data.CALTECH101_SPLIT == (4_100, 2_264, 2_307)
    assert data.FREYFACES_SPLIT == (1_565, 200, 200)


def test_likelihood_names_exist():
    from vae_core.likelihoods import LIKELIHOODS

    assert {spec.likelihood for spec in data.DATASETS.values()} <= set(LIKELIHOODS)


def test_digits_splits_are_deterministic():
    a, b = data.load_dataset("digits"), data.load_dataset("digits")
    for field in ("x_train", "x_val", "x_test", "y_train", "y_val", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert (len(a.x_train), len(a.x_val), len(a.x_test)) == data.DIGITS_SPLIT
    assert set(np.unique(a.x_val)) <= {0.0, 1.0} and len(np.unique(a.x_train)) > 2
    assert data.get_spec("digits").available("/nonexistent")


def test_unknown_dataset():
    with pytest.raises(DatasetError, match="unknown dataset"):
        data.load_dataset("cifar")


def test_available_accepts_alternative_file_sets(tmp_path):
    assert not data.get_spec("mnist").available(tmp_path)
    write_mnist_like(tmp_path, "mnist", 3, 2, train_name="train-images-idx3-ubyte.rebuilt.gz")
    assert data.get_spec("mnist").available(tmp_path)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()  # shared by both sets
    assert not data.get_spec("mnist").available(tmp_path)

    assert not data.get_spec("omniglot").available(tmp_path)
    folder = tmp_path / "omniglot_raw_105"
    folder.mkdir()
    (folder / "images_background.npz").touch()
    assert not data.get_spec("omniglot").available(tmp_path)
    (folder / "images_evaluation.npz").touch()
    assert data.get_spec("omniglot").available(tmp_path)

    for f in data.MNIST_STATIC_AMAT:
        (tmp_path / f).parent.mkdir(exist_ok=True)
        (tmp_path / f).touch()
    assert data.get_spec("mnist-static").available(tmp_path)


def test_available_uses_the_env_var(tmp_path, monkeypatch):
    write_mnist_like(tmp_path, "mnist", 3, 2)
    assert not data.get_spec("mnist").available()
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path))
    assert data.get_spec("mnist").available()


# --------------------------------------------------------------------------------------------
# Missing files: one line that says which file, where, and how to get it; never a download.


@pytest.mark.parametrize("name", ["mnist-static", "mnist", "fashion-mnist", "omniglot", "caltech101", "freyfaces"])
def test_missing_file_error_names_file_place_and_source(tmp_path, monkeypatch, name):
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    with pytest.raises(DatasetError) as info:
        data.load_dataset(name, tmp_path)
    message = str(info.value)
    assert "\n" not in message
    first = data.get_spec(name).files[0]
    assert str(tmp_path / first) in message
    assert f"python -m vae_core download {name}" in message
    assert paths.DATA_DIR_ENV in message
    assert "http" in message


def test_missing_fashion_mnist_images_with_labels_present(tmp_path):
    write_idx(tmp_path / "fashion_mnist" / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    write_idx(tmp_path / "fashion_mnist" / "t10k-labels-idx1-ubyte.gz", np.zeros(2, np.uint8))
    assert not data.get_spec("fashion-mnist").available(tmp_path)
    with pytest.raises(DatasetError) as info:
        data.load_dataset("fashion-mnist", tmp_path)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert data.FASHION_MNIST_URL + "train-images-idx3-ubyte.gz" in message


def test_missing_error_mentions_alternatives(tmp_path):
    with pytest.raises(DatasetError, match="images_background.npz") as info:
        data.load_dataset("omniglot", tmp_path)
    assert "chardata.mat" in str(info.value)
    with pytest.raises(DatasetError, match="binarized_mnist_train.amat") as info:
        data.load_dataset("mnist-static", tmp_path)
    assert data.LAROCHELLE_URL in str(info.value)


# --------------------------------------------------------------------------------------------
# Readers.


def test_read_idx_gzipped_and_plain(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "a", array, compress=False)
    ints = np.array([1, -2, 70000], np.int32)
    write_idx(tmp_path / "i.gz", ints)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a.gz"), array)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a"), array)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "i.gz"), ints)


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04hello")
    with pytest.raises(DatasetError, match="magic"):
        data.read_idx(tmp_path / "bad")
    write_idx(tmp_path / "a", np.zeros((2, 3), np.uint8), compress=False)
    (tmp_path / "short").write_bytes((tmp_path / "a").read_bytes()[:-1])
    with pytest.raises(DatasetError, match="truncated"):
        data.read_idx(tmp_path / "short")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(b"\0\0\x08\x01" + b"\0" * 8)[:-6])
    with pytest.raises(DatasetError):
        data.read_idx(tmp_path / "broken.gz")


def test_read_amat_fast_and_general_paths(tmp_path):
    rows = np.random.default_rng(0).integers(0, 2, (5, 784)).astype(np.uint8)
    (tmp_path / "a.amat").write_text("\n".join(" ".join(map(str, r)) for r in rows) + "\n")
    (tmp_path / "b.amat").write_text("\n".join(" ".join(f"{v:.1f}" for v in r) for r in rows))
    np.testing.assert_array_equal(data.read_amat(tmp_path / "a.amat"), rows)
    np.testing.assert_array_equal(data.read_amat(tmp_path / "b.amat"), rows)
    (tmp_path / "c.amat").write_text("0 1 1\n1 0\n")
    with pytest.raises(DatasetError):
        data.read_amat(tmp_path / "c.amat")
    (tmp_path / "d.amat").write_text("0 2 1\n")
    with pytest.raises(DatasetError, match="binary"):
        data.read_amat(tmp_path / "d.amat")


def test_read_mat_requires_keys(tmp_path):
    scipy.io.savemat(tmp_path / "m.mat", {"a": np.ones((2, 2))})
    assert data.read_mat(tmp_path / "m.mat", ("a",))["a"].shape == (2, 2)
    with pytest.raises(DatasetError, match="lacks"):
        data.read_mat(tmp_path / "m.mat", ("a", "b"))
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 20)
    with pytest.raises(DatasetError):
        data.read_mat(tmp_path / "junk.mat", ("a",))


def test_safe_pickle_reads_a_python2_numpy_pickle(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(2, 6) * 20
    raw = py2_pickle_of(array)
    np.testing.assert_array_equal(pickle.loads(raw, encoding="latin1")[0], array)  # the writer is right
    (tmp_path / "p.pkl").write_bytes(raw)
    content = data.read_safe_pickle(tmp_path / "p.pkl")
    assert isinstance(content, list) and len(content) == 1
    np.testing.assert_array_equal(content[0], array)


@pytest.mark.parametrize(
    "payload",
    [
        b"cos\nsystem\n(S'touch PWNED'\ntR.",  # protocol 0
        b"cposix\nsystem\n(S'touch PWNED'\ntR.",
        b"c__builtin__\neval\n(S'1+1'\ntR.",
        pickle.dumps(print, protocol=4),  # any other global, any protocol
    ],
)
def test_safe_pickle_rejects_other_globals(tmp_path, monkeypatch, payload):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "freyfaces").mkdir()
    (tmp_path / "freyfaces" / "freyfaces.pkl").write_bytes(payload)
    with pytest.raises(DatasetError, match="refusing to unpickle"):
        data.read_safe_pickle(tmp_path / "freyfaces" / "freyfaces.pkl")
    with pytest.raises(DatasetError, match="refusing to unpickle"):
        data.load_dataset("freyfaces", tmp_path)
    assert not (tmp_path / "PWNED").exists()


def test_safe_pickle_rejects_garbage(tmp_path):
    (tmp_path / "g.pkl").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DatasetError, match="not a readable pickle"):
        data.read_safe_pickle(tmp_path / "g.pkl")


# --------------------------------------------------------------------------------------------
# Loaders, each with split sizes shrunk to fit tiny files.


@pytest.mark.parametrize("name, folder", [("mnist", "mnist"), ("fashion-mnist", "fashion_mnist")])
def test_idx_loader_splits_scales_and_binarises(tmp_path, monkeypatch, name, folder):
    monkeypatch.setattr(data, "MNIST_SPLIT", (8, 2, 3))
    train, train_labels, test, test_labels = write_mnist_like(tmp_path, folder, 10, 3)
    splits = data.load_dataset(name, tmp_path)
    assert splits.x_train.shape == (8, 1, 28, 28) and splits.x_val.shape == (2, 1, 28, 28)
    assert splits.x_test.shape == (3, 1, 28, 28)
    for x in (splits.x_train, splits.x_val, splits.x_test):
        assert x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1
    np.testing.assert_allclose(splits.x_train[:, 0], train[:8] / 255.0, rtol=1e-6)  # first 8, in order
    assert set(np.unique(splits.x_val)) | set(np.unique(splits.x_test)) <= {0.0, 1.0}
    np.testing.assert_array_equal(splits.y_train, train_labels[:8])
    np.testing.assert_array_equal(splits.y_val, train_labels[8:])  # the last ones validate
    np.testing.assert_array_equal(splits.y_test, test_labels)
    assert splits.y_train.dtype == np.int64
    # fixed seeds: the same binarised validation and test sets every time
    again = data.load_dataset(name, tmp_path)
    np.testing.assert_array_equal(again.x_val, splits.x_val)
    np.testing.assert_array_equal(again.x_test, splits.x_test)


def test_mnist_reads_the_rebuilt_training_file(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MNIST_SPLIT", (4, 1, 2))
    train, *_ = write_mnist_like(tmp_path, "mnist", 5, 2, train_name="train-images-idx3-ubyte.rebuilt.gz")
    splits = data.load_dataset("mnist", tmp_path)
    np.testing.assert_allclose(splits.x_train[:, 0], train[:4] / 255.0, rtol=1e-6)


def test_mnist_wrong_sizes_are_an_error(tmp_path):
    write_mnist_like(tmp_path, "mnist", 10, 3)
    with pytest.raises(DatasetError, match="expected 60000"):
        data.load_dataset("mnist", tmp_path)


def _static_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, (n, 784)).astype(np.uint8)


def test_mnist_static_from_npz_and_amat(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MNIST_STATIC_SPLIT", (6, 2, 3))
    arrays = {"train": _static_rows(6, 0), "valid": _static_rows(2, 1), "test": _static_rows(3, 2)}
    npz_root, amat_root = tmp_path / "npz", tmp_path / "amat"
    (npz_root / "mnist_static").mkdir(parents=True)
    np.savez(npz_root / data.MNIST_STATIC_NPZ, **arrays)
    (amat_root / "mnist_static").mkdir(parents=True)
    for f, rows in zip(data.MNIST_STATIC_AMAT, arrays.values()):
        (amat_root / f).write_text("\n".join(" ".join(map(str, r)) for r in rows) + "\n")

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
    np.savez(tmp_path / data.MNIST_STATIC_NPZ, train=_static_rows(6, 0) * 3, valid=_static_rows(2, 1),
             test=_static_rows(3, 2))  # fmt: skip
    with pytest.raises(DatasetError, match="expected 50000"):
        data.load_dataset("mnist-static", tmp_path)
    monkeypatch.setattr(data, "MNIST_STATIC_SPLIT", (6, 2, 3))
    with pytest.raises(DatasetError, match="binary"):
        data.load_dataset("mnist-static", tmp_path)


def _write_caltech(root: Path, sizes=(5, 3, 4)) -> dict:
    """Silhouettes with the object = 0 on background 1, column-major; the label of image i is
    encoded as the number of object pixels in its bottom row, so shuffles can be checked."""
    contents, labels = {}, {}
    for split, n in zip(("train", "val", "test"), sizes):
        images = upright_marker_images(n)
        y = np.arange(n) + 1  # 1-based, like the file
        for i, label in enumerate(y):
            images[i, 27, :label] = 1
        contents[f"{split}_data"] = column_major(1 - images).astype(np.uint8)
        contents[f"{split}_labels"] = y.reshape(-1, 1).astype(np.uint8)
        labels[split] = y
    (root / "caltech101_silhouettes").mkdir(parents=True)
    scipy.io.savemat(root / data.CALTECH101_FILE, contents)
    return labels


def test_caltech101_upright_inverted_and_labels_follow_images(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "CALTECH101_SPLIT", (5, 3, 4))
    _write_caltech(tmp_path)
    splits = data.load_dataset("caltech101", tmp_path)
    assert (splits.x_train.shape, splits.x_val.shape, splits.x_test.shape) == (
        (5, 1, 28, 28), (3, 1, 28, 28), (4, 1, 28, 28))  # fmt: skip
    for x, y in ((splits.x_train, splits.y_train), (splits.x_val, splits.y_val), (splits.x_test, splits.y_test)):
        assert x.dtype == np.float32 and set(np.unique(x)) == {0.0, 1.0}
        assert np.all(x[:, 0, 0:3, 4:24] == 1), "the bar must be at the top: images are upright"
        assert np.all(x[:, 0, 14, 0] == 1) and np.all(x[:, 0, 0, 14] == 1)
        assert np.all(x[:, 0, 10, 10] == 0), "background must be 0 after the inversion"
        assert y.dtype == np.int64 and y.min() >= 0
        np.testing.assert_array_equal(x[:, 0, 27].sum(axis=1), y + 1)  # labels 0-based, kept with images
    np.testing.assert_array_equal(splits.y_test, np.arange(4))  # the test set keeps the file order


def test_caltech101_wrong_size(tmp_path):
    _write_caltech(tmp_path)
    with pytest.raises(DatasetError, match="expected 4100"):
        data.load_dataset("caltech101", tmp_path)


def test_freyfaces_scaling_shape_and_seeded_split(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FREYFACES_SPLIT", (6, 2, 2))
    faces = (np.arange(10 * 560) % 256).astype(np.uint8).reshape(10, 560)
    faces[:, 0] = np.arange(10)  # identifies each face
    (tmp_path / "freyfaces").mkdir()
    (tmp_path / data.FREYFACES_FILE).write_bytes(py2_pickle_of(faces))
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
    (tmp_path / data.FREYFACES_FILE).write_bytes(py2_pickle_of(np.zeros((3, 7), np.uint8)))
    with pytest.raises(DatasetError, match="560"):
        data.load_dataset("freyfaces", tmp_path)


def test_omniglot_chardata(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "OMNIGLOT_SPLIT", (6, 2, 3))
    pool = upright_marker_images(8).astype(np.float64) * 0.8
    pool[:, 20, 20] = np.linspace(0.1, 0.9, 8)  # a grey pixel that identifies each image
    test = upright_marker_images(3).astype(np.float64)
    alphabets = np.array([0, 0, 1, 1, 2, 2, 0, 1, 0, 1, 2])  # 8 pool + 3 test images
    chars = np.array([1, 2, 1, 1, 1, 2, 1, 1, 2, 1, 1])
    onehot = np.eye(3)[alphabets].T
    (tmp_path / "omniglot").mkdir()
    scipy.io.savemat(tmp_path / data.OMNIGLOT_CHARDATA, {
        "data": column_major(pool).T, "testdata": column_major(test).T,  # (784, N), like IWAE's file
        "target": onehot[:, :8], "testtarget": onehot[:, 8:],
        "targetchar": chars[None, :8], "testtargetchar": chars[None, 8:],
    })  # fmt: skip
    splits = data.load_dataset("omniglot", tmp_path)
    assert (splits.x_train.shape, splits.x_val.shape, splits.x_test.shape) == (
        (6, 1, 28, 28), (2, 1, 28, 28), (3, 1, 28, 28))  # fmt: skip
    assert np.all(splits.x_train[:, 0, 0:3, 4:24] == np.float32(0.8)), "images must be upright"
    assert np.all(splits.x_test[:, 0, 0:3, 4:24] == 1)
    assert set(np.unique(splits.x_val)) <= {0.0, 1.0} and set(np.unique(splits.x_test)) <= {0.0, 1.0}
    # train + val are a seeded shuffle of the pool, validation last
    ids = np.rint((splits.x_train[:, 0, 20, 20] - 0.1) / 0.8 * 7).astype(int)
    assert len(set(ids)) == 6
    # character labels: one id per (alphabet, character) pair, shared by train and test
    pairs = list(zip(alphabets, chars))
    expected_ids = {p: i for i, p in enumerate(sorted(set(pairs)))}
    np.testing.assert_array_equal(splits.y_train, [expected_ids[pairs[i]] for i in ids])
    np.testing.assert_array_equal(splits.y_test, [expected_ids[p] for p in pairs[8:]])
    assert data.get_spec("omniglot").dynamic_binarization


def _write_omniglot_raw(root: Path) -> None:
    folder = root / "omniglot_raw_105"
    folder.mkdir(parents=True)
    background = np.ones((3, 2, 105, 105), bool)  # True = white paper
    background[0, 0] = False  # all ink
    background[0, 1, :52, :] = False  # top half ink (rows 0..51)
    evaluation = np.ones((2, 2, 105, 105), bool)
    evaluation[1, 1, :15, :15] = False  # 15x15 ink = exactly 4x4 output pixels
    np.savez_compressed(folder / "images_background.npz", images=background,
                        labels=np.repeat(np.arange(3)[:, None], 2, axis=1))
    np.savez_compressed(folder / "images_evaluation.npz", images=evaluation,
                        labels=np.repeat(np.arange(2)[:, None], 2, axis=1))  # fmt: skip


def test_omniglot_raw_fallback_downsamples_and_splits(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "OMNIGLOT_SPLIT", (4, 2, 3))  # 10 images: one left over, as 45 are
    _write_omniglot_raw(tmp_path)
    images, labels = data._omniglot_from_raw(tmp_path, tuple(tmp_path / f for f in data.OMNIGLOT_RAW))
    assert images.shape == (10, 1, 28, 28) and images.dtype == np.float32
    np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4])  # evaluation ids follow
    assert np.all(images[0] == 1) and np.all(images[2] == 0)  # all ink -> 1, blank paper -> 0
    assert np.all(images[1, 0, :13] == 1) and np.all(images[1, 0, 14:] == 0)  # 52 / 3.75 = 13.87
    np.testing.assert_allclose(images[1, 0, 13], (52 - 13 * 3.75) / 3.75, rtol=1e-6)
    assert np.all(images[9, 0, :4, :4] == 1) and images[9].sum() == 16
    np.testing.assert_allclose(images.sum(axis=(1, 2, 3)), [784, 784 * 52 / 105, 0, 0, 0, 0, 0, 0, 0, 16], rtol=1e-5)

    splits = data.load_dataset("omniglot", tmp_path)
    assert (len(splits.x_train), len(splits.x_val), len(splits.x_test)) == (4, 2, 3)
    assert splits.y_train.dtype == np.int64 and len(splits.y_test) == 3
    assert set(np.unique(splits.x_val)) <= {0.0, 1.0}


def test_area_resize_weights_cover_each_output_pixel():
    weights = data._area_resize_matrix(105, 28)
    np.testing.assert_array_equal(weights.sum(axis=1), 15)  # 3.75 input pixels, in quarters
    np.testing.assert_array_equal(weights.sum(axis=0), 4)  # every input pixel counted once


def test_omniglot_raw_cache_in_a_writable_data_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "OMNIGLOT_SPLIT", (4, 2, 3))
    _write_omniglot_raw(tmp_path)
    first = data.load_dataset("omniglot", tmp_path)
    cache = tmp_path / "omniglot_raw_105" / data.OMNIGLOT_CACHE_NAME
    assert cache.exists()
    monkeypatch.setattr(data, "_raw_to_28", lambda images: pytest.fail("the cache was not used"))
    second = data.load_dataset("omniglot", tmp_path)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(first.y_test, second.y_test)


def test_omniglot_raw_cache_goes_home_when_the_data_dir_is_read_only(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "OMNIGLOT_SPLIT", (4, 2, 3))
    _write_omniglot_raw(tmp_path)
    folder = tmp_path / "omniglot_raw_105"
    folder.chmod(0o555)
    try:
        data.load_dataset("omniglot", tmp_path)
        assert sorted(p.name for p in folder.iterdir()) == ["images_background.npz", "images_evaluation.npz"]
    finally:
        folder.chmod(0o755)
    assert (tmp_path / "cache" / "derived" / data.OMNIGLOT_CACHE_NAME).exists()


def test_derived_cache_dir_defaults_to_home(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.CACHE_DIR_ENV)
    assert data._derived_cache_dir() == tmp_path / "home" / ".cache" / "vampviz" / "derived"


def test_omniglot_stale_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "OMNIGLOT_SPLIT", (4, 2, 3))
    _write_omniglot_raw(tmp_path)
    data.load_dataset("omniglot", tmp_path)
    folder = tmp_path / "omniglot_raw_105"
    with np.load(folder / "images_evaluation.npz") as npz:
        images, labels = npz["images"].copy(), npz["labels"]
    images[0, 0] = False  # different raw data: all ink
    np.savez_compressed(folder / "images_evaluation.npz", images=images, labels=labels)
    rebuilt, _ = data._omniglot_from_raw(tmp_path, tuple(tmp_path / f for f in data.OMNIGLOT_RAW))
    assert np.all(rebuilt[6] == 1)


# --------------------------------------------------------------------------------------------
# Downloads, with urlopen faked or pointed at local files.


class FakeResponse(io.BytesIO):
    pass


def fake_urlopen(table: dict):
    """urlopen that serves bytes from table by URL, raises URLError for bytes=None."""
    calls = []

    def urlopen(request, timeout=None):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        calls.append(url)
        if table.get(url) is None:
            raise urllib.error.URLError("unreachable")
        return FakeResponse(table[url])

    urlopen.calls = calls
    return urlopen


def _sha256(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def test_download_from_a_file_url_verifies_and_renames(tmp_path, monkeypatch):
    source = tmp_path / "source.pkl"
    source.write_bytes(py2_pickle_of(np.zeros((10, 560), np.uint8)))
    remote = data.RemoteFile(data.FREYFACES_FILE, (source.as_uri(),), _sha256(source.read_bytes()))
    monkeypatch.setitem(data.DOWNLOADS, "freyfaces", data.DownloadPlan((remote,)))
    root = tmp_path / "data"
    paths = data.download("freyfaces", root, log=lambda m: None)
    assert paths == [root / data.FREYFACES_FILE]
    assert paths[0].read_bytes() == source.read_bytes()
    assert os.listdir(root / "freyfaces") == ["freyfaces.pkl"]  # no temporary files left
    assert data.get_spec("freyfaces").available(root)
    # already there: nothing is fetched again
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    assert data.download("freyfaces", root, log=lambda m: None) == paths


def test_download_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch):
    url = "https://example.org/freyfaces.pkl"
    remote = data.RemoteFile(data.FREYFACES_FILE, (url,), _sha256(b"the right bytes"))
    monkeypatch.setitem(data.DOWNLOADS, "freyfaces", data.DownloadPlan((remote,)))
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen({url: b"tampered bytes"}))
    with pytest.raises(DatasetError, match="checksum mismatch") as info:
        data.download("freyfaces", tmp_path, log=lambda m: None)
    assert "\n" not in str(info.value) and url in str(info.value)
    assert not (tmp_path / data.FREYFACES_FILE).exists()
    assert os.listdir(tmp_path / "freyfaces") == []


def test_download_tries_mirrors_in_order(tmp_path, monkeypatch):
    good = b"\0" * 100
    urls = ("https://dead.example/t", "https://bad.example/t", "https://good.example/t")
    files = tuple(data.RemoteFile(f"mnist/{f}", urls, _sha256(good)) for f in data.IDX_FILES)
    monkeypatch.setitem(data.DOWNLOADS, "mnist", data.DownloadPlan(files))
    opener = fake_urlopen({urls[0]: None, urls[1]: b"wrong", urls[2]: good})
    monkeypatch.setattr(urllib.request, "urlopen", opener)
    data.download("mnist", tmp_path, log=lambda m: None)
    assert opener.calls == list(urls) * 4
    assert all((tmp_path / "mnist" / f).read_bytes() == good for f in data.IDX_FILES)


def test_download_all_mirrors_failing(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen({}))
    with pytest.raises(DatasetError, match="could not download caltech101_silhouettes/.*unreachable"):
        data.download("caltech101", tmp_path, log=lambda m: None)


def test_download_replaces_a_corrupt_file_and_keeps_a_good_one(tmp_path, monkeypatch):
    urls = {f: f"https://x.example/{f}" for f in data.IDX_FILES}
    files = tuple(data.RemoteFile(f"mnist/{f}", (urls[f],), _sha256(f.encode())) for f in data.IDX_FILES)
    monkeypatch.setitem(data.DOWNLOADS, "mnist", data.DownloadPlan(files))
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / data.IDX_FILES[1]).write_bytes(data.IDX_FILES[1].encode())  # good
    (tmp_path / "mnist" / data.IDX_FILES[2]).write_bytes(b"corrupt")
    opener = fake_urlopen({u: f.encode() for f, u in urls.items()})
    monkeypatch.setattr(urllib.request, "urlopen", opener)
    data.download("mnist", tmp_path, log=lambda m: None)
    assert sorted(opener.calls) == sorted(urls[f] for f in (data.IDX_FILES[0], *data.IDX_FILES[2:]))
    assert (tmp_path / "mnist" / data.IDX_FILES[2]).read_bytes() == data.IDX_FILES[2].encode()


def test_download_refuses_a_read_only_data_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    tmp_path.joinpath("ro").mkdir(mode=0o555)
    try:
        with pytest.raises(DatasetError, match="read-only"):
            data.download("freyfaces", tmp_path / "ro", log=lambda m: None)
    finally:
        tmp_path.joinpath("ro").chmod(0o755)


def test_download_embedded_dataset_is_a_no_op(tmp_path):
    assert data.download("digits", tmp_path, log=lambda m: None) == []


def test_download_static_mnist_converts_amat_to_npz(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MNIST_STATIC_SPLIT", (4, 2, 3))
    rows = {"train": _static_rows(4, 0), "valid": _static_rows(2, 1), "test": _static_rows(3, 2)}
    served, files = {}, []
    for path, (split, r) in zip(data.MNIST_STATIC_AMAT, rows.items()):
        text = ("\n".join(" ".join(map(str, row)) for row in r) + "\n").encode()
        url = data.LAROCHELLE_URL + Path(path).name
        served[url] = text
        files.append(data.RemoteFile(path, (url,), _sha256(text)))
    plan = data.DOWNLOADS["mnist-static"]
    assert [f.urls for f in plan.files] == [(u,) for u in served]  # the real plan fetches these URLs
    monkeypatch.setitem(data.DOWNLOADS, "mnist-static", data.DownloadPlan(tuple(files), plan.convert))
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen(served))
    assert data.download("mnist-static", tmp_path, log=lambda m: None) == [tmp_path / data.MNIST_STATIC_NPZ]
    assert os.listdir(tmp_path / "mnist_static") == ["binarized_mnist_static.npz"]  # .amat files removed
    splits = data.load_dataset("mnist-static", tmp_path)
    np.testing.assert_array_equal(splits.x_test[:, 0], rows["test"].reshape(-1, 28, 28))


def test_file_checksum_kinds(tmp_path):
    raw = b"hello vampprior\n"
    (tmp_path / "f").write_bytes(raw)
    assert data.file_checksum(tmp_path / "f", "md5") == hashlib.md5(raw).hexdigest()
    assert data.file_checksum(tmp_path / "f", "sha256") == hashlib.sha256(raw).hexdigest()
    # what `git hash-object` prints
    assert data.file_checksum(tmp_path / "f", "git-blob") == hashlib.sha1(b"blob 16\0" + raw).hexdigest()


def test_every_download_has_a_checksum_and_a_url():
    for name, plan in data.DOWNLOADS.items():
        assert tuple(f.path for f in plan.files) == data.get_spec(name).files or plan.convert is not None
        for remote in plan.files:
            kind, digest = remote.checksum.split(":")
            assert kind in ("md5", "sha256", "git-blob")
            assert len(digest) == {"md5": 32, "sha256": 64, "git-blob": 40}[kind]
            assert all(url.startswith(("https://", "http://")) for url in remote.urls)


# --------------------------------------------------------------------------------------------
# The real files, only where $VAMPVIZ_DATA_DIR holds them (read at import: the fixture hides it).

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
    if not REAL_DATA_DIR or not (Path(REAL_DATA_DIR) / data.MNIST_STATIC_NPZ).exists():
        pytest.skip(f"{data.MNIST_STATIC_NPZ} is not under ${paths.DATA_DIR_ENV}")
    checksums = {Path(r.path).name: r.checksum for r in data.DOWNLOADS["mnist-static"].files}
    with np.load(Path(REAL_DATA_DIR) / data.MNIST_STATIC_NPZ) as npz:
        for split in ("train", "valid", "test"):
            rows = npz[split]
            text = np.full((len(rows), 2 * rows.shape[1]), ord(" "), np.uint8)
            text[:, 0::2] = rows + ord("0")
            text[:, -1] = ord("\n")
            assert _sha256(text.tobytes()) == checksums[f"binarized_mnist_{split}.amat"]
