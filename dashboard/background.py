"""Slow computations off the page: one thread per key, one registry per server process. No Streamlit.

Drawing images from an autoregressive p(x|z) (a PixelCNN) takes one network pass per pixel: a
batch of 28 x 28 images takes minutes on a CPU. Run inside a page's script it would freeze the page,
and every rerun (any widget touched) would start it again. Here it runs in a daemon thread; the page
polls `status(key)` and draws a progress bar. As for training (`dashboard.jobs`), the registry is
process-wide and keyed by everything the result depends on (checkpoint, weights' time, sizes,
seed), so every session (browser tab) asking for the same images shares one computation and its
result.

Computations run one at a time, in the order asked for: the machines this runs on have few cores,
two draws side by side would each go at half speed, and torch's RNG is global, so a draw running
beside another would change the other's random numbers. (Draws made by a page's own script at the
same moment can still do that, as for training jobs; the same key is computed once, so a server
shows the same images for a seed.)

A failure is kept as one line for the page (the log keeps the traceback) and is never raised into
the page that asked, nor into any other; `forget(key)` lets a page try again. The results of the
`max_finished` most recently asked-for keys are kept; older ones are computed again when asked.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from .jobs import one_line

Progress = Callable[[int, int], None]
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskStatus:
    """What a page sees of one computation."""

    key: Hashable
    state: str  # queued | running | finished | failed
    done: int  # units done so far (network passes, images)
    total: int  # units in all (0 until the computation first reports)
    unit: str  # what done and total count, for the progress text
    result: Any = None  # once finished
    error: str | None = None  # once failed: one line

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    @property
    def fraction(self) -> float:
        """Share done, in [0, 1] (0 while queued or before the first report)."""
        return min(1.0, self.done / self.total) if self.total else 0.0


def progress_text(status: TaskStatus, what: str) -> str:
    """The line under a progress bar: "Drawing 16 samples: 40 / 64 passes (62%)"."""
    if status.state == "queued":
        return f"{what}: waiting for the computations asked for before it"
    if not status.total:
        return f"{what}: starting…"
    return f"{what}: {status.done:,} / {status.total:,} {status.unit} ({status.fraction:.0%})"


class _Task:
    """The mutable side of a computation; its thread writes it, pages read `status()` copies."""

    def __init__(self, key: Hashable, unit: str):
        self.key, self.unit = key, unit
        self.state, self.done, self.total = "queued", 0, 0
        self.result, self.error = None, None
        self.ended = threading.Event()
        self._lock = threading.Lock()

    def on_progress(self, done: int, total: int) -> None:
        """The computation's progress callback. Never backwards: a page's bar only grows."""
        with self._lock:
            self.state, self.total = "running", total
            self.done = max(self.done, min(done, total))

    def begin(self) -> None:
        with self._lock:
            self.state = "running"

    def finish(self, result: Any = None, error: str | None = None) -> None:
        with self._lock:
            self.result, self.error = result, error
            self.state = "failed" if error is not None else "finished"
            if error is None:
                self.done = self.total = max(self.total, 1)
        self.ended.set()

    def status(self) -> TaskStatus:
        with self._lock:
            return TaskStatus(self.key, self.state, self.done, self.total, self.unit, self.result, self.error)


class BackgroundRegistry:
    """Computations of this process by key, run one at a time in daemon threads."""

    def __init__(self, max_finished: int = 64):
        self.max_finished = max_finished
        self._tasks: OrderedDict[Hashable, _Task] = OrderedDict()  # least recently asked for first
        self._lock = threading.Lock()  # guards _tasks
        self._run_lock = threading.Lock()  # one computation at a time

    def submit(self, key: Hashable, compute: Callable[[Progress], Any], unit: str = "passes") -> TaskStatus:
        """The status of the computation for `key`, started now if this process has none for it.

        `compute(progress)` returns the result and may call `progress(done, total)` as it goes.
        A key already known (queued, running, finished or failed) is never computed a second time:
        `compute` is then ignored.
        """
        with self._lock:
            task = self._tasks.get(key)
            if task is None:
                task = self._tasks[key] = _Task(key, unit)
                threading.Thread(target=self._run, args=(task, compute), daemon=True,
                                 name=f"background {str(key)[:60]}").start()
                self._evict()
            self._tasks.move_to_end(key)
            return task.status()

    def status(self, key: Hashable) -> TaskStatus | None:
        task = self._tasks.get(key)
        return None if task is None else task.status()

    def wait(self, key: Hashable, timeout: float | None = None) -> TaskStatus | None:
        """Block until the computation for `key` ends (or `timeout` seconds pass); its status."""
        task = self._tasks.get(key)
        if task is not None:
            task.ended.wait(timeout)
        return self.status(key)

    def statuses(self) -> list[TaskStatus]:
        """Every computation this process knows, least recently asked for first."""
        with self._lock:
            tasks = list(self._tasks.values())
        return [task.status() for task in tasks]

    def wait_all(self, timeout: float | None = None) -> list[TaskStatus]:
        """Block until every computation asked for so far has ended (`timeout` seconds each at most)."""
        return [self.wait(status.key, timeout) or status for status in self.statuses()]

    def forget(self, key: Hashable) -> None:
        """Drop an ended computation, so the next `submit` of its key computes it again (a retry)."""
        with self._lock:
            task = self._tasks.get(key)
            if task is not None and not task.status().active:
                del self._tasks[key]

    def _evict(self) -> None:
        """Keep at most `max_finished` ended computations (the least recently asked for go first)."""
        ended = [key for key, task in self._tasks.items() if not task.status().active]
        for key in ended[: max(0, len(ended) - self.max_finished)]:
            del self._tasks[key]

    def _run(self, task: _Task, compute: Callable[[Progress], Any]) -> None:
        """The thread: wait for its turn, compute, and record the result or the one-line error."""
        with self._run_lock:
            task.begin()
            try:
                result = compute(task.on_progress)
            except Exception as exc:  # noqa: BLE001 - a page shows one line; the log keeps the traceback
                _log.exception("background computation %s failed", task.key)
                task.finish(error=one_line(exc))
            else:
                task.finish(result=result)


REGISTRY = BackgroundRegistry()  # one per server process, shared by every session
