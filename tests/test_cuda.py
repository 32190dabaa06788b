"""CUDA against the CPU: the same numbers from the same weights, runs and checkpoints that move
between devices, torchrun and NCCL, the dashboard on a GPU, and the mixture density's rounding bound.

Every CUDA test is marked `cuda` and skips with one reason where torch sees no CUDA device; on a GPU
run `python -m pytest -m cuda` (or `benchmarks/gpu_check.sh`). Most have a CPU twin, an unmarked
parameter that runs the same test code on any machine, so that code is known to work before a GPU
sees it: where the CUDA case compares float32 on the GPU with float32 on the CPU, the twin compares
float64 with float32 on the CPU, a difference of the same kind (rounding in another order).

Noise is fixed: `reparameterize` draws eps from a seeded CPU generator in float64 and moves it to
the model's device and dtype, so both sides of a comparison decode the same draws.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn

from tests.page_helpers import ROOT, open_page, shipped
from tests.ports import free_port
from tests.test_distributed import _binary_digits, _fixed_noise, _shared_order
from tests.test_distributions import reference_mixture
from vae_core import checkpoint as ckpt
from vae_core import distributed, models
from vae_core.config import ModelConfig
from vae_core.data import DatasetSplits
from vae_core.distributions import (
    FLOAT32_TOLERANCE,
    gaussian_mixture_log_prob,
    mixture_responsibilities,
)
from vae_core.evaluate import log_likelihood, posterior_means
from vae_core.models import build_model
from vae_core.train import TrainConfig, normalize_gradients_, train

train_module = importlib.import_module("vae_core.train")  # the package's `train` attribute is the function

SKIP_REASON = "needs a CUDA GPU (torch.cuda.is_available() is False); run with -m cuda on a GPU machine"
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason=SKIP_REASON)
CUDA = [pytest.mark.cuda, requires_cuda]


def on_cuda(*values, id: str | None = None):
    """A parameter that runs on a GPU only."""
    return pytest.param(*values, marks=CUDA, id=id)


# Two float32 computations of one quantity in another order (cuBLAS against the CPU's BLAS, other
# reduction trees) differ by rounding: eps32 = 1.2e-7 per operation, growing with the sums (64
# pixels, hidden layers of 128, 100 components) to about 1e-6 of the value (measured: at most 6e-7
# for these models, float32 against float64 on the CPU); RTOL leaves ten times that. The mixture
# table may also be formed in float32 on one side and in float64 on the other (the bound that picks
# it is itself rounded near the threshold), each within FLOAT32_TOLERANCE of exact: ATOL.
RTOL = 1e-5
ATOL = 2 * FLOAT32_TOLERANCE
TARGETS = [on_cuda("cuda", id="cuda"), pytest.param("cpu-float64", id="cpu-float64")]
CHECKPOINTS = ("digits-vae-standard", "digits-vae-mog", "digits-vae-vampprior", "digits-hvae-vampprior")
MIXTURES = ("digits-vae-mog", "digits-vae-vampprior", "digits-hvae-vampprior")
TIMEOUT_S = 180


def assert_close_nats(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    actual, expected = actual.detach().double().cpu(), expected.detach().double().cpu()
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=ATOL,
                               msg=lambda m: f"{what} differs between devices beyond rounding: {m}")


def cpu_noise(seed: int):
    """A `reparameterize` whose eps comes from a seeded CPU generator, identical on every device."""
    generator = torch.Generator().manual_seed(seed)

    def reparameterize(mean, logvar, num_samples=None):
        shape = mean.shape if num_samples is None else (num_samples, *mean.shape)
        eps = torch.randn(shape, generator=generator, dtype=torch.float64).to(mean)
        return mean + torch.exp(0.5 * logvar) * eps

    return reparameterize


def load_on(name: str, target: str) -> nn.Module:
    """A shipped checkpoint on the target: float32 on the CPU ("cpu"), on CUDA, or float64 on the CPU."""
    if target == "cpu-float64":
        return ckpt.load(shipped(name)).double()
    return ckpt.load(shipped(name), device=target)


def like(model: nn.Module, array) -> torch.Tensor:
    """`array` as a tensor on the model's device, in its dtype."""
    parameter = next(model.parameters())
    return torch.as_tensor(np.asarray(array)).to(parameter.device, parameter.dtype)


