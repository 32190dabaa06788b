"""AppTests of the Train and Training history pages; runs go to a temporary $VAMPVIZ_CHECKPOINTS."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import jobs, replay, train_form
from vae_core import checkpoint as ckpt
from vae_core.snapshots import Snapshot, list_snapshots
from vae_core.train import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "checkpoints"
TIMEOUT = 120


@pytest.fixture
def runs(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("VAMPVIZ_CHECKPOINTS", str(tmp_path))
    yield tmp_path
    for status in jobs.REGISTRY.jobs():  # leave no job of this test running
        if status.out.is_relative_to(tmp_path.resolve()):
            jobs.REGISTRY.stop(status.out)
            jobs.REGISTRY.wait(status.out, TIMEOUT)


def open_page(page: str, **state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(f"../pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def fill_form(at: AppTest, name: str, epochs: int) -> None:
    for key, value in {"components": 10, "latent": 2, "hidden": 16, "epochs": epochs, "warmup": 1,
                       "snapshot-every": 1}.items():
        at.number_input(key=f"train-{key}").set_value(value)
    at.selectbox(key="train-device").set_value("cpu")
    at.text_input(key="train-name").set_value(name)


def submit(at: AppTest) -> None:
    next(b for b in at.button if "Start training" in b.label).click().run()
    assert not at.exception, [e.value for e in at.exception]


def charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def test_train_page_starts_a_job_that_writes_a_checkpoint_then_replays_it(runs):
    at = open_page("train")
    assert at.title[0].value.endswith("Train")
    fill_form(at, "tiny", epochs=2)
    submit(at)
    out = runs / "tiny"
    assert at.session_state["train_job"] == str(out.resolve())
    status = jobs.REGISTRY.wait(out, TIMEOUT)
    assert status.state == "finished", status.error
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("listed in the sidebar" in s.value for s in at.success)
    assert len(charts(at)) == 3  # live loss, reconstruction and KL curves
    assert ckpt.load(out).prior.num_components == 10
    assert [e for e, _ in list_snapshots(out)] == [1, 2]
    assert "digits · VAE · vampprior, K=10 · z=2" in at.sidebar.selectbox(key="checkpoint").options  # catalog

    at.button(key="explore-job").click().run()  # selects it in the sidebar and opens the Models page
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value.endswith("Models") and Path(at.session_state["checkpoint"]).resolve() == out.resolve()
    at.switch_page("../pages/replay.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.select_slider[0].options == ["1", "2"] and at.select_slider[0].value == 2
    specs = charts(at)
    assert len(specs) == 3 and all(s["layout"]["shapes"][0]["x0"] == 2 for s in specs)
    at.select_slider[0].set_value(1).run()
    assert not at.exception and charts(at)[0]["layout"]["shapes"][0]["x0"] == 1
    next(b for b in at.button if "Play" in b.label).click().run()  # steps through both snapshots
    assert not at.exception, [e.value for e in at.exception]
    assert charts(at)[-1]["layout"]["shapes"][0]["x0"] == 1  # and ends back at the chosen epoch


def test_train_page_trains_a_pixelhvae(runs):
    """Networks and pixel model are the form's too: a conv HVAE with a PixelCNN decoder (PixelHVAE)."""
    at = open_page("train")
    fill_form(at, "", epochs=1)
    at.selectbox(key="train-model").set_value("hvae")
    at.selectbox(key="train-architecture").set_value("conv")
    at.selectbox(key="train-pixel-model").set_value("pixelcnn")
    submit(at)
    out = runs / "digits-hvae-vampprior-K10-z2-conv-pixelcnn"  # the default name says what it is
    deadline = time.monotonic() + TIMEOUT
    while jobs.REGISTRY.status(out).state == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert jobs.REGISTRY.status(out).state == "evaluating"  # S = 5000 on a PixelHVAE: skipped here
    at.run()
    at.button(key="stop-job").click().run()
    assert not at.exception, [e.value for e in at.exception]
    status = jobs.REGISTRY.wait(out, TIMEOUT)
    assert status.state == "finished", status.error
    assert not (out / ckpt.METRICS_FILE).exists()
    config = ckpt.read_config(out)[0]
    assert (config.model, config.architecture, config.pixel_model) == ("hvae", "conv", "pixelcnn")
    assert ckpt.load(out).likelihood.autoregressive
    assert len(list_snapshots(out)) == 1


