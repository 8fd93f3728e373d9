"""Read the preprocessing goldens written by make_golden_preprocess.py (NumPy only, no torch)."""

import hashlib
import json
import os

import numpy as np

FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "preprocess")
TOKENIZER_DIR = os.path.join(FOLDER, "tokenizer")


def load_meta():
    with open(os.path.join(FOLDER, "meta.json"), encoding="utf-8") as f:
        return json.load(f)


def load_text():
    with open(os.path.join(FOLDER, "text.json"), encoding="utf-8") as f:
        return json.load(f)


def load_image_arrays():
    """{case|config|backend: {field: array}} for goldens stored in full (decoded to the exact arrays)."""
    raw = np.load(os.path.join(FOLDER, "images.npz"))
    meta = load_meta()
    out = {}
    for name in raw.files:
        case, config, backend, field = name.split("|")
        out.setdefault(f"{case}|{config}|{backend}", {})[field] = raw[name]
    for entry in out.values():
        if "pixel_values_table" in entry:
            entry["pixel_values"] = entry.pop("pixel_values_table")[entry.pop("pixel_values_index")]
        elif "pixel_values_raw" in entry:
            entry["pixel_values"] = entry.pop("pixel_values_raw")
    for key in meta["torchvision_same_as_pil"]:  # stored once under the pil key
        out[key] = out[key.replace("|torchvision", "|pil")]
    return out


def digest(array):
    """sha256 of an array's bytes, as recorded in meta.json."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def load_float_meta():
    with open(os.path.join(FOLDER, "float_arrays.json"), encoding="utf-8") as f:
        return json.load(f)


def load_float_arrays():
    """{case|config: {field: array}} for the float-array goldens stored in full (torchvision back-end)."""
    raw = np.load(os.path.join(FOLDER, "float_arrays.npz"))
    out = {}
    for name in raw.files:
        case, config, field = name.split("|")
        out.setdefault(f"{case}|{config}", {})[field] = raw[name]
    return out
