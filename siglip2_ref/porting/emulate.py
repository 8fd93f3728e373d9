"""Reduced-precision emulation: the float32 path with float16 or bfloat16 rounding at chosen points.

A porter who runs SigLIP 2 in bfloat16 or float16 wants to know how far from the float64 truth a correct port
lands, stage by stage, before blaming a bug. `emulated_model(model, "bfloat16", points)` returns a float32
model that rounds to the chosen format (round to nearest, ties to even) at:

    "weights"      every parameter, once (storage in the format);
    "activations"  the encoder input and, in every encoder layer, each LayerNorm, linear layer, GELU and residual
                   sum output (what a half-precision matmul/elementwise kernel writes back);
    "scores"       the attention logits q.k^T/sqrt(K) (+ mask) and the softmax probabilities.

Everything else (position resize, post-norm, MAP head, text head, normalisation, logits) stays float32 on the
(rounded) weights; softmax and LayerNorm statistics are float32, as transformers computes them.
docs/porting.md shows the per-stage errors this gives.

Shapes: docs/shapes.md (B batch, N sequence, D width, H heads, K head dim).
"""

from dataclasses import dataclass
from functools import partial

import numpy as np

from ..model.layers import ACTIVATIONS, encoder, layer_norm, linear, merge_heads, softmax, split_heads
from ..model.model import Model, tree_map

FORMATS = ("float16", "bfloat16")
POINTS = ("weights", "activations", "scores")


def round_bfloat16(x):  # float32 [...] -> float32 [...] holding bfloat16 values
    """Round float32 to the nearest bfloat16 (8-bit mantissa), ties to even; NaN stays NaN, overflow gives inf."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    bits = x.view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000  # add half an ulp (minus one on even), cut
    out = rounded.astype(np.uint32).view(np.float32)
    return np.where(np.isnan(x), x, out)


def round_float16(x):  # float32 [...] -> float32 [...] holding float16 values
    """Round float32 to the nearest IEEE float16 (10-bit mantissa, max 65504), ties to even."""
    with np.errstate(over="ignore"):
        return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)


ROUND = {"float16": round_float16, "bfloat16": round_bfloat16}


def identity(x):
    return x


@dataclass(frozen=True)
class Emulation:
    """A format and the points where values are rounded to it."""

    format: str
    points: tuple = POINTS

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"emulated format must be one of {FORMATS}, got {self.format!r}")
        unknown = set(self.points) - set(POINTS)
        if unknown or not self.points:
            raise ValueError(f"emulation points must be a non-empty subset of {POINTS}, got {list(self.points)}")

    def rounder(self, point):
        return ROUND[self.format] if point in self.points else identity

    def describe(self):
        return f"{self.format}:{','.join(p for p in POINTS if p in self.points)}"


def parse_emulation(text):
    """Emulation from "bfloat16" (all points) or "float16:weights,activations"."""
    if text is None or isinstance(text, Emulation):
        return text
    fmt, _, points = text.partition(":")
    return Emulation(fmt, tuple(p for p in points.split(",") if p) if points else POINTS)


def emulated_layer(x, bias, layer, cfg, act, score):  # [B, N, D] -> [B, N, D], [B, H, N, N]
    """encoder_layer (layers.py) with `act` applied to each op's output and `score` to attention scores/weights."""
    eps, heads = cfg.layer_norm_eps, cfg.num_attention_heads
    attn = layer["self_attn"]
    h = act(layer_norm(x, **layer["layer_norm1"], eps=eps))
    q, k, v = (split_heads(act(linear(h, **attn[name])), heads) for name in ("q_proj", "k_proj", "v_proj"))  # [B, H, N, K]
    scores = score((q @ k.transpose(0, 1, 3, 2)) * (q.shape[-1] ** -0.5))  # [B, H, N, N]
    if bias is not None:
        scores = score(scores + bias)
    weights = score(softmax(scores))
    x = act(x + act(linear(merge_heads(act(weights @ v)), **attn["out_proj"])))
    h = act(layer_norm(x, **layer["layer_norm2"], eps=eps))
    h = act(ACTIVATIONS[cfg.hidden_act](act(linear(h, **layer["mlp"]["fc1"]))))
    return act(x + act(linear(h, **layer["mlp"]["fc2"]))), weights


class EmulatedEncoder:
    """Drop-in for layers.encoder (same signature) that rounds as `emulation` says."""

    def __init__(self, emulation):
        self.emulation = emulation

    def __call__(self, x, bias, layers, cfg, keep_hidden=False, keep_attentions=False):
        act, score = self.emulation.rounder("activations"), self.emulation.rounder("scores")
        block = partial(emulated_layer, act=act, score=score)
        return encoder(act(x), bias, layers, cfg, keep_hidden, keep_attentions, block)


def emulated_model(model, emulation):
    """A float32 NumPy copy of `model` that rounds to `emulation.format` at `emulation.points`."""
    emulation = parse_emulation(emulation)
    if model.dtype != "float32" or model.xp is not np:
        raise ValueError(f"emulation runs the float32 NumPy path; load the model with dtype='float32' (got {model.dtype}, {model.backend})")
    params = tree_map(emulation.rounder("weights"), model.params)
    return Model(model.config, params, model.backend, model.dtype, model.path, EmulatedEncoder(emulation))
