"""A golden bundle for any checkpoint: standard inputs (texts, drawn images, a mixed batch) and every stage.

`siglip2-ref export-goldens --model CKPT -o bundle/` writes it; `load_bundle` checks every file against its hash.
"""

import json
import os
from pathlib import Path

import numpy as np

from .compare import compare_dumps
from .conventions import Conventions
from .dump import FORMAT_VERSION, DumpError, checkpoint_facts, library_versions, make_dump, read_dump, sha256_file, write_dump
from .tolerances import TIERS


BUNDLE_WORDS = ("Zürich", "ÉCOLE", "naïve", "東京", "café", "Hello,", "WORLD!", "photo", "RED", "circle;", "straße",
                "ΟΔΟΣ", "北京大学", "(a)", "über", "Ça", "va?", "日本語", "Ñandú", "x-ray", "3.14", "Ω")  # fmt: skip


TOKEN_TARGETS = (0, 63, 64, 100)


def text_with_tokens(tokenizer, n):
    """A deterministic text of exactly `n` BPE tokens (before EOS) with capitals, punctuation, accents and CJK."""
    text, fillers = "", (" a", ".", "a", "!", " ", "x")
    for step in range(4 * n + 50):
        count = len(tokenizer.bpe_ids(text))
        if count == n:
            return text
        word = BUNDLE_WORDS[step % len(BUNDLE_WORDS)]
        for extra in ((" " + word) if text else word,) + fillers:
            if len(tokenizer.bpe_ids(text + extra)) <= n and text + extra != text:
                text += extra
                break
    raise ValueError(f"could not build a text of exactly {n} tokens with this tokenizer")


def standard_texts(tokenizer):
    """[(name, text)]: 0, 63, 64 and 100 BPE tokens (63 fills all 64 ids with EOS last; 64 and 100 truncate),
    and a short prompt."""
    texts = [("short_prompt", "This is a photo of a RED circle.")]
    return texts + [(f"tokens_{n}", text_with_tokens(tokenizer, n)) for n in TOKEN_TARGETS]


def exact_budget_grid(max_num_patches):
    """(gh, gw) with gh * gw == max_num_patches and gh the largest divisor <= sqrt."""
    gh = max(d for d in range(1, int(max_num_patches**0.5) + 1) if max_num_patches % d == 0)
    return gh, max_num_patches // gh


def standard_images(variant, patch_size, max_num_patches):
    """[(name, (width, height))]: the aspect-ratio grid of the bundle (docs/porting.md)."""
    sizes = [("wide_1600x400", (1600, 400)), ("tall_400x1600", (400, 1600)), ("photo_640x480", (640, 480)),
             ("thin_2000x90", (2000, 90)), ("small_37x50", (37, 50)), ("pixel_1x1", (1, 1))]  # fmt: skip
    if variant == "naflex":
        gh, gw = exact_budget_grid(max_num_patches)
        sizes.insert(3, (f"exact_budget_{gw * patch_size}x{gh * patch_size}", (gw * patch_size, gh * patch_size)))
    return sizes


def draw_standard_image(name, size, seed):
    """A deterministic RGB PIL image: a demo shape on a textured background (flat grey for 1x1)."""
    from PIL import Image

    from ..demo import shapes

    w, h = size
    if min(w, h) < 8:
        return Image.new("RGB", (w, h), (200, 120, 40))
    rng = np.random.default_rng(seed)
    colour, shape, position = list(shapes.COLOURS)[seed % 8], shapes.SHAPES[seed % 5], "center"
    return shapes.draw(colour, shape, position, rng, size=(w, h))


def bundle_cases(variant, patch_size, max_num_patches):
    """[(case, [image names], max_num_patches)]: one mixed-aspect batch, and for NaFlex a 1x1-patch grid."""
    names = [name for name, _ in standard_images(variant, patch_size, max_num_patches)]
    cases = [("mixed_batch", names, None)]
    if variant == "naflex":
        cases.append(("one_patch", ["photo_640x480"], 1))  # max_num_patches=1: a (1, 1) grid
    return cases


