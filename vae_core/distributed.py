"""Multi-process data-parallel training plumbing (torch.distributed), used by `train.train`.

`torchrun --nproc_per_node N -m vae_core train ...` starts N copies of the trainer with RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set; `init_from_env` sees them and joins the
process group (NCCL on CUDA, each rank on cuda:LOCAL_RANK; gloo on CPU). Without them, or with
WORLD_SIZE=1, it returns the trivial one-process `World`, whose methods are no-ops, so the trainer
has a single code path.

The sharding choice: `batch_size` stays the GLOBAL batch. Every rank draws the same seeded
permutation per epoch (`epoch_permutation`, like DistributedSampler with `set_epoch`), splits it
into global batches of `batch_size` exactly as one process would, and takes its contiguous slice of
each (`World.shard`): the per-rank batch is batch_size / world_size, and the union of the ranks'
slices at a step is the global batch. DDP averages the gradients over ranks; `shard_loss` makes
that average equal to the gradient of the mean loss over the global batch even when the slices are
unequal (a last, smaller batch), so N processes follow single-process training with the same global
batch (up to the random draws, which differ: each rank seeds its noise with `rank_seed`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes; the default is one process alone."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # whether `close` should destroy the process group

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch of indices (sizes differ by at most one)."""
        return batch if self.size == 1 else torch.tensor_split(batch, self.size)[self.rank]

    def all_reduce_sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sums over ranks (float64); the values themselves on one process."""
        if not self.distributed:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def broadcast_object(self, obj):
        """Rank 0's `obj` (any picklable object) on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def on_main(self, fn: Callable, *args, **kwargs):
        """Run `fn` on rank 0 only; every rank returns its result or raises the exception it raised.

        The ranks therefore agree on every decision rank 0 takes (checkpoint checks, validation,
        early stopping), and an error on rank 0 stops all of them instead of leaving the others
        waiting in a collective.
        """
        if not self.distributed:
            return fn(*args, **kwargs)
        result = error = None
        if self.is_main:
            try:
                result = fn(*args, **kwargs)
            except Exception as caught:  # noqa: BLE001 - re-raised on every rank below
                error = caught
        sent = error if error is None or _picklable(error) else RuntimeError(f"rank 0 failed: {error!r}")
        result, received = self.broadcast_object((result, sent))
        if error is not None:
            raise error
        if received is not None:
            raise received
        return result

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group if `init_from_env` created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _picklable(obj) -> bool:
    import pickle

    try:
        pickle.dumps(obj)
        return True
    except Exception:  # noqa: BLE001
        return False


def env_world_size() -> int:
    """WORLD_SIZE from a torchrun-style environment, 1 when it is not set."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env(device: torch.device) -> tuple[World, torch.device]:
    """Join the torchrun process group if the environment describes one; the device to train on.

    On CUDA each rank trains on cuda:LOCAL_RANK with NCCL; on CPU the ranks use gloo. A process
    group that the caller already initialised is reused (and left alone by `World.close`).
    """
    if env_world_size() <= 1 and not dist.is_initialized():
        return World(), device
    missing = [name for name in ENV_VARS if name not in os.environ]
    if missing and not dist.is_initialized():
        raise ValueError(f"WORLD_SIZE is set but {', '.join(missing)} is not: start multi-process "
                         "training with torchrun --nproc_per_node N -m vae_core train ...")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"multi-process training runs on CPU or CUDA, not {device.type}")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, init_method="env://", **kwargs)
        owns = True
    world = World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=local_rank, owns_group=owns)
    return world, device


def is_main_process() -> bool:
    """Rank 0 of a running process group, else per the RANK environment variable (default: yes)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def _derived_seed(*entropy: int) -> int:
    return int(np.random.SeedSequence([int(e) % 2**63 for e in entropy]).generate_state(1, np.uint64)[0] >> 1)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of n training examples for an epoch, identical on every rank (CPU)."""
    generator = torch.Generator().manual_seed(_derived_seed(seed, epoch))
    return torch.randperm(n, generator=generator)


def rank_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of a rank's random draws (binarisation, reparameterisation noise) in an epoch.

    Different on every rank, so the ranks do not repeat each other's noise, and a function of the
    epoch, so a resumed run draws what an uninterrupted one would have.
    """
    return _derived_seed(seed, epoch, rank, 1)


def shard_loss(loss: torch.Tensor, per_example_loss: Callable[[], torch.Tensor], local_size: int,
               global_size: int, world_size: int) -> torch.Tensor:
    """The loss a rank backpropagates so DDP's gradient average is that of the global-batch mean.

    DDP divides the sum of the ranks' gradients by `world_size`. With equal slices, the mean over
    the local slice (`loss`) is already right; otherwise each rank backpropagates its per-example
    sum times world_size / global_size (an empty slice then contributes zero, not NaN).
    """
    if local_size * world_size == global_size:
        return loss
    return per_example_loss().sum() * (world_size / global_size)


def unused_parameters(model: nn.Module, x: torch.Tensor, **forward_kwargs) -> list[str]:
    """Names of the parameters that get no gradient from `model(x).loss` (DDP's find_unused_parameters).

    One forward/backward on a small batch, with the random state restored afterwards so the
    probe does not change what training draws.
    """
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        model.zero_grad(set_to_none=True)
        model(x, **forward_kwargs).loss.backward()
    unused = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    model.zero_grad(set_to_none=True)
    return unused


def wrap(model: nn.Module, device: torch.device, find_unused_parameters: bool) -> nn.Module:
    """`model` inside DistributedDataParallel (the whole model: the VampPrior's pseudo-inputs included).

    DDP broadcasts rank 0's parameters at construction and averages gradients in backward; its
    forward returns the model's `ModelOutput` unchanged.
    """
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused_parameters)
