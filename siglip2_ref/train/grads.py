"""`loss_and_grads(model, batch)`: SigLIP's sigmoid loss on a batch of matching pairs and every parameter's gradient.

    loss, grads = loss_and_grads(model, batch)    # batch: the processor's arrays for B texts and B images
    grads["vision_model"]["encoder"]["layers"][0]["mlp"]["fc1"]["weight"]   # same tree and keys as model.params
    flat = flatten(grads)                          # {"vision_model.encoder.layers.0.mlp.fc1.weight": ...}

The forward is model/'s functions (with their tapes kept, train/backward.py and train/towers.py), the backward
runs the same steps in reverse: loss -> logits -> normalisation -> pooled embeddings -> each tower.
Shapes: docs/shapes.md (B pairs, D embedding width).
"""

from ..model.head import l2_normalize
from ..model.inputs import check_image_inputs, check_text_inputs
from ..model.vision import InputError
from .loss import chunked_sigmoid_loss, l2_normalize_backward
from .towers import text_backward, text_forward, vision_backward, vision_forward

GRAD_PREFIX = "grad."  # d loss / d <stage or checkpoint key>, as porting/stages.py names them


def check_trainable(model):
    """Two towers with a MAP head: the models `return_loss=True` is defined for."""
    cfg = model.config
    if cfg.towers != "both" or cfg.is_classifier:
        raise InputError(f"loss_and_grads needs a two-tower SigLIP model, got {cfg.architecture or cfg.model_type}")
    if model.dtype not in ("float32", "float64"):
        raise InputError(f"loss_and_grads runs in float32 or float64; this model was loaded with dtype={model.dtype!r}")


def checked_batch(model, batch):
    """The batch arrays through the model's own input checks; B texts must pair with B images."""
    missing = [k for k in ("input_ids", "pixel_values") if batch.get(k) is None]
    if missing:
        raise InputError(f"loss_and_grads: batch lacks {missing}; expected the processor's arrays for texts and images")
    xp, cfg = model.xp, model.config
    pixels, mask, shapes = check_image_inputs(cfg.vision, batch["pixel_values"], batch.get("pixel_attention_mask"),
                                              batch.get("spatial_shapes"), xp, model.dtype,
                                              batch.get("interpolate_pos_encoding", False))  # fmt: skip
    ids, text_mask, _ = check_text_inputs(cfg.text, batch["input_ids"], batch.get("attention_mask"), xp)
    if ids.shape[0] != pixels.shape[0]:
        raise InputError(f"loss_and_grads: the sigmoid loss pairs text i with image i; got {ids.shape[0]} texts and {pixels.shape[0]} images")
    return pixels, mask, shapes, bool(batch.get("interpolate_pos_encoding", False)), ids, text_mask


def loss_and_grads(model, batch, devices=1, stage_grads=None):
    """(loss, grads): grads mirrors `model.params` (dicts and lists, the checkpoint's key names).

    `devices` > 1 computes the loss with the ring-chunked version (train/loss.py); the result is the same.
    `stage_grads`, a dict, receives d loss / d every named stage (`grad.vision.hidden_states.2`, ...).
    """
    check_trainable(model)
    pixels, mask, shapes, interpolate, ids, text_mask = checked_batch(model, batch)
    params, cfg = model.params, model.config
    pooled_image, vision_tape = vision_forward(params["vision_model"], cfg.vision, pixels, mask, shapes, interpolate)
    pooled_text, text_tape = text_forward(params["text_model"], cfg.text, ids, text_mask)
    image_embeds, text_embeds = l2_normalize(pooled_image), l2_normalize(pooled_text)  # [B, D]
    loss, dtext, dimage, dscale, dbias = chunked_sigmoid_loss(text_embeds, image_embeds, params["logit_scale"],
                                                              params["logit_bias"], devices)  # fmt: skip
    stages = {} if stage_grads is not None else None
    grads = {
        "vision_model": vision_backward(l2_normalize_backward(dimage, image_embeds, pooled_image), vision_tape,
                                        params["vision_model"], cfg.vision, stages),
        "text_model": text_backward(l2_normalize_backward(dtext, text_embeds, pooled_text), text_tape,
                                    params["text_model"], cfg.text, stages),
        "logit_scale": dscale.astype(params["logit_scale"].dtype), "logit_bias": dbias.astype(params["logit_bias"].dtype),
    }  # fmt: skip
    if stage_grads is not None:
        stages |= {"image_embeds": dimage, "text_embeds": dtext}
        stage_grads |= {GRAD_PREFIX + name: value for name, value in stages.items()}
    return loss, grads


def flatten(tree, prefix=""):
    """{'vision_model.encoder.layers.0.mlp.fc1.weight': array, ...}: the checkpoint's own key names."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list):
        items = enumerate(tree)
    else:
        return {prefix[:-1]: tree}
    flat = {}
    for key, value in items:
        flat |= flatten(value, f"{prefix}{key}.")
    return flat
