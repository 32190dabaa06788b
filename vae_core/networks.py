"""Building blocks of the paper's networks: gated layers, Gaussian heads, MLP and conv stacks.

Every image network takes images (B, C, H, W); MLPs flatten them. An architecture (a key of
`ARCHITECTURES`) builds the two image-facing pieces a model needs:

- `image_encoder(input_shape, layers)`: images -> features (B, F), F its `out_features`;
  `layers` is 2 for an encoder of its own (q(z|x), q(z2|x)), 1 for the x-trunk of q(z1|x,z2);
- `image_decoder(hidden, input_shape, params_per_pixel)`: features -> likelihood parameters
  (B, P, C, H, W).

Latent-facing layers are always gated dense layers, as in the paper.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

ENCODER_LOGVAR_RANGE = (-6.0, 2.0)  # the paper clamps the encoder's log-variance with Hardtanh(-6, 2)


def he_init(module: nn.Module) -> None:
    """He (Kaiming) normal initialisation of every linear and conv weight; zero biases."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, GatedDense)):  # GatedDense: fan-in is each half's
            nn.init.kaiming_normal_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class GatedDense(nn.Module):
    """h(x) * sigmoid(g(x)): the paper's gated dense layer.

    h and g share one (2 * out, in) weight and one (2 * out,) bias, so a step is one matmul and one
    `F.glu` kernel (on a CPU one 300 -> 600 matmul runs up to 1.4x faster than two 300 -> 300 ones;
    benchmarks/speed.py times the training step against two separate layers, variant (f)). The
    halves stay separate tensors for the paper's normalised gradients (`norm_groups`), and
    `state_dict()` names them `h.weight`, `h.bias`, `g.weight`, `g.bias`, as checkpoints store them.
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        halves = [nn.Linear(in_features, out_features) for _ in "hg"]  # PyTorch's default init of each
        # copied in rather than torch.cat: on the meta device (checkpoint.expected_tensors) cat's
        # Python meta kernel imports torch._dynamo, seconds on a dashboard's first page
        self.weight = nn.Parameter(torch.empty(2 * out_features, in_features))
        self.bias = nn.Parameter(torch.empty(2 * out_features))
        with torch.no_grad():
            for parameter, name in ((self.weight, "weight"), (self.bias, "bias")):
                parameter[:out_features] = getattr(halves[0], name)
                parameter[out_features:] = getattr(halves[1], name)
        for parameter in (self.weight, self.bias):  # h's and g's gradients are normalised each on its own
            parameter.norm_groups = 2
        self.register_state_dict_post_hook(_split_gates)
        self.register_load_state_dict_pre_hook(_join_gates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.glu(F.linear(x, self.weight, self.bias), dim=-1)  # (B, 2 * out) -> h * sigmoid(g)


def _split_gates(module: GatedDense, state_dict: dict, prefix: str, local_metadata) -> None:
    """state_dict post-hook: `weight`/`bias` -> the checkpoint names `h.*` and `g.*` (own storage each)."""
    for name in ("weight", "bias"):
        h, g = state_dict.pop(prefix + name).chunk(2)
        state_dict[f"{prefix}h.{name}"] = h.clone()
        state_dict[f"{prefix}g.{name}"] = g.clone()


def _join_gates(module: GatedDense, state_dict: dict, prefix: str, *args) -> None:
    """load_state_dict pre-hook: the checkpoint names `h.*` and `g.*` -> `weight`/`bias`."""
    for name in ("weight", "bias"):
        h, g = f"{prefix}h.{name}", f"{prefix}g.{name}"
        if h in state_dict and g in state_dict:
            state_dict[prefix + name] = torch.cat([state_dict.pop(h), state_dict.pop(g)])


class GatedConv2d(nn.Module):
    """h(x) * sigmoid(g(x)) with 'same'-style padding for odd kernels."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        padding = kernel_size // 2
        self.h = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.g = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.h(x) * torch.sigmoid(self.g(x))


def gated_mlp(in_features: int, hidden: int, layers: int) -> nn.Sequential:
    dims = [in_features] + [hidden] * layers
    return nn.Sequential(*(GatedDense(a, b) for a, b in zip(dims[:-1], dims[1:])))


class GaussianHead(nn.Module):
    """features -> (mean, logvar) of a diagonal Gaussian; logvar clamped to `logvar_range`."""

    def __init__(self, in_features: int, latent_dim: int, logvar_range=ENCODER_LOGVAR_RANGE):
        super().__init__()
        self.mean = nn.Linear(in_features, latent_dim)
        self.logvar = nn.Linear(in_features, latent_dim)
        self.logvar_range = logvar_range

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean(features), F.hardtanh(self.logvar(features), *self.logvar_range)


class GaussianNet(nn.Module):
    """Any trunk followed by a Gaussian head: input(s) -> (mean, logvar), each (B, D).

    With several trunks, each input goes through its own trunk, the features are concatenated
    and passed through one more gated layer (the paper's q(z1|x,z2) and p(x|z1,z2) joints).
    """

    def __init__(self, trunks: list[nn.Module], trunk_features: list[int], hidden: int, latent_dim: int):
        super().__init__()
        self.trunks = nn.ModuleList(trunks)
        self.joint = GatedDense(sum(trunk_features), hidden) if len(trunks) > 1 else nn.Identity()
        self.head = GaussianHead(hidden if len(trunks) > 1 else trunk_features[0], latent_dim)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(joint_features(self.trunks, self.joint, inputs))

    def forward_repeated(self, first: torch.Tensor, *rest: torch.Tensor, repeats: int):
        """`forward` where each later input holds `repeats` rows per row of `first`, sample-major
        ((repeats * B, ...)): the first trunk runs once on the B rows instead of repeats * B."""
        assert len(rest) + 1 == len(self.trunks) > 1, "forward_repeated needs a multi-input net"
        shared = self.trunks[0](first)
        shared = shared.expand(repeats, *shared.shape).flatten(0, 1)
        features = [shared] + [trunk(x) for trunk, x in zip(self.trunks[1:], rest)]
        return self.head(self.joint(torch.cat(features, dim=-1)))


