"""Backward of the two towers: stems, position embeddings, MAP head, text pooling, each beside model/'s forward.

The stems and position embeddings are linear maps of their weights, so their backward needs the matrix of
the map. Rather than re-deriving it, we run model/'s own forward on an identity: the FixRes conv applied
with an identity kernel returns the patches, the position resize of an identity table returns the resize
matrix. The backward is then one matrix product with the transposed map.

Shapes: docs/shapes.md (B batch, N tokens incl. padding, D width, H heads, K head dim, C channels,
P patch side, G position-grid side, V vocabulary, E output width).
"""

from ..backend import get_xp
from ..model.layers import attention, key_padding_bias, layer_norm, linear, merge_heads, split_heads
from ..model.text import text_embeddings
from ..model.vision import fixres_patch_embeddings, fixres_position_embeddings, naflex_position_embeddings, vision_embeddings
from .backward import (attention_backward, encoder_backward, encoder_forward, layer_norm_backward, linear_backward,
                       mlp_backward, mlp_forward)  # fmt: skip

# ---------------------------------------------------------------- stems and position embeddings


def fixres_stem_backward(dy, pixel_values, weight):  # [B, h*w, D], [B, C, S1, S2], [D, C, P, P] -> {weight, bias}
    """The conv is `patches @ W^T + b`; the patches are what the same conv returns with an identity kernel."""
    xp = get_xp(dy)
    D, C, P, _ = weight.shape
    identity = xp.eye(C * P * P, dtype=weight.dtype).reshape(C * P * P, C, P, P)
    patches = fixres_patch_embeddings(pixel_values, identity, xp.zeros(C * P * P, weight.dtype))  # [B, h*w, C*P*P]
    _, grads = linear_backward(dy, patches, weight.reshape(D, -1))
    return {"weight": grads["weight"].reshape(weight.shape), "bias": grads["bias"]}


def naflex_stem_backward(dy, pixel_values, weight):  # [B, N, D], [B, N, C*P*P], [D, C*P*P] -> {weight, bias}
    """A plain Linear on pre-patchified pixels; padded rows get dy = 0 from the masked encoder, so add nothing."""
    return linear_backward(dy, pixel_values.astype(weight.dtype), weight)[1]


def position_matrix(table, position_fn):  # [G*G, D] -> [..., G*G]
    """The linear map table -> positions, as a matrix: the same function applied to the identity table."""
    xp = get_xp(table)
    return position_fn(xp.eye(table.shape[0], dtype=table.dtype))


