"""Transformer building blocks shared by both towers, as free functions on arrays.

Shapes: docs/shapes.md (B batch, N sequence, M keys, R matmul rows, D width, H heads, K head dim, F MLP width).

Weights keep PyTorch's Linear layout `[out, in]`: y = x @ W.T + b. Parameters arrive as the nested
dicts of `weights.nest`, splatted into named arguments where that documents which weights a layer uses.
Every function takes its array module from its input (`xp = get_xp(x)`), so the same code runs on
NumPy and CuPy.
"""

import math

from ..backend import get_xp
from ..checkpoint.config import ACTIVATIONS as ACTIVATION_NAMES, GELU_TANH_NAMES
from .quant import QuantizedWeight, linear_quantized

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu_tanh(x):
    """GELU, tanh approximation (transformers' "gelu_pytorch_tanh", big_vision's default gelu)."""
    xp = get_xp(x)
    return 0.5 * x * (1.0 + xp.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x**3)))


def quick_gelu(x):
    """x * sigmoid(1.702 x) (transformers' "quick_gelu"; no official SigLIP checkpoint uses it)."""
    xp = get_xp(x)
    return x / (1.0 + xp.exp(-1.702 * x))


def gelu_erf(x):
    """Exact GELU 0.5 x (1 + erf(x / sqrt 2)); erf via math.erf per element (slow; no official checkpoint uses it)."""
    xp = get_xp(x)
    erf = xp.vectorize(math.erf) if xp.__name__ == "numpy" else xp.special.erf  # cupy.special has erf
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)).astype(x.dtype))


def relu(x):
    return get_xp(x).maximum(x, 0)


ACTIVATIONS = {name: gelu_tanh for name in GELU_TANH_NAMES} | {"gelu": gelu_erf, "quick_gelu": quick_gelu, "relu": relu}
assert set(ACTIVATIONS) == set(ACTIVATION_NAMES)  # config.py accepts exactly the activations computed here


def softmax(scores, axis=-1):
    """Numerically stable softmax along `axis`; float16 scores are upcast to float32, as transformers does."""
    xp = get_xp(scores)
    x = scores.astype(xp.float32) if scores.dtype == xp.float16 else scores  # reference: softmax(dtype=float32)
    x = xp.exp(x - x.max(axis=axis, keepdims=True))
    return (x / x.sum(axis=axis, keepdims=True)).astype(scores.dtype)


def layer_norm(x, weight, bias, eps):  # [..., D] -> [..., D]
    """(x - mean) / sqrt(biased var + eps) * weight + bias; float16 statistics in float32."""
    xp = get_xp(x)
    h = x.astype(xp.float32) if x.dtype == xp.float16 else x
    mean = h.mean(axis=-1, keepdims=True)
    var = ((h - mean) ** 2).mean(axis=-1, keepdims=True)
    return ((h - mean) / xp.sqrt(var + eps)).astype(x.dtype) * weight + bias


def linear(x, weight, bias):  # [..., Din] -> [..., Dout], weight [Dout, Din]
    """x W^T + b, all leading dims as the rows of one matrix multiply (a [B, N, Din] @ [Din, Dout] would be B of them).

    A quantized weight (model/quant.py, int8/int4) is dequantized into x's dtype a block of rows at a time."""
    if isinstance(weight, QuantizedWeight):
        return linear_quantized(x, weight, bias)
    rows = x.reshape(-1, x.shape[-1]) @ weight.T  # [R, Dout], R = prod(...)
    return rows.reshape(*x.shape[:-1], weight.shape[0]) + bias


def key_padding_bias(mask, dtype):  # [B, M] (1 = real, 0 = padding) -> [B, 1, 1, M]
    """Additive attention bias: 0 for real keys, finfo(dtype).min for padded ones (as transformers' eager masks)."""
    xp = get_xp(mask)
    minimum = xp.finfo(dtype).min
    return xp.where(mask.astype(bool), 0.0, minimum).astype(dtype)[:, None, None, :]


def split_heads(x, num_heads):  # [B, N, D] -> [B, H, N, K]
    B, N, D = x.shape
    return x.reshape(B, N, num_heads, D // num_heads).transpose(0, 2, 1, 3)  # [B, N, (H K)] -> [B, H, N, K]


def merge_heads(x):  # [B, H, N, K] -> [B, N, D]
    B, H, N, K = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, N, H * K)  # [B, H, N, K] -> [B, N, (H K)]


def attention(q, k, v, bias=None):  # [B, H, N, K], [B, H, M, K] x2, [B, 1, 1, M] -> [B, H, N, K], [B, H, N, M]
    """Scaled dot-product attention; returns the output and the attention weights."""
    scores = (q @ k.transpose(0, 1, 3, 2)) * (q.shape[-1] ** -0.5)  # [B, H, N, M]
    if bias is not None:
        scores = scores + bias  # padded keys -> finfo.min -> weight 0
    weights = softmax(scores)
    return weights @ v, weights


def self_attention(x, bias, num_heads, q_proj, k_proj, v_proj, out_proj):  # [B, N, D] -> [B, N, D], [B, H, N, N]
    """Multi-head self-attention. Mirrors: SiglipAttention (transformers), nn.MultiHeadDotProductAttention (big_vision)."""
    q, k, v = (split_heads(linear(x, **p), num_heads) for p in (q_proj, k_proj, v_proj))  # [B, H, N, K]
    out, weights = attention(q, k, v, bias)
    return linear(merge_heads(out), **out_proj), weights


def mlp(x, act, fc1, fc2):  # [B, N, D] -> [B, N, D]
    """fc2(act(fc1(x))). Mirrors: SiglipMLP (transformers), MlpBlock (big_vision vit.py)."""
    return linear(ACTIVATIONS[act](linear(x, **fc1)), **fc2)


def encoder_layer(x, bias, layer, cfg):  # [B, N, D] -> [B, N, D], [B, H, N, N]
    """Pre-LN transformer block. Mirrors: SiglipEncoderLayer (transformers), Encoder1DBlock (big_vision vit.py)."""
    eps, heads = cfg.layer_norm_eps, cfg.num_attention_heads
    attn_out, weights = self_attention(layer_norm(x, **layer["layer_norm1"], eps=eps), bias, heads, **layer["self_attn"])
    x = x + attn_out
    x = x + mlp(layer_norm(x, **layer["layer_norm2"], eps=eps), cfg.hidden_act, **layer["mlp"])
    return x, weights


def encoder(x, bias, layers, cfg, keep_hidden=False, keep_attentions=False, block=encoder_layer):  # [B, N, D] -> [B, N, D], tuples
    """The stack of encoder layers, optionally keeping each layer's output and attention weights.

    hidden_states[0] is the embeddings output, hidden_states[i + 1] the output of layer i (transformers' tuple).
    `block` computes one layer (`encoder_layer`; porting/emulate.py passes a rounding one).
    """
    hidden_states, attentions = [x], []
    for layer in layers:
        x, weights = block(x, bias, layer, cfg)
        if keep_hidden:
            hidden_states.append(x)
        if keep_attentions:
            attentions.append(weights)
    return x, (tuple(hidden_states) if keep_hidden else None), (tuple(attentions) if keep_attentions else None)
