"""A new prior is one new class: every page renders a model with a prior the pages have never heard of.

The "exemplar" prior below (a mixture of the encoder's posteriors at K fixed training images, in the
spirit of Norouzi et al.'s exemplar VAE) is registered for these tests only; nothing in pages/ or
dashboard/ knows its name.
"""

from __future__ import annotations

import pytest
import torch
from streamlit.testing.v1 import AppTest

from tests.page_helpers import ROOT
from vae_core import checkpoint as ckpt
from vae_core import paths, priors
from vae_core.config import ModelConfig
from vae_core.models import build_model

PAGES = ["models", "pseudo_inputs", "latent_space", "active_units", "prior_vs_posterior", "samples", "compare",
         "probe", "replay"]


class ExemplarPrior(priors.PseudoInputPrior):
    """p(z) = 1/K sum_k q(z | x_k) at K fixed images (a buffer, not learned)."""

    title = "exemplar prior"
    component_name = "exemplar"

    def __init__(self, encoder, latent_dim, images):
        super().__init__()
        self.latent_dim = latent_dim
        self._encoder = (encoder,)
        self.register_buffer("exemplars", images.clone())

    @classmethod
    def build(cls, *, latent_dim, encoder, num_components, input_shape, train_images=None, **_):
        images = (torch.as_tensor(train_images[:num_components]) if train_images is not None
                  else torch.rand(num_components, *input_shape))
        return cls(encoder, latent_dim, images.float())

    @property
    def num_components(self):
        return self.exemplars.shape[0]

    @property
    def pseudo_inputs(self):
        return self.exemplars

    def components(self):
        return self._encoder[0](self.exemplars)


@pytest.fixture
def exemplar_checkpoint(tmp_path, monkeypatch, digits):
    monkeypatch.setitem(priors.PRIORS, "exemplar", ExemplarPrior)
    monkeypatch.setenv(paths.CHECKPOINTS_ENV, str(tmp_path / "runs"))
    monkeypatch.setenv(paths.CACHE_DIR_ENV, str(tmp_path / "cache"))
    config = ModelConfig.for_dataset("digits", prior="exemplar", latent_dim=4, hidden=16, components=12)
    torch.manual_seed(0)
    model = build_model(config, train_images=digits.x_train)
    return ckpt.save(tmp_path / "runs" / "digits-vae-exemplar", model, config, history=[
        {"epoch": 1, "beta": 1.0, "train_loss": 40.0, "val_loss": 41.0, "active_units": {"z": 4}}])


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_a_prior_it_does_not_know(exemplar_checkpoint, page):
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.session_state["checkpoint"] = str(exemplar_checkpoint)
    if page == "compare":
        at.session_state["compare_checkpoints"] = [str(exemplar_checkpoint), str(ROOT / "checkpoints" /
                                                                                 "digits-vae-vampprior")]
    at.switch_page(f"../pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if page == "pseudo_inputs":
        assert any("exemplars" in m.value.lower() for m in at.markdown), "the page names the components as the prior does"
