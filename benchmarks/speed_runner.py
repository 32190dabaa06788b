"""What benchmarks/speed.py measures, one fresh child process per measurement, and the parent's
side of running them.

Each child (`CHILDREN`) builds the paper's VAE + VampPrior, times it and prints one line
`RESULT {json}`; `spawn` runs a child and reads that line back. Ours and the authors' algorithm
(benchmarks/authors_reference.py, with the same weights) are timed in the same child, in
rotation, so their ratio compares like with like on a shared machine.
"""

from __future__ import annotations

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

import torch

from benchmarks import authors_reference as authors
from benchmarks.report_files import cpu_name

ROOT = Path(__file__).resolve().parents[1]
ENTRY = ROOT / "benchmarks" / "speed.py"

N_TRAIN = 4100  # Caltech 101 Silhouettes' training set
IMAGE_SHAPE = (1, 28, 28)
BATCH = 100
LR = 5e-4
SAMPLES = 5000  # importance samples per test point
AUTHORS_LL_BATCH = 100  # the authors' evaluation: S samples in forward passes of 100

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
MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_addmm_activation"}


# --------------------------------------------------------------------------------------------
# Helpers


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(device: torch.device, seed: int = 0):
    """The paper's model: VAE, VampPrior with K = 500, gated MLP 2 x 300, latent 40, Bernoulli pixels."""
    from vae_core.config import ModelConfig
    from vae_core.models import build_model

    torch.manual_seed(seed)
    config = ModelConfig.for_dataset("caltech101", model="vae", prior="vampprior", architecture="mlp",
                                     latent_dim=40, hidden=300, components=500)
    return build_model(config).to(device)


def load_images(args, split: str, count: int | None, device: torch.device) -> torch.Tensor:
    """(count, 1, 28, 28) binary float32 images: random, or Caltech 101's `split` with --dataset."""
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


@contextlib.contextmanager
def patched(owner, name: str, replacement, enabled: bool = True):
    """Temporarily replace `owner.name` with `replacement` (when `enabled`)."""
    original = getattr(owner, name)
    if enabled:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextlib.contextmanager
def threads(count: int | None):
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def timed(fn, device: torch.device) -> tuple[float, object, float]:
    """(wall seconds, fn's value, CPU seconds) of calling fn()."""
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    value = fn()
    sync(device)
    return time.perf_counter() - start, value, time.process_time() - cpu


# --------------------------------------------------------------------------------------------
# Training: our step and its levers, and the authors' loop


def batched_forward(model, x, beta=1.0):
    """(a) VAE.forward with the K pseudo-inputs and the batch through the encoder in one call."""
    from vae_core.distributions import (
        gaussian_log_prob,
        gaussian_mixture_log_prob,
        reparameterize,
    )
    from vae_core.models import _output

    b = x.shape[0]
    means, logvars = model.encoder(torch.cat([x, model.prior.pseudo_inputs]))
    mean, logvar = means[:b], logvars[:b]
    z = reparameterize(mean, logvar)
    reconstruction = model.likelihood.log_prob(x, model.decoder(z))
    kl = gaussian_log_prob(z, mean, logvar) - gaussian_mixture_log_prob(z, means[b:], logvars[b:])
    return _output(reconstruction, kl, beta)


def two_matmul_gates(self, x):
    """(f) GatedDense.forward with h and g as two matmuls (row views of its one weight)."""
    (h_weight, g_weight), (h_bias, g_bias) = self.weight.chunk(2), self.bias.chunk(2)
    linear = torch.nn.functional.linear
    return linear(x, h_weight, h_bias) * torch.sigmoid(linear(x, g_weight, g_bias))


