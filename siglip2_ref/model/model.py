"""The loaded-model objects users hold: `Model` with its input checks, its outputs, and `load_model`.

Shape alphabet: I images, T texts, D width (shared embedding width), L labels.
"""

from dataclasses import dataclass, fields

import numpy as np

from ..backend import backend_module, to_backend
from ..checkpoint.folder import resolve_checkpoint
from ..checkpoint.config import load_config
from .fast import FastEncoder
from .head import l2_normalize, masked_mean, sigmoid_loss, similarity_logits
from .layers import encoder
from .text import text_model
from .vision import InputError, vision_model
from ..checkpoint.weights import load_params

# ---------------------------------------------------------------- output objects (transformers' field names)


@dataclass
class Output:
    """Fields accessible as attributes or by name (`out.logits`, `out["logits"]`)."""

    def __getitem__(self, name):
        return getattr(self, name)

    def keys(self):
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]


@dataclass
class TowerOutput(Output):
    last_hidden_state: object = None
    pooler_output: object = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass
class SiglipOutput(Output):
    loss: object = None
    logits_per_image: object = None
    logits_per_text: object = None
    text_embeds: object = None
    image_embeds: object = None
    text_model_output: TowerOutput | None = None
    vision_model_output: TowerOutput | None = None


@dataclass
class ImageClassifierOutput(Output):
    logits: object = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    vision_model_output: TowerOutput | None = None


def tower_output(out):
    return TowerOutput(out["last_hidden_state"], out["pooler_output"], out["hidden_states"], out["attentions"])


# ---------------------------------------------------------------- input checks (clear errors instead of deep tracebacks)


def _as_array(x, name, xp, ndim, dtype_kind):
    """`x` on backend `xp` with `ndim` dims (a missing batch axis is added) and an int or float dtype."""
    arr = to_backend(x, xp) if type(x).__module__.startswith(("numpy", "cupy")) else xp.asarray(np.asarray(x))
    if arr.ndim == ndim - 1:
        arr = arr[None]
    if arr.ndim != ndim:
        raise InputError(f"{name}: expected {ndim} dimensions, got shape {tuple(arr.shape)}")
    if dtype_kind == "int" and arr.dtype.kind not in "iub":
        raise InputError(f"{name}: expected integers, got dtype {arr.dtype}")
    if dtype_kind == "float" and arr.dtype.kind not in "fiu":
        raise InputError(f"{name}: expected numbers, got dtype {arr.dtype}")
    return arr


def check_text_inputs(cfg, input_ids, attention_mask, xp):
    ids = _as_array(input_ids, "input_ids", xp, 2, "int")  # [T, N]
    if ids.shape[1] > cfg.max_position_embeddings:
        raise InputError(f"input_ids: sequence length {ids.shape[1]} exceeds max_position_embeddings {cfg.max_position_embeddings}")
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= cfg.vocab_size):
        raise InputError(f"input_ids: values must lie in [0, {cfg.vocab_size}), got [{int(ids.min())}, {int(ids.max())}]")
    if attention_mask is not None:
        attention_mask = _as_array(attention_mask, "attention_mask", xp, 2, "int")
        if attention_mask.shape != ids.shape:
            raise InputError(f"attention_mask: shape {tuple(attention_mask.shape)} != input_ids shape {tuple(ids.shape)}")
    return ids.astype(xp.int64), attention_mask


