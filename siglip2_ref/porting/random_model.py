"""A two-tower model with random weights N(0, 1/fan_in), built in memory: for measurements without a checkpoint."""

import numpy as np

from ..backend import backend_module
from ..checkpoint.config import parse_config
from ..checkpoint.weights import expected_shapes, nest
from ..model.model import Model, tree_map


def random_model(variant, sizes, backend="numpy", dtype="float32", seed=0, vocab=256000):
    """A two-tower model of `sizes` (hidden_size, intermediate_size, num_hidden_layers, num_attention_heads) with
    random weights N(0, 1/fan_in) built in memory: NaFlex 16x16 position grid, FixRes 224 px, patch 16."""
    vision = sizes | ({"num_patches": 256} if variant == "naflex" else {"image_size": 224}) | {"patch_size": 16}
    raw = {"model_type": "siglip2" if variant == "naflex" else "siglip", "vision_config": vision,
           "text_config": sizes | {"vocab_size": vocab}}  # fmt: skip
    config = parse_config(raw)
    rng = np.random.default_rng(seed)
    flat = {k: (rng.standard_normal(s, np.float32) / np.sqrt(s[-1])).astype(dtype) for k, s in expected_shapes(config).items()}
    params = nest(flat)
    xp = backend_module(backend)
    return Model(config, tree_map(xp.asarray, params) if xp is not np else params, backend, np.dtype(dtype).name)
