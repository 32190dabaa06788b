"""Training on a slice of the embedded digits: learning, checkpoints, exact resume, divergence,
early stopping, the KL schedule, callbacks and reproducibility."""

from __future__ import annotations

import importlib
import itertools
import json
import math

import numpy as np
import pytest
import torch
from conftest import MODELS, PRIORS, tiny_config
from safetensors.torch import save_file

from vae_core import checkpoint as ckpt
from vae_core import files, models
from vae_core.data import DatasetSplits
from vae_core.errors import CheckpointError, TrainingDivergedError
from vae_core.evaluate import elbo_terms
from vae_core.models import build_model
from vae_core.train import Progress, TrainConfig, kl_weight, normalize_gradients_, train

RECORD_KEYS = {"epoch", "beta", "train_loss", "train_reconstruction", "train_kl", "val_loss", "val_reconstruction",
               "val_kl", "seconds"}
# `vae_core.train` is the function (vae_core/__init__.py re-exports it), so fetch the module itself
training = importlib.import_module("vae_core.train")

CHECKPOINT_FILES = {"config.json", "model.safetensors", "history.json", "last.safetensors"}


@pytest.fixture(scope="module")
def data(request) -> DatasetSplits:
    digits = request.getfixturevalue("digits")
    return DatasetSplits(x_train=digits.x_train[:400], x_val=digits.x_val[:100], x_test=digits.x_test[:100])


def config_for(model: str = "vae", prior: str = "vampprior", **overrides):
    values = dict(model=model, prior=prior, hidden=32, latent_dim=4, latent_dim_z1=3, components=10)
    return tiny_config(**(values | overrides))


def settings(**overrides) -> TrainConfig:
    values = dict(epochs=3, batch_size=100, lr=3e-3, warmup=1, patience=100, seed=0, device="cpu")
    values.update(overrides)
    return TrainConfig(**values)


def without_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


def read_weights(path, name: str = ckpt.WEIGHTS_FILE) -> dict[str, torch.Tensor]:
    return ckpt.read_tensors(path / name)


def edit_train_state(out, edit) -> None:
    """Rewrite the resume counters in last.safetensors' metadata with `edit(state)`."""
    last = out / ckpt.LAST_FILE
    metadata = ckpt.read_header(last).metadata
    state = json.loads(metadata[ckpt.TRAIN_STATE_KEY])
    edit(state)
    save_file(ckpt.read_tensors(last), last, metadata=metadata | {ckpt.TRAIN_STATE_KEY: json.dumps(state)})


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


# --------------------------------------------------------------------------------------------
# Learning


@pytest.mark.parametrize("model_name, prior", list(itertools.product(MODELS, PRIORS)))
def test_training_lowers_the_validation_loss(tmp_path, data, model_name, prior):
    config = config_for(model_name, prior)
    torch.manual_seed(0)  # train() seeds the same way, so this is its starting model
    untrained = build_model(config, train_images=data.x_train).eval()
    untrained_loss = np.mean([elbo_terms(untrained, data.x_val)["loss"] for _ in range(3)])

    result = train(config, settings(epochs=4), tmp_path / "run", data=data)
    history = result.history
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert all(set(r) == RECORD_KEYS | {"active_units"} for r in history)
    assert all(math.isfinite(r[k]) for r in history for k in RECORD_KEYS)
    sizes = config.latent_sizes  # units counted per layer on the validation images, every epoch
    assert all(r["active_units"].keys() == sizes.keys() for r in history)
    assert all(0 <= r["active_units"][layer] <= size for r in history for layer, size in sizes.items())
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert result.best_val_loss < untrained_loss - 2.0
    assert result.best_val_loss == min(r["val_loss"] for r in history)
    assert history[result.best_epoch - 1]["val_loss"] == result.best_val_loss
    assert not result.stopped_early and not result.interrupted
    assert {p.name for p in (tmp_path / "run").iterdir()} == CHECKPOINT_FILES


