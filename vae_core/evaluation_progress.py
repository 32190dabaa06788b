"""An evaluation's progress file, so that a long one stopped at any moment goes on where it was.

At S = 5000 the test log-likelihood of the paper's models takes hours on a CPU. While it runs,
`Saver` writes the values so far, the RNG state after them and the chunking (an
`evaluate.PartialLogLikelihood`) into the checkpoint folder at most every `SAVE_EVERY_SECONDS`,
atomically. `load` gives it back to the next run of the same evaluation, whose results are then
exactly those of a run never stopped. What "the same" means is `progress_key`: the weights' and
test images' checksums, S, the seed and the device type. A file made otherwise, or damaged, is
set aside with a one-line note and the evaluation starts over: it is a cache, never an error.

The file is safetensors (float64 values, uint8 RNG states) with JSON-free string metadata: no
pickle, sizes checked against the header before anything is read.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt
from .errors import CheckpointError
from .evaluate import PartialLogLikelihood
from .release import weights_sha256

PROGRESS_FILE = "evaluate.partial.safetensors"
FORMAT = "vampviz-partial-evaluation"
SAVE_EVERY_SECONDS = 60.0
MAX_RNG_BYTES = 1 << 16  # a CPU generator's state is 5,056 bytes, a CUDA one's 16
KEY_FIELDS = ("samples", "n_test", "seed", "device_type", "weights_sha256", "images_sha256")


def progress_key(checkpoint_dir: str | Path, images, samples: int, seed: int, device: torch.device | str) -> dict[str, str]:
    """What a saved evaluation must share with this one to be resumed (strings, as metadata is)."""
    data = np.ascontiguousarray(images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images))
    return {
        "samples": str(samples),
        "n_test": str(len(data)),
        "seed": str(seed),
        "device_type": torch.device(device).type,
        "weights_sha256": weights_sha256(checkpoint_dir),
        "images_sha256": hashlib.sha256(data.tobytes()).hexdigest() + f":{data.dtype}:{data.shape}",
    }


def save(checkpoint_dir: str | Path, key: dict[str, str], partial: PartialLogLikelihood, seconds: float) -> None:
    """Write `partial` (and the evaluation's seconds so far) atomically into the folder."""
    tensors = {"log_likelihood": torch.from_numpy(np.array(partial.values, dtype=np.float64))} | partial.rng
    metadata = key | {"points_per_chunk": str(partial.points_per_chunk),
                      "samples_per_chunk": str(partial.samples_per_chunk), "seconds": repr(float(seconds))}
    ckpt.save_tensors(Path(checkpoint_dir) / PROGRESS_FILE, tensors, {"format": FORMAT} | metadata)


def _count(metadata: dict[str, str], name: str, low: int, high: int) -> int:
    text = metadata.get(name, "")
    if not text.isdigit() or not low <= int(text) <= high:
        raise CheckpointError(f"its {name} is {text[:20]!r}, not a count from {low} to {high}")
    return int(text)


def _read(path: Path, key: dict[str, str]) -> tuple[PartialLogLikelihood, float]:
    header = ckpt.read_header(path)
    meta = header.metadata
    if meta.get("format") != FORMAT:
        raise CheckpointError("it is not a vampviz evaluation progress file")
    n_test, samples = int(key["n_test"]), int(key["samples"])
    expected = {"log_likelihood": ("F64", 1, n_test * 8), "rng.torch": ("U8", 1, MAX_RNG_BYTES),
                "rng.cuda": ("U8", 1, MAX_RNG_BYTES)}
    for name, (dtype, shape) in header.tensors.items():
        if name not in expected:
            raise CheckpointError(f"it holds an unexpected tensor {name[:40]!r}")
        want, ndim, max_bytes = expected[name]
        if dtype != want or len(shape) != ndim or math.prod(shape) * ckpt.DTYPES[dtype][1] > max_bytes:
            raise CheckpointError(f"its tensor {name} is {dtype} {shape}, not {want} of at most {max_bytes:,} bytes")
    if "log_likelihood" not in header.tensors or "rng.torch" not in header.tensors:
        raise CheckpointError("it lacks the values or the RNG state")
    mismatched = [name for name in KEY_FIELDS if meta.get(name) != key[name]]
    if mismatched:
        raise CheckpointError(f"it was made with another {' / '.join(mismatched)}")
    points = _count(meta, "points_per_chunk", 1, max(1, n_test))
    samples_per_chunk = _count(meta, "samples_per_chunk", 1, samples)
    try:
        seconds = float(meta.get("seconds", "0"))
    except ValueError:
        raise CheckpointError("its seconds are not a number") from None
    tensors = ckpt.read_tensors(path)
    values = tensors["log_likelihood"].numpy()
    if np.isnan(values).any():
        raise CheckpointError("its values include NaN")
    try:  # a state torch refuses must fail here, not halfway into the evaluation
        torch.Generator().set_state(tensors["rng.torch"])
    except (RuntimeError, TypeError) as error:
        raise CheckpointError(f"its RNG state is invalid ({str(error).splitlines()[0]})") from None
    rng = {name: t for name, t in tensors.items() if name.startswith("rng.")}
    return PartialLogLikelihood(values, rng, points, samples_per_chunk), seconds if math.isfinite(seconds) else 0.0


def load(checkpoint_dir: str | Path, key: dict[str, str]) -> tuple[PartialLogLikelihood | None, float, str | None]:
    """(the saved progress of this evaluation or None, its seconds so far, a one-line note or None).

    A file of another evaluation, or one that cannot be read, gives None and a note saying why the
    evaluation starts over; nothing is raised.
    """
    path = Path(checkpoint_dir) / PROGRESS_FILE
    if not path.is_file():
        return None, 0.0, None
    try:
        partial, seconds = _read(path, key)
    except CheckpointError as error:
        reason = str(error).removeprefix(f"{path} ").removeprefix(f"{path}: ")
        return None, 0.0, f"{path} is set aside ({reason}); the evaluation starts over"
    return partial, seconds, None


def discard(checkpoint_dir: str | Path) -> None:
    """Delete the folder's progress file (the evaluation it belonged to is finished)."""
    (Path(checkpoint_dir) / PROGRESS_FILE).unlink(missing_ok=True)


class Saver:
    """The `commit` callback of `evaluate`: saves at most every `every` seconds, and always the
    first time after the evaluation has run that long. `seconds()` is the evaluation's total time,
    the earlier runs' `before` included."""

    def __init__(self, checkpoint_dir: str | Path, key: dict[str, str], before: float = 0.0,
                 every: float | None = None):
        self.folder, self.key, self.before = Path(checkpoint_dir), key, before
        self.every = SAVE_EVERY_SECONDS if every is None else every
        self.started = self.last = time.monotonic()

    def seconds(self) -> float:
        return self.before + time.monotonic() - self.started

    def __call__(self, partial: PartialLogLikelihood) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            save(self.folder, self.key, partial, self.before + now - self.started)
            self.last = now
