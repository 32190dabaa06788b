"""ModelConfig: round trips, the layers each model declares, and refusal of bad or absurd fields."""

from __future__ import annotations

import pytest
import torch

from vae_core.config import MAX_SIZES, ModelConfig
from vae_core.models import HVAE, VAE, build_model


def test_each_model_class_declares_its_latent_layers(make_config):
    assert make_config(model="vae").latent_sizes == {"z": 3}
    assert make_config(model="hvae").latent_sizes == {"z1": 2, "z2": 3}
    assert make_config(model="hvae").prior_layer == "z2"
    for cls, config in ((VAE, make_config(model="vae")), (HVAE, make_config(model="hvae"))):
        model = build_model(config)
        assert isinstance(model, cls)
        assert tuple(config.latent_sizes) == model.latent_layers
        assert model.prior_layer == config.prior_layer
        assert {name: m.shape[1] for name, m in model.latent_means(
            torch.rand(2, *config.input_shape)).items()} == config.latent_sizes


def test_config_round_trips_through_a_dict(make_config):
    config = make_config(model="hvae", prior="vampprior-data", extra={"note": "x"})
    data = config.to_dict()
    assert data["input_shape"] == [1, 8, 8]
    assert ModelConfig.from_dict(data) == config


def test_for_dataset_takes_the_dataset_defaults_and_overrides():
    config = ModelConfig.for_dataset("digits", model="hvae", latent_dim=7, likelihood=None)
    assert (config.dataset, config.input_shape, config.likelihood) == ("digits", (1, 8, 8), "bernoulli")
    assert (config.model, config.latent_dim) == ("hvae", 7)
    assert config.pseudo_init_mean == 0.3  # the digits spec's, not the class default


@pytest.mark.parametrize("field, value, message", [
    ("prior", "nonsense", "unknown prior"),
    ("model", "gan", "unknown model"),
    ("model", ["vae"], "unknown model"),
    ("architecture", "transformer", "unknown architecture"),
    ("likelihood", "poisson", "unknown likelihood"),
    ("latent_dim", 0, "latent_dim must be an integer from 1"),
    ("components", -3, "components must be an integer from 1"),
    ("hidden", "300", "hidden must be an integer from 1"),
    ("latent_dim", 2.5, "latent_dim must be an integer from 1"),
    ("latent_dim", True, "latent_dim must be an integer from 1"),
    ("components", 10**9, "components must be an integer from 1 to 65,536"),
    ("hidden", 5 * 10**6, "hidden must be an integer from 1 to 8,192"),
    ("input_shape", (8, 8), "input_shape"),
    ("input_shape", (1, 10**6, 8), "input_shape"),
    ("input_shape", (1, float("inf"), 8), "input_shape"),
    ("input_shape", "1x8x8", "input_shape"),
    ("pseudo_init_std", float("nan"), "pseudo_init_std"),
    ("extra", [1, 2], "extra must be a JSON object"),
])
def test_invalid_configs_are_refused_before_anything_is_built(make_config, field, value, message):
    with pytest.raises(ValueError, match=message):
        make_config(**{field: value}).validate()
    with pytest.raises(ValueError, match=message):
        build_model(make_config(**{field: value}))


def test_the_bounds_admit_the_paper_models():
    ModelConfig(model="hvae", latent_dim=40, latent_dim_z1=40, hidden=300, components=500).validate()
    assert all(limit >= 4096 for limit in MAX_SIZES.values())


def test_unknown_config_keys_and_non_objects_are_refused(make_config):
    with pytest.raises(ValueError, match="unknown config keys: colour"):
        ModelConfig.from_dict(make_config().to_dict() | {"colour": "red"})
    with pytest.raises(ValueError, match="must be a JSON object"):
        ModelConfig.from_dict([1, 2, 3])
