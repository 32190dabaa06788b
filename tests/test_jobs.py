"""Background training jobs (dashboard.jobs) and training snapshots (vae_core.snapshots)."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from dashboard import jobs, train_form
from vae_core import checkpoint as ckpt
from vae_core import snapshots
from vae_core.errors import CheckpointError
from vae_core.locking import LOCK_FILE, FolderLocked
from vae_core.snapshots import (
    list_snapshots,
    load_snapshot,
    save_snapshot,
    snapshot_path,
)
from vae_core.train import TrainConfig

TIMEOUT = 120  # seconds; a tiny job takes well under one on an idle machine


def tiny(prior: str = "vampprior"):
    return train_form.make_model_config("digits", "vae", prior, components=10, latent_dim=2, hidden=16)


def plan(epochs: int = 3, **overrides) -> TrainConfig:
    return TrainConfig(epochs=epochs, warmup=1, device="cpu", **overrides)


@pytest.fixture
def registry():
    """A registry of its own per test; every job it started is stopped and joined at the end."""
    reg = jobs.JobRegistry()
    yield reg
    for status in reg.jobs():
        reg.stop(status.out)
        reg.wait(status.out, TIMEOUT)


def finished(registry, out) -> jobs.JobStatus:
    status = registry.wait(out, TIMEOUT)
    assert not status.active, f"the job into {out} did not end within {TIMEOUT} s"
    return status


def test_job_trains_in_the_background_and_writes_a_checkpoint(registry, small_digits, tmp_path):
    out = tmp_path / "run"
    first = registry.start(tiny(), plan(snapshot_every=2), out, data=small_digits)
    assert first.out == out.resolve() and first.epoch == 0 and first.train_config.epochs == 3
    status = finished(registry, out)
    assert status.state == "finished" and status.error is None
    assert status.epoch == 3 and [h["epoch"] for h in status.history] == [1, 2, 3]
    assert status.fraction == 1.0 and status.eta is None
    assert "finished after epoch 3/3" in train_form.progress_text(status)
    model = ckpt.load(out)  # a valid, loadable checkpoint
    assert model.prior.num_components == 10
    assert not (out / LOCK_FILE).exists(), "the lock file must be removed when the job ends"
    assert [e for e, _ in list_snapshots(out)] == [1, 2, 3]  # the first, every 2nd, and the last
    assert registry.jobs()[0].out == out.resolve()


def test_a_finished_job_evaluates_its_best_weights_into_metrics_json(registry, small_digits, tmp_path):
    out = tmp_path / "run"
    registry.start(tiny(), plan(epochs=2), out, data=small_digits)
    status = finished(registry, out)
    assert status.state == "finished" and status.evaluated == status.to_evaluate == len(small_digits.x_test)
    assert "test metrics on 100 images in metrics.json" in train_form.progress_text(status)
    metrics = ckpt.read_info(out).metrics
    assert metrics["n_test"] == 100 and metrics["samples"] == 5000
    assert metrics["elbo"] <= metrics["log_likelihood"] + 1.0 and set(metrics["active_units"]) == {"z"}


def test_stopping_during_the_evaluation_skips_it(registry, small_digits, tmp_path, monkeypatch):
    out = tmp_path / "run"
    seen = []
    original = jobs._Job.on_eval_progress

    def stop_at_first_image(job, done, total):
        seen.append(job.status().state)
        if done == 1:
            registry.stop(out)
        original(job, done, total)

    monkeypatch.setattr(jobs._Job, "on_eval_progress", stop_at_first_image)
    registry.start(tiny(), plan(epochs=1), out, data=small_digits)
    status = finished(registry, out)
    assert seen == ["evaluating"]  # the evaluation ends at the first progress report after the stop
    assert status.state == "finished" and status.error is None and status.evaluated == 0
    assert not (out / ckpt.METRICS_FILE).exists() and not (out / LOCK_FILE).exists()
    assert "metrics.json" not in train_form.progress_text(status)


def test_stop_ends_after_the_current_epoch_and_resume_continues_the_history(registry, small_digits, tmp_path):
    out = tmp_path / "run"
    registry.start(tiny(), plan(epochs=1000), out, data=small_digits)
    assert registry.stop(out)
    assert registry.status(out).state in ("stopping", "stopped")
    status = finished(registry, out)
    assert status.state == "stopped" and status.epoch == 1 and len(status.history) == 1
    assert not registry.stop(out), "nothing left to stop"
    assert not (out / LOCK_FILE).exists()

    model_config, train_config = train_form.saved_configs(out, epochs=3)
    assert model_config == tiny() and train_config.warmup == 1 and train_config.epochs == 3
    resumed = registry.start(model_config, train_config, out, resume=True, data=small_digits)
    assert resumed.first_epoch == 1 and [h["epoch"] for h in resumed.history] == [1]
    status = finished(registry, out)
    assert status.state == "finished" and [h["epoch"] for h in status.history] == [1, 2, 3]
    assert [h["epoch"] for h in ckpt.read_info(out).history] == [1, 2, 3]
    assert train_form.trained_epochs(out) == 3 and train_form.resumable_runs(tmp_path) == [out]


def test_two_concurrent_jobs_into_two_folders_stay_independent(registry, small_digits, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    registry.start(tiny("vampprior"), plan(epochs=3), a, data=small_digits)
    registry.start(tiny("mog"), plan(epochs=4), b, data=small_digits)
    assert {s.out for s in registry.jobs()} == {a.resolve(), b.resolve()}
    first, second = finished(registry, a), finished(registry, b)
    assert first.state == second.state == "finished"
    assert len(first.history) == 3 and len(second.history) == 4
    assert ckpt.read_config(a)[0].prior == "vampprior" and ckpt.read_config(b)[0].prior == "mog"
    assert ckpt.load(a).prior.num_components == 10 and hasattr(ckpt.load(b).prior, "means")
    assert [h["epoch"] for h in ckpt.read_info(a).history] == [1, 2, 3]
    assert [h["epoch"] for h in ckpt.read_info(b).history] == [1, 2, 3, 4]


def test_a_second_start_into_a_running_folder_is_refused_with_the_running_job(registry, small_digits, tmp_path):
    out = tmp_path / "run"
    registry.start(tiny(), plan(epochs=1000), out, data=small_digits)
    with pytest.raises(jobs.JobAlreadyRunning, match="already training into") as refused:
        registry.start(tiny("mog"), plan(epochs=2), out, data=small_digits)
    assert refused.value.status.out == out.resolve() and refused.value.status.model_config.prior == "vampprior"
    # another registry (as another server would) meets the lock file instead
    with pytest.raises(FolderLocked, match=f"process {os.getpid()}"):
        jobs.JobRegistry().start(tiny(), plan(), tmp_path / "run" / ".." / "run", data=small_digits)
    registry.stop(out)
    assert finished(registry, out).state == "stopped"
    assert ckpt.load(out).prior.num_components == 10  # the refused starts did not touch it


def test_a_stale_lock_is_taken_over_and_a_live_one_refused(registry, small_digits, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "stale"
    out.mkdir()
    (out / LOCK_FILE).write_text(f"{dead.pid} {socket.gethostname()}\n")
    registry.start(tiny(), plan(epochs=1), out, data=small_digits)
    assert finished(registry, out).state == "finished"
    assert not (out / LOCK_FILE).exists()

    live = tmp_path / "live"
    live.mkdir()
    fd = os.open(live / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)  # held as another process would hold it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"{os.getppid()} {socket.gethostname()}\n".encode())
        with pytest.raises(FolderLocked, match=f"process {os.getppid()}"):
            registry.start(tiny(), plan(epochs=1), live, data=small_digits)
    finally:
        os.close(fd)
    assert (live / LOCK_FILE).exists() and not (live / ckpt.CONFIG_FILE).exists()


def test_folder_checks_before_starting(registry, small_digits, tmp_path):
    out = tmp_path / "run"
    registry.start(tiny(), plan(epochs=1), out, data=small_digits)
    finished(registry, out)
    with pytest.raises(CheckpointError, match="already holds a checkpoint"):
        registry.start(tiny(), plan(), out, data=small_digits)
    (out / ckpt.LAST_FILE).unlink()
    with pytest.raises(CheckpointError, match="no resume state"):
        registry.start(tiny(), plan(), out, resume=True, data=small_digits)
    with pytest.raises(ValueError, match="epochs"):
        registry.start(tiny(), plan(epochs=0), tmp_path / "other", data=small_digits)
    assert not (tmp_path / "other" / LOCK_FILE).exists()


def test_errors_in_the_job_become_one_line(registry, small_digits, tmp_path, monkeypatch):
    nan_val = dataclasses.replace(small_digits, x_val=np.full_like(small_digits.x_val, np.nan))
    registry.start(tiny(), plan(), tmp_path / "nan", data=nan_val)
    status = finished(registry, tmp_path / "nan")
    assert status.state == "failed" and "diverged" in status.error and "\n" not in status.error
    assert not (tmp_path / "nan" / LOCK_FILE).exists()

    monkeypatch.setenv("VAMPVIZ_DATA_DIR", str(tmp_path / "no-data"))
    config = dataclasses.replace(tiny("standard"), dataset="mnist", input_shape=(1, 28, 28))
    registry.start(config, plan(), tmp_path / "mnist")
    status = finished(registry, tmp_path / "mnist")
    assert status.state == "failed" and "mnist" in status.error and "\n" not in status.error


# -------------------------------------------------------------------------------- snapshots

@pytest.mark.parametrize("model,prior,heads", [("vae", "vampprior", "pseudo_inputs"), ("vae", "mog", "decoded_means"),
                                               ("vae", "standard", None), ("hvae", "vampprior", "pseudo_inputs")])
def test_snapshots_round_trip_with_fixed_noise(build, tmp_path, model, prior, heads):
    net = build(model=model, prior=prior)
    net.train()
    rng = torch.get_rng_state()
    path = save_snapshot(tmp_path, 5, net, num_samples=12)
    assert torch.equal(torch.get_rng_state(), rng), "a snapshot must not move the training RNG"
    assert net.training, "the model's mode is restored"
    assert path == snapshot_path(tmp_path, 5) == tmp_path / "snapshots" / "epoch-0005.safetensors"
    shot = load_snapshot(path)
    assert shot.epoch == 5 and shot.samples.shape == (12, 1, 8, 8) and shot.samples.dtype == np.float32
    assert 0 <= shot.samples.min() and shot.samples.max() <= 1
    if heads is None:
        assert shot.heads is None
    else:
        assert getattr(shot, heads).shape == (5, 1, 8, 8) and shot.heads is getattr(shot, heads)
        assert shot.components == 5
    again = load_snapshot(save_snapshot(tmp_path, 6, net, num_samples=12))
    np.testing.assert_array_equal(again.samples, shot.samples)  # same weights, same noise: same images
    other_seed = load_snapshot(save_snapshot(tmp_path, 7, net, num_samples=12, seed=1))
    assert not np.array_equal(other_seed.samples, shot.samples)


@pytest.mark.parametrize("prior,heads", [("mog", "decoded_means"), ("vampprior", "pseudo_inputs")])
def test_an_autoregressive_snapshot_draws_a_few_images(build, tmp_path, prior, heads, monkeypatch):
    """A PixelCNN decodes an image in a pass per pixel: a snapshot takes AUTOREGRESSIVE_IMAGES
    samples and decodes as many mixture means (the first of K); pseudo-inputs are all kept."""
    monkeypatch.setattr(snapshots, "AUTOREGRESSIVE_IMAGES", 3)
    net = build(model="hvae", prior=prior, architecture="conv", pixel_model="pixelcnn", components=7)
    shot = load_snapshot(save_snapshot(tmp_path, 1, net))
    assert shot.samples.shape == (3, 1, 8, 8) and shot.components == 7
    assert len(getattr(shot, heads)) == (3 if heads == "decoded_means" else 7)
    plain = load_snapshot(save_snapshot(tmp_path, 2, build(prior=prior, components=7)))
    assert len(plain.samples) == snapshots.SAMPLES and len(plain.heads) == 7


def test_list_snapshots_sorts_and_ignores_other_files(build, tmp_path):
    assert list_snapshots(tmp_path) == []
    net = build(prior="vampprior")
    for epoch in (10, 2, 1):
        save_snapshot(tmp_path, epoch, net, num_samples=2)
    (tmp_path / "snapshots" / ".epoch-0003.safetensors.123.tmp").write_bytes(b"half")
    (tmp_path / "snapshots" / "notes.txt").write_text("x")
    assert [e for e, _ in list_snapshots(tmp_path)] == [1, 2, 10]
    (tmp_path / "snapshots" / "epoch-0004.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="truncated or not a safetensors"):
        load_snapshot(tmp_path / "snapshots" / "epoch-0004.safetensors")


def test_cli_snapshot_every(tmp_path, capsys):
    from vae_core.cli import main

    out = tmp_path / "cli"
    assert main(["train", "--hidden", "16", "--latent-dim", "2", "-K", "10", "--epochs", "3", "--warmup", "1",
                 "--device", "cpu", "--snapshot-every", "2", "--out", str(out)]) == 0
    assert [e for e, _ in list_snapshots(out)] == [1, 2, 3]
    assert ckpt.read_config(out)[1]["snapshot_every"] == 2
    with pytest.raises(SystemExit):  # argparse refuses a negative period
        main(["train", "--snapshot-every", "-1", "--out", str(tmp_path / "x")])
    assert "must be zero or more" in capsys.readouterr().err


def test_a_failed_evaluation_keeps_the_finished_run(registry, small_digits, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(jobs, "evaluate", broken)
    out = tmp_path / "run"
    registry.start(tiny(), plan(epochs=1), out, data=small_digits)
    status = finished(registry, out)
    assert status.state == "finished" and status.error == "trained, but the evaluation failed: RuntimeError: out of memory"
    assert ckpt.load(out) is not None and not (out / ckpt.METRICS_FILE).exists()
