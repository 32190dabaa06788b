"""Reproducible randomness that leaves the caller's random state alone."""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | str | None = None):
    """Run the block with torch's RNG seeded to `seed`, then restore the previous state.

    The CPU generator is always forked; a CUDA `device`'s generator is forked and seeded too, so
    draws made there are reproducible as well.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield
