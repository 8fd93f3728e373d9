"""Two stage dumps compared in pipeline order: per-stage error under its tier, and the first divergent stage."""

import re
from dataclasses import dataclass
from fnmatch import fnmatch

import numpy as np

from .stages import pipeline_order
from .tolerances import TIERS, measure, stage_tier

PRECISIONS = ("bfloat16", "float16", "float32", "float64")  # lowest first
RANKED = ("logits_per_image", "logits_per_text", "probabilities", "logits")
PIXEL_STAGES = ("image.", "vision.pixel_values")
TOKEN_STAGE = re.compile(r"^vision\.(patch_embeds|position_embeddings|hidden_states\.\d+|last_hidden_state)$")
ATTENTION_STAGE = re.compile(r"^vision\.attentions\.\d+$")


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


def quantization_tier(manifests):
    """"int8" / "int4" when the dumps' weights were quantized differently (one int8, the other float...), else None.
    Two runs of the same quantization hold the same weights: their float tiers apply (docs/quantization.md)."""
    kinds = [(m.get("precision") or {}).get("quantization") for m in manifests]
    if all(k == kinds[0] for k in kinds):
        return None
    return f"int{min(k['bits'] for k in kinds if k)}"


def compared_tier(stage, a, b, manifests):
    """The tolerance tier of one stage when comparing two dumps (docs/porting.md, "Tiers")."""
    if a.dtype.kind in "iub" and b.dtype.kind in "iub":
        return "exact"
    if stage.startswith(PIXEL_STAGES):
        return "float32_pixels"
    if quantization_tier(manifests):
        return quantization_tier(manifests)
    lowest = min((precision_of(m) for m in manifests), key=PRECISIONS.index)
    rounded = [p for m in manifests for p in (m.get("precision") or {}).get("float32_rounded", [])]
    return stage_tier(stage, lowest, rounded_to_float32=any(fnmatch(stage, p) for p in rounded))


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
    tier = compared_tier(stage, a, b, manifests)
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