def check_image_inputs(cfg, pixel_values, pixel_attention_mask, spatial_shapes, xp, dtype):
    """FixRes: [I, C, H, W]. NaFlex: [I, N, C*P*P] + spatial_shapes [I, 2] (+ pixel_attention_mask [I, N])."""
    if cfg.variant == "fixres":
        pixels = _as_array(pixel_values, "pixel_values", xp, 4, "float")
        if pixels.shape[1] != cfg.num_channels or min(pixels.shape[2:]) < cfg.patch_size:
            raise InputError(f"pixel_values: expected [I, {cfg.num_channels}, H, W] with H, W >= {cfg.patch_size}, got {tuple(pixels.shape)}")
        return pixels.astype(dtype), None, None
    pixels = _as_array(pixel_values, "pixel_values", xp, 3, "float")  # [I, N, C*P*P]
    I, N, width = pixels.shape
    if width != cfg.num_channels * cfg.patch_size**2:
        raise InputError(f"pixel_values: NaFlex expects patchified input [I, N, {cfg.num_channels * cfg.patch_size**2}], got {tuple(pixels.shape)}")
    if spatial_shapes is None:
        raise InputError("spatial_shapes is required for NaFlex checkpoints: [I, 2] patch-grid (h, w) per image")
    shapes = _as_array(spatial_shapes, "spatial_shapes", xp, 2, "int").astype(xp.int64)
    if shapes.shape != (I, 2) or bool((shapes < 1).any()) or bool((shapes.prod(-1) > N).any()):
        raise InputError(f"spatial_shapes: expected [{I}, 2] positive (h, w) with h*w <= {N} patches, got {shapes.tolist()}")
    mask = pixel_attention_mask
    if mask is not None:
        mask = _as_array(mask, "pixel_attention_mask", xp, 2, "int")
        if mask.shape != (I, N):
            raise InputError(f"pixel_attention_mask: expected shape {(I, N)}, got {tuple(mask.shape)}")
        if bool((mask.sum(-1) != shapes.prod(-1)).any()):
            raise InputError(f"pixel_attention_mask: real patches per image {mask.sum(-1).tolist()} != h*w of spatial_shapes {shapes.prod(-1).tolist()}")
    return pixels.astype(dtype), mask, shapes


# ---------------------------------------------------------------- the model object users hold


