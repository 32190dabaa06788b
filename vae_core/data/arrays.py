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
