"""Weights: safetensors files (single or sharded) -> a nested dict that mirrors the checkpoint keys.

`vision_model.encoder.layers.3.mlp.fc1.weight` becomes
`params["vision_model"]["encoder"]["layers"][3]["mlp"]["fc1"]["weight"]`; no renaming, PyTorch's
`[out, in]` layout kept. Files are memory-mapped and parsed here (the format is an 8-byte header
length, a JSON header, raw little-endian data), so nothing in a checkpoint can execute code, bfloat16
needs no special library, and each tensor is read only when it is used. Every expected key and shape
is checked before any compute.
"""

import json
import math
from pathlib import Path

import numpy as np

from .config import Config

# safetensors dtype -> NumPy storage dtype (bfloat16 is stored as its upper 16 bits)
STORAGE_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?",
}
FLOAT_DTYPES = {"float32": np.float32, "float64": np.float64, "float16": np.float16}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
IGNORED_KEY_SUFFIXES = (".position_ids",)  # non-persistent buffers some older exports still contain
MAX_HEADER_BYTES = 100 * 2**20


class CheckpointError(ValueError):
    """A checkpoint folder or weight file that cannot be loaded as the config describes."""


def read_header(path):
    """The JSON header of a safetensors file and the byte offset where its data starts."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: truncated safetensors file ({size} bytes, no header)")
        n = int.from_bytes(head, "little")
        if n > min(size - 8, MAX_HEADER_BYTES):
            raise CheckpointError(f"{path}: header length {n} exceeds the file ({size} bytes): truncated or not safetensors")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{path}: header is not valid JSON ({e}): not a safetensors file") from e
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: header is not a JSON object")
    header.pop("__metadata__", None)
    return header, 8 + n


def _check_entry(path, key, entry, data_size):
    """Validate one header entry: dtype known, shape sane, byte range inside the file."""
    if not isinstance(entry, dict) or entry.get("dtype") not in STORAGE_DTYPES:
        raise CheckpointError(f"{path}: tensor {key!r} has unsupported dtype {entry.get('dtype') if isinstance(entry, dict) else entry!r}")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise CheckpointError(f"{path}: tensor {key!r} has an invalid shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        raise CheckpointError(f"{path}: tensor {key!r} has invalid data_offsets {offsets!r}")
    begin, end = offsets
    nbytes = math.prod(shape) * np.dtype(STORAGE_DTYPES[entry["dtype"]]).itemsize
    if not 0 <= begin <= end or end - begin != nbytes:
        raise CheckpointError(f"{path}: tensor {key!r} occupies bytes {offsets}, expected {nbytes} bytes for shape {shape}")
    if end > data_size:
        raise CheckpointError(f"{path}: tensor {key!r} ends at byte {end} but the file holds {data_size} data bytes: truncated")


def open_safetensors(path):
    """{key: (memory-mapped storage array, safetensors dtype)} for one file; nothing is read yet."""
    path = Path(path)
    header, start = read_header(path)
    data_size = path.stat().st_size - start
    data = np.memmap(path, np.uint8, "r", offset=start) if data_size else np.zeros(0, np.uint8)
    tensors = {}
    for key, entry in header.items():
        _check_entry(path, key, entry, data_size)
        begin, end = entry["data_offsets"]
        storage = np.dtype(STORAGE_DTYPES[entry["dtype"]])
        tensors[key] = (data[begin:end].view(storage).reshape(entry["shape"]), entry["dtype"])
    return tensors


def weight_files(folder):
    """The safetensors files of a checkpoint folder: one file, or the shards its index names."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return shard_files(folder, index)
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES) if folder.is_dir() else []
    if pickles:
        raise CheckpointError(
            f"{folder}: only pickle weight files found ({', '.join(pickles)}). Pickle files can execute code "
            "when loaded, so they are never opened here. Convert once on a machine with transformers: "
            "AutoModel.from_pretrained(folder).save_pretrained(new_folder)  # writes model.safetensors"
        )
    raise CheckpointError(f"{folder}: no model.safetensors or model.safetensors.index.json found")


