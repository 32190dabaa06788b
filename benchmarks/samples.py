#!/usr/bin/env python
r"""The paper's third claim, sharper samples: the standard prior against the VampPrior, for every
(dataset, model) that benchmarks/reproduce.py trained with both.

    python benchmarks/samples.py                                  # the runs in runs/reproduce
    python benchmarks/samples.py --runs-dir runs/reproduce-full --device cuda

For each (dataset, model) whose `standard` and `vampprior` runs are both finished (evaluated) in
RUNS_DIR, it loads their best weights and

- decodes 64 draws from each prior (the same seed for both) into a grid of mean images,
  benchmarks/figures/samples-<dataset>-<model>-<prior>.png;
- measures how sure the decoder is at the prior's draws: the entropy H[p(x|z)] in nats per image,
  averaged over 1,000 draws z ~ p(z), beside the same average over draws z ~ q(z|x) of test images
  (`vae_core.evaluate.sample_sharpness`). The reconstructions' entropy is the decoder's own
  sharpness; the samples' excess over it is the blur that comes from the prior putting codes where
  the encoder puts no image, which is the paper's argument against N(0, I). The claim predicts the
  VampPrior's samples lower in entropy, nearer its reconstructions.

The results replace the "Samples" section of benchmarks/RESULTS.md (between <!-- samples:start -->
and <!-- samples:end -->) and the records of kind "samples" in benchmarks/results.json; both are
left alone when RUNS_DIR lacks a (dataset, model) they report, unless --replace-report.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np
import torch

from benchmarks.report_files import (
    RESULTS_JSON,
    RESULTS_MD,
    describe_device,
    recorded,
    replace_records,
    replace_section,
)
from benchmarks.reproduce_grid import (
    DATASETS,
    GRID,
    SORTED_TEST_SETS,
    model_title,
    run_name,
    test_points,
)
from vae_core import checkpoint as ckpt
from vae_core.data import load_dataset
from vae_core.evaluate import sample_sharpness
from vae_core.files import atomic_write_bytes
from vae_core.imaging import image_grid, png_bytes
from vae_core.train import resolve_device

FIGURES = ROOT / "benchmarks" / "figures"
SECTION_START = "<!-- samples:start -->"
SECTION_END = "<!-- samples:end -->"
KIND = "samples"
PAIR = ("dataset", "model")
PRIORS = ("standard", "vampprior")
GRID_SAMPLES, GRID_COLUMNS, GRID_SCALE = 64, 8, 2


def finished_pairs(runs_dir: Path) -> list[tuple[str, str]]:
    """The (dataset, model) pairs of the reproduction grid whose standard and vampprior runs are evaluated."""
    pairs = dict.fromkeys((d, m) for d, m, _ in GRID)
    return [(d, m) for d, m in pairs if all(
        "reproduce" in _metrics(runs_dir / run_name(d, m, prior)) for prior in PRIORS)]


def _metrics(path: Path) -> dict:
    file = path / ckpt.METRICS_FILE
    return ckpt.read_json(file) if file.is_file() else {}


def figure_name(dataset: str, model: str, prior: str) -> str:
    return f"samples-{dataset}-{model}-{prior}.png"


@torch.no_grad()
def sample_grid(model, seed: int) -> np.ndarray:
    """GRID_SAMPLES decoded prior draws as one uint8 image grid (reproducible for a given seed)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        images = model.sample(GRID_SAMPLES).float().cpu().numpy()
    return image_grid(images, columns=GRID_COLUMNS, scale=GRID_SCALE)


