"""The PixelCNN decoder: causal masks, normalised per-pixel distributions, autoregressive draws
that agree with the one-pass density, and the PixelHVAE built, trained, evaluated and reloaded."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from vae_core import checkpoint as ckpt
from vae_core.evaluate import elbo_terms, log_likelihood
from vae_core.likelihoods import LIKELIHOODS
from vae_core.models import build_model
from vae_core.pixelcnn import PIXEL_MODELS, MaskedConv2d, PixelCNNLikelihood

PIXELS = ("bernoulli", "logistic")


def tiny_pixelcnn(pixel: str, channels: int = 1, layers: int = 3) -> PixelCNNLikelihood:
    return PixelCNNLikelihood(LIKELIHOODS[pixel](), channels, condition_maps=2, channels=8, layers=layers)


def images_for(pixel: str, shape) -> torch.Tensor:
    if pixel == "bernoulli":
        return torch.bernoulli(torch.full(shape, 0.5))
    return (torch.randint(0, 256, shape) + 0.5) / 256


@pytest.mark.parametrize("mask_type, centre_seen", [("A", False), ("B", True)])
def test_masks_see_the_rows_above_and_the_pixels_left_only(mask_type, centre_seen):
    mask = MaskedConv2d(mask_type, 2, 3, 5).mask
    assert mask.shape == (3, 2, 5, 5)
    expected = torch.zeros(5, 5)
    expected[:2] = 1  # the rows above
    expected[2, :2] = 1  # the pixels to the left
    expected[2, 2] = float(centre_seen)
    assert torch.equal(mask, expected.expand_as(mask))
    assert "mask" not in MaskedConv2d(mask_type, 2, 3).state_dict()  # rebuilt, never loaded from a file


@pytest.mark.parametrize("pixel", PIXELS)
@pytest.mark.parametrize("channels", [1, 2])
def test_output_at_a_pixel_depends_on_the_pixels_before_it_only(pixel, channels):
    """Perturbation: changing pixels >= i leaves pixel i's parameters as they were, while changing
    a pixel before i (within the receptive field) changes them."""
    likelihood = tiny_pixelcnn(pixel, channels).double()
    H, W = 5, 6
    x = images_for(pixel, (1, channels, H, W)).double()
    params = torch.randn(1, 2, channels, H, W, dtype=torch.float64)
    before = likelihood.pixel_params(x, params)
    for i in range(H * W):
        row, col = divmod(i, W)
        later = x.clone().flatten(2)
        later[..., i:] = images_for(pixel, later[..., i:].shape).double() + 0.3  # never the same values
        after = likelihood.pixel_params(later.view_as(x), params)
        torch.testing.assert_close(after[..., row, col], before[..., row, col], rtol=0, atol=1e-12)
        if col > 0:
            earlier = x.clone().flatten(2)
            earlier[..., i - 1] += 0.7  # the pixel to the left: always in the receptive field
            changed = likelihood.pixel_params(earlier.view_as(x), params)
            assert not torch.allclose(changed[..., row, col], before[..., row, col])


def test_bernoulli_pixelcnn_normalises_over_every_image():
    likelihood = tiny_pixelcnn("bernoulli")
    images = torch.tensor(list(itertools.product([0.0, 1.0], repeat=6))).view(-1, 1, 2, 3)  # all 64
    params = torch.randn(1, 2, 1, 2, 3).expand(len(images), -1, -1, -1, -1)
    total = torch.logsumexp(likelihood.log_prob(images, params), 0)
    assert total.item() == pytest.approx(0.0, abs=1e-5)


def test_logistic_pixelcnn_normalises_over_every_image():
    likelihood = tiny_pixelcnn("logistic").double()
    bins = (torch.arange(256, dtype=torch.float64) + 0.5) / 256
    images = torch.cartesian_prod(bins, bins).view(-1, 1, 1, 2)  # all 65,536 images of two pixels
    params = torch.randn(1, 2, 1, 1, 2, dtype=torch.float64).expand(len(images), -1, -1, -1, -1)
    total = torch.logsumexp(likelihood.log_prob(images, params), 0)
    assert total.item() == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("pixel", PIXELS)
def test_a_draw_agrees_with_the_one_pass_density(pixel):
    """Each pixel of a draw gets the mean that one full pass over the finished image gives it, and
    the draw lies on the pixel model's support."""
    likelihood = tiny_pixelcnn(pixel).double()
    params = torch.randn(3, 2, 1, 4, 5, dtype=torch.float64)
    seen = []
    pixels, means = likelihood.generate(params, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 20) for i in range(1, 21)]
    full = likelihood.pixel.mean(likelihood.pixel_params(pixels, params))
    torch.testing.assert_close(means, full, rtol=0, atol=1e-12)
    if pixel == "bernoulli":
        assert set(pixels.unique().tolist()) <= {0.0, 1.0}
    else:
        assert torch.equal(pixels, (torch.floor(pixels * 256) + 0.5) / 256)
    assert torch.isfinite(likelihood.log_prob(pixels, params)).all()