def test_the_checkpoint_holds_the_best_epochs_model(tmp_path, data):
    config = config_for()
    result = train(config, settings(epochs=3), tmp_path / "run", data=data)
    out = result.path
    assert json.loads((out / "history.json").read_text()) == result.history
    state = ckpt.read_train_state(out)
    assert state["epoch"] == 3 and state["best_epoch"] == result.best_epoch and state["history_length"] == 3
    assert ckpt.weights_epoch(out) == result.best_epoch
    info = ckpt.read_info(out)
    assert info.config == config and info.train_config["epochs"] == 3 and info.epochs == 3
    model = ckpt.load(out)
    assert not model.training
    loss = np.mean([elbo_terms(model, data.x_val)["loss"] for _ in range(5)])
    assert loss == pytest.approx(result.best_val_loss, abs=1.0)  # one-sample ELBOs: MC noise only
    if result.best_epoch == 3:  # the best weights are then also the last ones
        last = {k[len("model."):]: v for k, v in read_weights(out, ckpt.LAST_FILE).items() if k.startswith("model.")}
        assert_same_tensors(read_weights(out), last)


def test_train_records_the_configs(tmp_path, data):
    config = config_for(prior="mog")
    train(config, settings(epochs=1, lr=1e-3), tmp_path / "run", data=data)
    saved, train_settings = ckpt.read_config(tmp_path / "run")
    assert saved == config
    assert train_settings["lr"] == 1e-3 and train_settings["epochs"] == 1 and train_settings["seed"] == 0


# --------------------------------------------------------------------------------------------
# Resume


@pytest.mark.parametrize("model_name, prior", [("vae", "vampprior"), ("hvae", "mog")])
def test_resume_equals_an_uninterrupted_run(tmp_path, data, model_name, prior):
    config = config_for(model_name, prior)
    first = train(config, settings(epochs=2, warmup=3), tmp_path / "resumed", data=data)
    assert len(first.history) == 2
    resumed = train(config, settings(epochs=4, warmup=3), tmp_path / "resumed", data=data, resume=True)
    straight = train(config, settings(epochs=4, warmup=3), tmp_path / "straight", data=data)

    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    assert without_seconds(resumed.history[:2]) == without_seconds(first.history)
    assert without_seconds(resumed.history) == without_seconds(straight.history)
    assert (resumed.best_epoch, resumed.best_val_loss) == (straight.best_epoch, straight.best_val_loss)
    assert_same_tensors(read_weights(tmp_path / "resumed"), read_weights(tmp_path / "straight"))
    assert_same_tensors(read_weights(tmp_path / "resumed", ckpt.LAST_FILE),
                        read_weights(tmp_path / "straight", ckpt.LAST_FILE))


def test_resume_of_a_finished_run_trains_nothing(tmp_path, data):
    config = config_for(prior="standard")
    first = train(config, settings(epochs=2), tmp_path / "run", data=data)
    before = read_weights(tmp_path / "run", ckpt.LAST_FILE)
    again = train(config, settings(epochs=2), tmp_path / "run", data=data, resume=True)
    assert without_seconds(again.history) == without_seconds(first.history)
    assert again.best_epoch == first.best_epoch
    assert_same_tensors(read_weights(tmp_path / "run", ckpt.LAST_FILE), before)


def test_resume_without_a_checkpoint_starts_fresh(tmp_path, data):
    result = train(config_for(prior="standard"), settings(epochs=1), tmp_path / "new", data=data, resume=True)
    assert len(result.history) == 1


