"""Checkpoint folders: exact round trips, no unpickling, one clear CheckpointError per broken file,
atomic writes."""

from __future__ import annotations

import builtins
import json
import os
import pickle
import struct
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


@pytest.mark.parametrize("prior", ["vampprior", "vampprior-data"])
def test_pseudo_inputs_are_read_from_the_weights_without_building_a_model(saved, monkeypatch, prior):
    path, model, config = saved(prior=prior)
    monkeypatch.setattr(ckpt, "build_model", lambda *a, **k: pytest.fail("a model was built"))
    images = ckpt.read_pseudo_inputs(path)
    assert torch.equal(images, model.prior.pseudo_inputs.detach())
    assert images.shape == (config.components, *config.input_shape)


def test_pseudo_inputs_of_other_priors_and_of_mismatched_weights(saved):
    assert ckpt.read_pseudo_inputs(saved(prior="mog")[0]) is None  # its components are decoded, not stored
    path, _, _ = saved(folder="mismatch")
    payload = config_payload(path)
    payload["model"]["components"] += 1
    write_config(path, payload)
    assert "the config needs" in error_message(ckpt.read_pseudo_inputs, path)


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


# --------------------------------------------------------------------------------------------
# The safetensors header, checked before anything is built


def rewrite_header(path: Path, edit) -> None:
    """Apply `edit` to a safetensors file's JSON header in place (the data is kept as it is)."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    header = edit(header) or header
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + length :])


def test_a_config_asking_for_huge_sizes_fails_before_a_real_model_is_built(saved, monkeypatch):
    """A config.json edited to ask for thousands of hidden units and components is refused from the
    weights' header, comparing against a model on the meta device: nothing real is allocated."""
    path, _, _ = saved()
    payload = config_payload(path)
    write_config(path, payload | {"model": payload["model"] | {"hidden": 8192, "components": 65536}})
    real_builds = []
    original = ckpt.build_model

    def spying_build(config, *args, **kwargs):
        if torch.get_default_device().type != "meta":
            real_builds.append(config.hidden)
            if config.hidden > 1000:  # do not let a failing loader allocate gigabytes
                raise AssertionError("a real model was built from a config that does not match its weights")
        return original(config, *args, **kwargs)

    monkeypatch.setattr(ckpt, "build_model", spying_build)
    message = error_message(ckpt.load, path)
    assert "model.safetensors" in message and "shape" in message
    assert real_builds == []


def test_float16_weights_are_cast_to_float32(saved):
    path, model, _ = saved()
    half = {k: v.half().contiguous() for k, v in model.state_dict().items()}
    save_file(half, path / ckpt.WEIGHTS_FILE)
    loaded = ckpt.load(path)
    for name, tensor in loaded.state_dict().items():
        assert tensor.dtype == torch.float32, name
        assert torch.equal(tensor, half[name].float()), name


@pytest.mark.parametrize("dtype", [torch.float64, torch.int32, torch.bfloat16])
def test_weights_of_another_dtype_are_refused(saved, dtype):
    path, model, _ = saved()
    save_file({k: v.to(dtype).contiguous() for k, v in model.state_dict().items()}, path / ckpt.WEIGHTS_FILE)
    message = error_message(ckpt.load, path)
    assert "model.safetensors" in message and "F16 or F32" in message


@pytest.mark.parametrize("dtype", ["F4", "F8_E8M0", "Q9", 7])
def test_an_unknown_dtype_is_a_checkpoint_error(saved, dtype):
    path, _, _ = saved()

    def edit(header):
        name = next(k for k in header if k != "__metadata__")
        header[name]["dtype"] = dtype

    rewrite_header(path / ckpt.WEIGHTS_FILE, edit)
    message = error_message(ckpt.load, path)
    assert "model.safetensors" in message and "dtype" in message
    assert "model.safetensors" in error_message(ckpt.read_info, path)


def test_a_header_claiming_a_huge_tensor_is_refused_without_allocating(saved):
    path, _, _ = saved()

    def edit(header):
        name = next(k for k in header if k != "__metadata__")
        header[name]["shape"] = [100_000, 100_000]
        header[name]["data_offsets"] = [0, 4 * 10**10]

    rewrite_header(path / ckpt.WEIGHTS_FILE, edit)
    message = error_message(ckpt.read_tensors, path / ckpt.WEIGHTS_FILE)
    assert "outside the file" in message
    error_message(ckpt.load, path)


@pytest.mark.parametrize("edit, words", [
    (lambda h: h[next(k for k in h if k != "__metadata__")].update(shape=[3, "x"]), "malformed shape"),
    (lambda h: h[next(k for k in h if k != "__metadata__")].update(data_offsets=[8, 4]), "outside the file"),
    (lambda h: h[next(k for k in h if k != "__metadata__")].update(shape=[1]), "does not match its shape"),
    (lambda h: h.update(__metadata__={"format": 3}), "metadata"),
    (lambda h: [1, 2], "not a safetensors file"),
])
def test_malformed_header_entries(saved, edit, words):
    path, _, _ = saved()
    rewrite_header(path / ckpt.WEIGHTS_FILE, edit)
    message = error_message(ckpt.load, path)
    assert "model.safetensors" in message and words in message


@pytest.mark.parametrize("length", [2**40, 2**20 + 1])
def test_a_header_length_beyond_the_file_or_the_cap_is_refused(saved, length):
    path, _, _ = saved()
    weights = path / ckpt.WEIGHTS_FILE
    data = weights.read_bytes()
    weights.write_bytes(struct.pack("<Q", length) + data[8:])
    assert "model.safetensors" in error_message(ckpt.read_header, weights)


