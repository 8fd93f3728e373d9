"""Adapter: a stage dump from transformers itself, in siglip2-ref's dump format, for `siglip2-ref compare`.

    python golden/transformers_dump.py --model CKPT cat.png --text "a photo of a cat" -o hf.safetensors
    python golden/transformers_dump.py --model CKPT --inputs case.safetensors --dtype float64 -o hf.safetensors
    siglip2-ref compare hf.safetensors ours.safetensors

Needs torch and transformers (pyproject's `oracle` extra). Where each stage comes from:

- preprocessing: transformers' own tokenizer (`AutoTokenizer`: Siglip2Tokenizer for NaFlex in 5.20+, which
  lowercases) and image processor (`Siglip*ImageProcessorPil` with --image-backend pil, the default, or the
  torchvision `Siglip*ImageProcessor`), called as the processors call them (padding="max_length", max_length=64,
  truncation=True; do_convert_rgb=True). `text.normalized` is the tokenizer's normalizer output with "▁" turned
  back into spaces; `image.rgb.k` is `load_image` (EXIF + RGB) of each file; `image.resized.k` is the processor
  run with do_rescale=False, do_normalize=False (the resized uint8 values), `image.normalized.k` the processor's
  output, both un-patchified for NaFlex.
- model stages: forward hooks, the golden generator's own capture (golden/make_golden.py: `Recorder`,
  `vision_stages`, `tower_outputs`), so names and meanings equal the golden files'.
- float32 runs use eager attention (it returns attention maps); float64 runs use SDPA, because eager attention
  computes its softmax in float32 even for a float64 model (with --attentions float64 stays eager and every model
  stage is declared float32-rounded). transformers resizes NaFlex positions in float32 even in float64: those
  stages are declared in the manifest (`precision.float32_rounded`) so `compare` applies the right tier.
"""

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch
import transformers

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import make_golden  # noqa: E402  (the golden generator's stage capture)

from siglip2_ref.porting.dump import FORMAT, FORMAT_VERSION, INPUT_NAMES, sha256_array, sha256_file, write_dump  # noqa: E402
from siglip2_ref.porting.stages import pipeline_order  # noqa: E402

MODEL_CLASSES = {
    "siglip": "SiglipModel", "siglip2": "Siglip2Model", "siglip_vision_model": "SiglipVisionModel",
    "siglip2_vision_model": "Siglip2VisionModel", "siglip_text_model": "SiglipTextModel",
    "siglip2_text_model": "Siglip2TextModel",
}  # fmt: skip
NAFLEX_VISION_ROUNDED = ["vision.position_embeddings", "vision.hidden_states.*", "vision.attentions.*",
                         "vision.last_hidden_state", "vision.head_attention", "vision.pooler_output", "image_embeds",
                         "logits_per_*", "probabilities", "loss", "logits"]  # fmt: skip


def load_hf_model(folder, dtype, attentions):
    """The transformers model of a checkpoint folder, with the attention back-end a dump needs."""
    config = json.loads((Path(folder) / "config.json").read_text())
    architectures = config.get("architectures") or []
    name = next((a for a in architectures if a.endswith("ForImageClassification")), None) or MODEL_CLASSES[config["model_type"]]
    attn = "eager" if dtype == "float32" or attentions else "sdpa"
    model = getattr(transformers, name).from_pretrained(folder, attn_implementation=attn).eval()
    return (model.double() if dtype == "float64" else model), attn, config["model_type"]


def hf_image_processor(folder, backend):
    config = json.loads((Path(folder) / "preprocessor_config.json").read_text())
    naflex = str(config.get("image_processor_type", "")).startswith("Siglip2")
    name = ("Siglip2ImageProcessor" if naflex else "SiglipImageProcessor") + ("Pil" if backend == "pil" else "")
    return getattr(transformers, name).from_pretrained(folder, do_convert_rgb=True), naflex


def unpatchify(patches, shape, p):  # [N, p*p*3] -> [3, h*p, w*p]
    gh, gw = (int(s) for s in shape)
    return patches[: gh * gw].reshape(gh, gw, p, p, 3).transpose(4, 0, 2, 1, 3).reshape(3, gh * p, gw * p)


