"""Multi-process (DistributedDataParallel, gloo on CPU) training against one-process training.

The main test trains the same tiny model twice with the same seed and the same GLOBAL batch of
100: once in this process, once in 2 processes spawned with torch.distributed (each process sees
the torchrun environment variables, so `train()` itself detects the world and joins it). Done
naively the two runs could never agree, because each rank draws its own binarisation and
reparameterisation noise; so, in both runs alike,

- the training images are binarised once up front (dynamic binarisation of a 0/1 image is the
  identity, so it draws nothing that matters);
- the reparameterisation noise is a fixed function of the posterior mean (`_fixed_noise`): every
  example gets the same eps whichever process handles it;
- the epoch order is the distributed run's seeded permutation (one process otherwise uses the
  global RNG).

What remains is exactly what the distributed plumbing must get right: each rank's slice of each
global batch, the loss weighting (digits has 1,297 training images, so the last batch of 97 splits
49/48 and the unweighted mean would be wrong), DDP's gradient averaging over the whole model
including the VampPrior's pseudo-inputs, the all-reduced epoch statistics and rank-0 validation.
After 2 epochs (26 Adam steps, KL warm-up on), the per-epoch train and validation losses and every
weight must match the one-process run to float tolerance, the two ranks' weights must be
identical, and only rank 0 may have written files. A smoke test runs the real CLI under torchrun.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

import vae_core.checkpoint as ckpt
from tests.ports import free_port
from vae_core import distributed, files, models
from vae_core.config import ModelConfig
from vae_core.data import DatasetSplits, load_dataset
from vae_core.models import build_model
from vae_core.train import TrainConfig, train

train_module = importlib.import_module("vae_core.train")  # the package's `train` attribute is the function
PRIORS = ("standard", "vampprior")
WORLD_SIZE = 2
EXPECTED_FILES = {"config.json", "history.json", "last.safetensors", "model.safetensors"}
TIMEOUT_S = 120




def _model_config(prior: str) -> ModelConfig:
    return ModelConfig(prior=prior, dataset="digits", input_shape=(1, 8, 8), hidden=16, latent_dim=4,
                       components=10, pseudo_init_mean=0.3, pseudo_init_std=0.05)


TRAIN_CONFIG = TrainConfig(epochs=2, batch_size=100, warmup=2, seed=3, device="cpu")


def _binary_digits() -> DatasetSplits:
    data = load_dataset("digits")
    x_train = (np.random.default_rng(0).random(data.x_train.shape) < data.x_train).astype(np.float32)
    return DatasetSplits(x_train, data.x_val, data.x_test)


def _fixed_noise(mean, logvar, num_samples=None):
    """reparameterize() with eps a fixed function of the mean: the same for an example on any rank."""
    assert num_samples is None
    eps = torch.sin(1.0 + 13.0 * mean).detach()
    return mean + torch.exp(0.5 * logvar) * eps


def _shared_order(n, epoch, seed, device, world):
    return distributed.epoch_permutation(n, seed, epoch).to(device)


def _make_deterministic(setattr_) -> list:
    """Apply the patches of the module docstring; returns a list that collects the built models."""
    built = []

    def build_and_keep(*args, **kwargs):
        built.append(build_model(*args, **kwargs))
        return built[-1]

    setattr_(models, "reparameterize", _fixed_noise)
    setattr_(train_module, "_epoch_order", _shared_order)
    setattr_(train_module, "build_model", build_and_keep)
    return built


def _worker(rank: int, ports: list[int], tmp: str, data: DatasetSplits) -> None:
    """One rank: the torchrun environment, then train() for each prior; saves what the test checks."""
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE), MASTER_ADDR="127.0.0.1")
    built = _make_deterministic(setattr)
    writes = []
    original_write = files.atomic_write_bytes

    def recording_write(path, payload):
        writes.append(str(path))
        original_write(path, payload)

    files.atomic_write_bytes = recording_write
    for prior, port in zip(PRIORS, ports):
        os.environ["MASTER_PORT"] = str(port)
        result = train(_model_config(prior), TRAIN_CONFIG, Path(tmp) / prior, data=data)
        weights = {k: v.clone() for k, v in built[-1].state_dict().items()}
        torch.save({"history": result.history, "weights": weights, "writes": writes[:]},
                   Path(tmp) / f"{prior}-rank{rank}.pt")
        writes.clear()


def _spawn(tmp: Path, data: DatasetSplits) -> None:
    ports = [free_port() for _ in PRIORS]
    context = mp.start_processes(_worker, args=(ports, str(tmp), data), nprocs=WORLD_SIZE, join=False,
                                 start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"distributed training did not finish in {TIMEOUT_S} s")


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    _spawn(tmp, _binary_digits())
    return tmp


@pytest.mark.parametrize("prior", PRIORS)
def test_two_processes_match_one_process_with_the_same_global_batch(prior, two_process_runs, tmp_path, monkeypatch):
    built = _make_deterministic(monkeypatch.setattr)
    single = train(_model_config(prior), TRAIN_CONFIG, tmp_path / prior, data=_binary_digits())
    single_weights = built[-1].state_dict()
    ranks = [torch.load(two_process_runs / f"{prior}-rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]

    # the ranks stay in lockstep: identical weights and identical (rank 0's) history
    for name, tensor in ranks[0]["weights"].items():
        assert torch.equal(tensor, ranks[1]["weights"][name]), name
    assert ranks[0]["history"] == ranks[1]["history"]

    # and follow one-process training with the same global batch
    for multi, one in zip(ranks[0]["history"], single.history, strict=True):
        for key in ("train_loss", "train_reconstruction", "train_kl", "val_loss"):
            assert multi[key] == pytest.approx(one[key], rel=1e-6), (multi["epoch"], key)
    assert single.history[-1]["train_loss"] < single.history[0]["train_loss"]  # it did learn
    # Tight on purpose: the runs differ by ~1e-7 here, while averaging the ranks' unweighted means
    # over the 49/48 last batches (no `shard_loss`) already moves the weights by ~2e-5.
    for name, tensor in single_weights.items():
        torch.testing.assert_close(ranks[0]["weights"][name], tensor, rtol=2e-6, atol=2e-6, msg=name)

    # the checkpoint rank 0 wrote is the trained model, and nobody else wrote anything
    saved = ckpt.read_tensors(two_process_runs / prior / ckpt.LAST_FILE)
    torch.testing.assert_close(saved["model.encoder.head.mean.weight"], ranks[0]["weights"]["encoder.head.mean.weight"])
    assert ranks[1]["writes"] == []
    assert {Path(p).name for p in ranks[0]["writes"]} == EXPECTED_FILES
    assert {p.name for p in (two_process_runs / prior).iterdir()} == EXPECTED_FILES


def test_vampprior_pseudo_inputs_are_trained_in_sync(two_process_runs):
    ranks = [torch.load(two_process_runs / f"vampprior-rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]
    torch.manual_seed(TRAIN_CONFIG.seed)
    initial = build_model(_model_config("vampprior"), train_images=_binary_digits().x_train)
    start = initial.prior.pseudo_input_params.detach()
    trained = [r["weights"]["prior.pseudo_input_params"] for r in ranks]
    assert (trained[0] - start).abs().max() > 1e-4  # they received gradients ...
    assert torch.equal(trained[0], trained[1])  # ... synchronised across ranks


def test_shards_partition_each_global_batch():
    order = distributed.epoch_permutation(1297, seed=5, epoch=1)
    assert torch.equal(order, distributed.epoch_permutation(1297, seed=5, epoch=1))
    assert not torch.equal(order, distributed.epoch_permutation(1297, seed=5, epoch=2))
    worlds = [distributed.World(rank=r, size=3) for r in range(3)]
    for batch in order.split(100):
        shards = [w.shard(batch) for w in worlds]
        assert torch.equal(torch.cat(shards), batch)
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    seeds = {distributed.rank_seed(0, epoch, rank) for epoch in (1, 2) for rank in range(4)}
    assert len(seeds) == 8


def test_shard_loss_weights_uneven_slices_to_the_global_mean():
    per_example = torch.arange(1.0, 8.0)  # a global batch of 7 split 4/3 over 2 ranks
    shares = [distributed.shard_loss(part.mean(), lambda part=part: part, len(part), 7, 2)
              for part in (per_example[:4], per_example[4:])]
    assert sum(shares) / 2 == pytest.approx(per_example.mean().item())  # DDP averages over ranks
    local_mean = per_example[:3].mean()  # equal slices: the local mean is already right
    assert distributed.shard_loss(local_mean, lambda: per_example[:3], 3, 6, 2) is local_mean
    empty = distributed.shard_loss(torch.tensor(float("nan")), lambda: per_example[:0], 0, 1, 2)
    assert empty.item() == 0.0


@pytest.mark.parametrize("model,prior", [("vae", "standard"), ("vae", "mog"), ("vae", "vampprior"),
                                         ("hvae", "vampprior")])
def test_every_parameter_gets_a_gradient(model, prior):
    config = dataclasses.replace(_model_config(prior), model=model)
    net = build_model(config)
    assert distributed.unused_parameters(net, torch.rand(2, 1, 8, 8)) == []
    assert all(p.grad is None for p in net.parameters())


def test_one_process_world_is_trivial(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    world, device = distributed.init_from_env(torch.device("cpu"))
    assert (world.rank, world.size, world.distributed, world.is_main) == (0, 1, False, True)
    assert world.on_main(lambda: 7) == 7
    assert world.all_reduce_sum([1.0, 2.0], device) == [1.0, 2.0]


@pytest.mark.slow  # three more Python processes importing torch: ~15-20 s on 2 busy cores
def test_torchrun_cli(tmp_path):
    """`torchrun --nproc_per_node 2 -m vae_core train` trains, prints once and writes one checkpoint."""
    out = tmp_path / "run"
    root = Path(__file__).resolve().parents[1]
    env = os.environ | {"OMP_NUM_THREADS": "1",
                        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(WORLD_SIZE),
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "vae_core", "train",
               "--hidden", "16", "--latent-dim", "4", "-K", "10", "--epochs", "1", "--device", "cpu",
               "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, env=env, cwd=root,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("finished after 1 epochs") == 1
    assert {p.name for p in out.iterdir()} == EXPECTED_FILES
    assert len(json.loads((out / "history.json").read_text())) == 1
