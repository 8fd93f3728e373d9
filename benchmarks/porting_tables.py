"""The measured tables of docs/conventions.md and docs/porting.md.

    python benchmarks/porting_tables.py conventions   # what each convention switch changes (a few minutes)
    python benchmarks/porting_tables.py emulation     # per-stage error of float16/bfloat16 emulation

Models: the demo checkpoints (siglip2_ref/demo, when trained) and random base-size weights
(`porting.random_model`, B/16: D 768, 12 layers; NaFlex 256 patches, FixRes 224 px; LayerNorm, embeddings,
probe and logit scalars re-drawn by role, `by_role`) with the demo's tokenizer (or the preprocessing goldens'
toy tokenizer). Inputs: demo-style shape images at the sizes below and
zero-shot prompts; all seeded, so a rerun prints the same numbers on the same library versions.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from siglip2_ref.porting.conventions import Conventions, preprocess  # noqa: E402
from siglip2_ref.demo import DEMO_FIXRES, DEMO_NAFLEX, shapes  # noqa: E402
from siglip2_ref.porting.emulate import emulated_model  # noqa: E402
from siglip2_ref.model.fast import FastEncoder  # noqa: E402
from siglip2_ref.preprocess.images import FixResImageProcessor, NaFlexImageProcessor  # noqa: E402
from siglip2_ref.model.model import load_model  # noqa: E402
from siglip2_ref.porting.compare import compare_stage
from siglip2_ref.porting.random_model import random_model  # noqa: E402
from siglip2_ref.preprocess.processor import Processor, load_processor  # noqa: E402
from siglip2_ref.porting.stages import run_stages  # noqa: E402
from siglip2_ref.preprocess.tokenizer import load_tokenizer  # noqa: E402

BASE = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
SIZES = [(640, 480), (1600, 400), (400, 1600), (300, 300), (2000, 90), (37, 50)]
LABELS = ["red circle", "blue star", "green square", "yellow triangle", "purple cross", "orange circle"]
EXTRA_TEXTS = ["ÉCOLE: a RED circle!", "Zürich — the blue star?", "a_green   square (left)"]
SWITCHES = [("image_resize", "torchvision"), ("image_resize", "big_vision"), ("text", "big_vision"),
            ("text", "open_clip"), ("position_resize", "bicubic")]  # fmt: skip


def images():
    out = []
    for k, size in enumerate(SIZES):
        colour, shape = LABELS[k % len(LABELS)].split()
        out.append(shapes.draw(colour, shape, shapes.POSITIONS[k % 5], np.random.default_rng(k), size=size))
    return out


def texts():
    return [f"This is a photo of {label}." for label in LABELS] + EXTRA_TEXTS


def tokenizer_folder():
    return DEMO_NAFLEX if (Path(DEMO_NAFLEX) / "tokenizer.model").is_file() else ROOT / "golden" / "preprocess" / "tokenizer"


def by_role(model, seed=0):
    """Re-draw the parameters whose plain N(0, 1/fan_in) draw makes a near-identity network (LayerNorm weights of
    ~0.04 shrink every residual branch): LayerNorm, embeddings, probe and logit scalars by role, as the golden
    generator perturbs them (golden/README.md). Matrices keep random_model's N(0, 1/fan_in)."""
    rng = np.random.default_rng(seed)

    def visit(node, path):
        for key, value in (node.items() if isinstance(node, dict) else enumerate(node)):
            name = f"{path}.{key}"
            if isinstance(value, (dict, list)):
                visit(value, name)
                continue
            noise = rng.standard_normal(value.shape)
            parent = path.rsplit(".", 1)[-1]
            norm = parent.startswith("layer_norm") or parent in ("layernorm", "post_layernorm", "final_layer_norm")
            if norm and key == "weight":
                node[key] = (1.0 + 0.1 * noise).astype(value.dtype)
            elif key == "bias" or str(key).endswith("_bias") and key != "logit_bias":
                node[key] = (0.1 * noise).astype(value.dtype)
            elif name.endswith("token_embedding.weight"):
                node[key] = (0.7 * noise).astype(value.dtype)
            elif name.endswith("position_embedding.weight"):
                node[key] = (0.5 * noise).astype(value.dtype)
            elif name.endswith(".probe"):
                node[key] = noise.astype(value.dtype)

    visit(model.params, "")
    model.params["logit_scale"] = np.full_like(model.params["logit_scale"], np.log(10.0))
    model.params["logit_bias"] = np.full_like(model.params["logit_bias"], -2.0)
    return model


WHICH = {"demo": True, "random": True}  # --models narrows this


def models(variant, dtype="float32"):
    """[(name, model, processor)]: the demo checkpoint when present, and random base-size weights."""
    out = []
    demo = DEMO_NAFLEX if variant == "naflex" else DEMO_FIXRES
    if WHICH["demo"] and (Path(demo) / "model.safetensors").is_file():
        out.append((f"demo {variant}", load_model(demo, dtype=dtype), load_processor(demo)))
    if not WHICH["random"]:
        return out
    tokenizer = load_tokenizer(tokenizer_folder(), variant=variant)
    image_processor = NaFlexImageProcessor() if variant == "naflex" else FixResImageProcessor(resample=2)
    model = by_role(random_model(variant, BASE, dtype=dtype))
    model.run_encoder = FastEncoder()  # same results as layers.encoder within float32 rounding, several times faster
    out.append((f"random B/16 {variant}", model, Processor(tokenizer, image_processor)))
    return out


