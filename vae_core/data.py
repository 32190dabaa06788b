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
from .paths import DATA_DIR_ENV, cache_dir, data_dir

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


def resolve_data_dir(data_dir_arg: str | Path | None = None) -> Path:
    """The folder holding dataset files: the argument, else $VAMPVIZ_DATA_DIR, else ~/.cache/vampviz."""
    return data_dir(data_dir_arg)


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


# --------------------------------------------------------------------------------------------
# Where files come from, and the one-line error for a missing one.

SPLIT_SEED = 0  # seeds every shuffle below that the original loader does with numpy's unseeded RNG
DOWNLOAD_COMMAND = "python -m vae_core download"


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: where it goes under the data directory, its mirrors, its checksum."""

    path: str  # relative to the data directory, e.g. "freyfaces/freyfaces.pkl"
    urls: tuple[str, ...]  # mirrors, tried in order
    checksum: str  # "md5:<hex>", "sha256:<hex>" or "git-blob:<hex>" (the file's git blob SHA-1)


@dataclass(frozen=True)
class DownloadPlan:
    """The files `download` fetches for a dataset, and an optional step that turns them into
    the files the loader reads (`convert(data_dir)`, run after every file passed its checksum)."""

    files: tuple[RemoteFile, ...]
    convert: Callable[[Path], None] | None = None


DOWNLOADS: dict[str, DownloadPlan] = {}


def missing_file_error(name: str, root: Path, relpath: str) -> DatasetError:
    """The one-line error for a dataset file that is not under the data directory."""
    spec = get_spec(name)
    others = [
        " + ".join(f for f in alt if f not in spec.files)
        for alt in spec.alternative_files
        if relpath not in alt
    ]
    instead = f" (or instead: {' or '.join(others)})" if others else ""
    plan = DOWNLOADS.get(name)
    urls = [r.urls[0] for r in plan.files if r.path == relpath] if plan else []
    if plan and not urls:  # the file is made from downloaded ones: name the folder they come from
        urls = [os.path.commonprefix([r.urls[0] for r in plan.files]).rsplit("/", 1)[0] + "/"]
    source = f" (from {urls[0]})" if urls else ""
    return DatasetError(
        f"dataset {name!r}: missing file {root / relpath}{instead}; get it with "
        f"`{DOWNLOAD_COMMAND} {name}`{source}, or set {DATA_DIR_ENV} to a folder that holds {relpath}"
    )


def _locate(name: str, root: Path) -> tuple[Path, ...]:
    """The first complete file set of dataset `name` under root, else its missing-file error."""
    for file_set in get_spec(name).file_sets():
        paths = tuple(root / f for f in file_set)
        if all(p.exists() for p in paths):
            return paths
    first_missing = next(f for f in get_spec(name).files if not (root / f).exists())
    raise missing_file_error(name, root, first_missing)


def _check_count(name: str, what: str, actual: int, expected: int) -> None:
    if actual != expected:
        raise DatasetError(f"dataset {name!r}: {what} has {actual} images, expected {expected}")


def _images(flat: np.ndarray, height: int, width: int, *, scale: float = 1.0) -> np.ndarray:
    """(N, H*W) rows in row-major order -> float32 (N, 1, H, W), divided by `scale`."""
    return np.ascontiguousarray(flat.reshape(-1, 1, height, width), dtype=np.float32) / np.float32(scale)


def _column_major_images(flat: np.ndarray, side: int) -> np.ndarray:
    """(N, side*side) rows stored column-major (MATLAB order) -> upright float32 (N, 1, side, side).

    This is the original loader's `reshape((-1, side, side)).reshape((-1, side*side), order='F')`:
    each row read in Fortran order, i.e. every image transposed.
    """
    return np.ascontiguousarray(flat.reshape(-1, side, side).transpose(0, 2, 1)[:, None], dtype=np.float32)


# --------------------------------------------------------------------------------------------
# File formats: one small reader each. Every reader raises DatasetError for a malformed file.

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (LeCun's MNIST format), gzipped or not, into a native-endian array."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"cannot read idx file {path}: {exc}") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path} is not an idx file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", raw[4:header]) if len(raw) >= header else ()
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    if len(dims) != ndim or len(raw) - header != int(np.prod(dims)) * dtype.itemsize:
        raise DatasetError(f"idx file {path} is truncated or has a wrong header")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read_amat(path: str | Path) -> np.ndarray:
    """Read a Larochelle `.amat` text file (one image per line, pixels 0/1 separated by spaces)
    into a uint8 (N, D) array."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    rows = [line for line in raw.splitlines() if line.strip()]
    buf = np.frombuffer(raw, np.uint8)
    digit = (buf == ord("0")) | (buf == ord("1"))
    blank = np.isin(buf, np.frombuffer(b" \t\r\n", np.uint8))
    if rows and np.all(digit | blank) and not np.any(digit[1:] & digit[:-1]):
        values = buf[digit] - ord("0")  # fast path: every value is a single 0/1 character
        width = len(rows[0].split())
        if values.size == width * len(rows):
            return values.reshape(len(rows), width).astype(np.uint8)
        raise DatasetError(f"{path}: the lines of this .amat file have different lengths")
    try:  # general text, e.g. "0.0 1.0 ..."
        values = np.loadtxt(path, dtype=np.float32, ndmin=2)
    except ValueError as exc:
        raise DatasetError(f"{path} is not a readable .amat file: {exc}") from None
    if not np.isin(values, (0.0, 1.0)).all():
        raise DatasetError(f"{path}: expected binary pixels (0 or 1)")
    return values.astype(np.uint8)


