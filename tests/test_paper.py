"""vae_core.paper: the paper's models as configs and the Table 2 figures quoted for them."""

from __future__ import annotations

import math

import pytest

from vae_core import paper
from vae_core.config import ModelConfig


@pytest.mark.parametrize("name", list(paper.PAPER_MODELS))
def test_each_paper_model_is_a_valid_config_that_maps_back_to_its_name(name):
    config = ModelConfig.for_dataset("mnist-static", **paper.PAPER_MODELS[name]).validate()
    assert paper.paper_model(config) == name and name in paper.MODEL_TITLES


def test_a_model_the_paper_has_not_gets_no_name():
    assert paper.paper_model(ModelConfig(model="vae", architecture="conv")) is None


def test_reported_log_likelihoods_by_dataset_model_and_prior():
    vamp = ModelConfig.for_dataset("mnist-static", prior="vampprior", **paper.PAPER_MODELS["hvae"])
    assert paper.reported_log_likelihood(vamp) == paper.PAPER_TABLE2[("mnist-static", "hvae", "vampprior")]
    assert paper.reported_log_likelihood(vamp)[0] == -83.19
    for other in (ModelConfig.for_dataset("mnist-static", prior="standard"),  # no figure quoted
                  ModelConfig.for_dataset("digits", prior="vampprior")):  # not a dataset of the paper
        assert paper.reported_log_likelihood(other) is None


def test_bits_per_dim_are_reported_in_nats(monkeypatch):
    monkeypatch.setitem(paper.PAPER_TABLE2, ("freyfaces", "vae", "vampprior"), (4.5, "a test"))
    config = ModelConfig.for_dataset("freyfaces", prior="vampprior")
    nats, source = paper.reported_log_likelihood(config)
    assert source == "a test" and nats == pytest.approx(-4.5 * 28 * 20 * math.log(2))
