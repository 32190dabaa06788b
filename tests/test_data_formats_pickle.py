"""The array-only unpickler against forged pickles, and numpy's own pickles at every protocol.

A forged file can ask numpy for arrays whose raw bytes are read as object pointers (an object dtype
set through the dtype's pickled state, an object field, `ndarray(..., buffer=...)` with an object
dtype); an unpickler that hands numpy's real `_reconstruct`/`ndarray`/`dtype` to the stream
crashes the process on such a file. The forged files are therefore loaded in a child process, so
that a crash fails one test instead of ending the suite.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.data_helpers import (  # noqa: F401
    isolated_data_dirs,
    py2_pickle_of,
    run_in_children,
    use_plan,
)
from vae_core import data
from vae_core.data import freyfaces
from vae_core.errors import DatasetError

try:
    from numpy._core.multiarray import _reconstruct  # numpy >= 2
    from numpy._core.numeric import _frombuffer
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer

PROTOCOLS = (0, 2, 4)
CHILD_SPLIT = (6, 2, 2)  # Frey Faces split sizes in the child process, so that forged files stay small


class Call:
    """Pickles as `func(*args)`, then BUILD with `state` if given: any stream a crafted file can hold."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def forged(case: str, protocol: int) -> bytes:
    """The pickle of [forged array] for one attack; bytes go in as latin-1 text below protocol 3,
    the way Python 2 pickles hold them (a Python 3 bytes object would need `_codecs.encode`)."""

    def raw(b: bytes):
        return b if protocol >= 3 else b.decode("latin1")

    def array(shape, dtype, payload: bytes, fortran=False):
        return Call(_reconstruct, (np.ndarray, (0,), raw(b"b")), (1, shape, dtype, fortran, raw(payload)))

    n = sum(CHILD_SPLIT)  # the faces the loader expects: every forged array has the right shape
    pointers = b"\x41" * (8 * n * 560)  # "object pointers" to address 0x4141414141414141
    object_dtype_without_flags = Call(np.dtype, ("O8", False, True), (3, "|", None, None, None, -1, -1, 0))
    object_field = Call(np.dtype, ("V8", False, True), (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0))
    zeros = b"\0" * (n * 560)
    cases = {
        "object dtype through the dtype's state": array((n, 560), object_dtype_without_flags, pointers),
        "object field through the dtype's state": array((n, 560), object_field, pointers),
        "ndarray called with an object dtype and a buffer": Call(np.ndarray, ((n, 560), np.dtype("O"), raw(pointers))),
        "ndarray called with a numeric dtype and a buffer": Call(np.ndarray, ((n, 560), np.dtype("u1"), raw(zeros))),
        "_frombuffer with an object dtype": Call(_frombuffer, (raw(pointers), np.dtype("O"), (n, 560), "C")),
        "structured dtype": array((n, 560), np.dtype([("a", "u1"), ("b", "<f4")]), b"\0" * (5 * n * 560)),
        "subarray dtype": array((n,), np.dtype(("u1", (560,))), zeros),
        "huge shape with short data": array((10**12, 560), np.dtype("u1"), zeros),
        "overflowing shape": array((2**62, 2**62, 4), np.dtype("u1"), zeros),
        "negative shape": array((-n, 560), np.dtype("u1"), zeros),
        "data longer than the shape": array((n, 560), np.dtype("u1"), zeros + b"\0"),
        "datetime dtype": array((n, 560), np.dtype("M8[s]"), b"\0" * (8 * n * 560)),
        "an array never given its state": Call(_reconstruct, (np.ndarray, (0,), raw(b"b"))),
        "os.system": Call(os.system, ("touch PWNED",)),
        "float pixels with NaN": array((n, 560), np.dtype("f8"), np.full((n, 560), np.nan).tobytes()),
    }
    return pickle.dumps([cases[case]], protocol=protocol)


FORGED_CASES = [
    "object dtype through the dtype's state", "object field through the dtype's state",
    "ndarray called with an object dtype and a buffer", "ndarray called with a numeric dtype and a buffer",
    "_frombuffer with an object dtype", "structured dtype", "subarray dtype", "huge shape with short data",
    "overflowing shape", "negative shape", "data longer than the shape", "datetime dtype",
    "an array never given its state", "os.system", "float pixels with NaN",
]  # fmt: skip

CHILD = f"""
import json, sys
from vae_core import data
from vae_core.data import freyfaces
freyfaces.FREYFACES_SPLIT = {CHILD_SPLIT}
from vae_core.errors import DatasetError
for case, folder in json.loads(sys.argv[1]):
    print(json.dumps({{"case": case, "started": True}}), flush=True)
    try:
        data.load_dataset("freyfaces", folder)
        outcome = ("loaded", "")
    except DatasetError as exc:
        outcome = ("DatasetError", str(exc))
    except BaseException as exc:
        outcome = (type(exc).__name__, str(exc))
    print(json.dumps({{"case": case, "outcome": outcome[0], "message": outcome[1]}}), flush=True)
"""


