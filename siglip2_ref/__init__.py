"""siglip2-ref: a readable NumPy reference implementation of SigLIP 2 (FixRes and NaFlex), matching transformers."""

from .backend import to_numpy
from .errors import CheckpointError, ConfigError, EmbeddingsFileError, InputError, NonFiniteError
from .model.model import Model, load_model
from .preprocess.processor import Processor, load_processor
from .tasks.embedfile import save_embeddings
from .tasks.pipelines import embed_images, embed_texts, rank_images, rank_texts, zero_shot
from .tasks.query import parse_query, query_vector, search
from .tasks.ray_embed import embed_dataset  # needs the ray extra only when called
from .tasks.readers import load_embeddings, open_embeddings

__version__ = "0.1.0"
__all__ = [
    "load_model", "load_processor", "zero_shot", "to_numpy",
    "embed_images", "embed_texts", "rank_images", "rank_texts", "search",
    "open_embeddings", "load_embeddings", "save_embeddings", "query_vector", "parse_query", "EmbeddingsFileError", "embed_dataset",
    "Model", "Processor", "ConfigError", "CheckpointError", "InputError", "NonFiniteError",
]  # fmt: skip