def read_mat(path: str | Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Read a MATLAB (v4-v7.2) `.mat` file with scipy; `keys` must be present. Returns all variables."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    path = Path(path)
    try:
        contents = loadmat(path)
    except (OSError, ValueError, TypeError, NotImplementedError, MatReadError) as exc:
        raise DatasetError(f"cannot read .mat file {path}: {exc}") from None
    missing = [k for k in keys if k not in contents]
    if missing:
        raise DatasetError(f"{path} lacks the variable(s) {', '.join(missing)}")
    return {k: v for k, v in contents.items() if not k.startswith("__")}


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds only numpy arrays (plus lists, tuples, numbers and strings).

    `find_class` is the only way a pickle reaches code; it allows exactly the three globals a
    pickled ndarray needs, so a pickle that names anything else (os.system, ...) is refused.
    """

    def find_class(self, module: str, name: str):
        try:
            return _PICKLE_ALLOWED[(module, name)]
        except KeyError:
            raise DatasetError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed") from None


def read_safe_pickle(path: str | Path) -> object:
    """Load a pickle (Python 2 ones included, via latin-1) with `SafeUnpickler`."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return SafeUnpickler(f, encoding="latin1").load()
    except DatasetError as exc:
        raise DatasetError(f"{path}: {exc}") from None
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DatasetError(f"{path} is not a readable pickle: {exc}") from None


# --------------------------------------------------------------------------------------------
# Static MNIST: Larochelle & Murray's fixed binarisation (50,000 / 10,000 / 10,000).

MNIST_STATIC_SPLIT = (50_000, 10_000, 10_000)
MNIST_STATIC_FOLDER = "mnist_static"
MNIST_STATIC_NPZ = f"{MNIST_STATIC_FOLDER}/binarized_mnist_static.npz"
MNIST_STATIC_AMAT = tuple(f"{MNIST_STATIC_FOLDER}/binarized_mnist_{s}.amat" for s in ("train", "valid", "test"))
LAROCHELLE_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"


def _load_mnist_static(root: Path) -> DatasetSplits:
    """Static MNIST: the fixed binary images of Larochelle & Murray (2011), split as published.

    Paper/original loader: read the three `.amat` files, shuffle the training set, use validation
    and test as they are; no dynamic binarisation, no labels. Here the shuffle is seeded.
    Reads `binarized_mnist_static.npz` (keys train/valid/test, uint8 (N, 784)) or the `.amat` files.
    """
    paths = _locate("mnist-static", root)
    if len(paths) == 1:
        try:
            with np.load(paths[0], allow_pickle=False) as npz:
                arrays = [npz[k] for k in ("train", "valid", "test")]
        except (OSError, ValueError, KeyError, zlib.error) as exc:
            raise DatasetError(f"cannot read {paths[0]} (keys train/valid/test expected): {exc}") from None
    else:
        arrays = [read_amat(p) for p in paths]
    for what, array, size in zip(("train", "valid", "test"), arrays, MNIST_STATIC_SPLIT):
        _check_count("mnist-static", what, len(array), size)
        if array.ndim != 2 or array.shape[1] != 784 or array.max(initial=0) > 1:
            raise DatasetError(f"dataset 'mnist-static': {what} must hold binary rows of 784 pixels")
    train, val, test = (_images(a, 28, 28) for a in arrays)
    train = train[np.random.default_rng(SPLIT_SEED).permutation(len(train))]
    return DatasetSplits(x_train=train, x_val=val, x_test=test)


def _convert_static_mnist_amat(root: Path) -> None:
    """After `download`: turn the three `.amat` text files into the compact npz, then delete them."""
    arrays = dict(zip(("train", "valid", "test"), (read_amat(root / f) for f in MNIST_STATIC_AMAT)))
    _atomic_save_npz(root / MNIST_STATIC_NPZ, arrays)
    for f in MNIST_STATIC_AMAT:
        (root / f).unlink()


register(
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
    )
)
DOWNLOADS["mnist-static"] = DownloadPlan(
    files=tuple(
        RemoteFile(path, (LAROCHELLE_URL + Path(path).name,), checksum)
        for path, checksum in zip(
            MNIST_STATIC_AMAT,
            (  # sha256 as listed by tensorflow_datasets for these URLs
                "sha256:ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d",
                "sha256:1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2",
                "sha256:e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c",
            ),
        )
    ),
    convert=_convert_static_mnist_amat,
)


