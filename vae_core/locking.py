"""One training process per checkpoint folder: the folder's lock file.

`train()` writes only inside its output folder, so two processes training into the same folder
(a dashboard job and a CLI run, or two servers) would interleave their checkpoints. Whoever trains
into a folder first creates `.train.lock` there with O_CREAT | O_EXCL, holding its pid and host;
others are refused with `FolderLocked`. A lock whose process has died (on this host) is stale and is
taken over (two processes taking over the same stale lock at the same instant is not guarded).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

from .errors import VampvizError

LOCK_FILE = ".train.lock"


class FolderLocked(VampvizError):
    """Another live process trains into the folder."""


_held_locks: set[Path] = set()  # lock files this process holds (a lock with our own pid but not here is stale)


def _lock_owner(path: Path) -> tuple[int, str] | None:
    """(pid, host) written in a lock file, or None when it is unreadable or garbled."""
    try:
        pid, host = path.read_text().split()
        return int(pid), host
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def lock_is_stale(path: Path, garbled_after: float = 10.0) -> bool:
    """A lock whose process has died (on this host), or a garbled one older than `garbled_after` s."""
    owner = _lock_owner(path)
    if owner is None:
        try:
            return time.time() - path.stat().st_mtime > garbled_after  # a young one may be mid-write
        except FileNotFoundError:
            return True
    pid, host = owner
    if host != socket.gethostname():
        return False  # cannot check a process on another machine
    if pid == os.getpid():
        return path not in _held_locks
    return not _pid_alive(pid)


def acquire_lock(out: Path) -> Path:
    """Create `out/.train.lock` exclusively (taking over a stale one); the lock file's path.

    Raises FolderLocked when a live process holds it."""
    path = Path(out) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if attempt == 0 and lock_is_stale(path):
                path.unlink(missing_ok=True)
                continue
            owner = _lock_owner(path)
            who = f"process {owner[0]} on {owner[1]}" if owner else "another process"
            raise FolderLocked(f"{out} is being trained into by {who}; if nothing is training there, "
                               f"delete {path}") from None
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {socket.gethostname()}\n")
        _held_locks.add(path)
        return path
    raise AssertionError("unreachable")


def release_lock(path: Path) -> None:
    """Remove a lock this process holds (never one another process has taken over since)."""
    _held_locks.discard(path)
    if _lock_owner(path) == (os.getpid(), socket.gethostname()):
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def training_lock(out: str | Path):
    """Hold `out`'s lock file for the duration of the block."""
    path = acquire_lock(Path(out))
    try:
        yield path
    finally:
        release_lock(path)
