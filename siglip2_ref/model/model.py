"""The loaded-model objects users hold: `Model` (its inputs are checked by inputs.py), its outputs, and `load_model`.

Shapes: docs/shapes.md (I images, T texts, D width, L labels).
"""

from dataclasses import dataclass, fields

import numpy as np

from ..backend import backend_module, get_xp
from ..checkpoint.folder import resolve_checkpoint
from ..checkpoint.config import load_config
from .fast import FastEncoder
from .inputs import check_image_inputs, check_text_inputs
from .head import l2_normalize, masked_mean, sigmoid_loss, similarity_logits
from .layers import encoder
from .text import text_model
from .vision import vision_model
from ..checkpoint.quantized import parse_bits, read_block
from ..checkpoint.weights import load_params
from ..errors import CheckpointError, InputError, NonFiniteError
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


# ---------------------------------------------------------------- non-finite outputs (damaged weights) are refused


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

    @property
    def emulation(self):
        """The reduced-precision emulation its encoder rounds with (porting/emulate.py), or None."""
        return getattr(self.run_encoder, "emulation", None)

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
        """The checkpoint's forward, as transformers' model class for it.

        Two towers: input_ids [T, N] and pixel_values ([I, C, S, S] FixRes; [I, N, P] + pixel_attention_mask [I, N]
        + spatial_shapes [I, 2] NaFlex) -> SiglipOutput with image_embeds [I, D], text_embeds [T, D] (L2-normalised),
        logits_per_image [I, T], logits_per_text [T, I], loss (return_loss=True, matching pairs) and each tower's
        output. One tower (a *VisionModel / *TextModel checkpoint): that tower's output. A classifier: logits [I, L].
        """
        keep = dict(keep_hidden=bool(output_hidden_states), keep_attentions=bool(output_attentions))
        vision = text = None
        if pixel_values is not None:
            args = (pixel_values, pixel_attention_mask, spatial_shapes, interpolate_pos_encoding)
            vision = self._finite_tower("vision", self.vision_forward(*args, **keep), args)
        if input_ids is not None:
            args = (input_ids, attention_mask, position_ids)
            text = self._finite_tower("text", self.text_forward(*args, **keep), args)
        if self.config.is_classifier:
            return self.classifier_output(vision)
        if self.config.towers != "both":
            out = vision or text
            if out is None:
                raise InputError(f"this {self.config.towers} model needs {'pixel_values' if self.config.towers == 'vision' else 'input_ids'}")
            return tower_output(out)
        if vision is None or text is None:
            raise InputError("a two-tower forward needs both input_ids and pixel_values; use get_image_features / get_text_features for one tower")
        return self.joint_output(vision, text, return_loss)

    def joint_output(self, vision, text, return_loss=False):
        """The two-tower output (embeddings [I, D] / [T, D], logits [I, T] / [T, I]) from each tower's named outputs."""
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

    def classifier_output(self, vision):
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
