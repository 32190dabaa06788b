"""AppTests of the Compare priors and Probe an image pages with the shipped checkpoints."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from tests.page_helpers import SHIPPED, figures, image_count, open_page

FOUR = ["digits-vae-standard", "digits-vae-mog", "digits-vae-vampprior", "digits-vae-vampprior-data"]

if not all((SHIPPED / name / "model.safetensors").exists() for name in FOUR):
    pytest.skip("the shipped digits VAE checkpoints are missing: run `bash checkpoints/make_checkpoints.sh`",
                allow_module_level=True)


def png(size=(100, 60), ring: bool = True) -> bytes:
    """A black ring (or, for tiny sizes, a square) on white."""
    image = Image.new("RGB", size, "white")
    w, h = size
    side = min(w, h) * 0.8
    box = [w / 2 - side / 2, h / 2 - side / 2, w / 2 + side / 2, h / 2 + side / 2]
    draw = ImageDraw.Draw(image)
    draw.ellipse(box, outline="black", width=int(side / 4)) if ring else draw.rectangle([2, 2, w - 3, h - 3], fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def fake_checkpoint(tmp_path: Path, source: str, name: str, weights: bool = False, **config_changes) -> Path:
    """A copy of a shipped checkpoint under tmp_path/name with its config's model fields changed."""
    target = tmp_path / name
    target.mkdir()
    for file in ("config.json", "history.json", "metrics.json") + (("model.safetensors",) if weights else ()):
        shutil.copy(SHIPPED / source / file, target / file)
    config = json.loads((target / "config.json").read_text())
    config["model"].update(config_changes)
    (target / "config.json").write_text(json.dumps(config))
    return target


# -------------------------------------------------------------------------------- Compare priors

def test_compare_the_four_digits_vaes():
    at = open_page("compare", compare_checkpoints=[str(SHIPPED / name) for name in FOUR])
    assert at.title[0].value.endswith("Compare priors")
    (table,) = at.dataframe
    frame = table.value
    assert frame["checkpoint"].tolist() == FOUR
    assert {"test LL", "ELBO", "KL", "active units", "KL(q(z)‖p(z))"} <= set(frame.columns)
    assert frame["source"].eq("metrics.json").all()
    assert any(m.value.startswith(("✅ **Log-likelihood", "❌ **Log-likelihood")) for m in at.markdown)
    assert image_count(at) == 4  # one sample grid per model
    maps, activity = figures(at)
    panels = [key for key in maps["layout"] if key.startswith(("xaxis", "yaxis"))]
    assert len(panels) == 8 and len({tuple(maps["layout"][key]["range"]) for key in panels}) == 1
    assert {t["xaxis"] for t in maps["data"]} == {"x", "x2", "x3", "x4"}
    assert [a["text"] for a in maps["layout"]["annotations"]] == ["standard", "mog", "vampprior", "vampprior-data"]
    names = [t["name"] for t in activity["data"]]
    assert names == FOUR and activity["layout"]["yaxis"]["type"] == "log"


def test_compare_refuses_mixed_datasets(tmp_path):
    fake = fake_checkpoint(tmp_path, "digits-vae-standard", "caltech-vae", weights=True, dataset="caltech101")
    at = open_page("compare", user_dir=str(tmp_path),
                   compare_checkpoints=[str(SHIPPED / "digits-vae-vampprior"), str(fake)])
    (error,) = at.error
    assert "different datasets" in error.value and "caltech101: caltech-vae" in error.value
    assert not at.dataframe and not at.get("plotly_chart")


def test_compare_needs_two_checkpoints():
    at = open_page("compare", compare_checkpoints=[str(SHIPPED / "digits-vae-vampprior")])
    assert any("at least two" in i.value for i in at.info) and not at.dataframe


def test_compare_computes_metrics_missing_from_metrics_json(tmp_path):
    fake = fake_checkpoint(tmp_path, "digits-vae-vampprior", "vamp-copy", weights=True)
    stored = json.loads((fake / "metrics.json").read_text())
    for key in ("aggregated_posterior_kl", "active_units", "unit_activity"):
        stored.pop(key)
    (fake / "metrics.json").write_text(json.dumps(stored))
    at = open_page("compare", user_dir=str(tmp_path),
                   compare_checkpoints=[str(SHIPPED / "digits-vae-standard"), str(fake)])
    frame = at.dataframe[0].value
    row = frame[frame["checkpoint"] == "vamp-copy"].iloc[0]
    assert "computed here" in row["source"] and row["active units"] > 0 and row["KL(q(z)‖p(z))"] == row["KL(q(z)‖p(z))"]
    assert len(figures(at)[1]["data"]) == 2  # activity computed from the test set for the copy


# -------------------------------------------------------------------------------- Probe an image

def test_probe_a_test_image_with_the_vampprior():
    at = open_page("probe", "digits-vae-vampprior", probe_index=3)
    assert at.title[0].value.endswith("Probe an image")
    latent_map, bars = figures(at)
    star = latent_map["data"][-1]
    assert star["name"].startswith("test image #3") and star["marker"]["symbol"] == "star"
    assert any(t["name"].startswith("pseudo-inputs") for t in latent_map["data"])
    (bar,) = bars["data"]
    assert bar["type"] == "bar" and bar["y"] == sorted(bar["y"], reverse=True) and len(bar["y"]) == 20
    assert image_count(at) == 1 + 6  # input + reconstruction grid, top pseudo-inputs
    assert at.metric[0].label == "ELBO of this image"


@pytest.mark.parametrize("checkpoint", ["digits-vae-standard", "digits-hvae-vampprior", "digits-vae-mog"])
def test_probe_other_priors(checkpoint):
    at = open_page("probe", checkpoint)
    if checkpoint.endswith("standard"):
        assert any("standard normal" in i.value for i in at.info) and len(figures(at)) == 1
    else:
        assert len(figures(at)) == 2


@pytest.mark.parametrize("name, payload, mime", [
    ("zero.png", png((100, 60)), "image/png"),  # a wrong-size image
    ("eight.png", png((8, 8), ring=False), "image/png"),  # already the dataset's size
])
def test_probe_an_upload(name, payload, mime):
    at = open_page("probe", "digits-vae-vampprior", probe_source="An image of your own")
    assert any("Upload an image" in i.value for i in at.info)
    at.file_uploader(key="probe_upload").set_value((name, payload, mime))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    steps = next(m.value for m in at.markdown if m.value.startswith("1. Read a PNG"))
    assert ("Resized it to 8×8" if name == "zero.png" else "already 8×8") in steps and "Inverted" in steps
    latent_map, _ = figures(at)
    assert latent_map["data"][-1]["name"] == f"your image ({name})"


@pytest.mark.parametrize("payload", [b"plain text, not a picture", png()[:120]])
def test_probe_a_bad_upload_shows_one_clear_error(payload):
    at = open_page("probe", "digits-vae-vampprior", probe_source="An image of your own")
    at.file_uploader(key="probe_upload").set_value(("broken.png", payload, "image/png"))
    at.run()
    assert not at.exception
    (error,) = at.error
    assert error.value.startswith("Could not use broken.png:") and "\n" not in error.value
    assert not at.get("plotly_chart")
