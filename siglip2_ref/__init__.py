"""siglip2-ref: a readable NumPy reference implementation of SigLIP 2 (FixRes and NaFlex), matching transformers."""

from .backend import to_numpy
from .errors import CheckpointError, ConfigError, InputError, NonFiniteError
from .model.model import Model, load_model
from .preprocess.processor import Processor, load_processor
from .tasks.pipelines import embed_images, embed_texts, rank_images, rank_texts, search, zero_shot

__version__ = "0.1.0"
__all__ = [
    "load_model", "load_processor", "zero_shot", "to_numpy",
    "embed_images", "embed_texts", "rank_images", "rank_texts", "search",
    "Model", "Processor", "ConfigError", "CheckpointError", "InputError", "NonFiniteError",
]  # fmt: skip
