"""Weights: safetensors files (single or sharded) -> a nested dict that mirrors the checkpoint keys.

`vision_model.encoder.layers.3.mlp.fc1.weight` becomes
`params["vision_model"]["encoder"]["layers"][3]["mlp"]["fc1"]["weight"]`; no renaming, PyTorch's
`[out, in]` layout kept. Files are memory-mapped and parsed here (the format is an 8-byte header
length, a JSON header, raw little-endian data), so nothing in a checkpoint can execute code, bfloat16
needs no special library, and each tensor is read only when it is used. Headers are held to the rules
the safetensors library enforces (tests/test_safetensors_format.py checks that both refuse the same files;
docs/bad_input.md lists the errors), and every expected key and shape is checked before any compute.
"""

import json
import math
import os
from pathlib import Path

import numpy as np

from .config import Config
from ..errors import CheckpointError

# safetensors dtype -> NumPy storage dtype (bfloat16 is stored as its upper 16 bits, float8 as raw bytes)
STORAGE_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "C64": "<c8",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
    "F8_E5M2": "u1", "F8_E4M3": "u1", "F8_E8M0": "u1", "F8_E4M3FNUZ": "u1", "F8_E5M2FNUZ": "u1",
}  # fmt: skip
FLOAT_STORAGE_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}  # what weights may be stored as
SUB_BYTE_DTYPES = ("F4", "F6_E2M3", "F6_E3M2")  # valid safetensors dtypes with no NumPy storage: refused here
FLOAT_DTYPES = {"float32": np.float32, "float64": np.float64, "float16": np.float16}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
IGNORED_KEY_SUFFIXES = (".position_ids",)  # non-persistent buffers some older exports still contain
MAX_HEADER_BYTES = 100 * 2**20
MAX_USIZE = 2**64 - 1  # shapes and offsets are unsigned 64-bit integers in the format
INDEX_NAME = "model.safetensors.index.json"
TENSOR_FIELDS = ("dtype", "shape", "data_offsets")


class _BadJSON(ValueError):
    """JSON that Python's parser accepts but the safetensors format does not."""


def _unique_object(pairs):
    """object_pairs_hook for json.loads: a dict, refusing a key that appears twice."""
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise _BadJSON(f"the key {key!r} appears twice in one JSON object")
        obj[key] = value
    return obj


def _no_constant(name):
    """parse_constant hook for json.loads: NaN and Infinity are not JSON."""
    raise _BadJSON(f"{name} is not a JSON value")


def strict_json(text, where, kind):
    """Parse standard JSON (no NaN, no duplicate keys, no lone surrogates, bounded depth) or raise CheckpointError."""
    try:
        value = json.loads(text, object_pairs_hook=_unique_object, parse_constant=_no_constant)
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # lone surrogate escapes cannot be encoded
    except RecursionError as e:
        raise CheckpointError(f"{where}: {kind} JSON is nested too deeply; expected a flat safetensors header/index") from e
    except UnicodeEncodeError as e:
        raise CheckpointError(f"{where}: {kind} holds an unpaired surrogate escape (\\ud800-\\udfff), not valid text") from e
    except ValueError as e:  # JSONDecodeError and _BadJSON
        raise CheckpointError(f"{where}: {kind} is not valid JSON ({e})") from e
    return value


def _header_length(path, head, size):
    """The header length N from the first 8 bytes, checked against the file size and MAX_HEADER_BYTES."""
    if len(head) < 8:
        raise CheckpointError(f"{path}: truncated safetensors file ({size} bytes, no header)")
    n = int.from_bytes(head, "little")
    if n > MAX_HEADER_BYTES:
        raise CheckpointError(f"{path}: header length {n} exceeds the limit of {MAX_HEADER_BYTES} bytes: not safetensors")
    if 8 + n > size:
        raise CheckpointError(f"{path}: header length {n} exceeds the file ({size} bytes): truncated or not safetensors")
    return n


