#!/usr/bin/env python
"""Speed benchmarks: VAE + VampPrior training and importance-sampled log-likelihood.

    python benchmarks/speed.py             # full run (3-4 min on 2 CPU cores); writes results
    python benchmarks/speed.py --quick     # < 1 min smoke run; prints only (add --write to record)
    python benchmarks/speed.py --device cuda

The measured model is the paper's: VAE with a VampPrior, K = 500 pseudo-inputs, gated MLP 2 x 300,
40 latent units, Bernoulli pixels, 28 x 28 binary images, batch 100. The training set is random
binary data of the Caltech 101 Silhouettes size (4,100 images; speed does not depend on the pixel
values), or the real file with --dataset caltech101 --data-dir DIR.

What is measured (each in a fresh subprocess, so peak memory is per measurement):

1. Training seconds per epoch, the library's step (forward, backward, Adam) as `train()` runs it,
   without validation or checkpoints. Its FLOP lower bound is the matmul FLOPs of one epoch
   (counted by torch.utils.flop_counter: forward and backward of the data batch, the K
   pseudo-inputs' encoder pass at every step and the mixture density) divided by the best
   dense-matmul throughput measured on this machine. Optimisations are timed in rotation with the
   baseline in the same process, so each ratio compares like with like on a shared machine:
   (a) the pseudo-inputs batched with the data through the encoder, (b) larger batches,
   (c) torch.compile, (d) torch.set_num_threads, plus (e) fused Adam (train() uses it now; the
   unfused optimiser it replaced is timed), (f) gated layers with h and g in one matmul and (g)
   h and g stored as one parameter instead of two concatenated at every step.
   Timings are the best of a few repetitions: on a shared machine other jobs only add time.
2. Test log-likelihood throughput at S = 5000: `vae_core.evaluate.log_likelihood` against the
   original evaluation's loop (per point, 50 full forward passes of 100 samples each, each
   re-encoding the K pseudo-inputs), its FLOP bound, and projections to 1,000 and 10,000 points.
3. Peak memory (ru_maxrss of a fresh process; torch.cuda.max_memory_allocated on CUDA).

Results go to benchmarks/results.json (a list of records, "kind": "speed"; other kinds are kept) and
to the "Speed" section of benchmarks/RESULTS.md (between <!-- speed:start --> and
<!-- speed:end -->; the rest of the file is left alone).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

RESULTS_JSON = ROOT / "benchmarks" / "results.json"
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
KIND = "speed"  # results.json holds other benchmarks' records too, told apart by "kind"
MD_START, MD_END = "<!-- speed:start -->", "<!-- speed:end -->"

N_TRAIN = 4100  # Caltech 101 Silhouettes' training set
IMAGE_SHAPE = (1, 28, 28)
BATCH = 100
SAMPLES = 5000  # importance samples per test point
LOOP_BATCH = 100  # the original evaluation: S samples in forward passes of 100
STATIC_MNIST_TEST = 10_000
# The lead's anchors for this machine (authors' code and its FLOP bound), for comparison
AUTHORS_SECONDS_PER_EPOCH = 1.66
GUIDE_BOUND_SECONDS_PER_EPOCH = 0.54
AUTHORS_SECONDS_PER_1000_POINTS = 550.0
GUIDE_BOUND_SECONDS_PER_1000_POINTS = 23.0
TARGET_FRACTION_OF_BOUND = 0.85
TARGET_EVAL_SPEEDUP = 20.0
TARGET_EVAL_WITHIN_BOUND = 1.6

REFERENCE_SHAPE = (600, 784, 300)  # the guide's example: batch + K pseudo-inputs through the first layer
# representative matmul shapes (M, K, N): rows x inner x outputs
MATMUL_SHAPES = [
    ("data batch, first encoder layer", (100, 784, 300)),
    ("pseudo-inputs, first encoder layer", (500, 784, 300)),
    ("data + pseudo-inputs batched", (600, 784, 300)),
    ("decoder output layer, batch", (100, 300, 784)),
    ("weight gradient, first layer", (784, 600, 300)),
    ("evaluator decoder output layer", (2000, 300, 784)),
    ("evaluator decoder hidden layer", (2000, 300, 300)),
    ("large square", (1024, 1024, 1024)),
]


# --------------------------------------------------------------------------------------------
# Helpers shared by the children


def _torch():
    import torch

    return torch


def sync(device) -> None:
    torch = _torch()
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_config():
    from vae_core.models import ModelConfig

    return ModelConfig(model="vae", prior="vampprior", architecture="mlp", likelihood="bernoulli",
                       dataset="caltech101", input_shape=IMAGE_SHAPE, latent_dim=40, hidden=300, components=500,
                       pseudo_init_mean=0.5, pseudo_init_std=0.02)


def build(device, seed: int = 0):
    torch = _torch()
    from vae_core.models import build_model

    torch.manual_seed(seed)
    return build_model(model_config()).to(device)


def load_images(args, split: str, count: int | None, device):
    """(count, 1, 28, 28) binary float32 images: random, or Caltech 101's `split` with --dataset."""
    torch = _torch()
    if args.dataset == "caltech101":
        from vae_core.data import load_dataset

        data = load_dataset("caltech101", args.data_dir)
        images = {"train": data.x_train, "test": data.x_test}[split]
        images = torch.as_tensor(images[:count], dtype=torch.float32)
    else:
        generator = torch.Generator().manual_seed(1 if split == "train" else 2)
        size = count if count is not None else N_TRAIN
        images = (torch.rand(size, *IMAGE_SHAPE, generator=generator) < 0.5).float()
    return images.to(device)


