"""Quantized parameter trees: quantize a loaded model's Linear weights, read a quantized folder, write one.

The math is quant.py, the disk layout checkpoint/quantized.py; this module joins them for `load_model` and
`siglip2-ref quantize`.
"""

from pathlib import Path

import numpy as np

from ..checkpoint.config import load_config
from ..checkpoint.quantized import SCALES_SUFFIX, block_for, load_quantized, quantizable, read_block, write_folder
from ..checkpoint.weights import CheckpointError, check_tensors, expected_shapes, nest, read_tensors, to_float, with_tower_prefix
from .quant import DEFAULT_GROUP_SIZE, QuantizedWeight, quantize


def quantize_params(params, bits, group_size=DEFAULT_GROUP_SIZE, prefix=""):
    """The nested parameters with every quantizable Linear weight (checkpoint/quantized.py) replaced by a
    QuantizedWeight whose scales are in that weight's dtype; everything else is the same array."""
    if isinstance(params, dict):
        return {k: quantize_params(v, bits, group_size, f"{prefix}{k}.") for k, v in params.items()}
    if isinstance(params, list):
        return [quantize_params(v, bits, group_size, f"{prefix}{i}.") for i, v in enumerate(params)]
    key = prefix[:-1]
    if not quantizable(key, params.shape):
        return params
    q = quantize(params, bits, group_size)
    return QuantizedWeight(bits, q.codes, q.scales.astype(params.dtype))


def load_quantized_params(folder, config, block, dtype="float32"):
    """The nested parameters of a quantized folder: float arrays and QuantizedWeights (scales in `dtype`)."""
    flat, quantized = load_quantized(folder, config, block, dtype)
    flat |= {k: QuantizedWeight(bits, codes, scales) for k, (bits, codes, scales) in quantized.items()}
    return nest(flat)


def quantize_checkpoint(source, out, bits, group_size=DEFAULT_GROUP_SIZE):
    """Write the float checkpoint folder `source` as a quantized folder `out`; returns (out, block).

    Quantized weights: int codes + float32 scales (computed from the float32 value of each weight); the other
    tensors keep their float16/float32 storage (bfloat16 is widened to float32, which is exact).
    """
    source = Path(source)
    config = load_config(source)
    if read_block(source) is not None:
        raise CheckpointError(f"{source}: is already a quantized checkpoint; quantize the float checkpoint it was made from")
    stored, expected = with_tower_prefix(read_tensors(source), config), expected_shapes(config)
    check_tensors(stored, expected, source)
    tensors, keys = {}, []
    for key in expected:
        storage, tag = stored[key]
        value = to_float(storage, tag, np.float32) if tag == "BF16" or quantizable(key, expected[key]) else np.asarray(storage)
        if quantizable(key, expected[key]):
            q = quantize(value, bits, group_size)
            tensors[key], tensors[key + SCALES_SUFFIX] = q.codes, q.scales.astype(np.float32)
            keys.append(key)
        else:
            tensors[key] = value
    block = block_for(bits, group_size, keys)
    return write_folder(source, out, tensors, block), block
