"""Helpers shared by the dataset tests: writers of tiny files in the real formats, a fake urlopen,
and the fixture that keeps every cache inside tmp_path.

Every data test writes its files under tmp_path; none reads the shared data folder except
tests/test_data_real.py, which runs only when $VAMPVIZ_DATA_DIR holds the real files.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from vae_core import data, paths

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_data_dirs(tmp_path, monkeypatch):
    """Keep every cache inside tmp_path, and ignore a data dir set by the caller (autouse where imported)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(paths.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(paths.DATA_DIR_ENV, raising=False)


def no_network(*args, **kwargs):
    raise AssertionError("urlopen must not be called")


def write_idx(path: Path, array: np.ndarray, *, compress: bool = True) -> None:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if compress else payload)


def write_mnist_like(root: Path, folder: str, n_train: int, n_test: int, *, train_name=None):
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    train_labels = (np.arange(n_train) % 10).astype(np.uint8)
    test_labels = (np.arange(n_test) % 10).astype(np.uint8)
    write_idx(root / folder / (train_name or "train-images-idx3-ubyte.gz"), train)
    write_idx(root / folder / "train-labels-idx1-ubyte.gz", train_labels)
    write_idx(root / folder / "t10k-images-idx3-ubyte.gz", test)
    write_idx(root / folder / "t10k-labels-idx1-ubyte.gz", test_labels)
    return train, train_labels, test, test_labels


def py2_pickle_of(array: np.ndarray) -> bytes:
    """A protocol-0 pickle of [array] exactly as Python 2 + numpy 1.x wrote freyfaces.pkl."""
    assert array.dtype == np.uint8 and array.ndim == 2
    payload = "".join(f"\\x{b:02x}" for b in array.tobytes())
    text = (
        "(lp0\ncnumpy.core.multiarray\n_reconstruct\np1\n(cnumpy\nndarray\np2\n(I0\ntp3\nS'b'\np4\ntp5\nRp6\n"
        f"(I1\n(I{array.shape[0]}\nI{array.shape[1]}\ntp7\ncnumpy\ndtype\np8\n(S'u1'\np9\nI0\nI1\ntp10\nRp11\n"
        "(I3\nS'|'\np12\nNNNI-1\nI-1\nI0\ntp13\nbI00\n"
        f"S'{payload}'\np14\ntp15\nba."
    )
    return text.encode("ascii")


def column_major(images: np.ndarray) -> np.ndarray:
    """Upright (N, 28, 28) -> (N, 784) rows in MATLAB's column-major order."""
    return images.transpose(0, 2, 1).reshape(len(images), -1)


def upright_marker_images(n: int) -> np.ndarray:
    """(n, 28, 28) binary images, each with a bar along the top rows and a dot at the left edge:
    easy to tell from their transposes and flips."""
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 0:3, 4:24] = 1  # bar at the top
    images[:, 14, 0] = 1  # dot at the left edge
    return images


def binary_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, (n, 784)).astype(np.uint8)


def amat_text(rows: np.ndarray) -> str:
    return "\n".join(" ".join(map(str, r)) for r in rows) + "\n"


class FakeResponse(io.BytesIO):
    """A urlopen response: the body, and the headers a server sent (Content-Length, ...)."""

    def __init__(self, body: bytes, headers: dict | None = None):
        super().__init__(body)
        self.headers = headers or {}


def fake_urlopen(table: dict):
    """urlopen that serves table[url] (bytes, or a FakeResponse), raises URLError for None."""
    calls = []

    def urlopen(request, timeout=None):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        calls.append(url)
        if table.get(url) is None:
            raise urllib.error.URLError("unreachable")
        body = table[url]
        return body if isinstance(body, FakeResponse) else FakeResponse(body)

    urlopen.calls = calls
    return urlopen


def sha256_checksum(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def use_plan(monkeypatch, name: str, plan: data.DownloadPlan) -> None:
    """Give dataset `name` another download plan for the rest of the test."""
    monkeypatch.setitem(data.DATASETS, name, dataclasses.replace(data.get_spec(name), download=plan))


def run_in_children(script: str, jobs: list[tuple[str, ...]], cwd: Path) -> dict[str, dict]:
    """Run `script` (python -c) on the jobs, a JSON list in argv[1] whose items start with a case
    name; it prints {"case": ..., "started": true} before each case and a record with "outcome"
    after it. A child that crashes (a segfault in numpy, say) is recorded as the outcome of the
    case it was on, and a new child carries on with the cases after it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    results: dict[str, dict] = {}
    while len(results) < len(jobs):
        remaining = [job for job in jobs if job[0] not in results]
        child = subprocess.run([sys.executable, "-W", "ignore", "-c", script, json.dumps(remaining)], cwd=cwd,
                               env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
        records = [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]
        results.update((r["case"], r) for r in records if "outcome" in r)
        if child.returncode != 0:
            started = [r["case"] for r in records if "started" in r and r["case"] not in results]
            assert started, f"the child failed before any case: {child.stderr[-2000:]}"
            results[started[0]] = {"outcome": f"the process died (exit code {child.returncode})", "message": ""}
    return results
