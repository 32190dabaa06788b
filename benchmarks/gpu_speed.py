#!/usr/bin/env python
"""GPU speed of the paper's static-MNIST model: training, the test log-likelihood, the dashboard.

    python benchmarks/gpu_speed.py --device cuda --out OUTDIR [--data-dir DIR] [--checkpoint CKPT]
    python benchmarks/gpu_speed.py --device cpu --quick --out /tmp/gpu-speed   # < 1 min check of the code

The model is the paper's VAE + VampPrior (K = 500, gated MLP 2 x 300, latent 40, Bernoulli pixels),
freshly initialised, or the weights of --checkpoint. Static MNIST is read from
DIR/mnist_static/binarized_mnist_static.npz (DIR: --data-dir, else $VAMPVIZ_DATA_DIR); where it is
missing, random binary images of the same shape stand in and the report says so.

(a) Training, seconds per epoch of 50,000 images: train()'s step (data on the device, fused Adam
    on normalised gradients, lr 5e-4, three host syncs per step) at batch 100 and larger, and each
    lever alone: the data on the host, unfused Adam, no per-step host syncs, the mixture table
    always in float64 (its precision check is a host sync, which graphs cannot hold), the whole
    step as one CUDA graph, torch.compile(mode="reduce-overhead").
(b) The importance-sampled log-likelihood at S = 5000 (vae_core.evaluate.log_likelihood) at
    several max_rows, then the whole test set at the fastest.
(c) The dashboard's computations: the test set's posterior means, the PCA map with component means
    and prior samples, the Pseudo-inputs analysis, a grid of prior samples, KL(q(z) || p(z)).
(a) and (b) are also timed on the CPU for a few steps and points, and (c) in full, to give
GPU/CPU ratios measured in the same run. Each part runs in its own process under a time limit (all
together within --budget seconds); one that fails or runs out of time is recorded and the rest go
on. Writes OUTDIR/gpu_speed.json, OUTDIR/gpu_speed.md and OUTDIR/gpu_speed.log.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import numpy as np
import torch

from vae_core import distributions
from vae_core.train import normalize_gradients_

SAMPLES = 5000
N_TRAIN = 50_000
LR = 5e-4
QUICK = {"n_train": 300, "n_test": 100, "steps": 1, "steps_floor": 1, "warmup_steps": 1, "repeats": 1, "batches": (100, 300),
         "samples": 500, "sweep_points": 1, "max_rows": (None,), "test_points": 2, "cpu_steps": 1, "cpu_points": 1}
FULL = {"n_train": N_TRAIN, "n_test": 10_000, "steps": 200, "steps_floor": 20, "warmup_steps": 2, "repeats": 2, "samples": SAMPLES,
        "batches": (100, 500, 1000, 2500), "sweep_points": 100, "max_rows": (None, 100_000, 500_000),
        "test_points": 10_000, "cpu_steps": 10, "cpu_points": 2}
# seconds each part may take at most (the whole run is also held within --budget)
LIMITS = {"train": 75, "loglik": 50, "dashboard": 45, "cpu": 30, "compile": 90}


# --------------------------------------------------------------------------------------------
# What the children share


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_images(data_dir: str | None, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Static MNIST's first n_train training and n_test test images, or random binary stand-ins."""
    from vae_core.data import load_dataset
    from vae_core.errors import DatasetError

    try:
        splits = load_dataset("mnist-static", data_dir)
        return splits.x_train[:n_train], splits.x_test[:n_test], "mnist-static"
    except DatasetError as error:
        generator = np.random.default_rng(0)
        train = (generator.random((n_train, 1, 28, 28)) < 0.13).astype(np.float32)
        test = (generator.random((n_test, 1, 28, 28)) < 0.13).astype(np.float32)
        return train, test, f"random binary images (static MNIST not loaded: {error})"