def run(model, processor, conventions, imgs, txts):
    stages, inputs = preprocess(processor, imgs, txts, conventions)
    return stages | run_stages(model, **inputs, attentions=False, position_resize=conventions.position_resize)


def real_patch_values(stages):
    pixels, mask = stages["vision.pixel_values"], stages.get("vision.pixel_attention_mask")
    return pixels.reshape(len(pixels), -1) if mask is None else [p[m.astype(bool)] for p, m in zip(pixels, mask)]


def pixel_change(ref, new):
    """(max |change| in normalised units, % of pixel values changed by more than float32 formula rounding) over
    real patches; None if the grids differ."""
    a, b = real_patch_values(ref), real_patch_values(new)
    if any(x.shape != y.shape for x, y in zip(a, b)):
        return None
    diff = np.concatenate([np.abs(x - y).ravel() for x, y in zip(a, b)])
    return float(diff.max()), 100.0 * float(np.mean(diff > 1e-6))


def conventions_rows(name, model, processor, imgs, txts):
    ref = run(model, processor, Conventions(), imgs, txts)
    rows = []
    for switch, value in SWITCHES:
        if switch == "position_resize" and model.config.variant != "naflex":
            continue
        new = run(model, processor, Conventions(**{switch: value}), imgs, txts)
        if switch == "text":
            changed = int(np.sum(np.any(ref["text.input_ids"] != new["text.input_ids"], axis=1)))
            inputs = f"ids of {changed}/{len(txts)} texts"
            cos = np.sum(ref["text_embeds"].astype(np.float64) * new["text_embeds"], axis=1)
        else:
            change = pixel_change(ref, new)
            grids = "" if "vision.spatial_shapes" not in ref or np.array_equal(ref["vision.spatial_shapes"], new["vision.spatial_shapes"]) else " (grids differ)"
            inputs = "grid sizes differ" if change is None else f"max {change[0]:.3f}, {change[1]:.1f}% of values{grids}"
            cos = np.sum(ref["image_embeds"].astype(np.float64) * new["image_embeds"], axis=1)
        dlogit = float(np.max(np.abs(ref["logits_per_image"] - new["logits_per_image"])))
        top1 = float(np.mean(ref["logits_per_image"].argmax(1) == new["logits_per_image"].argmax(1)))
        rows.append(f"| {name} | {switch}={value} | {inputs} | {1 - float(np.min(cos)):.1e} | {dlogit:.2g} | {top1 * 100:.0f}% |")
    return rows


def conventions_table():
    imgs, txts = images(), texts()
    print("| model | switch | model input changed | 1 − min cosine of embeddings | max abs change of logits | same top-1 label |")
    print("|---|---|---|---:|---:|---:|")
    for variant in ("naflex", "fixres"):
        for name, model, processor in models(variant):
            print("\n".join(conventions_rows(name, model, processor, imgs, txts)), flush=True)


EMULATIONS = [("float32", None), ("float16 weights", "float16:weights"), ("float16 all", "float16"),
              ("bfloat16 weights", "bfloat16:weights"), ("bfloat16 activations", "bfloat16:activations"),
              ("bfloat16 scores", "bfloat16:scores"), ("bfloat16 all", "bfloat16")]  # fmt: skip


def emulation_table():
    imgs, txts = images()[:3], texts()[:4]
    for variant in ("naflex",):
        for (name, reference_model, processor), (_, model32, _) in zip(models(variant, "float64"), models(variant)):
            reference = run(reference_model, processor, Conventions(), imgs, txts)
            L = reference_model.config.vision.num_hidden_layers
            stages = ["vision.hidden_states.1", f"vision.hidden_states.{L}", "vision.pooler_output", "text.pooler_output",
                      "logits_per_image"]  # fmt: skip
            print(f"\n{name}: stage-relative error against float64 (max |a - b| / max |b|; padded rows excluded)\n")
            print("| run | " + " | ".join(f"`{s}`" for s in stages) + " | max abs logit error |")
            print("|---|" + "---:|" * (len(stages) + 1))
            for label, spec in EMULATIONS:
                got = run(emulated_model(model32, spec) if spec else model32, processor, Conventions(), imgs, txts)
                mask = reference.get("vision.pixel_attention_mask")
                errs = [compare_stage(s, got[s], reference[s], mask, ({}, {})).max_rel for s in stages]
                dlogit = float(np.max(np.abs(got["logits_per_image"] - reference["logits_per_image"])))
                print(f"| {label} | " + " | ".join(f"{e:.1e}" for e in errs) + f" | {dlogit:.2g} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=("conventions", "emulation"))
    parser.add_argument("--models", choices=("all", "demo", "random"), default="all", help="which models (default: all)")
    args = parser.parse_args(argv)
    WHICH.update(demo=args.models != "random", random=args.models != "demo")
    conventions_table() if args.table == "conventions" else emulation_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
