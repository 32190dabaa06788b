"""Reading pickles of numpy arrays (Frey Faces) with an unpickler that builds plain numeric arrays only.

Handing numpy's own `_reconstruct`, `ndarray` and `dtype` to a pickle stream is not safe: a forged
stream can set an object dtype through the dtype's pickled state, or call `ndarray(shape, object,
buffer)`, and numpy then reads the file's bytes as object pointers (the process crashes, or worse).
So `find_class` hands out stand-ins instead. They only record their arguments; the state BUILD
gives them is checked (a dtype: bool, int, uint or float of a standard size, no fields, no
subarray; an array: its shape, that dtype, and exactly prod(shape) * itemsize bytes of data), and
only then does a stand-in become a real array, a copy made with `np.frombuffer`. Nothing else a
pickle can name is allowed, and the total size of the arrays built is bounded.
"""

from __future__ import annotations

import io
import math
import pickle
import re
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .formats import one_line, read_bytes

MAX_PICKLE_BYTES = 256 << 20  # a pickle file, and the arrays built from it, at most 256 MiB each
MAX_NDIM = 32
_PLAIN_DTYPE = re.compile(r"[<>|=]?(b1|[iu][1248]|f[248])")  # bool, int, uint, float: nothing else
_LEAVES = (str, bytes, bytearray, int, float, bool, type(None))


class _Refused(DatasetError):
    """What a forged or unusual stream is told; `read_safe_pickle` adds the file's name."""


class _DtypeRecipe:
    """Stands in for `numpy.dtype`: accepts a plain numeric type string and the state numpy writes
    for such a dtype, and keeps the real dtype (`.dtype`), built from the checked string alone."""

    def __new__(cls, typestr=None, align=False, copy=True):  # __new__: protocol 2's NEWOBJ skips __init__
        if not isinstance(typestr, str) or not _PLAIN_DTYPE.fullmatch(typestr):
            raise _Refused(f"refusing to build an array of dtype {_short(typestr)}: "
                           "only bool, int, uint and float are allowed")  # fmt: skip
        recipe = super().__new__(cls)
        recipe.dtype, recipe.has_state = np.dtype(typestr), False
        return recipe

    def __setstate__(self, state):
        if self.has_state:
            raise _Refused("refusing a dtype given its state twice")
        self.has_state = True
        if not isinstance(state, tuple) or len(state) not in (8, 9):
            raise _Refused(f"refusing a dtype state {_short(state)}")
        version, endian, subarray, names, fields, elsize, alignment, flags, *metadata = state
        plain = (
            version in (3, 4) and endian in ("<", ">", "|", "=") and subarray is None and names is None
            and fields is None and elsize in (-1, self.dtype.itemsize) and alignment in (-1, 1, 2, 4, 8)
            and flags == 0 and metadata in ([], [None])
        )  # fmt: skip
        if not plain:
            raise _Refused(f"refusing a dtype state {_short(state)}: only plain numeric dtypes are allowed")
        self.dtype = self.dtype.newbyteorder(endian if endian in "<>" else "=")


class _NdarrayName:
    """Stands in for `numpy.ndarray`: a pickle may name it as `_reconstruct`'s first argument, but
    calling it (`ndarray(shape, dtype, buffer)`) is refused."""

    def __new__(cls, *args, **kwargs):
        raise _Refused("refusing to call numpy.ndarray: arrays are rebuilt from their pickled state only")


class _ArrayRecipe:
    """What `_reconstruct` returns: a placeholder until BUILD gives it the array's state
    (version 1, shape, dtype, Fortran order, raw bytes), which `build` turns into `.array`."""

    def __init__(self, build):
        self._build, self.array = build, None

    def __setstate__(self, state):
        if self.array is not None:
            raise _Refused("refusing an array given its state twice")
        if isinstance(state, tuple) and len(state) == 5:
            version, *state = state
            if version != 1:
                raise _Refused(f"refusing an array state of version {_short(version)}")
        if not isinstance(state, (tuple, list)) or len(state) != 4:
            raise _Refused("refusing an array state that is not (shape, dtype, fortran, data)")
        shape, dtype, fortran, raw = state
        if fortran not in (0, 1):
            raise _Refused(f"refusing an array with Fortran flag {_short(fortran)}")
        self.array = self._build(raw, dtype, shape, "F" if fortran else "C")


