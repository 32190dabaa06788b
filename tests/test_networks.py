"""Building blocks: gated layers, clamped Gaussian heads, architecture shapes, He initialisation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from vae_core.models import build_model
from vae_core.networks import (
    ARCHITECTURES,
    ENCODER_LOGVAR_RANGE,
    GatedConv2d,
    GatedDense,
    GaussianHead,
    GaussianNet,
    gated_mlp,
    he_init,
)

SHAPES = [(1, 8, 8), (1, 28, 28), (1, 28, 20), (3, 8, 8)]


def test_gated_dense_is_h_times_sigmoid_g():
    layer = GatedDense(5, 3)
    state = layer.state_dict()
    x = torch.randn(4, 5)
    h = x @ state["h.weight"].T + state["h.bias"]
    g = x @ state["g.weight"].T + state["g.bias"]
    torch.testing.assert_close(layer(x), h / (1 + torch.exp(-g)))


def test_gated_dense_keeps_the_checkpoint_names_h_and_g():
    """One fused parameter inside, but state_dict and load_state_dict speak h.* and g.*, as the
    checkpoints written before the fusion do; the saved tensors own their storage (safetensors)."""
    net = nn.Sequential(GatedDense(5, 3))
    state = net.state_dict()
    assert {name: tuple(t.shape) for name, t in state.items()} == {
        "0.h.weight": (3, 5), "0.h.bias": (3,), "0.g.weight": (3, 5), "0.g.bias": (3,)}
    assert len({t.untyped_storage().data_ptr() for t in state.values()}) == 4
    assert [name for name, _ in net.named_parameters()] == ["0.weight", "0.bias"]

    h, g = nn.Linear(5, 3), nn.Linear(5, 3)  # the layer as two modules, as it was first written
    other = nn.Sequential(GatedDense(5, 3))
    other.load_state_dict({"0.h.weight": h.weight, "0.h.bias": h.bias, "0.g.weight": g.weight, "0.g.bias": g.bias})
    x = torch.randn(4, 5)
    torch.testing.assert_close(other(x), h(x) * torch.sigmoid(g(x)))
    with pytest.raises(RuntimeError, match="Missing key"):  # a half alone is not loaded
        other.load_state_dict({"0.h.weight": h.weight, "0.g.weight": g.weight, "0.g.bias": g.bias})


def test_gated_conv_is_h_times_sigmoid_g_and_keeps_the_size():
    layer = GatedConv2d(2, 4, kernel_size=5)
    x = torch.randn(3, 2, 9, 7)
    h = F.conv2d(x, layer.h.weight, layer.h.bias, padding=2)
    g = F.conv2d(x, layer.g.weight, layer.g.bias, padding=2)
    out = layer(x)
    assert out.shape == (3, 4, 9, 7)
    torch.testing.assert_close(out, h * torch.sigmoid(g))
    assert GatedConv2d(2, 4, kernel_size=3, stride=2)(x).shape == (3, 4, 5, 4)


def test_gated_mlp_stacks_layers():
    net = gated_mlp(10, 7, layers=3)
    assert len(net) == 3 and all(isinstance(layer, GatedDense) for layer in net)
    assert net(torch.randn(2, 10)).shape == (2, 7)


def test_encoder_logvar_range_is_the_papers():
    assert ENCODER_LOGVAR_RANGE == (-6.0, 2.0)


def test_gaussian_head_clamps_the_logvar():
    head = GaussianHead(4, 3)
    features = torch.cat([1e4 * torch.randn(50, 4), torch.randn(50, 4)])
    mean, logvar = head(features)
    assert mean.shape == logvar.shape == (100, 3)
    assert logvar.min().item() == -6.0 and logvar.max().item() == 2.0  # both ends reached and not passed
    # inside the range the head is linear
    inside = (logvar > -6) & (logvar < 2)
    raw = features @ head.logvar.weight.T + head.logvar.bias
    torch.testing.assert_close(logvar[inside], raw[inside])
    # the mean is not clamped
    assert mean.abs().max().item() > 100


@pytest.mark.parametrize("model_name", ["vae", "hvae"])
@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_encoder_logvar_stays_clamped_for_huge_inputs(make_config, model_name, architecture):
    model = build_model(make_config(model=model_name, architecture=architecture))
    for scale in (1e3, -1e3, 1e6):
        _, logvar = model.encoder(scale * torch.rand(6, 1, 8, 8))
        assert torch.isfinite(logvar).all()
        assert logvar.min().item() >= -6.0 and logvar.max().item() <= 2.0


def test_gaussian_net_joins_several_inputs():
    net = GaussianNet([nn.Linear(3, 8), nn.Linear(2, 8)], [8, 8], hidden=5, latent_dim=4)
    mean, logvar = net(torch.randn(7, 3), torch.randn(7, 2))
    assert mean.shape == logvar.shape == (7, 4)
    with pytest.raises(AssertionError, match="expected 2 inputs"):
        net(torch.randn(7, 3))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
@pytest.mark.parametrize("params_per_pixel", [1, 2])
def test_architectures_produce_the_right_shapes(name, shape, params_per_pixel):
    architecture = ARCHITECTURES[name](hidden=16)
    x = torch.rand(3, *shape)
    for layers in (1, 2):
        encoder = architecture.image_encoder(shape, layers)
        assert encoder(x).shape == (3, encoder.out_features)
    decoded = architecture.image_decoder(shape, params_per_pixel)(torch.randn(3, 16))
    assert decoded.shape == (3, params_per_pixel, *shape)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("architecture", ["mlp", "conv"])
@pytest.mark.parametrize("model_name", ["vae", "hvae"])
def test_models_run_on_every_shape(make_config, model_name, architecture, shape):
    config = make_config(model=model_name, architecture=architecture, input_shape=shape, likelihood="logistic")
    model = build_model(config)
    x = torch.rand(2, *shape)
    out = model(x)
    assert out.elbo.shape == (2,) and torch.isfinite(out.loss)
    assert model.reconstruct(x).shape == x.shape


def test_conv_decoder_pixels_are_not_mixed_between_parameters():
    """Each output channel block is one likelihood parameter: changing one parameter's conv weights
    only changes that parameter's slice of the output."""
    decoder = ARCHITECTURES["conv"](hidden=16).image_decoder((1, 6, 6), 2)
    features = torch.randn(2, 16)
    before = decoder(features)
    with torch.no_grad():
        decoder.convs[-1].weight[1].add_(1.0)  # output channel 1 = parameter 1 of the single input channel
    after = decoder(features)
    assert torch.equal(before[:, 0], after[:, 0]) and not torch.equal(before[:, 1], after[:, 1])


# --------------------------------------------------------------------------------------------
# He initialisation


def test_he_init_gives_kaiming_std_and_zero_biases():
    net = nn.Sequential(nn.Linear(400, 300), nn.ReLU(), nn.Conv2d(16, 64, 5), nn.Linear(50, 2000))
    for layer in net:
        if hasattr(layer, "bias") and layer.bias is not None:
            nn.init.normal_(layer.bias)
    he_init(net)
    for layer in (net[0], net[2], net[3]):
        fan_in = layer.weight[0].numel()
        assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)
        assert layer.weight.mean().item() == pytest.approx(0.0, abs=0.1 * math.sqrt(2 / fan_in))
        assert torch.count_nonzero(layer.bias) == 0


def test_build_model_applies_he_init_everywhere(make_config):
    model = build_model(make_config(model="hvae", architecture="conv", hidden=64, input_shape=(1, 28, 28)))
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert layers
    for layer in layers:
        assert torch.count_nonzero(layer.bias) == 0
    # the big layers have enough weights for a tight estimate of the standard deviation
    for layer in layers:
        if layer.weight.numel() >= 20_000:
            fan_in = layer.weight[0].numel()
            assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)
