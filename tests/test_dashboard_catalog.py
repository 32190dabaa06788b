"""The catalog of checkpoint folders: a hostile or unfinished folder is listed for what it is, and
never breaks the pages (the catalog is read on every page)."""

from __future__ import annotations

import json
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import catalog
from tests.page_helpers import ROOT, shipped
from vae_core import paths
from vae_core.config import ModelConfig
from vae_core.locking import training_lock

SOURCE = "digits-vae-standard"


def damaged_folders(root):
    """{name: what is wrong}, each a copy of a shipped checkpoint with one file made hostile."""
    cases = {
        "deep-history": lambda f: (f / "history.json").write_text("[" * 100_000 + "]" * 100_000),
        "metrics-list": lambda f: (f / "metrics.json").write_text("[1, 2, 3]"),
        "history-dict": lambda f: (f / "history.json").write_text('{"epoch": 1}'),
        "history-strings": lambda f: (f / "history.json").write_text('[{"epoch": "one"}]'),
        "shape-infinite": lambda f: _edit_config(f, input_shape=[1, 1e999, 8]),
        "huge-components": lambda f: _edit_config(f, components=10**9),
        "truncated-weights": lambda f: (f / "model.safetensors").write_bytes(
            (f / "model.safetensors").read_bytes()[:1000]),
        "no-weights": lambda f: (f / "model.safetensors").unlink(),
    }
    for name, damage in cases.items():
        folder = root / name
        shutil.copytree(shipped(SOURCE), folder)
        damage(folder)
    return cases


def _edit_config(folder, **fields):
    payload = json.loads((folder / "config.json").read_text())
    payload["model"].update(fields)
    (folder / "config.json").write_text(json.dumps(payload).replace("Infinity", "1e999"))


def test_every_damaged_folder_is_listed_with_a_one_line_reason(tmp_path):
    damaged_folders(tmp_path)
    entries = {e.path.name: e for e in catalog.find_checkpoints([tmp_path])}
    assert len(entries) == 8
    for name, entry in entries.items():
        if name == "no-weights":
            assert entry.info is not None and entry.info.state == "incomplete" and not entry.ready
            assert "incomplete" in catalog.summary_row(entry)["pending"]
        else:
            assert entry.info is None and entry.error and "\n" not in entry.error, name
            assert catalog.summary_row(entry)["error"] == entry.error


def test_a_folder_whose_run_holds_the_lock_is_training(tmp_path):
    folder = tmp_path / "running"
    shutil.copytree(shipped(SOURCE), folder)
    (folder / "model.safetensors").unlink()
    with training_lock(folder):
        (entry,) = catalog.find_checkpoints([tmp_path])
        assert entry.info.state == "training" and "training" in entry.label


@pytest.mark.parametrize("page", ["models", "samples", "latent_space"])
def test_pages_work_beside_damaged_folders(tmp_path, monkeypatch, page):
    damaged_folders(tmp_path / "runs")
    monkeypatch.setenv(paths.CHECKPOINTS_ENV, str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.session_state["checkpoint"] = str(shipped("digits-vae-vampprior"))
    at.switch_page(f"../pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if page == "models":
        assert len(at.error) == 7 and all("\n" not in e.value for e in at.error)
        assert any("incomplete" in i.value for i in at.info)


def test_a_config_that_does_not_fit_its_weights_gives_one_line_on_the_page(tmp_path, monkeypatch):
    folder = tmp_path / "runs" / "wrong-size"
    shutil.copytree(shipped(SOURCE), folder)
    _edit_config(folder, hidden=64)  # within bounds, but not what the weights hold
    monkeypatch.setenv(paths.CHECKPOINTS_ENV, str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.session_state["checkpoint"] = str(folder)
    at.switch_page("../pages/samples.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (error,) = at.error
    assert "wrong-size cannot be loaded" in error.value and "\n" not in error.value


def test_tables_name_the_pixel_model_only_where_it_is_not_the_default():
    plain = ModelConfig.for_dataset("digits", model="hvae")
    assert catalog.model_title(plain) == "HVAE"
    pixel = ModelConfig.for_dataset("digits", model="hvae", architecture="conv", pixel_model="pixelcnn")
    assert catalog.model_title(pixel) == "HVAE + PixelCNN" and catalog.pixel_model_title(pixel) == "PixelCNN"


def test_a_folder_is_read_again_only_when_one_of_its_files_changes(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    shutil.copytree(shipped(SOURCE), folder)
    reads = []
    monkeypatch.setattr(catalog, "read_info", lambda path: reads.append(path) or catalog_read_info(path))
    first = catalog.find_checkpoints([tmp_path])[0].info
    assert catalog.find_checkpoints([tmp_path])[0].info is first and len(reads) == 1  # nothing changed
    metrics = json.loads((folder / "metrics.json").read_text()) | {"log_likelihood": -1.5}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    assert catalog.find_checkpoints([tmp_path])[0].info.metrics["log_likelihood"] == -1.5 and len(reads) == 2
    (folder / "history.json").write_text("[1]")  # damaged after being read: the error shows at once
    assert catalog.find_checkpoints([tmp_path])[0].info is None


def catalog_read_info(path):
    from vae_core.checkpoint import read_info

    return read_info(path)