def test_read_info_reports_broken_weights(saved):
    path, _, _ = saved()
    weights = path / ckpt.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-10])
    assert "model.safetensors" in error_message(ckpt.read_info, path)


# --------------------------------------------------------------------------------------------
# JSON files: size, nesting and types


@pytest.mark.parametrize("name", [ckpt.HISTORY_FILE, ckpt.METRICS_FILE, ckpt.CONFIG_FILE])
def test_deeply_nested_json_is_a_checkpoint_error(saved, name):
    path, _, _ = saved()
    (path / name).write_text("[" * 100_000 + "]" * 100_000)
    message = error_message(ckpt.read_info, path)
    assert name in message and "nested" in message


def test_a_huge_json_file_is_refused_unread(saved, monkeypatch):
    path, _, _ = saved()
    (path / ckpt.HISTORY_FILE).write_text("[" + " " * (ckpt.MAX_JSON_BYTES + 1) + "]")
    real_loads = json.loads

    def loads(text, *args, **kwargs):
        assert len(text) <= ckpt.MAX_JSON_BYTES, "a huge file was parsed"
        return real_loads(text, *args, **kwargs)

    monkeypatch.setattr(json, "loads", loads)
    message = error_message(ckpt.read_info, path)
    assert "history.json" in message and "too large" in message


def test_an_integer_of_thousands_of_digits_is_a_checkpoint_error(saved):
    path, _, _ = saved()
    text = (path / ckpt.CONFIG_FILE).read_text().replace('"hidden": 16', '"hidden": ' + "9" * 5000)
    (path / ckpt.CONFIG_FILE).write_text(text)
    assert "config.json" in error_message(ckpt.load, path)


@pytest.mark.parametrize("name, content, words", [
    (ckpt.HISTORY_FILE, {"epoch": 1}, "list of epoch records"),
    (ckpt.HISTORY_FILE, "epochs", "list of epoch records"),
    (ckpt.HISTORY_FILE, [{"epoch": 1}, 3], "record 2"),
    (ckpt.HISTORY_FILE, [[1, 2]], "record 1"),
    (ckpt.HISTORY_FILE, [{"epoch": 1, "val_loss": "low"}], "val_loss"),
    (ckpt.HISTORY_FILE, [{"epoch": 1, "val_loss": True}], "val_loss"),
    (ckpt.HISTORY_FILE, [{"epoch": 1, "val_loss": [40.0]}], "val_loss"),
    (ckpt.HISTORY_FILE, [{"epoch": 1, "active_units": 3}], "active_units"),
    (ckpt.HISTORY_FILE, [{"epoch": 1, "active_units": {"z": 2.5}}], "active_units"),
    (ckpt.HISTORY_FILE, [{"epoch": 1, "active_units": {"z": True}}], "active_units"),
    (ckpt.METRICS_FILE, [1, 2], "JSON object"),
    (ckpt.METRICS_FILE, "good", "JSON object"),
    (ckpt.METRICS_FILE, {"log_likelihood": "high"}, "log_likelihood"),
    (ckpt.METRICS_FILE, {"active_units": [3]}, "active_units"),
    (ckpt.METRICS_FILE, {"decoder_entropy": {"prior": "x"}}, "decoder_entropy"),
    (ckpt.METRICS_FILE, {"unit_activity": {"z": [0.1, "x"]}}, "unit_activity"),
    (ckpt.METRICS_FILE, {"log_likelihood_per_point": {"a": 1}}, "log_likelihood_per_point"),
])
def test_history_or_metrics_of_the_wrong_shape_are_a_checkpoint_error(saved, name, content, words):
    path, _, _ = saved()
    atomic_write_json(path / name, content)
    message = error_message(ckpt.read_info, path)
    assert name in message and words in message


def test_a_history_of_numbers_nulls_and_unit_counts_is_accepted(saved):
    path, _, _ = saved()
    history = [{"epoch": 1, "val_loss": 40.0, "seconds": None, "beta": float("inf"), "active_units": {"z": 3}}]
    atomic_write_json(path / ckpt.HISTORY_FILE, history)
    assert ckpt.read_info(path).history == history


def test_metrics_with_an_undefined_standard_error_are_accepted(saved):
    path, _, _ = saved()
    atomic_write_json(path / ckpt.METRICS_FILE, {"log_likelihood": -40.0, "log_likelihood_stderr": None,
                                                 "reproduce": {"anything": [1, "x"]}})
    assert ckpt.read_info(path).metrics["log_likelihood_stderr"] is None


@pytest.mark.parametrize("train", [[1], "fast", 3])
def test_training_settings_of_the_wrong_type_are_a_checkpoint_error(saved, train):
    path, _, _ = saved()
    write_config(path, config_payload(path) | {"train": train})
    assert "config.json" in error_message(ckpt.read_info, path)
    assert "config.json" in error_message(ckpt.load, path)


def test_read_info_state(saved):
    path, _, _ = saved()
    assert ckpt.read_info(path).state == "ready"
    (path / ckpt.WEIGHTS_FILE).unlink()
    assert ckpt.read_info(path).state == "incomplete"


def test_the_shipped_checkpoints_pass_every_check():
    shipped = sorted(p for p in (Path(__file__).resolve().parents[1] / "checkpoints").iterdir() if p.is_dir())
    assert shipped
    for path in shipped:
        info = ckpt.read_info(path)
        assert info.state == "ready" and info.history and info.metrics
        ckpt.load(path)
