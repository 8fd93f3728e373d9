"""Tools for porters: stage dumps, a first-divergence report, and a golden bundle for any checkpoint.

    siglip2-ref dump IMAGE ... --text "a cat" -o ours.safetensors       # every named stage, float64
    siglip2-ref compare yours.safetensors ours.safetensors               # table + first divergent stage
    siglip2-ref export-goldens --model CKPT -o bundle/                   # standard inputs + their stages

A dump is one safetensors file: one tensor per stage (names in docs/stages.md) and, in the metadata key
"manifest", a JSON object (format, model config, checkpoint hashes, inputs, conventions, precision, library
versions, the command that reproduces it). `golden/transformers_dump.py` writes the same format from a
transformers model, so its output compares directly. docs/porting.md is the guide.
"""

import hashlib
import json
import os
import platform
import re
import shlex
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import numpy as np

from . import __version__
from .backend import backend_module, to_numpy
from .conventions import DEFAULT, Conventions, parse_conventions, preprocess
from .stages import pipeline_order, run_stages
from .tolerances import TIERS, measure

FORMAT, FORMAT_VERSION = "siglip2-ref-dump", 1
PRECISIONS = ("bfloat16", "float16", "float32", "float64")  # lowest first
POOLED = ("pooler_output", "image_embeds", "text_embeds", "logits", "loss", "probabilities")
RANKED = ("logits_per_image", "logits_per_text", "probabilities", "logits")
PIXEL_STAGES = ("image.", "vision.pixel_values")
TOKEN_STAGE = re.compile(r"^vision\.(patch_embeds|position_embeddings|hidden_states\.\d+|last_hidden_state)$")
ATTENTION_STAGE = re.compile(r"^vision\.attentions\.\d+$")
INPUT_NAMES = ("input_ids", "attention_mask", "pixel_values", "pixel_attention_mask", "spatial_shapes")


class DumpError(ValueError):
    """A file that is not a readable stage dump, or two dumps that cannot be compared."""


# ---------------------------------------------------------------- random weights (for measurements, no checkpoint)


def random_model(variant, sizes, backend="numpy", dtype="float32", seed=0, vocab=256000):
    """A two-tower model of `sizes` (hidden_size, intermediate_size, num_hidden_layers, num_attention_heads) with
    random weights N(0, 1/fan_in) built in memory: NaFlex 16x16 position grid, FixRes 224 px, patch 16."""
    from .config import parse_config
    from .model import Model, tree_map
    from .weights import expected_shapes, nest

    vision = sizes | ({"num_patches": 256} if variant == "naflex" else {"image_size": 224}) | {"patch_size": 16}
    raw = {"model_type": "siglip2" if variant == "naflex" else "siglip", "vision_config": vision,
           "text_config": sizes | {"vocab_size": vocab}}  # fmt: skip
    config = parse_config(raw)
    rng = np.random.default_rng(seed)
    flat = {k: (rng.standard_normal(s, np.float32) / np.sqrt(s[-1])).astype(dtype) for k, s in expected_shapes(config).items()}
    params = nest(flat)
    xp = backend_module(backend)
    return Model(config, tree_map(xp.asarray, params) if xp is not np else params, backend, np.dtype(dtype).name)


# ---------------------------------------------------------------- making a dump


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
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else None
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
    emulation = getattr(model, "emulation", None)
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "producer": f"siglip2-ref {__version__}",
        "model": checkpoint_facts(model), "variant": model.config.variant,
        "precision": {"dtype": model.dtype, "emulation": emulation.describe() if emulation else None, "float32_rounded": []},
        "inputs": described, "call": call, "conventions": conventions.as_dict(), "versions": library_versions(),
        "command": command, "stages": pipeline_order(stages),
    }  # fmt: skip
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


# ---------------------------------------------------------------- comparing two dumps


