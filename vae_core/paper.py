"""What Tomczak & Welling, "VAE with a VampPrior" (AISTATS 2018, arXiv:1705.07120), report: its
models as vampviz configs, and the test log-likelihoods of its Table 2 that public sources quote.

The dashboard shows a checkpoint's figure beside the paper's; benchmarks/reproduce.py runs the
grid of these models and compares each cell with it.
"""

from __future__ import annotations

import math

# The paper's models by the names of its tables: {name: ModelConfig fields}. The convHVAE and the
# PixelHVAE are its convolutional two-level models, the latter with a PixelCNN over p(x | z1, z2).
PAPER_MODELS: dict[str, dict[str, str]] = {
    "vae": {"model": "vae", "architecture": "mlp", "pixel_model": "independent"},
    "hvae": {"model": "hvae", "architecture": "mlp", "pixel_model": "independent"},
    "convhvae": {"model": "hvae", "architecture": "conv", "pixel_model": "independent"},
    "pixelhvae": {"model": "hvae", "architecture": "conv", "pixel_model": "pixelcnn"},
}
MODEL_TITLES = {"vae": "VAE", "hvae": "HVAE", "convhvae": "convHVAE", "pixelhvae": "PixelHVAE"}

# Table 2: test log-likelihood in nats (binary data) or bits/dim (Frey Faces), with the sources that
# quote each figure. The paper's full text could not be opened from this machine (the stored copies
# of its pages expose only their first paragraphs), so a cell is filled only where a public source
# quotes the figure; every other cell stays absent rather than being typed from memory. Fill them
# in from Table 2 of arXiv:1705.07120v5 / the AISTATS paper.
SOURCE_PYTHAE = ("pythae's reproduction card huggingface.co/clementchadebec/reproduced_vamp, which cites it "
                 "as the paper's value, and a public literature-notes file on GitHub quoting Table 2")
SOURCE_NOTES = ("a public literature-notes file on GitHub quoting Table 2, not checked against the paper "
                "itself")
PAPER_TABLE2: dict[tuple[str, str, str], tuple[float, str]] = {  # (dataset, paper model, prior): (figure, source)
    ("mnist-static", "vae", "vampprior"): (-85.57, SOURCE_PYTHAE),
    ("mnist-static", "hvae", "vampprior"): (-83.19, SOURCE_NOTES),
    ("mnist-static", "convhvae", "vampprior"): (-81.09, SOURCE_NOTES),
    ("mnist-static", "pixelhvae", "vampprior"): (-79.78, SOURCE_NOTES),
}
BITS_PER_DIM = {"freyfaces"}  # the datasets Table 2 reports in bits/dim rather than nats

# Listed for the paper's Caltech101 VampPrior by the notes file above, without the model (VAE or
# HVAE), so it is put in no cell.
CALTECH_VAMPPRIOR_NOTE = -108.28


def paper_model(config) -> str | None:
    """The name the paper gives the model of `config` (a ModelConfig), or None for one it has not."""
    fields = {"model": config.model, "architecture": config.architecture, "pixel_model": config.pixel_model}
    return next((name for name, wanted in PAPER_MODELS.items() if wanted == fields), None)


def reported_log_likelihood(config) -> tuple[float, str] | None:
    """(test log-likelihood in nats, its source) that Table 2 reports for the dataset, model and prior
    of `config`, or None where no figure is quoted; bits/dim are converted with the image's size."""
    found = PAPER_TABLE2.get((config.dataset, paper_model(config), config.prior))
    if found is None:
        return None
    figure, source = found
    if config.dataset in BITS_PER_DIM:
        figure = -figure * math.prod(config.input_shape) * math.log(2)
    return figure, source
