"""From raw arrays to splits: seeded shuffles and cuts, binarisation, image layouts, counts.

Where the original loaders shuffle with numpy's unseeded global RNG, ours use `SPLIT_SEED`, so every
split is reproducible (the paper's exact orders cannot be: its code never seeds numpy before loading).
"""

from __future__ import annotations

import numpy as np

from ..errors import DatasetError

EVAL_BINARIZATION_SEED = 777  # the paper's seed for binarising validation and test sets once
SPLIT_SEED = 0  # seeds every shuffle that the original loader does with numpy's unseeded RNG


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


def check_count(name: str, what: str, actual: int, expected: int) -> None:
    if actual != expected:
        raise DatasetError(f"dataset {name!r}: {what} has {actual} images, expected {expected}")


def row_major_images(flat: np.ndarray, height: int, width: int, *, scale: float = 1.0) -> np.ndarray:
    """(N, H*W) rows in row-major order -> float32 (N, 1, H, W), divided by `scale`."""
    return np.ascontiguousarray(flat.reshape(-1, 1, height, width), dtype=np.float32) / np.float32(scale)


def column_major_images(flat: np.ndarray, side: int) -> np.ndarray:
    """(N, side*side) rows stored column-major (MATLAB order) -> upright float32 (N, 1, side, side).

    This is the original loader's `reshape((-1, side, side)).reshape((-1, side*side), order='F')`:
    each row read in Fortran order, i.e. every image transposed.
    """
    return np.ascontiguousarray(flat.reshape(-1, side, side).transpose(0, 2, 1)[:, None], dtype=np.float32)


def check_rows(array: np.ndarray, where: str, width: int) -> None:
    """Refuse, naming `where` (a file, and the variable in it), anything but (N, width) rows."""
    if array.ndim != 2 or array.shape[1] != width:
        raise DatasetError(f"{where}: expected rows of {width} pixels, got an array of shape {array.shape}")


def check_pixels(array: np.ndarray, where: str, *, high: float = 1.0, binary: bool = False) -> None:
    """Refuse, naming `where`, pixels that are not numbers in [0, high] (exactly 0 or 1 if binary),
    so that a damaged file never reaches training as NaN or as values the likelihood cannot take."""
    if array.dtype.kind not in "biuf":
        raise DatasetError(f"{where}: pixels of dtype {array.dtype}, expected numbers")
    if array.size == 0:
        return
    low_value, high_value = array.min(), array.max()  # NaN propagates through both
    if np.isnan(low_value) or np.isnan(high_value):
        raise DatasetError(f"{where}: the pixels hold NaN")
    if binary and not (0 <= low_value and high_value <= 1 and np.all((array == 0) | (array == 1))):
        raise DatasetError(f"{where}: expected binary pixels (0 or 1), found values from {low_value} to {high_value}")
    if not (0 <= low_value and high_value <= high):
        raise DatasetError(f"{where}: pixel values from {low_value} to {high_value}, outside [0, {high:g}]")
