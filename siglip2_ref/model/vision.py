"""Vision tower: patch + position embeddings (FixRes and NaFlex), encoder, post-norm, MAP head.

Shapes: docs/shapes.md (B batch of images, C channels, S image side, p patch side, P patch vector,
G position-grid side, gh x gw patch grid, N patch slots, D width, H heads, K head dim, F MLP width).
"""

from ..backend import get_xp
from .layers import attention, encoder, key_padding_bias, layer_norm, linear, merge_heads, mlp, split_heads
from ..errors import InputError


# ---------------------------------------------------------------- FixRes: Conv2d stem, learned G x G table


def fixres_patch_embeddings(pixel_values, weight, bias):  # [B, C, h, w], [D, C, p, p] -> [B, gh*gw, D]
    """Conv2d(kernel=p, stride=p, 'valid') as a matmul over patches flattened in (c, py, px) order.

    Mirrors: SiglipVisionEmbeddings.patch_embedding (transformers), nn.Conv 'embedding' (big_vision vit.py).
    Rows/columns beyond the last whole patch are dropped, as 'valid' convolution does (so400m/14 at 384 px).
    """
    B, C, h, w = pixel_values.shape
    D, _, p, _ = weight.shape
    gh, gw = h // p, w // p
    x = pixel_values[:, :, : gh * p, : gw * p].reshape(B, C, gh, p, gw, p)
    patches = x.transpose(0, 2, 4, 1, 3, 5).reshape(B, gh * gw, C * p * p)  # [B, C, (gh py), (gw px)] -> [B, (gh gw), P]
    return linear(patches, weight.reshape(D, C * p * p), bias)  # [B, gh*gw, D], tokens in row-major (gh, gw) order


def cubic_weights(out_size, in_size, dtype, xp, A=-0.75):  # -> [out, in]
    """Rows of PyTorch's bicubic interpolation (align_corners=False, A=-0.75, border indices clamped)."""
    scale = xp.asarray(in_size / out_size, dtype=dtype)
    src = (xp.arange(out_size, dtype=dtype) + 0.5) * scale - 0.5  # no clamp at 0 for cubic, as aten
    left = xp.floor(src)
    t = src - left
    taps = xp.stack([t + 1, t, 1 - t, 2 - t], axis=1)  # distance to the 4 neighbours  [out, 4]
    near = ((A + 2) * taps - (A + 3)) * taps * taps + 1  # |d| <= 1
    far = ((A * taps - 5 * A) * taps + 8 * A) * taps - 4 * A  # 1 < |d| < 2
    coeffs = xp.where(xp.arange(4) % 3 == 0, far, near)  # [out, 4]
    index = xp.clip(left.astype(xp.int64)[:, None] + xp.arange(-1, 3), 0, in_size - 1)  # [out, 4]
    hits = index[:, :, None] == xp.arange(in_size)  # [out, 4, in]; clamped taps of one pixel add up
    weights = (coeffs[:, :, None] * hits).sum(axis=1)  # [out, in]
    return weights


def fixres_position_embeddings(table, gh, gw, interpolate):  # [G*G, D] -> [gh*gw, D]
    """The learned table, or (interpolate_pos_encoding=True) its bicubic resize to a gh x gw patch grid.

    Mirrors: SiglipVisionEmbeddings.interpolate_pos_encoding (transformers; F.interpolate bicubic, no antialias).
    """
    xp = get_xp(table)
    G = int(round(table.shape[0] ** 0.5))
    if (gh, gw) == (G, G):  # transformers skips the resize exactly when the grid is native and square
        return table
    if not interpolate:
        raise InputError(
            f"pixel_values give a {gh}x{gw} patch grid but this FixRes checkpoint has a {G}x{G} position table; "
            "resize images to the checkpoint's image_size or pass interpolate_pos_encoding=True"
        )
    grid = table.reshape(G, G, -1)  # [G, G, D]
    rows, cols = cubic_weights(gh, G, table.dtype, xp), cubic_weights(gw, G, table.dtype, xp)  # [gh, G], [gw, G]
    resized = xp.einsum("ri,ijd,cj->rcd", rows, grid, cols)  # [gh, gw, D]
    return resized.reshape(gh * gw, -1)


# ---------------------------------------------------------------- NaFlex: Linear stem, G x G table resized per image