class TrainVariant:
    """train()'s step with the paper's optimiser (Adam, fused, on L2-normalised gradients), or a
    lever changed: another forward, batch size, unfused Adam, gate form or thread count."""

    def __init__(self, name: str, key: str, batch_size: int = BATCH, forward=None, fused_adam: bool = True,
                 gates=None, num_threads: int | None = None):
        self.name, self.key, self.batch_size = name, key, batch_size
        self.forward = forward or (lambda model, x, beta=1.0: model(x, beta=beta))
        self.fused_adam, self.gates, self.num_threads = fused_adam, gates, num_threads
        self.model = self.optimizer = None
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []

    def setup(self, base_model, x: torch.Tensor) -> None:
        self.model = copy.deepcopy(base_model)
        self.model.prior._encoder = (self.model.encoder,)  # deepcopy keeps the reference consistent; be explicit
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR, fused=self.fused_adam)
        self.x = x

    def context(self):
        from vae_core.networks import GatedDense

        stack = contextlib.ExitStack()
        stack.enter_context(patched(GatedDense, "forward", self.gates, self.gates is not None))
        stack.enter_context(threads(self.num_threads))
        return stack

    def steps(self, max_steps: int | None) -> int:
        """One epoch as train() runs it (or its first max_steps steps); the steps run."""
        from vae_core.train import normalize_gradients_

        model, optimizer, x = self.model, self.optimizer, self.x
        model.train()
        done = 0
        for batch in torch.randperm(len(x), device=x.device).split(self.batch_size):
            out = self.forward(model, x[batch], beta=1.0)
            out.loss.item(), out.reconstruction.sum().item(), out.kl.sum().item()  # train()'s host syncs
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            normalize_gradients_(model.parameters())
            optimizer.step()
            done += 1
            if max_steps and done >= max_steps:
                break
        return done

    def step_flops(self, size: int) -> int:
        model = copy.deepcopy(self.model)
        model.prior._encoder = (model.encoder,)

        def run():
            self.forward(model, self.x[:size], beta=1.0).loss.backward()

        return count_flops(run)

    def epoch_flops(self) -> int:
        """Matmul FLOPs of one epoch: full batches plus the last, smaller one."""
        full, rest = divmod(len(self.x), self.batch_size)
        with self.context():
            return full * self.step_flops(self.batch_size) + (self.step_flops(rest) if rest else 0)


class AuthorsVariant(TrainVariant):
    """The authors' training loop (benchmarks/authors_reference.py) from the same initial weights."""

    def setup(self, base_model, x: torch.Tensor) -> None:
        self.model = authors.AuthorsVampVAE.from_vae_core(base_model)
        self.optimizer = authors.AdamNormGrad(self.model.parameters(), lr=LR)
        self.loader = authors.train_loader(x, self.batch_size)
        self.x = x

    def context(self):
        return threads(self.num_threads)

    def steps(self, max_steps: int | None) -> int:
        return authors.train_epoch(self.model, self.optimizer, self.loader, 1.0, self.x.device, max_steps)

    def step_flops(self, size: int) -> int:
        model = copy.deepcopy(self.model)
        return count_flops(lambda: model.calculate_loss(self.x[:size].flatten(1), average=True)[0].backward())


def run_epoch(variant: TrainVariant, device: torch.device, max_steps: int | None) -> tuple[float, float]:
    """One epoch of `variant` (or its first max_steps steps, scaled to an epoch): (wall, CPU) seconds."""
    wall, done, cpu = timed(lambda: variant.steps(max_steps), device)
    scale = math.ceil(len(variant.x) / variant.batch_size) / done
    return wall * scale, cpu * scale


def step_profile(variant: TrainVariant, device: torch.device, steps: int) -> dict:
    """Where a training step's time goes: self time of the matmul kernels against everything else
    (elementwise ops, autograd, the optimiser), under torch.profiler (which inflates the many small
    ops a little, so the matmul share is a lower bound)."""
    from torch.profiler import ProfilerActivity, profile

    with variant.context(), profile(activities=[ProfilerActivity.CPU]) as prof:
        run_epoch(variant, device, steps)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS)
    return {"steps": steps, "matmul_ms_per_step": matmul / steps / 1000,
            "other_ms_per_step": (total - matmul) / steps / 1000}


def measure_matmul(device: torch.device, seconds: float) -> list[dict]:
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
        rows.append({"label": label, "shape": [m, k, n], "gflops": 2 * m * k * n / best(times) / 1e9,
                     "gflops_median": 2 * m * k * n / median(times) / 1e9})
    return rows


def train_variants(args, device: torch.device) -> list[TrainVariant]:
    variants = [
        TrainVariant("ours: train()'s step (fused Adam on normalised gradients), batch 100", "baseline"),
        AuthorsVariant("the authors' training loop (benchmarks/authors_reference.py), batch 100", "authors"),
        TrainVariant("(a) pseudo-inputs batched with the data in one encoder call", "batched", forward=batched_forward),
        TrainVariant("(b) batch 500", "batch500", batch_size=500),
    ]
    if args.quick:
        return variants
    variants += [
        TrainVariant("(b) batch 200", "batch200", batch_size=200),
        TrainVariant("(b) batch 1000", "batch1000", batch_size=1000),
        TrainVariant("(e) unfused Adam (train() uses the fused one)", "unfused_adam", fused_adam=False),
        TrainVariant("(f) h and g of each gated layer as two matmuls (GatedDense does one)", "split_gates",
                     gates=two_matmul_gates),
    ]
    if device.type == "cpu":
        cores = os.cpu_count() or 1
        variants += [TrainVariant(f"(d) torch.set_num_threads({t})", f"threads{t}", num_threads=t)
                     for t in sorted({1, cores} - {torch.get_num_threads()})]
        if torch.get_num_threads() != 1:
            variants.append(AuthorsVariant("the authors' training loop, 1 thread", "authors_threads1", num_threads=1))
    return variants


