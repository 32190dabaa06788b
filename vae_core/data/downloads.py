"""Downloading a dataset's files (`download`) and checking them against their published checksums.

Each file streams from the first mirror that works into a temporary file next to its target, is
checked against its checksum, and only then renamed into place (`files.atomic_writer`); a failed,
tampered or oversized download (more than the file's `max_bytes`, whether the server announces it
or just keeps sending) leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.request
from pathlib import Path
from typing import BinaryIO, Callable

from .. import files
from ..errors import DatasetError
from ..paths import DATA_DIR_ENV
from .registry import RemoteFile, get_spec, resolve_data_dir

DOWNLOAD_TIMEOUT_S = 60
USER_AGENT = "vampviz-data/1.0 (+python urllib)"
CHUNK_BYTES = 1 << 20


def _digest(stream: BinaryIO, kind: str, size: int) -> str:
    """The hex digest of `size` bytes read from stream: kind "md5", "sha256" or "git-blob"."""
    hasher = hashlib.sha1(b"blob %d\0" % size) if kind == "git-blob" else hashlib.new(kind)
    for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
        hasher.update(chunk)
    return hasher.hexdigest()


def file_checksum(path: str | Path, kind: str) -> str:
    """The hex digest of a file: kind "md5", "sha256" or "git-blob" (what `git hash-object` prints)."""
    with open(path, "rb") as f:
        return _digest(f, kind, os.path.getsize(path))


def checksum_ok(path: Path, checksum: str) -> bool:
    """Whether the file at path has `checksum` ("<kind>:<hex>", as in `RemoteFile`)."""
    kind, expected = checksum.split(":", 1)
    return file_checksum(path, kind) == expected.lower()


def published_checksum(name: str, relpath: str) -> str | None:
    """The checksum dataset `name`'s download plan publishes for the file `relpath`, if any."""
    plan = get_spec(name).download
    return next((r.checksum for r in plan.files if r.path == relpath), None) if plan else None


class _Rejected(Exception):
    """A mirror's bytes are not the file's (wrong checksum); the next mirror is tried."""


def _announced_size(response) -> int | None:
    """The Content-Length a server sent, if any."""
    headers = getattr(response, "headers", None)
    try:
        return int(headers.get("Content-Length")) if headers is not None else None
    except (TypeError, ValueError):
        return None


def _fetch_one(url: str, remote: RemoteFile, target: Path) -> str:
    """Stream url into target (atomically), at most `remote.max_bytes` of it; returns the
    checksum kind verified."""
    kind, expected = remote.checksum.split(":", 1)
    too_big = f"more than the {remote.max_bytes:,} bytes this file may have"
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
        announced = _announced_size(response)
        if announced is not None and announced > remote.max_bytes:
            raise _Rejected(f"the server announces {announced:,} bytes, {too_big}")
        with files.atomic_writer(target) as out:
            while chunk := response.read(CHUNK_BYTES):
                if out.tell() + len(chunk) > remote.max_bytes:
                    raise _Rejected(f"the server sent {too_big}")
                out.write(chunk)
            size = out.tell()
            out.seek(0)
            actual = _digest(out, kind, size)
            if actual != expected.lower():
                raise _Rejected(f"checksum mismatch ({kind} {actual}, expected {expected})")
    return kind


def fetch(remote: RemoteFile, target: Path, log: Callable[[str], None]) -> None:
    """Download `remote` to target from the first mirror whose bytes pass the checksum."""
    failures = []
    for url in remote.urls:
        log(f"downloading {url}")
        try:
            kind = _fetch_one(url, remote, target)
        except (OSError, http.client.HTTPException, ValueError, _Rejected) as exc:
            failures.append(f"{url}: {exc}")
            continue
        log(f"saved {target} ({target.stat().st_size:,} bytes, {kind} verified)")
        return
    raise DatasetError(f"could not download {remote.path}: " + "; ".join(failures))


def _log_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def download(
    name: str, data_dir: str | Path | None = None, *, force: bool = False,
    log: Callable[[str], None] = _log_stderr,
) -> list[Path]:  # fmt: skip
    """Fetch dataset `name`'s files into the data directory (see `resolve_data_dir`).

    Files already present with the right checksum are kept. Does nothing when the loader's files
    are all there, unless `force`. Returns the loader's files (empty for an embedded dataset).
    Raises DatasetError when no mirror gives the right bytes.
    """
    spec = get_spec(name)
    if not spec.files:
        log(f"{name}: embedded, nothing to download")
        return []
    plan = spec.download
    if plan is None:
        raise DatasetError(f"dataset {name!r} has no download source; put {', '.join(spec.files)} in place by hand")
    root = resolve_data_dir(data_dir)
    wanted = [root / f for f in spec.files]
    if not force and all(p.exists() for p in wanted):
        log(f"{name}: already in {root}")
        return wanted
    if not files.is_writable(root):
        raise DatasetError(
            f"cannot download {name!r} into {root}: the folder is read-only; "
            f"choose a writable data directory (argument or {DATA_DIR_ENV})"
        )
    for remote in plan.files:
        target = root / remote.path
        if not force and target.exists() and checksum_ok(target, remote.checksum):
            log(f"{target} is already there (checksum verified)")
            continue
        fetch(remote, target, log)
    if plan.convert is not None:
        plan.convert(root)
    return wanted
