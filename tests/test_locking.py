"""The folder lock: one holder at a time, even when several processes take over a stale lock at
once; a dead holder's lock is taken over; the refusal names the holder."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vae_core import checkpoint as ckpt
from vae_core.locking import (
    LOCK_FILE,
    FolderLocked,
    acquire_lock,
    lock_holder,
    release_lock,
    training_lock,
)

ROOT = Path(__file__).resolve().parents[1]
RACERS = 6
ROUNDS = 15


def dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def stale_lock(folder: Path) -> Path:
    """A lock file left by a process that has died (its text names it; nobody holds it)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    path.write_text(f"{dead_pid()} {socket.gethostname()}\n")
    return path


def _race(root: str, start, done, results) -> None:
    """One racer: in each round, wait for all, try to take the round's stale lock, hold it until
    every racer has tried, release it. The host name is slow to come, as on a busy machine, which
    widens any window between deciding a lock is stale and replacing it."""
    real_hostname = socket.gethostname

    def slow_hostname():
        time.sleep(0.005)
        return real_hostname()

    socket.gethostname = slow_hostname  # this racer's process only (forked)
    for round_ in range(ROUNDS):
        start.wait()
        try:
            path = acquire_lock(Path(root) / f"round{round_}")
            won = True
        except FolderLocked:
            won = False
        results.put((round_, won))
        done.wait()
        if won:
            release_lock(path)


def test_racing_processes_taking_over_a_stale_lock_never_both_win(tmp_path):
    for round_ in range(ROUNDS):
        stale_lock(tmp_path / f"round{round_}")
    context = multiprocessing.get_context("fork")  # the racers start in milliseconds, without re-importing torch
    start, done = context.Barrier(RACERS), context.Barrier(RACERS)
    results = context.Queue()
    racers = [context.Process(target=_race, args=(str(tmp_path), start, done, results)) for _ in range(RACERS)]
    for racer in racers:
        racer.start()
    outcomes = [results.get(timeout=60) for _ in range(RACERS * ROUNDS)]
    for racer in racers:
        racer.join(timeout=60)
        assert racer.exitcode == 0
    winners = [sum(won for r, won in outcomes if r == round_) for round_ in range(ROUNDS)]
    assert winners == [1] * ROUNDS
    assert not any((tmp_path / f"round{r}" / LOCK_FILE).exists() for r in range(ROUNDS))


def test_a_second_taker_is_refused_with_the_holders_name(tmp_path):
    with training_lock(tmp_path / "run") as path:
        assert path.read_text().split() == [str(os.getpid()), socket.gethostname()]
        with pytest.raises(FolderLocked, match=f"process {os.getpid()} on .*delete .*{LOCK_FILE}") as refused:
            acquire_lock(tmp_path / "run" / ".." / "run")  # another spelling of the same folder
        assert "\n" not in str(refused.value)
    assert not path.exists()
    with training_lock(tmp_path / "run"):  # free again
        pass


def test_the_lock_of_a_killed_holder_is_taken_over(tmp_path):
    out = tmp_path / "run"
    code = ("import sys, time; from vae_core.locking import acquire_lock; acquire_lock(sys.argv[1]); "
            "print('held', flush=True); time.sleep(60)")
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert lock_holder(out) == f"process {holder.pid} on {socket.gethostname()}"
        with pytest.raises(FolderLocked, match=f"process {holder.pid}"):
            acquire_lock(out)
        holder.send_signal(signal.SIGKILL)  # no chance to clean up: the file stays, the lock goes
        holder.wait(timeout=30)
    finally:
        holder.kill()
        holder.stdout.close()
    assert (out / LOCK_FILE).exists() and lock_holder(out) is None
    path = acquire_lock(out)
    assert path.read_text().split()[0] == str(os.getpid())
    release_lock(path)


def test_a_stale_lock_file_is_taken_over(tmp_path):
    path = stale_lock(tmp_path / "run")
    assert lock_holder(tmp_path / "run") is None
    assert acquire_lock(tmp_path / "run") == path
    assert path.read_text().split()[0] == str(os.getpid())
    release_lock(path)
    assert not path.exists()


def test_probing_the_lock_does_not_refuse_a_trainer(tmp_path):
    out = tmp_path / "run"
    stale_lock(out)
    context = multiprocessing.get_context("fork")
    stop = context.Event()

    def probe():
        while not stop.is_set():
            lock_holder(out)

    prober = context.Process(target=probe)
    prober.start()
    try:
        for _ in range(50):
            release_lock(acquire_lock(out))
            stale_lock(out)
    finally:
        stop.set()
        prober.join(timeout=30)


def test_release_of_a_lock_not_held_is_a_no_op(tmp_path):
    path = stale_lock(tmp_path / "run")
    release_lock(path)
    assert path.exists()


def test_checkpoint_state_follows_the_lock(tmp_path, build, make_config):
    """No weights yet: "training" while a trainer holds the lock, "incomplete" otherwise."""
    config = make_config()
    out = tmp_path / "run"
    ckpt.write_config(out, config, {})
    assert ckpt.read_info(out).state == "incomplete"
    with training_lock(out):
        assert ckpt.read_info(out).state == "training"
    stale_lock(out)
    assert ckpt.read_info(out).state == "incomplete"
    ckpt.save_weights(out, build(config))
    assert ckpt.read_info(out).state == "ready"


def test_a_lock_is_released_however_the_block_ends(tmp_path):
    with pytest.raises(RuntimeError):
        with training_lock(tmp_path / "run"):
            raise RuntimeError("boom")
    assert lock_holder(tmp_path / "run") is None and not (tmp_path / "run" / LOCK_FILE).exists()
    started = time.monotonic()
    release_lock(acquire_lock(tmp_path / "run"))
    assert time.monotonic() - started < 1.0
