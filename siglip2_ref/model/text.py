"""Text tower: token + position embeddings, bidirectional encoder, final norm, last-position pooling, head.

Shapes: docs/shapes.md (B batch of texts, N positions, D width, V vocabulary, E output width).
"""

from .layers import encoder, key_padding_bias, layer_norm, linear


def text_embeddings(params, input_ids, position_ids=None):  # [B, N] -> [B, N, D]
    """token_embedding[ids] + position_embedding[0:N]; no sqrt(D) scaling, no padding_idx.

    Mirrors: SiglipTextEmbeddings (transformers), TextTransformer embedding + posemb (big_vision).
    Only the rows that are used are gathered, so a memory-mapped 256k x D table is never read whole.
    """
    tokens = params["token_embedding"]["weight"][input_ids]  # [B, N, D]
    table = params["position_embedding"]["weight"]  # [64, D]
    return tokens + (table[: input_ids.shape[1]] if position_ids is None else table[position_ids])


def text_model(params, cfg, input_ids, attention_mask=None, position_ids=None, keep_hidden=False, keep_attentions=False,
               run_encoder=encoder):  # fmt: skip
    """Token ids to the pooled text embedding; returns a dict of named intermediates.

    In:  input_ids [B, N] (N <= max_position_embeddings, 64 for every official checkpoint), optional
         attention_mask [B, N] and position_ids [B, N] or [1, N].
    Out: "last_hidden_state" [B, N, D], "pooler_output" [B, E] (head of the last position; E = projection_size, = D in official checkpoints),
         "hidden_states" 1 + layers x [B, N, D] and "attentions" layers x [B, H, N, N] when kept.

    Mirrors: SiglipTextTransformer (transformers), text_transformer.py with pool_type="last" (big_vision).
    Official processors never produce a text attention mask (the model was trained without one);
    passing one masks padded keys and changes the result, as it does in transformers.
    """
    x = embeddings = text_embeddings(params["embeddings"], input_ids, position_ids)  # [B, N, D]
    bias = None if attention_mask is None else key_padding_bias(attention_mask, x.dtype)  # [B, 1, 1, N]
    x, hidden_states, attentions = run_encoder(x, bias, params["encoder"]["layers"], cfg, keep_hidden, keep_attentions)
    x = layer_norm(x, **params["final_layer_norm"], eps=cfg.layer_norm_eps)  # [B, N, D]
    # Pools the LAST position, whatever token it holds: under right padding to 64 that is usually <pad>,
    # which (with no mask) has attended to the whole text. big_vision calls this pool_type="last".
    pooled = linear(x[:, -1, :], **params["head"])  # [B, E]
    return dict(embeddings=embeddings, hidden_states=hidden_states,
                attentions=attentions, last_hidden_state=x, pooler_output=pooled)  # fmt: skip