def test_draws_follow_the_model_distribution():
    """Two binary pixels: the frequencies of 4,000 draws match the four probabilities of the model."""
    likelihood = tiny_pixelcnn("bernoulli")
    params = torch.randn(1, 2, 1, 1, 2)
    images = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]).view(4, 1, 1, 2)
    probabilities = likelihood.log_prob(images, params.expand(4, -1, -1, -1, -1)).exp()
    draws = likelihood.sample(params.expand(4000, -1, -1, -1, -1)).view(4000, 2)
    counts = torch.bincount((2 * draws[:, 0] + draws[:, 1]).long(), minlength=4).float() / 4000
    torch.testing.assert_close(counts, probabilities, rtol=0, atol=0.035)  # ~4.5 standard errors


def test_independent_pixels_are_the_pixel_likelihood_itself():
    pixel = LIKELIHOODS["bernoulli"]()
    assert PIXEL_MODELS["independent"](pixel, 1) is pixel
    assert not pixel.autoregressive and pixel.generation_passes((1, 28, 28)) == 1
    pixelcnn = PIXEL_MODELS["pixelcnn"](pixel, 1)
    assert pixelcnn.autoregressive and pixelcnn.generation_passes((1, 28, 28)) == 784


# --------------------------------------------------------------------------------------------
# The PixelHVAE as a model


def pixel_hvae(make_config, **overrides):
    config = make_config(model="hvae", prior="vampprior", architecture="conv", pixel_model="pixelcnn", **overrides)
    return build_model(config), config


def test_the_paper_sizes_of_the_pixel_hvae(make_config):
    model, _ = pixel_hvae(make_config, input_shape=(1, 28, 28), hidden=300, latent_dim=40, latent_dim_z1=40)
    assert model.encoder.trunks[0].out_features == 294  # 6 maps of 7 x 7, as in the authors' convHVAE
    net = model.likelihood.net
    assert [layer.mask_type for layer in [net.first, *net.hidden]] == ["A"] + ["B"] * 7
    assert {layer.out_channels for layer in net.hidden} == {64}
    assert net.out.out_channels == 1  # one logit per pixel


@pytest.mark.parametrize("likelihood", PIXELS)
def test_importance_sampled_log_likelihood_is_above_the_elbo(make_config, digits, likelihood):
    model, _ = pixel_hvae(make_config, likelihood=likelihood)
    model.eval()
    x = digits.x_test[:12]
    ll = log_likelihood(model, x, num_samples=200)
    assert ll.shape == (12,) and np.isfinite(ll).all()
    elbo = np.mean([elbo_terms(model, x)["elbo"] for _ in range(5)])
    assert ll.mean() > elbo


def test_a_short_training_run_lowers_the_loss(make_config, digits):
    torch.manual_seed(0)
    model, _ = pixel_hvae(make_config)
    x = torch.as_tensor(digits.x_train[:64])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with torch.no_grad():
        start = model(x).loss.item()
    for _ in range(30):
        optimizer.zero_grad()
        model(x).loss.backward()
        optimizer.step()
    with torch.no_grad():
        end = model(x).loss.item()
    assert end < start - 5


def test_save_and_load_round_trip(make_config, digits, tmp_path):
    model, config = pixel_hvae(make_config)
    ckpt.save(tmp_path / "pixel", model, config)
    loaded = ckpt.load(tmp_path / "pixel")
    assert loaded.likelihood.autoregressive
    x = torch.as_tensor(digits.x_test[:4])
    torch.manual_seed(1)
    expected = model.eval()(x).elbo
    torch.manual_seed(1)
    torch.testing.assert_close(loaded(x).elbo, expected)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_sampling_reports_progress_and_gives_images(make_config):
    model, config = pixel_hvae(make_config)
    seen = []
    images = model.eval().sample(3, progress=lambda done, total: seen.append(done))
    assert images.shape == (3, *config.input_shape)
    assert seen == list(range(1, 65))
    assert images.min() >= 0 and images.max() <= 1
