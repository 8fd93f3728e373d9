"""Backward of the transformer building blocks in model/layers.py, one function beside each forward.

Every `*_backward` takes the gradient of the loss with respect to the forward's output (`dy`, same shape as
the output) and what the forward saw, and returns the gradient with respect to the forward's inputs, plus a
dict of parameter gradients with the checkpoint's leaf names (`weight`, `bias`, ...). The `*_forward`
functions here run model/layers.py's own functions and keep what their backward needs (the "tape").

Shapes: docs/shapes.md (B batch, N queries, M keys, D width, H heads, K head dim, F MLP width,
R rows = the product of all leading dims, I in features, O out features).
"""

from ..backend import get_xp
from ..model.layers import SQRT_2_OVER_PI, attention, gelu_tanh, layer_norm, linear, merge_heads, split_heads

# ---------------------------------------------------------------- elementwise and per-row pieces


def linear_backward(dy, x, weight):  # [..., Dout], [..., Din], [Dout, Din] -> [..., Din], {weight [Dout, Din], bias [Dout]}
    """y = x W^T + b:  dx = dy W,  dW = dy^T x,  db = sum of dy over all rows."""
    rows_dy = dy.reshape(-1, dy.shape[-1])  # [R, Dout]
    rows_x = x.reshape(-1, x.shape[-1])  # [R, Din]
    dx = (rows_dy @ weight).reshape(x.shape)
    return dx, {"weight": rows_dy.T @ rows_x, "bias": rows_dy.sum(axis=0)}


def gelu_tanh_backward(dy, x):  # [...] -> [...]
    """d/dx of 0.5 x (1 + tanh(u)), u = c (x + 0.044715 x^3):  0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 0.044715 x^2)."""
    xp = get_xp(x)
    t = xp.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x**3))
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x * x))


def layer_norm_backward(dy, x, weight, eps):  # [..., D] -> [..., D], {weight [D], bias [D]}
    """x_hat = (x - mean) / sqrt(var + eps);  dx = (g - mean(g) - x_hat mean(g x_hat)) / sqrt(var + eps), g = dy * weight."""
    xp = get_xp(x)
    mean = x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / xp.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + eps)  # [..., 1]
    x_hat = (x - mean) * rstd
    g = dy * weight
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - x_hat * (g * x_hat).mean(axis=-1, keepdims=True))
    rows = (-1, x.shape[-1])
    return dx, {"weight": (dy * x_hat).reshape(rows).sum(axis=0), "bias": dy.reshape(rows).sum(axis=0)}


def softmax_backward(dp, p):  # [..., M] -> [..., M]
    """p = softmax(s):  ds = p (dp - sum_j p_j dp_j). A padded key has p = 0 exactly, so it gets no gradient."""
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True))


# ---------------------------------------------------------------- attention


def attention_backward(dout, q, k, v, weights):  # [B, H, N, K], q [B, H, N, K], k, v [B, H, M, K], [B, H, N, M]
    """out = softmax(q k^T / sqrt(K) + bias) v. Returns dq, dk, dv (the additive mask bias is a constant)."""
    scale = q.shape[-1] ** -0.5
    dweights = dout @ v.transpose(0, 1, 3, 2)  # [B, H, N, M]
    dv = weights.transpose(0, 1, 3, 2) @ dout  # [B, H, M, K]
    dscores = softmax_backward(dweights, weights) * scale  # [B, H, N, M]
    return dscores @ k, dscores.transpose(0, 1, 3, 2) @ q, dv


def self_attention_forward(x, bias, num_heads, q_proj, k_proj, v_proj, out_proj):  # [B, N, D] -> [B, N, D], tape
    """model.layers.self_attention, keeping q, k, v, the attention weights and the merged heads."""
    q, k, v = (split_heads(linear(x, **p), num_heads) for p in (q_proj, k_proj, v_proj))  # [B, H, N, K]
    out, weights = attention(q, k, v, bias)
    merged = merge_heads(out)  # [B, N, D]
    return linear(merged, **out_proj), (x, q, k, v, weights, merged)


