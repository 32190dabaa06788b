#!/usr/bin/env python
r"""Reproduce the test log-likelihoods of Tomczak & Welling, "VAE with a VampPrior" (AISTATS 2018,
arXiv:1705.07120), Table 2, with vae_core: train and evaluate a grid of (dataset, model, prior).

The grid (`GRID` in reproduce_grid.py) is the paper's MLP experiments on Caltech 101 Silhouettes and Frey Faces
(VAE and HVAE x standard / mog / vampprior / vampprior-data) and on static MNIST (VAE and HVAE x
standard / vampprior), and its convolutional two-level models, convHVAE and PixelHVAE x standard /
vampprior, on all three (`--models convhvae pixelhvae`; about 100x the MLPs' compute per image:
GPU-sized). Every run uses the paper's settings unless a flag shrinks the budget:
gated MLP 2 x 300 (or the authors' gated conv networks), latent 40 (z1 and z2 40 each for the HVAE), K = 500 pseudo-inputs (and 500
mixture components for mog), batch 100, Adam lr 5e-4 on L2-normalised gradients (the authors'
AdamNormGrad), KL warm-up 100 epochs, early stopping with patience 50, at most 2000 epochs, and the
test log-likelihood by importance sampling with S = 5000. We also report the ELBO, active units
(Cov_x E_q[z_d] > 0.01), epochs run, training time and s/epoch.

Each run lives in its own checkpoint folder, RUNS_DIR/<dataset>-<model>-<prior>, and is resumable:
a folder whose metrics.json holds the same settings is skipped; a partly trained one continues
(`resume=True`), also when a later call raises the epoch budget. After every run the script
rewrites the "reproduction" records of benchmarks/results.json (other records are kept) and the
"Reproduction" section of benchmarks/RESULTS.md (the rest of the file is kept).

The parts: reproduce_grid.py (the paper's settings, the grid, Table 2's figures and their
sources), reproduce_runner.py (training and evaluating a cell), reproduce_records.py (records and
paired comparisons), reproduce_report.py with templates/reproduction.md (the RESULTS.md section).

    # the paper's full budget (2000 epochs, warm-up 100, patience 50, S = 5000, every test point),
    # on a GPU: 20 runs that each train until early stopping, so many GPU-hours in all
    python benchmarks/reproduce.py --device cuda --data-dir /path/to/data --runs-dir runs/reproduce-full

    # the CPU budget that benchmarks/RESULTS.md reports (`CPU_BUDGET_COMMAND`, a few hours on 2 cores)
    python benchmarks/reproduce.py --data-dir /path/to/data \
        --epochs caltech101=300 --epochs freyfaces=100 --epochs mnist-static=30 \
        --warmup caltech101=1 --warmup freyfaces=5 --warmup mnist-static=0 \
        --test-limit caltech101=500 --test-limit freyfaces=100 --test-limit mnist-static=500

    # one cell at the paper's budget, e.g. Caltech101 VAE + VampPrior
    python benchmarks/reproduce.py --datasets caltech101 --models vae --priors vampprior \
        --device cuda --runs-dir runs/reproduce-full

Flags that take a number accept either N (every dataset) or DATASET=N (one dataset), repeatable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import torch

from benchmarks import reproduce_runner as runner
from benchmarks.reproduce_grid import (
    ALL_PRIORS,
    DATASETS,
    GRID,
    MODELS,
    PAPER_EPOCHS,
    PAPER_PATIENCE,
    PAPER_SAMPLES,
    PAPER_WARMUP,
)
from vae_core.locking import FolderLocked, acquire_lock, release_lock
from vae_core.train import resolve_device


def per_dataset(values: list[str] | None, default, cast, flag: str) -> dict[str, object]:
    """Parse repeated "N" / "DATASET=N" values into {dataset: value}; `default` fills the rest."""
    result = {name: default for name in DATASETS}
    for value in values or []:
        name, sep, number = value.rpartition("=")
        try:
            parsed = cast(number)
        except ValueError:
            raise SystemExit(f"error: {flag} {value!r}: expected N or DATASET=N") from None
        if not sep:
            result = {n: parsed for n in DATASETS}
        elif name in DATASETS:
            result[name] = parsed
        else:
            raise SystemExit(f"error: {flag} {value!r}: unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return result


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Defaults are the paper's full budget; see the module docstring for examples.")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS),
                   help="vae, hvae (the paper's MLPs), convhvae, pixelhvae (its conv models; GPU-sized)")
    p.add_argument("--priors", nargs="+", default=list(ALL_PRIORS), choices=list(ALL_PRIORS))
    p.add_argument("--epochs", action="append", metavar="[DATASET=]N",
                   help=f"epoch budget (default {PAPER_EPOCHS}, the paper's)")
    p.add_argument("--warmup", action="append", metavar="[DATASET=]N",
                   help=f"KL warm-up epochs (default: the paper's {PAPER_WARMUP}, at most a fifth of the epochs)")
    p.add_argument("--patience", type=int, default=PAPER_PATIENCE, help="early-stopping patience (default 50)")
    p.add_argument("--components", action="append", metavar="[DATASET=]K",
                   help="pseudo-inputs / mixture components (default: 500)")
    p.add_argument("--samples", type=int, default=PAPER_SAMPLES, help="importance samples S (default 5000)")
    p.add_argument("--test-limit", action="append", metavar="[DATASET=]N",
                   help="evaluate on the first N test points (default: all); on static MNIST, whose test "
                        "file is sorted by digit, on N points evenly spaced through it")
    p.add_argument("--no-normalize-gradients", action="store_true",
                   help="plain Adam instead of the paper's Adam on L2-normalised gradients")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="dataset folder (default: $VAMPVIZ_DATA_DIR)")
    p.add_argument("--runs-dir", default="runs/reproduce", help="checkpoint folders (default runs/reproduce)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: 1 on a CPU device; on a busy shared machine one thread "
                        "per process ran ~10x faster than two, which spin-wait on each other)")
    p.add_argument("--no-report", action="store_true",
                   help="do not touch benchmarks/results.json and RESULTS.md (timing probes)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: rebuild results.json and RESULTS.md from the finished runs")
    p.add_argument("--replace-report", action="store_true",
                   help="let the report drop cells it holds that the runs folder has no finished run of "
                        "(by default it is then left alone, so a fresh clone or a one-cell run cannot "
                        "wipe the committed table)")
    p.add_argument("--merge-report", action="store_true",
                   help="update the report's cells that the runs folder has finished runs of and keep its "
                        "other cells as they are (e.g. to add the conv rows from their own runs folder)")
    p.add_argument("--compare-runs-dir", type=Path, default=None, metavar="DIR",
                   help="a second runs folder holding some of the same cells under another budget (e.g. the "
                        "paper's warm-up); RESULTS.md lists them beside the main runs")
    args = p.parse_args(argv)
    args.epochs = per_dataset(args.epochs, PAPER_EPOCHS, int, "--epochs")
    args.warmup = per_dataset(args.warmup, None, int, "--warmup")
    args.components = {n: DATASETS[n]["components"] for n in DATASETS} | {
        k: v for k, v in per_dataset(args.components, None, int, "--components").items() if v is not None}
    args.test_limit = per_dataset(args.test_limit, None, int, "--test-limit")
    for name in DATASETS:
        if args.epochs[name] < 1:
            raise SystemExit("error: --epochs must be at least 1")
        if args.warmup[name] is None:
            args.warmup[name] = min(PAPER_WARMUP, args.epochs[name] // 5)
    args.runs_dir = Path(args.runs_dir)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report_only:
        return 0 if runner.report(args) else 1
    cells = [c for c in GRID if c[0] in args.datasets and c[1] in args.models and c[2] in args.priors]
    if not cells:
        raise SystemExit("error: no grid cell matches --datasets/--models/--priors")
    # the (standard, vampprior) pairs that the claims need first, then mog and vampprior-data
    cells.sort(key=lambda c: (c[2] not in ("standard", "vampprior"), GRID.index(c)))
    if args.threads or resolve_device(args.device).type == "cpu":
        torch.set_num_threads(args.threads or 1)
    runner.log(f"{len(cells)} runs into {args.runs_dir}: " + ", ".join(
        f"{d} {args.epochs[d]} epochs (warm-up {args.warmup[d]}, test points {args.test_limit[d] or 'all'})"
        for d in args.datasets))
    try:  # one reproduce.py per runs folder: two resuming the same runs would interleave their epochs
        lock = acquire_lock(args.runs_dir)
    except FolderLocked as error:
        raise SystemExit(f"error: {error}; or pass another --runs-dir") from None
    try:
        return runner.run_grid(args, cells)
    finally:
        release_lock(lock)


if __name__ == "__main__":
    sys.exit(main())