class Float64Inputs(nn.Module):
    """A float64 model fed the float32 batches that `vae_core.evaluate` builds (the CPU twin's view)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @property
    def prior(self):
        return self.model.prior

    def forward(self, x, beta=1.0):
        return self.model(x.double(), beta=beta)

    def log_importance_weights(self, x, num_samples, prior=None):
        return self.model.log_importance_weights(x.double(), num_samples, prior=prior)

    def latent_means(self, x):
        return self.model.latent_means(x.double())


def evaluator_view(model: nn.Module) -> nn.Module:
    return Float64Inputs(model) if next(model.parameters()).dtype == torch.float64 else model


def expected_device(target: str) -> str:
    return "cuda" if target == "cuda" else "cpu"


# --------------------------------------------------------------------------------------------
# The same weights give the same numbers


@pytest.mark.parametrize("name", CHECKPOINTS)
@pytest.mark.parametrize("target", TARGETS)
def test_same_weights_give_the_same_elbo(target, name, digits, monkeypatch):
    results = []
    for model in (load_on(name, "cpu"), load_on(name, target)):
        monkeypatch.setattr(models, "reparameterize", cpu_noise(seed=1))
        with torch.no_grad():
            out = model(like(model, digits.x_test[:64]), beta=1.0)
        results.append(out)
    reference, other = results
    assert other.elbo.device.type == expected_device(target)
    for term in ("elbo", "reconstruction", "kl"):
        assert_close_nats(getattr(other, term), getattr(reference, term), f"{name}: {term}")


def _record_table_dtypes(monkeypatch) -> list[torch.dtype]:
    """The dtype each mixture table is formed in (it is one torch.addmm)."""
    dtypes, original = [], torch.addmm

    def spy(input, mat1, mat2, *args, **kwargs):
        dtypes.append(mat1.dtype)
        return original(input, mat1, mat2, *args, **kwargs)

    monkeypatch.setattr(torch, "addmm", spy)
    return dtypes


@pytest.mark.parametrize("name", CHECKPOINTS)
@pytest.mark.parametrize("target", TARGETS)
def test_same_weights_give_the_same_prior_log_density(target, name, digits, monkeypatch):
    """Points where the prior is evaluated: samples of one image's posterior (the importance
    sampler's chunks; the mixture table in float32) and codes spread far apart (float64)."""
    reference = load_on(name, "cpu")
    with torch.no_grad():
        mean = reference.encoder(torch.as_tensor(digits.x_test[:1]))[0]  # on the prior's layer
        generator = torch.Generator().manual_seed(2)
        one_image = mean + 0.1 * torch.randn(500, mean.shape[-1], generator=generator)
        spread = 30 * torch.randn(100, mean.shape[-1], generator=generator)
    dtypes = _record_table_dtypes(monkeypatch)
    for points in (one_image, spread):
        values = []
        for model in (reference, load_on(name, target)):
            with torch.no_grad():
                values.append(model.prior.log_prob(like(model, points)))
        assert values[1].device.type == expected_device(target)
        assert_close_nats(values[1], values[0], f"{name}: log p(z)")
    if name != "digits-vae-standard":  # both precisions of the mixture table were compared
        assert {torch.float32, torch.float64} <= set(dtypes)


