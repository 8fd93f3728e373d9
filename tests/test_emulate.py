"""Reduced-precision emulation: the rounding itself by hand, where it is applied, and the error it predicts."""

import numpy as np
import pytest

from siglip2_ref.porting.emulate import Emulation, emulated_layer, emulated_model, parse_emulation, round_bfloat16, round_float16
from siglip2_ref.model.layers import encoder_layer, key_padding_bias
from siglip2_ref.model.model import load_model
from siglip2_ref.porting.stages import run_stages
from siglip2_ref.porting.tolerances import TIERS, measure
from siglip2_ref.porting.verify import load_case
from tests.synthetic import GOLDEN_MODEL

ONE = np.float32(1)


@pytest.mark.parametrize("x, expected", [
    (1.0, 1.0),
    (1 + 2**-8, 1.0),  # exactly half an ulp (2^-7): ties to the even mantissa 1.0000000
    (1 + 3 * 2**-8, 1 + 2**-6),  # half-way between 1 + 2^-7 (odd) and 1 + 2^-6 (even)
    (1 + 2**-8 + 2**-20, 1 + 2**-7),  # just above half: up
    (-(1 + 2**-8), -1.0),
    (3.0e38, 3.0040553e38),  # 3.0e38 = 1.7632 x 2^127; 7-bit mantissa: 226/128 x 2^127
    (3.4e38, np.inf),  # beyond half an ulp above bfloat16's largest finite value 3.3895e38
    (2.0**-130, 2.0**-130),  # subnormal with few bits: exact
])  # fmt: skip
def test_round_bfloat16_by_hand(x, expected):
    assert round_bfloat16(np.array([x], np.float32))[0] == np.float32(expected)


def test_round_bfloat16_keeps_nan_and_leaves_16_zero_bits():
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    bits = round_bfloat16(x).view(np.uint32)
    assert not (bits & 0xFFFF).any()
    assert np.all(np.abs(round_bfloat16(x) - x) <= np.abs(x) * 2**-8)
    assert np.isnan(round_bfloat16(np.array([np.nan], np.float32))[0])


@pytest.mark.parametrize("x, expected", [(1 + 2**-11, 1.0), (1 + 3 * 2**-11, 1 + 2**-9), (65519.0, 65504.0), (65520.0, np.inf)])
def test_round_float16_by_hand(x, expected):
    assert round_float16(np.array([x], np.float32))[0] == np.float32(expected)


def test_emulation_spec_parsing_and_errors():
    assert parse_emulation("bfloat16") == Emulation("bfloat16", ("weights", "activations", "scores"))
    assert parse_emulation("float16:weights,scores").describe() == "float16:weights,scores"
    with pytest.raises(ValueError, match="one of"):
        parse_emulation("int8")
    with pytest.raises(ValueError, match="subset"):
        parse_emulation("float16:everything")


@pytest.fixture(scope="module")
def naflex_case():
    meta, inputs, _, folder = load_case("naflex_f32", GOLDEN_MODEL)
    return inputs, folder


def test_without_rounding_the_emulated_layer_is_the_plain_layer(naflex_case):
    inputs, folder = naflex_case
    model = load_model(folder, fast=False)
    cfg = model.config.vision
    x = np.random.default_rng(0).standard_normal((2, inputs["pixel_values"].shape[1], cfg.hidden_size)).astype(np.float32)
    bias = key_padding_bias(inputs["pixel_attention_mask"][:2], np.float32)
    layer = model.params["vision_model"]["encoder"]["layers"][0]
    out, weights = emulated_layer(x, bias, layer, cfg, lambda v: v, lambda v: v)
    expected, expected_weights = encoder_layer(x, bias, layer, cfg)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(weights, expected_weights)


def test_weights_point_rounds_every_parameter(naflex_case):
    _, folder = naflex_case
    emulated = emulated_model(load_model(folder), "bfloat16:weights")
    table = emulated.params["vision_model"]["embeddings"]["position_embedding"]["weight"]
    assert not (table.view(np.uint32) & 0xFFFF).any()
    assert emulated.emulation.describe() == "bfloat16:weights"


def test_emulation_needs_the_float32_numpy_path(naflex_case):
    _, folder = naflex_case
    with pytest.raises(ValueError, match="float32"):
        emulated_model(load_model(folder, dtype="float64"), "float16")


def test_errors_grow_with_coarser_formats_and_stay_in_their_tiers(naflex_case):
    inputs, folder = naflex_case
    reference = run_stages(load_model(folder, dtype="float64"), **inputs)
    stage = "vision.pooler_output"
    errors = {}
    for name, spec in (("float32", None), ("float16", "float16"), ("bfloat16", "bfloat16")):
        model = load_model(folder)
        model = emulated_model(model, spec) if spec else model
        errors[name] = measure(run_stages(model, **inputs)[stage], reference[stage]).max_rel
    assert errors["float32"] < errors["float16"] < errors["bfloat16"]
    assert errors["float16"] <= TIERS["float16"].rel and errors["bfloat16"] <= TIERS["bfloat16"].rel
    assert errors["bfloat16"] > 2**-9  # rounding really happened: above half a bfloat16 ulp
