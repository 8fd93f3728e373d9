"""Quantized checkpoint folders: which weights are quantized, the on-disk layout, reading it back with checks.

Shapes: docs/shapes.md (Dout, Din a linear layer's output and input widths; local: g group size).

A quantized folder is a checkpoint folder (config.json, model.safetensors, the tokenizer and processor files)
whose config.json has a `quantization` block (LAYOUT_VERSION 1, docs/quantization.md):

    {"format": "siglip2-ref-weight-only", "layout_version": 1, "bits": 8 | 4, "group_size": 64 (int4) | null,
     "method": "symmetric absmax per group, round to nearest", "scale_dtype": "float32",
     "quantized": [every quantized weight's key, sorted]}

and whose safetensors file holds, for each key K listed there, K as I8 [Dout, Din] (int8 codes) or U8 [Dout, Din/2]
(int4 codes, two per byte) and `K_scales` as F32 [Dout, Din/g] (int8: [O, 1]); every other tensor is stored as in
the float checkpoint. Loading it never needs the float checkpoint; every key, dtype and shape is checked first.
The math (quantize, dequantize, compute) is model/quant.py; this module only knows names, files and layout.
"""

import json
import math
import shutil
from pathlib import Path

import numpy as np

from .config import load_config
from .weights import (FLOAT_DTYPES, CheckpointError, check_tensors, expected_shapes, read_tensors, to_float, weight_files,
                      with_tower_prefix)  # fmt: skip

FORMAT, LAYOUT_VERSION = "siglip2-ref-weight-only", 1
METHOD = "symmetric absmax per group, round to nearest"
SCALES_SUFFIX = "_scales"
# Linear weights of both towers: attention projections, MLP, the MAP head, the NaFlex patch projection, the text
# head. Embedding tables, LayerNorms, the probe, the FixRes Conv2d stem and a classifier head stay in float.
QUANTIZED_ENDINGS = ("_proj.weight", "in_proj_weight", "mlp.fc1.weight", "mlp.fc2.weight", "patch_embedding.weight",
                     "text_model.head.weight")  # fmt: skip
CODE_DTYPES = {8: "I8", 4: "U8"}


def quantizable(key, shape):
    """Whether the weight `key` of `shape` is one that quantization replaces (2-D Linear weights only)."""
    return len(shape) == 2 and key.endswith(QUANTIZED_ENDINGS)


def parse_bits(quantize):
    """'int8' | 'int4' | 8 | 4 -> 8 | 4; None or 'none' -> None."""
    names = {"int8": 8, "int4": 4, 8: 8, 4: 4, "8": 8, "4": 4, None: None, "none": None}
    if quantize not in names:
        raise ValueError(f"quantize must be 'int8', 'int4' or None, got {quantize!r}")
    return names[quantize]


def block_for(bits, group_size, keys):
    """The `quantization` block config.json gets for weights `keys` quantized to `bits`."""
    return {"format": FORMAT, "layout_version": LAYOUT_VERSION, "bits": bits, "group_size": group_size if bits == 4 else None,
            "method": METHOD, "scale_dtype": "float32", "quantized": sorted(keys)}  # fmt: skip


# ---------------------------------------------------------------- reading


def read_block(folder):
    """config.json's `quantization` block, checked; None for a float checkpoint."""
    path = Path(folder) / "config.json"
    raw = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    block = raw.get("quantization") if isinstance(raw, dict) else None
    if block is None:
        return None
    where = f"{path}: quantization"
    if not isinstance(block, dict):
        raise CheckpointError(f"{where}: expected a JSON object, got {type(block).__name__}")
    if block.get("format") != FORMAT:
        raise CheckpointError(f"{where}.format: expected {FORMAT!r} (written by `siglip2-ref quantize`), got {block.get('format')!r}")
    if block.get("layout_version") != LAYOUT_VERSION:
        raise CheckpointError(f"{where}.layout_version: this version reads layout {LAYOUT_VERSION}, got {block.get('layout_version')!r}")
    if block.get("bits") not in CODE_DTYPES:
        raise CheckpointError(f"{where}.bits: expected 8 or 4, got {block.get('bits')!r}")
    group = block.get("group_size")
    if block["bits"] == 4 and (isinstance(group, bool) or not isinstance(group, int) or group < 2 or group % 2):
        raise CheckpointError(f"{where}.group_size: int4 needs a positive even number of inputs per scale, got {group!r}")
    keys = block.get("quantized")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise CheckpointError(f"{where}.quantized: expected a non-empty list of weight names, got {keys!r:.80}")
    return block


