"""Downloads, with urlopen faked or pointed at local files (no test reaches the network)."""

from __future__ import annotations

import hashlib
import os
import urllib.request

import numpy as np
import pytest

from tests.data_helpers import (  # noqa: F401
    fake_urlopen, isolated_data_dirs, no_network, py2_pickle_of, sha256_checksum, use_plan,
)  # fmt: skip
from vae_core import data
from vae_core.data import freyfaces, mnist
from vae_core.errors import DatasetError


def test_download_from_a_file_url_verifies_and_renames(tmp_path, monkeypatch):
    source = tmp_path / "source.pkl"
    source.write_bytes(py2_pickle_of(np.zeros((10, 560), np.uint8)))
    remote = data.RemoteFile(freyfaces.FREYFACES_FILE, (source.as_uri(),), sha256_checksum(source.read_bytes()))
    use_plan(monkeypatch, "freyfaces", data.DownloadPlan((remote,)))
    root = tmp_path / "data"
    paths = data.download("freyfaces", root, log=lambda m: None)
    assert paths == [root / freyfaces.FREYFACES_FILE]
    assert paths[0].read_bytes() == source.read_bytes()
    assert os.listdir(root / "freyfaces") == ["freyfaces.pkl"]  # no temporary files left
    assert data.get_spec("freyfaces").available(root)
    # already there: nothing is fetched again
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    assert data.download("freyfaces", root, log=lambda m: None) == paths


def test_download_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch):
    url = "https://example.org/freyfaces.pkl"
    remote = data.RemoteFile(freyfaces.FREYFACES_FILE, (url,), sha256_checksum(b"the right bytes"))
    use_plan(monkeypatch, "freyfaces", data.DownloadPlan((remote,)))
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen({url: b"tampered bytes"}))
    with pytest.raises(DatasetError, match="checksum mismatch") as info:
        data.download("freyfaces", tmp_path, log=lambda m: None)
    assert "\n" not in str(info.value) and url in str(info.value)
    assert not (tmp_path / freyfaces.FREYFACES_FILE).exists()
    assert os.listdir(tmp_path / "freyfaces") == []


def test_download_tries_mirrors_in_order(tmp_path, monkeypatch):
    good = b"\0" * 100
    urls = ("https://dead.example/t", "https://bad.example/t", "https://good.example/t")
    files = tuple(data.RemoteFile(f"mnist/{f}", urls, sha256_checksum(good)) for f in mnist.IDX_FILES)
    use_plan(monkeypatch, "mnist", data.DownloadPlan(files))
    opener = fake_urlopen({urls[0]: None, urls[1]: b"wrong", urls[2]: good})
    monkeypatch.setattr(urllib.request, "urlopen", opener)
    data.download("mnist", tmp_path, log=lambda m: None)
    assert opener.calls == list(urls) * 4
    assert all((tmp_path / "mnist" / f).read_bytes() == good for f in mnist.IDX_FILES)


def test_download_all_mirrors_failing(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen({}))
    with pytest.raises(DatasetError, match="could not download caltech101_silhouettes/.*unreachable"):
        data.download("caltech101", tmp_path, log=lambda m: None)


def test_download_replaces_a_corrupt_file_and_keeps_a_good_one(tmp_path, monkeypatch):
    urls = {f: f"https://x.example/{f}" for f in mnist.IDX_FILES}
    files = tuple(data.RemoteFile(f"mnist/{f}", (urls[f],), sha256_checksum(f.encode())) for f in mnist.IDX_FILES)
    use_plan(monkeypatch, "mnist", data.DownloadPlan(files))
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / mnist.IDX_FILES[1]).write_bytes(mnist.IDX_FILES[1].encode())  # good
    (tmp_path / "mnist" / mnist.IDX_FILES[2]).write_bytes(b"corrupt")
    opener = fake_urlopen({u: f.encode() for f, u in urls.items()})
    monkeypatch.setattr(urllib.request, "urlopen", opener)
    data.download("mnist", tmp_path, log=lambda m: None)
    assert sorted(opener.calls) == sorted(urls[f] for f in (mnist.IDX_FILES[0], *mnist.IDX_FILES[2:]))
    assert (tmp_path / "mnist" / mnist.IDX_FILES[2]).read_bytes() == mnist.IDX_FILES[2].encode()


def test_download_refuses_a_read_only_data_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    tmp_path.joinpath("ro").mkdir(mode=0o555)
    try:
        with pytest.raises(DatasetError, match="read-only"):
            data.download("freyfaces", tmp_path / "ro", log=lambda m: None)
    finally:
        tmp_path.joinpath("ro").chmod(0o755)


def test_file_checksum_kinds(tmp_path):
    raw = b"hello vampprior\n"
    (tmp_path / "f").write_bytes(raw)
    assert data.file_checksum(tmp_path / "f", "md5") == hashlib.md5(raw).hexdigest()
    assert data.file_checksum(tmp_path / "f", "sha256") == hashlib.sha256(raw).hexdigest()
    # what `git hash-object` prints
    assert data.file_checksum(tmp_path / "f", "git-blob") == hashlib.sha1(b"blob 16\0" + raw).hexdigest()
