"""Weight-only quantization (model/quant.py): codes and scales, the readable dequantize against the fast path.

The fast path is `matmul_t` (blocks of weight rows dequantized into the activation dtype, what layers.linear
and the fast encoder run for a quantized weight); it must give what the readable `dequantize` gives, and a
quantized model must equal a float model holding the dequantized weights.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import siglip2_ref as s2
from siglip2_ref.demo import DEMO_NAFLEX, EXAMPLE_IMAGE, shapes
from siglip2_ref.model import fast, quant
from siglip2_ref.model.layers import encoder, linear
from siglip2_ref.model.model import Model, load_model, quantized_model
from siglip2_ref.model.quant import QuantizedWeight, dequantize, dequantize_tree, pack_int4, quantize, unpack_int4
from siglip2_ref.model.fast import FastEncoder
from siglip2_ref.backend import to_numpy
from siglip2_ref.porting.stages import run_stages
from siglip2_ref.porting.tolerances import assert_close
from siglip2_ref.preprocess.processor import load_processor


def weight(O=24, I=128, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal((O, I)).astype(dtype)


@given(st.lists(st.integers(-7, 7), min_size=2, max_size=64).filter(lambda c: len(c) % 2 == 0))
@settings(max_examples=50, deadline=None)
def test_int4_packing_round_trips(codes):
    c = np.array(codes, np.int8).reshape(1, -1)
    packed = pack_int4(c)
    assert packed.dtype == np.uint8 and packed.shape == (1, c.shape[1] // 2)
    assert np.array_equal(unpack_int4(packed), c)


def test_int4_layout_is_low_nibble_first():
    """The documented byte layout: column 2i in the low nibble, 2i + 1 in the high one, each stored as code + 8."""
    assert pack_int4(np.array([[-8 + 3, -8 + 10]], np.int8))[0, 0] == 3 | (10 << 4)


@pytest.mark.parametrize("bits, group, shape", [(8, None, (24, 1)), (4, 32, (24, 4)), (4, 64, (24, 2))])
def test_codes_scales_and_error_bound(bits, group, shape):
    w = weight()
    q = quantize(w, bits, group or 64)
    assert q.scales.shape == shape and q.shape == w.shape and q.group_size == 128 // shape[1]
    codes = quant.integer_codes(q)
    assert np.abs(codes).max() == quant.qmax(bits)  # every group's largest weight takes the largest code
    step = np.repeat(q.scales, q.group_size, axis=1)  # [O, I]: each element's scale
    assert np.all(np.abs(dequantize(q) - w) <= step / 2 * (1 + 1e-6))  # round to nearest: at most half a step


def test_zero_rows_and_odd_widths():
    w = weight(4, 48)
    w[1] = 0
    q = quantize(w, 4, 64)  # 48 inputs, G 64 -> G 16 (the largest divisor of 48 that divides 64)
    assert q.group_size == 16 and np.all(dequantize(q)[1] == 0) and np.isfinite(q.scales).all()
    with pytest.raises(ValueError, match="even group size"):
        quantize(weight(4, 9), 4, 64)
    with pytest.raises(ValueError, match="bits"):
        quantize(w, 3)


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_linear_equals_the_readable_dequantize(bits, dtype, monkeypatch):
    monkeypatch.setattr(quant, "WORK_BYTES", 5 * 128 * np.dtype(dtype).itemsize)  # blocks of 5 rows: 5 blocks, a short last one
    w, b = quantize(weight(), bits), np.linspace(-1, 1, 24).astype(dtype)
    w = QuantizedWeight(w.bits, w.codes, w.scales.astype(dtype))
    x = np.random.default_rng(1).standard_normal((2, 3, 128)).astype(dtype)
    readable = x @ dequantize(w).T + b
    fast = linear(x, w, b)
    assert fast.dtype == dtype and fast.shape == (2, 3, 24)
    np.testing.assert_allclose(fast, readable, rtol=0, atol=50 * np.finfo(dtype).eps * np.abs(readable).max())


def test_packed_projection_splits_by_rows():
    """map_head splits the packed [q; k; v] projection with reshape(3, D, D): rows, with their scales."""
    q = quantize(weight(24, 128), 4, 32)
    parts = q.reshape(3, 8, 128)
    assert [p.shape for p in parts] == [(8, 128)] * 3
    assert np.array_equal(np.concatenate([dequantize(p) for p in parts]), dequantize(q))
    with pytest.raises(ValueError, match="splits only along its rows"):
        q.reshape(2, 24, 64)


@pytest.fixture(scope="module")
def demo_inputs():
    processor = load_processor(DEMO_NAFLEX)
    star = shapes.draw("blue", "star", "left", np.random.default_rng(0), size=(120, 90))
    return processor(text=["a red circle", "a blue star"], images=[EXAMPLE_IMAGE, star], padding="max_length", max_length=64)


@pytest.mark.parametrize("quantize_as", ["int8", "int4"])
def test_quantized_model_equals_float_model_of_dequantized_weights(quantize_as, demo_inputs):
    """Fast and plain encoders on quantized weights and a float model holding dequantize(w): the same stages."""
    fast, plain = load_model(DEMO_NAFLEX, quantize=quantize_as), load_model(DEMO_NAFLEX, quantize=quantize_as, fast=False)
    truth = Model(plain.config, dequantize_tree(plain.params, np.float32), dtype="float32")  # readable layers.encoder
    ref = run_stages(truth, **demo_inputs)
    for model in (fast, plain):
        stages = run_stages(model, **demo_inputs)
        for name, value in ref.items():
            np.testing.assert_allclose(stages[name], value, rtol=0, atol=2e-5 * max(1.0, np.abs(value).max()), err_msg=name)
    assert fast.quantization == {"bits": int(quantize_as[-1]), "group_size": 64 if quantize_as == "int4" else None, "stored": False}


def test_quantization_changes_the_weights_but_not_the_answer():
    float_model, processor = load_model(DEMO_NAFLEX), load_processor(DEMO_NAFLEX)
    labels = ["red circle", "blue star", "green square"]
    expected = s2.zero_shot(float_model, processor, EXAMPLE_IMAGE, labels)
    for kind in ("int8", "int4"):
        model = quantized_model(float_model, kind)
        got = s2.zero_shot(model, processor, EXAMPLE_IMAGE, labels)
        assert got[0][0] == expected[0][0] == "red circle"
        assert got[0][1] != expected[0][1] and abs(got[0][1] - expected[0][1]) < 0.02  # moved, a little
    with pytest.raises(ValueError, match="already quantized"):
        quantized_model(model, "int8")


@pytest.mark.parametrize("quantize_as", ["int8", "int4"])
def test_fast_encoder_on_quantized_layers(monkeypatch, quantize_as):
    """The fast encoder's blocks (token rows x weight rows, two threads) give the readable encoder's result on the
    dequantized weights, dequantizing each weight once per block of token rows, never the whole weight at once."""
    monkeypatch.setattr(fast, "BLOCK_ROWS", 3)  # 4 blocks of token rows
    monkeypatch.setattr(fast, "MIN_WORKER_ROWS", 0)
    monkeypatch.setattr(quant, "WORK_BYTES", 10 * 48 * 4)  # 10 weight rows of 48 inputs per block
    shapes = []
    monkeypatch.setattr(quant, "dequantize", lambda w, dtype=None: shapes.append(w.shape) or dequantize(w, dtype))
    model = load_model(DEMO_NAFLEX, quantize=quantize_as)
    layers = model.params["vision_model"]["encoder"]["layers"]
    x = np.random.default_rng(0).standard_normal((2, 5, 48)).astype(np.float32)
    readable = encoder(x, None, dequantize_tree(layers, np.float32), model.config.vision)[0]
    shapes.clear()
    got = FastEncoder(workers=2)(x, None, layers, model.config.vision)[0]
    np.testing.assert_allclose(got, readable, rtol=0, atol=1e-5)
    if quantize_as == "int8":
        assert shapes == []  # one scale per output row: the product is scaled, the weight never dequantized
    else:
        assert max(rows * inputs for rows, inputs in shapes) <= 10 * 48  # blocks of weight rows, as WORK_BYTES allows
        assert sum(rows for rows, _ in shapes) == 4 * len(layers) * (5 * 48 + 192)  # per token block: q k v out fc2, fc1


def test_quantize_argument_is_checked():
    with pytest.raises(ValueError, match="'int8', 'int4' or None"):
        load_model(DEMO_NAFLEX, quantize="int2")


@pytest.mark.parametrize("quantize_as", ["int8", "int4"])
def test_quantized_model_on_each_backend(backend, quantize_as, demo_inputs):
    """The same quantized code on NumPy and (where a GPU is present) CuPy: codes, scales and compute on the device."""
    model = load_model(DEMO_NAFLEX, backend=backend, quantize=quantize_as)
    host = run_stages(load_model(DEMO_NAFLEX, quantize=quantize_as), **demo_inputs)
    got = run_stages(model, **demo_inputs)
    fc1 = model.params["vision_model"]["encoder"]["layers"][0]["mlp"]["fc1"]["weight"]
    assert type(fc1.codes).__module__.split(".")[0] == ("numpy" if backend == "numpy" else "cupy")
    for stage in ("vision.pooler_output", "text.pooler_output", "logits_per_image"):
        assert_close(to_numpy(got[stage]), host[stage], "float32_stage", f"{backend} {quantize_as} {stage}")