@pytest.mark.parametrize("name", MIXTURES)
@pytest.mark.parametrize("target", TARGETS)
def test_same_weights_give_the_same_responsibilities(target, name, digits):
    """p(k | z) at the test set's posterior means, as the Pseudo-inputs page ranks components.

    Each responsibility is a softmax of component log-densities, so an error d in those moves it
    by at most 2 d times itself: 2 ATOL bounds the difference."""
    values = []
    for model in (load_on(name, "cpu"), load_on(name, target)):
        with torch.no_grad():
            z = model.encoder(like(model, digits.x_test))[0]
            values.append(mixture_responsibilities(z, *model.prior.components()))
    reference, other = (v.double().cpu() for v in values)
    assert values[1].device.type == expected_device(target)
    torch.testing.assert_close(other, reference, rtol=0, atol=2 * ATOL)
    assert (other.argmax(1) == reference.argmax(1)).double().mean() > 0.99


@pytest.mark.parametrize("name", CHECKPOINTS)
@pytest.mark.parametrize("target", TARGETS)
def test_same_weights_give_the_same_log_likelihood(target, name, digits, monkeypatch):
    """The importance-sampled log p(x) with the same draws: the same chunks on both sides, so
    max_rows is given (its default differs between a CPU and a GPU)."""
    estimates = []
    for model in (load_on(name, "cpu"), load_on(name, target)):
        monkeypatch.setattr(models, "reparameterize", cpu_noise(seed=3))
        estimates.append(log_likelihood(evaluator_view(model), digits.x_test[:6], num_samples=500, max_rows=1000))
    assert_close_nats(torch.as_tensor(estimates[1]), torch.as_tensor(estimates[0]), f"{name}: log p(x)")


# --------------------------------------------------------------------------------------------
# Training, checkpoints and resume across devices


def small_vampprior() -> ModelConfig:
    return ModelConfig(prior="vampprior", dataset="digits", input_shape=(1, 8, 8), hidden=32, latent_dim=4,
                       components=10, pseudo_init_mean=0.3, pseudo_init_std=0.05)


def settings(device: str, **overrides) -> TrainConfig:
    values = {"epochs": 2, "batch_size": 100, "lr": 3e-3, "warmup": 0, "patience": 100, "seed": 0, "device": device,
              "normalize_gradients": True}
    return TrainConfig(**(values | overrides))


@pytest.fixture(scope="module")
def train_data(request) -> DatasetSplits:
    digits = request.getfixturevalue("digits")
    return DatasetSplits(x_train=digits.x_train[:400], x_val=digits.x_val[:100], x_test=digits.x_test[:100])


@pytest.mark.parametrize("device", [on_cuda("cuda", id="cuda"), pytest.param("cpu", id="cpu")])
def test_two_epochs_lower_the_loss_and_the_checkpoint_loads_on_the_cpu(device, tmp_path, train_data, monkeypatch):
    result = train(small_vampprior(), settings(device), tmp_path / "run", data=train_data)
    first, second = result.history
    assert second["train_loss"] < first["train_loss"] and second["val_loss"] < first["val_loss"]
    last = ckpt.read_tensors(tmp_path / "run" / ckpt.LAST_FILE)
    assert ("rng.cuda" in last) == (device == "cuda")  # the GPU's generator is saved for an exact resume

    on_cpu, on_device = ckpt.load(tmp_path / "run"), ckpt.load(tmp_path / "run", device=device)
    assert next(on_cpu.parameters()).device.type == "cpu"
    means = [posterior_means(m, train_data.x_test)["z"] for m in (on_cpu, on_device)]
    np.testing.assert_allclose(means[1], means[0], rtol=RTOL, atol=1e-5)
    elbos = []
    for model in (on_cpu, on_device):
        monkeypatch.setattr(models, "reparameterize", cpu_noise(seed=4))
        with torch.no_grad():
            elbos.append(model(like(model, train_data.x_test)).elbo)
    assert_close_nats(elbos[1], elbos[0], "ELBO of the reloaded checkpoint")


RESUMES = [on_cuda("cuda", "cpu", id="cuda-then-cpu"), on_cuda("cpu", "cuda", id="cpu-then-cuda"),
           pytest.param("cpu", "cpu", id="cpu-then-cpu")]