@dataclass
class StageResult:
    stage: str
    shape: tuple
    tier: str = None
    verdict: str = "ok"  # "ok", "DIVERGED", "only in A", "only in B"
    max_abs: float = None
    max_rel: float = None
    cosine: float = None
    nmse: float = None
    differing: int = None  # exact stages: elements that differ
    top1: float = None  # ranked stages: fraction of rows with the same arg-max
    ranking: float = None  # ranked stages: fraction of rows with the same full order
    note: str = ""

    @property
    def diverged(self):
        return self.verdict == "DIVERGED"


def precision_of(manifest):
    """The lowest precision a dump was computed in: its dtype, or its emulated format."""
    precision = manifest.get("precision") or {}
    emulation = precision.get("emulation")
    return emulation.split(":")[0] if emulation else precision.get("dtype", "float32")


def stage_tier(stage, a, b, manifests):
    """The tolerance tier of one stage when comparing two dumps (docs/porting.md, "Tiers")."""
    if a.dtype.kind in "iub" and b.dtype.kind in "iub":
        return "exact"
    if stage.startswith(PIXEL_STAGES):
        return "float32_pixels"
    lowest = min((precision_of(m) for m in manifests), key=PRECISIONS.index)
    if lowest == "float64":
        rounded = [p for m in manifests for p in (m.get("precision") or {}).get("float32_rounded", [])]
        return "float64_via_float32" if any(fnmatch(stage, p) for p in rounded) else "float64"
    if lowest == "float32":
        return "float32_pooled" if stage.split(".")[-1].startswith(POOLED) else "float32_stage"
    return lowest


def real_rows(array, mask, stage):  # [B, N, ...] -> flat values of real tokens only
    """NaFlex token stages without the rows of padded patches (their values are implementation-defined)."""
    if mask is None or not (TOKEN_STAGE.match(stage) or ATTENTION_STAGE.match(stage)):
        return array.ravel()
    axis = 1 if ATTENTION_STAGE.match(stage) else 0  # query axis of one image's [H, N, N], or token axis of [N, D]
    if array.shape[0] != mask.shape[0] or array.shape[axis + 1] != mask.shape[1]:
        return array.ravel()
    return np.concatenate([np.take(array[b], np.flatnonzero(mask[b]), axis=axis).ravel() for b in range(len(mask))])


def ranking_agreement(a, b):
    """(top-1 agreement, full-order agreement) over the rows of two score matrices."""
    a2, b2 = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    top1 = float(np.mean(a2.argmax(-1) == b2.argmax(-1)))
    order = float(np.mean(np.all(np.argsort(-a2, -1, kind="stable") == np.argsort(-b2, -1, kind="stable"), -1)))
    return top1, order


def compare_stage(stage, a, b, mask, manifests):
    """Errors of candidate `a` against reference `b` for one stage, and a verdict by its tier."""
    if a.shape != b.shape:
        return StageResult(stage, b.shape, verdict="DIVERGED", note=f"shape {a.shape} != {b.shape}")
    tier = stage_tier(stage, a, b, manifests)
    av, bv = real_rows(a, mask, stage).astype(np.float64), real_rows(b, mask, stage).astype(np.float64)
    d = measure(av, bv)
    norms = float(np.linalg.norm(av) * np.linalg.norm(bv))
    cosine = float(av @ bv) / norms if norms > 0 else float(np.array_equal(av, bv))
    energy = float(bv @ bv)
    nmse = float(np.sum((av - bv) ** 2)) / energy if energy > 0 else float(np.sum((av - bv) ** 2))
    result = StageResult(stage, b.shape, tier, max_abs=d.max_abs, max_rel=d.max_rel, cosine=cosine, nmse=nmse)
    if TIERS[tier].rel == 0.0:
        result.differing = int(np.sum(av != bv))
        ok = result.differing == 0
    else:
        ok = d.max_rel <= TIERS[tier].rel
    if stage in RANKED and a.ndim >= 1 and a.size:
        result.top1, result.ranking = ranking_agreement(a.astype(np.float64), b.astype(np.float64))
    result.verdict = "ok" if ok else "DIVERGED"
    return result


