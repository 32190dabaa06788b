"""The file readers: idx, .amat, .mat and the allow-list unpickler, on tiny files written here."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
import scipy.io

from tests.data_helpers import isolated_data_dirs, py2_pickle_of, write_idx  # noqa: F401
from vae_core import data
from vae_core.errors import DatasetError


def test_read_idx_gzipped_and_plain(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "a", array, compress=False)
    ints = np.array([1, -2, 70000], np.int32)
    write_idx(tmp_path / "i.gz", ints)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a.gz"), array)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a"), array)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "i.gz"), ints)


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04hello")
    with pytest.raises(DatasetError, match="magic"):
        data.read_idx(tmp_path / "bad")
    write_idx(tmp_path / "a", np.zeros((2, 3), np.uint8), compress=False)
    (tmp_path / "short").write_bytes((tmp_path / "a").read_bytes()[:-1])
    with pytest.raises(DatasetError, match="truncated"):
        data.read_idx(tmp_path / "short")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(b"\0\0\x08\x01" + b"\0" * 8)[:-6])
    with pytest.raises(DatasetError):
        data.read_idx(tmp_path / "broken.gz")


def test_read_amat_fast_and_general_paths(tmp_path):
    rows = np.random.default_rng(0).integers(0, 2, (5, 784)).astype(np.uint8)
    (tmp_path / "a.amat").write_text("\n".join(" ".join(map(str, r)) for r in rows) + "\n")
    (tmp_path / "b.amat").write_text("\n".join(" ".join(f"{v:.1f}" for v in r) for r in rows))
    np.testing.assert_array_equal(data.read_amat(tmp_path / "a.amat"), rows)
    np.testing.assert_array_equal(data.read_amat(tmp_path / "b.amat"), rows)
    (tmp_path / "c.amat").write_text("0 1 1\n1 0\n")
    with pytest.raises(DatasetError):
        data.read_amat(tmp_path / "c.amat")
    (tmp_path / "d.amat").write_text("0 2 1\n")
    with pytest.raises(DatasetError, match="binary"):
        data.read_amat(tmp_path / "d.amat")


def test_read_mat_requires_keys(tmp_path):
    scipy.io.savemat(tmp_path / "m.mat", {"a": np.ones((2, 2))})
    assert data.read_mat(tmp_path / "m.mat", ("a",))["a"].shape == (2, 2)
    with pytest.raises(DatasetError, match="lacks"):
        data.read_mat(tmp_path / "m.mat", ("a", "b"))
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 20)
    with pytest.raises(DatasetError):
        data.read_mat(tmp_path / "junk.mat", ("a",))


def test_safe_pickle_reads_a_python2_numpy_pickle(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(2, 6) * 20
    raw = py2_pickle_of(array)
    np.testing.assert_array_equal(pickle.loads(raw, encoding="latin1")[0], array)  # the writer is right
    (tmp_path / "p.pkl").write_bytes(raw)
    content = data.read_safe_pickle(tmp_path / "p.pkl")
    assert isinstance(content, list) and len(content) == 1
    np.testing.assert_array_equal(content[0], array)


@pytest.mark.parametrize(
    "payload",
    [
        b"cos\nsystem\n(S'touch PWNED'\ntR.",  # protocol 0
        b"cposix\nsystem\n(S'touch PWNED'\ntR.",
        b"c__builtin__\neval\n(S'1+1'\ntR.",
        pickle.dumps(print, protocol=4),  # any other global, any protocol
    ],
)
@pytest.mark.filterwarnings("ignore:.*not the published Frey Faces file")
def test_safe_pickle_rejects_other_globals(tmp_path, monkeypatch, payload):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "freyfaces").mkdir()
    (tmp_path / "freyfaces" / "freyfaces.pkl").write_bytes(payload)
    with pytest.raises(DatasetError, match="refusing to unpickle"):
        data.read_safe_pickle(tmp_path / "freyfaces" / "freyfaces.pkl")
    with pytest.raises(DatasetError, match="refusing to unpickle"):
        data.load_dataset("freyfaces", tmp_path)
    assert not (tmp_path / "PWNED").exists()


def test_safe_pickle_rejects_garbage(tmp_path):
    (tmp_path / "g.pkl").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DatasetError, match="not a readable pickle"):
        data.read_safe_pickle(tmp_path / "g.pkl")


def test_save_npz_is_atomic_and_leaves_no_temporary_file(tmp_path):
    data.save_npz(tmp_path / "a.npz", {"x": np.arange(3)})
    data.save_npz(tmp_path / "a.npz", {"x": np.arange(4)})
    with np.load(tmp_path / "a.npz") as npz:
        np.testing.assert_array_equal(npz["x"], np.arange(4))
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]