def build_model(settings: dict, device: torch.device):
    """The paper's model, freshly initialised with seed 0, or the checkpoint's weights."""
    from vae_core import checkpoint as ckpt
    from vae_core.config import ModelConfig
    from vae_core.models import build_model as build

    if settings.get("checkpoint"):
        return ckpt.load(settings["checkpoint"], device=device)
    torch.manual_seed(0)
    config = ModelConfig.for_dataset("mnist-static", model="vae", prior="vampprior", components=500, hidden=300,
                                     latent_dim=40)
    return build(config).to(device)


@contextlib.contextmanager
def float64_tables(enabled: bool = True):
    """Form every mixture table in float64, skipping the rounding check (and its host sync)."""
    original = distributions._float32_error_bound
    if enabled:
        distributions._float32_error_bound = lambda z, precisions: math.inf
    try:
        yield
    finally:
        distributions._float32_error_bound = original


@contextlib.contextmanager
def table_precisions(counts: dict):
    """Count the mixture tables formed in float32 and in float64 (the check itself is unchanged)."""
    original = distributions._float32_error_bound

    def counting(z, precisions):
        bound = original(z, precisions)
        counts["float32" if bound <= distributions.FLOAT32_TOLERANCE else "float64"] += 1
        return bound

    distributions._float32_error_bound = counting
    try:
        yield
    finally:
        distributions._float32_error_bound = original


def float32_share(counts: dict) -> float | None:
    total = counts["float32"] + counts["float64"]
    return counts["float32"] / total if total else None


def peak_memory_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


# --------------------------------------------------------------------------------------------
# (a) Training


def eager_steps(model, optimizer, x, batch: int, steps: int, device, host_syncs: bool = True) -> float:
    """Seconds for `steps` training steps as train() takes them (x on the host: copied per batch)."""
    model.train()
    n = len(x)
    order = torch.randperm(n, device=x.device)
    sums = [0.0, 0.0, 0.0] if host_syncs else torch.zeros(3, dtype=torch.float64, device=device)
    sync(device)
    start = time.perf_counter()
    for done, index in enumerate(order.split(batch)):
        if done == steps:
            break
        xb = x[index].to(device)
        out = model(xb, beta=1.0)
        if host_syncs:  # train() reads the loss terms every step (progress, divergence check)
            for i, value in enumerate((out.loss.item() * len(index), out.reconstruction.sum().item(),
                                       out.kl.sum().item())):
                sums[i] += value
        else:
            sums += torch.stack([out.loss.detach() * len(index), out.reconstruction.detach().sum(),
                                 out.kl.detach().sum()]).double()
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        normalize_gradients_(model.parameters())
        optimizer.step()
    sync(device)
    seconds = time.perf_counter() - start
    assert all(math.isfinite(v) for v in (sums if host_syncs else sums.tolist())), "the loss is not finite"
    return seconds


def capture_step(model, optimizer, x, batch: int, device):
    """The whole step (gather, forward, backward, normalisation, Adam) as one CUDA graph.

    Returns (graph, index buffer to fill before each replay, the epoch sums it accumulates)."""
    model.train()
    index = torch.arange(batch, device=device)
    sums = torch.zeros(3, dtype=torch.float64, device=device)

    def step():
        out = model(x[index], beta=1.0)
        sums.add_(torch.stack([out.loss.detach() * batch, out.reconstruction.detach().sum(),
                               out.kl.detach().sum()]).double())
        out.loss.backward()
        normalize_gradients_(model.parameters())
        optimizer.step()

    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):  # warm-up: the optimiser's state and the allocator, off the capture
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)  # backward then writes the gradients in the graph's own memory
    with torch.cuda.graph(graph):
        step()
    return graph, index, sums