def image_stages(folder, images, backend, max_num_patches):
    """Preprocessing stages of images, from transformers' image processor."""
    from transformers.image_utils import load_image

    processor, naflex = hf_image_processor(folder, backend)
    pil = [load_image(os.fspath(im)) if isinstance(im, (str, os.PathLike)) else im for im in images]
    kwargs = {"max_num_patches": max_num_patches} if naflex and max_num_patches else {}
    out = {k: np.asarray(v) for k, v in processor(pil, return_tensors="np", **kwargs).items()}
    plain = {k: np.asarray(v) for k, v in processor(pil, return_tensors="np", do_rescale=False, do_normalize=False, **kwargs).items()}
    stages = {f"vision.{k}": v for k, v in out.items()}
    for k, image in enumerate(pil):
        stages[f"image.rgb.{k}"] = np.ascontiguousarray(np.asarray(image.convert("RGB")).transpose(2, 0, 1))
        if naflex:
            shape, p = out["spatial_shapes"][k], processor.patch_size
            resized, normalized = unpatchify(plain["pixel_values"][k], shape, p), unpatchify(out["pixel_values"][k], shape, p)
        else:
            resized, normalized = plain["pixel_values"][k], out["pixel_values"][k]
        stages[f"image.resized.{k}"] = np.round(resized).astype(np.uint8)  # integral values in a float array
        stages[f"image.normalized.{k}"] = normalized.astype(np.float32)
    inputs = {k: v for k, v in out.items()}
    return stages, inputs


def text_stages(folder, texts):
    """Preprocessing stages of texts, from transformers' tokenizer."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    ids = np.asarray(tokenizer(list(texts), padding="max_length", max_length=64, truncation=True, return_tensors="np")["input_ids"])
    normalizer = tokenizer.backend_tokenizer.normalizer
    normalized = [normalizer.normalize_str(t).replace("\u2581", " ") if normalizer else t for t in texts]
    width = max([len(t) for t in normalized] + [1])
    codes = np.full((len(texts), width), -1, dtype=np.int32)
    for row, t in enumerate(normalized):
        codes[row, : len(t)] = [ord(c) for c in t]
    return {"text.normalized": codes, "text.input_ids": ids.astype(np.int64)}, {"input_ids": ids.astype(np.int64)}, type(tokenizer).__name__


def model_stages(model, inputs, dtype, call, attentions):
    """Every model stage, captured with the golden generator's hooks."""
    torch_dtype = torch.float64 if dtype == "float64" else torch.float32
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()}
    if "pixel_values" in tensors:
        tensors["pixel_values"] = tensors["pixel_values"].to(torch_dtype)
    vision, text = make_golden.towers(model)
    recorder = make_golden.Recorder(vision, text)
    try:
        with torch.no_grad():
            out = model(**tensors, **call, output_hidden_states=True, output_attentions=attentions)
    finally:
        recorder.remove()
    stages = {}
    with torch.no_grad():
        if vision is not None:
            stages |= make_golden.tower_outputs("vision", recorder.seen["vision"])
            stages |= make_golden.vision_stages(vision, recorder.seen, call)
        if text is not None:
            stages |= make_golden.tower_outputs("text", recorder.seen["text"])
            stages["text.embeddings"] = stages["text.hidden_states.0"]
            stages["text.pooled_token"] = stages["text.last_hidden_state"][:, -1]
    for key in ("image_embeds", "text_embeds", "logits_per_image", "logits_per_text", "loss", "logits"):
        value = getattr(out, key, None)
        if value is not None and not (key == "loss" and not call.get("return_loss")):
            stages[key] = value
    if getattr(out, "logits_per_image", None) is not None:
        stages["probabilities"] = torch.sigmoid(out.logits_per_image)  # the zero-shot pipeline's post-processing
    if not attentions:
        stages = {k: v for k, v in stages.items() if ".attentions." not in k}
    return {k: (v.detach().numpy() if torch.is_tensor(v) else np.asarray(v)) for k, v in stages.items()}


