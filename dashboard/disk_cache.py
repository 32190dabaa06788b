"""The dashboard's disk cache of fitted projections: .npz files (never pickle) keyed by the
checkpoint's weights, so a UMAP map survives a server restart.

    $VAMPVIZ_CACHE_DIR (default ~/.cache/vampviz)/projections/<key>.npz
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from vae_core import paths
from vae_core.checkpoint import WEIGHTS_FILE
from vae_core.files import atomic_write_bytes

CACHE_VERSION = 2  # bump when what a cached projection means changes


def projection_dir() -> Path:
    return paths.cache_dir() / "projections"


@lru_cache(maxsize=64)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def weights_digest(checkpoint: str | Path) -> str:
    """sha256 of the checkpoint's weights (memoised on path, mtime and size)."""
    weights = Path(checkpoint) / WEIGHTS_FILE
    stat = weights.stat()
    return _digest(str(weights.resolve()), stat.st_mtime_ns, stat.st_size)


def projection_key(digest: str, layer: str, method: str, params: dict) -> str:
    """The cache file's name for one fitted map."""
    payload = {"weights": digest, "layer": layer, "method": method, "params": params, "version": CACHE_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays as one .npz atomically (temporary file, then rename)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(a) for name, a in arrays.items()})
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays saved at `path`, or None when missing or unreadable (a stale file is ignored)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError):
        return None


def load_or_compute(key: str, compute: Callable[[], dict[str, np.ndarray]],
                    directory: Path | None = None) -> tuple[dict[str, np.ndarray], bool]:
    """(arrays, True) from the disk cache, else (compute(), False) after saving them."""
    path = Path(directory or projection_dir()) / f"{key}.npz"
    cached = load_arrays(path)
    if cached is not None:
        return cached, True
    arrays = compute()
    try:
        save_arrays(path, arrays)
    except OSError as error:  # a read-only home must not break the page
        warnings.warn(f"could not cache the projection in {path.parent}: {error}", stacklevel=2)
    return arrays, False