def test_refuses_to_overwrite_a_checkpoint(tmp_path, data):
    config = config_for(prior="standard")
    train(config, settings(epochs=1), tmp_path / "run", data=data)
    before = (tmp_path / "run" / "model.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="already holds a checkpoint"):
        train(config, settings(epochs=1), tmp_path / "run", data=data)
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == before


def test_resume_with_another_model_config_is_refused(tmp_path, data):
    train(config_for(prior="standard"), settings(epochs=1), tmp_path / "run", data=data)
    before = (tmp_path / "run" / "config.json").read_text()
    with pytest.raises(CheckpointError, match="different model"):
        train(config_for(prior="standard", latent_dim=5), settings(epochs=2), tmp_path / "run", data=data,
              resume=True)
    assert (tmp_path / "run" / "config.json").read_text() == before


def test_resume_from_a_broken_last_state_is_a_checkpoint_error(tmp_path, data):
    config = config_for(prior="standard")
    train(config, settings(epochs=1), tmp_path / "run", data=data)
    (tmp_path / "run" / "last.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="last.safetensors"):
        train(config, settings(epochs=2), tmp_path / "run", data=data, resume=True)


def test_resume_with_an_optimiser_state_of_another_layout_says_what_to_do(tmp_path, data):
    """A run started before GatedDense fused h and g saved Adam moments for 4 tensors per gated layer."""
    config = config_for()
    train(config, settings(epochs=1), tmp_path / "run", data=data)

    def more_parameters(state):  # more parameters than the model has now
        params = state["param_groups"][0]["params"]
        params += [len(params) + i for i in range(4)]

    edit_train_state(tmp_path / "run", more_parameters)
    with pytest.raises(CheckpointError, match="older vampviz.*another --out"):
        train(config, settings(epochs=2), tmp_path / "run", data=data, resume=True)


# --------------------------------------------------------------------------------------------
# Divergence


def nan_after(monkeypatch, training_calls: int) -> None:
    """From the given number of training-mode forward passes on, every loss is NaN."""
    original = models.VAE.forward
    calls = {"n": 0}

    def forward(self, x, beta=1.0):
        out = original(self, x, beta)
        if self.training:
            calls["n"] += 1
            if calls["n"] > training_calls:
                nan = torch.tensor(float("nan"))
                out = models.ModelOutput(loss=out.loss * nan, elbo=out.elbo * nan,
                                         reconstruction=out.reconstruction * nan, kl=out.kl * nan)
        return out

    monkeypatch.setattr(models.VAE, "forward", forward)


def test_a_nan_loss_stops_training_and_keeps_the_best_checkpoint(tmp_path, data, monkeypatch):
    config = config_for(prior="vampprior")
    steps = 4  # 400 images in batches of 100
    nan_after(monkeypatch, training_calls=2 * steps + 1)  # the second step of epoch 3
    with pytest.raises(TrainingDivergedError) as info:
        train(config, settings(epochs=5), tmp_path / "run", data=data)
    message = str(info.value)
    assert "\n" not in message and "epoch 3" in message and "diverged" in message
    monkeypatch.undo()
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2]
    best = min(history, key=lambda r: r["val_loss"])["epoch"]
    assert f"epoch {best}" in message
    model = ckpt.load(tmp_path / "run")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert math.isfinite(elbo_terms(model, data.x_val)["loss"])


def test_a_nan_validation_loss_stops_training(tmp_path, data, monkeypatch):
    calls = {"n": 0}

    def failing_elbo_terms(model, images, batch_size=1000):
        calls["n"] += 1
        terms = elbo_terms(model, images, batch_size)
        return {k: float("nan") for k in terms} if calls["n"] == 2 else terms

    monkeypatch.setattr(training, "elbo_terms", failing_elbo_terms)
    with pytest.raises(TrainingDivergedError, match="validation loss is nan at epoch 2") as info:
        train(config_for(prior="standard"), settings(epochs=4), tmp_path / "run", data=data)
    assert "\n" not in str(info.value)
    ckpt.load(tmp_path / "run")


def test_a_huge_learning_rate_diverges_cleanly_or_trains(tmp_path, data):
    """lr = 1e10 either produces a NaN (a TrainingDivergedError naming the epoch) or, thanks to
    the clamps, finite numbers; never an uncaught error or a NaN checkpoint."""
    config = config_for(prior="mog", likelihood="gaussian")
    try:
        result = train(config, settings(epochs=2, lr=1e10), tmp_path / "run", data=data)
    except TrainingDivergedError as error:
        assert "\n" not in str(error)
    else:
        assert all(math.isfinite(r["val_loss"]) for r in result.history)
    if (tmp_path / "run" / "model.safetensors").exists():
        model = ckpt.load(tmp_path / "run")
        assert all(torch.isfinite(p).all() for p in model.parameters())


# --------------------------------------------------------------------------------------------
# Early stopping and the KL schedule


def scripted_validation(monkeypatch, losses: list[float]) -> None:
    """The validation loss of epoch i is losses[i - 1]."""
    remaining = iter(losses)

    def fake_elbo_terms(model, images, batch_size=1000):
        loss = next(remaining)
        return {"elbo": -loss, "reconstruction": -loss, "kl": 0.0, "loss": loss}

    monkeypatch.setattr(training, "elbo_terms", fake_elbo_terms)


def test_early_stopping_counts_only_epochs_after_warmup(tmp_path, data, monkeypatch):
    scripted_validation(monkeypatch, [50, 51, 52, 53, 54, 55, 56, 57])
    result = train(config_for(prior="standard"), settings(epochs=8, warmup=3, patience=2), tmp_path / "run",
                   data=data)
    # epoch 1 is best; epochs 2-3 are warm-up; epochs 4 and 5 exhaust the patience
    assert len(result.history) == 5 and result.stopped_early and not result.interrupted
    assert result.best_epoch == 1 and result.best_val_loss == 50


def test_an_improvement_resets_the_patience(tmp_path, data, monkeypatch):
    scripted_validation(monkeypatch, [50, 51, 49, 52, 53, 54, 55, 56])
    result = train(config_for(prior="standard"), settings(epochs=8, warmup=0, patience=2), tmp_path / "run",
                   data=data)
    assert [r["val_loss"] for r in result.history] == [50, 51, 49, 52, 53]
    assert result.stopped_early and result.best_epoch == 3 and result.best_val_loss == 49


def test_without_improvement_the_run_goes_to_the_last_epoch_if_patience_allows(tmp_path, data, monkeypatch):
    scripted_validation(monkeypatch, [50, 51, 52, 53])
    result = train(config_for(prior="standard"), settings(epochs=4, warmup=0, patience=4), tmp_path / "run",
                   data=data)
    assert len(result.history) == 4 and not result.stopped_early


def test_early_stopping_state_survives_a_resume(tmp_path, data, monkeypatch):
    scripted_validation(monkeypatch, [50, 51, 52, 53, 54])
    config = config_for(prior="standard")
    train(config, settings(epochs=2, warmup=0, patience=3), tmp_path / "run", data=data)  # 1 bad epoch
    scripted_validation(monkeypatch, [52, 53, 54])
    result = train(config, settings(epochs=10, warmup=0, patience=3), tmp_path / "run", data=data, resume=True)
    assert len(result.history) == 4 and result.stopped_early and result.best_epoch == 1


def test_kl_weight_schedule():
    assert [kl_weight(epoch, 4) for epoch in range(1, 7)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert kl_weight(1, 0) == 1.0 and kl_weight(100, 0) == 1.0
    assert kl_weight(1, 1) == 1.0


def test_training_uses_the_kl_schedule(tmp_path, data, monkeypatch):
    original = models.VAE.forward
    betas = []

    def forward(self, x, beta=1.0):
        if self.training:
            betas.append(beta)
        return original(self, x, beta)

    monkeypatch.setattr(models.VAE, "forward", forward)
    result = train(config_for(prior="standard"), settings(epochs=4, warmup=3), tmp_path / "run", data=data)
    assert [r["beta"] for r in result.history] == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])
    assert betas == pytest.approx([1 / 3] * 4 + [2 / 3] * 4 + [1.0] * 8)


