"""`ModelConfig`: everything needed to rebuild a model, saved as config.json next to its weights.

A config comes from a user's file as often as from code, so `validate` checks every field's type
and range (with upper bounds: a hand-edited config must not make the loader allocate gigabytes)
and names the first bad one in a one-line ValueError.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields

# Upper bounds far above any model of the paper (latent 40, hidden 300, K 500, 28x28 images) and
# far below what would exhaust a machine's memory before the weights are even read.
MAX_SIZES = {"latent_dim": 4096, "latent_dim_z1": 4096, "hidden": 8192, "components": 65536}
MAX_CHANNELS, MAX_SIDE = 4, 1024


@dataclass
class ModelConfig:
    """The model's recipe: registry names, sizes and the pseudo-inputs' initialisation."""

    model: str = "vae"  # a key of models.MODELS
    prior: str = "vampprior"  # a key of priors.PRIORS
    architecture: str = "mlp"  # a key of networks.ARCHITECTURES
    likelihood: str = "bernoulli"  # a key of likelihoods.LIKELIHOODS: each pixel's distribution
    pixel_model: str = "independent"  # a key of pixelcnn.PIXEL_MODELS: "pixelcnn" for the PixelHVAE
    dataset: str = "digits"
    input_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W)
    latent_dim: int = 40  # z for the VAE, the top layer z2 for the HVAE
    latent_dim_z1: int = 40  # the HVAE's bottom layer z1
    hidden: int = 300
    components: int = 500  # K: pseudo-inputs or mixture components
    pseudo_init_mean: float = 0.05
    pseudo_init_std: float = 0.01
    extra: dict = field(default_factory=dict)  # free-form notes (e.g. which split was used)

    def __post_init__(self):
        if isinstance(self.input_shape, (list, tuple)):
            self.input_shape = tuple(self.input_shape)

    @classmethod
    def for_dataset(cls, dataset: str, **settings) -> ModelConfig:
        """A config shaped for a registered dataset: its image shape, default likelihood and the
        paper's pseudo-input initialisation, with `settings` (any field) on top."""
        from .data import get_spec

        spec = get_spec(dataset)
        defaults = dict(dataset=spec.name, input_shape=spec.input_shape, likelihood=spec.likelihood,
                        pseudo_init_mean=spec.pseudo_init_mean, pseudo_init_std=spec.pseudo_init_std)
        settings = {k: v for k, v in settings.items() if v is not None}
        return cls(**(defaults | settings))

    def validate(self) -> ModelConfig:
        """Raise ValueError naming the first bad field; returns self for chaining."""
        from .likelihoods import LIKELIHOODS
        from .models import MODELS
        from .networks import ARCHITECTURES
        from .pixelcnn import PIXEL_MODELS
        from .priors import PRIORS

        for name, registry in (("model", MODELS), ("prior", PRIORS), ("architecture", ARCHITECTURES),
                               ("likelihood", LIKELIHOODS), ("pixel_model", PIXEL_MODELS)):
            value = getattr(self, name)
            if not isinstance(value, str) or value not in registry:
                raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(sorted(registry))}")
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError(f"dataset must be a name, got {self.dataset!r}")
        shape = self.input_shape
        if (not isinstance(shape, tuple) or len(shape) != 3 or not all(_is_int(s) and s >= 1 for s in shape)
                or shape[0] > MAX_CHANNELS or max(shape[1:]) > MAX_SIDE):
            raise ValueError(f"input_shape must be (C, H, W) with 1 <= C <= {MAX_CHANNELS} and sides from 1 to "
                             f"{MAX_SIDE}, got {shape!r}")
        for name, limit in MAX_SIZES.items():
            value = getattr(self, name)  # a hand-edited config.json may hold "40", 2.5 or 10**9
            if not _is_int(value) or not 1 <= value <= limit:
                raise ValueError(f"{name} must be an integer from 1 to {limit:,}, got {value!r}")
        for name in ("pseudo_init_mean", "pseudo_init_std"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not isinstance(self.extra, dict):
            raise ValueError(f"extra must be a JSON object, got {type(self.extra).__name__}")
        return self

    def to_dict(self) -> dict:
        return asdict(self) | {"input_shape": list(self.input_shape)}

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        if not isinstance(data, dict):
            raise ValueError(f"the model config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(map(str, unknown))}")
        return cls(**data).validate()

    @property
    def latent_sizes(self) -> dict[str, int]:
        """{latent layer name: size}, bottom layer first; the model class knows its layers."""
        from .models import MODELS

        return MODELS[self.model].latent_sizes(self)

    @property
    def has_components(self) -> bool:
        """Whether the prior is a mixture, so that K (`components`) applies to it."""
        from .priors import has_components

        return has_components(self.prior)

    @property
    def prior_class(self) -> type:
        """The prior's class (what it can do: `component_name`, `images_are_inputs`, ...)."""
        from .priors import PRIORS

        return PRIORS[self.prior]

    @property
    def prior_title(self) -> str:
        """The prior's readable name ("VampPrior", "standard normal N(0, I)", ...)."""
        from .priors import PRIORS

        return PRIORS[self.prior].title

    @property
    def prior_layer(self) -> str:
        """The latent layer the prior p(z) lives on (the top one)."""
        return list(self.latent_sizes)[-1]


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
