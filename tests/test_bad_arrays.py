"""Arrays through the Python API: every malformed input is refused up front with an InputError that says what
was expected, and a forward that would return NaN or inf raises NonFiniteError naming the first stage.

Tiny synthetic checkpoints (tests/synthetic.py): NaFlex with 9 patch slots of 2x2x3 pixels (a 3x3 position grid),
FixRes at 6x6 pixels with 2-pixel patches; text vocab 40, 64 positions. docs/bad_input.md lists the same classes.
"""

import numpy as np
import pytest

import siglip2_ref
from siglip2_ref import InputError, NonFiniteError
from siglip2_ref.model.model import load_model, tree_map
from siglip2_ref.tasks.pipelines import match_logits
from tests.synthetic import random_weights, tiny_config, tiny_shapes, write_checkpoint

N, PATCH = 9, 12  # NaFlex patch slots, C*P*P


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_arrays")
    out = {}
    for variant in ("naflex", "fixres"):
        config = tiny_config(variant)
        write_checkpoint(root / variant, config, random_weights(tiny_shapes(config), seed=3))
        out[variant] = root / variant
    return out


@pytest.fixture(scope="module")
def naflex(folders):
    return load_model(folders["naflex"])


@pytest.fixture(scope="module")
def fixres(folders):
    return load_model(folders["fixres"])


def naflex_inputs(I=2, shapes=((3, 3), (2, 2))):
    rng = np.random.default_rng(0)
    shapes = np.array(shapes[:I])
    mask = (np.arange(N)[None] < shapes.prod(-1)[:, None]).astype(np.int32)
    return dict(pixel_values=rng.normal(size=(I, N, PATCH)).astype(np.float32), spatial_shapes=shapes,
                pixel_attention_mask=mask)  # fmt: skip


def text_inputs(T=2, L=8):
    return dict(input_ids=np.arange(T * L).reshape(T, L) % 40)


def fixres_pixels(I=2, S=6):
    return np.random.default_rng(0).normal(size=(I, 3, S, S)).astype(np.float32)


def with_(base, **changes):
    return {**base, **changes}


def nan_at(a, index=(0, 0, 0)):
    a = np.array(a, dtype=np.float32)
    a[index] = np.nan
    return a


NAFLEX_CASES = {
    "nan pixel": (with_(naflex_inputs(), pixel_values=nan_at(naflex_inputs()["pixel_values"])), ["pixel_values", "non-finite", "NaN"]),
    "inf pixel": (with_(naflex_inputs(), pixel_values=naflex_inputs()["pixel_values"] * np.inf), ["pixel_values", "non-finite"]),
    "zero images": (dict(pixel_values=np.zeros((0, N, PATCH), np.float32), spatial_shapes=np.zeros((0, 2), int),
                         pixel_attention_mask=np.zeros((0, N), int)), ["pixel_values", "empty"]),  # fmt: skip
    "zero patch slots": (dict(pixel_values=np.zeros((1, 0, PATCH), np.float32), spatial_shapes=[[1, 1]]), ["pixel_values", "empty"]),
    "4-d pixels": (with_(naflex_inputs(), pixel_values=np.zeros((2, N, PATCH, 1), np.float32)), ["pixel_values", "3 dimensions"]),
    "string pixels": (with_(naflex_inputs(), pixel_values=np.full((2, N, PATCH), "a")), ["pixel_values", "expected numbers"]),
    "ragged pixels": (with_(naflex_inputs(), pixel_values=[[[0.0] * PATCH], [[0.0] * 3]]), ["pixel_values", "rectangular"]),
    "wrong patch width": (with_(naflex_inputs(), pixel_values=np.zeros((2, N, 7), np.float32)), ["pixel_values", f"[I, N, {PATCH}]"]),
    "spatial_shapes missing": (with_(naflex_inputs(), spatial_shapes=None), ["spatial_shapes is required", "[I, 2]"]),
    "spatial_shapes zero": (with_(naflex_inputs(), spatial_shapes=[[3, 3], [0, 2]]), ["spatial_shapes", "positive"]),
    "spatial_shapes negative": (with_(naflex_inputs(), spatial_shapes=[[3, 3], [-2, -2]]), ["spatial_shapes", "positive"]),
    "grid exceeds slots": (with_(naflex_inputs(), spatial_shapes=[[3, 3], [2, 5]]), ["spatial_shapes", f"h*w <= {N}"]),
    "spatial_shapes float": (with_(naflex_inputs(), spatial_shapes=[[3.0, 3.0], [2.0, 2.0]]), ["spatial_shapes", "integers"]),
    "spatial_shapes batch": (with_(naflex_inputs(), spatial_shapes=[[3, 3]]), ["spatial_shapes", "[2, 2]"]),
    "mask batch": (with_(naflex_inputs(), pixel_attention_mask=np.ones((3, N), int)), ["pixel_attention_mask", f"(2, {N})"]),
    "mask count": (with_(naflex_inputs(), pixel_attention_mask=np.ones((2, N), int)), ["pixel_attention_mask", "h*w", "[9, 4]"]),
    "mask values": (with_(naflex_inputs(), pixel_attention_mask=naflex_inputs()["pixel_attention_mask"] * 2),
                    ["pixel_attention_mask", "0 (padding) and 1"]),  # fmt: skip
    "mask float": (with_(naflex_inputs(), pixel_attention_mask=np.ones((2, N)) * 0.5), ["pixel_attention_mask", "integers"]),
}