def export_goldens(folder, out, dtype="float64", attentions=False, model=None, processor=None, command=None):
    """Write the bundle (README.md, manifest.json, images/*.png, texts.json, cases/*.safetensors) to `out`."""
    from ..model.model import load_model
    from ..preprocess.processor import load_processor

    model = model or load_model(folder, dtype=dtype)
    processor = processor or load_processor(folder)
    if processor.tokenizer is None or processor.image_processor is None:
        raise ValueError(f"{folder}: a bundle needs tokenizer.model and preprocessor_config.json next to the weights")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    variant, ip = model.config.variant, processor.image_processor
    patch, budget = (ip.patch_size, ip.max_num_patches) if variant == "naflex" else (model.config.vision.patch_size, 0)
    image_paths = {}
    for seed, (name, size) in enumerate(standard_images(variant, patch, budget)):
        image_paths[name] = out / "images" / f"{name}.png"
        draw_standard_image(name, size, seed).save(image_paths[name])
    texts = standard_texts(processor.tokenizer)
    (out / "texts.json").write_text(json.dumps(dict(texts), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    cases = []
    for case, names, max_patches in bundle_cases(variant, patch, budget):
        paths = [os.path.relpath(image_paths[n], out) for n in names]
        stages, manifest = make_dump(model, processor, [image_paths[n] for n in names], [t for _, t in texts],
                                     attentions=attentions, max_num_patches=max_patches, command=command)  # fmt: skip
        for entry, path in zip(manifest["inputs"]["images"], paths):
            entry["source"] = path  # relative to the bundle folder
        manifest["inputs"]["text_names"] = [n for n, _ in texts]
        file = out / "cases" / f"{case}.safetensors"
        write_dump(file, stages, manifest)
        cases.append({"case": case, "file": f"cases/{case}.safetensors", "images": paths, "max_num_patches": max_patches,
                      "spatial_shapes": stages.get("vision.spatial_shapes", np.zeros((0, 2))).tolist(),
                      "sha256": sha256_file(file), "num_stages": len(stages)})  # fmt: skip
    bundle = {"format": "siglip2-ref-golden-bundle", "format_version": FORMAT_VERSION, "dtype": dtype,
              "model": checkpoint_facts(model), "variant": variant, "conventions": Conventions().as_dict(),
              "texts": [{"name": n, "text": t, "bpe_tokens": len(processor.tokenizer.bpe_ids(t))} for n, t in texts],
              "images": {n: {"file": os.path.relpath(p, out), "sha256": sha256_file(p)} for n, p in image_paths.items()},
              "cases": cases, "tiers": {k: {"rel": v.rel, "reason": v.reason} for k, v in TIERS.items()},
              "versions": library_versions(), "command": command}  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(bundle, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (out / "README.md").write_text(bundle_readme(bundle), encoding="utf-8")
    return bundle


def load_bundle(folder):
    """The bundle manifest, after checking every listed file against its sha256."""
    folder = Path(folder)
    path = folder / "manifest.json"
    if not path.is_file():
        raise DumpError(f"{folder}: not a golden bundle (no manifest.json)")
    bundle = json.loads(path.read_text(encoding="utf-8"))
    listed = [(e["file"], e["sha256"]) for e in bundle["images"].values()] + [(c["file"], c["sha256"]) for c in bundle["cases"]]
    for file, digest in listed:
        if not (folder / file).is_file():
            raise DumpError(f"{folder}: {file} is listed in manifest.json but missing")
        if sha256_file(folder / file) != digest:
            raise DumpError(f"{folder}: {file} does not match its sha256 in manifest.json (modified or truncated)")
    return bundle


def check_bundle(folder, model, processor):
    """{case: [StageResult]}: `model` re-run on the bundle's own inputs (PNG files, texts) against its dumps."""
    folder = Path(folder)
    bundle = load_bundle(folder)
    results = {}
    for case in bundle["cases"]:
        reference = read_dump(folder / case["file"])
        manifest = reference[1]
        images = [folder / entry["source"] for entry in manifest["inputs"]["images"]]
        ours = make_dump(model, processor, images, manifest["inputs"]["texts"], conventions=manifest["conventions"],
                         attentions=manifest["call"]["attentions"], max_num_patches=manifest["inputs"]["max_num_patches"])  # fmt: skip
        results[case["case"]] = compare_dumps(ours, reference)
    return results


def bundle_readme(bundle):
    """The README written into every bundle."""
    cases = "\n".join(f"| `{c['file']}` | {', '.join(Path(p).stem for p in c['images'])} | "
                      f"{c['max_num_patches'] or 'checkpoint default'} | {c['spatial_shapes']} |" for c in bundle["cases"])  # fmt: skip
    texts = "\n".join(f"| `{t['name']}` | {t['bpe_tokens']} | {json.dumps(t['text'], ensure_ascii=False)[:70]} |" for t in bundle["texts"])
    return BUNDLE_README.format(variant=bundle["variant"], path=bundle["model"]["path"], dtype=bundle["dtype"],
                                command=bundle["command"] or "siglip2_ref.porting.export_goldens(...)", cases=cases, texts=texts,
                                sha=json.dumps(bundle["model"]["sha256"]), version=bundle["versions"]["siglip2_ref"])  # fmt: skip


BUNDLE_README = """# SigLIP 2 golden bundle

Stage-by-stage truth for one checkpoint on a standard input set, written by siglip2-ref {version}
(a NumPy reference that matches transformers 5.24 stage by stage). Run your implementation on the same inputs,
write your stages in the same format, and diff.

- checkpoint: `{path}` ({variant}); weight files sha256: `{sha}`
- dtype of the stored stages: {dtype}; conventions: the defaults (transformers >= 5.20 text rules, Pillow resize)
- made with: `{command}`

## Files

| file | what |
|---|---|
| `manifest.json` | checkpoint, config, every file with its sha256, texts, cases, tolerance tiers, library versions |
| `images/*.png` | the input images (lossless PNG: decode to RGB uint8 and you have exactly our input) |
| `texts.json` | the input texts by name |
| `cases/*.safetensors` | one dump per case: a tensor per stage, manifest JSON in the metadata key `manifest` |

Cases (each image list is one batch, in this order; all texts in every case):

| case | images | max_num_patches | spatial shapes |
|---|---|---|---|
{cases}

Texts (BPE tokens before EOS: 63 fills all 64 ids with EOS last; 64 and 100 are truncated to 63 + EOS):

| name | tokens | text |
|---|---|---|
{texts}

## Stage names

Text: `text.normalized` (Unicode code points, padded with -1), `text.input_ids`, `text.embeddings`,
`text.hidden_states.{{i}}` (0 = embeddings), `text.last_hidden_state` (after the final norm), `text.pooled_token`,
`text.pooler_output`. Image: `image.rgb.{{k}}` (uint8 [3, H, W]), `image.resized.{{k}}`, `image.normalized.{{k}}`,
`vision.pixel_values`, `vision.pixel_attention_mask`, `vision.spatial_shapes`, `vision.patch_embeds`,
`vision.position_embeddings`, `vision.hidden_states.{{i}}`, `vision.last_hidden_state`, `vision.head_attention`,
`vision.pooler_output`. Joint: `image_embeds`, `text_embeds`, `logits_per_image`, `logits_per_text`,
`probabilities`. Shapes and meanings: docs/stages.md of siglip2-ref.

## Checking your implementation

Write your stages (any subset, any float dtype) to a safetensors file with a manifest (docs/porting.md), then

    siglip2-ref compare yours.safetensors cases/mixed_batch.safetensors

prints every stage's max abs / max rel / cosine / NMSE error against its tolerance tier and names the first
divergent stage in pipeline order. Padded NaFlex rows are ignored in token stages.
"""
