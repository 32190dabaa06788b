"""One training process per checkpoint folder: the folder's lock file.

`train()` writes only inside its output folder, so two processes training into the same folder
(a dashboard job and a CLI run, or two servers) would interleave their checkpoints. Whoever trains
into a folder holds an exclusive `fcntl.flock` on `.train.lock` there for as long as it trains;
others are refused with `FolderLocked`. The kernel drops the lock when its process exits, however
it exits, so a lock left by a dead process is simply taken over, and two processes taking it over
at the same instant cannot both win. The file's text (the holder's pid and host) is only there to
name the holder in the refusal.

The lock is removed while still held (unlink, then close), and a taker checks that the file it
locked is still the one at the path, so a release racing a take-over cannot hand out two locks.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path

from .errors import VampvizError

LOCK_FILE = ".train.lock"
PROBE_GRACE_S = 0.2  # how long a taker retries while someone may be only probing the lock (lock_holder)


class FolderLocked(VampvizError):
    """Another live process trains into the folder."""


_held: dict[Path, int] = {}  # lock file -> the descriptor holding its flock, in this process


def _owner_text(path: Path) -> str:
    """"process PID on HOST" from a lock file, or "another process" when it is unreadable."""
    try:
        pid, host = path.read_text()[:200].split()
        return f"process {int(pid)} on {host}"
    except (OSError, ValueError, UnicodeDecodeError):
        return "another process"


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def acquire_lock(out: Path) -> Path:
    """Take `out/.train.lock` (creating `out` and the file); the lock file's path.

    Raises FolderLocked when another process, or another call in this one, holds it."""
    path = Path(out) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + PROBE_GRACE_S
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() < deadline:
                time.sleep(0.01)
                continue
            raise FolderLocked(f"{out} is being trained into by {_owner_text(path)}; if nothing is training "
                               f"there, delete {path}") from None
        if _same_file(fd, path):
            break
        os.close(fd)  # released and removed between our open and our flock: take the new file
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
    _held[path] = fd
    return path


def release_lock(path: Path) -> None:
    """Remove and release a lock this process holds (a no-op for any other)."""
    fd = _held.pop(Path(path), None)
    if fd is None:
        return
    try:
        if _same_file(fd, Path(path)):
            Path(path).unlink(missing_ok=True)
    finally:
        os.close(fd)


def lock_holder(out: str | Path) -> str | None:
    """Who holds `out`'s lock ("process PID on HOST"), or None when nobody does.

    Probes with a shared lock taken and dropped at once; a taker meeting the probe retries for
    PROBE_GRACE_S, so probing never refuses a trainer."""
    path = Path(out) / LOCK_FILE
    if path in _held:
        return _owner_text(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _owner_text(path)
    finally:
        os.close(fd)  # closing drops the probe's shared lock
    return None


@contextlib.contextmanager
def training_lock(out: str | Path):
    """Hold `out`'s lock file for the duration of the block."""
    path = acquire_lock(Path(out))
    try:
        yield path
    finally:
        release_lock(path)