def antialias_bilinear_weights(out_sizes, G, xp, dtype):  # [B] -> [B, n_out, G]
    """Per-axis weights of `F.interpolate(bilinear, align_corners=False, antialias=True)` from G to each size.

    A triangle filter widened by the downscale factor: w = max(0, 1 - |i - center| / support), rows
    normalised to sum 1. Mirrors: Siglip2VisionEmbeddings.resize_positional_embeddings (transformers 5.x
    closed form), jax.image.scale_and_translate(antialias=True) in big_vision naflex_vit.py.
    """
    n_out = int(out_sizes.max())
    sizes = out_sizes.astype(dtype)[:, None, None]  # [B, 1, 1]
    scale = G / sizes
    support = xp.maximum(scale, 1)
    index = xp.minimum(xp.arange(n_out)[None, :, None], out_sizes[:, None, None] - 1).astype(dtype)  # rows past a size repeat its last
    center = (index + 0.5) * scale - 0.5  # [B, n_out, 1]
    weights = xp.maximum(1 - xp.abs(xp.arange(G, dtype=dtype) - center) / support, 0)  # [B, n_out, G]
    return weights / weights.sum(axis=-1, keepdims=True)


def antialias_bicubic_weights(out_sizes, G, xp, dtype, a=-0.5):  # [B] -> [B, n_out, G]
    """Per-axis weights of `F.interpolate(bicubic, align_corners=False, antialias=True)` from G to each size.

    Keys' cubic (a = -0.5, as Pillow) stretched by the downscale factor; taps outside [xmin, xmax) are dropped and
    rows normalised to sum 1, as ATen's _upsample_bicubic2d_aa computes them. Not the default: timm's NaFlexViT
    resizes positions this way (`pos_embed_interp_mode="bicubic"`); SigLIP 2 was trained with the bilinear kind.
    """
    n_out = int(out_sizes.max())
    scale = (G / out_sizes.astype(dtype))[:, None, None]  # [B, 1, 1]
    stretch = xp.maximum(scale, 1)
    support = 2 * stretch
    index = xp.minimum(xp.arange(n_out)[None, :, None], out_sizes[:, None, None] - 1).astype(dtype)
    center = (index + 0.5) * scale  # [B, n_out, 1]; ATen's centre, half a pixel right of the bilinear one
    lo = xp.maximum(xp.trunc(center - support + 0.5), 0)
    hi = xp.minimum(xp.trunc(center + support + 0.5), G)
    i = xp.arange(G, dtype=dtype)
    x = xp.abs((i - center + 0.5) / stretch)  # [B, n_out, G]
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    weights = xp.where(x < 1, near, xp.where(x < 2, far, 0)) * ((i >= lo) & (i < hi))
    return (weights / weights.sum(axis=-1, keepdims=True)).astype(dtype)


POSITION_RESIZE = {"antialiased-bilinear": antialias_bilinear_weights, "bicubic": antialias_bicubic_weights}