def position_backward(dpositions, table, cfg, pixel_values, spatial_shapes, interpolate):  # [B, N, D] -> [G*G, D]
    """d table = M^T d positions summed over images, M the resize matrix (FixRes native: M = identity)."""
    if cfg.variant == "naflex":
        M = position_matrix(table, lambda t: naflex_position_embeddings(t, spatial_shapes, pixel_values.shape[1]))  # [B, N, G*G]
        return (M.reshape(-1, M.shape[-1]).T @ dpositions.reshape(-1, dpositions.shape[-1])).astype(table.dtype)
    h, w = (s // cfg.patch_size for s in pixel_values.shape[2:])
    M = position_matrix(table, lambda t: fixres_position_embeddings(t, h, w, interpolate))  # [h*w, G*G]
    return M.T @ dpositions.sum(axis=0)  # the table is broadcast over images: their gradients add


# ---------------------------------------------------------------- MAP head


def map_head_forward(x, mask, cfg, probe, attention_params, layernorm, mlp_params):  # [B, N, D] -> [B, D], tape
    """model.vision.map_head, keeping its intermediates (the probe query is shared by every image)."""
    B, N, D = x.shape
    Wq, Wk, Wv = attention_params["in_proj_weight"].reshape(3, D, D)
    bq, bk, bv = attention_params["in_proj_bias"].reshape(3, D)
    heads = cfg.num_attention_heads
    q = split_heads(linear(probe, Wq, bq), heads)  # [1, H, 1, K]
    k, v = split_heads(linear(x, Wk, bk), heads), split_heads(linear(x, Wv, bv), heads)  # [B, H, N, K]
    out, weights = attention(q, k, v, None if mask is None else key_padding_bias(mask, x.dtype))  # [B, H, 1, K]
    merged = merge_heads(out)  # [B, 1, D]
    y = linear(merged, **attention_params["out_proj"])  # [B, 1, D]
    mlp_out, mlp_tape = mlp_forward(layer_norm(y, **layernorm, eps=cfg.layer_norm_eps), cfg.hidden_act, **mlp_params)
    return (y + mlp_out)[:, 0], (x, probe, q, k, v, weights, merged, y, mlp_tape)


def map_head_backward(dpooled, tape, cfg, head):  # [B, D] -> [B, N, D], {probe, attention, layernorm, mlp}
    x, probe, q, k, v, weights, merged, y, mlp_tape = tape
    B, N, D = x.shape
    attn = head["attention"]
    Wq, Wk, Wv = attn["in_proj_weight"].reshape(3, D, D)
    dout = dpooled[:, None, :]  # [B, 1, D]
    dln, g_mlp = mlp_backward(dout, mlp_tape, head["mlp"])
    dy_branch, g_ln = layer_norm_backward(dln, y, head["layernorm"]["weight"], cfg.layer_norm_eps)
    dmerged, g_out = linear_backward(dout + dy_branch, merged, attn["out_proj"]["weight"])
    dq, dk, dv = attention_backward(split_heads(dmerged, q.shape[1]), q, k, v, weights)
    dq = dq.sum(axis=0, keepdims=True)  # [1, H, 1, K]: one query broadcast over the images
    dprobe, gq = linear_backward(merge_heads(dq), probe, Wq)
    dx_k, gk = linear_backward(merge_heads(dk), x, Wk)
    dx_v, gv = linear_backward(merge_heads(dv), x, Wv)
    xp = get_xp(x)
    packed = {"in_proj_weight": xp.concatenate([gq["weight"], gk["weight"], gv["weight"]]),
              "in_proj_bias": xp.concatenate([gq["bias"], gk["bias"], gv["bias"]]), "out_proj": g_out}  # fmt: skip
    return dx_k + dx_v, {"probe": dprobe, "attention": packed, "layernorm": g_ln, "mlp": g_mlp}


# ---------------------------------------------------------------- the towers


def vision_forward(params, cfg, pixel_values, mask=None, spatial_shapes=None, interpolate=False):  # -> [B, D], tape
    """model.vision.vision_model up to the pooled embedding, keeping the tapes of every layer."""
    if not cfg.vision_use_head:
        raise NotImplementedError("loss_and_grads needs the MAP head (vision_use_head); this vision config has none")
    x, _, _ = vision_embeddings(params, cfg, pixel_values, spatial_shapes, interpolate)  # [B, N, D]
    bias = None if mask is None else key_padding_bias(mask, x.dtype)
    encoded, tapes = encoder_forward(x, bias, params["encoder"]["layers"], cfg)
    post = layer_norm(encoded, **params["post_layernorm"], eps=cfg.layer_norm_eps)
    head = params["head"]
    pooled, head_tape = map_head_forward(post, mask, cfg, head["probe"], head["attention"], head["layernorm"], head["mlp"])
    return pooled, (pixel_values, mask, spatial_shapes, interpolate, tapes, encoded, post, head_tape)


def vision_backward(dpooled, tape, params, cfg, stage_grads=None):  # [B, D] -> grads with vision_model's keys
    pixel_values, mask, spatial_shapes, interpolate, tapes, encoded, post, head_tape = tape
    dpost, g_head = map_head_backward(dpooled, head_tape, cfg, params["head"])
    dencoded, g_post = layer_norm_backward(dpost, encoded, params["post_layernorm"]["weight"], cfg.layer_norm_eps)
    dx, g_layers = encoder_backward(dencoded, tapes, params["encoder"]["layers"], cfg, stage_grads, "vision")
    if stage_grads is not None:
        stage_grads |= {"vision.pooler_output": dpooled, "vision.last_hidden_state": dpost}
    emb = params["embeddings"]
    stem = naflex_stem_backward if cfg.variant == "naflex" else fixres_stem_backward
    table = emb["position_embedding"]["weight"]
    g_emb = {"patch_embedding": stem(dx, pixel_values, emb["patch_embedding"]["weight"]),
             "position_embedding": {"weight": position_backward(dx, table, cfg, pixel_values, spatial_shapes, interpolate)}}  # fmt: skip
    return {"embeddings": g_emb, "encoder": {"layers": g_layers}, "post_layernorm": g_post, "head": g_head}


def text_forward(params, cfg, input_ids, attention_mask=None):  # [B, N] -> [B, E], tape
    """model.text.text_model up to the pooled embedding: final norm, then the head on the LAST position."""
    x = text_embeddings(params["embeddings"], input_ids)  # [B, N, D]
    bias = None if attention_mask is None else key_padding_bias(attention_mask, x.dtype)
    encoded, tapes = encoder_forward(x, bias, params["encoder"]["layers"], cfg)
    last = layer_norm(encoded[:, -1], **params["final_layer_norm"], eps=cfg.layer_norm_eps)  # [B, D]; LN is per row
    return linear(last, **params["head"]), (input_ids, tapes, encoded, last)


def embedding_backward(demb, input_ids, vocab_size, num_positions):  # [B, N, D] -> {token_embedding, position_embedding}
    """Gathered rows get their gradients scattered back (a token used twice adds both); positions 0..N-1 sum over B."""
    xp = get_xp(demb)
    B, N, D = demb.shape
    dtokens = xp.zeros((vocab_size, D), dtype=demb.dtype)
    xp.add.at(dtokens, input_ids.reshape(-1), demb.reshape(-1, D))
    dpositions = xp.zeros((num_positions, D), dtype=demb.dtype)
    dpositions[:N] = demb.sum(axis=0)
    return {"token_embedding": {"weight": dtokens}, "position_embedding": {"weight": dpositions}}


def text_backward(dpooled, tape, params, cfg, stage_grads=None):  # [B, E] -> grads with text_model's keys
    """Only the last position reaches the head, so the encoder's output gradient is zero at every other position."""
    input_ids, tapes, encoded, last = tape
    xp = get_xp(dpooled)
    dlast, g_head = linear_backward(dpooled, last, params["head"]["weight"])
    dtoken, g_final = layer_norm_backward(dlast, encoded[:, -1], params["final_layer_norm"]["weight"], cfg.layer_norm_eps)
    dencoded = xp.zeros_like(encoded)
    dencoded[:, -1] = dtoken  # [B, N, D]
    if stage_grads is not None:
        dfinal = xp.zeros_like(encoded)
        dfinal[:, -1] = dlast  # final_layer_norm's output: only the pooled row has a gradient
        stage_grads |= {"text.pooler_output": dpooled, "text.pooled_token": dlast, "text.last_hidden_state": dfinal}
    demb, g_layers = encoder_backward(dencoded, tapes, params["encoder"]["layers"], cfg, stage_grads, "text")
    g_emb = embedding_backward(demb, input_ids, cfg.vocab_size, cfg.max_position_embeddings)
    return {"embeddings": g_emb, "encoder": {"layers": g_layers}, "final_layer_norm": g_final, "head": g_head}
