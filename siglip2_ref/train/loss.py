"""The joint head backward and SigLIP's sigmoid loss, whole and chunked over simulated devices in a ring.

    loss = -1/B sum_ij log sigmoid(z_ij * logit_ij),  z = +1 on the diagonal (matching pairs), -1 elsewhere
    d loss / d logit_ij = -z_ij sigmoid(-z_ij logit_ij) / B

No softmax means no global normalisation: every (text, image) pair is its own binary problem, so the [B, B]
matrix can be computed block by block. `chunked_sigmoid_loss` does exactly that for `devices` simulated
devices, each holding b = B / devices pairs and passing its text block around a ring (the SigLIP paper's
implementation; big_vision's `siglip.py` with `jax.lax.ppermute`): a device never holds more than one [b, b]
block of logits instead of the [B, B] matrix, and one [b, D] text block in flight.

Shapes: docs/shapes.md (B pairs, T texts, I images, D embedding width; b pairs per device).
"""

from ..backend import get_xp
from ..model.head import log_sigmoid, sigmoid, similarity_logits


def l2_normalize_backward(dy, y, x):  # [B, D] -> [B, D]; y = x / ||x||
    """d(x / n) = (dy - y (y . dy)) / n: the gradient loses its component along y (the norm is invariant)."""
    xp = get_xp(x)
    return (dy - y * (y * dy).sum(axis=-1, keepdims=True)) / xp.linalg.norm(x, axis=-1, keepdims=True)


def pair_signs(T, I, xp, dtype, diagonal=True):  # -> [T, I]
    """z: +1 for matching pairs (the diagonal of a block on the diagonal), -1 for every other pair."""
    return 2 * xp.eye(T, I, dtype=dtype) - 1 if diagonal else -xp.ones((T, I), dtype=dtype)


def sigmoid_loss_backward(logits, z, B):  # [T, I] -> [T, I]
    """d/d logit of -log sigmoid(z * logit) / B:  -z sigmoid(-z logit) / B."""
    return -z * sigmoid(-z * logits) / B


def similarity_logits_backward(dlogits, text_embeds, image_embeds, logit_scale):  # [T, I] -> [T, D], [I, D], [1], [1]
    """logits = (t i^T) exp(s) + b:  dt = dlogits i exp(s),  di = dlogits^T t exp(s),  ds = sum(dlogits * cos) exp(s)."""
    scale = get_xp(dlogits).exp(logit_scale)
    cosine = text_embeds @ image_embeds.T  # [T, I]
    return (dlogits @ image_embeds * scale, dlogits.T @ text_embeds * scale,
            (dlogits * cosine).sum().reshape(1) * scale, dlogits.sum().reshape(1))  # fmt: skip


def sigmoid_loss_block(text_embeds, image_embeds, logit_scale, logit_bias, B, diagonal):  # [b, D], [b, D] -> sum, grads
    """The sum over one block of pairs of -log sigmoid(z * logit), divided by the global B, and its gradients.

    Returns (loss part, d text block [b, D], d image block [b, D], d logit_scale [1], d logit_bias [1]).
    """
    xp = get_xp(text_embeds)
    logits = similarity_logits(text_embeds, image_embeds, logit_scale, logit_bias)  # [b, b]
    z = pair_signs(*logits.shape, xp, logits.dtype, diagonal)
    dlogits = sigmoid_loss_backward(logits, z, B)
    return (-log_sigmoid(z * logits).sum() / B, *similarity_logits_backward(dlogits, text_embeds, image_embeds, logit_scale))


def sigmoid_loss_and_grads(text_embeds, image_embeds, logit_scale, logit_bias):  # [B, D] x2 -> loss, 4 grads
    """model.head.sigmoid_loss(similarity_logits(...)) and its gradients, on the whole [B, B] matrix."""
    return sigmoid_loss_block(text_embeds, image_embeds, logit_scale, logit_bias, text_embeds.shape[0], True)


def chunked_sigmoid_loss(text_embeds, image_embeds, logit_scale, logit_bias, devices):  # [B, D] x2 -> loss, 4 grads
    """The same loss and gradients, computed by `devices` simulated devices passing text blocks around a ring.

    Device d holds image block d for the whole computation. At step k it holds text block (d + k) mod n with the
    gradient accumulated for that block so far; after its block's pairs are done both move to device d - 1
    (a ppermute). After n steps every text block, with its complete gradient, has come home. Per device:
    one [b, b] logits block and two [b, D] text arrays, never the [B, B] matrix.
    """
    xp = get_xp(text_embeds)
    B = text_embeds.shape[0]
    if B % devices:
        raise ValueError(f"chunked_sigmoid_loss: batch of {B} pairs does not split over {devices} devices")
    b = B // devices
    images = [image_embeds[d * b : (d + 1) * b] for d in range(devices)]  # stays on device d
    texts = [text_embeds[d * b : (d + 1) * b] for d in range(devices)]  # travels
    travelling = [xp.zeros_like(t) for t in texts]  # d loss / d (the text block a device holds now)
    dimages = [xp.zeros_like(i) for i in images]
    loss = dscale = dbias = 0.0
    for step in range(devices):
        for d in range(devices):  # all devices at once on real hardware
            part, dt, di, ds, db = sigmoid_loss_block(texts[d], images[d], logit_scale, logit_bias, B, step == 0)
            travelling[d] = travelling[d] + dt
            dimages[d] = dimages[d] + di
            loss, dscale, dbias = loss + part, dscale + ds, dbias + db  # psum over devices at the end
        texts, travelling = texts[1:] + texts[:1], travelling[1:] + travelling[:1]  # ring: device d gets d + 1's
    return loss, xp.concatenate(travelling), xp.concatenate(dimages), dscale, dbias
