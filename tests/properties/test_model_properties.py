"""Invariants of the model math, on random configs and inputs (float64, so equalities are tight)."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from siglip2_ref.checkpoint.config import parse_config
from siglip2_ref.model.layers import encoder, softmax
from siglip2_ref.model.model import Model
from siglip2_ref.checkpoint.weights import nest

from ..synthetic import random_weights, tiny_config, tiny_shapes

TIGHT = dict(rtol=1e-10, atol=1e-12)


@st.composite
def naflex_models(draw):
    heads, head_dim = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    grid = draw(st.integers(1, 5))
    config = tiny_config("naflex", hidden_size=heads * head_dim, num_attention_heads=heads,
                         intermediate_size=draw(st.integers(1, 9)), num_hidden_layers=draw(st.integers(1, 2)),
                         num_patches=grid * grid)  # fmt: skip
    config["text_config"]["projection_size"] = heads * head_dim  # the text head maps into the image width
    params = nest({k: v.astype(np.float64) for k, v in random_weights(tiny_shapes(config), draw(st.integers(0, 99))).items()})
    return Model(parse_config(config), params, dtype="float64")


@st.composite
def naflex_images(draw, model, count):
    """`count` images with random (h, w) grids, padded to a common N with garbage in the padding."""
    p = model.config.vision.patch_size
    shapes = [(draw(st.integers(1, 6)), draw(st.integers(1, 6))) for _ in range(count)]
    n = max(h * w for h, w in shapes) + draw(st.integers(0, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    pixels = rng.uniform(-1, 1, (count, n, 3 * p * p))
    mask = np.array([[1] * (h * w) + [0] * (n - h * w) for h, w in shapes], np.int32)
    return pixels, mask, np.array(shapes, np.int64)


@given(data=st.data(), model=naflex_models())
def test_padding_with_masked_patches_leaves_pooled_output_unchanged(data, model):
    pixels, mask, shapes = data.draw(naflex_images(model, 2))
    extra = data.draw(st.integers(1, 5))
    garbage = np.random.default_rng(extra).normal(0, 50, (2, extra, pixels.shape[2]))
    padded_pixels = np.concatenate([pixels, garbage], axis=1)
    padded_mask = np.concatenate([mask, np.zeros((2, extra), np.int32)], axis=1)
    a = model.get_image_features(pixels, mask, shapes)
    b = model.get_image_features(padded_pixels, padded_mask, shapes)
    np.testing.assert_allclose(b, a, **TIGHT)


@given(data=st.data(), model=naflex_models())
def test_per_item_results_do_not_depend_on_batch_composition(data, model):
    pixels, mask, shapes = data.draw(naflex_images(model, 3))
    batch = model.get_image_features(pixels, mask, shapes)
    order = data.draw(st.permutations(range(3)))
    shuffled = model.get_image_features(pixels[order], mask[order], shapes[order])
    np.testing.assert_allclose(shuffled, batch[order], **TIGHT)
    for i in range(3):
        np.testing.assert_allclose(model.get_image_features(pixels[i : i + 1], mask[i : i + 1], shapes[i : i + 1])[0], batch[i], **TIGHT)


@given(data=st.data(), model=naflex_models())
def test_encoder_without_positions_is_permutation_equivariant(data, model):
    n = data.draw(st.integers(1, 8))
    x = np.random.default_rng(n).normal(size=(2, n, model.config.vision.hidden_size))
    perm = np.array(data.draw(st.permutations(range(n))))
    layers, cfg = model.params["vision_model"]["encoder"]["layers"], model.config.vision
    out, _, _ = encoder(x, None, layers, cfg)
    out_perm, _, _ = encoder(x[:, perm], None, layers, cfg)
    np.testing.assert_allclose(out_perm, out[:, perm], **TIGHT)


@given(st.integers(1, 6), st.integers(1, 9), st.floats(-1e4, 1e4), st.integers(0, 99))
def test_softmax_rows_sum_to_one(rows, cols, shift, seed):
    scores = np.random.default_rng(seed).normal(0, 30, (rows, cols)) + shift
    weights = softmax(scores)
    assert np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-12)


@given(data=st.data(), model=naflex_models())
def test_text_tower_pools_the_last_position(data, model):
    """Changing any token but the last still changes the pooled output (no mask: pads attend to everything),
    and the pooled output equals the head applied to the final-norm state of position N-1."""
    ids = np.random.default_rng(data.draw(st.integers(0, 99))).integers(0, 40, (1, 8))
    out = model.text_forward(ids)
    head = model.params["text_model"]["head"]
    np.testing.assert_allclose(out["pooler_output"], out["last_hidden_state"][:, -1] @ head["weight"].T + head["bias"], **TIGHT)
