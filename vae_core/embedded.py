"""An evaluation sample embedded in a checkpoint folder, so its data views work without the dataset.

    DIR/sample.safetensors   test_images, test_indices, train_images, train_indices (+ labels)
    DIR/sample.json          dataset, image shape and encoding, split sizes, the source files'
                             sha256, and the images' credit

Binary images are bit-packed (`np.packbits` over each image: 98 bytes for 28x28); grey ones are
kept as uint8 levels v with x = (v + offset) / scale, the dataset's own grid (Frey Faces:
(v + 0.5) / 256), so decoding gives back exactly the float32 images the loader gives.

`evaluation_data` is what the dashboard reads: the full test and training sets when the dataset's
files are present, the embedded sample otherwise, and it says which (`EvaluationData.description`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt
from . import data as datasets
from .errors import CheckpointError, DatasetError
from .files import atomic_write_json

SAMPLE_FILE = "sample.safetensors"
SAMPLE_META_FILE = "sample.json"
SAMPLE_FORMAT = "vampviz-sample"
DEFAULT_TEST, DEFAULT_TRAIN = 2000, 5000
MAX_EMBEDDED = 100_000  # images per split: a sample, never a dataset
# grey level grids x = (v + offset) / scale that the registered datasets use
LEVEL_GRIDS = ((0.0, 255.0), (0.5, 256.0), (0.0, 225.0), (0.0, 16.0))

CREDITS = {
    "mnist-static": "MNIST by Y. LeCun, C. Cortes and C. Burges (CC BY-SA 3.0), in the static binarisation of "
                    "H. Larochelle / R. Salakhutdinov and I. Murray",
    "mnist": "MNIST by Y. LeCun, C. Cortes and C. Burges (CC BY-SA 3.0)",
    "caltech101": "Caltech 101 Silhouettes by B. Marlin, K. Swersky, B. Chen and N. de Freitas",
    "freyfaces": "Frey Faces by Brendan Frey",
    "omniglot": "Omniglot by B. Lake, R. Salakhutdinov and J. Tenenbaum",
    "digits": "scikit-learn's digits (UCI optical recognition of handwritten digits)",
}


@dataclass(frozen=True)
class EvaluationData:
    """The images a checkpoint's data views show: float32 (N, C, H, W) in [0, 1], labels or None."""

    dataset: str
    x_test: np.ndarray
    y_test: np.ndarray | None
    test_indices: np.ndarray  # each image's index in the dataset's test set
    n_test_total: int
    x_train: np.ndarray
    y_train: np.ndarray | None
    n_train_total: int
    embedded: bool  # True: the checkpoint's sample; False: the dataset's files

    @property
    def description(self) -> str:
        """E.g. '2,000 of the 10,000 test images, embedded in the checkpoint'."""
        if self.embedded:
            return (f"{len(self.x_test):,} of the {self.n_test_total:,} {self.dataset} test images, "
                    "embedded in the checkpoint")
        return f"all {self.n_test_total:,} {self.dataset} test images, from the dataset's files"


# --------------------------------------------------------------------------------------------
# Encoding


def encoding_for(images: np.ndarray) -> dict:
    """How to store `images` losslessly: {"kind": "bits"} or {"kind": "levels", "offset", "scale"}."""
    if np.isin(images, (0.0, 1.0)).all():
        return {"kind": "bits"}
    for offset, scale in LEVEL_GRIDS:
        levels = np.rint(images * np.float32(scale) - np.float32(offset))
        if levels.min() >= 0 and levels.max() <= 255 and np.array_equal(_levels_to_float(levels, offset, scale), images):
            return {"kind": "levels", "offset": offset, "scale": scale}
    raise DatasetError("these images are neither binary nor on a 256-level grey grid, so they cannot be embedded")


def _levels_to_float(levels: np.ndarray, offset: float, scale: float) -> np.ndarray:
    return ((levels.astype(np.float32) + np.float32(offset)) / np.float32(scale)).astype(np.float32)


def encode_images(images: np.ndarray, encoding: dict) -> np.ndarray:
    """(N, C, H, W) float32 -> uint8 (N, bytes per image)."""
    flat = images.reshape(len(images), -1)
    if encoding["kind"] == "bits":
        return np.packbits(flat.astype(np.uint8), axis=1)
    return np.rint(flat * np.float32(encoding["scale"]) - np.float32(encoding["offset"])).astype(np.uint8)


def decode_images(stored: np.ndarray, encoding: dict, shape: tuple[int, int, int]) -> np.ndarray:
    """The inverse of `encode_images`: uint8 (N, bytes) -> float32 (N, C, H, W)."""
    pixels = math.prod(shape)
    if encoding["kind"] == "bits":
        flat = np.unpackbits(stored, axis=1, count=pixels).astype(np.float32)
    else:
        flat = _levels_to_float(stored, encoding["offset"], encoding["scale"])
    return flat.reshape(len(stored), *shape)


def _stored_width(encoding: dict, shape) -> int:
    pixels = math.prod(shape)
    return math.ceil(pixels / 8) if encoding["kind"] == "bits" else pixels


# --------------------------------------------------------------------------------------------
# Writing