# --------------------------------------------------------------------------------------------
# Dynamic MNIST and Fashion-MNIST: grey idx files, binarised afresh for every training batch.

MNIST_SPLIT = (50_000, 10_000, 10_000)  # train = first 50,000 of the 60,000, val = last 10,000
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
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
    train_images, train_labels, test_images, test_labels = (read_idx(p) for p in _locate(name, root))
    n_train, n_val, n_test = MNIST_SPLIT
    _check_count(name, "the training file", len(train_images), n_train + n_val)
    _check_count(name, "the test file", len(test_images), n_test)
    if train_images.shape[1:] != (28, 28) or test_images.shape[1:] != (28, 28):
        raise DatasetError(f"dataset {name!r}: expected 28x28 images, got {train_images.shape[1:]}")
    if len(train_labels) != len(train_images) or len(test_labels) != len(test_images):
        raise DatasetError(f"dataset {name!r}: the label files do not match the image files")
    x_train, x_test = _images(train_images, 28, 28, scale=255.0), _images(test_images, 28, 28, scale=255.0)
    y_train, y_test = train_labels.astype(np.int64), test_labels.astype(np.int64)
    return DatasetSplits(
        x_train=x_train[:n_train],
        x_val=binarize(x_train[n_train:], EVAL_BINARIZATION_SEED),
        x_test=binarize(x_test, EVAL_BINARIZATION_SEED + 1),
        y_train=y_train[:n_train],
        y_val=y_train[n_train:],
        y_test=y_test,
    )