def compare_dumps(candidate, reference):
    """[StageResult] in pipeline order for (stages, manifest) pairs: `candidate` (A) against `reference` (B)."""
    (a_stages, a_manifest), (b_stages, b_manifest) = candidate, reference
    mask = b_stages.get("vision.pixel_attention_mask", a_stages.get("vision.pixel_attention_mask"))
    results = []
    for stage in pipeline_order(set(a_stages) | set(b_stages)):
        if stage not in b_stages or stage not in a_stages:
            where = "only in A" if stage in a_stages else "only in B"
            results.append(StageResult(stage, (a_stages.get(stage, b_stages.get(stage))).shape, verdict=where))
            continue
        results.append(compare_stage(stage, a_stages[stage], b_stages[stage], mask, (a_manifest, b_manifest)))
    return results


def first_divergence(results):
    return next((r for r in results if r.diverged), None)


def fmt(value, spec=".2e"):
    return "" if value is None else format(value, spec)


def format_table(results):
    """The comparison as a fixed-width table, one row per stage."""
    head = f"{'stage':<30} {'shape':<18} {'max abs':>9} {'max rel':>9} {'cosine':>12} {'NMSE':>9} {'top1/rank':>10}  {'tier':<20} verdict"
    lines = [head, "-" * len(head)]
    for r in results:
        ranks = f"{r.top1:.2f}/{r.ranking:.2f}" if r.top1 is not None else ""
        tier = "" if r.tier is None else f"{r.tier} ({TIERS[r.tier].rel:g})"
        verdict = r.verdict + (f" ({r.differing} differ)" if r.differing else "") + (f" {r.note}" if r.note else "")
        shape = "x".join(str(s) for s in r.shape) or "scalar"
        cosine = "" if r.cosine is None else f"{r.cosine:.9f}"
        lines.append(f"{r.stage:<30} {shape:<18} {fmt(r.max_abs):>9} {fmt(r.max_rel):>9} {cosine:>12} {fmt(r.nmse):>9} "
                     f"{ranks:>10}  {tier:<20} {verdict}")  # fmt: skip
    return "\n".join(lines)


def explain_first(result, reference_stages):
    """One line naming the first divergent stage, with what usually causes a divergence there."""
    hint = next((text for prefix, text in HINTS if result.stage.startswith(prefix)), "")
    if result.stage == "text.normalized" and "text.normalized" in reference_stages:
        hint = "lowercasing or text cleaning differs: " + hint
    return f"first divergent stage: {result.stage}" + (f" ({hint})" if hint else "")


HINTS = (
    ("text.normalized", "transformers >= 5.20 lowercases NaFlex text per character; big_vision ASCII only; open_clip strips punctuation"),
    ("text.input_ids", "EOS (id 1) appended and kept on truncation, no BOS, right-padded with 0 to 64"),
    ("text.embeddings", "token + position embedding, no sqrt(D) scaling"),
    ("text.attentions", "no text attention mask: pad tokens are attended to"),
    ("text.pooled_token", "the text tower pools the LAST position (usually a pad token)"),
    ("image.rgb", "alpha composited onto white, EXIF orientation for files, 16-bit scaled"),
    ("image.resized", "antialiased resize on uint8 with the chosen back-end's rounding and pass order"),
    ("image.normalized", "(x / 255 - 0.5) / 0.5 in float32"),
    ("vision.pixel_values", "NaFlex patches flattened in (py, px, c) order, zero-padded to max_num_patches"),
    ("vision.pixel_attention_mask", "1 for the h*w real patches, 0 for padding"),
    ("vision.spatial_shapes", "patch grid (h, w), rows first"),
    ("vision.position_embeddings", "NaFlex: antialiased bilinear resize of the 16x16 grid, not bicubic or plain bilinear"),
    ("vision.attentions", "padded patches must be masked as keys (finfo.min)"),
    ("vision.head_attention", "the MAP head masks padded patches too"),
    ("vision.pooler_output", "MAP head: probe attention, residual from the attention output, MLP"),
    ("probabilities", "sigmoid per pair, never softmax"),
    ("logits", "logits = cos * exp(logit_scale) + logit_bias"),
)


