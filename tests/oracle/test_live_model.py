"""Live oracle: random tiny configs, built and run in transformers, loaded and run in siglip2_ref.

For each drawn config the transformers model is built, every parameter perturbed (as the
golden generator does), saved with `save_pretrained`, and loaded back twice: by
transformers and by `siglip2_ref.load_model`. Both run on the same random inputs and every
stage transformers exposes is compared with the named tolerance tiers. The stage capture is
the golden generator's own (`golden/make_golden.py`), so names and meanings match the
golden files.

Reference back-end: eager in float32 (it returns the attention maps). In float64 the
reference is SDPA, because eager computes its softmax in float32 even for a float64 model
and so is only float32-accurate; SDPA returns no attention maps, so float64 runs compare
everything else.

Logits are compared as the cosines they encode, (logit - logit_bias) / exp(logit_scale)
with both constants read from the checkpoint, and the error is measured against 1, the
largest possible |cosine|, with the usual tier. Measured against the batch's own largest
|logit| instead, the comparison breaks down on random weights: cos·exp(scale) often nearly
cancels the bias, and in a small batch all cosines can be ~0.01, so a 1e-7 cosine error
would read as 1e-5.

Known float64 gap: transformers 5.x resizes the NaFlex position grid in float32 even for
a float64 model, while siglip2_ref's float64 mode resizes in float64 (a documented
choice). NaFlex float64 stages that depend on the vision positions are therefore compared
at `NAFLEX_F64_VISION_TIER` instead of `float64` (measured: ~1e-7 stage-relative).
"""

import importlib.util
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import siglip2_ref as s2  # noqa: E402
from siglip2_ref.porting.tolerances import TIERS, assert_close  # noqa: E402

pytestmark = pytest.mark.oracle

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("make_golden", ROOT / "golden" / "make_golden.py")
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)

TEXT_LEN = 64
NAFLEX_F64_VISION_TIER = "float64_via_float32"  # transformers resizes NaFlex positions in float32 (docs/parity.md)
# Narrower towers make float32 LayerNorm ill-conditioned (two values per token: the variance
# can be tiny), so two correct float32 implementations drift apart by more than the float32
# tiers. Float64 runs, which check the formulas, start at hidden size 2.
MIN_HIDDEN = {"float64": 2, "float32": 16}
POOLED = {"image_embeds", "text_embeds", "logits_per_image", "logits_per_text", "loss", "logits"}
# Bounded: at most 25 examples per (variant, dtype), fewer if the active profile asks for fewer.
LIVE = settings(max_examples=min(settings.default.max_examples, 25))

HF_CLASSES = {
    ("fixres", "model"): ("SiglipModel", "SiglipConfig"),
    ("naflex", "model"): ("Siglip2Model", "Siglip2Config"),
    ("fixres", "classifier"): ("SiglipForImageClassification", "SiglipConfig"),
    ("naflex", "classifier"): ("Siglip2ForImageClassification", "Siglip2Config"),
    ("fixres", "vision"): ("SiglipVisionModel", "SiglipVisionConfig"),
    ("naflex", "vision"): ("Siglip2VisionModel", "Siglip2VisionConfig"),
    ("fixres", "text"): ("SiglipTextModel", "SiglipTextConfig"),
    ("naflex", "text"): ("Siglip2TextModel", "Siglip2TextConfig"),
}


# ---------------------------------------------------------------- strategies