@pytest.mark.parametrize("first, second", RESUMES)
def test_resume_on_another_device(first, second, tmp_path, monkeypatch):
    """One epoch on `first`, the second on `second`, against two epochs straight on the CPU.

    The noise is a fixed function of the posterior mean and the epoch order a seeded permutation,
    and the images are binary (binarising them again draws nothing), so both runs compute the same
    thing up to rounding: a lost optimiser state or model would show in the Adam step count and in
    the second epoch's losses."""
    monkeypatch.setattr(models, "reparameterize", _fixed_noise)
    monkeypatch.setattr(train_module, "_epoch_order", _shared_order)
    data = _binary_digits()
    data = DatasetSplits(data.x_train[:400], data.x_val[:100], data.x_test[:100])
    config = small_vampprior()
    started = train(config, settings(first, epochs=1), tmp_path / "resumed", data=data)
    resumed = train(config, settings(second), tmp_path / "resumed", data=data, resume=True)
    straight = train(config, settings("cpu"), tmp_path / "straight", data=data)

    assert [r["epoch"] for r in resumed.history] == [1, 2]
    assert resumed.history[0] == started.history[0]
    steps = [v.item() for k, v in ckpt.read_tensors(tmp_path / "resumed" / ckpt.LAST_FILE).items()
             if k.endswith(".step")]
    assert steps and set(steps) == {8.0}, "Adam's step count restarted: the optimiser state was not carried over"
    for key in ("train_loss", "val_loss", "train_kl", "val_kl"):
        assert resumed.history[1][key] == pytest.approx(straight.history[1][key], rel=1e-3), key
    assert ckpt.load(tmp_path / "resumed", device=first) is not None  # and it loads back where it started




@pytest.mark.parametrize("device", [on_cuda("cuda", id="cuda"), pytest.param("cpu", id="cpu", marks=pytest.mark.slow)])
def test_torchrun_with_one_process_trains(device, tmp_path):
    """`torchrun --nproc_per_node 1 -m vae_core train --device DEVICE` trains and writes a checkpoint.

    With one process WORLD_SIZE is 1 and train() takes its one-process path, so this checks the
    launcher and the CLI on the device; NCCL itself is checked by the DDP test below."""
    out = tmp_path / "run"
    env = os.environ | {"OMP_NUM_THREADS": "1",
                        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_addr",
               "127.0.0.1", "--master_port", str(free_port()), "-m", "vae_core", "train", "--hidden", "16",
               "--latent-dim", "4", "-K", "10", "--epochs", "1", "--device", device, "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, env=env, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("finished after 1 epochs") == 1
    assert json.loads((out / ckpt.CONFIG_FILE).read_text())["train"]["device"] == device
    assert ("rng.cuda" in ckpt.read_tensors(out / ckpt.LAST_FILE)) == (device == "cuda")


@pytest.mark.parametrize("backend, device", [on_cuda("nccl", "cuda", id="nccl"), pytest.param("gloo", "cpu", id="gloo")])
def test_ddp_steps_in_a_process_group_of_one_equal_plain_steps(backend, device, monkeypatch):
    """The pieces torchrun uses with several GPUs (a process group, DistributedDataParallel from
    vae_core.distributed, an all-reduce), on one: DDP's averaged gradient over one rank is the
    rank's own, so three Adam steps must leave the same weights as three plain steps."""
    monkeypatch.setattr(models, "reparameterize", _fixed_noise)
    device = torch.device("cuda", 0) if device == "cuda" else torch.device("cpu")
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1,
                            **({"device_id": device} if backend == "nccl" else {}))
    try:
        torch.manual_seed(0)
        plain = build_model(small_vampprior()).to(device)
        twin = build_model(small_vampprior()).to(device)
        twin.load_state_dict(plain.state_dict())
        x = torch.as_tensor(_binary_digits().x_train[:100], device=device)
        wrapped = distributed.wrap(twin, device, find_unused_parameters=False)
        for module, params in ((plain, plain), (wrapped, twin)):
            optimizer = torch.optim.Adam(params.parameters(), lr=3e-3)
            for _ in range(3):
                optimizer.zero_grad(set_to_none=True)
                module(x, beta=1.0).loss.backward()
                normalize_gradients_(params.parameters())
                optimizer.step()
        for (name, a), b in zip(plain.state_dict().items(), twin.state_dict().values()):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")
        total = torch.tensor([1.5, 2.0], dtype=torch.float64, device=device)
        dist.all_reduce(total)
        assert total.tolist() == [1.5, 2.0]
    finally:
        dist.destroy_process_group()