@pytest.mark.parametrize("case", NAFLEX_CASES)
def test_naflex_image_inputs_refused(naflex, case):
    inputs, words = NAFLEX_CASES[case]
    with pytest.raises(InputError) as e:
        naflex.get_image_features(**inputs)
    for word in words:
        assert word in str(e.value), (case, str(e.value))


FIXRES_CASES = {
    "nan pixel": (dict(pixel_values=nan_at(fixres_pixels(), (1, 2, 3, 4))), ["pixel_values", "non-finite"]),
    "-inf pixel": (dict(pixel_values=-np.inf * np.ones((1, 3, 6, 6), np.float32)), ["pixel_values", "non-finite"]),
    "zero images": (dict(pixel_values=np.zeros((0, 3, 6, 6), np.float32)), ["pixel_values", "empty"]),
    "2-d pixels": (dict(pixel_values=np.zeros((6, 6), np.float32)), ["pixel_values", "4 dimensions"]),
    "complex pixels": (dict(pixel_values=np.zeros((1, 3, 6, 6), np.complex64)), ["pixel_values", "expected numbers"]),
    "channels last": (dict(pixel_values=np.zeros((1, 6, 6, 3), np.float32)), ["pixel_values", "[I, 3, H, W]"]),
    "other size": (dict(pixel_values=fixres_pixels(S=8)), ["[I, 3, 6, 6]", "image_size", "interpolate_pos_encoding=True"]),
    "off by one": (dict(pixel_values=fixres_pixels(S=7)), ["[I, 3, 6, 6]", "image_size"]),
    "smaller than a patch": (dict(pixel_values=fixres_pixels(S=1), interpolate_pos_encoding=True), ["H, W >= 2"]),
}


@pytest.mark.parametrize("case", FIXRES_CASES)
def test_fixres_image_inputs_refused(fixres, case):
    inputs, words = FIXRES_CASES[case]
    with pytest.raises(InputError) as e:
        fixres.get_image_features(**inputs)
    for word in words:
        assert word in str(e.value), (case, str(e.value))


def test_fixres_other_sizes_run_with_interpolation(fixres):
    assert fixres.get_image_features(fixres_pixels(S=8), interpolate_pos_encoding=True).shape == (2, 12)


