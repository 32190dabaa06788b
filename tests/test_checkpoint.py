"""Checkpoint folders: exact round trips, no unpickling, one clear CheckpointError per broken file,
atomic writes."""

from __future__ import annotations

import builtins
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vae_core import checkpoint as ckpt
from vae_core.config import ModelConfig
from vae_core.errors import CheckpointError
from vae_core.files import atomic_write_json


@pytest.fixture
def saved(tmp_path, build, make_config):
    """save() of a tiny VampPrior VAE whose weights moved away from their initial values."""

    def _saved(model_name: str = "vae", prior: str = "vampprior", folder: str = "ckpt"):
        config = make_config(model=model_name, prior=prior)
        model = build(config)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
        path = ckpt.save(tmp_path / folder, model, config, history=[{"epoch": 1, "val_loss": 40.0}],
                         metrics={"log_likelihood": -40.0}, train_config={"lr": 0.001})
        return path, model, config

    return _saved


def error_message(callable_, *args) -> str:
    with pytest.raises(CheckpointError) as info:
        callable_(*args)
    message = str(info.value)
    assert "\n" not in message
    return message


def write_config(path: Path, payload) -> None:
    (path / ckpt.CONFIG_FILE).write_text(json.dumps(payload))


def config_payload(path: Path) -> dict:
    return json.loads((path / ckpt.CONFIG_FILE).read_text())


# --------------------------------------------------------------------------------------------
# Round trip


@pytest.mark.parametrize("model_name", ["vae", "hvae"])
@pytest.mark.parametrize("prior", ["vampprior", "mog"])
def test_round_trip_gives_identical_outputs(saved, model_name, prior):
    path, model, config = saved(model_name, prior)
    loaded = ckpt.load(path)
    assert type(loaded) is type(model)
    x = torch.rand(4, 1, 8, 8)
    z = torch.randn(5, config.latent_dim)
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded.decode(z), model.decode(z))
        assert torch.equal(loaded.prior.log_prob(z), model.prior.log_prob(z))
        assert torch.equal(loaded.encode(x).mean, model.encode(x).mean)
        assert torch.equal(loaded.encode(x).stddev, model.encode(x).stddev)
        for name, tensor in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[name], tensor), name
        if prior == "vampprior":
            assert torch.equal(loaded.prior.pseudo_inputs, model.prior.pseudo_inputs)
        torch.manual_seed(0)
        a = loaded(x).elbo
        torch.manual_seed(0)
        b = model(x).elbo
        assert torch.equal(a, b)


def test_load_returns_a_model_in_eval_mode(saved):
    path, _, _ = saved()
    model = ckpt.load(path)
    assert all(not module.training for module in model.modules())
    assert next(model.parameters()).device.type == "cpu"


def test_save_writes_the_documented_files(saved):
    path, _, config = saved()
    assert {p.name for p in path.iterdir()} == {"config.json", "model.safetensors", "history.json", "metrics.json"}
    payload = config_payload(path)
    assert payload["format"] == ckpt.FORMAT and payload["version"] == ckpt.VERSION
    assert ModelConfig.from_dict(payload["model"]) == config
    info = ckpt.read_info(path)
    assert info.config == config and info.train_config == {"lr": 0.001}
    assert info.history == [{"epoch": 1, "val_loss": 40.0}] and info.epochs == 1
    assert info.metrics == {"log_likelihood": -40.0}


def test_read_info_without_history_or_metrics(tmp_path, build, make_config):
    config = make_config()
    path = ckpt.save(tmp_path / "bare", build(config), config)
    (path / ckpt.HISTORY_FILE).unlink()
    info = ckpt.read_info(path)
    assert info.history == [] and info.metrics == {} and info.epochs == 0


def test_vampprior_data_checkpoint_loads_without_training_images(saved):
    path, model, _ = saved(prior="vampprior-data")
    loaded = ckpt.load(path)
    assert torch.equal(loaded.prior.pseudo_input_params, model.prior.pseudo_input_params)


# --------------------------------------------------------------------------------------------
# Never unpickle