def test_a_second_tab_sees_the_running_job_and_cannot_start_a_duplicate(runs, digits):
    out, done = runs / "busy", runs / "done"
    config = train_form.make_model_config("digits", "vae", "vampprior", 10, 2, 16)
    jobs.REGISTRY.start(config, TrainConfig(epochs=1, warmup=1, device="cpu"), done, data=digits)
    assert jobs.REGISTRY.wait(done, TIMEOUT).state == "finished"
    jobs.REGISTRY.start(config, TrainConfig(epochs=1000, warmup=1, device="cpu"), out, data=digits)
    at = open_page("train")  # a new session: it follows the running job
    assert any("already training into" in i.value for i in at.info)
    assert at.session_state["train_job"] == str(out.resolve())
    assert at.button(key="stop-job")  # the running job's Stop button
    fill_form(at, "busy", epochs=2)
    submit(at)
    assert any("already training into" in w.value for w in at.warning)
    at.button(key="stop-job").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert jobs.REGISTRY.wait(out, TIMEOUT).state == "stopped"
    at.selectbox(key="train-follow").set_value(str(done.resolve())).run()  # watch the other job instead
    assert not at.exception and at.session_state["train_job"] == str(done.resolve())
    assert any("finished after epoch 1/1" in p.proto.text for p in at.get("progress"))
    assert ckpt.read_config(out)[0].prior == "vampprior" and ckpt.read_config(out)[1]["epochs"] == 1000


def test_bad_folder_name_is_one_error_line(runs):
    at = open_page("train")
    fill_form(at, "../escape", epochs=1)
    submit(at)
    assert not at.exception
    assert any("plain folder name" in e.value for e in at.error)
    assert not (runs.parent / "escape").exists()


@pytest.mark.skipif(not (SHIPPED / "digits-vae-vampprior" / "config.json").exists(),
                    reason="shipped checkpoints not generated yet")
def test_replay_page_without_snapshots_explains_and_replays_one_that_has_them(runs):
    at = open_page("replay", checkpoint=str(SHIPPED / "digits-vae-standard"))  # shipped without snapshots
    assert at.title[0].value.endswith("Training history")
    (info,) = at.info
    assert "digits-vae-standard** was trained without snapshots" in info.value and "--snapshot-every" in info.value
    picker = at.selectbox(key="replay_checkpoint")
    assert picker.value == str(SHIPPED / "digits-vae-vampprior")  # the one shipped with snapshots
    (slider,) = at.select_slider
    assert len(slider.options) >= 5
    # its own curves, then the replayed checkpoint's with the marker at the chosen epoch
    specs = charts(at)
    assert len(specs) == 6 and not any(s["layout"].get("shapes") for s in specs[:3])
    assert all(s["layout"]["shapes"][0]["x0"] == int(slider.value) for s in specs[3:])


def test_replay_page_steps_through_the_shipped_snapshots(runs):
    at = open_page("replay", checkpoint=str(SHIPPED / "digits-vae-vampprior"))
    (slider,) = at.select_slider
    assert len(slider.options) >= 5 and not at.exception


def test_replay_figures():
    history = [{"epoch": e, "train_loss": 10.0 - e, "val_loss": 11.0 - e, "beta": min(1, e / 2)} for e in (1, 2, 3)]
    fig = replay.curve_with_marker(history, "loss", 2)
    assert fig.layout.shapes[0].x0 == 2 and fig.layout.xaxis.title.text == "epoch"
    assert not replay.curve_with_marker(history, "loss", None).layout.shapes
    images = np.random.default_rng(0).random((7, 1, 8, 8), dtype=np.float32)
    shot = Snapshot(3, images, pseudo_inputs=images[:5])
    assert replay.heads_title(shot) == "the 5 pseudo-inputs u_k"
    assert replay.heads_grid(shot).dtype == replay.samples_grid(shot).dtype == np.uint8
    plain = Snapshot(3, images)
    assert replay.heads_title(plain) is None and replay.heads_grid(plain) is None
    assert replay.heads_title(Snapshot(3, images, decoded_means=images[:4])) == "the 4 mixture means, decoded"
    few = Snapshot(3, images, decoded_means=images[:4], components=50)  # a PixelCNN decodes only a few
    assert replay.heads_title(few) == "the first 4 of the 50 mixture means, decoded"


def test_replay_page_with_a_standard_prior_explains_the_missing_components(runs, digits):
    out = runs / "standard"
    config = train_form.make_model_config("digits", "hvae", "standard", 10, 2, 16)
    jobs.REGISTRY.start(config, TrainConfig(epochs=1, warmup=1, device="cpu", snapshot_every=1), out, data=digits)
    assert jobs.REGISTRY.wait(out, TIMEOUT).state == "finished"
    at = open_page("replay", checkpoint=str(out))
    assert at.select_slider[0].options == ["1"]
    assert any("standard normal prior has no pseudo-inputs" in i.value for i in at.info)
    assert len(charts(at)) == 3
