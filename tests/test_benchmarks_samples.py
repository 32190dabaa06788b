"""benchmarks/samples.py end to end on tiny untrained checkpoints (no dataset files, no training)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import tiny_config

from benchmarks import samples
from vae_core import checkpoint as ckpt
from vae_core.data import DatasetSplits
from vae_core.models import build_model

SHAPE = (1, 28, 28)


def fake_run(runs_dir, model: str, prior: str, seed: int) -> None:
    """A finished reproduce.py run folder of Caltech101 with a tiny model."""
    config = tiny_config(model=model, prior=prior, dataset="caltech101", input_shape=SHAPE)
    torch.manual_seed(seed)
    out = runs_dir / f"caltech101-{model}-{prior}"
    ckpt.save(out, build_model(config), config, metrics={"reproduce": {"epochs": 3}})


@pytest.fixture
def report(tmp_path, monkeypatch):
    """samples.py writing into tmp_path, with random binary images for Caltech101."""
    monkeypatch.setattr(samples, "ROOT", tmp_path)
    monkeypatch.setattr(samples, "RESULTS_JSON", tmp_path / "results.json")
    monkeypatch.setattr(samples, "RESULTS_MD", tmp_path / "RESULTS.md")
    monkeypatch.setattr(samples, "FIGURES", tmp_path / "figures")
    images = (np.random.default_rng(0).random((40, *SHAPE)) < 0.3).astype(np.float32)
    monkeypatch.setattr(samples, "load_dataset", lambda name, data_dir=None: DatasetSplits(images, images, images))
    return tmp_path


def test_samples_writes_grids_entropies_and_the_section(report):
    runs = report / "runs"
    for model in ("vae", "hvae"):
        fake_run(runs, model, "standard", 1)
        fake_run(runs, model, "vampprior", 2)
    fake_run(runs, "vae", "mog", 3)  # not part of the claim: ignored
    (report / "results.json").write_text(json.dumps([{"kind": "speed", "value": 1}]))
    (report / "RESULTS.md").write_text("# Benchmarks\n\nkept\n")

    assert samples.main(["--runs-dir", str(runs), "--samples", "30", "--draws", "2"]) == 0

    records = [r for r in json.loads((report / "results.json").read_text()) if r["kind"] == "samples"]
    assert [(r["model"], r["prior"]) for r in records] == [
        ("vae", "standard"), ("vae", "vampprior"), ("hvae", "standard"), ("hvae", "vampprior")]
    assert all(0 < r["posterior_entropy"] and 0 < r["prior_entropy"] < 784 * np.log(2) for r in records)
    for r in records:
        grid = report / r["figure"]
        assert grid.is_file() and grid.read_bytes().startswith(b"\x89PNG")
    text = (report / "RESULTS.md").read_text()
    assert "kept" in text and "Claim (3)" in text and "of 2 (dataset, model) pairs" in text
    assert text.count("![standard samples](figures/samples-caltech101-") == 2
    assert json.loads((report / "results.json").read_text())[0] == {"kind": "speed", "value": 1}


def test_samples_leaves_the_report_alone_without_the_runs_it_reports(report, capsys):
    runs = report / "runs"
    fake_run(runs, "vae", "standard", 1)
    fake_run(runs, "vae", "vampprior", 2)
    assert samples.main(["--runs-dir", str(report / "empty")]) == 1
    assert "no finished standard and vampprior runs" in capsys.readouterr().err

    fake_run(runs, "hvae", "standard", 1)
    fake_run(runs, "hvae", "vampprior", 2)
    assert samples.main(["--runs-dir", str(runs), "--samples", "10", "--draws", "1"]) == 0
    before = (report / "results.json").read_text(), (report / "RESULTS.md").read_text()
    for prior in ("standard", "vampprior"):  # the HVAE pair is gone from the runs folder
        (runs / f"caltech101-hvae-{prior}" / ckpt.METRICS_FILE).unlink()
    assert samples.main(["--runs-dir", str(runs), "--samples", "10", "--draws", "1"]) == 1
    assert "caltech101 hvae" in capsys.readouterr().err
    assert ((report / "results.json").read_text(), (report / "RESULTS.md").read_text()) == before
    assert samples.main(["--runs-dir", str(runs), "--samples", "10", "--draws", "1", "--replace-report"]) == 0
    assert len([r for r in json.loads((report / "results.json").read_text()) if r["kind"] == "samples"]) == 2


def test_the_claim_counts_binary_pairs_and_sends_grey_ones_to_the_grids():
    def rec(dataset, prior, likelihood, h_samples, h_recon=60.0):
        return {"dataset": dataset, "model": "vae", "prior": prior, "likelihood": likelihood,
                "prior_entropy": h_samples, "posterior_entropy": h_recon}

    records = [rec("mnist-static", "standard", "bernoulli", 80.0), rec("mnist-static", "vampprior", "bernoulli", 70.0),
               rec("caltech101", "standard", "bernoulli", 90.0), rec("caltech101", "vampprior", "bernoulli", 95.0),
               rec("freyfaces", "standard", "logistic", 1800.0), rec("freyfaces", "vampprior", "logistic", 2300.0)]
    binary, grey = samples.claim_lines(records)
    assert "lower decoder entropy in 1 of 2" in binary and "not on Caltech 101 Silhouettes VAE" in binary
    assert grey.startswith("- Frey Faces VAE: grey pixels") and "by eye" in grey
    assert samples.claim_lines(records[:1]) == []  # no complete pair