def child_train(args, device: torch.device) -> dict:
    result = {"matmul": measure_matmul(device, 0.05 if args.quick else 0.3)}
    if device.type == "cpu":  # one core's peak: robust to other jobs on the machine (see the report)
        with threads(1):
            result["matmul_one_thread"] = measure_matmul(device, 0.05 if args.quick else 0.2)
    x = load_images(args, "train", N_TRAIN, device)
    base = build(device)
    variants = train_variants(args, device)
    for variant in variants:
        variant.setup(base, x)
    max_steps = 6 if args.quick else None
    for variant in variants:  # warm-up (allocator, oneDNN kernels); not timed
        with variant.context():
            run_epoch(variant, device, 2)
    for _ in range(2 if args.quick else args.rounds):
        for variant in variants:  # rotation: every variant sees the same machine load on average
            with variant.context():
                wall, cpu = run_epoch(variant, device, max_steps)
            variant.seconds.append(wall)
            variant.cpu_seconds.append(cpu)
    if not args.quick and device.type == "cpu":
        result["step_profile"] = step_profile(variants[0], device, steps=10)
    result["variants"] = [{
        "key": v.key, "name": v.name, "batch_size": v.batch_size, "threads": v.num_threads or torch.get_num_threads(),
        "seconds_per_epoch": best(v.seconds), "median_seconds_per_epoch": median(v.seconds), "samples": v.seconds,
        "cpu_seconds_per_epoch": best(v.cpu_seconds),
        "steps_per_epoch": math.ceil(N_TRAIN / v.batch_size), "flops_per_epoch": v.epoch_flops(),
        "partial_epochs": bool(max_steps),
    } for v in variants]
    return result


def child_compile(args, device: torch.device) -> dict:
    """(c) torch.compile of the model, timed in rotation with the eager baseline."""
    x = load_images(args, "train", N_TRAIN, device)
    base = build(device)
    eager = TrainVariant("eager", "eager")
    compiled = TrainVariant("(c) torch.compile(model)", "compiled")
    eager.setup(base, x)
    compiled.setup(base, x)
    module = torch.compile(compiled.model)
    compiled.forward = lambda model, xb, beta=1.0: module(xb, beta=beta)
    start = time.perf_counter()
    run_epoch(compiled, device, 2)  # compiles forward and backward
    compile_seconds = time.perf_counter() - start
    run_epoch(eager, device, 2)
    max_steps = 6 if args.quick else None
    for _ in range(2 if args.quick else args.rounds):
        for variant in (eager, compiled):
            wall, _ = run_epoch(variant, device, max_steps)
            variant.seconds.append(wall)
    return {"compile_seconds": compile_seconds, "eager": best(eager.seconds), "compiled": best(compiled.seconds),
            "eager_samples": eager.seconds, "compiled_samples": compiled.seconds}


# --------------------------------------------------------------------------------------------
# Test log-likelihood: our evaluator and its levers, and the authors' per-point evaluation