def graph_steps(captured, n: int, batch: int, steps: int, device) -> float:
    graph, index, sums = captured
    order = torch.randperm(n, device=device)[: n // batch * batch].view(-1, batch)
    sync(device)
    start = time.perf_counter()
    for done in range(min(steps, len(order))):
        index.copy_(order[done])
        graph.replay()
    sync(device)
    seconds = time.perf_counter() - start
    assert all(math.isfinite(v) for v in sums.tolist()), "the loss is not finite"
    return seconds


TRAIN_VARIANTS = [  # key, what changes from train()'s step
    ("baseline", "train()'s step: data on the device, fused Adam, 3 host syncs per step"),
    ("data_on_host", "the data on the host, each batch copied to the device"),
    ("unfused_adam", "Adam without fused=True (foreach kernels)"),
    ("no_host_syncs", "loss sums kept on the device: no host sync per step"),
    ("float64_tables", "the mixture table always in float64: no precision check (a host sync)"),
    ("cuda_graph", "the whole step as one CUDA graph (no host syncs, float64 tables, capturable fused Adam)"),
]


NEEDS_CUDA = {"data_on_host": "on the CPU the data is on the host already",
              "cuda_graph": "CUDA graphs need CUDA"}


def time_variant(key: str, base, x_device, x_host, batch: int, steps: int, repeats: int, device,
                 warmup: int = 2) -> dict:
    """Seconds per epoch of one variant: `repeats` timed runs of `steps` steps after `warmup` steps."""
    import copy

    model = copy.deepcopy(base)
    model.prior._encoder = (model.encoder,)  # the VampPrior encodes its pseudo-inputs with this model's encoder
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, fused=key != "unfused_adam",
                                 capturable=key == "cuda_graph")
    x = x_host if key == "data_on_host" else x_device
    n = len(x)
    steps = min(steps, math.ceil(n / batch))
    counts = {"float32": 0, "float64": 0}
    with float64_tables(key in ("float64_tables", "cuda_graph")):
        if key == "cuda_graph":
            captured = capture_step(model, optimizer, x, batch, device)
            run = lambda: graph_steps(captured, n, batch, steps, device)
        else:
            host_syncs = key != "no_host_syncs"
            eager_steps(model, optimizer, x, batch, warmup, device, host_syncs)
            run = lambda: eager_steps(model, optimizer, x, batch, steps, device, host_syncs)
        with table_precisions(counts):
            seconds = [run() for _ in range(repeats)]
    per_epoch = [s / steps * math.ceil(N_TRAIN / batch) for s in seconds]
    return {"key": key, "batch": batch, "steps": steps, "seconds_per_epoch": min(per_epoch),
            "median_seconds_per_epoch": statistics.median(per_epoch), "ms_per_step": min(seconds) / steps * 1000,
            "float32_table_share": float32_share(counts)}


