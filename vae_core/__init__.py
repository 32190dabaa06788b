"""vampviz core: VAEs with the VampPrior (Tomczak & Welling, AISTATS 2018) in PyTorch."""

from .checkpoint import load, read_info, save
from .config import ModelConfig
from .errors import CheckpointError, DatasetError, TrainingDivergedError, VampvizError
from .models import HVAE, VAE, ModelOutput, build_model
from .priors import PRIORS, GaussianMixturePrior, StandardNormalPrior, VampPrior
from .train import TrainConfig, train

__version__ = "0.1.0"

__all__ = [
    "HVAE", "VAE", "ModelConfig", "ModelOutput", "build_model", "PRIORS", "GaussianMixturePrior",
    "StandardNormalPrior", "VampPrior", "TrainConfig", "train", "load", "read_info", "save",
    "CheckpointError", "DatasetError", "TrainingDivergedError", "VampvizError",
]
