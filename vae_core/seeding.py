"""Reproducible randomness that leaves the caller's random state alone."""

from __future__ import annotations

import contextlib

import torch


def untouched(device: torch.device | str | None = None):
    """A context whose draws leave torch's RNG as they found it: the CPU generator, and a CUDA
    `device`'s too."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | str | None = None):
    """Run the block with torch's RNG seeded to `seed`, then restore the previous state.

    The CPU generator is always forked; a CUDA `device`'s generator is forked and seeded too, so
    draws made there are reproducible as well.
    """
    with untouched(device):
        torch.manual_seed(seed)
        yield


def rng_state(device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """The generators a computation on `device` draws from: {"rng.torch": CPU state} and, for a CUDA
    device, "rng.cuda" (its own generator). uint8 tensors, as safetensors stores them."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    states = {"rng.torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["rng.cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_state(states: dict[str, torch.Tensor], device: torch.device | str | None = None) -> None:
    """Restore what `rng_state` returned (a CUDA state only onto a CUDA device)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    torch.set_rng_state(states["rng.torch"])
    if "rng.cuda" in states and device.type == "cuda":
        torch.cuda.set_rng_state(states["rng.cuda"], device)