# ---------------------------------------------------------------- the golden bundle: standard inputs


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

    from .demo import shapes

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


# ---------------------------------------------------------------- the golden bundle: writing and checking


def export_goldens(folder, out, dtype="float64", attentions=False, model=None, processor=None, command=None):
    """Write the bundle (README.md, manifest.json, images/*.png, texts.json, cases/*.safetensors) to `out`."""
    from .model import load_model
    from .processor import load_processor

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


# ---------------------------------------------------------------- the command line


def add_commands(subparsers):
    """`dump`, `compare` and `export-goldens` (called by cli.build_parser)."""
    from .cli import Formatter, add_global_options, add_model_options

    for name, summary, configure, run, example in COMMANDS:
        parser = subparsers.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".",
                                       epilog=example, formatter_class=Formatter)  # fmt: skip
        configure(parser)
        add_model_options(parser, images=False)
        add_global_options(parser)
        parser.set_defaults(run=run, dtype="float64")  # dumps are the truth: float64 unless asked
        for action in parser._actions:  # argparse has no public way to reword another module's option help
            if action.dest == "dtype":
                action.help = "compute dtype of the model stages (default: float64, the truth)"


def add_convention_options(parser):
    group = parser.add_argument_group("conventions (docs/conventions.md; defaults: transformers >= 5.20, Pillow resize)")
    group.add_argument("--image-resize", choices=("pil", "torchvision", "big_vision"), default="pil")
    group.add_argument("--text-convention", choices=("hf", "big_vision", "open_clip"), default="hf")
    group.add_argument("--position-resize", choices=("antialiased-bilinear", "bicubic"), default="antialiased-bilinear")
    group.add_argument("--emulate", metavar="FORMAT[:POINTS]",
                       help="round the float32 path to bfloat16 or float16 at weights,activations,scores (default: all)")  # fmt: skip


def configure_dump(p):
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files")
    p.add_argument("--text", action="append", default=None, metavar="TEXT", help="a text (repeat for several)")
    p.add_argument("--texts-file", metavar="FILE", help="texts, one per line")
    p.add_argument("--inputs", metavar="FILE.safetensors",
                   help="model inputs as arrays (input_ids, pixel_values, ...; a golden case's input.* works) instead of raw inputs")  # fmt: skip
    p.add_argument("-o", "--output", required=True, metavar="FILE.safetensors", help="where to write the dump")
    p.add_argument("--attentions", action="store_true", help="also store every layer's attention weights (large)")
    p.add_argument("--max-num-patches", type=int, metavar="N", help="NaFlex patch budget (default: the checkpoint's)")
    p.add_argument("--interpolate-pos-encoding", action="store_true", help="FixRes inputs at another resolution")
    p.add_argument("--return-loss", action="store_true", help="also compute the sigmoid loss (square batches)")
    add_convention_options(p)


def dump_command(args):
    """The command line that reproduces a dump, rebuilt from the parsed options."""
    words = ["siglip2-ref", "dump", *args.images]
    for text in args.text or ():
        words += ["--text", text]
    options = [("--texts-file", args.texts_file), ("--inputs", args.inputs), ("--model", args.model),
               ("--dtype", args.dtype), ("--max-num-patches", args.max_num_patches), ("--emulate", args.emulate),
               ("--image-resize", args.image_resize if args.image_resize != "pil" else None),
               ("--text-convention", args.text_convention if args.text_convention != "hf" else None),
               ("--position-resize", args.position_resize if args.position_resize != "antialiased-bilinear" else None)]  # fmt: skip
    words += [w for flag, value in options if value is not None for w in (flag, str(value))]
    words += [flag for flag in ("--attentions", "--interpolate-pos-encoding", "--return-loss") if getattr(args, flag[2:].replace("-", "_"))]
    return " ".join(shlex.quote(w) for w in words + ["-o", args.output])