# --------------------------------------------------------------------------------------------
# Callbacks


def test_progress_reports_every_step_and_each_epoch_record(tmp_path, data):
    updates: list[Progress] = []
    result = train(config_for(prior="standard"), settings(epochs=2), tmp_path / "run", data=data,
                   progress=updates.append)
    steps = 4
    assert [(p.epoch, p.step) for p in updates] == [(e, s) for e in (1, 2) for s in range(1, steps + 1)]
    assert all(p.steps == steps and p.epochs == 2 and math.isfinite(p.loss) for p in updates)
    records = [p.record for p in updates if p.record is not None]
    assert records == result.history
    assert all(p.record is None for p in updates if p.step < steps)


def test_should_stop_ends_after_the_current_epoch_and_resume_continues(tmp_path, data):
    config = config_for(prior="standard")
    polls = []

    def stop_now():
        polls.append(True)
        return True

    result = train(config, settings(epochs=5), tmp_path / "run", data=data, should_stop=stop_now)
    assert result.interrupted and not result.stopped_early and len(result.history) == 1 and len(polls) == 1
    ckpt.load(tmp_path / "run")
    resumed = train(config, settings(epochs=3), tmp_path / "run", data=data, resume=True,
                    should_stop=lambda: False)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3] and not resumed.interrupted


