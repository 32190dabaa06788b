"""The dataset registry: what a dataset is (`DatasetSpec`), what loading one returns
(`DatasetSplits`), where its files live and where they come from (`DownloadPlan`).

A dataset module builds one `DatasetSpec` and passes it to `register`; the CLI and the dashboard
list `DATASETS`, and `load_dataset(name)` runs the spec's loader.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DatasetError
from ..paths import DATA_DIR_ENV, data_dir

DOWNLOAD_COMMAND = "python -m vae_core download"
DEFAULT_MAX_DOWNLOAD_BYTES = 256 << 20


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
class RemoteFile:
    """One downloadable file: where it goes under the data directory, its mirrors (https first;
    an http mirror only for a host that serves nothing else), its checksum, and the most bytes a
    mirror may send for it (a response larger than that is refused, announced or not)."""

    path: str  # relative to the data directory, e.g. "freyfaces/freyfaces.pkl"
    urls: tuple[str, ...]  # mirrors, tried in order
    checksum: str  # "md5:<hex>", "sha256:<hex>" or "git-blob:<hex>" (the file's git blob SHA-1)
    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES


@dataclass(frozen=True)
class DownloadPlan:
    """The files `download` fetches for a dataset, and an optional step that turns them into
    the files the loader reads (`convert(data_dir)`, run after every file passed its checksum)."""

    files: tuple[RemoteFile, ...]
    convert: Callable[[Path], None] | None = None


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
    download: DownloadPlan | None = None  # where `download` gets the files; None: by hand only

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
    """Load a registered dataset's train/val/test splits (see the package docstring for the format).

    Every split is checked here, whatever the loader: float32 images of the spec's shape, finite
    and within [0, 1], none of the three sets empty, labels (if any) one integer per image. A
    failure is a one-line DatasetError naming the dataset and the files it was read from.
    """
    spec = get_spec(name)
    root = resolve_data_dir(data_dir) if spec.files else None
    splits = spec.loader(root)
    source = ", ".join(str(p) for p in locate(name, root)) if root is not None else "embedded"
    for what, x, y in (("training", splits.x_train, splits.y_train), ("validation", splits.x_val, splits.y_val),
                       ("test", splits.x_test, splits.y_test)):  # fmt: skip
        problem = _split_problem(spec, what, x, y)
        if problem:
            raise DatasetError(f"dataset {name!r} ({source}): {problem}")
    return splits


def _split_problem(spec: DatasetSpec, what: str, x, y) -> str | None:
    """What is wrong with one split (see `load_dataset`), or None."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        return f"the {what} images are not a float32 array"
    if x.shape[1:] != spec.input_shape:
        return f"the {what} images have shape {x.shape[1:]}, expected {spec.input_shape}"
    if len(x) == 0:
        return f"the {what} set is empty"
    low, high = x.min(), x.max()
    if np.isnan(low) or np.isnan(high):
        return f"the {what} images hold NaN"
    if not (0 <= low and high <= 1):
        return f"the {what} images have pixel values outside [0, 1] ({low} to {high})"
    if y is not None and (not isinstance(y, np.ndarray) or y.dtype.kind not in "iu" or y.shape != (len(x),)):
        return f"the {what} labels are not one integer per image"
    return None


def missing_file_error(name: str, root: Path, relpath: str) -> DatasetError:
    """The one-line error for a dataset file that is not under the data directory."""
    spec = get_spec(name)
    others = [
        " + ".join(f for f in alt if f not in spec.files)
        for alt in spec.alternative_files
        if relpath not in alt
    ]
    instead = f" (or instead: {' or '.join(others)})" if others else ""
    plan = spec.download
    urls = [r.urls[0] for r in plan.files if r.path == relpath] if plan else []
    if plan and not urls:  # the file is made from downloaded ones: name the folder they come from
        urls = [os.path.commonprefix([r.urls[0] for r in plan.files]).rsplit("/", 1)[0] + "/"]
    source = f" (from {urls[0]})" if urls else ""
    return DatasetError(
        f"dataset {name!r}: missing file {root / relpath}{instead}; get it with "
        f"`{DOWNLOAD_COMMAND} {name}`{source}, or set {DATA_DIR_ENV} to a folder that holds {relpath}"
    )


def locate(name: str, root: Path) -> tuple[Path, ...]:
    """The first complete file set of dataset `name` under root, else its missing-file error."""
    for file_set in get_spec(name).file_sets():
        paths = tuple(root / f for f in file_set)
        if all(p.exists() for p in paths):
            return paths
    first_missing = next(f for f in get_spec(name).files if not (root / f).exists())
    raise missing_file_error(name, root, first_missing)