TEXT_CASES = {
    "zero texts": (dict(input_ids=np.zeros((0, 8), int)), ["input_ids", "empty"]),
    "zero-length sequence": (dict(input_ids=np.zeros((2, 0), int)), ["input_ids", "empty"]),
    "empty list": (dict(input_ids=[]), ["input_ids", "empty"]),
    "negative id": (dict(input_ids=[[1, 2, -1]]), ["input_ids", "[0, 40)", "vocab_size"]),
    "id = vocab_size": (dict(input_ids=[[1, 40]]), ["input_ids", "[0, 40)"]),
    "float ids": (dict(input_ids=np.ones((1, 4))), ["input_ids", "integers"]),
    "3-d ids": (dict(input_ids=np.ones((1, 4, 1), int)), ["input_ids", "2 dimensions"]),
    "too long": (dict(input_ids=np.ones((1, 65), int)), ["input_ids", "max_position_embeddings 64"]),
    "mask shape": (dict(input_ids=np.ones((2, 8), int), attention_mask=np.ones((2, 7), int)), ["attention_mask", "(2, 7)", "(2, 8)"]),
    "mask values": (dict(input_ids=np.ones((1, 4), int), attention_mask=[[1, 1, 2, 0]]), ["attention_mask", "0 (padding) and 1"]),
    "mask all zero": (dict(input_ids=np.ones((2, 4), int), attention_mask=[[1, 1, 0, 0], [0, 0, 0, 0]]), ["attention_mask", "no 1s"]),
    "position ids range": (dict(input_ids=np.ones((1, 4), int), position_ids=[[0, 1, 2, -1]]), ["position_ids", "[0, 64)"]),
    "position ids shape": (dict(input_ids=np.ones((1, 4), int), position_ids=[[0, 1, 2]]), ["position_ids", "(1, 3)", "(1, 4)"]),
}


@pytest.mark.parametrize("case", TEXT_CASES)
def test_text_inputs_refused(naflex, case):
    inputs, words = TEXT_CASES[case]
    with pytest.raises(InputError) as e:
        naflex.get_text_features(**inputs)
    for word in words:
        assert word in str(e.value), (case, str(e.value))


def test_two_tower_call_checks_both_towers(naflex):
    with pytest.raises(InputError, match="input_ids"):
        naflex(input_ids=[[1, 99]], **naflex_inputs())
    with pytest.raises(InputError, match="pixel_values"):
        naflex(**text_inputs(), **with_(naflex_inputs(), pixel_values=nan_at(naflex_inputs()["pixel_values"])))


# ---------------------------------------------------------------- non-finite outputs


def damaged(model, path, value=np.nan):
    """A copy of `model` whose weight at `path` (keys into model.params) holds `value` in its first entry."""
    params = tree_map(lambda a: np.array(a, copy=True), model.params)  # memory-mapped arrays become writable copies
    node = params
    for key in path[:-1]:
        node = node[key]
    node[path[-1]].reshape(-1)[0] = value
    return siglip2_ref.Model(model.config, params, model.backend, model.dtype, model.path, model.run_encoder)