def shard_files(folder, index):
    """Shard paths from `model.safetensors.index.json`, each required to stay inside `folder`."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{index}: not a valid index file (needs a 'weight_map' object): {e}") from e
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{index}: 'weight_map' must map tensor names to file names")
    root = folder.resolve()
    files = []
    for name in sorted(set(weight_map.values())):
        path = (folder / name).resolve()
        if root not in path.parents:
            raise CheckpointError(f"{index}: shard path {name!r} points outside the checkpoint folder {folder}")
        if not path.is_file():
            raise CheckpointError(f"{index}: shard {name!r} is listed but missing from {folder}")
        files.append(path)
    return files


def read_tensors(folder):
    """{key: (storage array, safetensors dtype)} over all weight files of a checkpoint."""
    tensors = {}
    for path in weight_files(folder):
        for key, value in open_safetensors(path).items():
            if key in tensors:
                raise CheckpointError(f"{path}: tensor {key!r} is also stored in another shard")
            tensors[key] = value
    return tensors


def _encoder_shapes(prefix, D, F, layers):
    """Keys and shapes of a pre-LN transformer encoder with width D and MLP width F."""
    shapes = {}
    for i in range(layers):
        p = f"{prefix}.encoder.layers.{i}"
        for ln in ("layer_norm1", "layer_norm2"):
            shapes |= {f"{p}.{ln}.weight": (D,), f"{p}.{ln}.bias": (D,)}
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes |= {f"{p}.self_attn.{proj}.weight": (D, D), f"{p}.self_attn.{proj}.bias": (D,)}
        shapes |= {f"{p}.mlp.fc1.weight": (F, D), f"{p}.mlp.fc1.bias": (F,)}
        shapes |= {f"{p}.mlp.fc2.weight": (D, F), f"{p}.mlp.fc2.bias": (D,)}
    return shapes


def vision_shapes(v):
    """Expected `vision_model.*` keys and shapes (transformers 5.24 `modeling_siglip2.py`; golden/README.md "Checkpoints")."""
    D, F, P, C = v.hidden_size, v.intermediate_size, v.patch_size, v.num_channels
    stem = (D, C, P, P) if v.variant == "fixres" else (D, C * P * P)  # Conv2d vs Linear on patchified input
    shapes = {
        "vision_model.embeddings.patch_embedding.weight": stem,
        "vision_model.embeddings.patch_embedding.bias": (D,),
        "vision_model.embeddings.position_embedding.weight": (v.grid_size**2, D),
        "vision_model.post_layernorm.weight": (D,),
        "vision_model.post_layernorm.bias": (D,),
    }
    shapes |= _encoder_shapes("vision_model", D, F, v.num_hidden_layers)
    if v.vision_use_head:
        h = "vision_model.head"
        shapes |= {f"{h}.probe": (1, 1, D), f"{h}.attention.in_proj_weight": (3 * D, D),
                   f"{h}.attention.in_proj_bias": (3 * D,), f"{h}.attention.out_proj.weight": (D, D),
                   f"{h}.attention.out_proj.bias": (D,), f"{h}.layernorm.weight": (D,), f"{h}.layernorm.bias": (D,),
                   f"{h}.mlp.fc1.weight": (F, D), f"{h}.mlp.fc1.bias": (F,),
                   f"{h}.mlp.fc2.weight": (D, F), f"{h}.mlp.fc2.bias": (D,)}  # fmt: skip
    return shapes


def text_shapes(t):
    """Expected `text_model.*` keys and shapes (transformers 5.24 `modeling_siglip2.py`; golden/README.md "Checkpoints")."""
    D = t.hidden_size
    shapes = {
        "text_model.embeddings.token_embedding.weight": (t.vocab_size, D),
        "text_model.embeddings.position_embedding.weight": (t.max_position_embeddings, D),
        "text_model.final_layer_norm.weight": (D,),
        "text_model.final_layer_norm.bias": (D,),
        "text_model.head.weight": (t.output_size, D),
        "text_model.head.bias": (t.output_size,),
    }
    return shapes | _encoder_shapes("text_model", D, t.intermediate_size, t.num_hidden_layers)


def expected_shapes(config: Config):
    """Every key the checkpoint described by `config` must hold, with its shape."""
    shapes = {}
    if config.vision is not None:
        shapes |= vision_shapes(config.vision)
    if config.text is not None:
        shapes |= text_shapes(config.text)
    if config.towers == "both" and not config.is_classifier:
        shapes |= {"logit_scale": (1,), "logit_bias": (1,)}
    if config.is_classifier and config.num_labels > 0:
        shapes |= {"classifier.weight": (config.num_labels, config.vision.hidden_size),
                   "classifier.bias": (config.num_labels,)}  # fmt: skip
    return shapes


def with_tower_prefix(tensors, config):
    """Single-tower checkpoints written by transformers 5.x drop the `vision_model.`/`text_model.` prefix; add it."""
    if config.towers == "both":
        return tensors
    prefix = "vision_model." if config.towers == "vision" else "text_model."
    if any(k.startswith(prefix) for k in tensors):
        return tensors  # transformers 4.x layout
    return {prefix + k: v for k, v in tensors.items()}


def check_tensors(tensors, expected, folder):
    """Raise one error listing every missing key, unexpected key and shape mismatch."""
    present = {k for k in tensors if not k.endswith(IGNORED_KEY_SUFFIXES)}
    missing = sorted(set(expected) - present)
    unexpected = sorted(present - set(expected))
    wrong = [f"{k}: stored {tuple(tensors[k][0].shape)}, config implies {expected[k]}"
             for k in sorted(present & set(expected)) if tuple(tensors[k][0].shape) != expected[k]]  # fmt: skip
    not_float = [f"{k}: {tensors[k][1]}" for k in sorted(present & set(expected)) if tensors[k][1] not in ("F64", "F32", "F16", "BF16")]
    if not (missing or unexpected or wrong or not_float):
        return
    lines = [f"{folder}: the weights do not match config.json"]
    for title, items in [("missing keys", missing), ("unexpected keys", unexpected),
                         ("shape mismatches", wrong), ("non-float tensors", not_float)]:  # fmt: skip
        if items:
            shown = items[:20] + ([f"... and {len(items) - 20} more"] if len(items) > 20 else [])
            lines.append(f"  {title} ({len(items)}):\n    " + "\n    ".join(shown))
    raise CheckpointError("\n".join(lines))


def to_float(storage, st_dtype, dtype):
    """Stored tensor -> array of the compute dtype; bfloat16 widened to float32 bits first (exact)."""
    if st_dtype == "BF16":
        storage = (np.asarray(storage).astype(np.uint32) << 16).view(np.float32)
    return np.asarray(storage).astype(dtype, copy=False)


def nest(flat):
    """{'a.b.0.c': x} -> {'a': {'b': [{'c': x}]}}: numeric path parts become list indices."""
    root = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = root
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return _lists(root)


def _lists(node):
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_lists(node[str(i)]) for i in range(len(node))]
    return {k: _lists(v) for k, v in node.items()}


def load_params(folder, config, dtype="float32"):
    """Checked, converted, nested parameters of the checkpoint in `folder`."""
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(FLOAT_DTYPES)}, got {dtype!r}")
    tensors = with_tower_prefix(read_tensors(folder), config)
    expected = expected_shapes(config)
    check_tensors(tensors, expected, folder)
    flat = {k: to_float(*tensors[k], FLOAT_DTYPES[dtype]) for k in expected}
    return nest(flat)