# --------------------------------------------------------------------------------------------
# Reproducibility, settings


def test_seeded_runs_are_reproducible(tmp_path, data):
    config = config_for(model="hvae", prior="vampprior-data")
    a = train(config, settings(epochs=2), tmp_path / "a", data=data)
    torch.manual_seed(123)  # the global state before train() does not matter
    b = train(config, settings(epochs=2), tmp_path / "b", data=data)
    c = train(config, settings(epochs=2, seed=1), tmp_path / "c", data=data)
    assert without_seconds(a.history) == without_seconds(b.history)
    assert_same_tensors(read_weights(tmp_path / "a"), read_weights(tmp_path / "b"))
    assert without_seconds(a.history) != without_seconds(c.history)


def test_normalized_gradients_train(tmp_path, data):
    result = train(config_for(prior="mog"), settings(epochs=3, normalize_gradients=True, lr=1e-2),
                   tmp_path / "run", data=data)
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]


def test_normalize_gradients_gives_unit_norms():
    a = torch.nn.Parameter(torch.ones(3))
    b = torch.nn.Parameter(torch.ones(2, 2))
    c = torch.nn.Parameter(torch.ones(1))  # no gradient: left alone
    a.grad, b.grad = torch.tensor([3.0, 0.0, 4.0]), torch.full((2, 2), 10.0)
    normalize_gradients_([a, b, c])
    assert a.grad.norm().item() == pytest.approx(1.0, abs=1e-6)
    assert b.grad.norm().item() == pytest.approx(1.0, abs=1e-6)
    assert c.grad is None


def test_a_gated_layers_h_and_g_gradients_are_normalised_each_on_its_own():
    """As in the paper's code, where h and g are two layers: the fused parameter must not share one norm."""
    from vae_core.networks import GatedDense

    layer = GatedDense(4, 3)
    layer(torch.randn(5, 4)).sum().backward()
    with torch.no_grad():
        layer.weight.grad[:3] *= 100.0  # h's gradient far larger than g's
    normalize_gradients_(layer.parameters())
    for grad in (layer.weight.grad, layer.bias.grad):
        h, g = grad.chunk(2)
        assert h.norm().item() == pytest.approx(1.0, abs=1e-5) and g.norm().item() == pytest.approx(1.0, abs=1e-5)
    assert getattr(layer.to(torch.float64).weight, "norm_groups", 1) == 2  # kept when the model moves


@pytest.mark.parametrize("field, value", [("epochs", 0), ("batch_size", 0), ("patience", 0), ("warmup", -1),
                                          ("lr", 0.0), ("lr", -1e-3), ("lr", float("nan"))])
def test_invalid_train_settings_are_refused(tmp_path, data, field, value):
    with pytest.raises(ValueError, match=field):
        settings(**{field: value}).validate()
    with pytest.raises(ValueError, match=field):
        train(config_for(), settings(**{field: value}), tmp_path / "run", data=data)
    assert not (tmp_path / "run").exists()


def test_invalid_model_config_is_refused_before_anything_is_written(tmp_path, data):
    with pytest.raises(ValueError, match="unknown prior"):
        train(config_for(prior="nonsense"), settings(), tmp_path / "run", data=data)
    assert not (tmp_path / "run").exists()


def test_train_config_from_dict_ignores_unknown_keys():
    config = TrainConfig.from_dict({"epochs": 7, "lr": 0.1, "future_option": True})
    assert config.epochs == 7 and config.lr == 0.1


def test_resolve_device():
    assert training.resolve_device("cpu") == torch.device("cpu")
    assert training.resolve_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            training.resolve_device("cuda")


# --------------------------------------------------------------------------------------------
# Resume corner cases


