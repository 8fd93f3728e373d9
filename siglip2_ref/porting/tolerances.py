"""Named tolerance tiers: how close two implementations of SigLIP 2 must agree, stage by stage.

One module serves the tests and the `compare` tool. The error measure is the
*stage-relative* error  max|actual - desired| / max|desired|  (the worst element
error scaled by the stage's magnitude), because element-wise relative error is
meaningless for values near zero. docs/parity.md gives the reasons and the
measured numbers per stage.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tier:
    name: str
    rel: float  # allowed stage-relative error
    reason: str


TIERS = {
    t.name: t
    for t in [
        Tier("exact", 0.0, "integers and preprocessing: ids, masks, shapes, pixels are bit-exact"),
        Tier("float64", 1e-12, "same formulas in float64; only summation order differs (~1e-16 per op)"),
        Tier("float32_stage", 1e-5, "float32 rounding (eps 6e-8) accumulated over layers of width D"),
        Tier("float32_pooled", 2e-6, "pooled embeddings, normalised embeddings, logits, loss in float32"),
        Tier("float64_via_float32", 1e-6, "float64 run of a reference that rounds one step through float32 "
             "(transformers' NaFlex position resize; eager softmax(dtype=float32)): float32 eps 6e-8, amplified by depth"),
        Tier("float16", 2e-3, "float16 storage and matmuls (eps 1e-3), float32 softmax/LayerNorm statistics"),
        Tier("float32_pixels", 1.2e-7, "normalised pixels from bit-identical uint8: float32 formulas differ in operation "
             "order ((x / 255 - 0.5) / 0.5 vs (x - 127.5) / 127.5), at most 1 ulp at |x| = 1"),
        Tier("bfloat16", 3e-2, "bfloat16 weights and activations (8-bit mantissa, eps 7.8e-3), float32 softmax/LayerNorm "
             "statistics and accumulation; emulated on random B/16 weights the worst stage (the last encoder layer) "
             "reached 1.7e-2 (siglip2_ref.porting.emulate, docs/porting.md)"),
        Tier("int8", 5e-2, "weight-only int8 (per output channel) against float weights: measured worst stage 2.3e-2 "
             "(random B/16, pooled embeddings), 1.1e-2 on the demo models (docs/quantization.md)"),
        Tier("int4", 5e-1, "weight-only int4 (group-wise) against float weights: measured worst stage 3.8e-1 (random "
             "B/16, G=64, pooled embeddings), 1.5e-1 on the demo models (docs/quantization.md); compare rankings too"),
    ]
}


@dataclass
class Diff:
    """Measured difference between two arrays of one stage."""

    max_abs: float
    max_rel: float  # max_abs / max|desired|
    worst_index: tuple
    pairs: list  # first few (actual, desired) pairs around the worst element


def measure(actual, desired):
    """Stage-relative error and the worst element of `actual` against `desired`."""
    a = np.asarray(actual, dtype=np.float64)
    d = np.asarray(desired, dtype=np.float64)
    if a.size == 0:
        return Diff(0.0, 0.0, (), [])
    err = np.abs(a - d)
    err = np.where(np.isnan(a) != np.isnan(d), np.inf, np.nan_to_num(err, nan=0.0))
    worst = np.unravel_index(int(np.argmax(err)), err.shape)
    scale = float(np.nanmax(np.abs(d))) or 1.0
    flat = int(np.ravel_multi_index(worst, err.shape)) if err.ndim else 0
    lo = max(flat - 2, 0)
    pairs = list(zip(a.ravel()[lo : lo + 5].tolist(), d.ravel()[lo : lo + 5].tolist()))
    return Diff(float(err[worst]), float(err[worst]) / scale, tuple(int(i) for i in worst), pairs)


def assert_close(actual, desired, tier, name="array"):
    """Fail with the stage name, max error, worst index and value pairs when outside `tier`."""
    tier = TIERS[tier] if isinstance(tier, str) else tier
    actual_shape, desired_shape = np.shape(actual), np.shape(desired)
    if actual_shape != desired_shape:
        raise AssertionError(f"{name}: shape {actual_shape} != expected {desired_shape}")
    if tier.rel == 0.0:
        if not np.array_equal(np.asarray(actual), np.asarray(desired)):
            d = measure(actual, desired)
            raise AssertionError(f"{name}: not exact ({tier.reason}); max abs {d.max_abs:.3g} at {d.worst_index}, pairs {d.pairs}")
        return Diff(0.0, 0.0, (), [])
    d = measure(actual, desired)
    if not d.max_rel <= tier.rel:
        raise AssertionError(
            f"{name}: stage-relative error {d.max_rel:.3g} > {tier.rel:g} (tier {tier.name}: {tier.reason}); "
            f"max abs {d.max_abs:.3g} at index {d.worst_index}; (actual, desired) near it: {d.pairs}"
        )
    return d


POOLED = ("pooler_output", "image_embeds", "text_embeds", "logits", "loss", "probabilities")  # stage-name endings


def stage_tier(stage, precision, rounded_to_float32=False):
    """The tier of one float stage computed in `precision` ("float64", "float32", "float16", "bfloat16").

    float64 stages that passed through a float32 step on the reference side (transformers' NaFlex position
    resize, eager attention's softmax) get the float32-rounded float64 tier; float32 pooled outputs get the
    end-to-end tier, every other float32 stage the per-stage tier (docs/parity.md gives the reasons).
    """
    if precision == "float64":
        return "float64_via_float32" if rounded_to_float32 else "float64"
    if precision == "float32":
        return "float32_pooled" if stage.split(".")[-1].startswith(POOLED) else "float32_stage"
    return precision