def rss_mb() -> float:
    """Current resident set size (Linux /proc), MB."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


def peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 2**20 if sys.platform == "darwin" else kb / 2**10  # bytes on macOS, KiB on Linux


def count_flops(fn) -> int:
    """Matmul FLOPs (2 per multiply-add, forward and backward) of calling fn()."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def median(values):
    return statistics.median(values) if values else float("nan")


def best(values):
    """The least-disturbed repetition: on a machine shared with other jobs, noise only adds time."""
    return min(values) if values else float("nan")


# --------------------------------------------------------------------------------------------
# Training variants


def library_forward(model, x, beta=1.0):
    return model(x, beta=beta)


def batched_forward(model, x, beta=1.0):
    """(a) VAE.forward with the K pseudo-inputs and the batch through the encoder in one call."""
    from vae_core.distributions import (
        gaussian_log_prob,
        gaussian_mixture_log_prob,
        reparameterize,
    )
    from vae_core.models import _output

    torch = _torch()
    b = x.shape[0]
    means, logvars = model.encoder(torch.cat([x, model.prior.pseudo_inputs]))
    mean, logvar = means[:b], logvars[:b]
    z = reparameterize(mean, logvar)
    reconstruction = model.likelihood.log_prob(x, model.decoder(z))
    kl = gaussian_log_prob(z, mean, logvar) - gaussian_mixture_log_prob(z, means[b:], logvars[b:])
    return _output(reconstruction, kl, beta)


def _two_matmul_gated_forward(self, x):
    """GatedDense.forward as first written: h and g as two matmuls (row views of the same parameters)."""
    torch = _torch()
    (h_weight, g_weight), (h_bias, g_bias) = self.weight.chunk(2), self.bias.chunk(2)
    linear = torch.nn.functional.linear
    return linear(x, h_weight, h_bias) * torch.sigmoid(linear(x, g_weight, g_bias))


def _concatenating_gated_forward(self, x):
    """GatedDense.forward before it stored h and g in one parameter: one matmul, but the two weights
    (separate parameters then; row views of the one parameter here) concatenated at every call."""
    torch = _torch()
    (h_weight, g_weight), (h_bias, g_bias) = self.weight.chunk(2), self.bias.chunk(2)
    weight, bias = torch.cat([h_weight, g_weight]), torch.cat([h_bias, g_bias])
    return torch.nn.functional.glu(torch.nn.functional.linear(x, weight, bias), dim=-1)


@contextlib.contextmanager
def patched(owner, name: str, replacement, enabled: bool):
    """Temporarily replace `owner.name` with `replacement` (when `enabled`)."""
    original = getattr(owner, name)
    if enabled:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


def gated_forward(replacement=None):
    """GatedDense.forward replaced by `replacement` (an earlier form of it), if one is given."""
    from vae_core.networks import GatedDense

    return patched(GatedDense, "forward", replacement, replacement is not None)


@contextlib.contextmanager
def threads(count: int | None):
    torch = _torch()
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TrainVariant:
    def __init__(self, name: str, key: str, batch_size: int = BATCH, forward=library_forward,
                 fused_adam: bool = True, gates=None, num_threads: int | None = None):
        self.name, self.key, self.batch_size, self.forward = name, key, batch_size, forward
        self.fused_adam, self.gates, self.num_threads = fused_adam, gates, num_threads
        self.model = self.optimizer = None
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []

    def setup(self, base_model):
        torch = _torch()
        self.model = copy.deepcopy(base_model)
        self.model.prior._encoder = (self.model.encoder,)  # deepcopy keeps the reference consistent; be explicit
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=5e-4, fused=self.fused_adam)  # as train()

    def context(self):
        stack = contextlib.ExitStack()
        stack.enter_context(gated_forward(self.gates))
        stack.enter_context(threads(self.num_threads))
        return stack


def run_epoch(variant: TrainVariant, x, device, max_steps: int | None) -> tuple[float, float]:
    """One epoch (or its first max_steps steps, scaled to an epoch) as train() runs it: (wall, cpu)."""
    torch = _torch()
    model, optimizer, n = variant.model, variant.optimizer, len(x)
    steps_per_epoch = math.ceil(n / variant.batch_size)
    model.train()
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    order = torch.randperm(n, device=device)
    done = 0
    sums = [0.0, 0.0, 0.0]
    for batch in order.split(variant.batch_size):
        out = variant.forward(model, x[batch], beta=1.0)
        sums[0] += out.loss.item() * len(batch)  # the same host syncs as train()
        sums[1] += out.reconstruction.sum().item()
        sums[2] += out.kl.sum().item()
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        done += 1
        if max_steps and done >= max_steps:
            break
    sync(device)
    scale = steps_per_epoch / done
    return (time.perf_counter() - wall) * scale, (time.process_time() - cpu) * scale


def epoch_flops(variant: TrainVariant, x) -> int:
    """Matmul FLOPs of one epoch: full batches plus the last, smaller one."""
    n, b = len(x), variant.batch_size
    model = copy.deepcopy(variant.model)
    model.prior._encoder = (model.encoder,)

    def step(size):
        def run():
            out = variant.forward(model, x[:size], beta=1.0)
            out.loss.backward()
        with variant.context():
            return count_flops(run)

    full, rest = divmod(n, b)
    return full * step(b) + (step(rest) if rest else 0)


MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_addmm_activation"}


def step_profile(variant: TrainVariant, x, device, steps: int) -> dict:
    """Where a training step's time goes: self time of the matmul kernels against everything else
    (elementwise ops, autograd, the optimiser), under torch.profiler (which inflates the many small
    ops a little, so the matmul share is a lower bound)."""
    from torch.profiler import ProfilerActivity, profile

    with variant.context(), profile(activities=[ProfilerActivity.CPU]) as prof:
        run_epoch(variant, x, device, steps)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS)
    return {"steps": steps, "matmul_ms_per_step": matmul / steps / 1000, "other_ms_per_step": (total - matmul) / steps / 1000}


def measure_matmul(device, seconds: float) -> list[dict]:
    torch = _torch()
    rows = []
    for label, (m, k, n) in MATMUL_SHAPES:
        a = torch.randn(m, k, device=device)
        b = torch.randn(k, n, device=device)
        for _ in range(3):
            a @ b
        sync(device)
        times = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(times) < 5:
            start = time.perf_counter()
            a @ b
            sync(device)
            times.append(time.perf_counter() - start)
        best = min(times)  # the machine's capability: the least-disturbed call
        rows.append({"label": label, "shape": [m, k, n], "gflops": 2 * m * k * n / best / 1e9,
                     "gflops_median": 2 * m * k * n / median(times) / 1e9})
    return rows


def child_train(args, device) -> dict:
    torch = _torch()
    result = {"matmul": measure_matmul(device, 0.05 if args.quick else 0.3)}
    if device.type == "cpu":  # one core's peak: robust to other jobs on the machine (see the report)
        with threads(1):
            result["matmul_one_thread"] = measure_matmul(device, 0.05 if args.quick else 0.2)
    x = load_images(args, "train", N_TRAIN, device)
    base = build(device)
    cpu = device.type == "cpu"
    cores = os.cpu_count() or 1
    variants = [
        TrainVariant("baseline: train()'s step (fused Adam), batch 100", "baseline"),
        TrainVariant("(a) pseudo-inputs batched with the data in one encoder call", "batched", forward=batched_forward),
        TrainVariant("(b) batch 500", "batch500", batch_size=500),
    ]
    if not args.quick:
        variants += [
            TrainVariant("(b) batch 200", "batch200", batch_size=200),
            TrainVariant("(b) batch 1000", "batch1000", batch_size=1000),
            TrainVariant("(e) unfused Adam (train() before it used fused=True)", "unfused_adam", fused_adam=False),
            TrainVariant("(f) gated layers as two matmuls (GatedDense before it fused h and g)", "split_gates",
                         gates=_two_matmul_gated_forward),
            TrainVariant("(g) h and g weights concatenated at every step (GatedDense before it stored them as "
                         "one parameter)", "concatenated_gates", gates=_concatenating_gated_forward),
        ]
        if cpu:
            variants += [TrainVariant(f"(d) torch.set_num_threads({t})", f"threads{t}", num_threads=t)
                         for t in sorted({1, cores} - {torch.get_num_threads()})]
    for variant in variants:
        variant.setup(base)
    max_steps = 6 if args.quick else None
    rounds = 2 if args.quick else args.rounds
    for variant in variants:  # warm-up (allocator, oneDNN kernels); not timed
        with variant.context():
            run_epoch(variant, x, device, 2)
    for _ in range(rounds):
        for variant in variants:  # rotation: every variant sees the same machine load on average
            with variant.context():
                wall, cpu_s = run_epoch(variant, x, device, max_steps)
            variant.seconds.append(wall)
            variant.cpu_seconds.append(cpu_s)
    if not args.quick and device.type == "cpu":
        result["step_profile"] = step_profile(variants[0], x, device, steps=10)
    result["variants"] = [{
        "key": v.key, "name": v.name, "batch_size": v.batch_size, "threads": v.num_threads or torch.get_num_threads(),
        "seconds_per_epoch": best(v.seconds), "median_seconds_per_epoch": median(v.seconds), "samples": v.seconds,
        "cpu_seconds_per_epoch": best(v.cpu_seconds),
        "steps_per_epoch": math.ceil(N_TRAIN / v.batch_size), "flops_per_epoch": epoch_flops(v, x),
        "partial_epochs": bool(max_steps),
    } for v in variants]
    return result


def child_compile(args, device) -> dict:
    """(c) torch.compile of the model, timed in rotation with the eager baseline."""
    torch = _torch()
    x = load_images(args, "train", N_TRAIN, device)
    base = build(device)
    eager = TrainVariant("eager", "eager")
    compiled = TrainVariant("(c) torch.compile(model)", "compiled")
    eager.setup(base)
    compiled.setup(base)
    module = torch.compile(compiled.model)
    compiled.forward = lambda model, xb, beta=1.0: module(xb, beta=beta)
    start = time.perf_counter()
    run_epoch(compiled, x, device, 2)  # compiles forward and backward
    compile_seconds = time.perf_counter() - start
    run_epoch(eager, x, device, 2)
    max_steps = 6 if args.quick else None
    for _ in range(2 if args.quick else args.rounds):
        for variant in (eager, compiled):
            wall, _ = run_epoch(variant, x, device, max_steps)
            variant.seconds.append(wall)
    return {"compile_seconds": compile_seconds, "eager": best(eager.seconds), "compiled": best(compiled.seconds),
            "eager_samples": eager.seconds, "compiled_samples": compiled.seconds}


# --------------------------------------------------------------------------------------------
# Log-likelihood