def self_attention_backward(dy, tape, params):  # [B, N, D] -> [B, N, D], {q_proj, k_proj, v_proj, out_proj}
    x, q, k, v, weights, merged = tape
    dmerged, grads = linear_backward(dy, merged, params["out_proj"]["weight"])
    grads = {"out_proj": grads}
    dq, dk, dv = attention_backward(split_heads(dmerged, q.shape[1]), q, k, v, weights)
    dx = 0.0
    for name, dpart in (("q_proj", dq), ("k_proj", dk), ("v_proj", dv)):
        dxi, grads[name] = linear_backward(merge_heads(dpart), x, params[name]["weight"])  # merge = split's adjoint
        dx = dx + dxi
    return dx, grads


# ---------------------------------------------------------------- MLP, encoder layer, encoder


def check_activation(act):
    if act not in ("gelu_pytorch_tanh", "gelu_new", "gelu_fast"):
        raise NotImplementedError(f"backward is written for the tanh GELU that every SigLIP checkpoint uses; "
                                  f"config hidden_act {act!r} has no backward here")  # fmt: skip


def mlp_forward(x, act, fc1, fc2):  # [..., D] -> [..., D], tape
    """model.layers.mlp, keeping the pre-activation."""
    check_activation(act)
    pre = linear(x, **fc1)  # [..., F]
    hidden = gelu_tanh(pre)
    return linear(hidden, **fc2), (x, pre, hidden)


def mlp_backward(dy, tape, params):  # [..., D] -> [..., D], {fc1, fc2}
    x, pre, hidden = tape
    dhidden, g2 = linear_backward(dy, hidden, params["fc2"]["weight"])
    dx, g1 = linear_backward(gelu_tanh_backward(dhidden, pre), x, params["fc1"]["weight"])
    return dx, {"fc1": g1, "fc2": g2}


def encoder_layer_forward(x, bias, layer, cfg):  # [B, N, D] -> [B, N, D], tape
    """model.layers.encoder_layer (pre-LN: x + attn(LN1 x), then + mlp(LN2 x)), keeping every intermediate."""
    eps = cfg.layer_norm_eps
    attn_out, attn_tape = self_attention_forward(layer_norm(x, **layer["layer_norm1"], eps=eps), bias,
                                                 cfg.num_attention_heads, **layer["self_attn"])  # fmt: skip
    x1 = x + attn_out
    mlp_out, mlp_tape = mlp_forward(layer_norm(x1, **layer["layer_norm2"], eps=eps), cfg.hidden_act, **layer["mlp"])
    return x1 + mlp_out, (x, attn_tape, x1, mlp_tape)


def encoder_layer_backward(dy, tape, layer, cfg):  # [B, N, D] -> [B, N, D], grads of one layer
    """The residual adds its gradient to each branch's: d x1 = dy + d(mlp branch), dx = d x1 + d(attention branch)."""
    x, attn_tape, x1, mlp_tape = tape
    eps = cfg.layer_norm_eps
    dh2, g_mlp = mlp_backward(dy, mlp_tape, layer["mlp"])
    dx1_branch, g_ln2 = layer_norm_backward(dh2, x1, layer["layer_norm2"]["weight"], eps)
    dx1 = dy + dx1_branch
    dh1, g_attn = self_attention_backward(dx1, attn_tape, layer["self_attn"])
    dx_branch, g_ln1 = layer_norm_backward(dh1, x, layer["layer_norm1"]["weight"], eps)
    return dx1 + dx_branch, {"layer_norm1": g_ln1, "self_attn": g_attn, "layer_norm2": g_ln2, "mlp": g_mlp}


def encoder_forward(x, bias, layers, cfg):  # [B, N, D] -> [B, N, D], tapes
    tapes = []
    for layer in layers:
        x, tape = encoder_layer_forward(x, bias, layer, cfg)
        tapes.append(tape)
    return x, tapes


def encoder_backward(dy, tapes, layers, cfg, stage_grads=None, prefix=""):  # [B, N, D] -> [B, N, D], [grads per layer]
    """Layers in reverse order. `stage_grads` (a dict) collects d loss / d `{prefix}.hidden_states.{i}`."""
    grads = [None] * len(layers)
    for i in reversed(range(len(layers))):
        if stage_grads is not None:
            stage_grads[f"{prefix}.hidden_states.{i + 1}"] = dy
        dy, grads[i] = encoder_layer_backward(dy, tapes[i], layers[i], cfg)
    if stage_grads is not None:
        stage_grads[f"{prefix}.hidden_states.0"] = dy
    return dy, grads
