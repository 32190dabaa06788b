"""The command line end to end: train, evaluate, sample, info, and one-line errors with exit code 2."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_checkpoint import rewrite_header

from vae_core import checkpoint as ckpt
from vae_core import cli
from vae_core.locking import LOCK_FILE

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--hidden", "16", "--latent-dim", "3", "--latent-dim-z1", "2", "-K", "5", "--device", "cpu"]


@contextlib.contextmanager
def held_lock(folder: Path, pid: int):
    """`folder`'s lock file held (flock on a descriptor of its own, as another process would),
    its text naming `pid`."""
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"{pid} {socket.gethostname()}\n".encode())
        yield
    finally:
        os.close(fd)


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """cli.main in-process: (exit code, stdout, stderr); argparse's SystemExit counts as a return."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *words: str) -> str:
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines and lines[-1].strip().startswith("error:") or "error:" in lines[-1]
    for word in words:
        assert word in lines[-1]
    return lines[-1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A VAE with a VampPrior trained for 2 epochs on digits by the CLI itself."""
    out = tmp_path_factory.mktemp("cli") / "vae"
    code = cli.main(["train", "--epochs", "2", "--prior", "vampprior", "--out", str(out), *TINY])
    assert code == 0
    return out


def test_train_writes_a_checkpoint(trained):
    assert {p.name for p in trained.iterdir()} >= {"config.json", "model.safetensors", "history.json",
                                                   "last.safetensors"}
    payload = json.loads((trained / "config.json").read_text())
    assert payload["model"]["prior"] == "vampprior" and payload["model"]["likelihood"] == "bernoulli"
    assert payload["model"]["input_shape"] == [1, 8, 8] and payload["model"]["components"] == 5
    assert payload["train"]["epochs"] == 2 and payload["train"]["warmup"] == 0  # at most a fifth of the epochs


def test_train_prints_a_summary(tmp_path, capsys):
    code, out, _ = run(["train", "--epochs", "1", "--model", "hvae", "--prior", "mog",
                        "--out", tmp_path / "hvae", *TINY], capsys)
    assert code == 0
    assert "after 1 epochs" in out and "best validation loss" in out and str(tmp_path / "hvae") in out


def test_evaluate_json_prints_one_object(trained, capsys):
    code, out, _ = run(["evaluate", trained, "--samples", "50", "--json", "--device", "cpu"], capsys)
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1
    metrics = json.loads(lines[0])
    assert {"log_likelihood", "elbo", "reconstruction", "kl", "active_units", "samples", "n_test"} <= set(metrics)
    assert metrics["samples"] == 50 and metrics["n_test"] == 250
    assert isinstance(metrics["active_units"], dict) and set(metrics["active_units"]) == {"z"}
    assert 0 <= metrics["active_units"]["z"] <= 3
    assert metrics["log_likelihood"] < 0 and metrics["elbo"] < 0
    assert metrics["log_likelihood"] > metrics["elbo"] - 1.0
    assert metrics["test_points"] == "all" and metrics["metrics_file"] is None  # S = 50: a partial evaluation
    assert not (trained / "metrics.json").exists()


def test_evaluate_text_and_limit(trained, capsys):
    code, out, _ = run(["evaluate", trained, "--samples", "10", "--limit", "20", "--device", "cpu"], capsys)
    assert code == 0
    assert "test log-likelihood" in out and "n=20" in out and "active units" in out
    assert "nats/image at prior draws (samples)" in out


def test_sample_writes_a_png(trained, tmp_path, capsys):
    target = tmp_path / "out" / "grid.png"
    code, out, _ = run(["sample", trained, "--n", "16", "--out", target], capsys)
    assert code == 0 and "wrote 16 samples" in out
    with Image.open(target) as image:
        image.verify()
    with Image.open(target) as image:
        assert image.format == "PNG" and image.mode == "L"
        # 4 x 4 digits of 8 pixels enlarged 7 times, with 1-pixel gaps and borders
        assert image.size == (4 * (8 * 7 + 1) + 1,) * 2
        assert len(np.unique(np.asarray(image))) > 2  # not a blank image


def test_sample_is_seeded(trained, tmp_path, capsys):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        assert run(["sample", trained, "--n", "9", "--seed", seed, "--scale", "1", "--out", tmp_path / f"{name}.png"],
                   capsys)[0] == 0
    a, b, c = ((tmp_path / f"{n}.png").read_bytes() for n in "abc")
    assert a == b and a != c


def test_info_describes_the_model(trained, capsys):
    code, out, _ = run(["info", trained], capsys)
    assert code == 0
    assert "VAE with a vampprior prior on digits" in out
    assert "2 epochs" in out and "K=5" in out and "{'z': 3}" in out


@pytest.mark.parametrize("argv, words", [
    (["train", "--prior", "nonsense", "--out", "x"], ["--prior", "invalid choice"]),
    (["train", "--epochs", "-1", "--out", "x"], ["--epochs", "positive"]),
    (["train", "--epochs", "many", "--out", "x"], ["--epochs"]),
    (["train", "--warmup", "-2", "--out", "x"], ["--warmup"]),
    (["train", "--dataset", "imagenet", "--out", "x"], ["--dataset"]),
    (["train", "--epochs", "1"], ["--out"]),
    (["evaluate", "x", "--samples", "0"], ["--samples"]),
    (["sample", "x", "--n", "-4", "--out", "x.png"], ["--n"]),
    (["frobnicate"], ["invalid choice"]),
    ([], []),
])
def test_bad_arguments_exit_2_without_a_traceback(capsys, argv, words):
    code, out, err = run(argv, capsys)
    assert_one_line_error(code, err, *words)


@pytest.mark.parametrize("command", [["evaluate", "{missing}", "--samples", "5"], ["info", "{missing}"],
                                     ["sample", "{missing}", "--out", "{tmp}/x.png"]])
def test_missing_checkpoint_folder(tmp_path, capsys, command):
    argv = [a.format(missing=tmp_path / "nowhere", tmp=tmp_path) for a in command]
    code, _, err = run(argv, capsys)
    assert err.count("\n") == 1  # exactly one line
    assert_one_line_error(code, err, "nowhere")


@pytest.fixture
def corrupt(trained, tmp_path) -> Path:
    broken = tmp_path / "broken"
    shutil.copytree(trained, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return broken


@pytest.mark.parametrize("command", [["evaluate", "--samples", "5"], ["sample", "--out", "x.png"]])
def test_corrupt_checkpoint(corrupt, capsys, command):
    code, _, err = run([command[0], corrupt, *command[1:]], capsys)
    assert err.count("\n") == 1
    assert_one_line_error(code, err, "model.safetensors")


def test_corrupt_config(trained, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(trained, broken)
    (broken / "config.json").write_text("{")
    code, _, err = run(["info", broken], capsys)
    assert err.count("\n") == 1
    assert_one_line_error(code, err, "config.json")


def test_train_refuses_an_existing_checkpoint(trained, capsys):
    before = (trained / "model.safetensors").read_bytes()
    code, _, err = run(["train", "--epochs", "1", "--out", trained, *TINY], capsys)
    assert_one_line_error(code, err, "already holds a checkpoint", "--resume")
    assert (trained / "model.safetensors").read_bytes() == before


def test_train_refuses_a_folder_another_live_process_trains_into(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    with held_lock(out, os.getppid()):
        code, _, err = run(["train", "--epochs", "1", "--out", out, *TINY], capsys)
    assert_one_line_error(code, err, f"process {os.getppid()}", LOCK_FILE)
    assert not (out / "config.json").exists()


def test_train_holds_the_folder_lock_while_training_and_releases_it(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    seen = []
    original = cli.train

    def spying_train(*args, **kwargs):
        seen.append((out / LOCK_FILE).read_text().split()[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(cli, "train", spying_train)
    code, _, _ = run(["train", "--epochs", "1", "--out", out, *TINY], capsys)
    assert code == 0 and seen == [str(os.getpid())] and not (out / LOCK_FILE).exists()


def test_resume_with_other_settings_is_refused(trained, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    code, _, err = run(["train", "--epochs", "3", "--prior", "mog", "--resume", "--out", copy, *TINY], capsys)
    assert_one_line_error(code, err, "different model")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device(tmp_path, capsys):
    code, _, err = run(["train", "--epochs", "1", "--out", tmp_path / "x", *TINY, "--device", "cuda"], capsys)
    assert_one_line_error(code, err, "CUDA is not available")


def test_missing_dataset_files(tmp_path, capsys):
    code, _, err = run(["train", "--dataset", "mnist", "--data-dir", tmp_path / "empty", "--epochs", "1",
                        "--out", tmp_path / "x", *TINY], capsys)
    assert err.count("\n") == 1
    assert_one_line_error(code, err)


def test_resume_keeps_the_warmup_the_run_started_with(tmp_path, capsys, monkeypatch):
    """--epochs 20 means warm-up 4; resuming with --epochs 40 must not stretch it to 8."""
    real_train = importlib.import_module("vae_core.train").train
    polls = {"n": 0}

    def train_two_epochs(*args, **kwargs):  # the user presses Ctrl-C after two epochs, twice
        polls["n"] = 0

        def should_stop():
            polls["n"] += 1
            return polls["n"] == 2

        return real_train(*args, **kwargs, should_stop=should_stop)

    monkeypatch.setattr(cli, "train", train_two_epochs)
    out = tmp_path / "run"
    assert run(["train", "--epochs", "20", "--out", out, *TINY], capsys)[0] == 0
    assert run(["train", "--epochs", "40", "--resume", "--out", out, *TINY], capsys)[0] == 0
    history = json.loads((out / "history.json").read_text())
    assert [r["beta"] for r in history] == [0.25, 0.5, 0.75, 1.0]
    assert json.loads((out / "config.json").read_text())["train"]["warmup"] == 4


# --------------------------------------------------------------------------------------------
# python -m vae_core in a subprocess


def module_run(*args) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                        "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "vae_core", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)


def test_module_entry_point_exits_with_mains_code(corrupt):
    broken = module_run("sample", corrupt, "--out", corrupt / "x.png")
    assert broken.returncode == 2
    assert "Traceback" not in broken.stderr
    assert broken.stderr.count("\n") == 1 and broken.stderr.startswith("error:")
    assert "model.safetensors" in broken.stderr


@pytest.mark.slow
def test_module_entry_point_runs_a_command(trained):
    ok = module_run("info", trained)
    assert ok.returncode == 0, ok.stderr
    assert "VAE with a vampprior prior on digits" in ok.stdout


# --------------------------------------------------------------------------------------------
# evaluate writes metrics.json only for a full evaluation


@pytest.fixture
def copy_of(trained, tmp_path):
    """A private copy of the trained checkpoint, with the metrics a full evaluation left."""
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    (copy / "metrics.json").write_text(json.dumps({"log_likelihood": -20.0, "samples": 5000, "n_test": 360}))
    return copy


def test_a_partial_evaluation_keeps_the_metrics_file(copy_of, capsys):
    before = (copy_of / "metrics.json").read_text()
    code, out, _ = run(["evaluate", copy_of, "--samples", "1", "--limit", "1", "--device", "cpu"], capsys)
    assert code == 0 and "metrics not written" in out and "--write-metrics" in out
    assert (copy_of / "metrics.json").read_text() == before
    code, out, _ = run(["evaluate", copy_of, "--samples", "5", "--device", "cpu", "--json"], capsys)
    assert code == 0 and json.loads(out)["metrics_file"] is None
    assert (copy_of / "metrics.json").read_text() == before


def test_write_metrics_records_what_was_measured(copy_of, capsys):
    code, out, _ = run(["evaluate", copy_of, "--samples", "3", "--limit", "7", "--device", "cpu",
                        "--write-metrics"], capsys)
    assert code == 0 and f"metrics written to {copy_of / 'metrics.json'}" in out
    saved = json.loads((copy_of / "metrics.json").read_text())
    assert saved["samples"] == 3 and saved["n_test"] == 7 and saved["test_points"] == "first 7"


def test_a_full_evaluation_writes_the_metrics(copy_of, capsys, monkeypatch):
    monkeypatch.setattr(cli, "DEFAULT_SAMPLES", 4)  # "full" is S >= the default and every test image
    code, out, _ = run(["evaluate", copy_of, "--device", "cpu", "--json"], capsys)
    assert code == 0
    printed = json.loads(out)
    assert printed["metrics_file"] == str(copy_of / "metrics.json")
    saved = json.loads((copy_of / "metrics.json").read_text())
    assert saved["samples"] == 4 and saved["test_points"] == "all" and saved["n_test"] == printed["n_test"]
    assert "metrics_file" not in saved
    monkeypatch.setattr(cli, "DEFAULT_SAMPLES", 10**6)
    (copy_of / "metrics.json").unlink()
    assert run(["evaluate", copy_of, "--samples", "4", "--device", "cpu"], capsys)[0] == 0
    assert not (copy_of / "metrics.json").exists()


def test_one_test_image_has_no_standard_error(trained, capsys):
    code, out, _ = run(["evaluate", trained, "--samples", "2", "--limit", "1", "--device", "cpu", "--json"], capsys)
    assert code == 0 and json.loads(out)["log_likelihood_stderr"] is None
    code, out, _ = run(["evaluate", trained, "--samples", "2", "--limit", "1", "--device", "cpu"], capsys)
    assert code == 0 and "± n/a nats" in out and "n=1 of" in out


def test_info_shows_an_undefined_standard_error_as_n_a(copy_of, capsys):
    (copy_of / "metrics.json").write_text(json.dumps({"log_likelihood": -20.0, "log_likelihood_stderr": None}))
    code, out, _ = run(["info", copy_of], capsys)
    assert code == 0 and "log_likelihood_stderr: n/a" in out


def test_an_empty_test_set_is_a_clear_error(trained, capsys, monkeypatch):
    real = cli.datasets.load_dataset

    def no_test_images(name, data_dir=None):
        splits = real(name, data_dir)
        return dataclasses.replace(splits, x_test=splits.x_test[:0])

    monkeypatch.setattr(cli.datasets, "load_dataset", no_test_images)
    code, _, err = run(["evaluate", trained, "--samples", "2", "--device", "cpu"], capsys)
    assert err.count("\n") == 1
    assert_one_line_error(code, err, "no test images")


def test_evaluate_takes_no_data_folder_from_the_checkpoint(copy_of, tmp_path, capsys, monkeypatch):
    payload = json.loads((copy_of / "config.json").read_text())
    payload["train"]["data_dir"] = str(tmp_path / "planted")
    (copy_of / "config.json").write_text(json.dumps(payload))
    asked = []
    real = cli.datasets.load_dataset

    def spying_load(name, data_dir=None):
        asked.append(data_dir)
        return real(name, data_dir)

    monkeypatch.setattr(cli.datasets, "load_dataset", spying_load)
    assert run(["evaluate", copy_of, "--samples", "2", "--limit", "2", "--device", "cpu"], capsys)[0] == 0
    assert run(["evaluate", copy_of, "--samples", "2", "--limit", "2", "--device", "cpu",
                "--data-dir", tmp_path / "mine"], capsys)[0] == 0
    assert asked == [None, str(tmp_path / "mine")]  # None: $VAMPVIZ_DATA_DIR or the home cache


# --------------------------------------------------------------------------------------------
# User errors that used to end in a traceback


def test_an_unknown_device_is_refused_before_anything_is_created(tmp_path, trained, capsys):
    out = tmp_path / "run"
    code, _, err = run(["train", "--epochs", "1", "--out", out, *TINY, "--device", "gpu"], capsys)
    assert err.count("\n") == 1
    assert_one_line_error(code, err, "unknown device 'gpu'")
    assert not out.exists()
    code, _, err = run(["evaluate", trained, "--samples", "2", "--device", "tpu"], capsys)
    assert_one_line_error(code, err, "unknown device 'tpu'")


def test_train_out_naming_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "taken.txt"
    target.write_text("keep me")
    for out in (target, target / "run"):
        code, _, err = run(["train", "--epochs", "1", "--out", out, *TINY], capsys)
        assert err.count("\n") == 1
        assert_one_line_error(code, err, "is a file, not a folder")
    assert target.read_text() == "keep me"


def test_sample_out_that_cannot_be_written(trained, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    folder = tmp_path / "folder"
    folder.mkdir()
    for out, words in ((blocker / "grid.png", "is a file, not a folder"), (folder, "is a folder")):
        code, _, err = run(["sample", trained, "--out", out], capsys)
        assert err.count("\n") == 1
        assert_one_line_error(code, err, words)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(folder / "grid.png"))

    monkeypatch.setattr(cli, "save_png", refuse)  # e.g. a read-only mount, which os.access may not see
    code, _, err = run(["sample", trained, "--out", folder / "grid.png"], capsys)
    assert err.count("\n") == 1
    assert_one_line_error(code, err, "Permission denied", "grid.png")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_sample_into_a_read_only_folder(trained, tmp_path, capsys):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        code, _, err = run(["sample", trained, "--out", folder / "grid.png"], capsys)
    finally:
        folder.chmod(0o700)
    assert_one_line_error(code, err, "not writable")


def test_an_unknown_safetensors_dtype_is_one_line(trained, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(trained, broken)
    rewrite_header(broken / "model.safetensors",
                   lambda header: header[next(k for k in header if k != "__metadata__")].update(dtype="F8_E8M0"))
    for command in (["evaluate", broken, "--samples", "2"], ["sample", broken, "--out", tmp_path / "x.png"],
                    ["info", broken]):
        code, _, err = run(command, capsys)
        assert err.count("\n") == 1
        assert_one_line_error(code, err, "model.safetensors", "dtype")


@pytest.mark.parametrize("history", [{"epoch": 1}, [1, 2], [{"epoch": 1, "val_loss": "low"}]])
def test_info_on_a_history_of_the_wrong_shape(trained, tmp_path, capsys, history):
    broken = tmp_path / "broken"
    shutil.copytree(trained, broken)
    (broken / "history.json").write_text(json.dumps(history))
    code, _, err = run(["info", broken], capsys)
    assert err.count("\n") == 1
    assert_one_line_error(code, err, "history.json")


def test_info_on_records_without_a_validation_loss(trained, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    (copy / "history.json").write_text(json.dumps([{"epoch": 1}, {"epoch": 2, "val_loss": None}]))
    code, out, _ = run(["info", copy], capsys)
    assert code == 0 and "2 epochs" in out


def test_info_names_the_state_of_a_folder_without_weights(trained, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    (copy / "model.safetensors").unlink()
    code, out, _ = run(["info", copy], capsys)
    assert code == 0 and "state: incomplete" in out
    with held_lock(copy, os.getppid()):
        assert "state: training" in run(["info", copy], capsys)[1]


# --------------------------------------------------------------------------------------------
# Making a checkpoint shippable: embed-sample, project, compact


@pytest.mark.slow  # `project` fits UMAP
def test_embed_project_compact_make_a_self_contained_checkpoint(tmp_path, capsys):
    out = tmp_path / "ship"
    assert cli.main(["train", "--epochs", "1", "--out", str(out), *TINY]) == 0
    code, text, _ = run(["embed-sample", out, "--test", "50", "--train", "30"], capsys)
    assert code == 0 and "embedded 50 test and 30 training images" in text
    code, text, _ = run(["project", out], capsys)
    assert code == 0 and (out / "projections.safetensors").is_file()
    code, text, _ = run(["compact", out], capsys)
    assert code == 0 and "resume state removed" in text and not (out / "last.safetensors").exists()
    code, text, _ = run(["info", out], capsys)
    assert code == 0


def test_shipping_commands_refuse_bad_folders_in_one_line(tmp_path, capsys):
    assert_one_line_error(*run(["embed-sample", tmp_path / "missing"], capsys)[::2], "no such checkpoint folder")
    assert_one_line_error(*run(["compact", tmp_path / "missing"], capsys)[::2])
    code, _, err = run(["embed-sample", tmp_path, "--test", "0"], capsys)
    assert code == 2 and "positive" in err


def test_sampling_a_pixelcnn_model_shows_its_passes(tmp_path, build, make_config, capsys):
    config = make_config(model="hvae", architecture="conv", pixel_model="pixelcnn")
    checkpoint = ckpt.save(tmp_path / "pixel", build(config), config)
    code, out, err = run(["sample", checkpoint, "--n", "3", "--out", tmp_path / "grid.png"], capsys)
    assert code == 0 and "wrote 3 samples" in out
    assert "a pass per pixel" in err and "64/64" in err  # tqdm: one pass per pixel of the 8 x 8 images
    code, out, _ = run(["info", checkpoint], capsys)
    assert "pixel model pixelcnn" in out