def load_for_dump(args):
    """(model, processor) for --model (default: the bundled demo), emulated when --emulate asks."""
    from .cli import UsageError, checkpoint_folder
    from .emulate import emulated_model, parse_emulation
    from .model import load_model
    from .processor import load_processor

    folder = checkpoint_folder(args)
    try:
        emulation = parse_emulation(getattr(args, "emulate", None))
    except ValueError as e:
        raise UsageError(f"--emulate: {e}") from None
    if emulation is not None and args.dtype != "float32":
        args.dtype = "float32"  # emulation rounds the float32 path
    model = load_model(folder, backend=args.backend, dtype=args.dtype)
    if emulation is not None:
        model = emulated_model(model, emulation)
    has_files = any((Path(folder) / f).is_file() for f in ("tokenizer.model", "preprocessor_config.json"))
    return model, (load_processor(folder) if has_files else None)


def read_inputs_file(path):
    """Model input arrays from a safetensors file (keys with or without the golden files' `input.` prefix)."""
    from safetensors.numpy import load_file

    from .cli import CommandError

    if not os.path.isfile(path):
        raise CommandError(f"--inputs {path}: no such file")
    arrays = {k.removeprefix("input."): v for k, v in load_file(path).items()}
    arrays = {k: v for k, v in arrays.items() if k in INPUT_NAMES}
    if not arrays:
        raise CommandError(f"--inputs {path}: no model inputs in it (expected some of {', '.join(INPUT_NAMES)})")
    return arrays


def read_texts(args):
    from .cli import CommandError

    texts = list(args.text or [])
    if args.texts_file:
        if not os.path.isfile(args.texts_file):
            raise CommandError(f"--texts-file {args.texts_file}: no such file")
        texts += [line.rstrip("\n") for line in open(args.texts_file, encoding="utf-8")]
    return texts or None


def run_dump(args):
    from .cli import EXIT_OK, UsageError, check_files_exist

    texts = read_texts(args)
    if args.inputs and (args.images or texts):
        raise UsageError("--inputs replaces IMAGE and --text; give one or the other")
    if not (args.inputs or args.images or texts):
        raise UsageError("nothing to dump: give IMAGE files, --text, or --inputs")
    if not args.output.endswith(".safetensors"):
        raise UsageError(f"--output {args.output}: a dump is a .safetensors file")
    check_files_exist(args.images)
    conventions = Conventions(args.image_resize, args.text_convention, args.position_resize)
    model, processor = load_for_dump(args)
    if processor is None and not args.inputs:
        raise UsageError(f"{model.path} has no tokenizer.model / preprocessor_config.json: pass model inputs with --inputs")
    if args.max_num_patches is not None and model.config.variant != "naflex":
        raise UsageError("--max-num-patches applies to NaFlex checkpoints only")
    arrays = read_inputs_file(args.inputs) if args.inputs else None
    stages, manifest = make_dump(model, processor, args.images or None, texts, arrays, conventions, args.attentions,
                                 args.max_num_patches, args.interpolate_pos_encoding, args.return_loss, dump_command(args))  # fmt: skip
    write_dump(args.output, stages, manifest)
    size = os.path.getsize(args.output)
    print(f"wrote {args.output}: {len(stages)} stages, {size / 2**20:.1f} MiB, {model.dtype}"
          + (f", emulating {manifest['precision']['emulation']}" if manifest["precision"]["emulation"] else ""))  # fmt: skip
    return EXIT_OK


def configure_compare(p):
    p.add_argument("candidate", metavar="A", help="the dump to check (e.g. from your port)")
    p.add_argument("reference", nargs="?", metavar="B",
                   help="the reference dump; without it, siglip2-ref re-runs A's own inputs on --model")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def reference_from_inputs(candidate, args):
    """Our dump of the candidate's own raw inputs (texts in its manifest, `image.rgb.k` stages) or input arrays."""
    from .cli import CommandError

    stages, manifest = candidate
    model, processor = load_for_dump(args)
    inputs = manifest.get("inputs") or {}
    call = manifest.get("call") or {}
    kwargs = dict(conventions=manifest.get("conventions"), attentions=bool(call.get("attentions")),
                  interpolate_pos_encoding=bool(call.get("interpolate_pos_encoding")), return_loss=bool(call.get("return_loss")))  # fmt: skip
    rgb = [stages[k] for k in pipeline_order(s for s in stages if s.startswith("image.rgb."))]
    if inputs.get("texts") is not None or rgb:
        if processor is None:
            raise CommandError(f"{model.path} has no tokenizer/preprocessor files to preprocess A's raw inputs")
        return make_dump(model, processor, rgb or None, inputs.get("texts"), max_num_patches=inputs.get("max_num_patches"), **kwargs)
    arrays = {name.split(".", 1)[1]: v for name, v in stages.items() if name.split(".", 1)[-1] in INPUT_NAMES}
    if not arrays:
        raise CommandError("A holds neither raw inputs (manifest texts, image.rgb.k) nor model input arrays to re-run")
    return make_dump(model, arrays=arrays, **kwargs)


