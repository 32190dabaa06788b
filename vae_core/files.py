"""Atomic file writes: a temporary file in the target's folder, fsync, rename, fsync the folder.

A crash or a kill at any moment leaves either the previous version of a file or the new one,
never a mixture; the folder's fsync makes the rename itself survive a power cut.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (renames, new files) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` atomically (see the module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, mode)  # mkstemp creates 0600; checkpoints and data are meant to be shared
        with os.fdopen(handle, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: str | Path, data) -> None:
    """`data` as indented JSON, written atomically."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, allow_nan=True) + "\n").encode())


def unwritable_reason(folder: str | Path) -> str | None:
    """Why files cannot be created in `folder` (made with its parents if missing), or None if they can.

    Checked before anything is written, so a bad output path fails with one line and leaves nothing
    behind: the nearest existing ancestor must be a folder this process may write into."""
    folder = Path(folder)
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
    else:
        return None
    if not candidate.is_dir():
        return f"{candidate} is a file, not a folder"
    if not os.access(candidate, os.W_OK | os.X_OK):
        return f"{candidate} is not writable"
    return None