register(
    DatasetSpec(
        name="mnist",
        input_shape=(1, 28, 28),
        input_type="binary",
        likelihood="bernoulli",
        pseudo_init_mean=0.05,
        pseudo_init_std=0.01,
        loader=functools.partial(_load_idx_dataset, "mnist"),
        dynamic_binarization=True,
        description="MNIST binarised dynamically, 50,000 / 10,000 / 10,000",
        files=tuple(f"mnist/{f}" for f in IDX_FILES),
        alternative_files=((MNIST_REBUILT_TRAIN, *(f"mnist/{f}" for f in IDX_FILES[1:])),),
    )
)
DOWNLOADS["mnist"] = DownloadPlan(
    tuple(
        RemoteFile(f"mnist/{f}", tuple(m + f for m in MNIST_MIRRORS), f"md5:{md5}")
        for f, md5 in zip(IDX_FILES, ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                                      "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))
    )
)  # fmt: skip

register(
    DatasetSpec(
        name="fashion-mnist",
        input_shape=(1, 28, 28),
        input_type="binary",
        likelihood="bernoulli",
        pseudo_init_mean=0.05,
        pseudo_init_std=0.01,
        loader=functools.partial(_load_idx_dataset, "fashion-mnist"),
        dynamic_binarization=True,
        description="Fashion-MNIST (not in the paper) binarised dynamically, 50,000 / 10,000 / 10,000",
        files=tuple(f"fashion_mnist/{f}" for f in IDX_FILES),
    )
)
DOWNLOADS["fashion-mnist"] = DownloadPlan(
    tuple(
        RemoteFile(f"fashion_mnist/{f}", (FASHION_MNIST_URL + f,), f"md5:{md5}")
        for f, md5 in zip(IDX_FILES, ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                                      "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"))
    )
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# OMNIGLOT: the IWAE 28x28 `chardata.mat`, or a fallback built from raw 105x105 Omniglot.

OMNIGLOT_SPLIT = (23_000, 1_345, 8_070)  # the last 1,345 of the shuffled 24,345 training images validate
OMNIGLOT_CHARDATA = "omniglot/chardata.mat"
OMNIGLOT_RAW = ("omniglot_raw_105/images_background.npz", "omniglot_raw_105/images_evaluation.npz")
OMNIGLOT_CACHE_NAME = "omniglot_28x28.npz"  # the derived 28x28 fallback images
OMNIGLOT_CACHE_VERSION = "area-average-v1"


def _load_omniglot(root: Path) -> DatasetSplits:
    """OMNIGLOT 28x28 grey, binarised dynamically, 23,000 / 1,345 / 8,070.

    Paper/original loader: IWAE's `chardata.mat` (24,345 train + 8,070 test images, column-major),
    shuffle the training images, the last 1,345 are validation; validation and test are binarised
    once. Labels are character ids. Without `chardata.mat` the images come from raw 105x105
    Omniglot (see `_omniglot_from_raw`): the same sizes, but not the IWAE images or split.
    """
    paths = _locate("omniglot", root)
    n_train, n_val, n_test = OMNIGLOT_SPLIT
    if len(paths) == 1:
        mat = read_mat(paths[0], ("data", "testdata"))
        pool, x_test = (_column_major_images(mat[k].T, 28) for k in ("data", "testdata"))
        _check_count("omniglot", "chardata.mat 'data'", len(pool), n_train + n_val)
        _check_count("omniglot", "chardata.mat 'testdata'", len(x_test), n_test)
        pool_labels, y_test = _chardata_labels(mat, len(pool), len(x_test))
        train, val, _ = split_indices(len(pool), (n_train, n_val, 0), SPLIT_SEED)
    else:
        images, labels = _omniglot_from_raw(root, paths)
        train, val, test = split_indices(len(images), OMNIGLOT_SPLIT, SPLIT_SEED)
        pool, pool_labels, x_test, y_test = images, labels, images[test], labels[test]
    if any(x.size and (x.min() < 0 or x.max() > 1) for x in (pool, x_test)):
        raise DatasetError("dataset 'omniglot': pixel values outside [0, 1]")
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


def _omniglot_from_raw(root: Path, paths: tuple[Path, ...]) -> tuple[np.ndarray, np.ndarray]:
    """All 32,460 raw Omniglot images (background, then evaluation) as 28x28 grey, ink = 1, with
    character ids (evaluation ids follow background ids). Cached as an npz next to the raw files
    when that folder is writable, else in `_derived_cache_dir()`, else not at all."""
    fingerprint = hashlib.sha256(OMNIGLOT_CACHE_VERSION.encode())
    for p in paths:
        fingerprint.update(p.read_bytes())
    key = fingerprint.hexdigest()
    caches = [paths[0].parent / OMNIGLOT_CACHE_NAME, _derived_cache_dir() / OMNIGLOT_CACHE_NAME]
    for cache in caches:
        try:
            with np.load(cache, allow_pickle=False) as npz:
                if str(npz["key"]) == key:
                    return npz["images"].astype(np.float32)[:, None] / np.float32(225), npz["labels"]
        except (OSError, ValueError, KeyError, zlib.error):
            pass
    images, labels = [], []
    for p in paths:
        try:
            with np.load(p, allow_pickle=False) as npz:
                raw, ids = npz["images"], npz["labels"]
        except (OSError, ValueError, KeyError, zlib.error) as exc:
            raise DatasetError(f"cannot read {p} (keys images/labels expected): {exc}") from None
        if raw.dtype != bool or raw.shape[-2:] != (105, 105) or ids.shape != raw.shape[:-2]:
            raise DatasetError(f"{p}: expected bool images (..., 105, 105) with one label each")
        offset = max((int(previous.max()) + 1 for previous in labels), default=0)
        images.append(_raw_to_28(raw.reshape(-1, 105, 105)))
        labels.append(ids.reshape(-1).astype(np.int64) + offset)
    arrays = {"images": np.concatenate(images), "labels": np.concatenate(labels), "key": np.array(key)}
    for cache in caches:
        if _is_writable(cache.parent):
            try:
                _atomic_save_npz(cache, arrays)
                break
            except OSError:
                continue
    return arrays["images"].astype(np.float32)[:, None] / np.float32(225), arrays["labels"]


register(
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
    )
)
DOWNLOADS["omniglot"] = DownloadPlan(
    (
        RemoteFile(
            OMNIGLOT_CHARDATA,
            ("https://raw.githubusercontent.com/yburda/iwae/master/datasets/OMNIGLOT/chardata.mat",),
            "git-blob:016a3536ffe5e1d38e42563a18d7a78bfaf643ec",  # the blob in yburda/iwae
        ),
    )
)


