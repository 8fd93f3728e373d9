"""Reading the transformers goldens under golden/model/ (see golden/README.md for the format)."""

import json
from pathlib import Path

from safetensors.numpy import load_file

MODEL_GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "model"
INPUT_NAMES = ("input_ids", "attention_mask", "pixel_values", "pixel_attention_mask", "spatial_shapes")


def case_names():
    manifest = json.loads((MODEL_GOLDEN / "manifest.json").read_text())
    return [c["case"] for c in manifest["cases"]]


def load_case(name):
    """(meta, inputs, expected stages) of one golden case."""
    path = MODEL_GOLDEN / "cases" / f"{name}.safetensors"
    from safetensors import safe_open

    with safe_open(path, "np") as f:
        meta = json.loads(f.metadata()["meta"])
    tensors = load_file(path)
    inputs = {k[len("input.") :]: v for k, v in tensors.items() if k.startswith("input.")}
    expected = {k: v for k, v in tensors.items() if not k.startswith("input.")}
    return meta, inputs, expected


def checkpoint_dir(meta):
    return MODEL_GOLDEN / "checkpoints" / meta["checkpoint"]
