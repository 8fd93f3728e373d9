"""The two-tower head: normalise, logits, the sigmoid loss, and the masked mean of the classification head.

    image_embeds = l2_normalize(pooled_image)                 # [I, D]
    logits_per_text = similarity_logits(text_embeds, image_embeds, logit_scale, logit_bias)   # [T, I]
    probabilities = sigmoid(logits_per_text)                  # independent per pair, never a softmax

Shapes: docs/shapes.md (I images, T texts, B batch, N sequence, D width).
"""

from ..backend import get_xp
from ..errors import InputError


def l2_normalize(x):  # [B, D] -> [B, D]
    """x / ||x||. No epsilon, as transformers (big_vision adds 1e-8): an all-zero vector gives NaN."""
    xp = get_xp(x)
    return x / xp.linalg.norm(x, axis=-1, keepdims=True)


def similarity_logits(text_embeds, image_embeds, logit_scale, logit_bias):  # [T, D], [I, D] -> [T, I]
    """Scaled, shifted cosine similarity. `logit_scale` is stored as a log: the multiplier is exp(logit_scale)."""
    xp = get_xp(text_embeds)
    return (text_embeds @ image_embeds.T) * xp.exp(logit_scale) + logit_bias


def log_sigmoid(x):
    """log(sigmoid(x)) without overflow."""
    xp = get_xp(x)
    return xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))


def sigmoid_loss(logits_per_text):  # [T, T] -> scalar
    """SigLIP's pairwise sigmoid loss: -sum_j log sigmoid(z_ij * logit_ij) averaged over rows; z = +1 on the
    diagonal (matching pairs), -1 elsewhere. Mirrors: SiglipModel.forward (transformers), siglip.py (big_vision)."""
    xp = get_xp(logits_per_text)
    T, I = logits_per_text.shape
    if T != I:
        raise InputError(f"return_loss=True needs matching pairs (as many texts as images), got {T} texts and {I} images")
    signs = 2 * xp.eye(T, dtype=logits_per_text.dtype) - 1  # [T, T]
    return -log_sigmoid(signs * logits_per_text).sum(axis=-1).mean()


def sigmoid(x):
    """Independent per-pair probabilities: SigLIP scores pairs with a sigmoid, never a softmax over labels."""
    xp = get_xp(x)
    return 1 / (1 + xp.exp(-x))


def masked_mean(x, mask):  # [B, N, D], [B, N] -> [B, D]
    """Mean over real tokens only (all tokens when mask is None). Mirrors: Siglip2ForImageClassification."""
    if mask is None:
        return x.mean(axis=1)
    m = mask.astype(x.dtype)[..., None]  # [B, N, 1]
    return (x * m).sum(axis=1) / m.sum(axis=1)