def test_forged_pickles_give_a_one_line_error_naming_the_file(tmp_path):
    jobs = []
    for case in FORGED_CASES:
        for protocol in PROTOCOLS:
            folder = tmp_path / f"{FORGED_CASES.index(case)}-p{protocol}"
            (folder / "freyfaces").mkdir(parents=True)
            (folder / freyfaces.FREYFACES_FILE).write_bytes(forged(case, protocol))
            jobs.append((f"{case} (protocol {protocol})", str(folder)))
    results = run_in_children(CHILD, jobs, cwd=tmp_path)
    wrong = []
    for case, folder in jobs:
        result, path = results[case], str(Path(folder) / freyfaces.FREYFACES_FILE)
        if result["outcome"] != "DatasetError" or path not in result["message"] or "\n" in result["message"]:
            wrong.append(f"{case}: {result['outcome']}: {result['message'][:300]}")
    assert not wrong, "\n".join(wrong)
    assert not (tmp_path / "PWNED").exists()


# --------------------------------------------------------------------------------------------
# What the unpickler must keep reading: numpy's own pickles of plain numeric arrays.


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("dtype", ["u1", "<i4", ">u2", "<f8", ">f4", "?"])
def test_numpy_pickles_of_numeric_arrays_round_trip(tmp_path, protocol, dtype):
    array = (np.arange(24) % 7).astype(dtype).reshape(2, 3, 4)
    content = [array, np.asfortranarray(array), array[:, ::2], np.zeros((0, 5), dtype)]
    (tmp_path / "p.pkl").write_bytes(pickle.dumps(content, protocol=protocol))
    loaded = data.read_safe_pickle(tmp_path / "p.pkl")
    assert isinstance(loaded, list) and len(loaded) == len(content)
    for got, want in zip(loaded, content):
        assert type(got) is np.ndarray and got.dtype == want.dtype.newbyteorder("=")
        np.testing.assert_array_equal(got, want)


def test_nested_and_shared_arrays_are_built_once(tmp_path):
    array = np.arange(6, dtype=np.uint8)
    content = {"a": [array, array], "b": (array, 3, "text", None)}
    (tmp_path / "p.pkl").write_bytes(pickle.dumps(content, protocol=2))
    loaded = data.read_safe_pickle(tmp_path / "p.pkl")
    assert loaded["a"][0] is loaded["a"][1] is loaded["b"][0]
    np.testing.assert_array_equal(loaded["a"][0], array)
    assert loaded["b"][1:] == (3, "text", None)


def test_a_self_referencing_list_does_not_recurse_forever(tmp_path):
    loop: list = []
    loop.append(loop)
    (tmp_path / "p.pkl").write_bytes(pickle.dumps(loop, protocol=2))
    loaded = data.read_safe_pickle(tmp_path / "p.pkl")
    assert loaded[0] is loaded


def test_the_python2_pickle_still_loads_as_the_published_file_does(tmp_path):
    faces = (np.arange(1965 * 560) % 231 + 8).astype(np.uint8).reshape(1965, 560)
    (tmp_path / "freyfaces").mkdir()
    (tmp_path / freyfaces.FREYFACES_FILE).write_bytes(py2_pickle_of(faces))
    with pytest.warns(UserWarning, match="not the published"):
        splits = data.load_dataset("freyfaces", tmp_path)
    assert (len(splits.x_train), len(splits.x_val), len(splits.x_test)) == freyfaces.FREYFACES_SPLIT


def test_a_file_with_the_published_checksum_loads_without_a_warning(tmp_path, monkeypatch):
    faces = np.full((10, 560), 100, np.uint8)
    raw = py2_pickle_of(faces)
    (tmp_path / "freyfaces").mkdir()
    (tmp_path / freyfaces.FREYFACES_FILE).write_bytes(raw)
    monkeypatch.setattr(freyfaces, "FREYFACES_SPLIT", (6, 2, 2))
    remote = data.RemoteFile(freyfaces.FREYFACES_FILE, ("https://example.org/f.pkl",),
                             "sha256:" + hashlib.sha256(raw).hexdigest())  # fmt: skip
    use_plan(monkeypatch, "freyfaces", data.DownloadPlan((remote,)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data.load_dataset("freyfaces", tmp_path)


@pytest.mark.filterwarnings("ignore:.*not the published Frey Faces file")
def test_pixels_outside_uint8_are_refused_by_the_loader(tmp_path):
    (tmp_path / "freyfaces").mkdir()
    (tmp_path / freyfaces.FREYFACES_FILE).write_bytes(pickle.dumps([np.zeros((1965, 560), np.int16)], protocol=2))
    with pytest.raises(DatasetError, match="uint8") as info:
        data.load_dataset("freyfaces", tmp_path)
    assert str(tmp_path / freyfaces.FREYFACES_FILE) in str(info.value)
