"""Finding checkpoints: the shipped ones plus a user folder. Pure functions, no Streamlit."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from vae_core import paths
from vae_core.checkpoint import CONFIG_FILE, CheckpointInfo, read_info
from vae_core.config import ModelConfig
from vae_core.errors import VampvizError
from vae_core.paper import reported_log_likelihood

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_DIR = ROOT / "checkpoints"
PIXEL_MODEL_TITLES = {"pixelcnn": "PixelCNN"}  # how tables name a pixel model (other keys: as they are)


def pixel_model_title(config: ModelConfig) -> str:
    """How pages name the model's pixel model p(x|z) ("PixelCNN")."""
    return PIXEL_MODEL_TITLES.get(config.pixel_model, config.pixel_model)


def model_title(config: ModelConfig) -> str:
    """The model as tables and captions name it: "VAE", "HVAE", or "HVAE + PixelCNN" where p(x|z)
    is not the default model of independent pixels (the paper's PixelHVAE)."""
    if config.pixel_model == ModelConfig.pixel_model:
        return config.model.upper()
    return f"{config.model.upper()} + {pixel_model_title(config)}"


@dataclass(frozen=True)
class Entry:
    """One checkpoint folder: its info when readable, else the one-line error."""

    path: Path
    info: CheckpointInfo | None
    error: str | None = None

    @property
    def ready(self) -> bool:
        """Readable and holding weights (not broken, not still in its first epoch, not a killed run)."""
        return self.info is not None and self.info.state == "ready"

    @property
    def label(self) -> str:
        if self.info is None:
            return f"{self.path.name} (broken)"
        if not self.ready:
            return f"{self.path.name} ({self.info.state})"
        c = self.info.config
        latent = "×".join(str(v) for v in c.latent_sizes.values())
        k = f", K={c.components}" if c.has_components else ""
        return f"{c.dataset} · {model_title(c)} · {c.prior}{k} · z={latent}"


PENDING = {"training": "training: no weights until its first epoch ends",
           "incomplete": "incomplete: a config but no weights (a run killed in its first epoch?)"}


def runs_dir() -> Path:
    """Where the Train page writes new runs: $VAMPVIZ_CHECKPOINTS if set, else ~/.cache/vampviz/runs."""
    return paths.runs_dir()


def checkpoint_dirs(extra: str | Path | None = None) -> list[Path]:
    """The folders searched: shipped checkpoints, then `extra`, then the runs folder (`runs_dir`)."""
    dirs = [SHIPPED_DIR]
    for candidate in (extra, runs_dir()):
        if candidate and Path(candidate).expanduser().resolve() not in [d.resolve() for d in dirs]:
            dirs.append(Path(candidate).expanduser())
    return dirs


# read_info's results by folder, while none of the folder's files changes (every page run scans all
# checkpoints, and the shipped ones' histories hold ~1,000 validated epochs: a quarter-second a scan)
_INFO_CACHE: dict[Path, tuple[tuple, CheckpointInfo]] = {}
_INFO_LOCK = threading.Lock()


def _folder_state(path: Path) -> tuple:
    """(name, mtime_ns, size) of every file in the folder: every write is an atomic rename, so any
    change to the checkpoint changes this."""
    return tuple(sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in os.scandir(path) if e.is_file()))


def cached_info(path: Path) -> CheckpointInfo:
    """`read_info(path)`, read again only when one of the folder's files changed; raises as it does."""
    key = path.resolve()
    state = _folder_state(key)
    with _INFO_LOCK:
        found = _INFO_CACHE.get(key)
    if found is not None and found[0] == state:
        return found[1]
    info = read_info(path)
    if info.state == "ready":  # a folder being trained is read afresh: its lock's owner may die
        with _INFO_LOCK:
            _INFO_CACHE[key] = (state, info)
    return info


def find_checkpoints(dirs: list[Path]) -> list[Entry]:
    """Every folder below `dirs` (one level deep, or the folder itself) with a config.json."""
    entries: list[Entry] = []
    seen: set[Path] = set()
    for root in dirs:
        if not root.is_dir():
            continue
        candidates = [root] if (root / CONFIG_FILE).exists() else sorted(p for p in root.iterdir() if p.is_dir())
        for path in candidates:
            if not (path / CONFIG_FILE).exists() or path.resolve() in seen:
                continue
            seen.add(path.resolve())
            try:
                entries.append(Entry(path, cached_info(path)))
            except VampvizError as error:
                entries.append(Entry(path, None, str(error)))
    return entries


def summary_row(entry: Entry) -> dict:
    """One row of the Models table."""
    if entry.info is None:
        return {"checkpoint": entry.path.name, "error": entry.error}
    if not entry.ready:
        return {"checkpoint": entry.path.name, "error": None, "pending": PENDING[entry.info.state]}
    c, m = entry.info.config, entry.info.metrics
    active = m.get("active_units", {})
    return {
        "checkpoint": entry.path.name,
        "dataset": c.dataset,
        "model": model_title(c),
        "prior": c.prior,
        "K": c.components if c.has_components else None,
        "latent": " / ".join(f"{k}={v}" for k, v in c.latent_sizes.items()),
        "epochs": entry.info.epochs,
        "test LL": m.get("log_likelihood"),
        "paper LL": paper[0] if (paper := reported_log_likelihood(c)) else None,
        "ELBO": m.get("elbo"),
        "active units": " / ".join(f"{k}={v}" for k, v in active.items()) or None,
        "error": None,
    }