def run_compare(args):
    from .cli import EXIT_OK, EXIT_RUNTIME, UsageError

    candidate = read_dump(args.candidate)
    if args.reference is None and args.model is None:
        raise UsageError("give the reference dump B, or --model to re-run A's inputs with siglip2-ref")
    reference = read_dump(args.reference) if args.reference else reference_from_inputs(candidate, args)
    results = compare_dumps(candidate, reference)
    first = first_divergence(results)
    if args.json:
        print(json.dumps({"first_divergent_stage": first.stage if first else None,
                          "stages": [r.__dict__ | {"shape": list(r.shape)} for r in results]}, indent=1))  # fmt: skip
    else:
        print(format_table(results))
        compared = sum(r.verdict in ("ok", "DIVERGED") for r in results)
        print(f"\n{compared} stages compared, {sum(r.diverged for r in results)} diverged")
        print(explain_first(first, reference[0]) if first else "no divergence: every common stage is within its tier")
        for label, (_, manifest) in (("A", candidate), ("B", reference)):
            print(f"{label} was made with: {manifest.get('command') or manifest.get('producer')}")
    return EXIT_RUNTIME if first else EXIT_OK


def configure_export(p):
    p.add_argument("-o", "--output", required=True, metavar="FOLDER", help="where to write the bundle")
    p.add_argument("--attentions", action="store_true", help="also store every layer's attention weights (large)")


def run_export(args):
    from .cli import EXIT_OK, UsageError, checkpoint_folder

    out = Path(args.output)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--output {out} exists and is not empty; give a new folder")
    folder = checkpoint_folder(args)
    command = f"siglip2-ref export-goldens --model {shlex.quote(str(folder))} --dtype {args.dtype} -o {shlex.quote(str(out))}"
    bundle = export_goldens(folder, out, args.dtype, args.attentions, command=command + (" --attentions" if args.attentions else ""))
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out}: {len(bundle['cases'])} cases, {len(bundle['images'])} images, {len(bundle['texts'])} texts, "
          f"{total / 2**20:.1f} MiB (see {out / 'README.md'})")  # fmt: skip
    return EXIT_OK


COMMANDS = (
    ("dump", "run a model on images and texts and write every named stage to one .safetensors", configure_dump, run_dump,
     "examples:\n  siglip2-ref dump cat.jpg --text \"a photo of a cat\" --model CKPT -o ours.safetensors\n"
     "  siglip2-ref dump cat.jpg --text cat --image-resize big_vision --text-convention big_vision -o bv.safetensors\n"
     "  siglip2-ref dump --inputs arrays.safetensors --model CKPT --attentions -o ours.safetensors"),
    ("compare", "compare two stage dumps in pipeline order and name the first divergent stage", configure_compare, run_compare,
     "examples:\n  siglip2-ref compare yours.safetensors ours.safetensors\n"
     "  siglip2-ref compare yours.safetensors --model CKPT     # re-run your dump's inputs here\n"
     "exit status: 0 when every common stage is within its tier, 1 on divergence or error"),
    ("export-goldens", "write a golden bundle (standard inputs and every stage) for a checkpoint", configure_export,
     run_export, "examples:\n  siglip2-ref export-goldens --model CKPT -o siglip2_goldens/"),
)  # fmt: skip

