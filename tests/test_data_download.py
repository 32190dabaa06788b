"""Downloads, with urlopen faked or pointed at local files (no test reaches the network)."""

from __future__ import annotations

import hashlib
import os
import urllib.parse
import urllib.request

import numpy as np
import pytest

from tests.data_helpers import (  # noqa: F401
    FakeResponse,
    fake_urlopen,
    isolated_data_dirs,
    no_network,
    py2_pickle_of,
    sha256_checksum,
    use_plan,
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


# --------------------------------------------------------------------------------------------
# Size limits and https.


def _one_file_plan(monkeypatch, urls, body: bytes, max_bytes: int):
    remote = data.RemoteFile(freyfaces.FREYFACES_FILE, urls, sha256_checksum(body), max_bytes=max_bytes)
    use_plan(monkeypatch, "freyfaces", data.DownloadPlan((remote,)))


def test_download_refuses_an_announced_size_over_the_limit_before_writing(tmp_path, monkeypatch):
    body = b"x" * 100
    urls = ("https://big.example/f", "https://good.example/f")
    _one_file_plan(monkeypatch, urls, body, max_bytes=100)
    huge = FakeResponse(b"", headers={"Content-Length": str(10**12)})
    opener = fake_urlopen({urls[0]: huge, urls[1]: body})
    monkeypatch.setattr(urllib.request, "urlopen", opener)
    data.download("freyfaces", tmp_path, log=lambda m: None)
    assert opener.calls == list(urls)
    assert (tmp_path / freyfaces.FREYFACES_FILE).read_bytes() == body


@pytest.mark.parametrize("headers", [{}, {"Content-Length": "10"}])  # no size announced, or a false one
def test_download_stops_a_body_that_grows_past_the_limit(tmp_path, monkeypatch, headers):
    url = "https://endless.example/f"
    _one_file_plan(monkeypatch, (url,), b"x" * 100, max_bytes=100)
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen({url: FakeResponse(b"x" * 5000, headers)}))
    with pytest.raises(DatasetError, match="more than the 100 bytes") as info:
        data.download("freyfaces", tmp_path, log=lambda m: None)
    assert "\n" not in str(info.value)
    assert os.listdir(tmp_path / "freyfaces") == []  # no partial or temporary file


HTTP_ONLY_HOSTS = {"yann.lecun.com", "fashion-mnist.s3-website.eu-central-1.amazonaws.com"}


def test_downloads_use_https_wherever_the_host_serves_it():
    for name, spec in data.DATASETS.items():
        for remote in spec.download.files if spec.download else ():
            assert remote.urls[0].startswith("https://"), f"{name}: the first mirror of {remote.path} is not https"
            for url in remote.urls:
                host = urllib.parse.urlsplit(url).hostname
                assert url.startswith("https://") or host in HTTP_ONLY_HOSTS, url
            assert 0 < remote.max_bytes <= 512 << 20


def test_every_dataset_file_has_a_size_limit_above_its_published_size():
    published = {  # bytes, from the shared data README and the datasets' own listings
        "freyfaces/freyfaces.pkl": 3_568_521,
        "caltech101_silhouettes/caltech101_silhouettes_28_split1.mat": 872_124,
        "mnist/train-images-idx3-ubyte.gz": 9_912_422, "mnist/t10k-images-idx3-ubyte.gz": 1_648_877,
        "fashion_mnist/train-images-idx3-ubyte.gz": 26_421_880, "fashion_mnist/t10k-images-idx3-ubyte.gz": 4_422_102,
        "mnist_static/binarized_mnist_train.amat": 78_400_000,
    }  # fmt: skip
    limits = {r.path: r.max_bytes for spec in data.DATASETS.values() if spec.download for r in spec.download.files}
    for path, size in published.items():
        assert size < limits[path] <= 8 * max(size, 1 << 20), path