@st.composite
def widths(draw, min_hidden):
    """(heads, hidden_size) with heads 1..4 and head_dim 2..12 (odd ones included), hidden >= min_hidden."""
    heads = draw(st.integers(-(-min_hidden // 12), 4))
    head_dim = draw(st.integers(max(2, -(-min_hidden // heads)), 12))
    return heads, heads * head_dim


@st.composite
def vision_configs(draw, variant, min_hidden):
    heads, hidden = draw(widths(min_hidden))
    patch = draw(st.integers(2, 6))
    cfg = dict(hidden_size=hidden, num_attention_heads=heads, intermediate_size=draw(st.integers(1, 40)),
               num_hidden_layers=draw(st.integers(1, 3)), patch_size=patch)  # fmt: skip
    if variant == "fixres":  # grid side 1..6; image_size a multiple of the patch or not
        cfg["image_size"] = draw(st.integers(1, 6)) * patch + draw(st.integers(0, patch - 1))
    else:  # the learned position grid is a square of 1..36 entries
        cfg["num_patches"] = draw(st.integers(1, 6)) ** 2
    return cfg


@st.composite
def text_configs(draw, vision_hidden, min_hidden):
    """Same width as the vision tower (default projection) or another width projected to it (g-opt layout)."""
    if vision_hidden is not None and draw(st.booleans()):
        heads = draw(st.sampled_from([h for h in (1, 2, 3, 4) if vision_hidden % h == 0 and vision_hidden // h >= 2]))
        hidden, projection = vision_hidden, None
    else:
        heads, hidden = draw(widths(min_hidden))
        projection = vision_hidden if vision_hidden is not None and vision_hidden != hidden else None
    cfg = dict(vocab_size=draw(st.integers(3, 300)), hidden_size=hidden, num_attention_heads=heads,
               intermediate_size=draw(st.integers(1, 40)), num_hidden_layers=draw(st.integers(1, 3)),
               max_position_embeddings=TEXT_LEN)  # fmt: skip
    if projection is not None:
        cfg["projection_size"] = projection
    return cfg


@st.composite
def cases(draw, variant, min_hidden):
    """(kind, transformers config kwargs, inputs as NumPy arrays, forward kwargs)."""
    kind = draw(st.sampled_from(["model", "model", "model", "vision", "text", "classifier"]))
    vision = draw(vision_configs(variant, min_hidden)) if kind != "text" else None
    vision_hidden = vision["hidden_size"] if kind == "model" else None
    text = draw(text_configs(vision_hidden, min_hidden)) if kind in ("model", "text") else None
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_images, n_texts = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    call = {}
    if kind == "model" and draw(st.booleans()):
        call["return_loss"], n_texts = True, n_images
    inputs = {}
    if text is not None:
        lengths = draw(st.lists(st.integers(1, TEXT_LEN), min_size=n_texts, max_size=n_texts))
        inputs["input_ids"] = text_ids(rng, lengths, text["vocab_size"])
        if draw(st.booleans()):
            inputs["attention_mask"] = (np.arange(TEXT_LEN)[None] < np.asarray(lengths)[:, None]).astype(np.int64)
    if vision is not None and variant == "fixres":
        patch, size = vision["patch_size"], vision["image_size"]
        height = width = size
        if draw(st.booleans()):  # another resolution, H != W allowed, with interpolated positions
            height, width = (draw(st.integers(patch, 8 * patch - 1)) for _ in range(2))
            call["interpolate_pos_encoding"] = True
        inputs["pixel_values"] = rng.uniform(-1, 1, size=(n_images, 3, height, width)).astype(np.float32)
    elif vision is not None:
        max_patches = draw(st.integers(1, 36))
        shapes = []
        for _ in range(n_images):
            h = draw(st.integers(1, max_patches))
            shapes.append((h, draw(st.integers(1, max_patches // h))))  # (h, 1) and (1, w) included
        inputs.update(golden.naflex_patches(rng, shapes, max_patches, vision["patch_size"]))
    return kind, {"vision": vision, "text": text}, inputs, call


def text_ids(rng, lengths, vocab):
    """[T, 64]: random ids >= 2, EOS (1) last, PAD (0) after it."""
    ids = np.zeros((len(lengths), TEXT_LEN), dtype=np.int64)
    for row, n in enumerate(lengths):
        ids[row, : n - 1] = rng.integers(2, vocab, size=n - 1)
        ids[row, n - 1] = 1
    return ids


# ---------------------------------------------------------------- building, running, comparing


def build_and_save(variant, kind, cfgs, folder, seed):
    """The transformers model for `cfgs`, perturbed and saved to `folder`; returns its class."""
    model_name, config_name = HF_CLASSES[(variant, kind)]
    config_cls = getattr(transformers, config_name)
    if kind == "model":
        config = config_cls(text_config=cfgs["text"], vision_config=cfgs["vision"])
    elif kind == "classifier":
        config = config_cls(vision_config=cfgs["vision"], num_labels=3)
    else:
        config = config_cls(**cfgs[kind])
    model_cls = getattr(transformers, model_name)
    model = model_cls(config)
    golden.perturb_(model, torch.Generator().manual_seed(seed))
    model.save_pretrained(folder)
    return model_cls


def reference(model_cls, folder, inputs, call, dtype):
    """transformers' stages under the golden file names (SDPA in float64: see the module docstring)."""
    attn = "sdpa" if dtype == "float64" else "eager"
    model = model_cls.from_pretrained(folder, attn_implementation=attn).eval()
    if dtype == "float64":
        model = model.double()
    return golden.run_case(model, inputs, call, dtype)


def ours(folder, kind, inputs, call, dtype):
    """siglip2_ref's stages under the golden file names."""
    model = s2.load_model(folder, dtype=dtype)
    feed = {k: (v.astype(dtype) if k == "pixel_values" else v) for k, v in inputs.items()}
    out = model(**feed, **call, output_hidden_states=True, output_attentions=True)
    arrays = {}
    if kind == "model":
        arrays.update(golden.tower_outputs("vision", out.vision_model_output))
        arrays.update(golden.tower_outputs("text", out.text_model_output))
        for key in ("image_embeds", "text_embeds", "logits_per_image", "logits_per_text", "loss"):
            if getattr(out, key) is not None:
                arrays[key] = out[key]
    elif kind == "classifier":
        arrays.update(golden.tower_outputs("vision", out.vision_model_output))
        arrays["logits"] = out.logits
    else:
        arrays.update(golden.tower_outputs(kind, out))
    if kind != "text" and hasattr(model, "vision_forward"):  # stages the public output does not carry
        stages = model.vision_forward(feed["pixel_values"], feed.get("pixel_attention_mask"),
                                      feed.get("spatial_shapes"), call.get("interpolate_pos_encoding", False))  # fmt: skip
        for name in ("patch_embeds", "position_embeddings", "head_attention"):
            if stages.get(name) is not None:
                arrays[f"vision.{name}"] = stages[name]
    return {k: s2.to_numpy(v) for k, v in arrays.items()}


def tier(key, dtype, variant):
    if dtype == "float64":
        depends_on_vision = not key.startswith("text.") and key != "vision.patch_embeds"
        return NAFLEX_F64_VISION_TIER if variant == "naflex" and depends_on_vision else "float64"
    return "float32_pooled" if key in POOLED or key.endswith("pooler_output") else "float32_stage"


def compare(actual, desired, dtype, variant, head=None):
    missing = sorted(k for k in desired if not k.startswith("input.") and k not in actual)
    assert not missing, f"siglip2_ref does not return: {missing}"
    for key, want in desired.items():
        if key.startswith("input."):
            continue
        got = actual[key]
        if key == "vision.position_embeddings" and np.shape(got) != want.shape:
            got = np.broadcast_to(got, want.shape)  # a table shared by all images may come back as [1, N, D]
        if key.startswith("logits_per_"):
            assert_cosines_close(got, want, head, TIERS[tier(key, dtype, variant)], key)
        elif key == "loss" and dtype == "float32":
            assert_loss_close(got, want, head, desired["logits_per_text"].shape[0], TIERS[tier(key, dtype, variant)])
        else:
            assert_close(got, want, tier(key, dtype, variant), name=key)


def assert_cosines_close(actual, desired, head, tier, name):
    """Logits compared as cosines, (logit - bias) / exp(scale); error relative to 1 = max |cosine|."""
    scale, bias = np.exp(head["logit_scale"]), head["logit_bias"]
    cos_actual, cos_desired = (actual - bias) / scale, (desired - bias) / scale
    err = np.abs(cos_actual - cos_desired)
    worst = np.unravel_index(int(np.argmax(err)), err.shape)
    assert err[worst] <= tier.rel, (
        f"{name}: cosine error {err[worst]:.3g} > {tier.rel:g} (tier {tier.name}: {tier.reason}) at {worst}; "
        f"(actual, desired) logits there: {(float(actual[worst]), float(desired[worst]))}"
    )


def assert_loss_close(actual, desired, head, T, tier):
    """The sigmoid loss in the logits' own units. loss = -(1/T) sum_ij log sigmoid(z_ij l_ij) has
    |d loss / d l_ij| <= 1/T, so |loss error| <= T * max |logit error| = T * exp(logit_scale) * max |cosine error|:
    the loss inherits the logits' cosine tier scaled by T * exp(logit_scale), not a tier relative to its own value
    (a small loss beside large logits showed 2.3e-6 relative while every cosine was within 2e-6)."""
    bound = tier.rel * T * float(np.exp(head["logit_scale"]).reshape(-1)[0])
    err = abs(float(np.asarray(actual).reshape(-1)[0]) - float(np.asarray(desired).reshape(-1)[0]))
    assert err <= bound, f"loss: error {err:.3g} > {bound:.3g} = {tier.rel:g} * T {T} * exp(logit_scale) (tier {tier.name})"


@pytest.fixture(autouse=True, scope="module")
def quiet_transformers():
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("variant", ["fixres", "naflex"])
@LIVE
@given(data=st.data())
def test_random_config_matches_transformers(variant, dtype, data):
    kind, cfgs, inputs, call = data.draw(cases(variant, MIN_HIDDEN[dtype]), label="kind, configs, inputs, call")
    seed = data.draw(st.integers(0, 2**31 - 1), label="parameter seed")
    with tempfile.TemporaryDirectory() as folder:
        model_cls = build_and_save(variant, kind, cfgs, folder, seed)
        desired = reference(model_cls, folder, inputs, call, dtype)
        actual = ours(folder, kind, inputs, call, dtype)
        weights = load_file(Path(folder) / "model.safetensors")
    head = {k: weights[k].astype(np.float64) for k in ("logit_scale", "logit_bias") if k in weights}
    compare(actual, desired, dtype, variant, head)
