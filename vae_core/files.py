"""Atomic file writes: a temporary file in the target's folder, fsync, rename, fsync the folder.
Also whether a folder may be written at all.

A crash or a kill at any moment leaves either the previous version of a file or the new one,
never a mixture; the folder's fsync makes the rename itself survive a power cut.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator


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


@contextmanager
def atomic_writer(path: str | Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A binary file (open for writing and reading back) whose contents replace `path` atomically
    when the block ends; if the block raises, `path` is left as it was and nothing stays behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, mode)  # mkstemp creates 0600; checkpoints and data are meant to be shared
        with os.fdopen(handle, "w+b") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` atomically (see the module docstring)."""
    with atomic_writer(path, mode) as f:
        f.write(data)


def atomic_write_json(path: str | Path, data) -> None:
    """`data` as indented JSON, written atomically."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, allow_nan=True) + "\n").encode())


def unwritable_reason(folder: str | Path) -> str | None:
    """Why files cannot be created in `folder` (made with its parents if missing), or None if they can.

    Checked before anything is written, so a bad output path fails with one line and leaves nothing
    behind: the nearest existing ancestor must be a folder this process may write into. A folder
    whose permission bits deny writing counts as read-only even for root (like a shared data folder).
    """
    folder = Path(folder)
    candidate = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if candidate is None:
        return None
    try:
        mode = candidate.stat().st_mode
    except OSError as error:
        return f"{candidate} cannot be read ({error.strerror})"
    if not stat.S_ISDIR(mode):
        return f"{candidate} is a file, not a folder"
    writable_bits = mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    if not writable_bits or not os.access(candidate, os.W_OK | os.X_OK):
        return f"{candidate} is not writable"
    return None


def is_writable(folder: str | Path) -> bool:
    """Whether files can be created in `folder` (see `unwritable_reason`)."""
    return unwritable_reason(folder) is None
