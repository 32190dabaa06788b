"""The dataset registry: the paper's flags, availability, the one-line missing-file errors."""

from __future__ import annotations

import urllib.request

import numpy as np
import pytest

from tests.data_helpers import (  # noqa: F401
    isolated_data_dirs,
    no_network,
    write_idx,
    write_mnist_like,
)
from vae_core import data, paths
from vae_core.data import caltech101, freyfaces, mnist, mnist_static, omniglot
from vae_core.errors import DatasetError


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
        assert spec.download is not None
    assert mnist.MNIST_SPLIT == (50_000, 10_000, 10_000)
    assert mnist_static.MNIST_STATIC_SPLIT == (50_000, 10_000, 10_000)
    assert omniglot.OMNIGLOT_SPLIT == (23_000, 1_345, 8_070)
    assert caltech101.CALTECH101_SPLIT == (4_100, 2_264, 2_307)
    assert freyfaces.FREYFACES_SPLIT == (1_565, 200, 200)


def test_likelihood_names_exist():
    from vae_core.likelihoods import LIKELIHOODS

    assert {spec.likelihood for spec in data.DATASETS.values()} <= set(LIKELIHOODS)


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

    for f in mnist_static.MNIST_STATIC_AMAT:
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
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
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
    assert mnist.FASHION_MNIST_MIRRORS[0] + "train-images-idx3-ubyte.gz" in message


def test_missing_error_mentions_alternatives(tmp_path):
    with pytest.raises(DatasetError, match="images_background.npz") as info:
        data.load_dataset("omniglot", tmp_path)
    assert "chardata.mat" in str(info.value)
    with pytest.raises(DatasetError, match="binarized_mnist_train.amat") as info:
        data.load_dataset("mnist-static", tmp_path)
    assert mnist_static.LAROCHELLE_URL in str(info.value)


def test_every_download_has_a_checksum_and_a_url():
    for name, spec in data.DATASETS.items():
        plan = spec.download
        if plan is None:
            assert not spec.files, f"{name} has files but no download plan"
            continue
        assert tuple(f.path for f in plan.files) == spec.files or plan.convert is not None
        for remote in plan.files:
            kind, digest = remote.checksum.split(":")
            assert kind in ("md5", "sha256", "git-blob")
            assert len(digest) == {"md5": 32, "sha256": 64, "git-blob": 40}[kind]
            assert all(url.startswith(("https://", "http://")) for url in remote.urls)


# --------------------------------------------------------------------------------------------
# Every split is checked centrally, whatever the loader returned.


def _fake_dataset(monkeypatch, tmp_path, **overrides) -> str:
    """Register `fake`, whose loader returns digits-shaped splits with `overrides` in place; its one
    file exists under tmp_path, so the error can name it."""
    x = np.full((4, 1, 8, 8), 0.5, np.float32)
    splits = dict(x_train=x, x_val=x.copy(), x_test=x.copy(), y_train=None, y_val=None, y_test=None) | overrides
    (tmp_path / "fake.npz").touch()
    spec = data.DatasetSpec(name="fake", input_shape=(1, 8, 8), input_type="gray", likelihood="gaussian",
                            pseudo_init_mean=0.5, pseudo_init_std=0.1, files=("fake.npz",),
                            loader=lambda root: data.DatasetSplits(**splits))  # fmt: skip
    monkeypatch.setitem(data.DATASETS, "fake", spec)
    return "fake"


def _with(value, index=(0, 0, 3, 3)):
    x = np.full((4, 1, 8, 8), 0.5, np.float32)
    x[index] = value
    return x


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"x_train": _with(np.nan)}, "training images hold NaN"),
        ({"x_val": _with(np.inf)}, r"validation images have pixel values outside \[0, 1\]"),
        ({"x_test": _with(-0.25)}, r"test images have pixel values outside \[0, 1\]"),
        ({"x_train": _with(1.5)}, r"outside \[0, 1\]"),
        ({"x_val": np.zeros((0, 1, 8, 8), np.float32)}, "validation set is empty"),
        ({"x_test": np.zeros((0, 1, 8, 8), np.float32)}, "test set is empty"),
        ({"x_train": np.zeros((4, 1, 8, 7), np.float32)}, "shape"),
        ({"x_train": np.zeros((4, 1, 8, 8), np.float64)}, "float32"),
        ({"y_val": np.arange(3)}, "validation labels"),
        ({"y_test": np.zeros(4, np.float32)}, "test labels"),
    ],
)
def test_load_dataset_checks_every_split(tmp_path, monkeypatch, overrides, expected):
    name = _fake_dataset(monkeypatch, tmp_path, **overrides)
    with pytest.raises(DatasetError, match=expected) as info:
        data.load_dataset(name, tmp_path)
    message = str(info.value)
    assert "\n" not in message and "'fake'" in message and str(tmp_path / "fake.npz") in message


def test_load_dataset_passes_good_splits_through(tmp_path, monkeypatch):
    x = np.linspace(0, 1, 4 * 64, dtype=np.float32).reshape(4, 1, 8, 8)
    name = _fake_dataset(monkeypatch, tmp_path, x_train=x, y_train=np.arange(4))
    splits = data.load_dataset(name, tmp_path)
    assert splits.x_train is x
