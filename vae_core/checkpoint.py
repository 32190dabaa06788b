"""Checkpoints: a folder of safetensors weights plus JSON, never a pickle.

    DIR/config.json          format tag, version, the ModelConfig and the TrainConfig
    DIR/model.safetensors    the best weights (lowest validation loss): what `load` returns; its
                             metadata names the epoch they come from
    DIR/history.json         one record per epoch (train/val loss, reconstruction, KL, seconds)
    DIR/metrics.json         test metrics written by `evaluate` (optional)
    DIR/last.safetensors     weights, optimiser moments and RNG state after the latest epoch; its
                             metadata holds the counters needed to resume (`read_train_state`)

Every file is written to a temporary name and renamed into place, so a crash leaves the previous
version intact. Loading parses JSON and raw tensors only, so it can never execute code, and every
file is checked before anything large is built from it: JSON files are capped in size and their
types checked, a safetensors header is capped and its offsets checked against the file's length,
and the tensor names, shapes and dtypes a config.json implies (from a model built on the `meta`
device, which allocates nothing) are compared with the header before the real model exists.
"""

from __future__ import annotations

import json
import math
import numbers
import struct
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
from .locking import lock_holder
from .models import build_model

FORMAT = "vampviz-checkpoint"
VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
LAST_FILE = "last.safetensors"
TRAIN_STATE_FILE = "train_state.json"  # not written: the resume counters live in last.safetensors
TRAIN_STATE_KEY = "train_state"  # the metadata entry of last.safetensors holding them (JSON)