def tree_map(fn, tree):
    if isinstance(tree, dict):
        return {k: tree_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [tree_map(fn, v) for v in tree]
    return fn(tree)


class Model:
    """A loaded SigLIP / SigLIP 2 checkpoint: config + nested parameters on one backend.

    Calls mirror transformers' SiglipModel / Siglip2Model / *VisionModel / *TextModel /
    *ForImageClassification, chosen by the checkpoint's config.json.
    """

    def __init__(self, config, params, backend="numpy", dtype="float32", path=None, run_encoder=encoder):
        self.config, self.params, self.backend, self.dtype, self.path = config, params, backend, dtype, path
        self.xp = backend_module(backend)
        self.run_encoder = run_encoder  # layers.encoder, or a faster drop-in with the same signature

    def __repr__(self):
        return f"Model({self.config.architecture or self.config.model_type}, variant={self.config.variant}, backend={self.backend}, dtype={self.dtype}, path={self.path})"

    def _require(self, tower):
        if getattr(self.config, tower) is None:
            raise InputError(f"this checkpoint ({self.config.architecture or self.config.model_type}) has no {tower} tower")

    def vision_forward(self, pixel_values, pixel_attention_mask=None, spatial_shapes=None,
                       interpolate_pos_encoding=False, keep_hidden=False, keep_attentions=False,
                       position_resize="antialiased-bilinear"):  # fmt: skip
        """All named vision intermediates (see vision.vision_model; `position_resize`: docs/conventions.md)."""
        self._require("vision")
        cfg = self.config.vision
        pixels, mask, shapes = check_image_inputs(cfg, pixel_values, pixel_attention_mask, spatial_shapes, self.xp, self.dtype)
        return vision_model(self.params["vision_model"], cfg, pixels, mask, shapes, interpolate_pos_encoding, keep_hidden,
                            keep_attentions, self.run_encoder, position_resize)  # fmt: skip

    def text_forward(self, input_ids, attention_mask=None, position_ids=None, keep_hidden=False, keep_attentions=False):
        """All named text intermediates (see text.text_model)."""
        self._require("text")
        ids, mask = check_text_inputs(self.config.text, input_ids, attention_mask, self.xp)
        if position_ids is not None:
            position_ids = _as_array(position_ids, "position_ids", self.xp, 2, "int")
        return text_model(self.params["text_model"], self.config.text, ids, mask, position_ids, keep_hidden, keep_attentions,
                          self.run_encoder)  # fmt: skip

    def get_image_features(self, pixel_values, pixel_attention_mask=None, spatial_shapes=None, interpolate_pos_encoding=False):
        """Pooled, un-normalised image embeddings [I, D] (transformers 4.x return type)."""
        return self.vision_forward(pixel_values, pixel_attention_mask, spatial_shapes, interpolate_pos_encoding)["pooler_output"]

    def get_text_features(self, input_ids, attention_mask=None, position_ids=None):
        """Pooled, un-normalised text embeddings [T, D] (transformers 4.x return type)."""
        return self.text_forward(input_ids, attention_mask, position_ids)["pooler_output"]

    def __call__(self, input_ids=None, pixel_values=None, attention_mask=None, pixel_attention_mask=None,
                 spatial_shapes=None, position_ids=None, return_loss=False, interpolate_pos_encoding=False,
                 output_hidden_states=False, output_attentions=False):  # fmt: skip
        keep = dict(keep_hidden=bool(output_hidden_states), keep_attentions=bool(output_attentions))
        vision = text = None
        if pixel_values is not None:
            vision = self.vision_forward(pixel_values, pixel_attention_mask, spatial_shapes, interpolate_pos_encoding, **keep)
        if input_ids is not None:
            text = self.text_forward(input_ids, attention_mask, position_ids, **keep)
        if self.config.is_classifier:
            return self._classify(vision)
        if self.config.towers != "both":
            out = vision or text
            if out is None:
                raise InputError(f"this {self.config.towers} model needs {'pixel_values' if self.config.towers == 'vision' else 'input_ids'}")
            return tower_output(out)
        if vision is None or text is None:
            raise InputError("a two-tower forward needs both input_ids and pixel_values; use get_image_features / get_text_features for one tower")
        return self._two_tower(vision, text, return_loss)

    def _two_tower(self, vision, text, return_loss):
        image_embeds = l2_normalize(vision["pooler_output"])  # [I, D]
        text_embeds = l2_normalize(text["pooler_output"])  # [T, D]
        logits_per_text = similarity_logits(text_embeds, image_embeds, self.params["logit_scale"], self.params["logit_bias"])  # [T, I]
        return SiglipOutput(
            loss=sigmoid_loss(logits_per_text) if return_loss else None,
            logits_per_image=logits_per_text.T, logits_per_text=logits_per_text,
            text_embeds=text_embeds, image_embeds=image_embeds,
            text_model_output=tower_output(text), vision_model_output=tower_output(vision),
        )  # fmt: skip

    def _classify(self, vision):
        """Mean of post-LN tokens (masked for NaFlex) -> linear classifier; the MAP head is not used."""
        if vision is None:
            raise InputError("an image-classification model needs pixel_values")
        mask = vision["pixel_attention_mask"]
        pooled = masked_mean(vision["last_hidden_state"], mask)  # [I, D]
        head = self.params.get("classifier")
        logits = pooled if head is None else pooled @ head["weight"].T + head["bias"]  # [I, L]; no labels -> identity
        return ImageClassifierOutput(logits, vision["hidden_states"], vision["attentions"], tower_output(vision))


def load_model(path, backend="numpy", dtype="float32", fast=True):
    """Load a SigLIP / SigLIP 2 checkpoint folder (or a hub id in the local HF cache) onto `backend` in `dtype`.

    fast=True (NumPy, float32/float64) runs the encoders through `fast.FastEncoder` (same weights, blocked and
    multi-threaded); fast=False, CuPy and float16 use the plain `layers.encoder`. Both give the same results
    within float32 rounding (tests/test_fast.py).
    """
    folder = resolve_checkpoint(path)
    config = load_config(folder)
    params = load_params(folder, config, dtype)
    xp = backend_module(backend)
    if xp is not np:
        params = tree_map(xp.asarray, params)
    fast = fast and xp is np and dtype in ("float32", "float64")  # the fast path is NumPy-only
    return Model(config, params, backend, dtype, folder, FastEncoder() if fast else encoder)