def child_eval(args, device: torch.device) -> dict:
    from vae_core import distributions
    from vae_core.evaluate import log_likelihood

    points = 3 if args.quick else args.eval_points
    authors_points = 1 if args.quick else args.authors_points
    images = load_images(args, "test", max(points, authors_points), device)
    model = build(device).eval()
    reference = authors.AuthorsVampVAE.from_vae_core(model)
    result = {"points": points, "authors_points": authors_points, "samples": SAMPLES}
    ours_input = images.cpu().numpy() if device.type == "cpu" else images

    def ours(count, **kwargs):
        return log_likelihood(model, ours_input[:count], SAMPLES, **kwargs)

    def theirs(count):
        return authors.log_likelihood(reference, images[:count], SAMPLES, AUTHORS_LL_BATCH)

    ours(1)  # warm-up
    theirs(1)
    # None: the library's defaults; "float64": the mixture table always in float64 (a lever of the
    # design, which forms it in float32 where its rounding bound allows); numbers: max_rows
    levers = [None] if args.quick else [None, "float64", 1000, 5000, 10000]
    timings: dict = {lever: [] for lever in levers}
    cpu_timings, estimates, authors_runs = [], None, []
    for _ in range(1 if args.quick else 2):
        for lever in levers:
            kwargs = {"max_rows": lever} if isinstance(lever, int) else {}
            with patched(distributions, "FLOAT32_TOLERANCE", -math.inf, lever == "float64"):
                seconds, values, cpu = timed(lambda kw=kwargs: ours(points, **kw), device)
            timings[lever].append(seconds / points)
            if lever is None:
                cpu_timings.append(cpu / points)
                estimates = values
        authors_runs.append(timed(lambda: theirs(authors_points), device))  # in rotation with ours
    result["evaluator_seconds_per_point"] = best(timings[None])
    result["evaluator_samples"] = timings[None]
    result["evaluator_cpu_seconds_per_point"] = best(cpu_timings)
    result["levers_seconds_per_point"] = {str(k): best(t) for k, t in timings.items() if k is not None}
    authors_seconds, authors_values, authors_cpu = min(authors_runs, key=lambda run: run[0])
    result["authors_seconds_per_point"] = authors_seconds / authors_points
    result["authors_samples"] = [run[0] / authors_points for run in authors_runs]
    result["authors_cpu_seconds_per_point"] = authors_cpu / authors_points
    if device.type == "cpu" and torch.get_num_threads() == 1:  # the figures above are one thread's already
        result["one_thread_evaluator_cpu_seconds_per_point"] = result["evaluator_cpu_seconds_per_point"]
        result["one_thread_authors_cpu_seconds_per_point"] = result["authors_cpu_seconds_per_point"]
    elif device.type == "cpu":  # one thread, CPU time: robust to other jobs
        with threads(1):
            few = max(1, min(points, 2 if args.quick else 10))
            result["one_thread_evaluator_cpu_seconds_per_point"] = timed(lambda: ours(few), device)[2] / few
            few = max(1, min(authors_points, 1 if args.quick else 4))
            result["one_thread_authors_cpu_seconds_per_point"] = timed(lambda: theirs(few), device)[2] / few
    result["authors_mean_ll"] = float(authors_values.mean())
    result["evaluator_mean_ll_same_points"] = float(estimates[:authors_points].mean())

    # FLOPs per point; the evaluator's frozen prior (the K pseudo-inputs encoded once) separately
    frozen = count_flops(lambda: model.prior.frozen())
    with torch.no_grad():
        one_point = count_flops(lambda: ours(1))
        authors_pass = count_flops(lambda: reference.calculate_loss(
            images[:1].flatten(1).expand(AUTHORS_LL_BATCH, -1)))
    result["evaluator_flops_per_point"] = one_point - frozen
    result["evaluator_flops_once"] = frozen
    result["authors_flops_per_point"] = authors_pass * (SAMPLES // AUTHORS_LL_BATCH)
    return result


# --------------------------------------------------------------------------------------------
# Peak memory, one fresh process per measurement

MEMORY_WORKLOADS = ("train", "authors_train", "eval", "authors_eval")


def child_memory(args, device: torch.device) -> dict:
    from vae_core.evaluate import log_likelihood

    what = args.memory
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if what in ("train", "authors_train"):
        x = load_images(args, "train", N_TRAIN, device)
        variant = TrainVariant("ours", "baseline") if what == "train" else AuthorsVariant("authors", "authors")
        variant.setup(build(device), x)
        before = rss_mb()
        run_epoch(variant, device, 5 if args.quick else None)
    else:
        images = load_images(args, "test", 4, device)
        model = build(device).eval()
        reference = authors.AuthorsVampVAE.from_vae_core(model) if what == "authors_eval" else None
        before = rss_mb()
        if reference is None:
            log_likelihood(model, images.cpu().numpy() if device.type == "cpu" else images, SAMPLES)
        else:
            authors.log_likelihood(reference, images[:1], SAMPLES, AUTHORS_LL_BATCH)
    result = {"what": what, "peak_rss_mb": peak_rss_mb(), "rss_before_mb": before}
    if device.type == "cuda":
        result["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


CHILDREN = {"train": child_train, "compile": child_compile, "eval": child_eval, "memory": child_memory}


def run_child(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    result = CHILDREN[args.child](args, torch.device(args.device))
    print("RESULT " + json.dumps(result))


# --------------------------------------------------------------------------------------------
# The parent's side


def spawn(args, child: str, timeout: float, extra: list[str] = (), env: dict | None = None) -> dict:
    """Run one child of speed.py in a fresh process; its result, or {"error": why}."""
    command = [sys.executable, str(ENTRY), "--child", child, "--device", args.device, "--dataset", args.dataset,
               "--rounds", str(args.rounds), "--eval-points", str(args.eval_points),
               "--authors-points", str(args.authors_points), *extra]
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


def load_average() -> list[float] | None:
    with contextlib.suppress(OSError):
        return [round(v, 2) for v in os.getloadavg()]
    return None


def machine_info(args) -> dict:
    info = {
        "cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
        "threads": args.threads or torch.get_num_threads(), "device": args.device,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(), "load_average_start": load_average(),
    }
    if args.device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(args.device))
    if args.note:
        info["note"] = args.note
    return info
