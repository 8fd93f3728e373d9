"""The fast encoder (siglip2_ref/model/fast.py) against the readable one (layers.encoder) and the transformers goldens.

The golden end-to-end tests already run through the fast path (load_model's default); here the two paths
are compared directly, on the golden checkpoints and on random configs chosen to reach every branch of the
fast path: several row blocks and a short last one, two workers, head groups and query blocks in attention,
padding at the end of an image (keys skipped) and anywhere else (bias added), float32 and float64.
"""

import tracemalloc

import numpy as np
import pytest

import siglip2_ref as s2
from siglip2_ref import backend
from siglip2_ref.model import fast
from siglip2_ref.checkpoint.config import parse_config
from siglip2_ref.model.fast import FastEncoder
from siglip2_ref.model.layers import encoder, key_padding_bias
from siglip2_ref.porting.stages import run_stages
from siglip2_ref.porting.tolerances import assert_close
from siglip2_ref.porting.verify import case_names, load_case
from tests.synthetic import GOLDEN_MODEL
from siglip2_ref.checkpoint.weights import nest

from .synthetic import random_weights, tiny_config, tiny_shapes

TIER = {"float32": "float32_stage", "float64": "float64"}


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks small enough that tiny models take every branch: many row blocks, threads, query blocks."""
    monkeypatch.setattr(fast, "BLOCK_ROWS", 7)
    monkeypatch.setattr(fast, "CHUNK_ELEMENTS", 25)  # two or three rows per elementwise chunk
    monkeypatch.setattr(fast, "SCORE_BYTES", 2048)
    monkeypatch.setattr(fast, "MIN_WORKER_ROWS", 0)


def random_tower(dtype, heads=3, head_dim=4, intermediate=11, layers=2, act="gelu_pytorch_tanh", seed=0):
    config = tiny_config("naflex", hidden_size=heads * head_dim, num_attention_heads=heads, intermediate_size=intermediate,
                         num_hidden_layers=layers, hidden_act=act)  # fmt: skip
    config["text_config"]["projection_size"] = heads * head_dim  # the text head maps into the image width
    params = nest({k: v.astype(dtype) for k, v in random_weights(tiny_shapes(config), seed).items()})
    return params["vision_model"]["encoder"]["layers"], parse_config(config).vision


def padded_mask(B, N, rng):
    """Image 0 full, image 1 padded at the end (keys skipped), image 2 with holes (bias added)."""
    mask = np.ones((B, N), np.int32)
    mask[1 % B, N // 2 :] = 0
    if B > 2:
        mask[2, rng.permutation(N)[: N // 3]] = 0
        mask[2, 0] = 1
    return mask


def assert_same_outputs(fast_out, plain_out, dtype, what):
    (x, hidden, attn), (x0, hidden0, attn0) = fast_out, plain_out
    assert x.dtype == x0.dtype == np.dtype(dtype)
    assert_close(x, x0, TIER[dtype], f"{what} last layer")
    assert (hidden is None) == (hidden0 is None) and (attn is None) == (attn0 is None)
    for i, (a, b) in enumerate(zip(hidden or (), hidden0 or ())):
        assert_close(a, b, TIER[dtype], f"{what} hidden_states.{i}")
    for i, (a, b) in enumerate(zip(attn or (), attn0 or ())):
        assert_close(a, b, TIER[dtype], f"{what} attentions.{i}")
        np.testing.assert_array_equal(a == 0, b == 0, err_msg=f"{what} attentions.{i}: padded keys must get weight exactly 0")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("keep", [(False, False), (True, True)])
@pytest.mark.parametrize("B", [3, 4])  # 3 images on 2 workers: barriers between steps; 4 without outputs kept: 2 per worker
def test_fast_encoder_matches_plain_on_random_configs(small_blocks, dtype, masked, keep, B):
    rng = np.random.default_rng(1)
    layers, cfg = random_tower(dtype)
    N = 23  # 69 or 92 rows: blocks of 7 and a short one; 23 x 23 scores > 2048 bytes: query blocks
    x = rng.standard_normal((B, N, cfg.hidden_size)).astype(dtype)
    bias = key_padding_bias(padded_mask(B, N, rng), np.dtype(dtype)) if masked else None
    got = FastEncoder(workers=2)(x, bias, layers, cfg, *keep)
    assert_same_outputs(got, encoder(x, bias, layers, cfg, *keep), dtype, f"{dtype} masked={masked}")


@pytest.mark.parametrize("act", ["gelu_pytorch_tanh", "quick_gelu", "relu"])
@pytest.mark.parametrize("heads, head_dim", [(1, 5), (4, 3), (2, 16)])
def test_fast_encoder_matches_plain_for_other_shapes_and_activations(small_blocks, act, heads, head_dim):
    layers, cfg = random_tower("float64", heads, head_dim, intermediate=9, layers=1, act=act, seed=heads)
    x = np.random.default_rng(heads).standard_normal((2, 6, cfg.hidden_size))
    bias = key_padding_bias(np.array([[1] * 6, [1] * 4 + [0] * 2]), np.float64)
    assert_same_outputs(FastEncoder(workers=2)(x, bias, layers, cfg, True, True), encoder(x, bias, layers, cfg, True, True),
                        "float64", f"{act} H={heads} K={head_dim}")  # fmt: skip


def test_blocked_attention_matches_plain_at_long_sequences_with_full_weights(monkeypatch):
    """N = 700 with the default block sizes: float64 scores of one head (3.9 MB) exceed SCORE_BYTES, so
    queries go in blocks of 93 rows; output_attentions still returns the whole [B, H, N, N] weights."""
    monkeypatch.setattr(fast, "MIN_WORKER_ROWS", 0)
    layers, cfg = random_tower("float64", heads=2, head_dim=4, layers=1)
    N = 700
    assert N * N * 8 > fast.SCORE_BYTES
    x = np.random.default_rng(2).standard_normal((1, N, cfg.hidden_size))
    bias = key_padding_bias(np.array([[1] * 650 + [0] * 50]), np.float64)
    got = FastEncoder(workers=2)(x, bias, layers, cfg, False, True)
    assert got[2][0].shape == (1, 2, N, N)
    assert_same_outputs(got, encoder(x, bias, layers, cfg, False, True), "float64", "N=700")


def peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_long_sequence_memory_grows_linearly_not_quadratically(monkeypatch):
    """At N = 2048 the plain path holds [B, H, N, N] scores (64 MiB here); the fast path stays within its
    O(N D) buffers plus SCORE_BYTES of scores per worker (NumPy reports its allocations to tracemalloc)."""
    monkeypatch.setattr(fast, "MIN_WORKER_ROWS", 0)  # two workers, each with its own scores buffer
    layers, cfg = random_tower("float64", heads=2, head_dim=4, layers=1)
    N = 2048
    x = np.random.default_rng(3).standard_normal((1, N, cfg.hidden_size))
    encode = FastEncoder(workers=2)
    plain = peak_bytes(lambda: encoder(x, None, layers, cfg))
    quick = peak_bytes(lambda: encode(x, None, layers, cfg))
    linear_bound = 2 * fast.SCORE_BYTES + 6 * N * (cfg.hidden_size + cfg.intermediate_size) * 8  # 2 workers
    assert plain > 2 * N * N * 8  # the quadratic buffer is really there in the plain path
    assert quick < linear_bound < plain / 8, (quick, linear_bound, plain)


@pytest.mark.parametrize("case", case_names(GOLDEN_MODEL))
def test_fast_model_matches_plain_model_on_golden_cases(case):
    meta, inputs, _, folder = load_case(case, GOLDEN_MODEL)
    call = {k: v for k, v in meta["call"].items() if k in ("interpolate_pos_encoding", "return_loss")}
    fast_model = s2.load_model(folder, dtype=meta["dtype"])
    plain_model = s2.load_model(folder, dtype=meta["dtype"], fast=False)
    assert isinstance(fast_model.run_encoder, FastEncoder) and plain_model.run_encoder is encoder
    got, want = run_stages(fast_model, **inputs, **call), run_stages(plain_model, **inputs, **call)
    assert got.keys() == want.keys()
    tier = "float32_stage" if meta["dtype"] == "float32" else "float64"
    for stage in want:
        assert_close(got[stage], want[stage], tier, f"{case} {stage}")


@pytest.mark.parametrize("case", [c for c in case_names(GOLDEN_MODEL) if c.endswith("f64")])
def test_fast_layers_from_golden_input_float64(case):
    """Teacher forcing as in test_golden_model, through the fast encoder one layer at a time (1e-12)."""
    meta, inputs, expected, folder = load_case(case, GOLDEN_MODEL)
    if meta["attn_implementation"] == "eager":
        pytest.skip("eager float64 goldens round softmax through float32")
    model = s2.load_model(folder, dtype="float64")
    checked = 0
    for tower, cfg in (("vision", model.config.vision), ("text", model.config.text)):
        keys = sorted((k for k in expected if k.startswith(f"{tower}.hidden_states.")), key=lambda k: int(k.rsplit(".", 1)[1]))
        if len(keys) < 2:
            continue
        mask = inputs.get("pixel_attention_mask") if tower == "vision" else inputs.get("attention_mask")
        bias = None if mask is None else key_padding_bias(mask, np.float64)
        for i, layer in enumerate(model.params[f"{tower}_model"]["encoder"]["layers"][: len(keys) - 1]):
            out, _, _ = model.run_encoder(expected[keys[i]], bias, [layer], cfg)
            assert_close(out, expected[keys[i + 1]], "float64", f"{case} {tower} layer {i}")
            checked += 1
    if not checked:
        pytest.skip("this case stores no per-layer hidden states")


def test_fast_encoder_hands_other_inputs_to_the_plain_encoder():
    """float16 (and CuPy arrays) go through layers.encoder unchanged: bit-identical results."""
    layers, cfg = random_tower("float16")
    x = np.random.default_rng(4).standard_normal((2, 5, cfg.hidden_size)).astype(np.float16)
    got, want = FastEncoder()(x, None, layers, cfg), encoder(x, None, layers, cfg)
    np.testing.assert_array_equal(got[0], want[0])
    assert got[0].dtype == np.float16


def test_without_threadpoolctl_the_encoder_runs_on_one_worker(monkeypatch):
    """threadpoolctl is optional: without it BLAS keeps its own threads and the pool is not used."""
    monkeypatch.setattr(backend, "ThreadpoolController", None)
    encode = FastEncoder()
    assert encode.workers.n == 1
    layers, cfg = random_tower("float64", layers=1)
    x = np.random.default_rng(6).standard_normal((2, 5, cfg.hidden_size))
    assert_close(encode(x, None, layers, cfg)[0], encoder(x, None, layers, cfg)[0], "float64", "one worker")


def test_load_model_picks_the_fast_path_only_for_numpy_float32_and_float64():
    folder = load_case(case_names(GOLDEN_MODEL)[0], GOLDEN_MODEL)[3]
    assert isinstance(s2.load_model(folder).run_encoder, FastEncoder)
    assert isinstance(s2.load_model(folder, dtype="float64").run_encoder, FastEncoder)
    assert s2.load_model(folder, dtype="float16").run_encoder is encoder
    assert s2.load_model(folder, fast=False).run_encoder is encoder


@pytest.mark.parametrize("each_rows, expected", [(3, 1), (2, 2)])
def test_below_min_worker_rows_every_step_runs_on_one_thread(monkeypatch, each_rows, expected):
    """Few rows: the row steps and the attention both run on the calling thread (BLAS's threads do the products),
    never on the workers right after BLAS's threads; enough rows: every step on both workers, BLAS single-threaded."""
    monkeypatch.setattr(fast, "MIN_WORKER_ROWS", each_rows)
    layers, cfg = random_tower("float64", layers=2)
    x = np.random.default_rng(7).standard_normal((1, 5, cfg.hidden_size))  # 5 rows, B = 1: steps with barriers
    encode = FastEncoder(workers=2)
    used, run = [], encode.workers.run
    monkeypatch.setattr(encode.workers, "run", lambda fn, tasks, n=None: used.append(n) or run(fn, tasks, n))
    assert_close(encode(x, None, layers, cfg)[0], encoder(x, None, layers, cfg)[0], "float64", f"{expected} workers")
    assert used and set(used) == {expected}