class _ArrayUnpickler(pickle.Unpickler):
    """The unpickler behind `read_safe_pickle` (see the module docstring)."""

    def __init__(self, stream, max_bytes: int):
        super().__init__(stream, encoding="latin1")  # a Python 2 str is bytes: latin-1 keeps every byte
        self._budget = max_bytes

    def find_class(self, module: str, name: str):
        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): self._reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): self._reconstruct,
            ("numpy.core.numeric", "_frombuffer"): self._build,  # protocol 5: (buffer, dtype, shape, order)
            ("numpy._core.numeric", "_frombuffer"): self._build,
            ("numpy", "ndarray"): _NdarrayName,
            ("numpy", "dtype"): _DtypeRecipe,
            ("_codecs", "encode"): self._encode,  # how Python 3 writes bytes at protocols 0-2 ...
            ("__builtin__", "bytes"): _empty_bytes,  # ... and b"" (the data of an empty array)
            ("builtins", "bytes"): _empty_bytes,
        }
        try:
            return allowed[(module, name)]
        except KeyError:
            raise _Refused(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed") from None

    def _spend(self, nbytes: int) -> None:
        self._budget -= nbytes
        if self._budget < 0:
            raise _Refused(f"refusing to build more than {MAX_PICKLE_BYTES:,} bytes of arrays")

    def _reconstruct(self, cls, shape, typecode) -> _ArrayRecipe:
        if cls is not _NdarrayName or shape != (0,) or typecode not in (b"b", "b"):
            raise _Refused("refusing a numpy _reconstruct call that numpy never writes")
        return _ArrayRecipe(self._build)

    def _encode(self, text, encoding="utf-8") -> bytes:
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise _Refused("refusing a _codecs.encode call that is not latin-1 text")
        self._spend(len(text))
        return text.encode("latin1")

    def _build(self, raw, dtype, shape, order) -> np.ndarray:
        """A native-endian copy of `raw` as an array, once its dtype, shape and size are checked."""
        if not isinstance(dtype, _DtypeRecipe):
            raise _Refused(f"refusing an array whose dtype is {_short(dtype)}")
        if isinstance(raw, str):  # a Python 2 str, read as latin-1
            raw = raw.encode("latin1")
        if not isinstance(raw, (bytes, bytearray)):
            raise _Refused(f"refusing array data of type {type(raw).__name__}")
        if not (isinstance(shape, tuple) and len(shape) <= MAX_NDIM and all(type(d) is int and d >= 0 for d in shape)):
            raise _Refused(f"refusing an array of shape {_short(shape)}")
        if order not in ("C", "F"):
            raise _Refused(f"refusing an array of order {_short(order)}")
        count, itemsize = math.prod(shape), dtype.dtype.itemsize
        if count * itemsize != len(raw):
            raise _Refused(f"refusing an array of shape {_short(shape)} ({count * itemsize:,} bytes) "
                           f"from {len(raw):,} bytes")  # fmt: skip
        self._spend(len(raw))
        flat = np.frombuffer(raw, dtype.dtype, count=count) if count else np.empty(0, dtype.dtype)
        return flat.reshape(shape, order=order).astype(dtype.dtype.newbyteorder("="), order="C")


def _empty_bytes(*args) -> bytes:
    if args:
        raise _Refused("refusing a call of bytes() with arguments")
    return b""


def _resolve(obj, memo: dict):
    """The unpickled value with every array placeholder replaced by its array; only containers,
    strings, numbers and None may surround them. Shared and self-referencing parts stay so."""
    key = id(obj)
    if key in memo:
        return memo[key]
    if type(obj) is np.ndarray:  # built by `_build` (protocol 5): nothing else here makes arrays
        memo[key] = obj
    elif isinstance(obj, _ArrayRecipe):
        if obj.array is None:
            raise _Refused("refusing an array that was never given its state")
        memo[key] = obj.array
    elif type(obj) is list:
        memo[key] = result = []
        result.extend(_resolve(item, memo) for item in obj)
    elif type(obj) is dict:
        memo[key] = result = {}
        for k, v in obj.items():
            if type(k) not in _LEAVES:
                raise _Refused(f"refusing a dict key of type {type(k).__name__}")
            result[k] = _resolve(v, memo)
    elif type(obj) is tuple:
        memo[key] = tuple(_resolve(item, memo) for item in obj)
    elif type(obj) in (set, frozenset) and all(type(item) in _LEAVES for item in obj):
        memo[key] = obj
    elif type(obj) in _LEAVES:
        memo[key] = obj
    else:
        raise _Refused(f"refusing to unpickle an object of type {type(obj).__name__}")
    return memo[key]


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def read_safe_pickle(path: str | Path, *, max_bytes: int = MAX_PICKLE_BYTES) -> object:
    """Load a pickle of numpy arrays (Python 2 ones included) with the array-only unpickler.

    Raises a one-line DatasetError naming the file for a damaged or forged file. The file is read
    into memory first (at most max_bytes), so a length the stream declares can never make the
    unpickler read past it.
    """
    path = Path(path)
    raw = read_bytes(path, max_bytes, "pickle file")
    try:
        return _resolve(_ArrayUnpickler(io.BytesIO(raw), max_bytes).load(), {})
    except _Refused as exc:
        raise DatasetError(f"{path}: {exc}") from None
    except Exception as exc:  # a damaged stream can make the unpickler raise almost anything
        raise DatasetError(f"{path} is not a readable pickle: {one_line(exc)}") from None
