"""The Train page's helpers: the form's config, folder names, durations and the progress line."""

from __future__ import annotations

import dataclasses

import pytest

from dashboard import jobs, train_form
from vae_core.train import TrainConfig


def tiny(prior: str = "vampprior"):
    return train_form.make_model_config("digits", "vae", prior, components=10, latent_dim=2, hidden=16)


def plan(epochs: int = 3, **overrides) -> TrainConfig:
    return TrainConfig(epochs=epochs, warmup=1, device="cpu", **overrides)


def test_page_helpers():
    config = tiny()
    assert train_form.run_name(config) == "digits-vae-vampprior-K10-z2"
    assert train_form.run_name(tiny("standard")) == "digits-vae-standard-z2"
    pixel = train_form.make_model_config("digits", "hvae", "standard", 10, 2, 16, "conv", "pixelcnn")
    assert train_form.run_name(pixel) == "digits-hvae-standard-z2-conv-pixelcnn"
    assert train_form.check_folder_name(" my-run_1.5 ") == "my-run_1.5"
    for bad in ("", "../x", "a/b", ".hidden", "x" * 101, "/abs"):
        with pytest.raises(ValueError, match="plain folder name"):
            train_form.check_folder_name(bad)
    assert jobs.done_fraction(4, 5, 10, 10) == pytest.approx(0.45) and jobs.done_fraction(9, 0, 0, 3) == 1.0
    assert jobs.eta_seconds(30.0, 0.2, 0.45) == pytest.approx(30.0 / 0.25 * 0.55)  # 2.5 epochs in 30 s, 5.5 to go
    assert jobs.eta_seconds(0.0, 0.2, 0.2) is None
    status = jobs.JobStatus(out=None, state="running", model_config=config, train_config=plan(epochs=10),
                            history=[{}] * 4, epoch=4, step=5, steps=10, started=0.0, elapsed=30.0, first_epoch=2,
                            eta=66.0)
    assert status.fraction == pytest.approx(0.45)
    assert train_form.progress_text(status) == "epoch 5/10, step 5/10 · ETA 1 min 06 s"
    assert train_form.progress_text(dataclasses.replace(status, state="stopping")).endswith("stopping after this epoch")
    ended = dataclasses.replace(status, state="finished", stopped_early=True, eta=None)
    assert train_form.progress_text(ended) == "stopped early (the validation loss stopped improving) after epoch 4/10 · 30 s"
    assert 1 <= jobs.default_threads() <= 4


def test_unique_folder(tmp_path):
    assert train_form.unique_folder(tmp_path, "run") == tmp_path / "run"
    (tmp_path / "run").mkdir()
    (tmp_path / "run-2").mkdir()
    assert train_form.unique_folder(tmp_path, "run") == tmp_path / "run-3"