# --------------------------------------------------------------------------------------------
# Caltech 101 Silhouettes 28x28 (Marlin et al. 2010), split1.

CALTECH101_SPLIT = (4_100, 2_264, 2_307)
CALTECH101_FILE = "caltech101_silhouettes/caltech101_silhouettes_28_split1.mat"


def _load_caltech101(root: Path) -> DatasetSplits:
    """Caltech 101 Silhouettes: binary 28x28, 4,100 / 2,264 / 2,307 as published, no dynamic binarisation.

    Paper/original loader: `1 - x` of the column-major images (the file stores 1 = background), so
    objects are 1 on a 0 background and upright; the training and validation images are shuffled.
    Here the shuffle is seeded and keeps the labels with their images (the original's does not);
    labels are 0-based class ids (the file's 1..101 minus one).
    """
    (path,) = _locate("caltech101", root)
    mat = read_mat(path, ("train_data", "val_data", "test_data"))
    splits, rng = {}, np.random.default_rng(SPLIT_SEED)
    for split, size in zip(("train", "val", "test"), CALTECH101_SPLIT):
        data = mat[f"{split}_data"]
        _check_count("caltech101", f"{split}_data", len(data), size)
        if data.ndim != 2 or data.shape[1] != 784 or data.max(initial=0) > 1:
            raise DatasetError(f"dataset 'caltech101': {split}_data must hold binary rows of 784 pixels")
        x = 1.0 - _column_major_images(data, 28)
        labels = mat.get(f"{split}_labels")
        y = None if labels is None or labels.size != size else labels.reshape(-1).astype(np.int64) - 1
        order = rng.permutation(size) if split != "test" else np.arange(size)
        splits[split] = (x[order], None if y is None else y[order])
    return DatasetSplits(
        x_train=splits["train"][0], x_val=splits["val"][0], x_test=splits["test"][0],
        y_train=splits["train"][1], y_val=splits["val"][1], y_test=splits["test"][1],
    )  # fmt: skip


register(
    DatasetSpec(
        name="caltech101",
        input_shape=(1, 28, 28),
        input_type="binary",
        likelihood="bernoulli",
        pseudo_init_mean=0.5,
        pseudo_init_std=0.02,
        loader=_load_caltech101,
        description="Caltech 101 Silhouettes 28x28 (split1), binary, 4,100 / 2,264 / 2,307",
        files=(CALTECH101_FILE,),
    )
)
DOWNLOADS["caltech101"] = DownloadPlan(
    (
        RemoteFile(
            CALTECH101_FILE,
            ("https://people.cs.umass.edu/~marlin/data/caltech101_silhouettes_28_split1.mat",),
            "sha256:eb6735e8d84b1850fabc5590124aab1755e90c9fd28123585324398405e1e42a",
        ),
    )
)


# --------------------------------------------------------------------------------------------
# Frey Faces: 1,965 grey 28x20 frames of Brendan Frey's face.

FREYFACES_SPLIT = (1_565, 200, 200)
FREYFACES_FILE = "freyfaces/freyfaces.pkl"


def _load_freyfaces(root: Path) -> DatasetSplits:
    """Frey Faces: grey 28x20 faces for the discretised logistic likelihood, 1,565 / 200 / 200.

    Paper/original loader: the pickle holds a list with one uint8 (1965, 560) array of row-major
    28x20 images; x = (v + 0.5) / 256 (the centres of 256 bins), shuffle, then cut 1,565 / 200 / 200.
    Here the pickle is read with an allow-list unpickler and the shuffle is seeded. No labels.
    """
    (path,) = _locate("freyfaces", root)
    content = read_safe_pickle(path)
    array = content[0] if isinstance(content, (list, tuple)) and content else content
    if not isinstance(array, np.ndarray) or array.ndim != 2 or array.shape[1] != 28 * 20:
        raise DatasetError(f"{path}: expected a list holding one (N, 560) array")
    _check_count("freyfaces", str(path), len(array), sum(FREYFACES_SPLIT))
    images = _images((array.astype(np.float32) + 0.5), 28, 20, scale=256.0)
    train, val, test = split_indices(len(images), FREYFACES_SPLIT, SPLIT_SEED)
    return DatasetSplits(x_train=images[train], x_val=images[val], x_test=images[test])


