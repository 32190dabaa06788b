"""benchmarks/reproduce.py's bookkeeping: paired comparisons, records and the report (no training)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks import reproduce, reproduce_report
from benchmarks.reproduce_grid import DATASETS
from benchmarks.reproduce_records import KIND, compare, gain_stderr, write_results_json
from benchmarks.reproduce_report import (
    SECTION_END,
    SECTION_START,
    budget_check,
    claim_rows,
    claim_summary,
    write_results_md,
)


def record(prior: str, per_point: np.ndarray | None, dataset: str = "caltech101", model: str = "vae",
           active: int = 40, **extra) -> dict:
    """A reproduction record as collect_records builds it, for `per_point` test log-likelihoods."""
    values = per_point if per_point is not None else np.full(100, -120.0)
    unit = DATASETS[dataset]["unit"]
    rec = {
        "kind": KIND, "dataset": dataset, "model": model, "prior": prior,
        "log_likelihood": float(values.mean()),
        "log_likelihood_stderr": float(values.std(ddof=1) / math.sqrt(len(values))),
        "elbo": float(values.mean()) - 10, "active_units": {"z": active}, "epochs": 100, "best_epoch": 60,
        "seconds_per_epoch": 1.0, "train_seconds": 100.0, "eval_seconds": 10.0, "samples": 5000,
        "n_test": len(values), "test_selection": "first", "epoch_budget": 300, "warmup": 1, "patience": 50,
        "components": 500, "unit": unit, "paper_log_likelihood": None, "device": "cpu (test)", "date": "2026-11-25",
    } | extra
    if unit == "bits/dim":
        rec["bits_per_dim"] = -rec["log_likelihood"] / (560 * math.log(2))
    if per_point is not None:
        rec["_per_point"] = per_point.tolist()
    return rec


@pytest.fixture
def paired():
    """Per-point LLs that vary a lot between test points (images differ) but little between the priors."""
    rng = np.random.default_rng(0)
    base = rng.normal(-120, 25, size=400)
    return base, base + 1.0 + rng.normal(0, 2, size=400)  # the VampPrior wins by ~1 nat on every point


def test_paired_error_is_the_spread_of_the_differences(paired):
    standard, vamp = paired
    a, b = record("vampprior", vamp), record("standard", standard)
    expected = np.std(vamp - standard, ddof=1) / math.sqrt(len(vamp))
    assert gain_stderr(a, b) == pytest.approx(expected)
    unpaired = math.hypot(a["log_likelihood_stderr"], b["log_likelihood_stderr"])
    assert gain_stderr(a, b) < unpaired / 10  # the images' spread cancels


def test_without_per_point_values_the_error_is_unpaired(paired):
    standard, vamp = paired
    a, b = record("vampprior", vamp), record("standard", standard)
    del b["_per_point"]
    assert gain_stderr(a, b) == pytest.approx(math.hypot(a["log_likelihood_stderr"],
                                                                    b["log_likelihood_stderr"]))


def test_paired_error_in_bits_per_dim_for_frey_faces(paired):
    standard, vamp = paired
    a = record("vampprior", vamp, dataset="freyfaces")
    b = record("standard", standard, dataset="freyfaces")
    nats = np.std(vamp - standard, ddof=1) / math.sqrt(len(vamp))
    assert gain_stderr(a, b) == pytest.approx(nats / (560 * math.log(2)))


def test_a_consistent_one_nat_gain_is_beyond_noise_when_paired(paired):
    standard, vamp = paired
    records = [record("standard", standard, active=30), record("vampprior", vamp, active=38)]
    (pair,) = compare(records, "vampprior")
    assert pair["paired"] and pair["gain"] == pytest.approx(1.0, abs=0.3) and pair["gain"] > pair["noise"]
    (row,) = claim_rows(records)
    assert row[1].startswith("**holds**:") and "unpaired" not in row[1]
    assert row[2].startswith("**holds**: 38 vs 30")


def test_different_budgets_are_not_compared(paired):
    standard, vamp = paired
    records = [record("standard", standard), record("vampprior", vamp, epoch_budget=50)]
    (pair,) = compare(records, "vampprior")
    assert pair["skip"] == "trained with different budgets; not compared"


def test_results_json_keeps_other_kinds_and_drops_per_point_values(tmp_path, paired):
    path = tmp_path / "results.json"
    speed = {"kind": "speed", "metric": "x", "value": 1}
    path.write_text(json.dumps([speed, {"kind": KIND, "stale": True}]))
    write_results_json([record("vampprior", paired[1])], path)
    written = json.loads(path.read_text())
    assert written[0] == speed and len(written) == 2
    assert written[1]["prior"] == "vampprior" and not any(k.startswith("_") for k in written[1])


def test_report_section_replaces_only_its_markers(tmp_path, paired):
    path = tmp_path / "RESULTS.md"
    path.write_text(f"# Benchmarks\n\nkept above\n\n{SECTION_START}\nold\n{SECTION_END}\n\nkept below\n")
    records = [record("standard", paired[0]), record("vampprior", paired[1])]
    write_results_md(records, path=path)
    text = path.read_text()
    assert "kept above" in text and "kept below" in text and "\nold\n" not in text
    assert text.count(SECTION_START) == 1 and "| Caltech 101 Silhouettes | VAE | vampprior |" in text


def test_budget_check_lists_cells_run_under_another_budget(tmp_path, paired):
    standard, vamp = paired
    main = [record("standard", standard), record("vampprior", vamp)]
    longer = [record("vampprior", vamp + 3.0, warmup=100, epochs=250, epoch_budget=400, best_epoch=200, active=36)]
    text = budget_check(main, longer, Path("runs/other"))
    (row,) = [line for line in text.splitlines() if line.startswith("| Caltech")]
    assert "| vampprior | 1, 100/300, best 60 |" in row and "| 100, 250/400, best 200 |" in row
    assert "| 36 | +3.00 nats (2σ ≈ 0.00) |" in row
    assert budget_check(main, [], None) == ""


def test_claim_summary_says_where_the_standard_prior_switched_units_off(paired):
    standard, vamp = paired
    text = claim_summary([record("standard", standard, active=27), record("vampprior", vamp, active=27)])
    assert "Claim (1): the VampPrior has the better test LL in 1 of 1 comparisons, 1 of them beyond" in text
    assert "Not confirmed here." in text and "still uses every unit" not in text
    assert "Caltech 101 Silhouettes VAE: 27 with the standard prior, 27 with the VampPrior" in text
    agrees = claim_summary([record("standard", standard, active=27), record("vampprior", vamp, active=33)])
    assert "The direction agrees with the paper." in agrees and "Not confirmed" not in agrees


@pytest.fixture
def committed_report(tmp_path, monkeypatch, paired):
    """results.json and RESULTS.md in tmp_path holding a committed Caltech101 VAE pair: their paths."""
    results_json, results_md = tmp_path / "results.json", tmp_path / "RESULTS.md"
    monkeypatch.setattr(reproduce_report, "RESULTS_JSON", results_json)
    monkeypatch.setattr(reproduce_report, "RESULTS_MD", results_md)
    committed = [record("standard", paired[0]), record("vampprior", paired[1])]
    write_results_json(committed, results_json)
    write_results_md(committed, path=results_md)
    return results_json, results_md


def test_report_leaves_the_committed_table_alone_when_runs_are_missing(tmp_path, monkeypatch, paired,
                                                                       committed_report):
    """A fresh clone has no runs folder: --report-only (or a one-cell run) must not wipe the table."""
    results_json, results_md = committed_report
    before = results_json.read_text(), results_md.read_text()
    found: list[dict] = []
    monkeypatch.setattr(reproduce_report, "collect_records", lambda runs_dir: found)

    assert reproduce.main(["--report-only", "--runs-dir", str(tmp_path / "fresh")]) == 1
    found.append(record("vampprior", paired[1] + 2.0))  # a run of one of the two cells
    assert reproduce.main(["--report-only", "--runs-dir", str(tmp_path / "one")]) == 1
    assert (results_json.read_text(), results_md.read_text()) == before

    found.append(record("standard", paired[0]))  # both cells: the report follows the runs
    assert reproduce.main(["--report-only", "--runs-dir", str(tmp_path / "both")]) == 0
    assert [r["log_likelihood"] for r in json.loads(results_json.read_text())] == [
        pytest.approx(paired[1].mean() + 2.0), pytest.approx(paired[0].mean())]

    del found[1]
    assert reproduce.main(["--report-only", "--runs-dir", str(tmp_path / "one"), "--replace-report"]) == 0
    assert len(json.loads(results_json.read_text())) == 1


def test_merging_updates_the_cells_run_and_keeps_the_others(tmp_path, monkeypatch, paired, committed_report):
    """--merge-report: cells run in their own folder (the conv rows) replace their own records and
    get their own section; the main section, with its paired claims, stays as committed."""
    results_json, results_md = committed_report
    main_section = results_md.read_text()
    conv = [record("standard", paired[0], model="pixelhvae"), record("vampprior", paired[1] + 3.0, model="pixelhvae"),
            record("vampprior", paired[1] + 0.5)]
    monkeypatch.setattr(reproduce_report, "collect_records", lambda runs_dir: conv)
    assert reproduce.main(["--report-only", "--runs-dir", str(tmp_path / "conv"), "--merge-report"]) == 0
    merged = json.loads(results_json.read_text())
    assert [(r["model"], r["prior"]) for r in merged] == [  # in the grid's order
        ("vae", "standard"), ("vae", "vampprior"), ("pixelhvae", "standard"), ("pixelhvae", "vampprior")]
    assert merged[1]["log_likelihood"] == pytest.approx(paired[1].mean() + 0.5)  # the cell run again: updated
    assert merged[0]["log_likelihood"] == pytest.approx(paired[0].mean())  # kept as committed
    text = results_md.read_text()
    assert text.startswith(main_section.rstrip("\n"))  # the main section untouched, the new one after it
    added = text[len(main_section.rstrip("\n")):]
    assert "| Caltech 101 Silhouettes | PixelHVAE | vampprior" in added and "--merge-report`" in added
    assert "| Caltech 101 Silhouettes, PixelHVAE | **holds**" in added  # paired: per-point values at hand
    monkeypatch.setattr(reproduce_report, "collect_records", lambda runs_dir: [])
    assert reproduce.main(["--report-only", "--runs-dir", str(tmp_path / "none"), "--merge-report"]) == 1


def test_the_grid_holds_the_conv_models_of_the_paper():
    from benchmarks.reproduce_grid import GRID, MODELS, PAPER_TABLE2
    from vae_core.config import ModelConfig

    for dataset in DATASETS:
        for model in ("convhvae", "pixelhvae"):
            assert {(dataset, model, p) for p in ("standard", "vampprior")} <= set(GRID)
    assert PAPER_TABLE2[("mnist-static", "pixelhvae", "vampprior")][0] == -79.78
    config = ModelConfig.for_dataset("mnist-static", **MODELS["pixelhvae"]).validate()
    assert (config.model, config.architecture, config.pixel_model) == ("hvae", "conv", "pixelcnn")


def test_a_runs_folder_in_use_is_refused(tmp_path):
    """Two reproduce.py processes resuming the same runs would interleave their epochs."""
    from vae_core.locking import acquire_lock, release_lock

    runs = tmp_path / "runs"
    lock = acquire_lock(runs)  # held by this (live) process
    try:
        with pytest.raises(SystemExit, match="is being trained into by process"):
            reproduce.main(["--runs-dir", str(runs), "--datasets", "caltech101", "--models", "vae",
                            "--priors", "standard", "--device", "cpu"])
    finally:
        release_lock(lock)
