"""Generate the model goldens: tiny random-weight checkpoints and transformers' outputs on them.

These files are the truth that siglip2_ref's model math is tested against. They need
torch and transformers (the versions pinned in pyproject's `oracle` extra); the package
and the default tests never import either.

    python golden/make_golden.py            # rewrites golden/model/ (checkpoints, cases, manifest)
    python golden/make_golden.py --check    # regenerates into a temp dir and compares with the committed files

Steps: build each tiny model in the official Hugging Face layout, perturb every parameter
(transformers' own init zeroes biases, sets LayerNorm to 1/0 and logit_scale to 0, which
would hide bugs), save it with `save_pretrained`, reload it with the attention back-end of
the case, run it on fixed random inputs and store inputs, every intermediate stage and the
outputs as one safetensors file per case. golden/README.md describes the format.
"""

import argparse
import hashlib
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import safetensors
import torch
import transformers
from safetensors.numpy import load_file, save_file
from transformers import (
    Siglip2Config,
    Siglip2ForImageClassification,
    Siglip2Model,
    Siglip2VisionConfig,
    Siglip2VisionModel,
    SiglipConfig,
    SiglipForImageClassification,
    SiglipModel,
    SiglipTextConfig,
    SiglipTextModel,
)

FORMAT = 1
SEED = 20250
TEXT_LEN = 64  # every official checkpoint pads text to 64 positions
EOS, PAD = 1, 0  # Gemma ids used by the official tokenizers
EXPECTED = {"transformers": "5.24.0", "torch": "2.13.0"}
HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------------------------------------
# Tiny configurations. Odd sizes on purpose: head_dim 12 and 9 (not powers of two),
# intermediate sizes 37/29 (not multiples of anything), grids that are not square.
# The two-tower logits need text projection_size == vision hidden_size, so with the default
# projection (= text hidden) both towers share hidden_size; `fixres_proj` is the g-opt layout
# (text hidden 36 projected to 48 = vision hidden).
# ---------------------------------------------------------------------------------------------
VOCAB = 300
TEXT_FIXRES = dict(vocab_size=VOCAB, hidden_size=48, num_attention_heads=3, intermediate_size=29,
                   num_hidden_layers=2, max_position_embeddings=TEXT_LEN)                  # head_dim 16
VISION_FIXRES = dict(hidden_size=48, num_attention_heads=4, intermediate_size=37, num_hidden_layers=3,
                     image_size=40, patch_size=8)                                           # head_dim 12, 5x5 grid
TEXT_PROJ = dict(vocab_size=VOCAB, hidden_size=36, num_attention_heads=3, intermediate_size=29,
                 num_hidden_layers=2, max_position_embeddings=TEXT_LEN, projection_size=48)  # head_dim 12
VISION_PROJ = dict(hidden_size=48, num_attention_heads=3, intermediate_size=37, num_hidden_layers=2,
                   image_size=40, patch_size=8)                                             # head_dim 16
VISION_FIXRES_CLS = dict(VISION_FIXRES, image_size=43)  # 43 // 8 = 5: the conv drops 3 pixel rows/cols
TEXT_NAFLEX = dict(vocab_size=VOCAB, hidden_size=36, num_attention_heads=4, intermediate_size=29,
                   num_hidden_layers=2, max_position_embeddings=TEXT_LEN)                   # head_dim 9
VISION_NAFLEX = dict(hidden_size=36, num_attention_heads=3, intermediate_size=37, num_hidden_layers=2,
                     patch_size=4, num_patches=16)                                          # head_dim 12, 4x4 grid
NUM_LABELS = 5


def build_models():
    """name -> (freshly initialised model, transformers class used to reload it)."""
    return {
        "fixres": SiglipModel(SiglipConfig(text_config=TEXT_FIXRES, vision_config=VISION_FIXRES)),
        "fixres_proj": SiglipModel(SiglipConfig(text_config=TEXT_PROJ, vision_config=VISION_PROJ)),
        "naflex": Siglip2Model(Siglip2Config(text_config=TEXT_NAFLEX, vision_config=VISION_NAFLEX)),
        "fixres_cls": SiglipForImageClassification(
            SiglipConfig(text_config=TEXT_FIXRES, vision_config=VISION_FIXRES_CLS, num_labels=NUM_LABELS)),
        "naflex_cls": Siglip2ForImageClassification(
            Siglip2Config(text_config=TEXT_NAFLEX, vision_config=VISION_NAFLEX, num_labels=NUM_LABELS)),
        "naflex_vision": Siglip2VisionModel(Siglip2VisionConfig(**VISION_NAFLEX)),
        "fixres_text": SiglipTextModel(SiglipTextConfig(**TEXT_FIXRES)),
    }


