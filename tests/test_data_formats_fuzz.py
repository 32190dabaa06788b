"""Damaged files: every reader ends in a one-line DatasetError naming the file, or in a clean read
when the damage happens to leave a valid file; never in another exception, a crash, or a large
allocation. Small valid files of each format are truncated at many offsets, bit-flipped, given
oversized header fields and handed to the other formats' readers, all read in a child process
that reports how far its peak memory grew.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from tests.data_helpers import (  # noqa: F401
    amat_text,
    binary_rows,
    isolated_data_dirs,
    py2_pickle_of,
    run_in_children,
    write_idx,
)  # fmt: skip
from vae_core import data
from vae_core.data import formats
from vae_core.errors import DatasetError

MAX_GROWTH_MB = 200  # how far the child's peak memory may grow over all the damaged files

CHILD = """
import json, resource, sys
import scipy.io  # imported before the first measurement, as the readers import it lazily
from vae_core.data import formats, pickles
from vae_core.errors import DatasetError
READERS = {
    "idx": formats.read_idx, "amat": formats.read_amat, "pickle": pickles.read_safe_pickle,
    "mat": lambda path: formats.read_mat(path, ("a",)), "npz": lambda path: formats.read_npz(path, ("a",)),
}
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for case, reader, path in json.loads(sys.argv[1]):
    print(json.dumps({"case": case, "started": True}), flush=True)
    try:
        READERS[reader](path)
        outcome, message = "ok", ""
    except DatasetError as exc:
        outcome, message = "DatasetError", str(exc)
    except BaseException as exc:
        outcome, message = type(exc).__name__, str(exc)[:300]
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) / 1024
    print(json.dumps({"case": case, "outcome": outcome, "message": message, "grown_mb": grown}), flush=True)
