"""OMNIGLOT from a tiny chardata.mat (IWAE's layout) or tiny raw 105x105 npz files, and the cache
of the 28x28 fallback images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from tests.data_helpers import column_major, isolated_data_dirs, upright_marker_images  # noqa: F401
from vae_core import data, paths
from vae_core.data import omniglot
from vae_core.errors import DatasetError


def test_omniglot_chardata(tmp_path, monkeypatch):
    monkeypatch.setattr(omniglot, "OMNIGLOT_SPLIT", (6, 2, 3))
    pool = upright_marker_images(8).astype(np.float64) * 0.8
    pool[:, 20, 20] = np.linspace(0.1, 0.9, 8)  # a grey pixel that identifies each image
    test = upright_marker_images(3).astype(np.float64)
    alphabets = np.array([0, 0, 1, 1, 2, 2, 0, 1, 0, 1, 2])  # 8 pool + 3 test images
    chars = np.array([1, 2, 1, 1, 1, 2, 1, 1, 2, 1, 1])
    onehot = np.eye(3)[alphabets].T
    (tmp_path / "omniglot").mkdir()
    scipy.io.savemat(tmp_path / omniglot.OMNIGLOT_CHARDATA, {
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


def write_omniglot_raw(root: Path) -> None:
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
    monkeypatch.setattr(omniglot, "OMNIGLOT_SPLIT", (4, 2, 3))  # 10 images: one left over, as 45 are
    write_omniglot_raw(tmp_path)
    images, labels = omniglot._omniglot_from_raw(tmp_path, tuple(tmp_path / f for f in omniglot.OMNIGLOT_RAW))
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
    weights = omniglot._area_resize_matrix(105, 28)
    np.testing.assert_array_equal(weights.sum(axis=1), 15)  # 3.75 input pixels, in quarters
    np.testing.assert_array_equal(weights.sum(axis=0), 4)  # every input pixel counted once


def test_omniglot_raw_cache_in_a_writable_data_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(omniglot, "OMNIGLOT_SPLIT", (4, 2, 3))
    write_omniglot_raw(tmp_path)
    first = data.load_dataset("omniglot", tmp_path)
    cache = tmp_path / "omniglot_raw_105" / omniglot.OMNIGLOT_CACHE_NAME
    assert cache.exists()
    monkeypatch.setattr(omniglot, "_raw_to_28", lambda images: pytest.fail("the cache was not used"))
    second = data.load_dataset("omniglot", tmp_path)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(first.y_test, second.y_test)


def test_omniglot_raw_cache_goes_home_when_the_data_dir_is_read_only(tmp_path, monkeypatch):
    monkeypatch.setattr(omniglot, "OMNIGLOT_SPLIT", (4, 2, 3))
    write_omniglot_raw(tmp_path)
    folder = tmp_path / "omniglot_raw_105"
    folder.chmod(0o555)
    try:
        data.load_dataset("omniglot", tmp_path)
        assert sorted(p.name for p in folder.iterdir()) == ["images_background.npz", "images_evaluation.npz"]
    finally:
        folder.chmod(0o755)
    assert (tmp_path / "cache" / "derived" / omniglot.OMNIGLOT_CACHE_NAME).exists()


def test_derived_cache_dir_defaults_to_home(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.CACHE_DIR_ENV)
    assert omniglot.derived_cache_dir() == tmp_path / "home" / ".cache" / "vampviz" / "derived"


def test_omniglot_stale_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setattr(omniglot, "OMNIGLOT_SPLIT", (4, 2, 3))
    write_omniglot_raw(tmp_path)
    data.load_dataset("omniglot", tmp_path)
    folder = tmp_path / "omniglot_raw_105"
    with np.load(folder / "images_evaluation.npz") as npz:
        images, labels = npz["images"].copy(), npz["labels"]
    images[0, 0] = False  # different raw data: all ink
    np.savez_compressed(folder / "images_evaluation.npz", images=images, labels=labels)
    rebuilt, _ = omniglot._omniglot_from_raw(tmp_path, tuple(tmp_path / f for f in omniglot.OMNIGLOT_RAW))
    assert np.all(rebuilt[6] == 1)


@pytest.mark.parametrize("bad, expected", [(np.nan, "NaN"), (-0.5, "outside"), (1.25, "outside")])
def test_omniglot_chardata_bad_pixels_name_the_file(tmp_path, monkeypatch, bad, expected):
    monkeypatch.setattr(omniglot, "OMNIGLOT_SPLIT", (6, 2, 3))
    pool = upright_marker_images(8).astype(np.float64)
    pool[3, 5, 5] = bad
    (tmp_path / "omniglot").mkdir()
    scipy.io.savemat(tmp_path / omniglot.OMNIGLOT_CHARDATA, {
        "data": column_major(pool).T, "testdata": column_major(upright_marker_images(3).astype(np.float64)).T})
    with pytest.raises(DatasetError, match=expected) as info:
        data.load_dataset("omniglot", tmp_path)
    assert str(tmp_path / omniglot.OMNIGLOT_CHARDATA) in str(info.value)


def test_omniglot_a_tampered_cache_is_ignored_and_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setattr(omniglot, "OMNIGLOT_SPLIT", (4, 2, 3))
    write_omniglot_raw(tmp_path)
    first = data.load_dataset("omniglot", tmp_path)
    cache = tmp_path / "omniglot_raw_105" / omniglot.OMNIGLOT_CACHE_NAME
    with np.load(cache) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["images"] = np.full_like(arrays["images"], 255)  # 255 / 225 > 1
    np.savez(cache, **arrays)
    again = data.load_dataset("omniglot", tmp_path)
    np.testing.assert_array_equal(again.x_train, first.x_train)