def dump_transformers(folder, images=None, texts=None, arrays=None, dtype="float32", attentions=False,
                      image_backend="pil", max_num_patches=None, interpolate_pos_encoding=False, return_loss=False,
                      command=None):  # fmt: skip
    """(stages, manifest) from transformers, in siglip2-ref's dump format."""
    folder = os.fspath(folder)
    model, attn, model_type = load_hf_model(folder, dtype, attentions)
    stages, inputs, tokenizer_class = {}, {}, None
    if arrays is not None:
        inputs = {k: np.asarray(v) for k, v in arrays.items() if k in INPUT_NAMES}
        stages = {f"{'text' if k in ('input_ids', 'attention_mask') else 'vision'}.{k}": v for k, v in inputs.items()}
        described = {"arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype), "sha256": sha256_array(v)} for k, v in inputs.items()}}
    else:
        if texts is not None:
            more, text_inputs, tokenizer_class = text_stages(folder, texts)
            stages, inputs = stages | more, inputs | text_inputs
        if images is not None:
            more, image_inputs = image_stages(folder, images, image_backend, max_num_patches)
            stages, inputs = stages | more, inputs | image_inputs
        described = {"texts": None if texts is None else list(texts), "max_num_patches": max_num_patches,
                     "images": None if images is None else [{"source": os.fspath(im)} for im in images]}  # fmt: skip
    call = {k: True for k, v in (("interpolate_pos_encoding", interpolate_pos_encoding), ("return_loss", return_loss)) if v}
    stages |= model_stages(model, inputs, dtype, call, attentions)
    rounded = []
    if dtype == "float64":
        rounded = ["*"] if attn == "eager" else (NAFLEX_VISION_ROUNDED if model_type.startswith("siglip2") else [])
    folder_path = Path(folder)
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "producer": f"transformers {transformers.__version__} via golden/transformers_dump.py",
        "model": {"path": folder, "config": json.loads((folder_path / "config.json").read_text()),
                  "sha256": {f.name: sha256_file(f) for f in sorted(folder_path.glob("*.safetensors"))}},
        "variant": "naflex" if model_type.startswith("siglip2") else "fixres",
        "precision": {"dtype": dtype, "emulation": None, "float32_rounded": rounded, "attn_implementation": attn},
        "inputs": described, "call": dict(call, attentions=attentions),
        "conventions": {"image_resize": image_backend, "text": "hf", "position_resize": "antialiased-bilinear"},
        "tokenizer_class": tokenizer_class,
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "command": command, "stages": pipeline_order(stages),
    }  # fmt: skip
    return stages, manifest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="*", metavar="IMAGE")
    parser.add_argument("--model", required=True, help="checkpoint folder")
    parser.add_argument("--text", action="append", default=None, help="a text (repeat for several)")
    parser.add_argument("--inputs", help="model input arrays (.safetensors; a golden case's input.* works)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--attentions", action="store_true", help="store every layer's attention maps")
    parser.add_argument("--image-backend", choices=("pil", "torchvision"), default="pil")
    parser.add_argument("--max-num-patches", type=int)
    parser.add_argument("--interpolate-pos-encoding", action="store_true")
    parser.add_argument("--return-loss", action="store_true")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    arrays = None
    if args.inputs:
        from safetensors.numpy import load_file

        arrays = {k.removeprefix("input."): v for k, v in load_file(args.inputs).items()}
    command = "python golden/transformers_dump.py " + " ".join(sys.argv[1:] if argv is None else argv)
    stages, manifest = dump_transformers(args.model, args.images or None, args.text, arrays, args.dtype, args.attentions,
                                         args.image_backend, args.max_num_patches, args.interpolate_pos_encoding,
                                         args.return_loss, command)  # fmt: skip
    write_dump(args.output, stages, manifest)
    print(f"wrote {args.output}: {len(stages)} stages from transformers {transformers.__version__} ({manifest['precision']['attn_implementation']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