class MakesAFile:
    """Unpickling this object creates `marker`: proof that pickle code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return builtins.open, (str(self.marker), "w")


def test_loading_never_unpickles(saved, monkeypatch):
    path, _, _ = saved()

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint was unpickled")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    ckpt.load(path)
    ckpt.read_info(path)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_a_pickle_posing_as_safetensors_is_refused_and_not_run(saved, tmp_path, protocol):
    path, _, _ = saved()
    marker = tmp_path / "pwned"
    (path / ckpt.WEIGHTS_FILE).write_bytes(pickle.dumps(MakesAFile(marker), protocol=protocol))
    assert "model.safetensors" in error_message(ckpt.load, path)
    assert not marker.exists()


def test_a_torch_save_file_posing_as_safetensors_is_refused(saved, tmp_path):
    path, model, _ = saved()
    marker = tmp_path / "pwned"
    torch.save({"state": model.state_dict(), "payload": MakesAFile(marker)}, path / ckpt.WEIGHTS_FILE)
    assert not marker.exists()  # torch.save itself does not run it
    assert "model.safetensors" in error_message(ckpt.load, path)
    assert not marker.exists()


# --------------------------------------------------------------------------------------------
# One CheckpointError per broken file, naming the file


def test_missing_folder(tmp_path):
    message = error_message(ckpt.load, tmp_path / "nowhere")
    assert "nowhere" in message and "no such checkpoint folder" in message
    assert "nowhere" in error_message(ckpt.read_info, tmp_path / "nowhere")


def test_a_file_instead_of_a_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    assert "file" in error_message(ckpt.load, tmp_path / "file")


def test_missing_config(saved):
    path, _, _ = saved()
    (path / ckpt.CONFIG_FILE).unlink()
    assert "config.json" in error_message(ckpt.load, path)


@pytest.mark.parametrize("text", ["{not json", "", "\xff\xfe binary"])
def test_invalid_json_config(saved, text):
    path, _, _ = saved()
    (path / ckpt.CONFIG_FILE).write_bytes(text.encode("latin-1"))
    message = error_message(ckpt.load, path)
    assert "config.json" in message and "JSON" in message


@pytest.mark.parametrize("payload", [{"model": {}}, [1, 2], "text", {"format": "other-tool", "version": 1}])
def test_foreign_config(saved, payload):
    path, _, _ = saved()
    write_config(path, payload)
    message = error_message(ckpt.load, path)
    assert "config.json" in message and "not a vampviz checkpoint" in message


def test_newer_format_version(saved):
    path, _, _ = saved()
    write_config(path, config_payload(path) | {"version": ckpt.VERSION + 1})
    message = error_message(ckpt.load, path)
    assert "config.json" in message and "newer" in message


@pytest.mark.parametrize("version", ["1", None, 1.5, True])
def test_malformed_format_version(saved, version):
    path, _, _ = saved()
    write_config(path, config_payload(path) | {"version": version})
    assert "config.json" in error_message(ckpt.load, path)


@pytest.mark.parametrize("change, words", [
    ({"prior": "nonsense"}, "unknown prior"),
    ({"latent_dim": -1}, "latent_dim"),
    ({"latent_dim": "3"}, "latent_dim"),
    ({"hidden": 1.5}, "hidden"),
    ({"input_shape": [8, 8]}, "input_shape"),
    ({"input_shape": ["a", 8, 8]}, "invalid model config"),
    ({"colour": "red"}, "unknown config keys"),
])
def test_invalid_model_config(saved, change, words):
    path, _, _ = saved()
    payload = config_payload(path)
    write_config(path, payload | {"model": payload["model"] | change})
    message = error_message(ckpt.load, path)
    assert "config.json" in message and words in message


@pytest.mark.parametrize("model_value", [None, [1, 2], "vae", 3])
def test_model_config_of_the_wrong_type(saved, model_value):
    path, _, _ = saved()
    write_config(path, config_payload(path) | {"model": model_value})
    assert "config.json" in error_message(ckpt.load, path)


def test_missing_model_config(saved):
    path, _, _ = saved()
    payload = config_payload(path)
    del payload["model"]
    write_config(path, payload)
    assert "config.json" in error_message(ckpt.load, path)


def test_missing_weights(saved):
    path, _, _ = saved()
    (path / ckpt.WEIGHTS_FILE).unlink()
    message = error_message(ckpt.load, path)
    assert "model.safetensors" in message and "missing" in message


@pytest.mark.parametrize("keep", [0.5, 0.01, 0.0])
def test_truncated_weights(saved, keep):
    path, _, _ = saved()
    data = (path / ckpt.WEIGHTS_FILE).read_bytes()
    (path / ckpt.WEIGHTS_FILE).write_bytes(data[: int(len(data) * keep)])
    assert "model.safetensors" in error_message(ckpt.load, path)


def test_garbage_weights(saved):
    path, _, _ = saved()
    (path / ckpt.WEIGHTS_FILE).write_bytes(os.urandom(4096))
    assert "model.safetensors" in error_message(ckpt.load, path)


def test_weights_of_another_shape(saved):
    path, _, _ = saved()
    payload = config_payload(path)
    write_config(path, payload | {"model": payload["model"] | {"latent_dim": 4}})
    message = error_message(ckpt.load, path)
    assert "model.safetensors" in message and "shape" in message


def test_weights_of_another_model(saved):
    path, _, _ = saved()
    payload = config_payload(path)
    write_config(path, payload | {"model": payload["model"] | {"model": "hvae"}})
    message = error_message(ckpt.load, path)
    assert "model.safetensors" in message and "does not match" in message


def test_missing_tensors(saved):
    path, model, _ = saved()
    tensors = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith("decoder.")}
    save_file(tensors, path / ckpt.WEIGHTS_FILE)
    message = error_message(ckpt.load, path)
    assert "model.safetensors" in message and "lacks" in message and "decoder." in message


def test_unexpected_tensors(saved):
    path, model, _ = saved()
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()} | {"extra.weight": torch.zeros(2)}
    save_file(tensors, path / ckpt.WEIGHTS_FILE)
    message = error_message(ckpt.load, path)
    assert "model.safetensors" in message and "extra.weight" in message


def test_corrupt_history_is_reported_by_read_info(saved):
    path, _, _ = saved()
    (path / ckpt.HISTORY_FILE).write_text("[{")
    assert "history.json" in error_message(ckpt.read_info, path)


def test_missing_read_tensors_file(tmp_path):
    assert "last.safetensors" in error_message(ckpt.read_tensors, tmp_path / "last.safetensors")


# --------------------------------------------------------------------------------------------
# Atomic writes


def temp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp")]


def test_writes_leave_no_temporary_files(saved):
    path, model, config = saved()
    ckpt.save(path, model, config)
    ckpt.save_tensors(path / "last.safetensors", {"a": torch.ones(3)})
    assert temp_files(path) == []


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_a_failed_write_keeps_the_old_file(saved, monkeypatch, failing):
    path, model, _ = saved()
    weights = path / ckpt.WEIGHTS_FILE
    config_file = path / ckpt.CONFIG_FILE
    old_weights, old_config = weights.read_bytes(), config_file.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, failing, boom)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_weights(path, model)
    with pytest.raises(OSError, match="disk full"):
        ckpt.write_config(path, ModelConfig(latent_dim=7))
    monkeypatch.undo()
    assert weights.read_bytes() == old_weights and config_file.read_bytes() == old_config
    assert temp_files(path) == []
    ckpt.load(path)  # still a whole, loadable checkpoint


def test_an_interrupted_write_keeps_the_old_file(saved, monkeypatch):
    """A crash in the middle of writing the bytes (KeyboardInterrupt, not just OSError)."""
    path, model, _ = saved()
    weights = path / ckpt.WEIGHTS_FILE
    old = weights.read_bytes()
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, handle):
            self.file = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            self.file.write(data[: len(data) // 2])
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_weights(path, model)
    monkeypatch.undo()
    assert weights.read_bytes() == old and temp_files(path) == []


def test_json_writes_keep_infinities(tmp_path):
    atomic_write_json(tmp_path / "state.json", {"best": float("inf")})
    assert ckpt.read_json(tmp_path / "state.json") == {"best": float("inf")}


def test_optimizer_state_round_trips_through_tensors_and_json(build, tmp_path):
    model = build(prior="mog")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(4, 1, 8, 8)).loss.backward()
    optimizer.step()
    tensors, rest = ckpt.optimizer_tensors(optimizer)
    ckpt.save_tensors(tmp_path / "opt.safetensors", tensors)
    atomic_write_json(tmp_path / "opt.json", rest)
    state = ckpt.optimizer_state(ckpt.read_tensors(tmp_path / "opt.safetensors"), ckpt.read_json(tmp_path / "opt.json"))
    fresh = torch.optim.Adam(model.parameters(), lr=0.5)
    fresh.load_state_dict(state)
    original = optimizer.state_dict()
    restored = fresh.state_dict()
    assert restored["param_groups"][0]["lr"] == 1e-3
    for index, entries in original["state"].items():
        for name, value in entries.items():
            assert torch.equal(restored["state"][index][name], value)