"""


def valid_files(folder: Path) -> dict[str, tuple[str, Path]]:
    """name: (reader, path) for one small valid file of each format and variant."""
    folder.mkdir()
    images = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    rows = binary_rows(20, 1)
    write_idx(folder / "plain.idx", images, compress=False)
    write_idx(folder / "gzipped.idx.gz", images)
    (folder / "rows.amat").write_text(amat_text(rows[:6, :60]))
    scipy.io.savemat(folder / "compressed.mat", {"a": rows}, do_compression=True)
    scipy.io.savemat(folder / "plain.mat", {"a": rows.astype(np.float64)})
    np.savez_compressed(folder / "compressed.npz", a=rows)
    np.savez(folder / "plain.npz", a=images)
    (folder / "py2.pkl").write_bytes(py2_pickle_of(images[:4].reshape(4, -1)))
    (folder / "p2.pkl").write_bytes(pickle.dumps([images[:4]], protocol=2))
    (folder / "p4.pkl").write_bytes(pickle.dumps([images[:4]], protocol=4))
    readers = {".idx": "idx", ".gz": "idx", ".amat": "amat", ".mat": "mat", ".npz": "npz", ".pkl": "pickle"}
    return {p.name: (readers[p.suffix], p) for p in sorted(folder.iterdir())}


def damaged(raw: bytes, seed: int) -> dict[str, bytes]:
    """kind-of-damage: bytes, for one file."""
    n, rng = len(raw), np.random.default_rng(seed)
    cuts = {0, 1, 2, 3, 4, 8, 16, 64, 130, n // 4, n // 2, 3 * n // 4, n - 9, n - 2, n - 1}
    variants = {f"truncated at {k}": raw[:k] for k in sorted(cuts) if 0 <= k < n}
    positions = [*rng.integers(0, min(n, 256), 12), *rng.integers(0, n, 12)]
    for position in positions:
        flipped = bytearray(raw)
        flipped[position] ^= 1 << int(rng.integers(0, 8))
        variants[f"bit flip at {position}"] = bytes(flipped)
    for start in (4, 8, 128, 136):  # size fields of idx, npy, zip and MAT v5 headers live about here
        if start + 8 <= n:
            variants[f"0xff at {start}"] = raw[:start] + b"\xff" * 8 + raw[start + 8 :]
    return variants


def test_damaged_files_end_in_dataset_error_and_stay_small(tmp_path):
    files = valid_files(tmp_path / "valid")
    jobs, truncations = [], set()
    for index, (name, (reader, path)) in enumerate(files.items()):
        for kind, raw in damaged(path.read_bytes(), seed=index).items():
            target = tmp_path / "damaged" / f"{len(jobs)}{''.join(path.suffixes)}"
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(raw)
            jobs.append((f"{name}, {kind}", reader, str(target)))
            if kind.startswith("truncated") and reader != "amat":  # .amat cut at a line end is valid
                truncations.add(jobs[-1][0])
        for other in {"idx", "amat", "mat", "npz", "pickle"} - {reader}:
            jobs.append((f"{name} read as {other}", other, str(path)))
    results = run_in_children(CHILD, jobs, cwd=tmp_path)
    wrong = []
    for case, _, path in jobs:
        result = results[case]
        if result["outcome"] == "ok" and case not in truncations:
            continue
        if result["outcome"] != "DatasetError" or path not in result["message"] or "\n" in result["message"]:
            wrong.append(f"{case}: {result['outcome']}: {result['message'][:200]}")
    assert not wrong, f"{len(wrong)} of {len(jobs)} damaged files:\n" + "\n".join(wrong)
    growth = max(r.get("grown_mb", 0) for r in results.values())
    assert growth < MAX_GROWTH_MB, f"reading the damaged files grew the peak memory by {growth:.0f} MB"


# --------------------------------------------------------------------------------------------
# Headers that declare more than a file holds are refused before anything is allocated.


@pytest.mark.parametrize("compress", [False, True])
def test_idx_header_declaring_a_trillion_pixels_is_refused(tmp_path, compress):
    header = bytes([0, 0, 0x08, 2]) + struct.pack(">2I", 10**6, 10**6)
    raw = header + b"\0" * 100
    (tmp_path / "huge").write_bytes(gzip.compress(raw) if compress else raw)
    with pytest.raises(DatasetError, match="declares"):
        data.read_idx(tmp_path / "huge")


def _npz_with_member(path: Path, header: dict, payload: bytes) -> None:
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, header)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.npy", member.getvalue() + payload)


def test_npz_header_declaring_more_than_the_member_holds_is_refused(tmp_path):
    _npz_with_member(tmp_path / "huge.npz", {"descr": "|u1", "fortran_order": False, "shape": (10**12,)}, b"\0" * 64)
    with pytest.raises(DatasetError, match="declares shape"):
        formats.read_npz(tmp_path / "huge.npz", ("a",))


def test_npz_object_arrays_are_refused(tmp_path):
    np.savez(tmp_path / "objects.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(DatasetError, match="dtype object"):
        formats.read_npz(tmp_path / "objects.npz", ("a",))


def test_npz_missing_array_is_named(tmp_path):
    np.savez(tmp_path / "a.npz", b=np.zeros(2))
    with pytest.raises(DatasetError, match="lacks the array"):
        formats.read_npz(tmp_path / "a.npz", ("a",))


def _mat_bomb(path: Path, dims: tuple[int, int], nbytes: int) -> None:
    """A MAT v5 file whose one uint8 variable `a` (declared `dims`) inflates to nbytes of zeros,
    compressed chunk by chunk so that the test itself stays small."""
    tag = lambda kind, size: struct.pack("<II", kind, size)  # noqa: E731
    subelements = (tag(6, 8) + struct.pack("<II", 9, 0)  # array flags: mxUINT8_CLASS
                   + tag(5, 8) + struct.pack("<ii", *dims) + struct.pack("<HH", 1, 1) + b"a\0\0\0"  # dims, name
                   + tag(2, nbytes))  # fmt: skip
    deflater = zlib.compressobj()
    body = [deflater.compress(tag(14, len(subelements) + nbytes) + subelements)]
    for start in range(0, nbytes, 1 << 20):
        body.append(deflater.compress(bytes(min(1 << 20, nbytes - start))))
    body.append(deflater.flush())
    compressed = b"".join(body)
    text = b"MATLAB 5.0 MAT-file, written by the vampviz tests".ljust(116)
    header = text + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"  # no subsystem data, version 1, little-endian
    path.write_bytes(header + tag(15, len(compressed)) + compressed)


@pytest.mark.parametrize("dims", [(3, 4), (6_000, 6_000)])  # a header that lies, and one that does not
def test_mat_that_inflates_past_the_limit_is_refused_before_scipy_reads_it(tmp_path, monkeypatch, dims):
    _mat_bomb(tmp_path / "bomb.mat", dims, 6_000 * 6_000)  # 36 MB from a file of about 35 kB
    assert (tmp_path / "bomb.mat").stat().st_size < 1 << 20
    monkeypatch.setattr(scipy.io, "loadmat", lambda *a, **k: pytest.fail("scipy must not read the bomb"))
    with pytest.raises(DatasetError, match="inflated") as info:
        data.read_mat(tmp_path / "bomb.mat", ("a",), max_bytes=32 << 20)
    assert str(tmp_path / "bomb.mat") in str(info.value)


def test_mat_bomb_writer_writes_a_file_scipy_reads(tmp_path):
    _mat_bomb(tmp_path / "small.mat", (4, 256), 4 * 256)
    np.testing.assert_array_equal(data.read_mat(tmp_path / "small.mat", ("a",))["a"], np.zeros((4, 256), np.uint8))