def _header_object(path, raw):
    """The header bytes -> a dict: UTF-8 text holding one JSON object."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path}: header is not valid UTF-8 ({e}): not a safetensors file") from e
    header = strict_json(text, path, "header")
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: header is not a JSON object (got {type(header).__name__}), expected {{key: tensor info}}")
    return header


def _check_metadata(path, metadata):
    """`__metadata__`, if present, maps strings to strings (null counts as absent)."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: '__metadata__' is a {type(metadata).__name__}, expected an object of strings")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise CheckpointError(f"{path}: '__metadata__' entry {key!r} is {value!r}, expected a string")


def read_header(path, f):
    """The tensor entries of a safetensors header (metadata checked and dropped) and the offset where data starts,
    read from `path` opened as the binary file `f`."""
    f.seek(0)
    n = _header_length(path, f.read(8), os.fstat(f.fileno()).st_size)
    header = _header_object(path, f.read(n))
    _check_metadata(path, header.pop("__metadata__", None))
    return header, 8 + n


def _is_usize(x):
    """An unsigned 64-bit integer (bool is not an integer here)."""
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= MAX_USIZE


def _check_dtype(path, key, dtype):
    """The dtype is a safetensors dtype that this loader can store in NumPy."""
    if dtype in SUB_BYTE_DTYPES:
        raise CheckpointError(f"{path}: tensor {key!r} has dtype {dtype!r} (sub-byte), which this loader cannot read; expected a dtype of one byte or more")
    if not isinstance(dtype, str) or dtype not in STORAGE_DTYPES:
        raise CheckpointError(f"{path}: tensor {key!r} has unknown dtype {dtype!r}, expected one of {', '.join(STORAGE_DTYPES)}")


def _check_entry(path, key, entry):
    """One header entry: an object with a known dtype, a shape of unsigned ints and [begin, end] of the right size."""
    if not isinstance(entry, dict):
        raise CheckpointError(f"{path}: tensor {key!r} is {entry!r}, expected an object with {', '.join(TENSOR_FIELDS)}")
    missing = [f for f in TENSOR_FIELDS if f not in entry]
    if missing:
        raise CheckpointError(f"{path}: tensor {key!r} is missing {', '.join(missing)}; expected {', '.join(TENSOR_FIELDS)}")
    _check_dtype(path, key, entry["dtype"])
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not (isinstance(shape, list) and all(_is_usize(d) for d in shape)):
        raise CheckpointError(f"{path}: tensor {key!r} has an invalid shape {shape!r}, expected a list of non-negative ints")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_usize(o) for o in offsets)):
        raise CheckpointError(f"{path}: tensor {key!r} has invalid data_offsets {offsets!r}, expected [begin, end] ints")
    begin, end = offsets
    if begin > end:
        raise CheckpointError(f"{path}: tensor {key!r} has data_offsets {offsets}: end before begin")
    nbytes = math.prod(shape) * np.dtype(STORAGE_DTYPES[entry["dtype"]]).itemsize
    if end - begin != nbytes:
        raise CheckpointError(f"{path}: tensor {key!r} occupies {end - begin} bytes {offsets}, expected {nbytes} bytes for shape {shape} of {entry['dtype']}")


def _check_layout(path, header, data_size):
    """Tensors, sorted by offsets, tile the data region from byte 0 to its end: no gap, no overlap, no tail."""
    start, previous = 0, None
    for key, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"]):
        begin, end = entry["data_offsets"]
        if begin > start:
            raise CheckpointError(f"{path}: tensor {key!r} starts at byte {begin}, leaving a gap after byte {start}; expected it to start at {start}")
        if begin < start:
            raise CheckpointError(f"{path}: tensor {key!r} starts at byte {begin}, overlapping tensor {previous!r} (ends at {start}); expected it to start at {start}")
        if end > data_size:
            raise CheckpointError(f"{path}: tensor {key!r} ends at byte {end} but the file holds {data_size} data bytes: truncated")
        start, previous = end, key
    if start != data_size:
        after = f"after tensor {previous!r}" if previous else "and the header lists no tensors"
        raise CheckpointError(f"{path}: tensors cover {start} of the {data_size} data bytes; expected them to cover all ({data_size - start} trailing bytes {after})")


