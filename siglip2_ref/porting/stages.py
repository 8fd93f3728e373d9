"""Named stages: every intermediate of a forward pass as a flat {name: array} dict.

The names are those of the golden files (golden/README.md) and of `siglip2-ref dump`:
`vision.patch_embeds`, `vision.position_embeddings`, `vision.hidden_states.{i}`, `vision.attentions.{i}`,
`vision.last_hidden_state`, `vision.head_attention`, `vision.pooler_output`, `text.embeddings`,
`text.hidden_states.{i}`, `text.attentions.{i}`, `text.last_hidden_state`, `text.pooler_output`,
`image_embeds`, `text_embeds`, `logits_per_image`, `logits_per_text`, `probabilities`, `loss`, `logits`.
`text.pooled_token` (the final-norm row the text head reads, position -1) is derived here.

Preprocessing stages (`text.normalized`, `text.input_ids`, `image.rgb.{k}`, `image.resized.{k}`,
`image.normalized.{k}`, `vision.pixel_values`, `vision.pixel_attention_mask`, `vision.spatial_shapes`) come from
`conventions.preprocess`; `pipeline_order` sorts any set of stage names in the order the data flows.
Training stages are gradients: `grad.<stage>` (d loss / d that stage, e.g. `grad.vision.hidden_states.2`) and
`grad.<checkpoint key>` (d loss / d that parameter); they sort after the forward stages, in the order the
backward pass produces them (`gradient_stages`, train/grads.py).
docs/stages.md lists every name with its shape and its transformers / big_vision counterpart.
"""

import re

from ..model.head import sigmoid
from ..train.grads import GRAD_PREFIX, flatten, loss_and_grads

# Pipeline order: text, then image, then the joint head; within a tower, layer i's attention weights come
# before its output hidden_states.{i+1}. Per-image preprocessing stages are grouped by step, then by image.
PIPELINE = (
    "text.normalized", "text.input_ids", "text.embeddings", "text.hidden_states.0", "text.layers",
    "text.last_hidden_state", "text.pooled_token", "text.pooler_output",
    "image.rgb", "image.resized", "image.normalized",
    "vision.pixel_values", "vision.pixel_attention_mask", "vision.spatial_shapes",
    "vision.patch_embeds", "vision.position_embeddings", "vision.hidden_states.0", "vision.layers",
    "vision.last_hidden_state", "vision.head_attention", "vision.pooler_output",
    "image_embeds", "text_embeds", "logits_per_image", "logits_per_text", "probabilities", "loss", "logits",
)  # fmt: skip
_LAYER = re.compile(r"^(text|vision)\.(attentions|hidden_states)\.(\d+)$")
_PER_IMAGE = re.compile(r"^(image\.(?:rgb|resized|normalized))\.(\d+)$")


def stage_key(name):
    """Sort key placing `name` in pipeline order; unknown names go last, alphabetically, then the gradients."""
    if name.startswith(GRAD_PREFIX):
        inner = stage_key(name[len(GRAD_PREFIX) :])
        if inner[0] < len(PIPELINE):  # d loss / d a forward stage: the backward visits them in reverse
            return (len(PIPELINE) + 1, 0, -inner[0], -inner[1], "")
        return (len(PIPELINE) + 1, 1, 0, 0, inner[2])  # d loss / d a parameter, by checkpoint key
    layer = _LAYER.match(name)
    if layer and not (layer[2] == "hidden_states" and layer[3] == "0"):
        tower, kind, i = layer[1], layer[2], int(layer[3])
        step = 2 * i if kind == "attentions" else 2 * i - 1  # attentions.i, then hidden_states.{i+1}
        return (PIPELINE.index(f"{tower}.layers"), step, "")
    per_image = _PER_IMAGE.match(name)
    if per_image:
        return (PIPELINE.index(per_image[1]), int(per_image[2]), "")
    return (PIPELINE.index(name), 0, "") if name in PIPELINE else (len(PIPELINE), 0, name)


def pipeline_order(names):
    """`names` sorted in the order the data flows through the model."""
    return sorted(names, key=stage_key)

TOWER_STAGES = ("patch_embeds", "position_embeddings", "embeddings", "last_hidden_state", "head_attention", "pooler_output")


def flatten_tower(prefix, out):
    """{'vision.hidden_states.0': ..., 'vision.pooler_output': ...} from a tower's intermediates dict."""
    flat = {f"{prefix}.{name}": out[name] for name in TOWER_STAGES if out.get(name) is not None}
    for group in ("hidden_states", "attentions"):
        for i, value in enumerate(out.get(group) or ()):
            flat[f"{prefix}.{group}.{i}"] = value
    return flat


def run_stages(model, input_ids=None, pixel_values=None, attention_mask=None, pixel_attention_mask=None,
               spatial_shapes=None, interpolate_pos_encoding=False, return_loss=False, attentions=True,
               position_resize="antialiased-bilinear"):  # fmt: skip
    """Run `model` once and return every named stage it produced (`position_resize`: docs/conventions.md)."""
    keep = dict(keep_hidden=True, keep_attentions=attentions)
    stages, vision, text = {}, None, None
    if pixel_values is not None:
        resize = {} if position_resize == "antialiased-bilinear" else {"position_resize": position_resize}
        vision = model.vision_forward(pixel_values, pixel_attention_mask, spatial_shapes, interpolate_pos_encoding,
                                      **keep, **resize)  # fmt: skip
        stages |= flatten_tower("vision", vision)
    if input_ids is not None:
        text = model.text_forward(input_ids, attention_mask, **keep)
        stages |= flatten_tower("text", text)
        stages["text.pooled_token"] = text["last_hidden_state"][:, -1]  # what the text head reads
    if model.config.is_classifier and vision is not None:
        stages["logits"] = model.classifier_output(vision).logits
    elif vision is not None and text is not None and model.config.towers == "both":
        joint = model.joint_output(vision, text, return_loss)
        stages |= {name: joint[name] for name in ("image_embeds", "text_embeds", "logits_per_image", "logits_per_text")}
        stages["probabilities"] = sigmoid(joint.logits_per_image)
        if return_loss:
            stages["loss"] = joint.loss
    return stages


def gradient_stages(model, input_ids, pixel_values, attention_mask=None, pixel_attention_mask=None, spatial_shapes=None,
                    interpolate_pos_encoding=False, devices=1):  # fmt: skip
    """`loss` and every gradient stage (`grad.<stage>`, `grad.<checkpoint key>`) of one batch of matching pairs."""
    batch = dict(input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask,
                 pixel_attention_mask=pixel_attention_mask, spatial_shapes=spatial_shapes,
                 interpolate_pos_encoding=interpolate_pos_encoding)  # fmt: skip
    stages = {}
    loss, grads = loss_and_grads(model, batch, devices=devices, stage_grads=stages)
    return {"loss": loss} | stages | {GRAD_PREFIX + key: value for key, value in flatten(grads).items()}
