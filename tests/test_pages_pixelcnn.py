"""Every page renders a PixelHVAE, whose p(x|z) draws pixel after pixel, without an exception.

The checkpoint is trained here for one epoch (8 x 8 digits, so an image takes 64 passes). Pages
that decode images hand them to the background registry and draw progress bars; once it is done,
a rerun shows the images in their place.
"""

from __future__ import annotations

import pytest

from dashboard import background
from tests.page_helpers import figures, image_count, open_page, shipped
from vae_core import paths
from vae_core.config import ModelConfig
from vae_core.train import TrainConfig, train

PAGES = ["models", "pseudo_inputs", "latent_space", "active_units", "prior_vs_posterior", "samples", "compare",
         "probe", "replay", "train"]
TIMEOUT = 300


@pytest.fixture(scope="module")
def pixel_hvae(tmp_path_factory, small_digits):
    """A one-epoch PixelHVAE (conv HVAE, VampPrior, PixelCNN p(x|z)) with a snapshot, and its own cache.
    Its z2 is 2-D, so the Prior vs posterior page decodes its latent plane too."""
    out = tmp_path_factory.mktemp("runs") / "digits-pixelhvae"
    config = ModelConfig.for_dataset("digits", model="hvae", architecture="conv", pixel_model="pixelcnn",
                                     hidden=32, components=10, latent_dim=2, latent_dim_z1=4)
    train(config, TrainConfig(epochs=1, warmup=0, device="cpu", snapshot_every=1), out, data=small_digits)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(paths.CACHE_DIR_ENV, str(tmp_path_factory.mktemp("cache")))
        yield out


def open_pixel_page(pixel_hvae, page: str, **state):
    return open_page(None if page == "models" else page, checkpoint_path=str(pixel_hvae),
                     user_dir=str(pixel_hvae.parent), **state)


def progress_bars(at) -> list[str]:
    return [bar.proto.text for bar in at.get("progress")]


def finish_background(at):
    """Wait for every background computation the page asked for, then rerun it as its poll would."""
    assert all(s.state == "finished" for s in background.REGISTRY.wait_all(TIMEOUT)), background.REGISTRY.statuses()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not progress_bars(at)
    return at


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_a_pixel_hvae(pixel_hvae, page):
    state = {}
    if page == "compare":  # beside a one-pass HVAE of the same dataset
        state["compare_checkpoints"] = [str(pixel_hvae), str(shipped("digits-hvae-vampprior"))]
    at = finish_background(open_pixel_page(pixel_hvae, page, **state))
    assert not at.error, [e.value for e in at.error]
    if page in ("pseudo_inputs", "latent_space", "active_units", "prior_vs_posterior", "probe", "compare"):
        assert figures(at), f"{page} shows no chart"
    if page == "prior_vs_posterior":  # the decoded manifold, smaller by default
        assert next(s for s in at.slider if s.label == "Images per side").value == 6
        assert any("draws each pixel in turn" in c.value for c in at.caption)
    if page == "models":
        assert any("HVAE + PixelCNN" in table.value["model"].tolist() for table in at.dataframe)
        assert "PixelCNN" in at.header[0].value


def test_samples_page_draws_in_the_background_with_progress(pixel_hvae):
    at = open_pixel_page(pixel_hvae, "samples", samples_seed=7)
    (note,) = at.info
    assert "PixelCNN draws each pixel in turn" in note.value and "64 network passes per image" in note.value
    assert next(s for s in at.slider if s.label == "Number of samples").value == 16
    # each section is either still a progress bar or already its images (the draws are quick at 8 x 8)
    assert progress_bars(at) or image_count(at) >= 5
    assert all(": " in text for text in progress_bars(at))
    finish_background(at)
    assert image_count(at) == 5  # prior samples, pseudo-input + component samples, reconstructions, interpolation
    keys = [button.key for button in at.download_button]
    assert f"download-{pixel_hvae.name}-prior-samples-seed7" in keys


def test_pseudo_inputs_page_skips_the_reconstructions_of_all_of_them(pixel_hvae):
    at = finish_background(open_pixel_page(pixel_hvae, "pseudo_inputs"))
    assert any("No reconstructions of all 10" in c.value for c in at.caption)
    # grids: pseudo-inputs, neighbours; large: pseudo-input, its reconstruction, neighbours; samples
    assert image_count(at) == 6