def child_train(settings: dict, device: torch.device) -> dict:
    x_train, _, source = load_images(settings["data_dir"], settings["n_train"], 1)
    x_host = torch.as_tensor(x_train)
    x_device = x_host.to(device)
    base = build_model(settings, device)
    plan = [(key, 100) for key, _ in TRAIN_VARIANTS]
    plan += [("baseline", b) for b in settings["batches"][1:]]
    plan += [("cuda_graph", b) for b in settings["batches"][1:]]
    rows, errors = [], {}
    for key, batch in plan:
        if device.type != "cuda" and key in NEEDS_CUDA:
            errors[f"{key}@{batch}"] = NEEDS_CUDA[key]
            continue
        steps = max(settings["steps_floor"], settings["steps"] * 100 // batch)
        if key == "baseline" and batch == 100:
            steps = N_TRAIN // batch  # one whole epoch (of the images loaded)
        try:
            rows.append(time_variant(key, base, x_device, x_host, batch, steps, settings["repeats"], device,
                                     settings["warmup_steps"]))
        except Exception as error:  # noqa: BLE001 - recorded, the next variant goes on
            errors[f"{key}@{batch}"] = f"{type(error).__name__}: {str(error)[:300]}"
    return {"data": source, "n_train": len(x_train), "variants": rows, "errors": errors,
            "peak_memory_mb": peak_memory_mb(device)}


def child_compile(settings: dict, device: torch.device) -> dict:
    """torch.compile(mode="reduce-overhead") of the model, with no host syncs and float64 tables."""
    x_train, _, source = load_images(settings["data_dir"], settings["n_train"], 1)
    x = torch.as_tensor(x_train, device=device)
    model = build_model(settings, device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, fused=True)
    compiled = torch.compile(model, mode="reduce-overhead")
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    batch = 100

    def steps(count: int) -> float:
        order = torch.randperm(len(x), device=device)
        sync(device)
        start = time.perf_counter()
        for done, index in enumerate(order.split(batch)):
            if done == count:
                break
            torch.compiler.cudagraph_mark_step_begin()
            out = compiled(x[index], beta=1.0)
            sums.add_(torch.stack([out.loss.detach() * batch, out.reconstruction.detach().sum(),
                                   out.kl.detach().sum()]).double())
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            normalize_gradients_(model.parameters())
            optimizer.step()
        sync(device)
        return time.perf_counter() - start

    with float64_tables():
        compile_seconds = steps(3)  # compiles forward and backward, records the graphs
        count = min(settings["steps"], len(x) // batch)
        seconds = [steps(count) for _ in range(settings["repeats"])]
    assert all(math.isfinite(v) for v in sums.tolist()), "the loss is not finite"
    per_epoch = [s / count * math.ceil(N_TRAIN / batch) for s in seconds]
    return {"data": source, "key": "compile_reduce_overhead", "batch": batch, "steps": count,
            "compile_seconds": compile_seconds, "seconds_per_epoch": min(per_epoch),
            "ms_per_step": min(seconds) / count * 1000}


# --------------------------------------------------------------------------------------------
# (b) The importance-sampled log-likelihood


def timed_log_likelihood(model, images, samples: int, max_rows, device) -> tuple[float, np.ndarray, dict]:
    from vae_core.evaluate import log_likelihood

    counts = {"float32": 0, "float64": 0}
    sync(device)
    start = time.perf_counter()
    with table_precisions(counts):
        values = log_likelihood(model, images, samples, max_rows=max_rows)
    sync(device)
    return time.perf_counter() - start, values, counts


def child_loglik(settings: dict, device: torch.device) -> dict:
    """A max_rows sweep on a few points, then as much of the test set as the time left allows."""
    from vae_core.evaluate import ACCELERATOR_MAX_ROWS, CPU_MAX_ROWS

    _, x_test, source = load_images(settings["data_dir"], 1, settings["n_test"])
    model = build_model(settings, device).eval()
    default_rows = CPU_MAX_ROWS if device.type == "cpu" else ACCELERATOR_MAX_ROWS
    samples = settings["samples"]
    timed_log_likelihood(model, x_test[:1], samples, None, device)  # warm-up
    sweep = []
    for rows in settings["max_rows"]:
        points = x_test[: settings["sweep_points"]]
        seconds, values, counts = timed_log_likelihood(model, points, samples, rows, device)
        sweep.append({"max_rows": rows or default_rows, "points": len(points), "seconds_per_point": seconds / len(points),
                      "float32_table_share": float32_share(counts), "mean_log_likelihood": float(values.mean())})
    best = min(sweep, key=lambda r: r["seconds_per_point"])
    left = settings["deadline"] - time.time() - 5
    points = int(min(settings["test_points"], len(x_test), max(1, left / best["seconds_per_point"] * 0.8)))
    seconds, values, counts = timed_log_likelihood(model, x_test[:points], samples, best["max_rows"], device)
    return {"data": source, "samples": samples, "sweep": sweep, "test_set": {
        "points": points, "of": len(x_test), "max_rows": best["max_rows"], "seconds": seconds,
        "seconds_per_1000_points": seconds / points * 1000, "projected_seconds_for_all": seconds / points * len(x_test),
        "float32_table_share": float32_share(counts), "mean_log_likelihood": float(values.mean()),
        "finite": bool(np.isfinite(values).all())}, "peak_memory_mb": peak_memory_mb(device)}


# --------------------------------------------------------------------------------------------
# (c) The dashboard's computations


def dashboard_timings(model, x_test, x_train, device: torch.device) -> dict:
    """Seconds of each computation, twice: the first call also pays for kernels and caches."""
    from dashboard import gallery, prior_posterior
    from vae_core import projections
    from vae_core.evaluate import posterior_means

    state: dict = {}

    def means():
        state["means"] = posterior_means(model, x_test)["z"]

    computations = {
        "posterior means of the test set": means,
        "PCA map with component means and 500 prior samples": lambda: projections.project(
            state["means"], "PCA", {"components": projections.component_means(model),
                                    "prior_samples": projections.sample_prior(model, 500)}),
        "Pseudo-inputs analysis (responsibilities, order, 8 nearest training images)": lambda: gallery.analyse_mixture(
            model, state["means"], x_train, 8),
        "64 prior samples decoded": lambda: gallery.prior_samples(model, 64, 0),
        "KL(q(z) || p(z)) on 2,000 test images": lambda: prior_posterior.estimate_aggregated_kl(model, x_test),
    }
    timings = {}
    for label, compute in computations.items():
        calls = []
        for _ in range(2):
            sync(device)
            start = time.perf_counter()
            compute()
            sync(device)
            calls.append(time.perf_counter() - start)
        timings[label] = {"first": calls[0], "warm": calls[1]}
    return timings


def child_dashboard(settings: dict, device: torch.device) -> dict:
    """The dashboard's computations on the device, then on the CPU."""
    x_train, x_test, source = load_images(settings["data_dir"], settings["n_train"], settings["n_test"])
    results = {"data": source, "n_test": len(x_test), "n_train": len(x_train), "devices": {}}
    for name in dict.fromkeys([str(device), "cpu"]):
        where = torch.device(name)
        results["devices"][name] = dashboard_timings(build_model(settings, where).eval(), x_test, x_train, where)
    return results


# --------------------------------------------------------------------------------------------
# The CPU reference for (a) and (b)


def child_cpu(settings: dict, device: torch.device) -> dict:
    cpu = torch.device("cpu")
    x_train, x_test, source = load_images(settings["data_dir"], settings["n_train"], settings["cpu_points"])
    base = build_model(settings, cpu)
    train = time_variant("baseline", base, torch.as_tensor(x_train), None, 100, settings["cpu_steps"], 1, cpu,
                         settings["warmup_steps"])
    model = build_model(settings, cpu).eval()
    timed_log_likelihood(model, x_test[:1], settings["samples"], None, cpu)  # warm-up
    seconds, _, _ = timed_log_likelihood(model, x_test, settings["samples"], None, cpu)
    return {"data": source, "threads": torch.get_num_threads(), "train": train,
            "log_likelihood_seconds_per_point": seconds / len(x_test), "points": len(x_test)}


CHILDREN = {"train": child_train, "loglik": child_loglik, "dashboard": child_dashboard, "cpu": child_cpu,
            "compile": child_compile}


# --------------------------------------------------------------------------------------------
# The parent: run the children, report


def run_child(name: str, args, settings: dict, log) -> dict:
    """One part in a fresh process (a CUDA fault or a hung compile stops only that part)."""
    if name == "compile" and not args.device.startswith("cuda"):
        return {"error": 'not run: mode="reduce-overhead" compiles CUDA graphs'}
    left = settings["deadline"] - time.time()
    limit = min(LIMITS[name] * (0.5 if args.quick else 1), left)
    if limit < 10:
        return {"error": f"skipped: {left:.0f} s of the --budget left"}
    payload = json.dumps(settings | {"deadline": time.time() + limit})
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--device", args.device,
               "--settings", payload]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit, cwd=ROOT, check=False)
        output, status = done.stdout, done.returncode
        log.write(f"===== {name} (exit {status}, {time.perf_counter() - started:.1f} s)\n{done.stderr}\n")
    except subprocess.TimeoutExpired as expired:
        log.write(f"===== {name} timed out after {limit:.0f} s\n{expired.stderr or ''}\n")
        return {"error": f"timed out after {limit:.0f} s"}
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    if status != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {status}: {tail[0][:300]}"}
    result = json.loads(lines[-1][len("RESULT "):])
    result["wall_seconds"] = time.perf_counter() - started
    return result