def open_safetensors(path, f=None):
    """{key: (memory-mapped storage array, safetensors dtype)} for one file; nothing is read yet. Header, size and map
    come from one open file (`f` when given): a file that another process replaces meanwhile (an index `embed` is
    rewriting) is read whole from one version, never half from each."""
    if f is None:
        with open(path, "rb") as f:
            return open_safetensors(path, f)
    header, start = read_header(path, f)
    data_size = os.fstat(f.fileno()).st_size - start
    for key, entry in header.items():
        _check_entry(path, key, entry)
    _check_layout(path, header, data_size)
    data = np.memmap(f, np.uint8, "r", offset=start) if data_size else np.zeros(0, np.uint8)  # outlives f
    tensors = {}
    for key, entry in header.items():
        begin, end = entry["data_offsets"]
        storage = np.dtype(STORAGE_DTYPES[entry["dtype"]])
        tensors[key] = (data[begin:end].view(storage).reshape(entry["shape"]), entry["dtype"])
    return tensors


def weight_files(folder):
    """The safetensors files of a checkpoint folder: one file, or the shards its index names."""
    folder = Path(folder)
    index = folder / INDEX_NAME
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


def read_index(index):
    """The `weight_map` of `model.safetensors.index.json`: a non-empty object of tensor name -> file name."""
    try:
        text = index.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{index}: not a valid index file (not UTF-8: {e})") from e
    data = strict_json(text, index, "index file")
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict):
        raise CheckpointError(f"{index}: not a valid index file (needs a 'weight_map' object of tensor name -> shard file name)")
    if not weight_map:
        raise CheckpointError(f"{index}: 'weight_map' is empty; expected tensor name -> shard file name")
    for key, name in weight_map.items():
        if not isinstance(name, str):
            raise CheckpointError(f"{index}: 'weight_map' maps tensor {key!r} to {name!r}, expected a shard file name")
    return weight_map


def _check_shard_name(folder, index, name):
    """A shard is a plain `.safetensors` file name (no folders, no `..`) that exists in `folder`."""
    if "/" in name or "\\" in name or name in ("", ".", "..") or "\0" in name:
        raise CheckpointError(f"{index}: shard path {name!r} points outside the checkpoint folder {folder}; expected a plain file name")
    if not name.endswith(".safetensors"):
        raise CheckpointError(f"{index}: shard {name!r} is not a .safetensors file name")
    if not (folder / name).is_file():
        raise CheckpointError(f"{index}: shard {name!r} is listed but missing from {folder}")


def shard_files(folder, index):
    """Shard paths named by `model.safetensors.index.json`, each a file directly inside `folder`."""
    names = sorted(set(read_index(index).values()))
    for name in names:
        _check_shard_name(folder, index, name)
    return [folder / name for name in names]


def _check_index_matches(index, weight_map, owner):
    """Every tensor stored in the shards is in the index, in the shard the index names, and vice versa."""
    for key, name in weight_map.items():
        if key not in owner:
            raise CheckpointError(f"{index}: tensor {key!r} is listed in shard {name!r} but no shard stores it")
        if owner[key] != name:
            raise CheckpointError(f"{index}: tensor {key!r} is listed in shard {name!r} but stored in {owner[key]!r}")
    for key in sorted(owner.keys() - weight_map.keys()):
        raise CheckpointError(f"{index}: tensor {key!r} is stored in shard {owner[key]!r} but missing from 'weight_map'")


def read_tensors(folder):
    """{key: (storage array, safetensors dtype)} over all weight files of a checkpoint, each key in exactly one."""
    tensors, owner = {}, {}
    for path in weight_files(folder):
        for key, value in open_safetensors(path).items():
            if key in tensors:
                raise CheckpointError(f"{path}: tensor {key!r} is also stored in shard {owner[key]!r}; expected each tensor in one shard")
            tensors[key], owner[key] = value, path.name
    index = Path(folder) / INDEX_NAME
    if index.is_file():
        _check_index_matches(index, read_index(index), owner)
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
    not_float = [f"{k}: {tensors[k][1]}" for k in sorted(present & set(expected)) if tensors[k][1] not in FLOAT_STORAGE_NAMES]
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