def test_resume_trains_with_the_learning_rate_it_records(tmp_path, data, monkeypatch):
    config = config_for(prior="standard")
    train(config, settings(epochs=1, lr=1e-3), tmp_path / "run", data=data)
    used = []
    original_step = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        used.append(self.param_groups[0]["lr"])
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    try:
        train(config, settings(epochs=2, lr=1e-2), tmp_path / "run", data=data, resume=True)
    except CheckpointError:
        return  # refusing a changed learning rate is a fine answer too
    recorded = ckpt.read_config(tmp_path / "run")[1]["lr"]
    assert set(used) == {recorded}


def test_resuming_an_early_stopped_run_trains_nothing(tmp_path, data, monkeypatch):
    scripted_validation(monkeypatch, [50, 51, 52, 53, 54])
    config = config_for(prior="standard")
    first = train(config, settings(epochs=10, warmup=0, patience=1), tmp_path / "run", data=data)
    assert first.stopped_early and len(first.history) == 2
    again = train(config, settings(epochs=10, warmup=0, patience=1), tmp_path / "run", data=data, resume=True)
    assert len(again.history) == 2 and again.stopped_early


def test_an_incomplete_train_state_is_a_checkpoint_error(tmp_path, data):
    config = config_for(prior="standard")
    train(config, settings(epochs=1), tmp_path / "run", data=data)
    edit_train_state(tmp_path / "run", lambda state: state.pop("epoch"))
    with pytest.raises(CheckpointError, match="last.safetensors.*'epoch'"):
        train(config, settings(epochs=2), tmp_path / "run", data=data, resume=True)