def _choose(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` distinct indices of range(n) (all when count >= n), in increasing order."""
    return np.arange(n) if count >= n else np.sort(rng.choice(n, count, replace=False))


def source_checksums(dataset: str, data_dir: str | Path | None = None) -> dict[str, str]:
    """{relative path: sha256} of the dataset files the loader reads (empty for an embedded dataset)."""
    spec = datasets.get_spec(dataset)
    root = datasets.resolve_data_dir(data_dir)
    for file_set in spec.file_sets() if spec.files else ():
        if all((root / f).exists() for f in file_set):
            return {f: datasets.file_checksum(root / f, "sha256") for f in file_set}
    return {}


def write_sample(checkpoint_dir: str | Path, test: int = DEFAULT_TEST, train: int = DEFAULT_TRAIN,
                 data_dir: str | Path | None = None, seed: int = 0) -> Path:
    """Embed `test` test and `train` training images (chosen with `seed`) of the checkpoint's dataset."""
    if not (0 < test <= MAX_EMBEDDED and 0 <= train <= MAX_EMBEDDED):
        raise ValueError(f"embed 1 to {MAX_EMBEDDED:,} test images and 0 to {MAX_EMBEDDED:,} training images, "
                         f"not {test:,} and {train:,}")
    out = Path(checkpoint_dir)
    config, _ = ckpt.read_config(out)
    splits = datasets.load_dataset(config.dataset, data_dir)
    rng = np.random.default_rng(seed)
    test_index = _choose(len(splits.x_test), test, rng)
    train_index = _choose(len(splits.x_train), train, rng)
    x_test, x_train = splits.x_test[test_index], splits.x_train[train_index]
    encoding = encoding_for(np.concatenate([x_test, x_train]))
    tensors = {"test_images": encode_images(x_test, encoding), "test_indices": test_index.astype(np.int64),
               "train_images": encode_images(x_train, encoding), "train_indices": train_index.astype(np.int64)}
    for name, labels, index in (("test_labels", splits.y_test, test_index), ("train_labels", splits.y_train, train_index)):
        if labels is not None:
            tensors[name] = np.asarray(labels)[index].astype(np.int64)
    meta = {
        "format": SAMPLE_FORMAT,
        "dataset": config.dataset,
        "input_shape": list(config.input_shape),
        "encoding": encoding,
        "n_test_total": len(splits.x_test),
        "n_train_total": len(splits.x_train),
        "seed": seed,
        "source_sha256": source_checksums(config.dataset, data_dir),
        "credit": CREDITS.get(config.dataset, ""),
    }
    ckpt.save_tensors(out / SAMPLE_FILE, {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()})
    atomic_write_json(out / SAMPLE_META_FILE, meta)
    return out / SAMPLE_FILE


# --------------------------------------------------------------------------------------------
# Reading


def has_sample(checkpoint_dir: str | Path) -> bool:
    return (Path(checkpoint_dir) / SAMPLE_META_FILE).is_file()


def _bad(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"{path}: the embedded evaluation sample is damaged ({why}); "
                           "rewrite it with `python -m vae_core embed-sample`")


def read_sample(checkpoint_dir: str | Path, dataset: str, input_shape) -> EvaluationData:
    """The embedded sample, checked against the checkpoint's dataset and image shape."""
    folder = Path(checkpoint_dir)
    meta_path, path = folder / SAMPLE_META_FILE, folder / SAMPLE_FILE
    meta = ckpt.read_json(meta_path)
    shape = tuple(int(s) for s in input_shape)
    try:
        if meta["format"] != SAMPLE_FORMAT or meta["dataset"] != dataset or tuple(meta["input_shape"]) != shape:
            raise _bad(meta_path, f"it is not a {dataset} sample of {shape} images")
        encoding = meta["encoding"]
        n_test_total, n_train_total = int(meta["n_test_total"]), int(meta["n_train_total"])
        if encoding.get("kind") not in ("bits", "levels"):
            raise _bad(meta_path, f"unknown encoding {encoding.get('kind')!r}")
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise _bad(meta_path, f"{type(error).__name__}: {error}") from None
    tensors = {name: t.numpy() for name, t in ckpt.read_tensors(path).items()}
    width = _stored_width(encoding, shape)

    def split(name: str, total: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        images, index = tensors.get(f"{name}_images"), tensors.get(f"{name}_indices")
        labels = tensors.get(f"{name}_labels")
        if images is None or index is None:
            raise _bad(path, f"no {name} images")
        if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != width or len(images) > MAX_EMBEDDED:
            raise _bad(path, f"{name}_images has shape {images.shape} and dtype {images.dtype}")
        if index.shape != (len(images),) or (len(index) and (index.min() < 0 or index.max() >= total)):
            raise _bad(path, f"{name}_indices do not fit the {total:,} {name} images")
        if labels is not None and labels.shape != (len(images),):
            raise _bad(path, f"{name}_labels do not match its images")
        return decode_images(images, encoding, shape), labels, index

    x_test, y_test, test_indices = split("test", n_test_total)
    x_train, y_train, _ = split("train", n_train_total)
    if not len(x_test):
        raise _bad(path, "no test images")
    return EvaluationData(dataset, x_test, y_test, test_indices, n_test_total, x_train, y_train, n_train_total,
                          embedded=True)


def evaluation_data(checkpoint_dir: str | Path, data_dir: str | Path | None = None) -> EvaluationData:
    """The full dataset when its files are present, else the checkpoint's embedded sample.

    Raises DatasetError (one line: what to download) when neither is there, and CheckpointError
    when the embedded sample is damaged.
    """
    config, _ = ckpt.read_config(checkpoint_dir)
    spec = datasets.get_spec(config.dataset)
    if spec.available(data_dir):
        splits = datasets.load_dataset(config.dataset, data_dir)
        return EvaluationData(config.dataset, splits.x_test, splits.y_test, np.arange(len(splits.x_test)),
                              len(splits.x_test), splits.x_train, splits.y_train, len(splits.x_train),
                              embedded=False)
    if has_sample(checkpoint_dir):
        return read_sample(checkpoint_dir, config.dataset, config.input_shape)
    raise DatasetError(f"the {config.dataset} images are not here and {Path(checkpoint_dir).name} embeds none: "
                       f"`python -m vae_core download {config.dataset}` fetches them (or set $VAMPVIZ_DATA_DIR)")