register(
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
    )
)
DOWNLOADS["freyfaces"] = DownloadPlan(
    (
        RemoteFile(
            FREYFACES_FILE,
            ("https://raw.githubusercontent.com/jmtomczak/vae_vampprior/master/datasets/Freyfaces/freyfaces.pkl",),
            "sha256:3b69410c6a5fd6e03f09012905168be3712373a094a776f7e58fcd0670d2138a",
        ),
    )
)


# --------------------------------------------------------------------------------------------
# Writing files: downloads and caches go to a temporary file first, then an atomic rename.

DOWNLOAD_TIMEOUT_S = 60
USER_AGENT = "vampviz-data/1.0 (+python urllib)"


def _is_writable(folder: Path) -> bool:
    """Whether folder, or the nearest existing folder above it, may be written. A folder whose
    permission bits deny writing counts as read-only even for root (like the shared data folder)."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), folder)
    try:
        mode = existing.stat().st_mode
    except OSError:
        return False
    writable_bits = mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    return stat.S_ISDIR(mode) and bool(writable_bits) and os.access(existing, os.W_OK)


def _derived_cache_dir() -> Path:
    """Where derived arrays go when the data directory is read-only: $VAMPVIZ_CACHE_DIR/derived,
    else ~/.cache/vampviz/derived."""
    return cache_dir() / "derived"


def _move_into_place(tmp: str, target: Path) -> None:
    os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; data files are for everyone to read
    os.replace(tmp, target)


def _atomic_save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        _move_into_place(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def file_checksum(path: str | Path, kind: str) -> str:
    """The hex digest of a file: kind "md5", "sha256" or "git-blob" (what `git hash-object` prints)."""
    hasher = hashlib.sha1() if kind == "git-blob" else hashlib.new(kind)
    if kind == "git-blob":
        hasher.update(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def _checksum_ok(path: Path, checksum: str) -> bool:
    kind, expected = checksum.split(":", 1)
    return file_checksum(path, kind) == expected.lower()


def _fetch(remote: RemoteFile, target: Path, log: Callable[[str], None]) -> None:
    """Stream the first mirror that works into a temporary file next to target, check the
    checksum, then rename it into place; nothing is left behind on failure."""
    kind, expected = remote.checksum.split(":", 1)
    target.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in remote.urls:
        log(f"downloading {url}")
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
                with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
                    for chunk in iter(lambda: response.read(1 << 20), b""):
                        out.write(chunk)
            actual = file_checksum(tmp, kind)
            if actual != expected.lower():
                failures.append(f"{url}: checksum mismatch ({kind} {actual}, expected {expected})")
                continue
            _move_into_place(tmp, target)
            log(f"saved {target} ({target.stat().st_size:,} bytes, {kind} verified)")
            return
        except (OSError, http.client.HTTPException, ValueError) as exc:
            failures.append(f"{url}: {exc}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise DatasetError(f"could not download {remote.path}: " + "; ".join(failures))


def _log_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def download(
    name: str, data_dir: str | Path | None = None, *, force: bool = False,
    log: Callable[[str], None] = _log_stderr,
) -> list[Path]:  # fmt: skip
    """Fetch dataset `name`'s files into the data directory (see `resolve_data_dir`).

    Each file is streamed to a temporary file, checked against its published checksum and only
    then renamed into place; files already present with the right checksum are kept. Does
    nothing when the loader's files are all there, unless `force`. Returns the loader's files
    (empty for an embedded dataset). Raises DatasetError when no mirror gives the right bytes.
    """
    spec = get_spec(name)
    if not spec.files:
        log(f"{name}: embedded, nothing to download")
        return []
    plan = DOWNLOADS.get(name)
    if plan is None:
        raise DatasetError(f"dataset {name!r} has no download source; put {', '.join(spec.files)} in place by hand")
    root = resolve_data_dir(data_dir)
    wanted = [root / f for f in spec.files]
    if not force and all(p.exists() for p in wanted):
        log(f"{name}: already in {root}")
        return wanted
    if not _is_writable(root):
        raise DatasetError(
            f"cannot download {name!r} into {root}: the folder is read-only; "
            f"choose a writable data directory (argument or {DATA_DIR_ENV})"
        )
    for remote in plan.files:
        target = root / remote.path
        if not force and target.exists() and _checksum_ok(target, remote.checksum):
            log(f"{target} is already there (checksum verified)")
            continue
        _fetch(remote, target, log)
    if plan.convert is not None:
        plan.convert(root)
    return wanted