# --------------------------------------------------------------------------------------------
# A kill at any write point


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing on the way up handles it."""


def record_writes(monkeypatch, kill_at: int | None = None) -> list[tuple[str, bytes]]:
    """Route every atomic write through a recorder (name, bytes); the `kill_at`-th one (1-based)
    raises Killed instead of writing, as a kill just before that rename would leave the folder."""
    writes: list[tuple[str, bytes]] = []
    real = files.atomic_write_bytes

    def write(path, data, *args, **kwargs):
        if kill_at is not None and len(writes) + 1 == kill_at:
            raise Killed(path)
        writes.append((str(path), bytes(data)))
        return real(path, data, *args, **kwargs)

    monkeypatch.setattr(files, "atomic_write_bytes", write)
    return writes


def committed_weights(data: bytes) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    return {k[len("model."):]: v for k, v in load(data).items() if k.startswith("model.")}


def test_a_run_killed_at_any_write_resumes_to_the_uninterrupted_result(tmp_path, data, monkeypatch):
    config = config_for(prior="vampprior")
    plan = settings(epochs=2, warmup=0, snapshot_every=2)
    writes = record_writes(monkeypatch)
    straight = train(config, plan, tmp_path / "straight", data=data)
    monkeypatch.undo()
    assert straight.best_epoch == 2  # both epochs improve: model.safetensors is written after each commit
    names = [name.rsplit("/", 1)[-1] for name, _ in writes]
    assert names == ["config.json", "history.json", "epoch-0001.safetensors", "last.safetensors", "model.safetensors",
                     "history.json", "epoch-0002.safetensors", "last.safetensors", "model.safetensors"]
    commits = [committed_weights(blob) for name, blob in writes if name.endswith(ckpt.LAST_FILE)]

    for kill_at in range(1, len(writes) + 1):
        out = tmp_path / f"killed-{kill_at}"
        record_writes(monkeypatch, kill_at)
        with pytest.raises(Killed):
            train(config, plan, out, data=data)
        monkeypatch.undo()
        state = ckpt.read_train_state(out)
        committed = state["epoch"] if state else 0
        assert committed == names[: kill_at - 1].count(ckpt.LAST_FILE), kill_at
        if committed:  # the resume state holds the weights of the epoch it commits
            last = read_weights(out, ckpt.LAST_FILE)
            assert_same_tensors({k[len("model."):]: v for k, v in last.items() if k.startswith("model.")},
                                commits[committed - 1])

        resumed = train(config, plan, out, data=data, resume=True)
        assert [r["epoch"] for r in resumed.history] == [1, 2], kill_at
        on_disk = json.loads((out / ckpt.HISTORY_FILE).read_text())
        assert without_seconds(on_disk) == without_seconds(straight.history), kill_at
        assert (resumed.best_epoch, resumed.best_val_loss) == (straight.best_epoch, straight.best_val_loss)
        assert_same_tensors(read_weights(out), read_weights(tmp_path / "straight"))
        assert_same_tensors(read_weights(out, ckpt.LAST_FILE), read_weights(tmp_path / "straight", ckpt.LAST_FILE))
        assert ckpt.weights_epoch(out) == 2
        assert ckpt.read_train_state(out) == ckpt.read_train_state(tmp_path / "straight")


def test_a_kill_between_the_commit_and_the_best_weights_is_repaired_on_resume(tmp_path, data, monkeypatch):
    """model.safetensors is one epoch behind the committed best epoch: resuming rewrites it from
    the committed weights before training on, so the two never disagree."""
    config = config_for(prior="standard")
    out = tmp_path / "run"
    writes = record_writes(monkeypatch, kill_at=7)  # config, then history, last, model per epoch
    with pytest.raises(Killed):
        train(config, settings(epochs=2, warmup=0), out, data=data)
    assert writes[-1][0].endswith(ckpt.LAST_FILE)  # killed just before epoch 2's model.safetensors
    monkeypatch.undo()
    assert ckpt.read_train_state(out)["best_epoch"] == 2 and ckpt.weights_epoch(out) == 1
    result = train(config, settings(epochs=2, warmup=0), out, data=data, resume=True)  # nothing left to train
    assert result.best_epoch == 2 and ckpt.weights_epoch(out) == 2
    last = read_weights(out, ckpt.LAST_FILE)
    assert_same_tensors(read_weights(out), {k[len("model."):]: v for k, v in last.items() if k.startswith("model.")})


def test_a_history_shorter_than_the_committed_epochs_is_a_clear_error(tmp_path, data):
    config = config_for(prior="standard")
    train(config, settings(epochs=2), tmp_path / "run", data=data)
    history_file = tmp_path / "run" / ckpt.HISTORY_FILE
    history_file.write_text(json.dumps(json.loads(history_file.read_text())[:1]))
    with pytest.raises(CheckpointError, match="holds 1 epochs but .*last.safetensors commits 2") as info:
        train(config, settings(epochs=3), tmp_path / "run", data=data, resume=True)
    assert "\n" not in str(info.value)


def test_a_divergence_in_the_first_epoch_does_not_claim_a_checkpoint(tmp_path, data, monkeypatch):
    nan_after(monkeypatch, training_calls=1)
    with pytest.raises(TrainingDivergedError) as info:
        train(config_for(prior="standard"), settings(epochs=2), tmp_path / "run", data=data)
    message = str(info.value)
    assert "epoch 1" in message and "epoch 0" not in message and "holds no weights" in message
    assert not (tmp_path / "run" / ckpt.WEIGHTS_FILE).exists()


# --------------------------------------------------------------------------------------------
# The output folder and the device, checked before anything is written


def test_an_output_path_that_is_a_file_is_refused(tmp_path, data):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    for out in (target, target / "run"):
        with pytest.raises(CheckpointError, match="is a file, not a folder"):
            training.check_output_folder(out, config_for(), resume=False)
        with pytest.raises(CheckpointError, match="is a file"):
            train(config_for(), settings(epochs=1), out, data=data)
    assert target.read_text() == "not a folder"


def test_check_output_folder_says_whether_to_resume(tmp_path, data):
    config = config_for(prior="standard")
    assert training.check_output_folder(tmp_path / "new", config, resume=True) is False
    assert not (tmp_path / "new").exists()  # it creates nothing
    train(config, settings(epochs=1), tmp_path / "run", data=data)
    assert training.check_output_folder(tmp_path / "run", config, resume=True) is True
    with pytest.raises(CheckpointError, match="already holds a checkpoint"):
        training.check_output_folder(tmp_path / "run", config, resume=False)


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "", "meta", "tpu:0"])
def test_an_unknown_device_is_a_value_error(tmp_path, data, name):
    with pytest.raises(ValueError, match="unknown device"):
        training.resolve_device(name)
    with pytest.raises(ValueError, match="unknown device"):
        train(config_for(), settings(device=name), tmp_path / "run", data=data)
    assert not (tmp_path / "run").exists()