def loop_log_likelihood(model, images, num_samples: int = SAMPLES, batch: int = LOOP_BATCH):
    """The original evaluation: per point, S/batch full forward passes of `batch` copies of it.

    Each pass is the whole model (encoder, decoder, and the VampPrior re-encoding its K
    pseudo-inputs); log w = log p(x|z) + log p(z) - log q(z|x) is the single-sample ELBO.
    """
    torch = _torch()
    results = []
    with torch.no_grad():
        for x in images:
            copies = x.expand(batch, *x.shape)
            weights = torch.cat([model(copies).elbo for _ in range(num_samples // batch)]).double()
            results.append(torch.logsumexp(weights, 0) - math.log(len(weights)))
    return torch.stack(results).cpu().numpy()


@contextlib.contextmanager
def evaluator_before(enabled: bool):
    """The evaluator before this benchmark's change: the mixture table always in float64 and
    gated layers as two matmuls."""
    from vae_core import distributions

    with (patched(distributions, "FLOAT32_TOLERANCE", -math.inf, enabled),
          gated_forward(_two_matmul_gated_forward if enabled else None)):
        yield


def child_eval(args, device) -> dict:
    torch = _torch()
    from vae_core.evaluate import log_likelihood

    points = 3 if args.quick else args.eval_points
    loop_points = 1 if args.quick else args.loop_points
    images = load_images(args, "test", max(points, loop_points), device)
    model = build(device).eval()
    result = {"points": points, "loop_points": loop_points, "samples": SAMPLES}

    def timed(fn):
        sync(device)
        start, cpu = time.perf_counter(), time.process_time()
        value = fn()
        sync(device)
        return time.perf_counter() - start, value, time.process_time() - cpu

    numpy_images = images.cpu().numpy() if device.type == "cpu" else images
    log_likelihood(model, numpy_images[:1], SAMPLES)  # warm-up
    # None: the library's default; "before": the evaluator as it was (float64 mixture, two-matmul gates)
    rows = [None] if args.quick else [None, "before", 1000, 5000, 10000]
    timings = {r: [] for r in rows}
    cpu_timings = []
    estimates = {}
    for _ in range(1 if args.quick else 2):
        for r in rows:
            kwargs = {} if r in (None, "before") else {"max_rows": r}
            with evaluator_before(r == "before"):
                seconds, values, cpu = timed(lambda kw=kwargs: log_likelihood(model, numpy_images[:points], SAMPLES, **kw))
            timings[r].append(seconds / points)
            estimates[r] = values
            if r is None:
                cpu_timings.append(cpu / points)
    result["evaluator_seconds_per_point"] = best(timings[None])
    result["evaluator_samples"] = timings[None]
    result["evaluator_cpu_seconds_per_point"] = best(cpu_timings)
    result["max_rows_seconds_per_point"] = {str(r): best(t) for r, t in timings.items() if r is not None}

    loop_runs = [timed(lambda: loop_log_likelihood(model, images[:loop_points])) for _ in range(1 if args.quick else 2)]
    loop_seconds, loop_values, loop_cpu = min(loop_runs, key=lambda run: run[0])  # the least-disturbed run
    result["loop_seconds_per_point"] = loop_seconds / loop_points
    result["loop_samples"] = [run[0] / loop_points for run in loop_runs]
    result["loop_cpu_seconds_per_point"] = loop_cpu / loop_points
    if device.type == "cpu":  # one thread, CPU time: robust to other jobs (compared with one core's peak)
        with threads(1):
            few = max(1, min(points, 10 if not args.quick else 2))
            result["one_thread_evaluator_cpu_seconds_per_point"] = timed(
                lambda: log_likelihood(model, numpy_images[:few], SAMPLES))[2] / few
            few_loop = max(1, min(loop_points, 4 if not args.quick else 1))
            result["one_thread_loop_cpu_seconds_per_point"] = timed(
                lambda: loop_log_likelihood(model, images[:few_loop]))[2] / few_loop
    ours = estimates[None][:loop_points]
    result["loop_mean_ll"] = float(loop_values.mean())
    result["evaluator_mean_ll_same_points"] = float(ours.mean())

    # FLOPs: the evaluator per point (the frozen prior's one-off K-point encoding separately)
    frozen = count_flops(lambda: model.prior.frozen())
    with torch.no_grad():
        one_point = count_flops(lambda: log_likelihood(model, numpy_images[:1], SAMPLES))
        loop_pass = count_flops(lambda: model(images[:1].expand(LOOP_BATCH, *images.shape[1:])))
    result["evaluator_flops_per_point"] = one_point - frozen
    result["evaluator_flops_once"] = frozen
    result["loop_flops_per_point"] = loop_pass * (SAMPLES // LOOP_BATCH)
    return result


# --------------------------------------------------------------------------------------------
# Peak memory, one fresh process per measurement


def child_memory(args, device) -> dict:
    torch = _torch()
    from vae_core.evaluate import log_likelihood

    what = args.memory
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if what == "train":
        x = load_images(args, "train", N_TRAIN, device)
        variant = TrainVariant("baseline", "baseline")
        variant.setup(build(device))
        before = rss_mb()
        run_epoch(variant, x, device, 5 if args.quick else None)
    else:
        images = load_images(args, "test", 4, device)
        model = build(device).eval()
        before = rss_mb()
        if what == "eval":
            log_likelihood(model, images.cpu().numpy() if device.type == "cpu" else images, SAMPLES)
        else:
            loop_log_likelihood(model, images[:1])
    result = {"what": what, "peak_rss_mb": peak_rss_mb(), "rss_before_mb": before}
    if device.type == "cuda":
        result["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


CHILDREN = {"train": child_train, "compile": child_compile, "eval": child_eval, "memory": child_memory}


def run_child(args) -> None:
    torch = _torch()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    result = CHILDREN[args.child](args, device)
    print("RESULT " + json.dumps(result))


# --------------------------------------------------------------------------------------------
# The parent: orchestrate, report, record


def spawn(args, child: str, timeout: float, extra: list[str] = (), env: dict | None = None) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", child, "--device", args.device,
               "--dataset", args.dataset, "--rounds", str(args.rounds), "--eval-points", str(args.eval_points),
               "--loop-points", str(args.loop_points), *extra]
    if args.quick:
        command.append("--quick")
    if args.threads:
        command += ["--threads", str(args.threads)]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False,
                              env=os.environ | (env or {}))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {done.returncode}: {tail[0][:300]}"}
    result = json.loads(lines[-1][len("RESULT "):])
    result["child_wall_seconds"] = time.perf_counter() - started
    return result


def machine_info(args) -> dict:
    from benchmarks.report_files import cpu_name

    torch = _torch()
    info = {
        "cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
        "threads": args.threads or torch.get_num_threads(), "device": args.device,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
    }
    if args.device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(args.device))
    with contextlib.suppress(OSError):
        info["load_average_start"] = [round(v, 2) for v in os.getloadavg()]
    return info


def summarise(args, info, train, compiled, evaluation, memory) -> tuple[list[dict], list[str]]:
    """Records for results.json and the lines of the report (printed and written to RESULTS.md)."""
    records, lines, verdict = [], [], []
    mode = "quick" if args.quick else "full"

    def record(benchmark, metric, value, unit, **extra):
        records.append({"kind": KIND, "mode": mode, "benchmark": benchmark, "metric": metric, "value": value,
                        "unit": unit, **extra, "machine": info})

    peak = float("nan")
    if "error" not in train:
        peak = max(row["gflops"] for row in train["matmul"])
        lines += ["### Dense matmul throughput", "", "| shape (M x K x N) | what | GFLOP/s (best) | GFLOP/s (median) |",
                  "|---|---|---:|---:|"]
        for row in train["matmul"]:
            m, k, n = row["shape"]
            lines.append(f"| {m} x {k} x {n} | {row['label']} | {row['gflops']:.1f} | {row['gflops_median']:.1f} |")
            record("matmul", "gflops", row["gflops"], "GFLOP/s", shape=row["shape"], label=row["label"])
        lines += ["", f"Peak (the bound's denominator): **{peak:.1f} GFLOP/s**.", ""]

        variants = {v["key"]: v for v in train["variants"]}
        base = variants["baseline"]
        bound = base["flops_per_epoch"] / (peak * 1e9)
        fraction = bound / base["seconds_per_epoch"]
        reference = next(row for row in train["matmul"] if row["shape"] == list(REFERENCE_SHAPE))
        reference_bound = base["flops_per_epoch"] / (reference["gflops"] * 1e9)
        verdict.append(f"- training: **{base['seconds_per_epoch']:.2f} s/epoch** = {fraction:.0%} of the FLOP bound "
                       f"({bound:.2f} s; target {TARGET_FRACTION_OF_BOUND:.0%}: "
                       f"{'met' if fraction >= TARGET_FRACTION_OF_BOUND else 'not met'}); "
                       f"{AUTHORS_SECONDS_PER_EPOCH / base['seconds_per_epoch']:.2f}x the authors' "
                       f"{AUTHORS_SECONDS_PER_EPOCH} s/epoch")
        lines += ["### Training (VAE + VampPrior, K = 500, MLP 2 x 300, 4,100 images)", "",
                  f"- baseline: **{base['seconds_per_epoch']:.3f} s/epoch** (batch 100, "
                  f"{base['threads']} threads; {base['cpu_seconds_per_epoch']:.3f} CPU-s/epoch); "
                  f"authors' code on this machine per the guide: {AUTHORS_SECONDS_PER_EPOCH} s/epoch "
                  f"({AUTHORS_SECONDS_PER_EPOCH / base['seconds_per_epoch']:.2f}x)",
                  f"- matmul FLOPs per epoch: {base['flops_per_epoch'] / 1e9:.1f} GFLOP "
                  f"({base['flops_per_epoch'] / base['steps_per_epoch'] / 1e9:.3f} GFLOP/step, forward + backward, "
                  "K pseudo-inputs included)",
                  f"- FLOP lower bound: **{bound:.3f} s/epoch** (guide: {GUIDE_BOUND_SECONDS_PER_EPOCH}); "
                  f"fraction of the bound reached: **{fraction:.0%}** (target {TARGET_FRACTION_OF_BOUND:.0%}); "
                  f"with the throughput of the {' x '.join(map(str, REFERENCE_SHAPE))} matmul alone "
                  f"({reference['gflops']:.0f} GFLOP/s) the bound is {reference_bound:.3f} s/epoch, "
                  f"{reference_bound / base['seconds_per_epoch']:.0%} reached", "",
                  "| variant | s/epoch | speed-up vs baseline | GFLOP/epoch | fraction of its bound |",
                  "|---|---:|---:|---:|---:|"]
        record("train", "seconds_per_epoch", base["seconds_per_epoch"], "s", variant="baseline",
               samples=base["samples"], cpu_seconds_per_epoch=base["cpu_seconds_per_epoch"])
        record("train", "flop_bound_seconds_per_epoch", bound, "s", flops_per_epoch=base["flops_per_epoch"],
               peak_gflops=peak)
        record("train", "fraction_of_flop_bound", fraction, "ratio",
               reference_shape_bound_seconds=reference_bound, reference_shape_gflops=reference["gflops"])
        for v in train["variants"]:
            speedup = base["seconds_per_epoch"] / v["seconds_per_epoch"]
            own_bound = v["flops_per_epoch"] / (peak * 1e9) / v["seconds_per_epoch"]
            lines.append(f"| {v['name']} | {v['seconds_per_epoch']:.3f} | {speedup:.2f}x | "
                         f"{v['flops_per_epoch'] / 1e9:.1f} | {own_bound:.0%} |")
            record("train", "speedup_vs_baseline", speedup, "ratio", variant=v["key"], name=v["name"],
                   seconds_per_epoch=v["seconds_per_epoch"], samples=v["samples"], batch_size=v["batch_size"],
                   threads=v["threads"], flops_per_epoch=v["flops_per_epoch"])
        if compiled is not None:
            if "error" in compiled:
                lines.append(f"| (c) torch.compile(model) | skipped: {compiled['error']} | | | |")
                record("train", "speedup_vs_baseline", None, "ratio", variant="compile", error=compiled["error"])
            else:
                speedup = compiled["eager"] / compiled["compiled"]
                lines.append(f"| (c) torch.compile(model) (vs eager {compiled['eager']:.3f} s in its own process; "
                             f"compiling took {compiled['compile_seconds']:.0f} s) | {compiled['compiled']:.3f} | "
                             f"{speedup:.2f}x | | |")
                record("train", "speedup_vs_baseline", speedup, "ratio", variant="compile",
                       seconds_per_epoch=compiled["compiled"], eager_seconds_per_epoch=compiled["eager"],
                       compile_seconds=compiled["compile_seconds"])
        one_core = variants.get("threads1")
        if train.get("matmul_one_thread") and one_core:
            peak1 = max(row["gflops"] for row in train["matmul_one_thread"])
            bound1 = base["flops_per_epoch"] / (peak1 * 1e9)
            lines += ["", f"One core, robust to the machine's other jobs: 1 thread, {one_core['cpu_seconds_per_epoch']:.3f} "
                      f"CPU-s/epoch ({one_core['seconds_per_epoch']:.3f} s wall) against one core's matmul peak of "
                      f"{peak1:.1f} GFLOP/s (bound {bound1:.3f} s): **{bound1 / one_core['cpu_seconds_per_epoch']:.0%} "
                      "of the one-core bound**."]
            verdict[-1] += (f"; on one core (CPU time, the figure least disturbed by other jobs): "
                            f"**{bound1 / one_core['cpu_seconds_per_epoch']:.0%}** of its bound")
            record("train", "one_thread_fraction_of_flop_bound", bound1 / one_core["cpu_seconds_per_epoch"], "ratio",
                   cpu_seconds_per_epoch=one_core["cpu_seconds_per_epoch"], one_core_peak_gflops=peak1,
                   one_core_bound_seconds=bound1)
        profiled = train.get("step_profile")
        if profiled:
            share = profiled["matmul_ms_per_step"] / (profiled["matmul_ms_per_step"] + profiled["other_ms_per_step"])
            lines += ["", f"Where a baseline step's time goes (torch.profiler, self CPU time over {profiled['steps']} steps): "
                      f"matmul kernels {profiled['matmul_ms_per_step']:.1f} ms/step ({share:.0%}), everything else "
                      f"(elementwise ops, autograd, Adam) {profiled['other_ms_per_step']:.1f} ms/step. The bound counts "
                      "only the matmuls at the machine's best throughput, so the fraction reached can be no higher "
                      "than the matmul share times the matmuls' own efficiency."]
            record("train", "matmul_share_of_step", share, "ratio", **profiled)
        partial = " (quick mode: epochs extrapolated from 6 steps)" if base["partial_epochs"] else ""
        lines += ["", f"Best of {len(base['samples'])} epochs per variant (all in results.json), timed in rotation{partial}. "
                  "Batches other than 100 change the optimisation (fewer, larger steps) and do less work per "
                  "epoch (the K pseudo-inputs are encoded once per step), so their bound differs.", ""]
    else:
        lines += [f"Training benchmark failed: {train['error']}", ""]

    if "error" not in evaluation:
        ours = evaluation["evaluator_seconds_per_point"]
        loop = evaluation["loop_seconds_per_point"]
        bound = evaluation["evaluator_flops_per_point"] / (peak * 1e9)
        verdict.append(f"- log-likelihood (S = {SAMPLES}): **{1000 * ours:.0f} s per 1,000 points** "
                       f"({STATIC_MNIST_TEST * ours / 60:.1f} min for 10,000) = {ours / bound:.2f}x the FLOP bound "
                       f"(target {TARGET_EVAL_WITHIN_BOUND}x: {'met' if ours / bound <= TARGET_EVAL_WITHIN_BOUND else 'not met'}); "
                       f"**{loop / ours:.1f}x** the per-point loop (target {TARGET_EVAL_SPEEDUP:.0f}x: "
                       f"{'met' if loop / ours >= TARGET_EVAL_SPEEDUP else 'not met'}; the loop does only "
                       f"{evaluation['loop_flops_per_point'] / evaluation['evaluator_flops_per_point']:.1f}x the FLOPs, "
                       f"so even an evaluator at the FLOP bound would be {loop / bound:.1f}x); "
                       f"{AUTHORS_SECONDS_PER_1000_POINTS / (1000 * ours):.1f}x the authors' "
                       f"{AUTHORS_SECONDS_PER_1000_POINTS:.0f} s per 1,000 points")
        lines += [f"### Test log-likelihood, S = {SAMPLES} importance samples", "",
                  "| method | points/s | s per 1,000 points | s for 10,000 points | GFLOP/point |",
                  "|---|---:|---:|---:|---:|",
                  f"| vae_core.evaluate.log_likelihood ({evaluation['points']} points) | {1 / ours:.1f} | "
                  f"{1000 * ours:.1f} | {STATIC_MNIST_TEST * ours:.0f} | {evaluation['evaluator_flops_per_point'] / 1e9:.2f} |",
                  f"| per-point loop, 50 x 100 samples, full forward ({evaluation['loop_points']} points) | "
                  f"{1 / loop:.2f} | {1000 * loop:.0f} | {STATIC_MNIST_TEST * loop:.0f} | "
                  f"{evaluation['loop_flops_per_point'] / 1e9:.2f} |",
                  f"| FLOP bound of the evaluator | {1 / bound:.1f} | {1000 * bound:.1f} | {STATIC_MNIST_TEST * bound:.0f} | |",
                  "",
                  f"- speed-up over the loop: **{loop / ours:.1f}x** (target {TARGET_EVAL_SPEEDUP:.0f}x; the loop does "
                  f"{evaluation['loop_flops_per_point'] / evaluation['evaluator_flops_per_point']:.1f}x the FLOPs, at "
                  f"{evaluation['loop_flops_per_point'] / loop / 1e9:.0f} GFLOP/s against the evaluator's "
                  f"{evaluation['evaluator_flops_per_point'] / ours / 1e9:.0f}; an evaluator running at the FLOP bound "
                  f"would be {loop / bound:.1f}x the loop"
                  + (", so the target needs fewer FLOPs per point, not faster ones)" if loop / bound < TARGET_EVAL_SPEEDUP
                     else "; the loop's own speed varies between runs of this benchmark on this machine)"),
                  f"- evaluator time / FLOP bound: **{ours / bound:.2f}x** (target within {TARGET_EVAL_WITHIN_BOUND}x; "
                  f"guide's bound {GUIDE_BOUND_SECONDS_PER_1000_POINTS} s per 1,000 points); authors' code per the guide: "
                  f"{AUTHORS_SECONDS_PER_1000_POINTS:.0f} s per 1,000 points ({AUTHORS_SECONDS_PER_1000_POINTS / (1000 * ours):.1f}x ours)",
                  f"- the prior's K pseudo-inputs are encoded once per call: "
                  f"{evaluation['evaluator_flops_once'] / 1e9:.2f} GFLOP, not counted per point",
                  f"- same points, both estimators: mean log p(x) {evaluation['evaluator_mean_ll_same_points']:.2f} "
                  f"(evaluator) vs {evaluation['loop_mean_ll']:.2f} (loop) nats (untrained model)"]
        if "one_thread_evaluator_cpu_seconds_per_point" in evaluation and train.get("matmul_one_thread"):
            peak1 = max(row["gflops"] for row in train["matmul_one_thread"])
            bound1 = evaluation["evaluator_flops_per_point"] / (peak1 * 1e9)
            ours1 = evaluation["one_thread_evaluator_cpu_seconds_per_point"]
            loop1 = evaluation["one_thread_loop_cpu_seconds_per_point"]
            lines.append(f"- one core, robust to other jobs (1 thread, CPU time): evaluator {1000 * ours1:.0f} ms/point "
                         f"= **{ours1 / bound1:.2f}x its one-core FLOP bound** ({1000 * bound1:.0f} ms at {peak1:.0f} "
                         f"GFLOP/s); loop {1000 * loop1:.0f} ms/point; speed-up **{loop1 / ours1:.1f}x**")
            verdict[-1] += (f"; on one core (CPU time): **{ours1 / bound1:.2f}x** its bound (target "
                            f"{'met' if ours1 / bound1 <= TARGET_EVAL_WITHIN_BOUND else 'not met'}), "
                            f"{loop1 / ours1:.1f}x the loop")
            record("log_likelihood", "one_thread_time_over_flop_bound", ours1 / bound1, "ratio",
                   cpu_seconds_per_point=ours1, loop_cpu_seconds_per_point=loop1, speedup_vs_loop=loop1 / ours1,
                   one_core_peak_gflops=peak1)
        if evaluation["max_rows_seconds_per_point"]:
            from vae_core.evaluate import ACCELERATOR_MAX_ROWS, CPU_MAX_ROWS

            default_rows = CPU_MAX_ROWS if args.device == "cpu" else ACCELERATOR_MAX_ROWS
            sweep = ", ".join(f"{r}: {1000 * s:.0f}" for r, s in evaluation["max_rows_seconds_per_point"].items())
            before = evaluation["max_rows_seconds_per_point"]["before"]
            lines.append(f"- this change's speed-up of the evaluator (the mixture table in float32 where its rounding "
                         f"bound allows, h and g of each gated layer in one matmul): **{before / ours:.2f}x** "
                         f"({1000 * before:.0f} -> {1000 * ours:.0f} ms/point)")
            lines.append(f"- ms/point by `max_rows` (decoder rows per chunk; default {default_rows}; \"before\": "
                         f"the default rows with the float64 table and two-matmul gates this change replaced): {sweep}")
        lines.append("")
        record("log_likelihood", "evaluator_points_per_second", 1 / ours, "points/s", samples=SAMPLES,
               points=evaluation["points"], seconds_per_1000=1000 * ours, seconds_for_10000=STATIC_MNIST_TEST * ours,
               flops_per_point=evaluation["evaluator_flops_per_point"],
               max_rows_seconds_per_point=evaluation["max_rows_seconds_per_point"])
        record("log_likelihood", "loop_points_per_second", 1 / loop, "points/s", samples=SAMPLES,
               points=evaluation["loop_points"], seconds_per_1000=1000 * loop, flops_per_point=evaluation["loop_flops_per_point"])
        record("log_likelihood", "speedup_vs_loop", loop / ours, "ratio")
        record("log_likelihood", "flop_bound_seconds_per_1000", 1000 * bound, "s", peak_gflops=peak)
        record("log_likelihood", "time_over_flop_bound", ours / bound, "ratio")
    else:
        lines += [f"Log-likelihood benchmark failed: {evaluation['error']}", ""]

    lines += ["### Peak memory (fresh process per measurement)", "", "| workload | peak RSS (MB) | RSS before it (MB) |"
              + (" CUDA max allocated (MB) |" if args.device.startswith("cuda") else ""),
              "|---|---:|---:|" + ("---:|" if args.device.startswith("cuda") else "")]
    labels = {"train": "training, batch 100", "eval": f"evaluator, 4 points, S = {SAMPLES}",
              "loop": f"per-point loop, 1 point, S = {SAMPLES}"}
    for what, result in memory.items():
        if "error" in result:
            lines.append(f"| {labels[what]} | failed: {result['error']} | |")
            continue
        cuda = f" {result['cuda_max_allocated_mb']:.0f} |" if "cuda_max_allocated_mb" in result else ""
        lines.append(f"| {labels[what]} | {result['peak_rss_mb']:.0f} | {result['rss_before_mb']:.0f} |{cuda}")
        record("memory", "peak_rss_mb", result["peak_rss_mb"], "MB", workload=what,
               rss_before_mb=result["rss_before_mb"], cuda_max_allocated_mb=result.get("cuda_max_allocated_mb"))
    lines.append("")
    if verdict:
        lines = ["### Against the targets", "", *verdict, ""] + lines
    return records, lines


def write_results(records: list[dict], lines: list[str], info: dict, args) -> None:
    from benchmarks.report_files import replace_records, replace_section

    replace_records(RESULTS_JSON, KIND, records)

    load = info.get("load_average_start"), info.get("load_average_end")
    header = [
        MD_START, "## Speed", "",
        f"`python benchmarks/speed.py{' --quick' if args.quick else ''}` on {info['cpu']} ({info['cores']} cores, "
        f"{info['threads']} torch threads), torch {info['torch']}, device {info['device']}"
        + (f" ({info['gpu']})" if "gpu" in info else "") + f", {info['date']}.",
        f"Load average before / after: {load[0]} / {load[1]}. The machine is shared: other jobs can only add "
        "time, so every figure is the best of a few repetitions and the variants are timed in rotation; the "
        "one-thread CPU-time figures are the least sensitive to other jobs.", "",
    ]
    replace_section(RESULTS_MD, MD_START, MD_END, "\n".join(header + lines + [MD_END]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a < 1 minute smoke run (prints; --write to record)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--dataset", default="random", choices=["random", "caltech101"])
    parser.add_argument("--data-dir", help="with --dataset caltech101: the dataset folder")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads in every measurement (default: torch's)")
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs per training variant (full mode)")
    parser.add_argument("--eval-points", type=int, default=30, help="test points for the evaluator (full mode)")
    parser.add_argument("--loop-points", type=int, default=12, help="test points for the per-point loop (full mode)")
    parser.add_argument("--compile", dest="compile", action="store_true", default=None,
                        help="time torch.compile (default: in full mode only)")
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--compile-timeout", type=float, default=300, help="seconds before (c) is skipped")
    parser.add_argument("--write", dest="write", action="store_true", default=None,
                        help="write results.json and RESULTS.md (default: in full mode only)")
    parser.add_argument("--no-write", dest="write", action="store_false")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--memory", choices=["train", "eval", "loop"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(args)
        return 0

    torch = _torch()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available")
    compile_too = args.compile if args.compile is not None else not args.quick
    write = args.write if args.write is not None else not args.quick
    info = machine_info(args)
    started = time.perf_counter()
    print(f"{info['cpu']}, {info['cores']} cores, torch {info['torch']}, {info['threads']} threads, "
          f"device {args.device}, load average {info.get('load_average_start')}", flush=True)
    long = 120 if args.quick else 900
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
    memory = {what: spawn(args, "memory", long, ["--memory", what]) for what in ("train", "eval", "loop")}
    with contextlib.suppress(OSError):
        info["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    info["benchmark_seconds"] = round(time.perf_counter() - started, 1)
    records, lines = summarise(args, info, train, compiled, evaluation, memory)
    print()
    print("\n".join(lines))
    print(f"(benchmark took {info['benchmark_seconds']:.0f} s)")
    if write:
        write_results(records, lines, info, args)
        print(f"wrote {RESULTS_JSON.relative_to(ROOT)} and the Speed section of {RESULTS_MD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