# --------------------------------------------------------------------------------------------
# The dashboard on a GPU


DASHBOARD_PAGES = [on_cuda(page, "cuda", id=f"{page}-cuda") for page in
                   ("pseudo_inputs", "latent_space", "samples", "prior_vs_posterior", "probe")]
DASHBOARD_PAGES.append(pytest.param("pseudo_inputs", "cpu", id="pseudo_inputs-cpu"))


@pytest.mark.parametrize("page, device", DASHBOARD_PAGES)
def test_dashboard_page_runs_on_the_device(page, device):
    at = open_page(page, "digits-vae-vampprior", device=device)  # fails on any exception the page raised
    assert at.session_state["device"] == device  # the sidebar offered the device and kept it


# --------------------------------------------------------------------------------------------
# The mixture density's float32/float64 choice on the device


@pytest.mark.cuda
@requires_cuda
def test_float32_matmuls_on_cuda_are_ieee_float32():
    """FLOAT32_TOLERANCE and RTOL assume float32 products; TF32 (torch.backends.cuda.matmul.allow_tf32,
    or set_float32_matmul_precision("high")) rounds operands to 10 bits and breaks both."""
    generator = torch.Generator().manual_seed(5)
    a, b = torch.randn(256, 512, generator=generator), torch.randn(512, 256, generator=generator)
    product = (a.cuda() @ b.cuda()).cpu().double()
    reference = a.double() @ b.double()
    assert ((product - reference).norm() / reference.norm()).item() < 1e-5  # float32: ~2e-7, TF32: ~8e-4


def _one_posterior(k: int, d: int, generator: torch.Generator, spread: float):
    """Tight components (log-variance about -6) around a centre, and points z around it at `spread`."""
    center = 3 * torch.randn(d, generator=generator)
    means = center + 0.3 * torch.randn(k, d, generator=generator)
    logvars = -6 + 0.5 * torch.rand(k, d, generator=generator)
    z = center + spread * torch.randn(1000, d, generator=generator)
    return z, means, logvars


@pytest.mark.parametrize("device", [on_cuda("cuda", id="cuda"), pytest.param("cpu", id="cpu")])
def test_mixture_density_keeps_its_rounding_bound_on_the_device(device, monkeypatch):
    """From points tightly around one posterior (float32 tables) to spread batches (float64), the
    table's precision is chosen on the device and every value stays within FLOAT32_TOLERANCE of a
    float64 MixtureSameFamily on the CPU."""
    generator = torch.Generator().manual_seed(6)
    dtypes = _record_table_dtypes(monkeypatch)
    worst = {}
    for spread in (0.01, 0.03, 0.05, 0.1, 0.3, 1.0):
        z, means, logvars = _one_posterior(100, 40, generator, spread)
        expected = reference_mixture(means, logvars).log_prob(z.double())
        actual = gaussian_mixture_log_prob(z.to(device), means.to(device), logvars.to(device))
        assert actual.device.type == device and actual.dtype == torch.float32
        worst[(spread, dtypes[-1])] = (actual.double().cpu() - expected).abs().max().item()
    assert {torch.float32, torch.float64} <= set(dtypes), f"one precision only: {dtypes}"
    assert max(worst.values()) < FLOAT32_TOLERANCE, worst