# ---------------------------------------------------------------------------------------------
# Parameter perturbation
# ---------------------------------------------------------------------------------------------
def perturb_(model, gen):
    """Overwrite every parameter with seeded noise of a size that keeps activations O(1)."""
    for mod_name, module in model.named_modules():
        for leaf, p in module.named_parameters(recurse=False):
            name = f"{mod_name}.{leaf}" if mod_name else leaf
            p.data.copy_(perturbed_value(name, module, p, gen))


def perturbed_value(name, module, p, gen):
    """The new value of one parameter, by role."""
    noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "logit_scale":
        return math.log(10.0) + 0.1 * noise  # exp() ~ 10: logits spread over a few units
    if leaf == "logit_bias":
        return -2.0 + 0.3 * noise
    if leaf == "probe":
        return noise
    if isinstance(module, torch.nn.LayerNorm):
        return 1.0 + 0.1 * noise if leaf == "weight" else 0.1 * noise
    if isinstance(module, torch.nn.Embedding):
        return (0.5 if "position" in name else 0.7) * noise
    if "bias" in leaf:
        return 0.1 * noise
    fan_in = p[0].numel()
    # q/k (and the MAP head's in_proj, whose first two thirds are q and k) a bit larger so the
    # attention is clearly non-uniform without saturating.
    gain = 1.3 if leaf == "in_proj_weight" or name.endswith(("q_proj.weight", "k_proj.weight")) else 1.0
    return gain * noise / math.sqrt(fan_in)


def check_nontrivial(model, name):
    """Every parameter tensor is non-constant (or, for scalars, away from transformers' init)."""
    for pname, p in model.named_parameters():
        v = p.detach().double()
        if v.numel() > 1:
            assert float(v.std()) > 1e-3, f"{name}: {pname} is (nearly) constant"
        else:
            assert abs(float(v)) > 1e-2, f"{name}: {pname} = {float(v)} looks unperturbed"


# ---------------------------------------------------------------------------------------------
# Inputs (NumPy, seeded; float32 values so that the float64 cases see the very same numbers)
# ---------------------------------------------------------------------------------------------
def text_ids(rng, lengths):
    """[T, 64] int64: random tokens, EOS as the last real token, PAD after it (right padding)."""
    ids = np.full((len(lengths), TEXT_LEN), PAD, dtype=np.int64)
    for row, n in enumerate(lengths):
        ids[row, : n - 1] = rng.integers(2, VOCAB, size=n - 1)
        ids[row, n - 1] = EOS
    return ids


