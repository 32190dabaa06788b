"""An autoregressive pixel model for p(x | z): the PixelCNN decoder of the paper's PixelHVAE.

p(x | z) = prod_i p(x_i | x_<i, z) in raster order. The model's decoder network turns the latents
into conditioning maps (its "parameters", (B, P, C, H, W) as for any likelihood); the PixelCNN
reads the image through masked convolutions, adds the conditioning maps, and gives each pixel the
parameters of an ordinary pixel likelihood (Bernoulli or discretised logistic), which then scores
it. So log p(x | z) is one forward pass, while drawing x is one pass per pixel.

As in the authors' PixelHVAE: 3 x 3 masked convolutions of 64 maps, one of type A and seven of
type B, with ReLUs. Unlike it, no batch normalisation (an image's log p(x | z) never depends on
the other images of its batch), and the conditioning maps enter through an unmasked 1 x 1
convolution, so each pixel also sees the decoder's features at its own position. With several
image channels all the channels of a pixel come together: they are independent given the pixels
before it.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .likelihoods import Likelihood

Progress = Callable[[int, int], None]


class MaskedConv2d(nn.Conv2d):
    """A 'same' convolution that sees only the pixels before the centre in raster order (type "A")
    or those and the centre itself (type "B"); the mask is a buffer, not saved with the weights."""

    def __init__(self, mask_type: str, in_channels: int, out_channels: int, kernel_size: int = 3):
        assert mask_type in ("A", "B"), f"mask type must be 'A' or 'B', got {mask_type!r}"
        assert kernel_size % 2 == 1, "masked convolutions need an odd kernel"
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        centre = kernel_size // 2
        mask = torch.ones_like(self.weight)
        mask[:, :, centre, centre + (mask_type == "B"):] = 0  # the centre row: right of (or from) the centre
        mask[:, :, centre + 1:] = 0  # every row below
        self.register_buffer("mask", mask, persistent=False)
        self.mask_type = mask_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class PixelCNN(nn.Module):
    """(image (B, C, H, W), conditioning features (B, channels, H, W)) -> pixel parameters
    (B, out_channels, H, W); output pixel i depends on the image's pixels before i only."""

    def __init__(self, image_channels: int, condition_channels: int, out_channels: int,
                 channels: int = 64, layers: int = 8):
        super().__init__()
        assert layers >= 1, "a PixelCNN needs at least its type-A layer"
        self.condition = nn.Conv2d(condition_channels, channels, 1)
        self.first = MaskedConv2d("A", image_channels, channels)
        self.hidden = nn.ModuleList(MaskedConv2d("B", channels, channels) for _ in range(layers - 1))
        self.out = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, condition_features: torch.Tensor) -> torch.Tensor:
        """`condition_features` = self.condition(maps), computed once per latent code."""
        h = F.relu(self.first(x) + condition_features)
        for layer in self.hidden:
            h = F.relu(layer(h))
        return self.out(h)


class PixelCNNLikelihood(Likelihood):
    """p(x | z) = prod_i pixel(x_i | PixelCNN(x_<i, decoder maps)): `pixel` is any one-pass likelihood."""

    autoregressive = True

    def __init__(self, pixel: Likelihood, image_channels: int, condition_maps: int = 4,
                 channels: int = 64, layers: int = 8):
        super().__init__()
        self.pixel = pixel
        self.params_per_pixel = condition_maps  # what the model's decoder network must produce
        self.image_channels = image_channels
        self.net = PixelCNN(image_channels, condition_maps * image_channels,
                            pixel.params_per_pixel * image_channels, channels, layers)

    def pixel_params(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """The pixel likelihood's parameters (B, P_pixel, C, H, W) for image x under decoder maps `params`."""
        out = self.net(x, self.net.condition(params.flatten(1, 2)))
        return out.view(x.shape[0], self.pixel.params_per_pixel, *x.shape[1:])

    def log_prob(self, x, params):
        return self.pixel.log_prob(x, self.pixel_params(x.expand(params.shape[0], *x.shape[1:]), params))

    def generation_passes(self, input_shape: tuple[int, ...]) -> int:
        return math.prod(input_shape[1:])

    @torch.no_grad()
    def generate(self, params: torch.Tensor, progress: Progress | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One autoregressive draw per row of `params`, in raster order: (pixels drawn, (B, C, H, W);
        each pixel's conditional mean given the pixels drawn before it, the same shape).

        Pass i runs the network on rows 0..r of the canvas only (r = pixel i's row): masked
        convolutions never look below, so those rows give pixel i exactly what the full image would.
        """
        B, _, C, H, W = params.shape
        condition = self.net.condition(params.flatten(1, 2))  # (B, channels, H, W), once
        pixels = params.new_zeros(B, C, H, W)
        means = params.new_zeros(B, C, H, W)
        P = self.pixel.params_per_pixel
        for row in range(H):
            for col in range(W):
                out = self.net(pixels[:, :, : row + 1], condition[:, :, : row + 1])
                here = out[:, :, row, col].view(B, P, C, 1, 1)
                pixels[:, :, row, col] = self.pixel.sample(here)[:, :, 0, 0]
                means[:, :, row, col] = self.pixel.mean(here)[:, :, 0, 0]
                if progress:
                    progress(row * W + col + 1, H * W)
        return pixels, means

    def mean(self, params, progress: Progress | None = None):
        """The conditional means along one autoregressive draw (a PixelCNN has no one-pass mean
        image): what the authors show as its samples."""
        return self.generate(params, progress)[1]

    def sample(self, params, progress: Progress | None = None):
        return self.generate(params, progress)[0]


def independent_pixels(pixel: Likelihood, image_channels: int) -> Likelihood:
    """Pixels independent given z: the pixel likelihood itself (every model but the PixelHVAE)."""
    return pixel


PIXEL_MODELS = {"independent": independent_pixels, "pixelcnn": PixelCNNLikelihood}
