"""The loaded-model objects users hold: `Model` with its input checks, its outputs, and `load_model`.

Shape alphabet: I images, T texts, D width (shared embedding width), L labels.
"""

from dataclasses import dataclass, fields

import numpy as np

from ..backend import backend_module, get_xp, to_backend
from ..checkpoint.folder import resolve_checkpoint
from ..checkpoint.config import load_config
from .fast import FastEncoder
from .head import l2_normalize, masked_mean, sigmoid_loss, similarity_logits
from .layers import encoder
from .text import text_model
from .vision import InputError, vision_model
from ..checkpoint.quantized import parse_bits, read_block
from ..checkpoint.weights import CheckpointError, load_params
from .quant import DEFAULT_GROUP_SIZE, QuantizedWeight, is_quantized
from .quantized_weights import load_quantized_params, quantize_params

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
    try:
        arr = to_backend(x, xp) if type(x).__module__.startswith(("numpy", "cupy")) else xp.asarray(np.asarray(x))
    except (ValueError, TypeError) as e:  # ragged nested lists, objects NumPy cannot hold
        raise InputError(f"{name}: expected a rectangular {ndim}-d array of numbers ({e})") from None
    if arr.ndim == ndim - 1:
        arr = arr[None]
    if arr.ndim != ndim:
        raise InputError(f"{name}: expected {ndim} dimensions, got shape {tuple(arr.shape)}")
    if 0 in arr.shape[:2]:
        raise InputError(f"{name}: empty batch or sequence (shape {tuple(arr.shape)}); expected at least one item and one position")
    if dtype_kind == "int" and arr.dtype.kind not in "iub":
        raise InputError(f"{name}: expected integers, got dtype {arr.dtype}")
    if dtype_kind == "float" and arr.dtype.kind not in "fiu":
        raise InputError(f"{name}: expected numbers, got dtype {arr.dtype}")
    return arr


def _check_binary(mask, name, xp):
    """A 0/1 mask (ints or bools)."""
    if bool(((mask != 0) & (mask != 1)).any()):
        raise InputError(f"{name}: expected only 0 (padding) and 1 (real), got values {sorted(set(xp.unique(mask).tolist()))[:8]}")


def _check_finite(arr, name, xp):
    """No NaN or inf among the pixels: they would spread through attention to every output."""
    if arr.dtype.kind == "f" and not bool(xp.isfinite(arr).all()):
        bad = int((~xp.isfinite(arr)).sum())
        raise InputError(f"{name}: {bad} non-finite values (NaN or inf); expected finite normalised pixels")


def _check_index_range(arr, name, upper, what):
    if int(arr.min()) < 0 or int(arr.max()) >= upper:
        raise InputError(f"{name}: values must lie in [0, {upper}) ({what}), got [{int(arr.min())}, {int(arr.max())}]")


def check_text_inputs(cfg, input_ids, attention_mask, xp, position_ids=None):
    ids = _as_array(input_ids, "input_ids", xp, 2, "int")  # [T, N]
    if ids.shape[1] > cfg.max_position_embeddings:
        raise InputError(f"input_ids: sequence length {ids.shape[1]} exceeds max_position_embeddings {cfg.max_position_embeddings}")
    _check_index_range(ids, "input_ids", cfg.vocab_size, "vocab_size")
    if attention_mask is not None:
        attention_mask = _as_array(attention_mask, "attention_mask", xp, 2, "int")
        if attention_mask.shape != ids.shape:
            raise InputError(f"attention_mask: shape {tuple(attention_mask.shape)} != input_ids shape {tuple(ids.shape)}")
        _check_binary(attention_mask, "attention_mask", xp)
        if bool((attention_mask.sum(-1) == 0).any()):
            raise InputError("attention_mask: a row with no 1s (every position masked); expected at least one real token per text")
    if position_ids is not None:
        position_ids = _as_array(position_ids, "position_ids", xp, 2, "int")
        if position_ids.shape[1] != ids.shape[1] or position_ids.shape[0] not in (1, ids.shape[0]):
            raise InputError(f"position_ids: shape {tuple(position_ids.shape)} does not fit input_ids shape {tuple(ids.shape)}")
        _check_index_range(position_ids, "position_ids", cfg.max_position_embeddings, "max_position_embeddings")
    return ids.astype(xp.int64), attention_mask, position_ids