def text_mask(lengths):
    """[T, 64] int64 attention mask: 1 up to and including EOS."""
    return (np.arange(TEXT_LEN)[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)


def fixres_pixels(rng, n, height, width):
    """[I, 3, H, W] float32 in [-1, 1]."""
    return rng.uniform(-1.0, 1.0, size=(n, 3, height, width)).astype(np.float32)


def naflex_patches(rng, shapes, max_num_patches, patch_size):
    """pixel_values [I, M, 3*p*p] with GARBAGE in the padded rows, pixel_attention_mask, spatial_shapes."""
    dim = 3 * patch_size * patch_size
    pixels = rng.normal(0.0, 3.0, size=(len(shapes), max_num_patches, dim)).astype(np.float32)  # garbage
    mask = np.zeros((len(shapes), max_num_patches), dtype=np.int32)
    for row, (h, w) in enumerate(shapes):
        n = h * w
        assert n <= max_num_patches
        pixels[row, :n] = rng.uniform(-1.0, 1.0, size=(n, dim))
        mask[row, :n] = 1
    return {"pixel_values": pixels, "pixel_attention_mask": mask,
            "spatial_shapes": np.asarray(shapes, dtype=np.int64)}


TEXTS4 = [6, 17, 1, 64]  # lengths incl. EOS: short, medium, EOS only, full (EOS at position 63)
TEXTS3 = [9, 33, 64]
TEXTS_MASK = [6, 17, 64]
NAFLEX_MAX = 24
NAFLEX_SHAPES = [(4, 4), (2, 3), (5, 4), (6, 1), (1, 6), (3, 8), (1, 1)]
NAFLEX_SQUARE = [(4, 4), (6, 1), (2, 5)]
NAFLEX_FULL = [(4, 6), (24, 1)]  # both use all 24 patches: no padding anywhere in the batch
NAFLEX_CLS_SHAPES = [(4, 4), (2, 3), (6, 1), (3, 5)]


def make_inputs():
    """input-set name -> dict of NumPy arrays with transformers' argument names."""
    rng = np.random.default_rng(SEED)
    p = VISION_NAFLEX["patch_size"]
    s = {}
    s["fixres"] = {"input_ids": text_ids(rng, TEXTS4), "pixel_values": fixres_pixels(rng, 3, 40, 40)}
    s["fixres_square"] = {"input_ids": text_ids(rng, TEXTS3), "pixel_values": fixres_pixels(rng, 3, 40, 40)}
    s["fixres_interp"] = {"input_ids": text_ids(rng, TEXTS4), "pixel_values": fixres_pixels(rng, 2, 48, 32)}
    s["fixres_interp_crop"] = {"input_ids": text_ids(rng, TEXTS3[:2]), "pixel_values": fixres_pixels(rng, 2, 44, 37)}
    s["fixres_textmask"] = {"input_ids": text_ids(rng, TEXTS_MASK), "attention_mask": text_mask(TEXTS_MASK),
                            "pixel_values": fixres_pixels(rng, 1, 40, 40)}
    s["fixres_cls"] = {"pixel_values": fixres_pixels(rng, 2, 43, 43)}
    s["fixres_text"] = {"input_ids": s["fixres"]["input_ids"]}
    s["naflex"] = {"input_ids": text_ids(rng, TEXTS4), **naflex_patches(rng, NAFLEX_SHAPES, NAFLEX_MAX, p)}
    s["naflex_square"] = {"input_ids": text_ids(rng, TEXTS3), **naflex_patches(rng, NAFLEX_SQUARE, NAFLEX_MAX, p)}
    s["naflex_full"] = {"input_ids": text_ids(rng, TEXTS4[:2]), **naflex_patches(rng, NAFLEX_FULL, NAFLEX_MAX, p)}
    s["naflex_cls"] = naflex_patches(rng, NAFLEX_CLS_SHAPES, NAFLEX_MAX, p)
    s["naflex_vision"] = naflex_patches(rng, NAFLEX_CLS_SHAPES[::-1], NAFLEX_MAX, p)
    return s


# Which stages a case stores per tower ("all": hidden states, attention maps and the extra
# vision stages; "hidden": the same without the per-layer attention maps; "pooled": only
# pooler_output). Text stages are [T, 64, D] and dominate the size, so each case keeps the
# stages of what it is about.
# Float64 cases run SDPA: transformers' eager attention computes the softmax in float32 even for a
# float64 model (`softmax(..., dtype=torch.float32)`), which limits eager float64 to ~1e-7; SDPA (and the
# MAP head's nn.MultiheadAttention) stay in float64. SDPA returns no attention maps, so float64 cases
# store none.
def case(name, checkpoint, inputs, dtype, description, attn="eager", call=None, vision="all", text="all"):
    if dtype == "float64":
        attn = "sdpa"
        vision = "hidden" if vision == "all" else vision
        text = "hidden" if text == "all" else text
    return {"case": name, "checkpoint": checkpoint, "inputs": inputs, "dtype": dtype, "attn": attn,
            "call": call or {}, "stages": {"vision": vision, "text": text}, "description": description}


LOSS = {"return_loss": True}
INTERP = {"interpolate_pos_encoding": True}
CASES = [
    case("fixres_f32", "fixres", "fixres", "float32", "FixRes two towers: 3 native 40x40 images, 4 right-padded texts (one EOS-only, one filling all 64)", text="hidden"),
    case("fixres_f64", "fixres", "fixres", "float64", "fixres_f32 in float64 (model.double(), float64 pixels)", text="pooled"),
    case("fixres_loss_f32", "fixres", "fixres_square", "float32", "square batch (3 images, 3 texts) with the sigmoid loss", call=LOSS, vision="pooled", text="pooled"),
    case("fixres_loss_f64", "fixres", "fixres_square", "float64", "fixres_loss_f32 in float64", call=LOSS, vision="pooled", text="pooled"),
    case("fixres_interp_f32", "fixres", "fixres_interp", "float32", "2 images 48x32 (H != W, 6x4 grid), bicubic position interpolation from the 5x5 table", call=INTERP, text="pooled"),
    case("fixres_interp_f64", "fixres", "fixres_interp", "float64", "fixres_interp_f32 in float64", call=INTERP, text="pooled"),
    case("fixres_interp_crop_f32", "fixres", "fixres_interp_crop", "float32", "2 images 44x37: 5x4 grid, the conv drops the last 4/5 pixel rows/cols; interpolated positions", call=INTERP, text="pooled"),
    case("fixres_proj_f32", "fixres_proj", "fixres", "float32", "g-opt layout: text hidden 36, text head projects to 48 = vision hidden", vision="pooled", text="pooled"),
    case("fixres_textmask_f32", "fixres", "fixres_textmask", "float32", "explicit text attention_mask (1 up to EOS) for 3 texts and 1 image; changes the text results; the one case with text attention maps", vision="pooled"),
    case("fixres_cls_f32", "fixres_cls", "fixres_cls", "float32", "SiglipForImageClassification, 2 images, image_size 43 with patch 8 (3 pixel rows/cols unused); plain mean over tokens", vision="hidden"),
    case("fixres_cls_f64", "fixres_cls", "fixres_cls", "float64", "fixres_cls_f32 in float64"),
    case("fixres_text_f32", "fixres_text", "fixres_text", "float32", "SiglipTextModel saved alone (state-dict keys without the text_model. prefix)", text="hidden"),
    case("fixres_sdpa_f32", "fixres", "fixres", "float32", "fixres_f32 with the SDPA back-end (transformers returns no attention maps)", attn="sdpa", vision="hidden", text="pooled"),
    case("naflex_f32", "naflex", "naflex", "float32", "NaFlex two towers, max_num_patches 24, shapes (4,4) (2,3) (5,4) (6,1) (1,6) (3,8) (1,1); garbage in padded patch rows", text="hidden"),
    case("naflex_f64", "naflex", "naflex", "float64", "naflex_f32 in float64", text="pooled"),
    case("naflex_loss_f32", "naflex", "naflex_square", "float32", "square batch (3 images, 3 texts) with the sigmoid loss", call=LOSS, vision="pooled", text="pooled"),
    case("naflex_loss_f64", "naflex", "naflex_square", "float64", "naflex_loss_f32 in float64", call=LOSS, vision="pooled", text="pooled"),
    case("naflex_full_f32", "naflex", "naflex_full", "float32", "shapes (4,6) and (24,1) use all 24 patches: no padding anywhere (transformers then drops the mask)", text="pooled"),
    case("naflex_cls_f32", "naflex_cls", "naflex_cls", "float32", "Siglip2ForImageClassification with padding: masked mean over tokens", vision="hidden"),
    case("naflex_cls_f64", "naflex_cls", "naflex_cls", "float64", "naflex_cls_f32 in float64"),
    case("naflex_vision_f32", "naflex_vision", "naflex_vision", "float32", "Siglip2VisionModel saved alone (state-dict keys without the vision_model. prefix); shapes (3,5) (6,1) (2,3) (4,4)"),
    case("naflex_sdpa_f32", "naflex", "naflex", "float32", "naflex_f32 with the SDPA back-end (transformers returns no attention maps)", attn="sdpa", vision="hidden", text="pooled"),
]

TWINS = [("fixres_f64", "fixres_f32"), ("fixres_loss_f64", "fixres_loss_f32"), ("fixres_interp_f64", "fixres_interp_f32"),
         ("naflex_f64", "naflex_f32"), ("naflex_loss_f64", "naflex_loss_f32"), ("fixres_cls_f64", "fixres_cls_f32"),
         ("naflex_cls_f64", "naflex_cls_f32")]
SDPA_PAIRS = [("fixres_sdpa_f32", "fixres_f32"), ("naflex_sdpa_f32", "naflex_f32")]


# ---------------------------------------------------------------------------------------------
# Running a case and capturing every stage
# ---------------------------------------------------------------------------------------------
def towers(model):
    """(vision tower or None, text tower or None) of any of the model classes."""
    if isinstance(model, (SiglipTextModel,)):
        return None, model
    if isinstance(model, (Siglip2VisionModel,)):
        return model, None
    return getattr(model, "vision_model", None), getattr(model, "text_model", None)


class Recorder:
    """Forward hooks that keep the inputs and outputs of the modules whose stages we store."""

    def __init__(self, vision, text):
        self.seen, self.handles = {}, []
        if vision is not None:
            emb = vision.embeddings
            self._hook("vision", vision)
            self._hook("vision.embeddings", emb, with_inputs=True)
            self._hook("vision.patch_embedding", emb.patch_embedding)
            if getattr(vision, "use_head", False):
                self._hook("vision.head", vision.head)
                self._hook("vision.head.attention", vision.head.attention, with_inputs=True)
        if text is not None:
            self._hook("text", text)

    def _hook(self, key, module, with_inputs=False):
        def hook(mod, args, kwargs, output):
            self.seen[key] = (args, kwargs, output) if with_inputs else output
        self.handles.append(module.register_forward_hook(hook, with_kwargs=True))

    def remove(self):
        for h in self.handles:
            h.remove()


def vision_stages(vision, seen, call):
    """patch_embeds, position_embeddings, head_attention; each checked against what the model used."""
    emb = vision.embeddings
    (pixel_values, *rest), kwargs, embeddings = seen["vision.embeddings"]
    patch = seen["vision.patch_embedding"]
    if patch.dim() == 4:  # FixRes conv output [I, D, gh, gw]
        patch = patch.flatten(2).transpose(1, 2)  # [I, N, D]
        _, _, height, width = pixel_values.shape
        if call.get("interpolate_pos_encoding"):
            pos = emb.interpolate_pos_encoding(patch, height, width)  # [1, N, D]
        else:
            pos = emb.position_embedding(emb.position_ids)  # [1, N, D]
        pos = pos.expand_as(patch)
    else:  # NaFlex linear output [I, N, D]
        spatial_shapes = kwargs.get("spatial_shapes", rest[0] if rest else None)
        grid = emb.position_embedding.weight.reshape(emb.position_embedding_size, emb.position_embedding_size, -1)
        pos = emb.resize_positional_embeddings(grid, spatial_shapes, max_length=pixel_values.shape[1])
    assert torch.equal(patch + pos, embeddings), "patch + position embeddings != embeddings output"
    out = {"vision.patch_embeds": patch, "vision.position_embeddings": pos}
    if "vision.head.attention" in seen:
        out["vision.head_attention"] = head_attention(vision.head, seen)
    return out


def head_attention(head, seen):
    """MAP head attention weights [I, heads, 1, N], recomputed from the inputs the head used."""
    args, kwargs, (attn_out, _) = seen["vision.head.attention"]
    kwargs = dict(kwargs, need_weights=True, average_attn_weights=False)
    again, weights = head.attention(*args, **kwargs)
    assert torch.equal(again, attn_out), "re-running the head attention gave a different output"
    pooled = (again + head.mlp(head.layernorm(again)))[:, 0]
    assert torch.equal(pooled, seen["vision.head"]), "head recomputation != head output"
    return weights  # [I, H, 1, N]


def tower_outputs(prefix, out):
    """last_hidden_state, pooler_output, hidden_states.i, attentions.i of one tower output."""
    arrays = {f"{prefix}.last_hidden_state": out.last_hidden_state}
    if out.pooler_output is not None:
        arrays[f"{prefix}.pooler_output"] = out.pooler_output
    for i, h in enumerate(out.hidden_states or ()):
        arrays[f"{prefix}.hidden_states.{i}"] = h
    for i, a in enumerate(out.attentions or ()):
        arrays[f"{prefix}.attentions.{i}"] = a
    return arrays


def keep_stages(arrays, stages):
    """Drop the tower stages a case does not store (see `case`)."""
    kept = {}
    for key, value in arrays.items():
        tower = key.split(".")[0]
        level = stages.get(tower, "all")
        if level == "hidden" and ".attentions." in key:
            continue
        if level == "pooled" and key != f"{tower}.pooler_output":
            continue
        kept[key] = value
    return kept


def run_case(model, inputs, call, dtype):
    """All stored arrays of one case: inputs, tower stages, joint outputs."""
    torch_dtype = torch.float64 if dtype == "float64" else torch.float32
    tensors = {}
    for k, v in inputs.items():
        t = torch.from_numpy(v)
        tensors[k] = t.to(torch_dtype) if k == "pixel_values" else t
    vision, text = towers(model)
    rec = Recorder(vision, text)
    try:
        with torch.no_grad():
            out = model(**tensors, **call, output_hidden_states=True, output_attentions=True)
    finally:
        rec.remove()
    arrays = {f"input.{k}": v.numpy() for k, v in tensors.items()}
    with torch.no_grad():
        if vision is not None:
            arrays.update(tower_outputs("vision", rec.seen["vision"]))
            arrays.update(vision_stages(vision, rec.seen, call))
        if text is not None:
            arrays.update(tower_outputs("text", rec.seen["text"]))
    for key in ("image_embeds", "text_embeds", "logits_per_image", "logits_per_text", "loss", "logits"):
        value = getattr(out, key, None)
        if value is not None and not (key == "loss" and not call.get("return_loss")):
            arrays[key] = value
    return {k: (v.detach().numpy() if torch.is_tensor(v) else v) for k, v in arrays.items()}


# ---------------------------------------------------------------------------------------------
# Sanity checks on the generated numbers
# ---------------------------------------------------------------------------------------------
def stage_rel(a, b):
    """max|a - b| / max|b| in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) or 1.0))


def degeneracy_report(case, arrays):
    """Asserts attention is neither uniform nor saturated and activations are O(1); returns a summary."""
    notes = []
    for key, a in arrays.items():
        if ".attentions." in key or key == "vision.head_attention":
            valid = a.max(-1) > 0  # rows of images with no real keys do not exist; keep all query rows
            row_max = a.max(-1)[valid]
            n_keys = (a > 0).sum(-1)[valid]
            uniform = np.mean(np.abs(row_max - 1.0 / np.maximum(n_keys, 1)) < 1e-3)
            assert uniform < 0.5, f"{case}: {key} is nearly uniform in {uniform:.0%} of rows"
            assert np.mean(row_max > 0.999) < 0.5, f"{case}: {key} is saturated"
            notes.append(float(np.mean(row_max)))
        elif ".hidden_states." in key or key.endswith(("last_hidden_state", "pooler_output")):
            s = float(np.std(a))
            assert 0.05 < s < 50, f"{case}: {key} has std {s}"
    for key in ("logits_per_image", "logits"):
        if key in arrays:
            assert np.all(np.abs(arrays[key]) < 30), f"{case}: {key} saturates the sigmoid"
    return f"mean row-max attention {np.mean(notes):.2f}" if notes else ""


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------
def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def versions():
    return {"transformers": transformers.__version__, "torch": torch.__version__.split("+")[0],
            "numpy": np.__version__, "safetensors": safetensors.__version__}


def save_checkpoints(root):
    """Build, perturb, save; returns name -> manifest entry."""
    entries = {}
    for index, (name, model) in enumerate(build_models().items()):
        gen = torch.Generator().manual_seed(SEED + index)
        perturb_(model, gen)
        check_nontrivial(model, name)
        folder = root / "checkpoints" / name
        model.save_pretrained(folder)
        assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
        keys = sorted(load_file(folder / "model.safetensors"))
        config = json.loads((folder / "config.json").read_text())
        entries[name] = {"class": type(model).__name__, "model_type": config["model_type"],
                         "seed": SEED + index, "num_tensors": len(keys),
                         "key_prefixes": sorted({k.split(".")[0] for k in keys}),
                         "files": {f: sha256(folder / f) for f in ("config.json", "model.safetensors")}}
    return entries


def load_checkpoint(root, name, cls_name, attn, dtype):
    cls = getattr(transformers, cls_name)
    model = cls.from_pretrained(root / "checkpoints" / name, attn_implementation=attn).eval()
    return model.double() if dtype == "float64" else model


def generate(root):
    """Write checkpoints, cases and the manifest under `root`; return the per-case arrays."""
    torch.manual_seed(SEED)
    checkpoints = save_checkpoints(root)
    inputs = make_inputs()
    results, manifest_cases = {}, []
    (root / "cases").mkdir(parents=True, exist_ok=True)
    for spec in CASES:
        case, ckpt, dtype, attn, call = spec["case"], spec["checkpoint"], spec["dtype"], spec["attn"], spec["call"]
        model = load_checkpoint(root, ckpt, checkpoints[ckpt]["class"], attn, dtype)
        arrays = run_case(model, inputs[spec["inputs"]], call, dtype)
        summary = degeneracy_report(case, arrays) if attn == "eager" else ""
        arrays = keep_stages(arrays, spec["stages"])
        description = spec["description"]
        meta = {"format": FORMAT, "checkpoint": ckpt, "dtype": dtype,
                "call": dict(call, output_hidden_states=True, output_attentions=True),
                **versions(), "seed": SEED, "attn_implementation": attn, "stages": spec["stages"],
                "description": description}
        path = root / "cases" / f"{case}.safetensors"
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path),
                  metadata={"meta": json.dumps(meta, sort_keys=True)})
        results[case] = arrays
        manifest_cases.append({"case": case, "file": f"cases/{case}.safetensors", "checkpoint": ckpt,
                               "dtype": dtype, "attn_implementation": attn, "call": meta["call"],
                               "stages": spec["stages"],
                               "description": description, "num_tensors": len(arrays),
                               "bytes": path.stat().st_size, "sha256": sha256(path)})
        print(f"  {case:24s} {len(arrays):3d} tensors {path.stat().st_size / 1024:7.1f} KiB  {summary}")
    manifest = {"format": FORMAT, **versions(), "seed": SEED, "torch_num_threads": torch.get_num_threads(),
                "generator": "golden/make_golden.py", "checkpoints": checkpoints, "cases": manifest_cases}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return results


def cross_checks(results):
    """float64 vs float32 twins (sanity) and SDPA vs eager (documentation)."""
    worst = 0.0
    for f64, f32 in TWINS:
        a, b = results[f64], results[f32]
        errs = {k: stage_rel(b[k], a[k]) for k in a if not k.startswith("input.")}
        key = max(errs, key=errs.get)
        worst = max(worst, errs[key])
        print(f"  {f32:18s} vs {f64:18s} worst stage-relative {errs[key]:.2e} ({key})")
        assert errs[key] < 1e-4, f"{f32} vs {f64}: {key} differs by {errs[key]:.2e}"
    for sdpa, eager in SDPA_PAIRS:
        a, b = results[sdpa], results[eager]
        common = [k for k in a if not k.startswith("input.") and k in b]
        errs = {k: stage_rel(a[k], b[k]) for k in common}
        key = max(errs, key=errs.get)
        print(f"  {sdpa:18s} vs {eager:18s} worst stage-relative {errs[key]:.2e} ({key}) over {len(common)} stages")
    return worst


def compare_dirs(new, old):
    """For --check: same files, same arrays (bit-for-bit)."""
    bad = []
    for name in build_models():
        for f in ("config.json", "model.safetensors"):
            if sha256(new / "checkpoints" / name / f) != sha256(old / "checkpoints" / name / f):
                bad.append(f"checkpoint {name}: {f} differs")
    for case in (spec["case"] for spec in CASES):
        a = load_file(new / "cases" / f"{case}.safetensors")
        b = load_file(old / "cases" / f"{case}.safetensors")
        if a.keys() != b.keys():
            bad.append(f"{case}: tensor names differ")
            continue
        for k in a:
            if not np.array_equal(a[k], b[k]):
                bad.append(f"{case}: {k} differs, stage-relative {stage_rel(a[k], b[k]):.2e}")
    return bad


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "model", help="output folder (default golden/model)")
    parser.add_argument("--check", action="store_true", help="regenerate into a temp dir and compare with --out")
    args = parser.parse_args(argv)
    got = versions()
    for lib, want in EXPECTED.items():
        if got[lib] != want:
            print(f"warning: {lib} {got[lib]} != {want}; review every diff before committing", file=sys.stderr)
    torch.set_num_threads(1)  # summation order independent of the machine's core count
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            results = generate(Path(tmp))
            cross_checks(results)
            bad = compare_dirs(Path(tmp), args.out)
        print("\n".join(bad) if bad else "check: regenerated cases equal the committed ones")
        return 1 if bad else 0
    if args.out.exists():
        shutil.rmtree(args.out)
    print(f"writing {args.out} with transformers {got['transformers']}, torch {got['torch']}")
    results = generate(args.out)
    cross_checks(results)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"total {total / 2**20:.2f} MiB in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