def _check_quantized(folder, tensors, key, shape, bits, group_size):
    """Codes and scales of one weight: present, integer/float32 storage, shapes that fit [Dout, Din]. Returns (codes, scales)."""
    O, I = shape
    scales_key = key + SCALES_SUFFIX
    for k in (key, scales_key):
        if k not in tensors:
            raise CheckpointError(f"{folder}: quantized weight {k} is missing from the safetensors file")
    (codes, code_tag), (scales, scale_tag) = tensors[key], tensors[scales_key]
    code_shape = (O, I) if bits == 8 else (O, I // 2)
    if code_tag != CODE_DTYPES[bits] or tuple(codes.shape) != code_shape:
        raise CheckpointError(f"{folder}: {key}: expected {CODE_DTYPES[bits]} {code_shape} (int{bits} codes of a [{O}, {I}] weight), "
                              f"got {code_tag} {tuple(codes.shape)}")  # fmt: skip
    groups = scales.shape[1] if scales.ndim == 2 else 0
    fits = scale_tag == "F32" and scales.ndim == 2 and scales.shape[0] == O and groups > 0 and I % groups == 0
    if not fits or (bits == 8 and groups != 1) or (bits == 4 and (I // groups) % 2):
        expected = f"F32 [{O}, 1]" if bits == 8 else f"F32 [{O}, I/G] with an even group size G dividing I = {I}"
        raise CheckpointError(f"{folder}: {scales_key}: expected {expected}, got {scale_tag} {tuple(scales.shape)}")
    if bits == 4 and I // groups != math.gcd(I, group_size):
        raise CheckpointError(f"{folder}: {scales_key}: {groups} scales per row mean groups of {I // groups} inputs, but "
                              f"quantization.group_size {group_size} gives {math.gcd(I, group_size)} for {I} inputs")  # fmt: skip
    values = np.asarray(scales)
    if not np.isfinite(values).all() or (values < 0).any():
        raise CheckpointError(f"{folder}: {scales_key}: scales must be finite and >= 0 (damaged file?)")
    return np.asarray(codes), values


def load_quantized(folder, config, block, dtype="float32"):
    """({key: float array} for the float tensors, {key: (bits, codes, scales in dtype)} for the quantized ones)."""
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(FLOAT_DTYPES)}, got {dtype!r}")
    bits, keys = block["bits"], set(block["quantized"])
    tensors = with_tower_prefix(read_tensors(folder), config)
    expected = expected_shapes(config)
    wrong = sorted(k for k in keys if k not in expected or not quantizable(k, expected[k]))
    if wrong:
        raise CheckpointError(f"{folder}: config.json quantization.quantized names {len(wrong)} weights this model has no "
                              f"quantizable Linear weight for: {wrong[:5]}")  # fmt: skip
    floats = {k: v for k, v in tensors.items() if k not in keys and not (k.endswith(SCALES_SUFFIX) and k[: -len(SCALES_SUFFIX)] in keys)}
    check_tensors(floats, {k: s for k, s in expected.items() if k not in keys}, folder)
    flat = {k: to_float(*floats[k], FLOAT_DTYPES[dtype]) for k in expected if k not in keys}
    quantized = {}
    for k in sorted(keys):
        codes, scales = _check_quantized(folder, tensors, k, expected[k], bits, block.get("group_size"))
        quantized[k] = (bits, codes, scales.astype(dtype, copy=False))  # float32: the mapped file itself, no copy
    return flat, quantized


# ---------------------------------------------------------------- writing


def write_folder(source, out, tensors, block):
    """A quantized folder `out`: `tensors` ({key: NumPy array}) in model.safetensors, config.json with `block`, and
    every other file of the `source` folder (tokenizer, processor) copied. Refuses to overwrite a checkpoint."""
    from safetensors.numpy import save_file

    source, out = Path(source), Path(out)
    if out.resolve() == source.resolve():
        raise CheckpointError(f"{out}: the output folder is the source checkpoint; choose another folder")
    if (out / "config.json").exists() or any(out.glob("*.safetensors")):
        raise CheckpointError(f"{out}: already holds a checkpoint; choose an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    skip = {p.name for p in weight_files(source)} | {"config.json", "model.safetensors.index.json"}
    for path in sorted(source.iterdir()):
        if path.is_file() and path.name not in skip:
            shutil.copy2(path, out / path.name)
    raw = json.loads((source / "config.json").read_text(encoding="utf-8"))
    raw["quantization"] = block
    (out / "config.json").write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(out / "model.safetensors"))
    load_config(out)  # what was written reads back
    return out
