"""Background training jobs: one thread per job, one registry per server process. No Streamlit.

A job runs `vae_core.train.train` into one checkpoint folder in a daemon thread, so the page that
started it keeps answering. Every session of the server (every browser tab) reads the same
process-wide `REGISTRY`, keyed by the folder's absolute path, so a second tab sees a running job.

Two guards keep two jobs out of one folder (different folders are independent: train() writes only
inside its own):
- in this process, `start` refuses a folder whose job is still running: `JobAlreadyRunning`
  carries that job's status, so the page shows it instead of starting a duplicate;
- across processes (two servers, or a server and `python -m vae_core train`), the folder's lock
  file (`vae_core.locking`) refuses a second trainer with `FolderLocked`.

Threads, not processes: a process would start by importing torch, seconds on a busy machine, and the
models trained here are small. The cost: jobs share torch's global RNG with each other and with the
pages, so a run trained here is valid but not bit-for-bit reproducible (train with the CLI for that).
At interpreter exit, running jobs are asked to stop and given a few seconds; a job cut short keeps
a consistent checkpoint anyway, since every file is written atomically.

A job that trains to the end (its epochs, or early stopping) then evaluates the best weights as
`python -m vae_core evaluate` does (S = 5000 importance samples, on at most `EVAL_MAX_IMAGES` test
images) and writes metrics.json, so the run's pages show its test metrics like a shipped
checkpoint's; the stop button skips that step.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from vae_core import checkpoint as ckpt
from vae_core.config import ModelConfig
from vae_core.data import DatasetSplits, get_spec, load_dataset
from vae_core.errors import CheckpointError, VampvizError
from vae_core.evaluate import DEFAULT_SAMPLES, evaluate
from vae_core.locking import acquire_lock, release_lock
from vae_core.train import Progress, TrainConfig, check_output_folder, resolve_device, train

ACTIVE_STATES = ("running", "evaluating", "stopping")
EVAL_MAX_IMAGES = 1000  # test images evaluated after training (all of digits' 360; a sample of larger sets)
_log = logging.getLogger(__name__)


class JobError(VampvizError):
    """A job cannot start (the message is one line for the page)."""


class JobAlreadyRunning(JobError):
    def __init__(self, status: JobStatus):
        super().__init__(f"a job is already training into {status.out}; showing its progress")
        self.status = status


# --------------------------------------------------------------------------------------------
# What a page sees


@dataclass(frozen=True)
class JobStatus:
    out: Path
    state: str  # running | stopping | finished | stopped | failed
    model_config: ModelConfig
    train_config: TrainConfig
    history: list[dict]  # every epoch so far, including those before a resume
    epoch: int  # epochs completed
    step: int  # steps done in the current epoch
    steps: int  # steps per epoch (0 until the first step)
    started: float  # time.time() when this job started
    elapsed: float  # seconds since then (until the end, once finished)
    first_epoch: int  # epochs already done when it started (a resumed job starts past 0)
    eta: float | None = None  # seconds left at the pace since the first step (None: unknown or ended)
    error: str | None = None
    stopped_early: bool = False
    evaluated: int = 0  # test images evaluated so far after training
    to_evaluate: int = 0  # test images the evaluation covers (0: none started)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def resumable(self) -> bool:
        """Whether the folder holds the state to continue training (after at least one epoch)."""
        return not self.active and (self.out / ckpt.LAST_FILE).is_file()

    @property
    def fraction(self) -> float:
        """Share of the planned epochs done, counting the current epoch's steps, in [0, 1]; while
        evaluating, the share of test images done."""
        if self.state == "evaluating":
            return self.evaluated / self.to_evaluate if self.to_evaluate else 0.0
        return done_fraction(self.epoch, self.step if self.active else 0, self.steps, self.train_config.epochs)


def done_fraction(epoch: int, step: int, steps: int, epochs: int) -> float:
    """(epochs completed + this epoch's share of steps) / planned epochs, at most 1."""
    return min(1.0, (epoch + (step / steps if steps else 0.0)) / epochs)


def eta_seconds(seconds: float, fraction_then: float, fraction_now: float) -> float | None:
    """Seconds left if the pace from `fraction_then` to `fraction_now` in `seconds` holds (an upper
    bound: early stopping may end sooner); None before any progress."""
    done = fraction_now - fraction_then
    return None if done <= 0 or seconds <= 0 else seconds / done * (1.0 - fraction_now)


class _EvaluationSkipped(Exception):
    """Raised from the evaluation's progress callback when the stop button is pressed."""


class _Job:
    """The mutable side of a job; the training thread writes it, pages read `status()` copies."""

    def __init__(self, out: Path, model_config: ModelConfig, train_config: TrainConfig, history: list[dict]):
        self.out, self.model_config, self.train_config = out, model_config, train_config
        self.history = list(history)
        self.first_epoch = self.epoch = len(history)
        self.step = self.steps = 0
        self.state, self.error, self.stopped_early = "running", None, False
        self.evaluated = self.to_evaluate = 0
        self.started, self.ended = time.time(), None
        self.pace_from: tuple[float, float] | None = None  # (time, fraction) at the first step: loading excluded
        self.stop_requested = threading.Event()
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def on_progress(self, p: Progress) -> None:
        with self._lock:
            self.step, self.steps = p.step, p.steps
            if p.record is not None:
                self.history.append(p.record)
                self.epoch, self.step = p.epoch, 0
            if self.pace_from is None:
                self.pace_from = time.time(), done_fraction(self.epoch, self.step, self.steps, p.epochs)

    def begin_evaluation(self, images: int) -> None:
        with self._lock:
            if self.state == "running":
                self.state, self.evaluated, self.to_evaluate = "evaluating", 0, images

    def on_eval_progress(self, done: int, total: int) -> None:
        if self.stop_requested.is_set():
            raise _EvaluationSkipped
        with self._lock:
            self.evaluated, self.to_evaluate = done, total

    def request_stop(self) -> None:
        with self._lock:
            self.stop_requested.set()
            if self.state in ("running", "evaluating"):
                self.state = "stopping"

    def finish(self, state: str, error: str | None = None, stopped_early: bool = False) -> None:
        with self._lock:
            self.state, self.error, self.stopped_early, self.ended = state, error, stopped_early, time.time()

    def status(self) -> JobStatus:
        with self._lock:
            now = time.time()
            eta = None
            if self.pace_from is not None and self.state in ACTIVE_STATES:
                fraction = done_fraction(self.epoch, self.step, self.steps, self.train_config.epochs)
                eta = eta_seconds(now - self.pace_from[0], self.pace_from[1], fraction)
            return JobStatus(self.out, self.state, self.model_config, self.train_config, list(self.history),
                             self.epoch, self.step, self.steps, self.started, (self.ended or now) - self.started,
                             self.first_epoch, eta, self.error, self.stopped_early, self.evaluated, self.to_evaluate)


# --------------------------------------------------------------------------------------------
# The registry


class JobRegistry:
    """Jobs of this process by output folder; finished ones stay until a new job takes the folder."""

    def __init__(self):
        self._jobs: dict[Path, _Job] = {}
        self._lock = threading.Lock()

    def start(self, model_config: ModelConfig, train_config: TrainConfig, out: str | Path, resume: bool = False,
              data: DatasetSplits | None = None, threads: int | None = None) -> JobStatus:
        """Start training into `out` in the background and return its first status.

        `threads`, when given, is passed to torch.set_num_threads in the job's thread (see
        `default_threads`); it also becomes the default of threads started later in this process.

        Raises JobAlreadyRunning if a job of this process trains into `out`, FolderLocked if another
        process does, CheckpointError if `out` holds a checkpoint and `resume` is False (or holds no
        resume state and `resume` is True), ValueError for an invalid config.
        """
        out = Path(out).expanduser().resolve()
        model_config.validate()
        train_config.validate()
        with self._lock:
            running = self._jobs.get(out)
            if running is not None and running.status().active:
                raise JobAlreadyRunning(running.status())
            lock = acquire_lock(out)  # first: "another process trains here" explains the rest
            try:
                if resume and not (out / ckpt.LAST_FILE).is_file():
                    raise CheckpointError(f"{out} has no resume state ({ckpt.LAST_FILE}); start a new run instead")
                check_output_folder(out, model_config, resume)
                state = ckpt.read_train_state(out) if resume else None
                saved = out / ckpt.HISTORY_FILE
                history = ckpt.read_json(saved)[: state["history_length"]] if state and saved.is_file() else []
                job = _Job(out, model_config, train_config, history)
                job.thread = threading.Thread(target=_run, args=(job, resume, data, lock, threads), daemon=True,
                                              name=f"train {out.name}")
                job.thread.start()
            except BaseException:
                release_lock(lock)
                raise
            self._jobs[out] = job
        return job.status()

    def status(self, out: str | Path) -> JobStatus | None:
        job = self._jobs.get(Path(out).expanduser().resolve())
        return None if job is None else job.status()

    def stop(self, out: str | Path) -> bool:
        """Ask the job to stop after its current epoch (checkpoints kept); False if none is running."""
        job = self._jobs.get(Path(out).expanduser().resolve())
        if job is None or not job.status().active:
            return False
        job.request_stop()
        return True

    def jobs(self) -> list[JobStatus]:
        """Every job of this process, most recently started first."""
        with self._lock:
            found = [job.status() for job in self._jobs.values()]
        return sorted(found, key=lambda s: s.started, reverse=True)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Ask every job to stop and give them `timeout` seconds in all (at interpreter exit)."""
        deadline = time.monotonic() + timeout
        for status in self.jobs():
            self.stop(status.out)
        for status in self.jobs():
            self.wait(status.out, max(0.0, deadline - time.monotonic()))

    def wait(self, out: str | Path, timeout: float | None = None) -> JobStatus | None:
        """Block until the job ends (or `timeout` seconds pass); its status."""
        job = self._jobs.get(Path(out).expanduser().resolve())
        if job is not None and job.thread is not None:
            job.thread.join(timeout)
        return self.status(out)


def _run(job: _Job, resume: bool, data: DatasetSplits | None, lock: Path, threads: int | None) -> None:
    """The training thread: train, evaluate, then record how it ended as one line (never a traceback)."""
    state, error, early = "failed", None, False
    try:
        if threads:
            torch.set_num_threads(threads)
        if data is None:  # loaded once for training and the evaluation after it
            data = load_dataset(job.model_config.dataset, job.train_config.data_dir)
        result = train(job.model_config, job.train_config, job.out, resume=resume, data=data,
                       progress=job.on_progress, should_stop=job.stop_requested.is_set)
        state, early = ("stopped" if result.interrupted else "finished"), result.stopped_early
        if state == "finished" and not job.stop_requested.is_set():
            try:
                _evaluate_best(job, data)
            except Exception as exc:  # noqa: BLE001 - the run itself is complete; say so in one line
                _log.exception("evaluating %s failed", job.out)
                error = f"trained, but the evaluation failed: {one_line(exc)}"
    except (VampvizError, ValueError) as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a page shows one line; the log keeps the traceback
        _log.exception("training into %s failed", job.out)
        error = one_line(exc)
    finally:
        release_lock(lock)  # before the state changes, so whoever sees the end can start again
        job.finish(state, error, early)


def one_line(exc: Exception) -> str:
    """An unexpected exception as the one line a page shows (the log keeps the traceback)."""
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message.splitlines()[0] if message else 'no message'}"


def _evaluate_best(job: _Job, data: DatasetSplits) -> None:
    """Test metrics of the best weights into metrics.json (what `vae_core evaluate` writes), on at
    most EVAL_MAX_IMAGES test images; nothing is written if the stop button interrupts it."""
    config = job.model_config
    images = data.x_test[:EVAL_MAX_IMAGES]
    job.begin_evaluation(len(images))
    model = ckpt.load(job.out, resolve_device(job.train_config.device))
    try:
        metrics = evaluate(model, images, DEFAULT_SAMPLES, get_spec(config.dataset).input_type,
                           progress=job.on_eval_progress)
    except _EvaluationSkipped:
        return
    ckpt.write_metrics(job.out, metrics)


def default_threads() -> int:
    """Intra-op threads for a job: half the cores, at most 4, so the server and the browser keep the
    rest. Oversubscribing costs more than it gains for these small models: on a busy 2-core machine
    a digits epoch took 0.2 s with 1 thread and 6 to 8 s with 2."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


REGISTRY = JobRegistry()  # one per server process, shared by every session
atexit.register(REGISTRY.shutdown)
