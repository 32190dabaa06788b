"""File readers for the dataset formats: idx (LeCun's MNIST), Larochelle's `.amat` text and MATLAB
`.mat` (pickles of numpy arrays: `pickles.py`). Every reader raises a one-line `DatasetError` naming
the file when the file is malformed. Also `save_npz`, an atomic npz write.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .. import files
from ..errors import DatasetError

def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type's name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def read_bytes(path: Path, max_bytes: int, what: str) -> bytes:
    """The contents of a file, refused (DatasetError naming it) above max_bytes."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            raw = f.read(max_bytes + 1) if size <= max_bytes else b""
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {one_line(exc)}") from None
    if size > max_bytes or len(raw) > max_bytes:
        raise DatasetError(f"{path} has {max(size, len(raw)):,} bytes, more than a {what} file may have ({max_bytes:,})")
    return raw


_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (LeCun's MNIST format), gzipped or not, into a native-endian array."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"cannot read idx file {path}: {exc}") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path} is not an idx file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", raw[4:header]) if len(raw) >= header else ()
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    if len(dims) != ndim or len(raw) - header != int(np.prod(dims)) * dtype.itemsize:
        raise DatasetError(f"idx file {path} is truncated or has a wrong header")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read_amat(path: str | Path) -> np.ndarray:
    """Read a Larochelle `.amat` text file (one image per line, pixels 0/1 separated by spaces)
    into a uint8 (N, D) array."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    rows = [line for line in raw.splitlines() if line.strip()]
    buf = np.frombuffer(raw, np.uint8)
    digit = (buf == ord("0")) | (buf == ord("1"))
    blank = np.isin(buf, np.frombuffer(b" \t\r\n", np.uint8))
    if rows and np.all(digit | blank) and not np.any(digit[1:] & digit[:-1]):
        values = buf[digit] - ord("0")  # fast path: every value is a single 0/1 character
        width = len(rows[0].split())
        if values.size == width * len(rows):
            return values.reshape(len(rows), width).astype(np.uint8)
        raise DatasetError(f"{path}: the lines of this .amat file have different lengths")
    try:  # general text, e.g. "0.0 1.0 ..."
        values = np.loadtxt(path, dtype=np.float32, ndmin=2)
    except ValueError as exc:
        raise DatasetError(f"{path} is not a readable .amat file: {exc}") from None
    if not np.isin(values, (0.0, 1.0)).all():
        raise DatasetError(f"{path}: expected binary pixels (0 or 1)")
    return values.astype(np.uint8)


def read_mat(path: str | Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Read a MATLAB (v4-v7.2) `.mat` file with scipy; `keys` must be present. Returns all variables."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    path = Path(path)
    try:
        contents = loadmat(path)
    except (OSError, ValueError, TypeError, NotImplementedError, MatReadError) as exc:
        raise DatasetError(f"cannot read .mat file {path}: {exc}") from None
    missing = [k for k in keys if k not in contents]
    if missing:
        raise DatasetError(f"{path} lacks the variable(s) {', '.join(missing)}")
    return {k: v for k, v in contents.items() if not k.startswith("__")}


def save_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays as one compressed .npz, atomically (a reader never sees half a file)."""
    with files.atomic_writer(path) as f:
        np.savez_compressed(f, **arrays)