def measure(args, dataset: str, model_name: str, prior: str, x_test, selection: str, device) -> dict:
    """One record: the decoder's entropy at prior and posterior draws, and the sample grid written."""
    path = args.runs_dir / run_name(dataset, model_name, prior)
    model = ckpt.load(path, device)
    sharpness = sample_sharpness(model, x_test, num_samples=args.samples, draws=args.draws, seed=args.seed)
    figure = FIGURES / figure_name(dataset, model_name, prior)
    figure.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(figure, png_bytes(sample_grid(model, args.seed)))
    info = _metrics(path)["reproduce"]
    return {
        "kind": KIND, "dataset": dataset, "model": model_name, "prior": prior,
        "likelihood": _likelihood(path),
        "prior_entropy": round(sharpness["prior"], 3),
        "posterior_entropy": round(sharpness["posterior"], 3),
        "unit": "nats/image",
        "samples": args.samples,
        "test_points": min(args.samples, len(x_test)),
        "test_selection": selection,
        "draws": args.draws,
        "seed": args.seed,
        "epochs": info["epochs"],
        "runs_dir": str(args.runs_dir),
        "figure": str(figure.relative_to(RESULTS_MD.parent)),
        "device": describe_device(device),
        "date": dt.date.today().isoformat(),
    }


def claim_lines(records: list[dict]) -> list[str]:
    """Where the VampPrior's samples are the sharper (lower decoder entropy at prior draws).

    Only binary pixels are counted: a Bernoulli decoder's entropy is a function of the mean image
    it shows (grey means are blurred ones), whereas a discretised logistic's is set by its predicted
    scale, whatever the mean image looks like, and not even monotonically (see the grey line).
    """
    pairs = list(_pairs(records).values())
    binary = [p for p in pairs if p["standard"]["likelihood"] == "bernoulli"]
    lines = []
    if binary:
        sharper = [p for p in binary if p["vampprior"]["prior_entropy"] < p["standard"]["prior_entropy"]]
        closer = [p for p in binary if excess(p["vampprior"]) < excess(p["standard"])]
        names = ", ".join(_pair_name(p) for p in binary if p not in sharper)
        lines.append(f"- Claim (3), binary data: the VampPrior's samples have the lower decoder entropy in "
                     f"{len(sharper)} of {len(binary)} (dataset, model) pairs" + (f" (not on {names})" if names else "")
                     + f", and the smaller excess over its reconstructions in {len(closer)} of {len(binary)}.")
    grey = [p for p in pairs if p["standard"]["likelihood"] == "logistic"]  # the grid's only other likelihood
    if grey:
        lines.append(f"- {', '.join(_pair_name(p) for p in grey)}: grey pixels (a discretised logistic "
                     "likelihood), where the entropy over 256 bins is no blur measure: it is low both where the "
                     "decoder is sure (a narrow logistic) and where it is very unsure (a wide logistic puts most of "
                     "a pixel's mass in the two outer bins, which extend to -inf and +inf). Judge these grids by eye.")
    return lines


def _pair_name(pair: dict[str, dict]) -> str:
    return f"{_title(pair['standard'])} {model_title(pair['standard']['model'])}"


def _likelihood(run: Path) -> str:
    return ckpt.read_config(run)[0].likelihood


def excess(record: dict) -> float:
    """The samples' entropy beyond the reconstructions': the blur the prior adds (nats per image)."""
    return record["prior_entropy"] - record["posterior_entropy"]


