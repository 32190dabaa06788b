"""The reproduction's records: one per finished grid cell, read from its run folder's metrics.json,
written to results.json, and compared prior against prior with paired standard errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from benchmarks.report_files import RESULTS_JSON, replace_records
from benchmarks.reproduce_grid import DATASETS, GRID, MODELS, PAPER_TABLE2, run_name
from vae_core import checkpoint as ckpt
from vae_core.data import get_spec

KIND = "reproduction"  # results.json holds other benchmarks' records too, told apart by "kind"
CELL = ("dataset", "model", "prior")  # the fields that name a grid cell in a record


def ours_in_paper_unit(dataset: str, record: dict) -> float:
    return record["bits_per_dim"] if DATASETS[dataset]["unit"] == "bits/dim" else record["log_likelihood"]


def collect_records(runs_dir: Path) -> list[dict]:
    """One record per grid cell whose run folder holds reproduction metrics."""
    records = []
    for dataset, model, prior in GRID:
        path = runs_dir / run_name(dataset, model, prior) / ckpt.METRICS_FILE
        if not path.is_file():
            continue
        metrics = ckpt.read_json(path)
        info = metrics.get("reproduce")
        if not info:
            continue
        paper = PAPER_TABLE2.get((dataset, model, prior))
        settings = info["settings"]
        record = {
            "kind": KIND,
            "dataset": dataset,
            "model": model,
            "prior": prior,
            "log_likelihood": metrics["log_likelihood"],
            "log_likelihood_stderr": metrics["log_likelihood_stderr"],
            "elbo": metrics["elbo"],
            "active_units": metrics["active_units"],
            "epochs": info["epochs"],
            "best_epoch": info["best_epoch"],
            "seconds_per_epoch": round(info["seconds_per_epoch"], 3),
            "train_seconds": round(info["train_seconds"], 1),
            "eval_seconds": round(info["eval_seconds"], 1),
            "samples": settings["samples"],
            "n_test": settings["n_test"],
            "test_selection": settings["test_selection"],
            "epoch_budget": settings["train"]["epochs"],
            "warmup": settings["train"]["warmup"],
            "patience": settings["train"]["patience"],
            "components": settings["model"]["components"],
            "unit": DATASETS[dataset]["unit"],
            "paper_log_likelihood": paper[0] if paper else None,
            "device": info["device"],
            "date": info["date"],
        }
        if "bits_per_dim" in metrics:
            record["bits_per_dim"] = metrics["bits_per_dim"]
        if "log_likelihood_per_point" in metrics:  # for paired comparisons; not written to results.json
            record["_per_point"] = metrics["log_likelihood_per_point"]
        records.append(record)
    return records


def write_results_json(records: list[dict], path: Path = RESULTS_JSON) -> None:
    """Replace the reproduction records, keep every other record (re-read right before writing)."""
    replace_records(path, KIND, [{k: v for k, v in r.items() if not k.startswith("_")} for r in records])


def recorded_cells(records: list[dict]) -> set[tuple]:
    return {tuple(r[f] for f in CELL) for r in records}


def stderr_in_unit(record: dict) -> float:
    """The LL's standard error in the record's unit (nats, or bits/dim)."""
    se = record["log_likelihood_stderr"]
    if record["unit"] == "bits/dim":
        return se / (math.prod(get_spec(record["dataset"]).input_shape) * math.log(2))
    return se


def gain_stderr(new: dict, base: dict) -> float:
    """Standard error of the LL difference `new` - `base` in the paper's unit: paired (the spread of
    the per-point differences) when both records hold per-point values for the same test points, else
    the unpaired, conservative sqrt(se_new^2 + se_base^2)."""
    a, b = new.get("_per_point"), base.get("_per_point")
    if a is None or b is None or len(a) != len(b) or len(a) < 2:
        return math.hypot(stderr_in_unit(new), stderr_in_unit(base))
    diff = np.asarray(a) - np.asarray(b)
    se = float(diff.std(ddof=1) / math.sqrt(len(diff)))
    if new["unit"] == "bits/dim":
        se /= math.prod(get_spec(new["dataset"]).input_shape) * math.log(2)
    return se


def compare(records: list[dict], prior: str, baseline: str = "standard") -> list[dict]:
    """`prior` vs `baseline` for every (dataset, model) where both ran: the LL gain of `prior` in the
    paper's unit (> 0: `prior` is better), twice the combined standard error, the active units, or
    `skip` with the reason the two are not comparable (other test points or another budget)."""
    by_key = {(r["dataset"], r["model"], r["prior"]): r for r in records}
    pairs = []
    for dataset in DATASETS:
        for model in MODELS:
            new, base = by_key.get((dataset, model, prior)), by_key.get((dataset, model, baseline))
            if not new or not base:
                if new or base:
                    pairs.append({"dataset": dataset, "model": model, "skip": "not run yet"})
                continue
            pair = {"dataset": dataset, "model": model, "new": new, "base": base, "skip": None}
            if (new["n_test"], new["test_selection"]) != (base["n_test"], base["test_selection"]):
                pair["skip"] = "evaluated on different test points; not compared"
            elif (new["epoch_budget"], new["warmup"]) != (base["epoch_budget"], base["warmup"]):
                pair["skip"] = "trained with different budgets; not compared"
            else:
                a, b = ours_in_paper_unit(dataset, new), ours_in_paper_unit(dataset, base)
                pair["gain"] = b - a if new["unit"] == "bits/dim" else a - b
                pair["noise"], pair["paired"] = 2 * gain_stderr(new, base), "_per_point" in new and "_per_point" in base
            pairs.append(pair)
    return pairs