def check_fixres_pixels(cfg, pixel_values, interpolate, xp):
    """[I, C, S, S] at the checkpoint's image_size; other sizes only with interpolate_pos_encoding=True."""
    pixels = _as_array(pixel_values, "pixel_values", xp, 4, "float")
    S, P = cfg.image_size, cfg.patch_size
    if pixels.shape[1] != cfg.num_channels or min(pixels.shape[2:]) < P:
        raise InputError(f"pixel_values: expected [I, {cfg.num_channels}, H, W] with H, W >= {P}, got {tuple(pixels.shape)}")
    if tuple(pixels.shape[2:]) != (S, S) and not interpolate:
        raise InputError(f"pixel_values: expected [I, {cfg.num_channels}, {S}, {S}] (the checkpoint's image_size), got "
                         f"{tuple(pixels.shape)}; resize the images or pass interpolate_pos_encoding=True")  # fmt: skip
    _check_finite(pixels, "pixel_values", xp)
    return pixels


def check_spatial_shapes(spatial_shapes, I, N, xp):
    """[I, 2] positive (h, w) patch grids that fit the N patch slots."""
    if spatial_shapes is None:
        raise InputError("spatial_shapes is required for NaFlex checkpoints: [I, 2] patch-grid (h, w) per image")
    shapes = _as_array(spatial_shapes, "spatial_shapes", xp, 2, "int").astype(xp.int64)
    if shapes.shape != (I, 2) or bool((shapes < 1).any()) or bool((shapes.prod(-1) > N).any()):
        raise InputError(f"spatial_shapes: expected [{I}, 2] positive (h, w) with h*w <= {N} patches, got {shapes.tolist()}")
    return shapes


def check_pixel_mask(mask, shapes, I, N, xp):
    """[I, N] 0/1 with exactly h*w ones per image. None attends to every slot, padding too, as transformers does."""
    if mask is None:
        return None
    mask = _as_array(mask, "pixel_attention_mask", xp, 2, "int")
    if mask.shape != (I, N):
        raise InputError(f"pixel_attention_mask: expected shape {(I, N)}, got {tuple(mask.shape)}")
    _check_binary(mask, "pixel_attention_mask", xp)
    if bool((mask.sum(-1) != shapes.prod(-1)).any()):
        raise InputError(f"pixel_attention_mask: real patches per image {mask.sum(-1).tolist()} != h*w of spatial_shapes {shapes.prod(-1).tolist()}")
    return mask


def check_image_inputs(cfg, pixel_values, pixel_attention_mask, spatial_shapes, xp, dtype, interpolate=True):
    """FixRes: [I, C, H, W]. NaFlex: [I, N, C*P*P] + spatial_shapes [I, 2] (+ pixel_attention_mask [I, N])."""
    if cfg.variant == "fixres":
        return check_fixres_pixels(cfg, pixel_values, interpolate, xp).astype(dtype), None, None
    pixels = _as_array(pixel_values, "pixel_values", xp, 3, "float")  # [I, N, C*P*P]
    I, N, width = pixels.shape
    if width != cfg.num_channels * cfg.patch_size**2:
        raise InputError(f"pixel_values: NaFlex expects patchified input [I, N, {cfg.num_channels * cfg.patch_size**2}], got {tuple(pixels.shape)}")
    _check_finite(pixels, "pixel_values", xp)
    shapes = check_spatial_shapes(spatial_shapes, I, N, xp)
    mask = check_pixel_mask(pixel_attention_mask, shapes, I, N, xp)
    return pixels.astype(dtype), mask, shapes


# ---------------------------------------------------------------- non-finite outputs (damaged weights) are refused


class NonFiniteError(InputError):
    """A forward produced NaN or inf: the message names the first stage (and weight) where it appeared."""


TOWER_ORDER = {"vision": ("patch_embeds", "position_embeddings", "hidden_states", "last_hidden_state", "pooler_output"),
               "text": ("embeddings", "hidden_states", "last_hidden_state", "pooler_output")}  # fmt: skip


def first_bad_stage(tower, out, xp):
    """Name (as in porting/stages.py: 'vision.hidden_states.2') of the first non-finite intermediate of `out`."""
    for name in TOWER_ORDER[tower]:
        values = out.get(name)
        items = enumerate(values) if isinstance(values, (list, tuple)) else [(None, values)]
        for i, value in items:
            if value is not None and not bool(xp.isfinite(value).all()):
                return f"{tower}.{name}" + ("" if i is None else f".{i}")
    return f"{tower}.pooler_output"


