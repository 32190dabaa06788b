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
