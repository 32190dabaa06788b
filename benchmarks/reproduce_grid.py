"""The paper's settings, the reproduction grid and the Table 2 figures we compare with.

Shared by benchmarks/reproduce.py (its runner, records and report) and benchmarks/samples.py.
"""

from __future__ import annotations

import numpy as np

from vae_core.paper import CALTECH_VAMPPRIOR_NOTE, MODEL_TITLES, PAPER_MODELS, PAPER_TABLE2  # noqa: F401 (shared)

PAPER_EPOCHS = 2000
PAPER_WARMUP = 100
PAPER_PATIENCE = 50
PAPER_SAMPLES = 5000
PAPER_LR = 5e-4
PAPER_BATCH = 100
HIDDEN = 300
LATENT = 40

# Per dataset: K (pseudo-inputs, or mixture components for "mog") and the unit of Table 2.
# K = 500 is the paper's setting for the binary datasets. For Frey Faces the paper's K could not
# be checked here (its setup section was not readable from this machine), so we keep 500, the
# default of the authors' released experiment.py (whose default dataset is Frey Faces), and say so
# in RESULTS.md. Override with --components freyfaces=N.
DATASETS = {
    "caltech101": {"components": 500, "unit": "nats", "title": "Caltech 101 Silhouettes"},
    "freyfaces": {"components": 500, "unit": "bits/dim", "title": "Frey Faces"},
    "mnist-static": {"components": 500, "unit": "nats", "title": "static MNIST"},
}

# Test files stored sorted by class: static MNIST's test set is the MNIST test set stable-sorted by
# digit (see the data folder's README.md), so its first N points are all zeros. For these
# `--test-limit N` takes N points evenly spaced through the file instead of the first N.
SORTED_TEST_SETS = {"mnist-static"}

ALL_PRIORS = ("standard", "mog", "vampprior", "vampprior-data")

# The grid's models: the MLP VAE and HVAE, and the paper's convolutional two-level models, the
# convHVAE and the PixelHVAE; {name: config fields} (vae_core.paper).
MODELS = PAPER_MODELS
MLP_MODELS, CONV_MODELS = ("vae", "hvae"), ("convhvae", "pixelhvae")

GRID: list[tuple[str, str, str]] = (
    [("caltech101", m, p) for m in MLP_MODELS for p in ALL_PRIORS]
    + [("freyfaces", m, p) for m in MLP_MODELS for p in ALL_PRIORS]
    + [("mnist-static", m, p) for m in MLP_MODELS for p in ("standard", "vampprior")]
    + [(d, m, p) for d in ("mnist-static", "caltech101", "freyfaces") for m in CONV_MODELS
       for p in ("standard", "vampprior")]
)

# The budget the committed RESULTS.md was produced with on the shared 2-core CPU.
CPU_BUDGET_COMMAND = (
    "nice -n 10 python benchmarks/reproduce.py --data-dir /work/shared/data \\\n"
    "    --epochs caltech101=300 --epochs freyfaces=100 --epochs mnist-static=30 \\\n"
    "    --warmup caltech101=1 --warmup freyfaces=5 --warmup mnist-static=0 \\\n"
    "    --test-limit caltech101=500 --test-limit freyfaces=100 --test-limit mnist-static=500"
)
GPU_COMMAND = "python benchmarks/reproduce.py --device cuda --data-dir /path/to/data --runs-dir runs/reproduce-full"


def model_title(model: str) -> str:
    return MODEL_TITLES.get(model, model.upper())


def run_name(dataset: str, model: str, prior: str) -> str:
    return f"{dataset}-{model}-{prior}"


def test_points(dataset: str, x_test, limit: int | None):
    """The evaluated test images and how they were chosen ("all", "first" or "spaced")."""
    if not limit or limit >= len(x_test):
        return x_test, "all"
    if dataset in SORTED_TEST_SETS:
        return x_test[np.linspace(0, len(x_test) - 1, limit).round().astype(int)], "spaced"
    return x_test[:limit], "first"
