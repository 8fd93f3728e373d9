"""Stage dumps: every named stage of one run in one safetensors file, with a JSON manifest.

A dump is one safetensors file: one tensor per stage (names in docs/stages.md) and, in the metadata key
"manifest", a JSON object (format, model config, checkpoint hashes, inputs, conventions, precision, library
versions, the command that reproduces it). `golden/transformers_dump.py` writes the same format from a
transformers model, so its output compares directly. docs/porting.md is the guide; `siglip2-ref dump` the command.
"""

import hashlib
import json
import os
import platform
from pathlib import Path

import numpy as np

from .. import __version__
from ..backend import to_numpy
from ..checkpoint.jsonfile import read_json_object
from .conventions import DEFAULT, parse_conventions, preprocess
from .stages import pipeline_order, run_stages
from ..errors import ConfigError, DumpError

FORMAT, FORMAT_VERSION = "siglip2-ref-dump", 1
INPUT_NAMES = ("input_ids", "attention_mask", "pixel_values", "pixel_attention_mask", "spatial_shapes")


def sha256_file(path, chunk=1 << 24):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_array(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def checkpoint_facts(model):
    """config.json and the sha256 of the checkpoint's weight files (none for in-memory models)."""
    if model.path is None:
        return {"path": None, "config": None, "sha256": {}}
    folder = Path(model.path)
    config = read_json_object(folder / "config.json", ConfigError) if (folder / "config.json").is_file() else None
    files = sorted(folder.glob("*.safetensors"))
    return {"path": str(folder), "config": config, "sha256": {f.name: sha256_file(f) for f in files}}


def library_versions():
    import PIL
    import safetensors
    import sentencepiece

    versions = {"siglip2_ref": __version__, "python": platform.python_version(), "numpy": np.__version__,
                "pillow": PIL.__version__, "sentencepiece": sentencepiece.__version__, "safetensors": safetensors.__version__}  # fmt: skip
    try:
        import ftfy

        versions["ftfy"] = ftfy.__version__
    except ImportError:
        pass
    return versions


def describe_image(image, rgb):
    source = os.fspath(image) if isinstance(image, (str, os.PathLike)) else type(image).__name__
    return {"source": source, "height": int(rgb.shape[1]), "width": int(rgb.shape[2]), "rgb_sha256": sha256_array(rgb)}


def make_dump(model, processor=None, images=None, texts=None, arrays=None, conventions=DEFAULT, attentions=False,
              max_num_patches=None, interpolate_pos_encoding=False, return_loss=False, command=None):  # fmt: skip
    """(stages, manifest) for one run: preprocessing stages from raw `images`/`texts` (or given model `arrays`),
    then every model stage. `arrays` are model inputs by transformers' names (a golden case's `input.*`)."""
    conventions = parse_conventions(conventions)
    if arrays is not None and (images is not None or texts is not None):
        raise ValueError("give raw images/texts or model input arrays, not both")
    if arrays is None and images is None and texts is None:
        raise ValueError("nothing to run: give images, texts, or model input arrays")
    if arrays is not None:
        inputs = {k: np.asarray(v) for k, v in arrays.items() if k in INPUT_NAMES}
        stages = {f"{'text' if k in ('input_ids', 'attention_mask') else 'vision'}.{k}": v for k, v in inputs.items()}
        described = {"arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype), "sha256": sha256_array(v)} for k, v in inputs.items()}}
    else:
        images = None if images is None else list(images)
        stages, inputs = preprocess(processor, images, texts, conventions, max_num_patches)
        described = {"texts": None if texts is None else list(texts), "max_num_patches": max_num_patches,
                     "images": None if images is None else [describe_image(im, stages[f"image.rgb.{k}"]) for k, im in enumerate(images)]}  # fmt: skip
    model_stages = run_stages(model, **inputs, interpolate_pos_encoding=interpolate_pos_encoding, return_loss=return_loss,
                              attentions=attentions, position_resize=conventions.position_resize)  # fmt: skip
    stages |= {k: np.asarray(to_numpy(v)) for k, v in model_stages.items()}
    call = {"interpolate_pos_encoding": interpolate_pos_encoding, "return_loss": return_loss, "attentions": attentions}
    emulation = model.emulation
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "producer": f"siglip2-ref {__version__}",
        "model": checkpoint_facts(model), "variant": model.config.variant,
        "precision": {"dtype": model.dtype, "emulation": emulation.describe() if emulation else None, "float32_rounded": []},
        "inputs": described, "call": call, "conventions": conventions.as_dict(), "versions": library_versions(),
        "command": command, "stages": pipeline_order(stages),
    }  # fmt: skip
    if getattr(model, "quantization", None):  # int8 / int4 weights (docs/quantization.md); float dumps stay as they were
        manifest["precision"]["quantization"] = model.quantization
    return stages, manifest


def write_dump(path, stages, manifest):
    """Write stages (one tensor each) and the manifest (metadata "manifest") to a safetensors file."""
    from safetensors.numpy import save_file

    tensors = {name: np.ascontiguousarray(value) for name, value in stages.items()}
    manifest = dict(manifest, stages=pipeline_order(tensors))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, os.fspath(path), metadata={"manifest": json.dumps(manifest, ensure_ascii=False)})


def read_dump(path):
    """(stages, manifest) of a dump file, with a specific error for anything else."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DumpError(f"{path}: no such dump file")
    try:
        with safe_open(path, "np") as f:
            metadata = f.metadata() or {}
        stages = load_file(path)
    except Exception as e:  # safetensors raises its own error types for non-safetensors files
        raise DumpError(f"{path}: not a safetensors file ({type(e).__name__}: {e})") from e
    if "manifest" not in metadata:
        raise DumpError(f"{path}: a safetensors file without a dump manifest (metadata key 'manifest'); make dumps with "
                        "`siglip2-ref dump` or golden/transformers_dump.py, or add the manifest as docs/porting.md shows")  # fmt: skip
    try:
        manifest = json.loads(metadata["manifest"])
    except json.JSONDecodeError as e:
        raise DumpError(f"{path}: the manifest is not valid JSON ({e})") from e
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise DumpError(f"{path}: manifest format {manifest.get('format')!r} version {manifest.get('format_version')!r}; "
                        f"this siglip2-ref reads {FORMAT!r} version {FORMAT_VERSION}")  # fmt: skip
    return stages, manifest
