"""An evaluation stopped at any chunk resumes with the very draws it would have made."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from test_cli import TINY, run

from vae_core import checkpoint as ckpt
from vae_core import cli
from vae_core import evaluate as ev
from vae_core import evaluation_progress as progress


class Stop(Exception):
    """Raised by a commit callback: the process "dies" right after a chunk was committed."""


def commits_then_stop(after: int):
    """A commit callback keeping every state it sees, raising Stop after the `after`-th."""
    seen = []

    def commit(partial):
        seen.append(partial)
        if len(seen) == after:
            raise Stop

    return commit, seen


@pytest.mark.parametrize("prior", ["standard", "vampprior"])
def test_a_resumed_log_likelihood_equals_an_uninterrupted_one(build, digits, prior):
    model = build(prior=prior).eval()
    x = digits.x_test[:9]
    torch.manual_seed(3)
    whole = ev.log_likelihood(model, x, num_samples=12, max_rows=24)  # 2 points, 12 samples a chunk
    for stop_after in (1, 3, 5):  # 5: the last chunk, one point
        torch.manual_seed(3)
        commit, seen = commits_then_stop(stop_after)
        with pytest.raises(Stop):
            ev.log_likelihood(model, x, num_samples=12, max_rows=24, commit=commit)
        state = seen[-1]
        assert len(state.values) == min(2 * stop_after, 9) and (state.points_per_chunk, state.samples_per_chunk) == (2, 12)
        torch.manual_seed(99)  # whatever the generator holds now, the saved state replaces it
        resumed = ev.log_likelihood(model, x, num_samples=12, resume=state)
        np.testing.assert_array_equal(resumed, whole)


def test_a_resumed_evaluation_returns_the_same_metrics(build, digits):
    model = build(prior="vampprior").eval()
    x = digits.x_test[:6]
    torch.manual_seed(0)
    commit, seen = commits_then_stop(10**9)
    whole = ev.evaluate(model, x, num_samples=8, per_point=True, commit=commit)
    torch.manual_seed(5)
    resumed = ev.evaluate(model, x, num_samples=8, per_point=True, resume=seen[len(seen) // 2])
    for name in ("log_likelihood_per_point", "elbo", "active_units", "aggregated_posterior_kl", "decoder_entropy"):
        assert resumed[name] == whole[name], name


def test_resuming_more_values_than_images_is_refused(build, digits):
    model = build().eval()
    state = ev.PartialLogLikelihood(np.zeros(5), {"rng.torch": torch.get_rng_state()}, 1, 4)
    with pytest.raises(ValueError, match="cannot resume"):
        ev.log_likelihood(model, digits.x_test[:3], num_samples=4, resume=state)


# --------------------------------------------------------------------------------------------
# The progress file


@pytest.fixture
def folder(tmp_path, build, make_config):
    """A checkpoint folder with weights (what the key's checksum reads)."""
    ckpt.save(tmp_path / "model", build(), make_config())
    return tmp_path / "model"


def key_of(folder, images, samples=8):
    return progress.progress_key(folder, images, samples, seed=0, device="cpu")


def state(values):
    return ev.PartialLogLikelihood(np.asarray(values, dtype=np.float64), {"rng.torch": torch.get_rng_state()}, 1, 8)


def test_progress_round_trips_exactly(folder, digits):
    key = key_of(folder, digits.x_test[:10])
    saved = state([-80.25, -91.5, -77.0])
    progress.save(folder, key, saved, seconds=12.5)
    partial, seconds, note = progress.load(folder, key)
    assert note is None and seconds == 12.5
    np.testing.assert_array_equal(partial.values, saved.values)
    assert torch.equal(partial.rng["rng.torch"], saved.rng["rng.torch"])
    assert (partial.points_per_chunk, partial.samples_per_chunk) == (1, 8)
    progress.discard(folder)
    assert progress.load(folder, key) == (None, 0.0, None)


@pytest.mark.parametrize("change", ["samples", "images", "weights"])
def test_progress_of_another_evaluation_is_set_aside(folder, digits, build, change):
    progress.save(folder, key_of(folder, digits.x_test[:10]), state([-80.0]), seconds=1.0)
    if change == "weights":
        ckpt.save_weights(folder, build(seed=1))
    images = digits.x_test[1:11] if change == "images" else digits.x_test[:10]
    partial, _, note = progress.load(folder, key_of(folder, images, samples=9 if change == "samples" else 8))
    assert partial is None
    assert note.count("\n") == 0 and "starts over" in note and "another" in note


def corrupt_files(folder, key):
    """Damaged progress files, by what is wrong with them."""
    path = folder / progress.PROGRESS_FILE
    progress.save(folder, key, state([-80.0, -81.0]), seconds=1.0)
    good = path.read_bytes()
    yield "truncated", good[: len(good) // 2]
    yield "garbage", b"\x00" * 64
    yield "huge header", (10**12).to_bytes(8, "little") + b"{}"
    for name, tensors, meta in [
        ("NaN", {"log_likelihood": torch.tensor([float("nan")], dtype=torch.float64)}, {}),
        ("more values than images", {"log_likelihood": torch.zeros(11, dtype=torch.float64)}, {}),
        ("float32 values", {"log_likelihood": torch.zeros(1)}, {}),
        ("no RNG", {"rng.torch": None}, {}),
        ("bad RNG", {"rng.torch": torch.zeros(7, dtype=torch.uint8)}, {}),
        ("stray tensor", {"weights": torch.zeros(3)}, {}),
        ("zero chunk", {}, {"points_per_chunk": "0"}),
        ("chunk over S", {}, {"samples_per_chunk": "9"}),
        ("not a number", {}, {"seconds": "soon"}),
        ("other format", {}, {"format": "vampviz-checkpoint"}),
    ]:
        base = ckpt.read_tensors(path)
        tensors = {k: v for k, v in (base | tensors).items() if v is not None}
        metadata = ckpt.read_header(path).metadata | meta
        ckpt.save_tensors(path, tensors, metadata)
        yield name, path.read_bytes()
        path.write_bytes(good)


def test_a_damaged_progress_file_is_one_line_and_the_evaluation_starts_over(folder, digits):
    key = key_of(folder, digits.x_test[:10])
    cases = list(corrupt_files(folder, key))
    assert len(cases) == 13
    for name, data in cases:
        (folder / progress.PROGRESS_FILE).write_bytes(data)
        partial, seconds, note = progress.load(folder, key)
        assert partial is None and seconds == 0.0, name
        assert note and "\n" not in note and "starts over" in note, name


def test_the_saver_saves_at_most_every_interval(folder, digits, monkeypatch):
    key = key_of(folder, digits.x_test[:10])
    clock = iter([0.0, 10.0, 70.0, 80.0, 200.0])  # one reading at the start, then one a call
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    saver = progress.Saver(folder, key, before=5.0)  # started at 0
    saver(state([-1.0]))  # at 10 s: too soon
    assert progress.load(folder, key)[0] is None
    saver(state([-1.0, -2.0]))  # at 70 s: saved, with the 5 s before
    partial, seconds, _ = progress.load(folder, key)
    assert len(partial.values) == 2 and seconds == 75.0
    saver(state([-1.0, -2.0, -3.0]))  # at 80 s: too soon again
    assert len(progress.load(folder, key)[0].values) == 2
    assert saver.seconds() == 205.0


# --------------------------------------------------------------------------------------------
# The command line


@pytest.fixture
def trained_copy(tmp_path):
    out = tmp_path / "vae"
    assert cli.main(["train", "--epochs", "1", "--prior", "vampprior", "--out", str(out), *TINY]) == 0
    return out


def test_the_cli_goes_on_where_an_interrupted_evaluation_stopped(trained_copy, tmp_path, capsys, monkeypatch):
    reference = tmp_path / "reference"
    shutil.copytree(trained_copy, reference)
    monkeypatch.setattr(ev, "memory_sized_rows", lambda *args: 30)  # 10 points of S = 3 a chunk: 25 chunks
    argv = ["evaluate", "--samples", "3", "--device", "cpu", "--json", "--write-metrics"]
    code, out, _ = run([*argv[:1], reference, *argv[1:]], capsys)
    assert code == 0
    expected = json.loads(out)

    monkeypatch.setattr(progress, "SAVE_EVERY_SECONDS", 0.0)
    real_call = progress.Saver.__call__
    calls = []

    def interrupted(self, partial):
        real_call(self, partial)
        calls.append(len(partial.values))
        if len(calls) == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(progress.Saver, "__call__", interrupted)
    code, _, err = run([*argv[:1], trained_copy, *argv[1:]], capsys)
    assert code == 130 and "run the same command again" in err
    assert (trained_copy / progress.PROGRESS_FILE).is_file()
    assert not (trained_copy / ckpt.METRICS_FILE).exists()

    monkeypatch.setattr(progress.Saver, "__call__", real_call)
    code, out, err = run([*argv[:1], trained_copy, *argv[1:]], capsys)
    assert code == 0 and "resuming the interrupted evaluation at image 40 of 250" in err
    resumed = json.loads(out)
    for name in ("log_likelihood", "log_likelihood_stderr", "elbo", "active_units", "aggregated_posterior_kl"):
        assert resumed[name] == expected[name], name
    assert not (trained_copy / progress.PROGRESS_FILE).exists()


def test_progress_of_other_settings_is_named_and_replaced(trained_copy, capsys, monkeypatch):
    monkeypatch.setattr(progress, "SAVE_EVERY_SECONDS", 0.0)
    key = progress.progress_key(trained_copy, np.zeros((2, 1, 8, 8), np.float32), 3, 0, "cpu")
    progress.save(trained_copy, key, state([-1.0]), seconds=1.0)
    code, _, err = run(["evaluate", trained_copy, "--samples", "3", "--limit", "5", "--device", "cpu"], capsys)
    assert code == 0
    assert f"{trained_copy / progress.PROGRESS_FILE} is set aside (it was made with another n_test / images_sha256)" in err
    assert not (trained_copy / progress.PROGRESS_FILE).exists()