class ImageNet(nn.Module):
    """Latent input(s) -> likelihood parameters (B, P, C, H, W), joined like `GaussianNet`."""

    def __init__(self, trunks: list[nn.Module], trunk_features: list[int], hidden: int, output: nn.Module):
        super().__init__()
        self.trunks = nn.ModuleList(trunks)
        self.joint = GatedDense(sum(trunk_features), hidden) if len(trunks) > 1 else nn.Identity()
        self.output = output

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.output(joint_features(self.trunks, self.joint, inputs))


def joint_features(trunks: nn.ModuleList, joint: nn.Module, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    assert len(inputs) == len(trunks), f"expected {len(trunks)} inputs, got {len(inputs)}"
    if len(trunks) == 1:
        return trunks[0](inputs[0])
    return joint(torch.cat([trunk(x) for trunk, x in zip(trunks, inputs)], dim=-1))


# --------------------------------------------------------------------------------------------
# Architectures


class MLPArchitecture:
    """The paper's MLP: `hidden` gated units per layer (2 x 300 by default)."""

    name = "mlp"

    def __init__(self, hidden: int = 300):
        self.hidden = hidden

    def image_encoder(self, input_shape: tuple[int, ...], layers: int) -> nn.Module:
        encoder = nn.Sequential(nn.Flatten(), gated_mlp(math.prod(input_shape), self.hidden, layers))
        encoder.out_features = self.hidden
        return encoder

    def image_decoder(self, input_shape: tuple[int, ...], params_per_pixel: int) -> nn.Module:
        return nn.Sequential(
            nn.Linear(self.hidden, params_per_pixel * math.prod(input_shape)),
            nn.Unflatten(-1, (params_per_pixel, *input_shape)),
        )


class ConvEncoder(nn.Module):
    """The paper's gated convolutional encoder: five gated convolutions, two of them stride 2, down
    to 6 maps at a quarter of the resolution, flattened (6 x 7 x 7 = 294 features for 28 x 28).

    `kernels` are the five kernel sizes: (7, 3, 5, 3, 3) for q(z|x) and q(z2|x), (3, 3, 3, 3, 3)
    for the x-trunk of q(z1|x,z2), as in the authors' convHVAE.
    """

    def __init__(self, input_shape: tuple[int, int, int], kernels: tuple[int, ...] = (7, 3, 5, 3, 3)):
        super().__init__()
        c = input_shape[0]
        k = kernels
        self.convs = nn.Sequential(
            GatedConv2d(c, 32, k[0]),
            GatedConv2d(32, 32, k[1], stride=2),
            GatedConv2d(32, 64, k[2]),
            GatedConv2d(64, 64, k[3], stride=2),
            GatedConv2d(64, 6, k[4]),
            nn.Flatten(),
        )
        with torch.no_grad():
            self.out_features = self.convs(torch.zeros(1, *input_shape)).shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


class ConvDecoder(nn.Module):
    """Features -> one full-resolution map per channel (a gated dense layer) -> four gated 3 x 3
    convolutions of `channels` maps -> P parameters per pixel (a 1 x 1 convolution)."""

    def __init__(self, input_shape: tuple[int, int, int], hidden: int, channels: int, params_per_pixel: int):
        super().__init__()
        c, h, w = input_shape
        self.input_shape = input_shape
        self.params_per_pixel = params_per_pixel
        self.dense = GatedDense(hidden, c * h * w)
        self.convs = nn.Sequential(
            GatedConv2d(c, channels, 3),
            *(GatedConv2d(channels, channels, 3) for _ in range(3)),
            nn.Conv2d(channels, params_per_pixel * c, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        c, h, w = self.input_shape
        maps = self.dense(features).view(-1, c, h, w)
        return self.convs(maps).view(-1, self.params_per_pixel, c, h, w)


class ConvArchitecture:
    """The paper's convolutional networks (the authors' convHVAE): `ConvEncoder` trunks and a
    `ConvDecoder` of 64 maps, around the same gated dense latent layers as the MLP.

    One difference from the authors' code: their p(x|z1,z2) maps the two gated 300-unit trunks
    straight to the 28 x 28 map; here the model's joint gated layer (600 -> 300, as in the MLP
    HVAE) comes first, so every architecture receives features of one size.
    """

    name = "conv"
    encoder_kernels = {2: (7, 3, 5, 3, 3), 1: (3, 3, 3, 3, 3)}

    def __init__(self, hidden: int = 300, channels: int = 64):
        self.hidden = hidden
        self.channels = channels

    def image_encoder(self, input_shape: tuple[int, ...], layers: int) -> nn.Module:
        assert layers in self.encoder_kernels, f"the conv encoder has depths {sorted(self.encoder_kernels)}"
        return ConvEncoder(input_shape, self.encoder_kernels[layers])

    def image_decoder(self, input_shape: tuple[int, ...], params_per_pixel: int) -> nn.Module:
        return ConvDecoder(input_shape, self.hidden, self.channels, params_per_pixel)


ARCHITECTURES = {"mlp": MLPArchitecture, "conv": ConvArchitecture}
