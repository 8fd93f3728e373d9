"""siglip2-ref: a readable NumPy reference implementation of SigLIP 2 (FixRes and NaFlex), matching transformers."""

from .backend import to_numpy
from .config import ConfigError
from .model import Model, load_model
from .vision import InputError
from .weights import CheckpointError

__version__ = "0.1.0"
__all__ = ["load_model", "to_numpy", "Model", "ConfigError", "CheckpointError", "InputError"]
