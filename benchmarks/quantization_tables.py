"""The measured drift tables of docs/quantization.md: int8 / int4 against float32, stage by stage.

    python benchmarks/quantization_tables.py drift      # per-stage error, random B/16 and the demo models (minutes)
    python benchmarks/quantization_tables.py accuracy   # demo models' zero-shot top-1 and agreement with float32

Models and inputs are those of benchmarks/porting_tables.py (random base-size NaFlex weights re-drawn by role,
`by_role`; the demo checkpoints; its drawn shape images and prompts), here with a 32k vocabulary for the random
text tower (the vocabulary size changes no drift, only memory). Errors are `compare`'s stage-relative
max|q - f| / max|f|, padded NaFlex rows excluded; pooled embeddings also as cosine similarity.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

from porting_tables import BASE, by_role, images, texts, tokenizer_folder  # noqa: E402

from siglip2_ref.demo import DEMO_FIXRES, DEMO_NAFLEX, shapes  # noqa: E402
from siglip2_ref.model.model import load_model, quantized_model  # noqa: E402
from siglip2_ref.porting.compare import compare_stage  # noqa: E402
from siglip2_ref.porting.conventions import preprocess  # noqa: E402
from siglip2_ref.porting.random_model import random_model  # noqa: E402
from siglip2_ref.porting.stages import run_stages  # noqa: E402
from siglip2_ref.preprocess.images import NaFlexImageProcessor  # noqa: E402
from siglip2_ref.preprocess.processor import Processor, load_processor  # noqa: E402
from siglip2_ref.preprocess.tokenizer import load_tokenizer  # noqa: E402
from siglip2_ref.tasks.pipelines import embed_images, label_embeddings, match_logits  # noqa: E402

KINDS = [("int8", None), ("int4", 32), ("int4", 64), ("int4", 128)]  # (quantize, int4 group size)
MANIFEST = {"precision": {"dtype": "float32"}}


def kind_name(quantize, group):
    return quantize if group is None else f"{quantize} G={group}"


def drift_models():
    """[(name, float32 model, processor)]: random B/16 NaFlex by role, then the two demo checkpoints."""
    tokenizer = load_tokenizer(tokenizer_folder(), variant="naflex")
    random = by_role(random_model("naflex", BASE, vocab=32000))
    random.run_encoder = load_model(DEMO_NAFLEX).run_encoder  # the fast encoder, as load_model gives
    out = [("random B/16 NaFlex", random, Processor(tokenizer, NaFlexImageProcessor()))]
    return out + [(f"demo {name}", load_model(d), load_processor(d)) for name, d in (("NaFlex", DEMO_NAFLEX), ("FixRes", DEMO_FIXRES))]


def stage_errors(model, processor, reference=None):
    """{stage: StageResult} of `model`'s run against `reference` stages (None: the run itself, for the reference)."""
    stages, inputs = preprocess(processor, images(), texts())
    stages = {k: np.asarray(v) for k, v in run_stages(model, **inputs, attentions=False).items()}
    if reference is None:
        return stages
    mask = reference.get("vision.pixel_attention_mask")
    return {k: compare_stage(k, stages[k], reference[k], mask, (MANIFEST, MANIFEST)) for k in reference if k in stages}


def shown_stages(model):
    layers = model.config.vision.num_hidden_layers
    hidden = [f"vision.hidden_states.{i}" for i in range(1, layers + 1)]
    return ["vision.patch_embeds", *hidden, "vision.pooler_output", "text.pooler_output", "logits_per_image"]


def drift_table():
    for name, model, processor in drift_models():
        reference = stage_errors(model, processor)
        results = {kind_name(q, g): stage_errors(quantized_model(model, q, g or 64), processor, reference) for q, g in KINDS}
        print(f"\n{name}: stage-relative error vs float32 (cosine for pooled embeddings)\n")
        print("| stage | " + " | ".join(results) + " |")
        print("|---|" + "---:|" * len(results))
        for stage in shown_stages(model):
            cells = []
            for r in results.values():
                res = r[stage]
                cells.append(f"{res.max_rel:.1e}" + (f" (cos {res.cosine:.5f})" if stage.endswith("pooler_output") else ""))
            print(f"| `{stage}` | " + " | ".join(cells) + " |")
        top1 = [f"{r['logits_per_image'].top1:.2f}" for r in results.values()]
        print("| logits top-1 agreement | " + " | ".join(top1) + " |")


def drawn_images(n, seed=12345):
    """n shape images and their "colour shape" labels, drawn as the demo's accuracy was measured (demo/README.md)."""
    rng = np.random.default_rng(seed)
    drawn = [shapes.sample(rng) for _ in range(n)]
    return [image for image, _, _ in drawn], [f"{c} {s}" for _, _, (c, s, _) in drawn]


def predictions(model, processor, pictures, labels):  # -> [I] label indices
    logits = match_logits(model, label_embeddings(model, processor, labels), embed_images(model, processor, pictures))  # [L, I]
    return np.asarray(logits).argmax(axis=0)


def accuracy_table(n=300):
    pictures, truth = drawn_images(n)
    labels = shapes.labels()
    truth = np.array([labels.index(t) for t in truth])
    print(f"\nzero-shot top-1 over the {len(labels)} colour x shape labels, {n} drawn images (seed 12345)\n")
    print("| model | float32 | " + " | ".join(f"{kind_name(q, g)} (agree)" for q, g in KINDS) + " |")
    print("|---|---:|" + "---:|" * len(KINDS))
    for name, folder in (("demo NaFlex", DEMO_NAFLEX), ("demo FixRes", DEMO_FIXRES)):
        model, processor = load_model(folder), load_processor(folder)
        ref = predictions(model, processor, pictures, labels)
        cells = []
        for q, g in KINDS:
            pred = predictions(quantized_model(model, q, g or 64), processor, pictures, labels)
            cells.append(f"{(pred == truth).mean():.3f} ({(pred == ref).mean():.3f})")
        print(f"| {name} | {(ref == truth).mean():.3f} | " + " | ".join(cells) + " |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("table", choices=("drift", "accuracy", "all"))
    parser.add_argument("--images", type=int, default=300, help="drawn images for the accuracy table")
    args = parser.parse_args(argv)
    if args.table in ("drift", "all"):
        drift_table()
    if args.table in ("accuracy", "all"):
        accuracy_table(args.images)


if __name__ == "__main__":
    main()