MAX_JSON_BYTES = 8 * 2**20  # a history of 20,000 epochs; parsed, a hostile one stays ~200 MB
MAX_HEADER_BYTES = 2**20  # safetensors header: names, shapes, metadata (a few kB for our models)
# safetensors dtypes torch reads, with their sizes; weights may be float32 or float16
DTYPES = {"F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2),
          "BF16": (torch.bfloat16, 2), "I64": (torch.int64, 8), "I32": (torch.int32, 4),
          "I16": (torch.int16, 2), "I8": (torch.int8, 1), "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1)}
WEIGHT_DTYPES = {"F32", "F16"}


# --------------------------------------------------------------------------------------------
# Tensors and JSON


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    metadata = {"format": FORMAT} | (metadata or {})
    files.atomic_write_bytes(path, save_safetensors_bytes(tensors, metadata=metadata))


@dataclass(frozen=True)
class Header:
    """A safetensors file's table of contents: {name: (dtype name, shape)} and its metadata."""

    tensors: dict[str, tuple[str, tuple[int, ...]]]
    metadata: dict[str, str]


def read_header(path: Path) -> Header:
    """Parse and check a safetensors header without reading any tensor.

    The header length is capped, every tensor's dtype must be one torch reads, and its byte range
    must lie inside the file and match its shape, so a later load allocates at most the file's size.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the checkpoint is incomplete (train it again or pick another)")
    try:
        with path.open("rb") as f:
            size = path.stat().st_size
            prefix = f.read(8)
            if len(prefix) < 8:
                raise CheckpointError(f"{path} is truncated or not a safetensors file ({size} bytes)")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES:
                raise CheckpointError(f"{path} is not a safetensors file: its header claims {length:,} bytes "
                                      f"(at most {MAX_HEADER_BYTES:,})")
            if 8 + length > size:
                raise CheckpointError(f"{path} is truncated or not a safetensors file (its header claims "
                                      f"{length:,} bytes, the file has {size:,})")
            raw = f.read(length)
    except OSError as error:
        raise CheckpointError(f"{path} cannot be read ({error.strerror or error})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as error:
        raise CheckpointError(f"{path} is truncated or not a safetensors file (header: {_first_line(error)})") from None
    return _check_header(header, size - 8 - length, path)


def _check_header(header, data_size: int, path: Path) -> Header:
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a safetensors file (its header is a JSON {_kind(header)})")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path} has malformed metadata (it must map names to strings)")
    tensors = {}
    for name, entry in header.items():
        if not isinstance(entry, dict):
            raise CheckpointError(f"{path}: tensor {_short(name)} has a malformed header entry")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in DTYPES:
            raise CheckpointError(f"{path}: tensor {_short(name)} has an unsupported dtype {_short(dtype)} "
                                  f"(readable: {', '.join(DTYPES)})")
        if not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape):
            raise CheckpointError(f"{path}: tensor {_short(name)} has a malformed shape {_short(shape)}")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_size):
            raise CheckpointError(f"{path} is truncated or corrupt: tensor {_short(name)} lies outside the file")
        if offsets[1] - offsets[0] != math.prod(shape) * DTYPES[dtype][1]:
            raise CheckpointError(f"{path} is corrupt: tensor {_short(name)}'s size does not match its shape "
                                  f"{tuple(shape)}")
        tensors[name] = (dtype, tuple(shape))
    return Header(tensors, metadata)


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, after `read_header` has checked it."""
    path = Path(path)
    read_header(path)
    try:
        return load_safetensors_bytes(path.read_bytes())
    except (SafetensorError, ValueError, KeyError, TypeError, OSError) as error:
        raise CheckpointError(f"{path} is truncated or not a safetensors file ({_first_line(error)})") from None


def read_json(path: Path, max_bytes: int = MAX_JSON_BYTES):
    """Parse a JSON file of at most `max_bytes`; any problem is one CheckpointError naming the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise CheckpointError(f"{path} is too large ({size:,} bytes, at most {max_bytes:,})")
        text = path.read_bytes().decode("utf-8")
        return json.loads(text)
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except OSError as error:
        raise CheckpointError(f"{path} cannot be read ({error.strerror or error})") from None
    except RecursionError:
        raise CheckpointError(f"{path} is corrupt: nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, integers of thousands of digits
        raise CheckpointError(f"{path} is corrupt: not valid JSON ({_first_line(error)})") from None


def read_train_state(path: str | Path) -> dict | None:
    """The counters that resume a run, from last.safetensors' metadata; None when there is none.

    {"epoch", "best_val_loss", "best_epoch", "epochs_without_improvement", "history_length",
    "param_groups"}: `epoch` epochs are committed, and history.json's first `history_length`
    (= epoch) records belong to them.
    """
    last = Path(path) / LAST_FILE
    if not last.is_file():
        return None
    text = read_header(last).metadata.get(TRAIN_STATE_KEY)
    if text is None:
        raise CheckpointError(f"{last} holds no resume state; train again into another --out")
    try:
        state = json.loads(text)
    except (ValueError, RecursionError):
        raise CheckpointError(f"{last}: its resume state is not valid JSON") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{last}: its resume state is a JSON {_kind(state)}, not an object")
    counts = ("epoch", "best_epoch", "epochs_without_improvement", "history_length")
    for key in counts:
        if not _is_int(state.get(key)) or state[key] < 0:
            raise CheckpointError(f"{last}: its resume state lacks a count {key!r}; train again into another --out")
    if not _is_number(state.get("best_val_loss")):
        raise CheckpointError(f"{last}: its resume state lacks 'best_val_loss'; train again into another --out")
    if not isinstance(state.get("param_groups"), list) or not all(isinstance(g, dict) for g in state["param_groups"]):
        raise CheckpointError(f"{last}: its resume state lacks 'param_groups'; train again into another --out")
    if state["history_length"] != state["epoch"] or state["best_epoch"] > state["epoch"]:
        raise CheckpointError(f"{last}: its resume state is inconsistent (epoch {state['epoch']}, best epoch "
                              f"{state['best_epoch']}, {state['history_length']} history records)")
    return state


# --------------------------------------------------------------------------------------------
# Checking JSON contents


def _kind(value) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number" if isinstance(value, numbers.Number) else type(value).__name__)


def _short(value, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0][:200]


def _is_int(value) -> bool:  # JSON's int first: an ABC isinstance check costs ~1 µs, histories have 10^5 values
    return type(value) is int or (isinstance(value, numbers.Integral) and not isinstance(value, bool))


def _is_number(value) -> bool:
    return type(value) in (float, int) or (isinstance(value, numbers.Real) and not isinstance(value, bool))


def _check_counts(value, where: str) -> None:
    """{layer: count} with non-negative integer counts (active units)."""
    if not isinstance(value, dict) or not all(_is_int(v) and v >= 0 for v in value.values()):
        raise CheckpointError(f"{where} must map latent layers to unit counts, got {_short(value)}")


def check_history(history, source: Path) -> list[dict]:
    """history.json's contents: a list of per-epoch objects of numbers (or null), active units
    as {layer: count}. Raises a one-line CheckpointError naming the first bad record."""
    if not isinstance(history, list):
        raise CheckpointError(f"{source} must be a list of epoch records, not a JSON {_kind(history)}")
    for index, record in enumerate(history, start=1):
        if not isinstance(record, dict):
            raise CheckpointError(f"{source}: record {index} is a JSON {_kind(record)}, not an object")
        for key, value in record.items():
            if key == "active_units":
                _check_counts(value, f"{source}: record {index}'s active_units")
            elif value is not None and not _is_number(value):
                raise CheckpointError(f"{source}: record {index} has a non-numeric {_short(key)} ({_short(value)})")
    return history


_METRIC_NUMBERS = ("log_likelihood", "log_likelihood_stderr", "elbo", "reconstruction", "kl",
                   "aggregated_posterior_kl", "bits_per_dim", "samples", "n_test", "seconds")


def check_metrics(metrics, source: Path) -> dict:
    """metrics.json's contents: an object whose known fields have their types (numbers or null,
    active units as counts, the entropies as numbers); other fields are left alone."""
    if not isinstance(metrics, dict):
        raise CheckpointError(f"{source} must be a JSON object of metrics, not a JSON {_kind(metrics)}")
    for key in _METRIC_NUMBERS:
        if metrics.get(key) is not None and not _is_number(metrics[key]):
            raise CheckpointError(f"{source}: {key} must be a number, got {_short(metrics[key])}")
    if "active_units" in metrics:
        _check_counts(metrics["active_units"], f"{source}: active_units")
    entropy = metrics.get("decoder_entropy")
    if entropy is not None and not (isinstance(entropy, dict) and all(_is_number(v) for v in entropy.values())):
        raise CheckpointError(f"{source}: decoder_entropy must map draws to numbers, got {_short(entropy)}")
    activity = metrics.get("unit_activity")
    if activity is not None and not (isinstance(activity, dict) and all(
            isinstance(v, list) and all(_is_number(x) for x in v) for v in activity.values())):
        raise CheckpointError(f"{source}: unit_activity must map latent layers to lists of numbers")
    per_point = metrics.get("log_likelihood_per_point")
    if per_point is not None and not (isinstance(per_point, list) and all(_is_number(x) for x in per_point)):
        raise CheckpointError(f"{source}: log_likelihood_per_point must be a list of numbers")
    return metrics


# --------------------------------------------------------------------------------------------
# Reading


@dataclass
class CheckpointInfo:
    """What a checkpoint folder says about itself, read without building the model.

    `state`: "ready" (it has weights), "training" (no weights yet, and a live process holds the
    folder's lock), or "incomplete" (a config but no weights, and nobody training).
    """

    path: Path
    config: ModelConfig
    train_config: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    state: str = "ready"

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
        raise CheckpointError(f"{config_path} has an invalid format version {_short(version)}")
    if version > VERSION:
        raise CheckpointError(f"{config_path} was written by a newer vampviz (format {version}); upgrade")
    try:
        config = ModelConfig.from_dict(data["model"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{config_path} has an invalid model config: {_first_line(error)}") from None
    train_config = data.get("train", {})
    if not isinstance(train_config, dict):
        raise CheckpointError(f"{config_path}: the training settings must be a JSON object, "
                              f"not a JSON {_kind(train_config)}")
    return config, train_config


def expected_tensors(config: ModelConfig) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """{name: (shape, dtype)} of the state_dict `config` builds, from a model on the meta device
    (no memory is allocated, so a config asking for huge sizes costs nothing here)."""
    with torch.device("meta"):
        model = build_model(config)
    return {name: (tuple(t.shape), t.dtype) for name, t in model.state_dict().items()}


def check_tensors(found: dict[str, tuple[str, tuple[int, ...]]], expected: dict[str, tuple[tuple[int, ...], torch.dtype]],
                  source: Path) -> None:
    """Raise a one-line CheckpointError unless `found` ({name: (safetensors dtype, shape)}) has
    exactly the expected names and shapes, and dtypes that load into them (float16 or float32 for
    float32 weights, the exact dtype otherwise)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        names = ", ".join(_short(n) for n in (missing or unexpected)[:3])
        kind = "lacks" if missing else "has unexpected"
        raise CheckpointError(f"{source} {kind} tensors ({names}): it does not match its config.json")
    for name, (dtype, shape) in found.items():
        want_shape, want_dtype = expected[name]
        if shape != want_shape:
            raise CheckpointError(f"{source}: tensor {name} has shape {shape}, the config needs {want_shape}")
        allowed = WEIGHT_DTYPES if want_dtype == torch.float32 else {
            key for key, (torch_dtype, _) in DTYPES.items() if torch_dtype == want_dtype}
        if dtype not in allowed:
            raise CheckpointError(f"{source}: tensor {name} is {dtype}, the model needs {' or '.join(sorted(allowed))}")


def load_state_into(model: nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Copy `tensors` into `model` (float16 weights cast to float32), first checking that names,
    shapes and dtypes match exactly."""
    expected = {name: (tuple(t.shape), t.dtype) for name, t in model.state_dict().items()}
    names = {dtype: key for key, (dtype, _) in DTYPES.items()}
    found = {}
    for name, tensor in tensors.items():
        if tensor.dtype not in names:
            raise CheckpointError(f"{source}: tensor {_short(name)} has an unsupported dtype {tensor.dtype}")
        found[name] = (names[tensor.dtype], tuple(tensor.shape))
    check_tensors(found, expected, source)
    model.load_state_dict({name: t.to(expected[name][1]) for name, t in tensors.items()})


def weights_epoch(path: str | Path) -> int | None:
    """The epoch model.safetensors' weights come from, as its metadata records (None if unrecorded)."""
    value = read_header(Path(path) / WEIGHTS_FILE).metadata.get("epoch")
    return int(value) if value is not None and value.isdigit() else None


def read_info(path: str | Path) -> CheckpointInfo:
    """A checkpoint folder's config, history, metrics and state, every file checked; a broken
    folder raises a one-line CheckpointError.

    The weights' header is checked on its own (a truncated or foreign file is broken) but not
    against the config: that needs the meta-device build `load` does, whose first use in a process
    imports much of torch (seconds on a busy machine), too slow for listing folders."""
    path = Path(path)
    config, train_config = read_config(path)
    history = check_history(read_json(path / HISTORY_FILE), path / HISTORY_FILE) \
        if (path / HISTORY_FILE).is_file() else []
    metrics = check_metrics(read_json(path / METRICS_FILE), path / METRICS_FILE) \
        if (path / METRICS_FILE).is_file() else {}
    weights = path / WEIGHTS_FILE
    if weights.exists():
        read_header(weights)
        state = "ready"
    else:
        state = "training" if lock_holder(path) is not None else "incomplete"
    return CheckpointInfo(path, config, train_config, history, metrics, state)


def read_pseudo_inputs(path: str | Path) -> torch.Tensor | None:
    """A pseudo-input prior's K images (K, C, H, W) read from the weights alone, without building the
    model (a glance at them costs a file read); None for a prior without pseudo-inputs, or one that
    cannot be read that way (`PseudoInputPrior.pseudo_inputs_from_state`)."""
    from .priors import PseudoInputPrior

    path = Path(path)
    config, _ = read_config(path)
    if not issubclass(config.prior_class, PseudoInputPrior):
        return None
    source = path / WEIGHTS_FILE
    tensors = read_tensors(source)
    try:
        images = config.prior_class.pseudo_inputs_from_state(tensors, "prior.")
    except KeyError as error:
        raise CheckpointError(f"{source} lacks tensors ({error}): it does not match its config.json") from None
    if images is None:
        return None
    want = (config.components, *config.input_shape)
    if tuple(images.shape) != want:
        raise CheckpointError(f"{source}: the pseudo-inputs have shape {tuple(images.shape)}, the config needs {want}")
    return images


def load(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model a checkpoint folder describes, load its best weights, return it in eval mode.

    The weights' header is checked against the config before the model is built, so a config.json
    that does not match its weights fails at once, whatever sizes it asks for."""
    path = Path(path)
    config, _ = read_config(path)
    weights = path / WEIGHTS_FILE
    check_tensors(read_header(weights).tensors, expected_tensors(config), weights)
    model = build_model(config)
    load_state_into(model, read_tensors(weights), weights)
    return model.to(device).eval()


# --------------------------------------------------------------------------------------------
# Writing


def write_config(path: Path, config: ModelConfig, train_config: dict | None = None) -> None:
    payload = {"format": FORMAT, "version": VERSION, "model": config.to_dict(), "train": train_config or {}}
    files.atomic_write_json(Path(path) / CONFIG_FILE, payload)


def save_weights(path: Path, model: nn.Module, epoch: int | None = None) -> None:
    """model.safetensors; `epoch` (the one they come from) goes into its metadata."""
    metadata = {"epoch": str(epoch)} if epoch is not None else None
    save_tensors(Path(path) / WEIGHTS_FILE, model.state_dict(), metadata)


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
            if not index.isdigit():
                raise CheckpointError(f"malformed optimiser tensor name {_short(key)}")
            state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": rest["param_groups"]}