def render_section(records: list[dict]) -> str:
    lines = [SECTION_START, "## Samples: the paper's third claim", ""]
    if not records:
        missing = ("No finished standard/vampprior pairs yet: run `benchmarks/reproduce.py`, then "
                   "`python benchmarks/samples.py`.")
        return "\n".join([*lines, missing, "", SECTION_END])
    first = records[0]
    lines += [
        (f"`python benchmarks/samples.py --runs-dir {first['runs_dir']}` on benchmarks/reproduce.py's runs "
         f"({first['device']}, {first['date']}). For each model: {GRID_SAMPLES} decoded mean images of draws from "
         f"its prior (seed {first['seed']}, the same for both priors), and the decoder's entropy H[p(x|z)] in nats "
         f"per image, averaged over {first['samples']:,} draws z ~ p(z) (\"samples\") and over one draw z ~ q(z|x) "
         f"for each of {first['test_points']:,} test images (\"reconstructions\"; Monte Carlo with "
         f"{first['draws']} images drawn from p(x|z) per z). For binary pixels lower is sharper: the reconstructions' "
         "entropy is how sure the decoder is where the encoder puts images, and the samples' excess over it is the "
         "blur added by a prior that puts codes where no image is encoded, the paper's argument against N(0, I)."),
        "",
    ]
    claims = claim_lines(records)
    if claims:
        lines += [*claims, ""]
    lines += ["| dataset | model | prior | epochs | samples H (nats/image) | reconstructions H | excess |",
              "|---|---|---|---:|---:|---:|---:|"]
    for r in records:
        lines.append(f"| {_title(r)} | {model_title(r['model'])} | {r['prior']} | {r['epochs']} | "
                     f"{r['prior_entropy']:.2f} | {r['posterior_entropy']:.2f} | {excess(r):+.2f} |")
    for (dataset, model), pair in _pairs(records).items():
        standard, vamp = pair["standard"], pair["vampprior"]
        lines += ["", f"**{_title(standard)}, {model_title(model)}**: samples' entropy {standard['prior_entropy']:.2f} "
                      f"(standard) vs {vamp['prior_entropy']:.2f} (VampPrior) nats per image", "",
                  "| standard prior | VampPrior |", "|---|---|",
                  f"| ![standard samples]({standard['figure']}) | ![VampPrior samples]({vamp['figure']}) |"]
    return "\n".join(lines + ["", SECTION_END])


def _title(record: dict) -> str:
    return DATASETS[record["dataset"]]["title"]


def _pairs(records: list[dict]) -> dict[tuple[str, str], dict[str, dict]]:
    """(dataset, model) -> {prior: record}, for the pairs that have both priors, in record order."""
    by_pair: dict[tuple[str, str], dict[str, dict]] = {}
    for r in records:
        by_pair.setdefault((r["dataset"], r["model"]), {})[r["prior"]] = r
    return {key: pair for key, pair in by_pair.items() if set(PRIORS) <= set(pair)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs-dir", type=Path, default=Path("runs/reproduce"), help="reproduce.py's runs folder")
    p.add_argument("--data-dir", default=None, help="dataset folder (default: $VAMPVIZ_DATA_DIR)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--samples", type=int, default=1000, help="prior draws and test images for the entropies")
    p.add_argument("--draws", type=int, default=4, help="images drawn from p(x|z) per code (Monte Carlo entropy)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--replace-report", action="store_true",
                   help="let the report drop (dataset, model) pairs it holds that the runs folder lacks")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    pairs = finished_pairs(args.runs_dir)
    dropped = recorded(RESULTS_JSON, KIND, PAIR) - set(pairs)
    if dropped and not args.replace_report:
        print(f"error: {args.runs_dir} lacks finished standard and vampprior runs of {len(dropped)} (dataset, model) "
              f"pair(s) that {RESULTS_MD.name} reports (e.g. {' '.join(min(dropped))}); train them with "
              "benchmarks/reproduce.py, or pass --replace-report", file=sys.stderr)
        return 1
    if not pairs:
        print(f"error: {args.runs_dir} holds no finished standard and vampprior runs of one (dataset, model); "
              "run benchmarks/reproduce.py first", file=sys.stderr)
        return 1
    device = resolve_device(args.device)
    records, data = [], {}
    for dataset, model_name in pairs:
        if dataset not in data:
            data[dataset] = load_dataset(dataset, args.data_dir)
        limit = args.samples if dataset in SORTED_TEST_SETS else None  # spread over a class-sorted file
        x_test, selection = test_points(dataset, data[dataset].x_test, limit)
        for prior in PRIORS:
            record = measure(args, dataset, model_name, prior, x_test, selection, device)
            print(f"{dataset} {model_name} {prior}: samples {record['prior_entropy']:.2f}, reconstructions "
                  f"{record['posterior_entropy']:.2f} nats/image -> {record['figure']}", flush=True)
            records.append(record)
    replace_records(RESULTS_JSON, KIND, records)
    replace_section(RESULTS_MD, SECTION_START, SECTION_END, render_section(records))
    print(f"wrote {len(records)} records to {RESULTS_JSON.relative_to(ROOT)} and the Samples section of "
          f"{RESULTS_MD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
