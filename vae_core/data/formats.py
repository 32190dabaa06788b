"""File readers for the dataset formats: idx (LeCun's MNIST), Larochelle's `.amat` text, MATLAB
`.mat` and numpy `.npz` (pickles of numpy arrays: `pickles.py`), and `save_npz`, an atomic write.

Every reader raises a one-line `DatasetError` naming the file when the file is damaged, whatever
the parser underneath raised (zlib.error, struct.error, ...). None allocates more than its
`max_bytes` for a file: sizes that headers declare (an idx header's dimensions, an .npy header's
shape, what a .mat file's compressed variables inflate to) are checked before anything is read.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from .. import files
from ..errors import DatasetError

MAX_ARRAY_BYTES = 256 << 20  # the most a reader decodes from one file (the largest real one: ~210 MB)
CHUNK_BYTES = 1 << 20


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type's name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


@contextmanager
def reading(path: Path, what: str) -> Iterator[None]:
    """Turn whatever a parser raises on a damaged file into one DatasetError naming the file."""
    try:
        yield
    except DatasetError:
        raise
    except Exception as exc:  # parsers of damaged files raise almost anything (zlib.error, struct.error, ...)
        raise DatasetError(f"cannot read {what} {path}: {one_line(exc)}") from None


def read_bytes(path: Path, max_bytes: int, what: str) -> bytes:
    """The contents of a file, refused (DatasetError naming it) above max_bytes."""
    with reading(path, what):
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            raw = f.read(max_bytes + 1) if size <= max_bytes else b""
    if size > max_bytes or len(raw) > max_bytes:
        raise DatasetError(f"{path} has {max(size, len(raw)):,} bytes, more than a {what} may have ({max_bytes:,})")
    return raw


def _read_up_to(stream: BinaryIO, n: int) -> bytes:
    """At most n bytes from stream, read in chunks: memory follows the data that is there, not n."""
    chunks, left = [], n
    while left > 0 and (chunk := stream.read(min(left, CHUNK_BYTES))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# --------------------------------------------------------------------------------------------
# idx

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path, *, max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
    """Read an idx file (LeCun's MNIST format), gzipped or not, into a native-endian array."""
    path = Path(path)
    with reading(path, "idx file"):
        with open(path, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as f:
            magic = f.read(4)
            if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _IDX_DTYPES:
                raise DatasetError(f"{path} is not an idx file (bad magic number)")
            ndim, dtype = magic[3], np.dtype(_IDX_DTYPES[magic[2]])
            header = f.read(4 * ndim)
            if len(header) != 4 * ndim:
                raise DatasetError(f"idx file {path} is truncated or has a wrong header")
            dims = struct.unpack(f">{ndim}I", header)
            nbytes = math.prod(dims) * dtype.itemsize
            if nbytes > max_bytes:
                raise DatasetError(f"idx file {path}: its header declares {dims} ({nbytes:,} bytes), "
                                   f"more than {max_bytes:,}")  # fmt: skip
            payload = _read_up_to(f, nbytes)
            trailing = f.read(1)
    if len(payload) != nbytes or trailing:
        raise DatasetError(f"idx file {path} is truncated or has a wrong header")
    return np.frombuffer(payload, dtype).reshape(dims).astype(dtype.newbyteorder("="))


# --------------------------------------------------------------------------------------------
# .amat

MAX_AMAT_BYTES = 256 << 20  # Larochelle's training file has 78,400,000 bytes


def read_amat(path: str | Path, *, max_bytes: int = MAX_AMAT_BYTES) -> np.ndarray:
    """Read a Larochelle `.amat` text file (one image per line, pixels 0/1 separated by spaces)
    into a uint8 (N, D) array."""
    path = Path(path)
    raw = read_bytes(path, max_bytes, ".amat file")
    rows = [line for line in raw.splitlines() if line.strip()]
    if not rows:
        raise DatasetError(f"{path}: this .amat file holds no rows")
    buf = np.frombuffer(raw, np.uint8)
    digit = (buf == ord("0")) | (buf == ord("1"))
    blank = np.isin(buf, np.frombuffer(b" \t\r\n", np.uint8))
    if np.all(digit | blank) and not np.any(digit[1:] & digit[:-1]):
        values = buf[digit] - ord("0")  # fast path: every value is a single 0/1 character
        width = len(rows[0].split())
        if values.size == width * len(rows):
            return values.reshape(len(rows), width).astype(np.uint8)
        raise DatasetError(f"{path}: the lines of this .amat file have different lengths")
    with reading(path, ".amat file"):  # general text, e.g. "0.0 1.0 ..."
        values = np.loadtxt(io.StringIO(raw.decode("ascii")), dtype=np.float32, ndmin=2)
    if not np.isin(values, (0.0, 1.0)).all():
        raise DatasetError(f"{path}: expected binary pixels (0 or 1)")
    return values.astype(np.uint8)


# --------------------------------------------------------------------------------------------
# .mat

_MI_COMPRESSED = 15


def _inflated_size(compressed: bytes, limit: int) -> int:
    """How many bytes a zlib stream inflates to, counted chunk by chunk (stopping above limit)."""
    inflater, size = zlib.decompressobj(), 0
    while compressed and size <= limit:
        size += len(inflater.decompress(compressed, CHUNK_BYTES))
        compressed = inflater.unconsumed_tail
    return size + len(inflater.flush(CHUNK_BYTES))


def _check_mat5_size(raw: bytes, path: Path, max_bytes: int) -> None:
    """Refuse a MAT v5 file whose variables take more than max_bytes once inflated, before scipy
    reads it: a small file can inflate to gigabytes, and a variable's data need not match its
    declared shape. (v4 files are never compressed; v7.3 files scipy refuses.)"""
    if len(raw) < 128 or raw[126:128] not in (b"IM", b"MI"):
        return
    endian = "<" if raw[126:128] == b"IM" else ">"
    position, total = 128, 0
    while position + 8 <= len(raw) and total <= max_bytes:
        kind, nbytes = struct.unpack_from(endian + "II", raw, position)
        position += 8
        if kind == _MI_COMPRESSED:
            total += _inflated_size(raw[position : position + nbytes], max_bytes - total)
        else:
            total += nbytes
        position += nbytes
    if total > max_bytes:
        raise DatasetError(f".mat file {path} holds more than {max_bytes:,} bytes of data once inflated")


def read_mat(path: str | Path, keys: tuple[str, ...], optional: tuple[str, ...] = (), *,
             max_bytes: int = MAX_ARRAY_BYTES) -> dict[str, np.ndarray]:  # fmt: skip
    """Read the variables `keys` (all must be present) and `optional` (those present) of a MATLAB
    (v4-v7.2) `.mat` file with scipy."""
    from scipy.io import loadmat

    path = Path(path)
    raw = read_bytes(path, max_bytes, ".mat file")
    with reading(path, ".mat file"):
        _check_mat5_size(raw, path, max_bytes)
        contents = loadmat(io.BytesIO(raw), variable_names=[*keys, *optional])
    missing = [k for k in keys if k not in contents]
    if missing:
        raise DatasetError(f"{path} lacks the variable(s) {', '.join(missing)}")
    return {k: v for k, v in contents.items() if not k.startswith("__")}


# --------------------------------------------------------------------------------------------
# .npz


def _npy_header(member: BinaryIO) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise ValueError(f".npy format version {version} is not supported")
    return shape, dtype


def read_npz(path: str | Path, keys: tuple[str, ...], *, max_bytes: int = MAX_ARRAY_BYTES) -> dict[str, np.ndarray]:
    """Read the arrays `keys` of an .npz file: plain numbers or text only, at most max_bytes in all.
    Each member's header is checked against the size the archive records for it before numpy
    allocates the array that header declares."""
    path = Path(path)
    arrays = {}
    with reading(path, ".npz file"), zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        missing = [k for k in keys if f"{k}.npy" not in names]
        if missing:
            raise DatasetError(f"{path} lacks the array(s) {', '.join(missing)}")
        members = [archive.getinfo(f"{k}.npy") for k in keys]
        if sum(m.file_size for m in members) > max_bytes:
            raise DatasetError(f".npz file {path} holds more than {max_bytes:,} bytes")
        for key, member in zip(keys, members):
            with archive.open(member) as f:
                shape, dtype = _npy_header(f)
            if dtype.kind not in "biufU" or dtype.fields or dtype.subdtype:
                raise DatasetError(f"{path}: '{key}' has dtype {dtype}; only plain numbers or text are read")
            if math.prod(shape) * dtype.itemsize > member.file_size:
                raise DatasetError(f"{path}: '{key}' declares shape {shape}, more data than the file holds")
            with archive.open(member) as f:
                arrays[key] = np.lib.format.read_array(f, allow_pickle=False)
    return arrays


def save_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays as one compressed .npz, atomically (a reader never sees half a file)."""
    with files.atomic_writer(path) as f:
        np.savez_compressed(f, **arrays)
