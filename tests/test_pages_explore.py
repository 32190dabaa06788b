"""AppTests of the Models, Pseudo-inputs and Samples pages with the shipped checkpoints."""

from __future__ import annotations

import pytest

from tests.page_helpers import SHIPPED, figures, image_count, open_page
from vae_core.data import DATASETS

VAMP, STANDARD, MOG, HVAE = "digits-vae-vampprior", "digits-vae-standard", "digits-vae-mog", "digits-hvae-vampprior"

if not any((p / "config.json").exists() for p in SHIPPED.glob("*")):
    pytest.skip("checkpoints/ holds no checkpoint: run `bash checkpoints/make_checkpoints.sh` first",
                allow_module_level=True)


# -------------------------------------------------------------------------------- Models

def test_first_page_is_models_with_table_tiles_and_pseudo_inputs():
    at = open_page()  # the sidebar picks the default checkpoint
    assert at.title[0].value.endswith("Models")
    descriptions = {d.description for d in DATASETS.values()}
    tables = dict(zip([s.value for s in at.subheader if s.value in descriptions], at.dataframe))  # one per dataset
    (table,) = [t for title, t in tables.items() if title == DATASETS["digits"].description]
    names = table.value["checkpoint"].tolist()
    assert VAMP in names and STANDARD in names
    assert {"model", "prior", "K", "latent", "epochs", "test LL", "ELBO", "active units"} <= set(table.value)
    assert all(t.value["checkpoint"].size for t in at.dataframe)
    mnist = tables[DATASETS["mnist-static"].description].value.set_index("checkpoint")  # beside the paper's figure
    assert mnist.loc["mnist-static-vae-vampprior", "paper LL"] == -85.57
    assert mnist["paper LL"].isna()["mnist-static-vae-standard"]
    assert any(m.label == "test log-likelihood" for m in at.metric)
    assert any(m.label == "the paper's test LL" and m.value == "-85.57" for m in at.metric)
    # the default checkpoint is a VampPrior: its pseudo-inputs are shown at first launch
    assert any(h.value.startswith("The prior's") and h.value.endswith("pseudo-inputs u_k") for h in at.subheader)
    assert image_count(at) == 1
    # no Plotly chart: loading plotly.js in the browser would add seconds to the first page;
    # the training curves are on the Training history page, which the page points to
    assert not figures(at)
    assert any("**Training history** page" in c.value for c in at.caption)


@pytest.mark.parametrize("checkpoint", [STANDARD, HVAE])
def test_models_page_per_checkpoint(checkpoint):
    at = open_page(checkpoint=checkpoint)
    assert not at.exception and not figures(at)
    assert checkpoint.split("-")[-1] in at.header[0].value


@pytest.mark.parametrize("checkpoint", [STANDARD, HVAE])
def test_training_history_shows_the_selected_checkpoints_curves(checkpoint):
    at = open_page("replay", checkpoint=checkpoint)  # shipped without snapshots: its curves come first
    assert at.subheader[0].value == f"Training curves of {checkpoint}"
    for spec, y_title in zip(figures(at)[:3], ["loss", "E_q log p(x|z)", "log q(z|x)"]):
        assert [t["type"] for t in spec["data"]] == ["scatter"] * 3
        assert [t["name"] for t in spec["data"]] == ["train", "validation", "β (KL warm-up)"]
        assert spec["layout"]["xaxis"]["title"]["text"] == "epoch"
        assert spec["layout"]["yaxis"]["title"]["text"].startswith(y_title)
        assert spec["layout"]["yaxis2"]["title"]["text"] == "β"
        assert not spec["layout"].get("shapes")  # no replay marker on the selected one's curves


def test_models_page_lists_a_broken_checkpoint(tmp_path):
    broken = tmp_path / "half-written"
    broken.mkdir()
    (broken / "config.json").write_text("{ not json")
    at = open_page(checkpoint=VAMP, user_dir=str(tmp_path))
    assert any("half-written" in e.value and "corrupt" in e.value for e in at.error)
    assert "half-written" not in at.dataframe[0].value["checkpoint"].tolist()


def test_a_checkpoint_named_in_the_address_is_picked():
    at = open_page(query={"checkpoint": STANDARD})
    assert at.session_state["checkpoint"] == str(SHIPPED / STANDARD) and not at.sidebar.warning
    assert STANDARD.split("-")[-1] in at.header[0].value


def test_an_unknown_checkpoint_in_the_address_warns_and_shows_the_default():
    at = open_page(query={"checkpoint": "no-such-model"})
    (warning,) = at.sidebar.warning
    assert "'no-such-model'" in warning.value and at.header


# -------------------------------------------------------------------------------- Pseudo-inputs

@pytest.mark.parametrize("checkpoint", [VAMP, HVAE])
def test_pseudo_inputs_page_vampprior(checkpoint):
    at = open_page("pseudo_inputs", checkpoint)
    (spec,) = figures(at)
    (bar,) = spec["data"]
    assert bar["type"] == "bar" and len(bar["y"]) == 100
    assert bar["y"] == sorted(bar["y"], reverse=True)
    assert abs(sum(bar["y"]) - 1) < 1e-6
    assert spec["layout"]["xaxis"]["title"]["text"].startswith("component rank")
    assert spec["layout"]["yaxis"]["title"]["text"].startswith("mean responsibility")
    # grids: pseudo-inputs, reconstructions, neighbours; large: pseudo-input, reconstruction, neighbours; samples
    assert image_count(at) == 7
    assert len(at.download_button) == 4
    assert not at.info


def test_pseudo_inputs_page_pick_a_component():
    at = open_page("pseudo_inputs", VAMP)
    at.select_slider[0].set_value(5).run()
    assert not at.exception
    assert "rank 5 of 100" in "".join(m.value for m in at.markdown)


def test_pseudo_inputs_page_mog_shows_decoded_means():
    at = open_page("pseudo_inputs", MOG)
    assert any("mixture of Gaussians" in i.value and "no pseudo-inputs" in i.value for i in at.info)
    assert len(figures(at)) == 1
    assert image_count(at) == 5  # means grid, neighbours; large: mean, neighbours; samples (no reconstructions)
    assert len(at.download_button) == 3


def test_pseudo_inputs_page_standard_prior_explains():
    at = open_page("pseudo_inputs", STANDARD)
    assert any("no pseudo-inputs" in i.value and "VampPrior" in i.value for i in at.info)
    assert image_count(at) == 0 and not figures(at)


# -------------------------------------------------------------------------------- Samples

@pytest.mark.parametrize("checkpoint, images", [(VAMP, 5), (HVAE, 5), (STANDARD, 3)])
def test_samples_page(checkpoint, images):
    at = open_page("samples", checkpoint)
    # prior samples, [pseudo-input + component samples], reconstructions, interpolation
    assert image_count(at) == images
    assert len(at.download_button) == images - (checkpoint != STANDARD)  # the lone pseudo-input has none
    assert bool(at.info) == (checkpoint == STANDARD)


def test_samples_page_resample_and_interpolate():
    at = open_page("samples", VAMP)
    assert at.session_state["samples_seed"] == 0
    at.button[0].click().run()
    assert not at.exception and at.session_state["samples_seed"] == 1
    next(s for s in at.slider if s.label == "Steps").set_value(4).run()
    assert not at.exception
    keys = [button.key for button in at.download_button]
    assert f"download-{VAMP}-prior-samples-seed1" in keys and f"download-{VAMP}-interpolation-0-1" in keys
