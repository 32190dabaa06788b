"""Checkpoints: a folder of safetensors weights plus JSON, never a pickle.

    DIR/config.json          format tag, version, the ModelConfig and the TrainConfig
    DIR/model.safetensors    the best weights (lowest validation loss): what `load` returns
    DIR/history.json         one record per epoch (train/val loss, reconstruction, KL, seconds)
    DIR/metrics.json         test metrics written by `evaluate` (optional)
    DIR/last.safetensors     weights, optimiser moments and RNG state after the latest epoch
    DIR/train_state.json     counters needed to resume (epoch, best loss, patience)

Every file is written to a temporary name and renamed into place, so a crash leaves the previous
version intact. Loading parses JSON and raw tensors only, so it can never execute code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from . import files
from .config import ModelConfig
from .errors import CheckpointError
from .models import build_model

FORMAT = "vampviz-checkpoint"
VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
LAST_FILE = "last.safetensors"
TRAIN_STATE_FILE = "train_state.json"


# --------------------------------------------------------------------------------------------
# Tensors and JSON


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    files.atomic_write_bytes(path, save_safetensors_bytes(tensors, metadata={"format": FORMAT}))


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the checkpoint is incomplete (train it again or pick another)")
    try:
        return load_safetensors_bytes(path.read_bytes())
    except (SafetensorError, ValueError, OSError) as error:
        raise CheckpointError(f"{path} is truncated or not a safetensors file ({error})") from None


def read_json(path: Path):
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is corrupt: not valid JSON ({error})") from None


# --------------------------------------------------------------------------------------------
# Reading


@dataclass
class CheckpointInfo:
    """What a checkpoint folder says about itself, read without building the model."""

    path: Path
    config: ModelConfig
    train_config: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        return len(self.history)


def read_config(path: str | Path) -> tuple[ModelConfig, dict]:
    """The ModelConfig and the training settings (a dict) of a checkpoint folder."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint folder")
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"{config_path} is missing: {path} is not a vampviz checkpoint")
    data = read_json(config_path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{config_path} is not a vampviz checkpoint config (no format tag {FORMAT!r})")
    version = data.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(f"{config_path} has an invalid format version {version!r}")
    if version > VERSION:
        raise CheckpointError(f"{config_path} was written by a newer vampviz (format {version}); upgrade")
    try:
        config = ModelConfig.from_dict(data["model"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{config_path} has an invalid model config: {error}") from None
    return config, data.get("train", {})


def read_info(path: str | Path) -> CheckpointInfo:
    path = Path(path)
    config, train_config = read_config(path)
    history = read_json(path / HISTORY_FILE) if (path / HISTORY_FILE).is_file() else []
    metrics = read_json(path / METRICS_FILE) if (path / METRICS_FILE).is_file() else {}
    return CheckpointInfo(path, config, train_config, history, metrics)


def load_state_into(model: nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Copy `tensors` into `model`, first checking that names and shapes match exactly."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        names = ", ".join((missing or unexpected)[:3])
        kind = "lacks" if missing else "has unexpected"
        raise CheckpointError(f"{source} {kind} tensors ({names}): it does not match its config.json")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{source}: tensor {name} has shape {tuple(tensor.shape)}, the config needs "
                f"{tuple(expected[name].shape)}"
            )
    model.load_state_dict(tensors)


def load(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model a checkpoint folder describes, load its best weights, return it in eval mode."""
    path = Path(path)
    config, _ = read_config(path)
    model = build_model(config)
    load_state_into(model, read_tensors(path / WEIGHTS_FILE), path / WEIGHTS_FILE)
    return model.to(device).eval()


# --------------------------------------------------------------------------------------------
# Writing


def write_config(path: Path, config: ModelConfig, train_config: dict | None = None) -> None:
    payload = {"format": FORMAT, "version": VERSION, "model": config.to_dict(), "train": train_config or {}}
    files.atomic_write_json(Path(path) / CONFIG_FILE, payload)


def save_weights(path: Path, model: nn.Module) -> None:
    save_tensors(Path(path) / WEIGHTS_FILE, model.state_dict())


def write_metrics(path: Path, metrics: dict) -> None:
    files.atomic_write_json(Path(path) / METRICS_FILE, metrics)


def save(path: str | Path, model: nn.Module, config: ModelConfig, history: list[dict] | None = None,
         metrics: dict | None = None, train_config: dict | None = None) -> Path:
    """Write a complete checkpoint folder (weights last, so a folder with weights is whole)."""
    path = Path(path)
    write_config(path, config, train_config)
    files.atomic_write_json(path / HISTORY_FILE, history or [])
    if metrics is not None:
        write_metrics(path, metrics)
    save_weights(path, model)
    return path


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser's state into flat tensors and a JSON-able rest."""
    state = optimizer.state_dict()
    tensors = {
        f"optimizer.{index}.{name}": value
        for index, entries in state["state"].items()
        for name, value in entries.items()
    }
    return tensors, {"param_groups": state["param_groups"]}


def optimizer_state(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": rest["param_groups"]}
