"""OMNIGLOT 28x28: IWAE's `chardata.mat`, or a fallback built from raw 105x105 Omniglot.

`omniglot/chardata.mat` holds the IWAE images and split (24,345 training + 8,070 test). Without
it, `omniglot_raw_105/images_{background,evaluation}.npz` (raw Omniglot, True = white paper) are
area-averaged to 28x28 and split with the same sizes, but not the same images; the 28x28 result
is cached as an npz (next to the raw files, else in the cache folder).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .. import files
from ..errors import DatasetError
from ..paths import cache_dir
from .arrays import (
    EVAL_BINARIZATION_SEED, SPLIT_SEED, binarize, check_count, check_pixels, column_major_images, split_indices,
)  # fmt: skip
from .formats import read_mat, read_npz, save_npz
from .registry import DatasetSpec, DatasetSplits, DownloadPlan, RemoteFile, locate, register

OMNIGLOT_SPLIT = (23_000, 1_345, 8_070)  # the last 1,345 of the shuffled 24,345 training images validate
OMNIGLOT_CHARDATA = "omniglot/chardata.mat"
CHARDATA_MAX_BYTES = 384 << 20  # IWAE's file holds ~220 MB of float64 arrays once inflated
OMNIGLOT_RAW = ("omniglot_raw_105/images_background.npz", "omniglot_raw_105/images_evaluation.npz")
OMNIGLOT_CACHE_NAME = "omniglot_28x28.npz"  # the derived 28x28 fallback images
OMNIGLOT_CACHE_VERSION = "area-average-v1"


def derived_cache_dir() -> Path:
    """Where derived arrays go when the data directory is read-only: $VAMPVIZ_CACHE_DIR/derived,
    else ~/.cache/vampviz/derived."""
    return cache_dir() / "derived"


def _load_omniglot(root: Path) -> DatasetSplits:
    """OMNIGLOT 28x28 grey, binarised dynamically, 23,000 / 1,345 / 8,070.

    Paper/original loader: IWAE's `chardata.mat` (24,345 train + 8,070 test images, column-major),
    shuffle the training images, the last 1,345 are validation; validation and test are binarised
    once. Labels are character ids. Without `chardata.mat` the images come from raw 105x105
    Omniglot (see `_omniglot_from_raw`): the same sizes, but not the IWAE images or split.
    """
    paths = locate("omniglot", root)
    n_train, n_val, n_test = OMNIGLOT_SPLIT
    if len(paths) == 1:
        mat = read_mat(paths[0], ("data", "testdata"), ("target", "testtarget", "targetchar", "testtargetchar"),
                       max_bytes=CHARDATA_MAX_BYTES)  # fmt: skip
        for k in ("data", "testdata"):
            check_pixels(mat[k], f"{paths[0]} '{k}'")
        pool, x_test = (column_major_images(mat[k].T, 28) for k in ("data", "testdata"))
        check_count("omniglot", "chardata.mat 'data'", len(pool), n_train + n_val)
        check_count("omniglot", "chardata.mat 'testdata'", len(x_test), n_test)
        pool_labels, y_test = _chardata_labels(mat, len(pool), len(x_test))
        train, val, _ = split_indices(len(pool), (n_train, n_val, 0), SPLIT_SEED)
    else:
        images, labels = _omniglot_from_raw(root, paths)
        train, val, test = split_indices(len(images), OMNIGLOT_SPLIT, SPLIT_SEED)
        pool, pool_labels, x_test, y_test = images, labels, images[test], labels[test]
    return DatasetSplits(
        x_train=pool[train],
        x_val=binarize(pool[val], EVAL_BINARIZATION_SEED),
        x_test=binarize(x_test, EVAL_BINARIZATION_SEED + 1),
        y_train=None if pool_labels is None else pool_labels[train],
        y_val=None if pool_labels is None else pool_labels[val],
        y_test=y_test,
    )


def _chardata_labels(mat: dict, n_train: int, n_test: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Character ids from chardata.mat: `target` is a one-hot alphabet (50, N), `targetchar` the
    character within it; each (alphabet, character) pair gets one id. Alphabet ids if only
    `target` exists; None if neither does."""
    try:
        alphabet = np.concatenate([mat["target"].argmax(axis=0), mat["testtarget"].argmax(axis=0)])
        if len(alphabet) != n_train + n_test:
            return None, None
        if "targetchar" in mat and "testtargetchar" in mat:
            char = np.concatenate([mat["targetchar"].ravel(), mat["testtargetchar"].ravel()])
            _, ids = np.unique(np.stack([alphabet, char], axis=1), axis=0, return_inverse=True)
        else:
            ids = alphabet
    except (KeyError, ValueError):
        return None, None
    ids = ids.reshape(-1).astype(np.int64)
    return ids[:n_train], ids[n_train:]


def _area_resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) integer weights: each output pixel's overlap with each input pixel, in units
    of 1/4 pixel, for 105 -> 28 (a 3.75 scale). M @ image @ M.T sums exact areas."""
    scale = n_in / n_out
    lo, hi = np.arange(n_out)[:, None] * scale, (np.arange(n_out)[:, None] + 1) * scale
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0, None)
    return np.rint(overlap * 4).astype(np.float32)


def _raw_to_28(images: np.ndarray) -> np.ndarray:
    """Raw Omniglot bool (N, 105, 105), True = white, -> ink coverage of each 28x28 cell as uint8
    k (the grey level is k / 225: an exact area average, since 105 = 28 * 3.75)."""
    weights = _area_resize_matrix(105, 28)
    out = np.empty((len(images), 28, 28), np.uint8)
    for start in range(0, len(images), 2048):
        ink = (~images[start : start + 2048]).astype(np.float32)
        out[start : start + 2048] = np.rint(weights @ ink @ weights.T).astype(np.uint8)
    return out


def _read_cache(cache: Path, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached 28x28 images (uint8 ink coverage 0..225) and labels, if `cache` holds them for
    raw files with fingerprint `key`; None for a missing, stale, damaged or tampered cache."""
    if not cache.is_file():
        return None
    try:
        arrays = read_npz(cache, ("key", "images", "labels"))
    except DatasetError:
        return None
    if arrays["key"].dtype.kind != "U" or str(arrays["key"]) != key:
        return None
    images, labels = arrays["images"], arrays["labels"]
    good = (images.dtype == np.uint8 and images.ndim == 3 and images.shape[1:] == (28, 28)
            and images.max(initial=0) <= 225
            and labels.dtype == np.int64 and labels.shape == images.shape[:1])  # fmt: skip
    return (images, labels) if good else None


def _omniglot_from_raw(root: Path, paths: tuple[Path, ...]) -> tuple[np.ndarray, np.ndarray]:
    """All 32,460 raw Omniglot images (background, then evaluation) as 28x28 grey, ink = 1, with
    character ids (evaluation ids follow background ids). Cached as an npz next to the raw files
    when that folder is writable, else in `derived_cache_dir()`, else not at all."""
    fingerprint = hashlib.sha256(OMNIGLOT_CACHE_VERSION.encode())
    for p in paths:
        fingerprint.update(p.read_bytes())
    key = fingerprint.hexdigest()
    caches = [paths[0].parent / OMNIGLOT_CACHE_NAME, derived_cache_dir() / OMNIGLOT_CACHE_NAME]
    for cache in caches:
        cached = _read_cache(cache, key)
        if cached is not None:
            return cached[0].astype(np.float32)[:, None] / np.float32(225), cached[1]
    images, labels = [], []
    for p in paths:
        arrays = read_npz(p, ("images", "labels"))
        raw, ids = arrays["images"], arrays["labels"]
        if (raw.dtype != bool or raw.shape[-2:] != (105, 105)
                or ids.dtype.kind not in "iu" or ids.shape != raw.shape[:-2]):  # fmt: skip
            raise DatasetError(f"{p}: expected bool images (..., 105, 105) with one label each")
        offset = max((int(previous.max()) + 1 for previous in labels), default=0)
        images.append(_raw_to_28(raw.reshape(-1, 105, 105)))
        labels.append(ids.reshape(-1).astype(np.int64) + offset)
    arrays = {"images": np.concatenate(images), "labels": np.concatenate(labels), "key": np.array(key)}
    for cache in caches:
        if files.is_writable(cache.parent):
            try:
                save_npz(cache, arrays)
                break
            except OSError:
                continue
    return arrays["images"].astype(np.float32)[:, None] / np.float32(225), arrays["labels"]


SPEC = register(
    DatasetSpec(
        name="omniglot",
        input_shape=(1, 28, 28),
        input_type="binary",
        likelihood="bernoulli",
        pseudo_init_mean=0.05,
        pseudo_init_std=0.01,
        loader=_load_omniglot,
        dynamic_binarization=True,
        description="OMNIGLOT 28x28 binarised dynamically, 23,000 / 1,345 / 8,070",
        files=(OMNIGLOT_CHARDATA,),
        alternative_files=(OMNIGLOT_RAW,),
        download=DownloadPlan(
            (
                RemoteFile(
                    OMNIGLOT_CHARDATA,
                    ("https://raw.githubusercontent.com/yburda/iwae/master/datasets/OMNIGLOT/chardata.mat",),
                    "git-blob:016a3536ffe5e1d38e42563a18d7a78bfaf643ec",  # the blob in yburda/iwae
                    max_bytes=CHARDATA_MAX_BYTES,
                ),
            )
        ),
    )
)