def naflex_position_embeddings(table, spatial_shapes, max_length, method="antialiased-bilinear"):  # [G*G, D], [B, 2] -> [B, N, D]
    """The G x G table resized to each image's (h, w) patch grid, flattened row-major, padded to N rows.

    Padding rows get the value at grid position (0, 0), as transformers does (they are masked anyway).
    Computed in float32 for float32/float16 weights (transformers 5.x always resizes in float32);
    in float64 mode in float64, where transformers instead rounds through float32 (docs/parity.md).
    `method` names the per-axis filter (`POSITION_RESIZE`): "antialiased-bilinear" (transformers, big_vision)
    or "bicubic" (timm); docs/conventions.md.
    """
    xp = get_xp(table)
    G = int(round(table.shape[0] ** 0.5))  # table [G*G, D]
    dtype = xp.float64 if table.dtype == xp.float64 else xp.float32
    h, w = spatial_shapes[:, 0], spatial_shapes[:, 1]  # [B]
    if method not in POSITION_RESIZE:
        raise ValueError(f"unknown position resize {method!r}; expected one of {sorted(POSITION_RESIZE)}")
    row_w = POSITION_RESIZE[method](h, G, xp, dtype)  # [B, max gh, G]
    col_w = POSITION_RESIZE[method](w, G, xp, dtype)  # [B, max gw, G]
    position = xp.arange(max_length)[None, :]  # [1, N]
    real = position < (h * w)[:, None]  # [B, N]
    row = xp.where(real, position // w[:, None], 0)  # [B, N]; padding -> (0, 0)
    col = xp.where(real, position % w[:, None], 0)
    batch = xp.arange(len(h))[:, None]
    weights = row_w[batch, row][..., :, None] * col_w[batch, col][..., None, :]  # [B, N, G, G]
    resized = weights.reshape(*weights.shape[:2], G * G) @ table.astype(dtype)  # [B, N, D]
    return resized.astype(table.dtype)


def naflex_patch_embeddings(pixel_values, weight, bias):  # [B, N, P] -> [B, N, D]
    """Linear stem on pre-patchified pixels in (py, px, c) order. Mirrors: Siglip2VisionEmbeddings.patch_embedding."""
    return linear(pixel_values.astype(weight.dtype), weight, bias)


# ---------------------------------------------------------------- MAP head


def map_head(x, mask, cfg, probe, attention_params, layernorm, mlp_params):  # [B, N, D] -> [B, D], [B, H, 1, N]
    """Multihead attention pooling: a learned probe query attends over the tokens, then a residual MLP.

    Mirrors: SiglipMultiheadAttentionPoolingHead (transformers; torch nn.MultiheadAttention), MAPHead (big_vision).
    The residual starts from the attention output, not from the probe.
    """
    B, N, D = x.shape
    Wq, Wk, Wv = attention_params["in_proj_weight"].reshape(3, D, D)  # packed [q; k; v] rows
    bq, bk, bv = attention_params["in_proj_bias"].reshape(3, D)
    heads = cfg.num_attention_heads
    q = split_heads(linear(probe, Wq, bq), heads)  # [1, H, 1, K]; the same query for every image
    k, v = split_heads(linear(x, Wk, bk), heads), split_heads(linear(x, Wv, bv), heads)  # [B, H, N, K]
    bias = None if mask is None else key_padding_bias(mask, x.dtype)  # padded patches are not pooled
    out, weights = attention(q, k, v, bias)  # [B, H, 1, K], [B, H, 1, N]
    y = linear(merge_heads(out), **attention_params["out_proj"])  # [B, 1, D]
    y = y + mlp(layer_norm(y, **layernorm, eps=cfg.layer_norm_eps), cfg.hidden_act, **mlp_params)
    return y[:, 0], weights


# ---------------------------------------------------------------- the tower


def vision_embeddings(params, cfg, pixel_values, spatial_shapes=None, interpolate_pos_encoding=False,
                      position_resize="antialiased-bilinear"):  # fmt: skip
    """Patch embeddings + position embeddings -> ([B, N, D], patch_embeds, position_embeddings)."""
    emb = params["embeddings"]
    table = emb["position_embedding"]["weight"]  # [G*G, D]
    if cfg.variant == "naflex":
        patch_embeds = naflex_patch_embeddings(pixel_values, **emb["patch_embedding"])  # [B, N, D]
        positions = naflex_position_embeddings(table, spatial_shapes, pixel_values.shape[1], position_resize)  # [B, N, D]
    else:
        xp = get_xp(table)
        patch_embeds = fixres_patch_embeddings(pixel_values.astype(table.dtype), **emb["patch_embedding"])
        gh, gw = (s // cfg.patch_size for s in pixel_values.shape[2:])
        positions = fixres_position_embeddings(table, gh, gw, interpolate_pos_encoding)[None]  # [1, gh*gw, D]
        positions = xp.broadcast_to(positions, patch_embeds.shape)
    return patch_embeds + positions, patch_embeds, positions


def vision_model(params, cfg, pixel_values, pixel_attention_mask=None, spatial_shapes=None,
                 interpolate_pos_encoding=False, keep_hidden=False, keep_attentions=False, run_encoder=encoder,
                 position_resize="antialiased-bilinear"):  # fmt: skip
    """Pixels to pooled image embedding; returns a dict of named intermediates (big_vision's `out` style).

    In:  pixel_values [B, C, S, S] (FixRes; S = image_size) or [B, N, P] patch rows (NaFlex, with
         pixel_attention_mask [B, N] and spatial_shapes [B, 2] = (gh, gw) per image).
    Out: "last_hidden_state" [B, N, D], "pooler_output" [B, D] (the MAP head), "hidden_states" 1 + layers x
         [B, N, D] and "attentions" layers x [B, H, N, N] when kept, and the stem's intermediates.

    Mirrors: SiglipVisionTransformer / Siglip2VisionTransformer (transformers), vit.py / naflex_vit.py (big_vision).
    NaFlex padding: padded patches are masked as keys everywhere, but their own rows still attend to real
    patches, so `last_hidden_state` rows of padding are garbage (as in transformers) and must be ignored.
    """
    x, patch_embeds, positions = vision_embeddings(params, cfg, pixel_values, spatial_shapes, interpolate_pos_encoding,
                                                   position_resize)  # fmt: skip
    mask = pixel_attention_mask
    bias = None if mask is None else key_padding_bias(mask, x.dtype)  # [B, 1, 1, N]
    x, hidden_states, attentions = run_encoder(x, bias, params["encoder"]["layers"], cfg, keep_hidden, keep_attentions)
    x = layer_norm(x, **params["post_layernorm"], eps=cfg.layer_norm_eps)  # [B, N, D]
    out = dict(patch_embeds=patch_embeds, position_embeddings=positions, hidden_states=hidden_states,
               attentions=attentions, last_hidden_state=x, pooler_output=None, head_attention=None,
               pixel_attention_mask=mask)  # fmt: skip
    if cfg.vision_use_head:
        head = params["head"]
        out["pooler_output"], out["head_attention"] = map_head(
            x, mask, cfg, head["probe"], head["attention"], head["layernorm"], head["mlp"]
        )
    return out
