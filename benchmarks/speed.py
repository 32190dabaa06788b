#!/usr/bin/env python
"""Speed benchmarks: VAE + VampPrior training and importance-sampled log-likelihood, beside the
authors' algorithm timed in the same run.

    python benchmarks/speed.py             # full run; writes results
    python benchmarks/speed.py --quick     # a smoke run; prints only (add --write to record)
    python benchmarks/speed.py --threads 1 --timeout 1800   # on a machine busy with other jobs
    python benchmarks/speed.py --device cuda
    python benchmarks/speed.py --note "two training processes were running"   # said in the report

On the 2-core development machine, busy with two training runs, the full run took 9 minutes with
--threads 1 and --quick under 2 minutes; with torch's two threads the children, spin-waiting on
each other, ran past the default 900 s limit.

The measured model is the paper's: VAE with a VampPrior, K = 500 pseudo-inputs, gated MLP 2 x 300,
40 latent units, Bernoulli pixels, 28 x 28 binary images, batch 100. The training set is random
binary data of the Caltech 101 Silhouettes size (4,100 images; speed does not depend on the pixel
values), or the real file with --dataset caltech101 --data-dir DIR. The authors' algorithm is
benchmarks/authors_reference.py, run from the same weights on the same data in the same process.

What is measured (each in a fresh subprocess, so peak memory is per measurement):

1. Training seconds per epoch: our step as `train()` runs it with the paper's optimiser (fused
   Adam on L2-normalised gradients), without validation or checkpoints, and the authors' training
   loop, timed in rotation, so their ratio compares like with like on a shared machine. Our FLOP
   lower bound is the matmul FLOPs of one epoch (torch.utils.flop_counter: forward and backward of
   the data batch, the K pseudo-inputs' encoder pass at every step and the mixture density) over
   the best dense-matmul throughput measured on this machine. In the same rotation, the levers of
   the design: (a) the pseudo-inputs batched with the data through the encoder, (b) larger
   batches, (c) torch.compile (in its own process), (d) torch.set_num_threads, and what train()
   and GatedDense do undone: (e) unfused Adam, (f) h and g of a gated layer as two matmuls.
   Timings are the best of a few repetitions: on a shared machine other jobs only add time.
2. Test log-likelihood throughput at S = 5000: `vae_core.evaluate.log_likelihood` against the
   authors' evaluation (per point, 50 full forward passes of 100 samples each, each re-encoding
   the K pseudo-inputs), its FLOP bound, projections to 1,000 and 10,000 points, and the
   evaluator's design choices undone (the mixture table in float64; other chunk sizes).
3. Peak memory (ru_maxrss of a fresh process; torch.cuda.max_memory_allocated on CUDA).

Results go to benchmarks/results.json (a list of records, "kind": "speed"; other kinds are kept) and
to the "Speed" section of benchmarks/RESULTS.md (between <!-- speed:start --> and
<!-- speed:end -->; the rest of the file is left alone). The parts: speed_runner.py (the
measurements), speed_records.py (bounds, ratios, records), speed_report.py with
templates/speed.md (the section).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import torch

from benchmarks import speed_records, speed_report
from benchmarks.report_files import (
    RESULTS_JSON,
    RESULTS_MD,
    replace_records,
    replace_section,
)
from benchmarks.speed_runner import (
    CHILDREN,
    MEMORY_WORKLOADS,
    load_average,
    machine_info,
    run_child,
    spawn,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (prints; --write to record)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--dataset", default="random", choices=["random", "caltech101"])
    parser.add_argument("--data-dir", help="with --dataset caltech101: the dataset folder")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads in every measurement (default: torch's)")
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs per training variant (full mode)")
    parser.add_argument("--timeout", type=float, help="seconds each measurement may take (default 900; --quick 180)")
    parser.add_argument("--eval-points", type=int, default=30, help="test points for our evaluator (full mode)")
    parser.add_argument("--authors-points", type=int, default=12,
                        help="test points for the authors' evaluation (full mode)")
    parser.add_argument("--compile", dest="compile", action="store_true", default=None,
                        help="time torch.compile (default: in full mode only)")
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--compile-timeout", type=float, default=300, help="seconds before (c) is skipped")
    parser.add_argument("--write", dest="write", action="store_true", default=None,
                        help="write results.json and RESULTS.md (default: in full mode only)")
    parser.add_argument("--no-write", dest="write", action="store_false")
    parser.add_argument("--note", help="what else the machine was doing, said in the report (e.g. other jobs)")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--memory", choices=MEMORY_WORKLOADS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not args.child and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available")
    return args


def shown_flags(argv: list[str]) -> str:
    """The command line as the report shows it: every flag but --note, whose text the report quotes."""
    kept, skip = [], False
    for arg in argv:
        if skip or arg.startswith("--note="):
            skip = False
            continue
        skip = arg == "--note"
        if not skip:
            kept.append(arg)
    return shlex.join(kept)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.child:
        run_child(args)
        return 0
    compile_too = args.compile if args.compile is not None else not args.quick
    write = args.write if args.write is not None else not args.quick
    info = machine_info(args) | {"flags": shown_flags(argv)}
    started = time.perf_counter()
    print(f"{info['cpu']}, {info['cores']} cores, torch {info['torch']}, {info['threads']} threads, "
          f"device {args.device}, load average {info['load_average_start']}", flush=True)
    long = args.timeout or (180 if args.quick else 900)
    print("training ...", flush=True)
    train = spawn(args, "train", long)
    compiled = None
    if compile_too:
        print("torch.compile ...", flush=True)
        # a cold compile, as a user's first run sees it (not inductor's cache from an earlier run)
        compiled = spawn(args, "compile", args.compile_timeout, env={"TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1"})
    print("log-likelihood ...", flush=True)
    evaluation = spawn(args, "eval", long)
    print("memory ...", flush=True)
    memory = {what: spawn(args, "memory", long, ["--memory", what]) for what in MEMORY_WORKLOADS}
    info["load_average_end"] = load_average()
    info["benchmark_seconds"] = round(time.perf_counter() - started, 1)
    figures = speed_records.derive(info, train, compiled, evaluation, memory, "quick" if args.quick else "full")
    section = speed_report.render(figures, info)
    print()
    print(section)
    print(f"(benchmark took {info['benchmark_seconds']:.0f} s)")
    failed = [what for what, result in (("training", train), ("log-likelihood", evaluation)) if "error" in result]
    if write and failed:
        print(f"not writing {RESULTS_MD.name} and {RESULTS_JSON.name}: the {' and '.join(failed)} benchmark failed "
              "(--timeout gives a busy machine more time)", file=sys.stderr)
        return 1
    if write:
        replace_records(RESULTS_JSON, speed_records.KIND, figures["records"])
        replace_section(RESULTS_MD, speed_report.MD_START, speed_report.MD_END, section)
        print(f"wrote {RESULTS_JSON.relative_to(ROOT)} and the Speed section of {RESULTS_MD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