def machine(args) -> dict:
    from benchmarks.report_files import cpu_name

    info = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "device": args.device, "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    if args.device.startswith("cuda") and torch.cuda.is_available():
        device = torch.device(args.device)
        info |= {"gpu": torch.cuda.get_device_name(device), "cuda": torch.version.cuda,
                 "gpu_memory_gb": round(torch.cuda.get_device_properties(device).total_memory / 1e9, 1)}
    return info


def _f(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def report(results: dict) -> str:
    """The Markdown table of everything measured, with the machine it came from."""
    info, parts = results["machine"], results["parts"]
    where = f"{info.get('gpu', info['device'])}" + (f" (CUDA {info['cuda']})" if info.get("cuda") else "")
    command = f"benchmarks/gpu_speed.py --device {info['device']}{' --quick' if results['quick'] else ''}"
    lines = [f"# GPU speed: {where}", "",
             (f"`{command}`, {info['date']}, torch {info['torch']}, CPU {info['cpu']} ({info['cores']} cores). "
              f"Data: {results.get('data', '?')}. Model: {results['model']}."), ""]
    train, compiled, cpu = parts["train"], parts["compile"], parts["cpu"]
    lines += ["## (a) Training, seconds per epoch of 50,000 images", "",
              "| variant | batch | s/epoch | ms/step | steps timed | vs baseline at its batch | float32 tables |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    labels = dict(TRAIN_VARIANTS) | {
        "compile_reduce_overhead": 'torch.compile(mode="reduce-overhead") (no host syncs, float64 tables)'}
    rows = list(train.get("variants", [])) + ([compiled] if "seconds_per_epoch" in compiled else [])
    baselines = {r["batch"]: r["seconds_per_epoch"] for r in rows if r["key"] == "baseline"}
    for r in rows:
        baseline = baselines.get(r["batch"])
        speedup = f"{baseline / r['seconds_per_epoch']:.2f}x" if baseline else "—"
        lines.append(f"| {labels[r['key']]} | {r['batch']} | {r['seconds_per_epoch']:.3g} | {r['ms_per_step']:.3g} | "
                     f"{r['steps']} | {speedup} | {_f(r.get('float32_table_share'), 2)} |")
    if "compile_seconds" in compiled:
        lines.append(f"\nCompiling took {compiled['compile_seconds']:.1f} s (3 steps).")
    if "train" in cpu and 100 in baselines:
        lines.append(f"\nThe CPU ({cpu['threads']} threads), train()'s step at batch 100: "
                     f"{cpu['train']['seconds_per_epoch']:.3g} s/epoch over {cpu['train']['steps']} steps, "
                     f"so the {info['device']} trains **{cpu['train']['seconds_per_epoch'] / baselines[100]:.1f}x** as fast.")
    loglik = parts["loglik"]
    lines += ["", f"## (b) Test log-likelihood, S = {results['settings']['samples']}", "",
              "| points | max_rows | s/point | s per 1,000 points | float32 tables | mean log p(x) |",
              "|---:|---:|---:|---:|---:|---:|"]
    for r in loglik.get("sweep", []):
        lines.append(f"| {r['points']} | {r['max_rows']:,} | {r['seconds_per_point']:.3g} | "
                     f"{r['seconds_per_point'] * 1000:.3g} | {_f(r['float32_table_share'], 2)} | "
                     f"{r['mean_log_likelihood']:.2f} |")
    test = loglik.get("test_set")
    if test:
        lines.append(f"| **{test['points']:,} of {test['of']:,}** | {test['max_rows']:,} | "
                     f"{test['seconds'] / test['points']:.3g} | {test['seconds_per_1000_points']:.3g} | "
                     f"{_f(test['float32_table_share'], 2)} | {test['mean_log_likelihood']:.2f} |")
        lines.append(f"\nThe whole test set: {test['projected_seconds_for_all']:.1f} s"
                     + (" (measured)" if test["points"] == test["of"] else " (projected from the points measured)")
                     + ".")
        if "log_likelihood_seconds_per_point" in cpu:
            lines.append(f"The CPU: {cpu['log_likelihood_seconds_per_point']:.3g} s/point over {cpu['points']} "
                         f"points, so the {info['device']} evaluates **"
                         f"{cpu['log_likelihood_seconds_per_point'] * 1000 / test['seconds_per_1000_points']:.1f}x** as fast.")
    dash = parts["dashboard"]
    if "devices" in dash:
        names = list(dash["devices"])
        title = (f"## (c) Dashboard computations ({dash['n_test']:,} test, {dash['n_train']:,} training images), "
                 "seconds (warm; first call)")
        lines += ["", title, "",
                  "| computation | " + " | ".join(names) + (" | CPU / device |" if len(names) > 1 else " |"),
                  "|---|" + "---:|" * (len(names) + (len(names) > 1))]
        for label in dash["devices"][names[0]]:
            cells = [dash["devices"][n][label] for n in names]
            row = " | ".join(f"{c['warm']:.3g} ({c['first']:.3g})" for c in cells)
            ratio = f" | {cells[1]['warm'] / cells[0]['warm']:.1f}x" if len(cells) > 1 else ""
            lines.append(f"| {label} | {row}{ratio} |")
    failed = {name: part["error"] for name, part in parts.items() if "error" in part}
    failed |= {f"train {key}": message for key, message in train.get("errors", {}).items()}
    if failed:
        lines += ["", "## Not measured", ""] + [f"- {name}: {message}" for name, message in failed.items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="a tiny subset and few steps: checks the code")
    parser.add_argument("--out", type=Path, help="folder for gpu_speed.json, gpu_speed.md and gpu_speed.log")
    parser.add_argument("--data-dir", help="dataset folder (default: $VAMPVIZ_DATA_DIR)")
    parser.add_argument("--checkpoint", help="time a trained static-MNIST checkpoint instead of a new model")
    parser.add_argument("--budget", type=float, help="seconds for the whole run (default: 220, quick: 55)")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        device = torch.device(args.device)
        print("RESULT " + json.dumps(CHILDREN[args.child](json.loads(args.settings), device)), flush=True)
        return 0
    if args.out is None:
        parser.error("--out is required")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA device")

    started = time.time()
    budget = args.budget or (55 if args.quick else 220)
    settings = (QUICK if args.quick else FULL) | {
        "data_dir": args.data_dir, "checkpoint": args.checkpoint, "deadline": started + budget}
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"tool": "benchmarks/gpu_speed.py", "quick": args.quick, "machine": machine(args),
               "model": args.checkpoint or "VAE + VampPrior, K = 500, gated MLP 2x300, latent 40 (new, seed 0)",
               "settings": {k: v for k, v in settings.items() if k != "deadline"}, "parts": {}}
    with open(args.out / "gpu_speed.log", "w") as log:
        for name in CHILDREN:
            print(f"{name} ...", flush=True)
            results["parts"][name] = part = run_child(name, args, settings, log)
            if part.get("data") and "data" not in results:
                results["data"] = part["data"]
            if "error" in part:
                print(f"  {name}: {part['error']}", flush=True)
    results["seconds"] = round(time.time() - started, 1)
    (args.out / "gpu_speed.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = report(results)
    (args.out / "gpu_speed.md").write_text(markdown)
    print(markdown)
    print(f"wrote {args.out}/gpu_speed.json, gpu_speed.md and gpu_speed.log ({results['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
