"""Where vampviz reads and writes on disk, and the environment variables that move it.

    $VAMPVIZ_DATA_DIR      dataset files              (default ~/.cache/vampviz/data)
    $VAMPVIZ_CACHE_DIR     projections, numba, derived arrays (default ~/.cache/vampviz)
    $VAMPVIZ_CHECKPOINTS   the dashboard's extra checkpoint folder and where its Train page
                           writes new runs           (default ~/.cache/vampviz/runs)
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "VAMPVIZ_DATA_DIR"
CACHE_DIR_ENV = "VAMPVIZ_CACHE_DIR"
CHECKPOINTS_ENV = "VAMPVIZ_CHECKPOINTS"


def _home_cache() -> Path:
    return Path.home() / ".cache" / "vampviz"


def _from_env(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def data_dir(explicit: str | Path | None = None) -> Path:
    """The folder holding dataset files: `explicit`, else $VAMPVIZ_DATA_DIR, else the home cache."""
    if explicit is not None:
        return Path(explicit).expanduser()
    return _from_env(DATA_DIR_ENV) or _home_cache() / "data"


def cache_dir() -> Path:
    """The root of vampviz's caches: $VAMPVIZ_CACHE_DIR, else ~/.cache/vampviz."""
    return _from_env(CACHE_DIR_ENV) or _home_cache()


def runs_dir() -> Path:
    """Where the dashboard's Train page writes runs: $VAMPVIZ_CHECKPOINTS, else ~/.cache/vampviz/runs."""
    return _from_env(CHECKPOINTS_ENV) or _home_cache() / "runs"