def first_bad_param(params, prefix=""):
    """'first non-finite weight: <dotted name>' (a pass over the weights, made only after a failed forward)."""
    for key, value in params.items() if isinstance(params, dict) else enumerate(params):
        name = f"{prefix}{key}"
        if isinstance(value, (dict, list)):
            found = first_bad_param(value, name + ".")
            if found:
                return found
        elif getattr(getattr(value, "dtype", None), "kind", "") == "f" and not bool(get_xp(value).isfinite(value).all()):
            return f"first non-finite weight: {name}"
    return "" if prefix else "all weights are finite"


def check_finite_logits(logits, params, xp):
    """Finite embeddings can still give NaN/inf logits through logit_scale / logit_bias."""
    if not bool(xp.isfinite(logits).all()):
        scale, bias = float(params["logit_scale"].reshape(-1)[0]), float(params["logit_bias"].reshape(-1)[0])
        raise NonFiniteError(f"logits_per_text: non-finite (NaN or inf) from finite embeddings; expected finite "
                             f"logit_scale and logit_bias with exp(logit_scale) < float max, got {scale}, {bias}")  # fmt: skip


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

    quantization = None  # {"bits", "group_size", "stored"} when the Linear weights are quantized (model/quant.py)

    def __init__(self, config, params, backend="numpy", dtype="float32", path=None, run_encoder=encoder):
        self.config, self.params, self.backend, self.dtype, self.path = config, params, backend, dtype, path
        self.xp = backend_module(backend)
        self.run_encoder = run_encoder  # layers.encoder, or a faster drop-in with the same signature

    def __repr__(self):
        return f"Model({self.config.architecture or self.config.model_type}, variant={self.config.variant}, backend={self.backend}, dtype={self.dtype}, path={self.path})"

    def _require(self, tower):
        if getattr(self.config, tower) is None:
            raise InputError(f"this checkpoint ({self.config.architecture or self.config.model_type}) has no {tower} tower")

    def _finite_tower(self, tower, out, args):
        """`out` if its final outputs are finite; else a NonFiniteError naming the first non-finite stage.

        The check reads only the outputs (O(inputs)); on failure the tower is re-run keeping every hidden state.
        """
        final = [out[k] for k in ("last_hidden_state", "pooler_output") if out.get(k) is not None]
        if all(bool(self.xp.isfinite(a).all()) for a in final):
            return out
        forward = self.vision_forward if tower == "vision" else self.text_forward
        stage = first_bad_stage(tower, forward(*args, keep_hidden=True), self.xp)
        raise NonFiniteError(f"{tower} tower: non-finite values (NaN or inf), first at stage {stage!r}; "
                             f"{first_bad_param(self.params)}")  # fmt: skip

    def vision_forward(self, pixel_values, pixel_attention_mask=None, spatial_shapes=None,
                       interpolate_pos_encoding=False, keep_hidden=False, keep_attentions=False,
                       position_resize="antialiased-bilinear"):  # fmt: skip
        """All named vision intermediates (see vision.vision_model; `position_resize`: docs/conventions.md)."""
        self._require("vision")
        cfg = self.config.vision
        pixels, mask, shapes = check_image_inputs(cfg, pixel_values, pixel_attention_mask, spatial_shapes, self.xp, self.dtype,
                                                  interpolate_pos_encoding)  # fmt: skip
        return vision_model(self.params["vision_model"], cfg, pixels, mask, shapes, interpolate_pos_encoding, keep_hidden,
                            keep_attentions, self.run_encoder, position_resize)  # fmt: skip

    def text_forward(self, input_ids, attention_mask=None, position_ids=None, keep_hidden=False, keep_attentions=False):
        """All named text intermediates (see text.text_model)."""
        self._require("text")
        ids, mask, position_ids = check_text_inputs(self.config.text, input_ids, attention_mask, self.xp, position_ids)
        return text_model(self.params["text_model"], self.config.text, ids, mask, position_ids, keep_hidden, keep_attentions,
                          self.run_encoder)  # fmt: skip

    def get_image_features(self, pixel_values, pixel_attention_mask=None, spatial_shapes=None, interpolate_pos_encoding=False):
        """Pooled, un-normalised image embeddings [I, D] (transformers 4.x return type)."""
        args = (pixel_values, pixel_attention_mask, spatial_shapes, interpolate_pos_encoding)
        return self._finite_tower("vision", self.vision_forward(*args), args)["pooler_output"]

    def get_text_features(self, input_ids, attention_mask=None, position_ids=None):
        """Pooled, un-normalised text embeddings [T, D] (transformers 4.x return type)."""
        args = (input_ids, attention_mask, position_ids)
        return self._finite_tower("text", self.text_forward(*args), args)["pooler_output"]

    def __call__(self, input_ids=None, pixel_values=None, attention_mask=None, pixel_attention_mask=None,
                 spatial_shapes=None, position_ids=None, return_loss=False, interpolate_pos_encoding=False,
                 output_hidden_states=False, output_attentions=False):  # fmt: skip
        keep = dict(keep_hidden=bool(output_hidden_states), keep_attentions=bool(output_attentions))
        vision = text = None
        if pixel_values is not None:
            args = (pixel_values, pixel_attention_mask, spatial_shapes, interpolate_pos_encoding)
            vision = self._finite_tower("vision", self.vision_forward(*args, **keep), args)
        if input_ids is not None:
            args = (input_ids, attention_mask, position_ids)
            text = self._finite_tower("text", self.text_forward(*args, **keep), args)
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
        check_finite_logits(logits_per_text, self.params, self.xp)
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
        if not bool(self.xp.isfinite(logits).all()):
            raise NonFiniteError(f"logits: non-finite (NaN or inf) values from the classifier head; {first_bad_param(self.params)}")
        return ImageClassifierOutput(logits, vision["hidden_states"], vision["attentions"], tower_output(vision))


