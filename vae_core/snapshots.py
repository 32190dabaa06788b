"""Training snapshots: what the prior and the decoder look like at chosen epochs, for replay.

    DIR/snapshots/epoch-0005.safetensors

Each snapshot holds `samples`, images decoded from FIXED noise (the same seeded component choices
and standard-normal draws at every epoch, so two epochs differ only by what the model learned),
and the prior's "heads": the pseudo-inputs of a VampPrior, or the decoded means of a mixture of
Gaussians (a standard normal prior has neither). Images are stored as float16 in [0, 1], enough for
display at a quarter of float64's size. Writing never touches the global RNG, so a run with
snapshots trains exactly like one without. Where each image takes a pass per pixel (a PixelCNN
p(x|z)), a snapshot holds AUTOREGRESSIVE_IMAGES samples and decoded means (the first ones of K),
so that it costs less than an epoch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import read_tensors, save_tensors
from .errors import CheckpointError
from .priors import MixturePrior

SNAPSHOT_DIR = "snapshots"
SAMPLES = 64
AUTOREGRESSIVE_IMAGES = 16  # samples and decoded mixture means of an autoregressive p(x|z)
_NAME = re.compile(r"^epoch-(\d+)\.safetensors$")


@dataclass(frozen=True)
class Snapshot:
    epoch: int
    samples: np.ndarray  # (n, C, H, W) float32 in [0, 1], decoded from the fixed noise
    pseudo_inputs: np.ndarray | None = None  # (K, C, H, W): a VampPrior's u_k
    decoded_means: np.ndarray | None = None  # (K, C, H, W): a mixture prior's means, decoded (maybe the first few)
    components: int | None = None  # K of the prior, where it has components

    @property
    def heads(self) -> np.ndarray | None:
        """The prior's components as images (pseudo-inputs or decoded means), or None."""
        return self.pseudo_inputs if self.pseudo_inputs is not None else self.decoded_means


def snapshot_path(out: str | Path, epoch: int) -> Path:
    return Path(out) / SNAPSHOT_DIR / f"epoch-{epoch:04d}.safetensors"


def is_due(epoch: int, every: int, last: bool = False) -> bool:
    """Whether to snapshot after 1-based `epoch`: the first, every `every`-th and the last one."""
    return every > 0 and (epoch == 1 or epoch % every == 0 or last)


def fixed_latents(model: nn.Module, num_samples: int, seed: int) -> torch.Tensor:
    """z on the prior's layer from noise that depends only on `seed`: (num_samples, D).

    A mixture prior draws component k_i and eps_i from a private generator and maps them through
    this epoch's components, z_i = m_{k_i} + s_{k_i} * eps_i; a standard normal prior uses z_i = eps_i.
    """
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    latent_dim = model.prior.latent_dim
    if not isinstance(model.prior, MixturePrior):
        return torch.randn(num_samples, latent_dim, generator=generator).to(device)
    means, logvars = model.prior.components()  # (K, D) each
    index = torch.randint(means.shape[0], (num_samples,), generator=generator).to(device)
    eps = torch.randn(num_samples, latent_dim, generator=generator).to(device)
    return means[index] + torch.exp(0.5 * logvars[index]) * eps


@torch.no_grad()
def save_snapshot(out: str | Path, epoch: int, model: nn.Module, num_samples: int | None = None,
                  seed: int = 0) -> Path:
    """Write `out/snapshots/epoch-NNNN.safetensors` atomically; returns its path. `num_samples`:
    SAMPLES by default, AUTOREGRESSIVE_IMAGES for an autoregressive p(x|z)."""
    autoregressive = model.likelihood.autoregressive
    few = AUTOREGRESSIVE_IMAGES if autoregressive else None
    was_training = model.training
    model.eval()
    try:
        tensors = {"samples": model.decode(fixed_latents(model, num_samples or few or SAMPLES, seed))}
        prior = model.prior
        if isinstance(prior, MixturePrior):
            name = "pseudo_inputs" if prior.images_are_inputs else "decoded_means"
            tensors[name] = prior.component_images(model.decode, max_decoded=few)
            tensors["components"] = torch.tensor(prior.num_components, dtype=torch.int64)
    finally:
        model.train(was_training)
    tensors = {name: t.to(torch.float16) if t.is_floating_point() else t for name, t in tensors.items()}
    tensors["epoch"] = torch.tensor(epoch, dtype=torch.int64)
    path = snapshot_path(out, epoch)
    save_tensors(path, tensors)
    return path


def list_snapshots(out: str | Path) -> list[tuple[int, Path]]:
    """(epoch, path) of every snapshot in a checkpoint folder, by epoch; [] when there are none."""
    folder = Path(out) / SNAPSHOT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def load_snapshot(path: str | Path) -> Snapshot:
    """Read one snapshot file (raises CheckpointError when it is missing or truncated)."""
    tensors = read_tensors(Path(path))
    if "samples" not in tensors or "epoch" not in tensors:
        raise CheckpointError(f"{path} is not a vampviz training snapshot (no samples or epoch)")

    def image(name: str) -> np.ndarray | None:
        return tensors[name].float().numpy() if name in tensors else None

    components = int(tensors["components"]) if "components" in tensors and tensors["components"].numel() == 1 else None
    return Snapshot(int(tensors["epoch"]), image("samples"), image("pseudo_inputs"), image("decoded_means"),
                    components)