LAYER1_FC1 = ("vision_model", "encoder", "layers", 1, "mlp", "fc1", "weight")
DAMAGE = {
    "vision layer 1 fc1": ("vision", LAYER1_FC1, ["vision.hidden_states.2", "vision_model.encoder.layers.1.mlp.fc1.weight"]),
    "vision patch stem": ("vision", ("vision_model", "embeddings", "patch_embedding", "weight"),
                          ["vision.patch_embeds", "vision_model.embeddings.patch_embedding.weight"]),  # fmt: skip
    "vision post norm": ("vision", ("vision_model", "post_layernorm", "weight"), ["vision.last_hidden_state"]),
    "text layer 0 q": ("text", ("text_model", "encoder", "layers", 0, "self_attn", "q_proj", "weight"),
                       ["text.hidden_states.1", "text_model.encoder.layers.0.self_attn.q_proj.weight"]),  # fmt: skip
    "text token table": ("text", ("text_model", "embeddings", "token_embedding", "weight"), ["text.embeddings"]),
    "text head inf": ("text", ("text_model", "head", "weight"), ["text.pooler_output", "text_model.head.weight"]),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_damaged_weight_names_the_first_stage(naflex, case):
    tower, path, words = DAMAGE[case]
    model = damaged(naflex, path, np.inf if "inf" in case else np.nan)
    calls = [lambda: model(**text_inputs(), **naflex_inputs()),
             (lambda: model.get_image_features(**naflex_inputs())) if tower == "vision" else (lambda: model.get_text_features(**text_inputs()))]  # fmt: skip
    for call in calls:
        with pytest.raises(NonFiniteError) as e:
            call()
        for word in [f"{tower} tower", "non-finite", *words]:
            assert word in str(e.value), (case, str(e.value))


def test_damaged_fixres_model_with_hidden_states_requested(fixres):
    model = damaged(fixres, LAYER1_FC1)
    with pytest.raises(NonFiniteError, match=r"vision\.hidden_states\.2"):
        model(**text_inputs(), pixel_values=fixres_pixels(), output_hidden_states=True)


@pytest.mark.parametrize("scale", [np.inf, 1e4, np.nan])
def test_bad_logit_scale_is_refused_in_call_and_pipelines(naflex, scale):
    model = damaged(naflex, ("logit_scale",), scale)
    with pytest.raises(NonFiniteError, match="logit_scale"):
        model(**text_inputs(), **naflex_inputs())
    embeds = np.eye(2, 12, dtype=np.float32)
    with pytest.raises(NonFiniteError, match="logit_scale"):
        match_logits(model, embeds, embeds)


def test_search_refuses_nan_embeddings_naming_the_row():
    # The check sits where stored rows are read (tasks/embedfile.py), for arrays as for files (tests/test_index.py).
    from siglip2_ref.tasks.query import as_embeddings, top_k

    embeds = np.eye(2, 12, dtype=np.float32)
    with pytest.raises(InputError, match=r"row 1 .*NaN or inf"):
        top_k(as_embeddings(nan_at(embeds, (1, 3))), embeds[0], 2)


def test_nonfinite_error_is_exported_and_an_input_error():
    assert issubclass(siglip2_ref.NonFiniteError, InputError) and "NonFiniteError" in siglip2_ref.__all__


# ---------------------------------------------------------------- valid inputs: unchanged answers


def test_valid_inputs_give_the_same_answer_as_the_unchecked_towers(naflex):
    """The checks only refuse: accepted inputs reach the unchanged tower functions (goldens: test_golden_model)."""
    from siglip2_ref.model.text import text_model
    from siglip2_ref.model.vision import vision_model

    inputs = naflex_inputs()
    out = naflex(**text_inputs(), **inputs)
    vision = vision_model(naflex.params["vision_model"], naflex.config.vision, inputs["pixel_values"],
                          inputs["pixel_attention_mask"], inputs["spatial_shapes"], run_encoder=naflex.run_encoder)  # fmt: skip
    text = text_model(naflex.params["text_model"], naflex.config.text, text_inputs()["input_ids"], run_encoder=naflex.run_encoder)
    np.testing.assert_array_equal(out.vision_model_output.pooler_output, vision["pooler_output"])
    np.testing.assert_array_equal(out.text_model_output.pooler_output, text["pooler_output"])
    assert np.isfinite(out.logits_per_image).all()


def test_full_grid_needs_no_mask_and_bool_masks_are_accepted(naflex):
    inputs = naflex_inputs(1, ((3, 3),))
    plain = naflex.get_image_features(inputs["pixel_values"], spatial_shapes=inputs["spatial_shapes"])
    boolean = naflex.get_image_features(**with_(inputs, pixel_attention_mask=inputs["pixel_attention_mask"].astype(bool)))
    np.testing.assert_allclose(plain, boolean, rtol=1e-6, atol=1e-6)