def load_model(path, backend="numpy", dtype="float32", fast=True, quantize=None, group_size=DEFAULT_GROUP_SIZE):
    """Load a SigLIP / SigLIP 2 checkpoint folder (or a hub id in the local HF cache) onto `backend` in `dtype`.

    fast=True (NumPy, float32/float64) runs the encoders through `fast.FastEncoder` (same weights, blocked and
    multi-threaded); fast=False, CuPy and float16 use the plain `layers.encoder`. Both give the same results
    within float32 rounding (tests/test_fast.py).

    quantize="int8" | "int4" replaces the Linear weights by int8 (per output channel) or int4 (`group_size`
    inputs per scale) codes at load time (model/quant.py, docs/quantization.md). A folder written by
    `siglip2-ref quantize` loads quantized as it is stored; `quantize` may then name the same kind or be None.
    """
    folder = resolve_checkpoint(path)
    config = load_config(folder)
    bits, block = parse_bits(quantize), read_block(folder)
    if block is not None:
        if bits not in (None, block["bits"]):
            raise CheckpointError(f"{folder}: is stored as int{block['bits']}; it cannot be loaded as int{bits} "
                                  "(quantize the float checkpoint instead)")  # fmt: skip
        params = load_quantized_params(folder, config, block, dtype)
        bits, group_size = block["bits"], block["group_size"]
    else:
        params = load_params(folder, config, dtype)
        if bits is not None:
            params = quantize_params(params, bits, group_size)
    return with_quantization(on_backend(config, params, backend, dtype, folder, fast), bits, group_size, block is not None)


def with_quantization(model, bits, group_size, stored=False):
    """`model` with its `quantization` facts set (what dumps record and `compare` reads)."""
    if bits is not None:
        model.quantization = {"bits": bits, "group_size": group_size if bits == 4 else None, "stored": stored}
    return model


def quantized_model(model, quantize, group_size=DEFAULT_GROUP_SIZE, fast=True):
    """A float `model` (loaded or in memory) with its Linear weights quantized: "int8" or "int4"."""
    bits = parse_bits(quantize)
    if bits is None:
        raise ValueError("quantized_model needs quantize='int8' or 'int4'")
    if model.quantization is not None or is_quantized(model.params):
        raise ValueError("this model is already quantized; quantize its float weights")
    params = quantize_params(model.params, bits, group_size)  # new dicts; float arrays shared, not copied
    fast = fast and model.run_encoder is not encoder
    return with_quantization(on_backend(model.config, params, model.backend, model.dtype, model.path, fast), bits, group_size)


def on_backend(config, params, backend, dtype, path=None, fast=True):
    """A Model of `params` (float arrays, QuantizedWeights) moved to `backend`, with the encoder that suits it."""
    xp = backend_module(backend)
    if xp is not np:
        params = tree_map(lambda a: a.to(xp) if isinstance(a, QuantizedWeight) else xp.asarray(a), params)
    fast = fast and xp is np and dtype in ("float32", "float64")  # the fast path is NumPy-only
    return Model(config, params, backend, dtype, path, FastEncoder() if fast else encoder)
