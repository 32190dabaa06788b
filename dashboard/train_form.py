"""The Train page's helpers: the form's config, folder names, resumable runs, progress text.

Pure functions over checkpoint folders and job statuses (`dashboard.jobs`); no Streamlit.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from vae_core import checkpoint as ckpt
from vae_core.config import ModelConfig
from vae_core.evaluate import DEFAULT_SAMPLES
from vae_core.timing import format_duration
from vae_core.train import TrainConfig

from .jobs import JobStatus

_FOLDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def make_model_config(dataset: str, model: str, prior: str, components: int, latent_dim: int, hidden: int,
                      architecture: str = ModelConfig.architecture,
                      pixel_model: str = ModelConfig.pixel_model) -> ModelConfig:
    """The form's model: the dataset's shape, likelihood and pseudo-input init; one size for z1 and z2."""
    return ModelConfig.for_dataset(dataset, model=model, prior=prior, latent_dim=latent_dim,
                                   latent_dim_z1=latent_dim, hidden=hidden, components=components,
                                   architecture=architecture, pixel_model=pixel_model).validate()


def run_name(config: ModelConfig) -> str:
    """A readable default folder name, e.g. digits-vae-vampprior-K100-z20 (then -conv, -pixelcnn
    where the architecture or the pixel model is not the default)."""
    k = f"-K{config.components}" if config.has_components else ""
    extras = "".join(f"-{value}" for value, default in ((config.architecture, ModelConfig.architecture),
                                                         (config.pixel_model, ModelConfig.pixel_model))
                     if value != default)
    return f"{config.dataset}-{config.model}-{config.prior}{k}-z{config.latent_dim}{extras}"


def check_folder_name(name: str) -> str:
    """A plain folder name (letters, digits, . _ -), so a run cannot be written outside the runs folder."""
    name = name.strip()
    if not _FOLDER_NAME.match(name) or name in (".", ".."):
        raise ValueError(f"{name!r} is not a plain folder name: use letters, digits, '.', '_' and '-' "
                         "(at most 100, starting with a letter or digit)")
    return name


def unique_folder(root: Path, name: str) -> Path:
    """root/name, or root/name-2, name-3, ... when it is taken."""
    candidate, n = Path(root) / name, 2
    while candidate.exists():
        candidate, n = Path(root) / f"{name}-{n}", n + 1
    return candidate


def saved_configs(out: str | Path, epochs: int | None = None) -> tuple[ModelConfig, TrainConfig]:
    """The model and training settings a checkpoint folder was trained with (to resume it), with
    `epochs` replacing the planned number of epochs when given."""
    model_config, train_settings = ckpt.read_config(out)
    train_config = TrainConfig.from_dict(train_settings)
    return model_config, (train_config if epochs is None else replace(train_config, epochs=epochs))


def trained_epochs(out: str | Path) -> int:
    """Epochs a checkpoint folder has been trained for (from its resume state, else its history)."""
    out = Path(out)
    state = ckpt.read_train_state(out)
    if state is not None:
        return state["epoch"]
    return len(ckpt.read_json(out / ckpt.HISTORY_FILE)) if (out / ckpt.HISTORY_FILE).is_file() else 0


def resumable_runs(root: str | Path) -> list[Path]:
    """Folders directly under `root` holding the state to resume training (newest first)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if (p / ckpt.LAST_FILE).is_file() and (p / ckpt.CONFIG_FILE).is_file()]
    return sorted(found, key=lambda p: (p / ckpt.LAST_FILE).stat().st_mtime, reverse=True)


def progress_text(status: JobStatus) -> str:
    """The line above the progress bar."""
    epochs = status.train_config.epochs
    if status.state == "evaluating":
        return (f"evaluating the best weights: test log-likelihood with {DEFAULT_SAMPLES} importance samples, "
                f"{status.evaluated}/{status.to_evaluate} images")
    if status.active:
        current = min(status.epoch + 1, epochs)
        steps = f", step {status.step}/{status.steps}" if status.steps else ""
        what = "stopping after this epoch" if status.state == "stopping" else f"ETA {format_duration(status.eta)}"
        return f"epoch {current}/{epochs}{steps} · {what}"
    ended = {"finished": "finished", "stopped": "stopped", "failed": "failed"}[status.state]
    if status.state == "finished" and status.stopped_early:
        ended = "stopped early (the validation loss stopped improving)"
    evaluated = (f" · test metrics on {status.evaluated} images in metrics.json"
                 if status.to_evaluate and status.evaluated == status.to_evaluate else "")
    return f"{ended} after epoch {status.epoch}/{epochs} · {format_duration(status.elapsed)}{evaluated}"
