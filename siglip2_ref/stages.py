"""Named stages: every intermediate of a forward pass as a flat {name: array} dict.

The names are those of the golden files (golden/README.md) and of `siglip2-ref dump`:
`vision.patch_embeds`, `vision.position_embeddings`, `vision.hidden_states.{i}`, `vision.attentions.{i}`,
`vision.last_hidden_state`, `vision.head_attention`, `vision.pooler_output`, `text.embeddings`,
`text.hidden_states.{i}`, `text.attentions.{i}`, `text.last_hidden_state`, `text.pooler_output`,
`image_embeds`, `text_embeds`, `logits_per_image`, `logits_per_text`, `probabilities`, `loss`, `logits`.
"""

from .model import sigmoid

TOWER_STAGES = ("patch_embeds", "position_embeddings", "embeddings", "last_hidden_state", "head_attention", "pooler_output")


def flatten_tower(prefix, out):
    """{'vision.hidden_states.0': ..., 'vision.pooler_output': ...} from a tower's intermediates dict."""
    flat = {f"{prefix}.{name}": out[name] for name in TOWER_STAGES if out.get(name) is not None}
    for group in ("hidden_states", "attentions"):
        for i, value in enumerate(out.get(group) or ()):
            flat[f"{prefix}.{group}.{i}"] = value
    return flat


def run_stages(model, input_ids=None, pixel_values=None, attention_mask=None, pixel_attention_mask=None,
               spatial_shapes=None, interpolate_pos_encoding=False, return_loss=False, attentions=True):  # fmt: skip
    """Run `model` once and return every named stage it produced."""
    keep = dict(keep_hidden=True, keep_attentions=attentions)
    stages, vision, text = {}, None, None
    if pixel_values is not None:
        vision = model.vision_forward(pixel_values, pixel_attention_mask, spatial_shapes, interpolate_pos_encoding, **keep)
        stages |= flatten_tower("vision", vision)
    if input_ids is not None:
        text = model.text_forward(input_ids, attention_mask, **keep)
        stages |= flatten_tower("text", text)
    if model.config.is_classifier and vision is not None:
        stages["logits"] = model._classify(vision).logits
    elif vision is not None and text is not None and model.config.towers == "both":
        joint = model._two_tower(vision, text, return_loss)
        stages |= {name: joint[name] for name in ("image_embeds", "text_embeds", "logits_per_image", "logits_per_text")}
        stages["probabilities"] = sigmoid(joint.logits_per_image)
        if return_loss:
            stages["loss"] = joint.loss
    return stages
