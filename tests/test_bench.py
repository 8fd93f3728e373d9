"""The benchmark's arithmetic: FLOP counts from the textbook formula, and the table it prints."""

import pytest

from siglip2_ref.bench import benchmark as bench


def vit_gflop(batch, n, layers=12, D=768, F=3072, patch_dim=3 * 16 * 16):
    """2 multiply-adds per weight per token, plus q k^T and weights v (2 * N^2 * D each) per image and layer."""
    tokens = batch * n
    encoder = layers * (2 * tokens * (4 * D * D + 2 * D * F) + batch * 2 * 2 * n * n * D)
    stem = 2 * tokens * patch_dim * D
    head = 2 * tokens * 2 * D * D + 2 * batch * 2 * D * F  # MAP head: k and v of every token, then the MLP of one
    return (encoder + stem + head) / 1e9


def test_vision_flop_count_matches_the_formula():
    for batch, n in [(1, 256), (8, 256), (8, 196), (1, 1024)]:
        assert abs(bench.gflop(bench.gemms("vision", batch, n)) - vit_gflop(batch, n)) < 1e-9


def test_text_flop_count_is_the_encoder_plus_the_head():
    encoder = vit_gflop(8, 64) - vit_gflop(8, 64, layers=0)
    head = 2 * 8 * 768 * 768 / 1e9
    assert abs(bench.gflop(bench.gemms("text", 8, 64)) - (encoder + head)) < 1e-9


def test_table_has_every_ratio_and_dashes_for_what_was_not_run():
    rows = [{"name": "w", "gflop": 1.0, "ours": 0.5, "gflops": 2.0, "hf": 1.0, "ratio_hf": 0.5, "floor": 0.4,
             "ratio_floor": 1.25, "floor_hf": 0.4, "load_avg": 0.1},
            {"name": "v", "gflop": 1.0, "ours": 0.5, "gflops": 2.0, "floor": 0.4, "ratio_floor": 1.25}]  # fmt: skip
    lines = bench.table(rows).splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")][5:9] == ["ours/hf", "floor s", "ours/floor", "floor/hf"]
    assert [c.strip() for c in lines[2].strip("|").split("|")][5:9] == ["0.50", "0.400", "1.25", "0.40"]
    assert [c.strip() for c in lines[3].strip("|").split("|")][4:9] == ["-", "-", "0.400", "1.25", "-"]


def test_ratios_pair_the_repeats_that_ran_together():
    # the machine halves its speed for the last two repeats: paired ratios stay 0.5, a ratio of medians would not
    assert bench.paired_ratio([1.0, 1.0, 1.0, 2.0, 2.0], [2.0, 2.0, 2.0, 4.0, 4.0]) == 0.5
    assert bench.paired_ratio([1.0, 3.0], [1.0, 1.0]) == 2.0


def test_gemm_floor_runs_every_matrix_multiply_of_the_forward(monkeypatch):
    import numpy as np

    shapes = [(3, 1, 40, 24, 56), (2, 6, 16, 8, 16), (1, 1, 4, 24, 32)]
    run = bench.gemm_floor(shapes, threads=2, repeats=1)
    done, matmul = [], np.matmul

    def counting(a, b, out=None):
        done.append(2 * a.shape[-2] * a.shape[-1] * b.shape[-1] * (a.shape[0] if a.ndim == 3 else 1))
        return matmul(a, b, out=out)

    monkeypatch.setattr(np, "matmul", counting)
    run()
    assert sum(done) == round(bench.gflop(shapes) * 1e9)


def test_interleaved_times_runs_every_call_in_every_round():
    order = []
    calls = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    times = bench.interleaved_times(calls, repeats=3)
    assert order == ["a", "b"] * 4  # one warm-up round, then three timed rounds, back to back
    assert [len(v) for v in times.values()] == [3, 3]


def test_interleaved_times_settle_before_each_timed_call_without_timing_the_pause():
    import time

    start = time.perf_counter()
    times = bench.interleaved_times({"a": lambda: None, "b": lambda: None}, repeats=2, settle=0.05)
    assert time.perf_counter() - start >= 4 * 0.05  # two timed rounds of two calls, each after a pause
    assert max(max(v) for v in times.values()) < 0.05  # the pause is not part of any call's time


def test_mixed_batch_spans_1_to_4_and_4_to_1_within_the_budget():
    import numpy as np

    grids = bench.mixed_grids(256)
    assert len(grids) == 8 and all(gh * gw <= 256 for gh, gw in grids)
    ratios = [gh / gw for gh, gw in grids]  # height : width
    assert ratios == sorted(ratios) and ratios[0] <= 0.3 and ratios[-1] >= 3.5  # 1:4 ... 4:1, as grids round
    data = bench.inputs("naflex", "vision", 8, 256, "mixed")
    counts = data["pixel_attention_mask"].sum(axis=1)
    assert counts.tolist() == [gh * gw for gh, gw in grids] and counts.min() < 256  # some images are padded
    assert not np.abs(data["pixel_values"][data["pixel_attention_mask"] == 0]).any()  # padding is zeros
    assert data["spatial_shapes"].tolist() == [list(g) for g in grids]


def test_table_has_the_own_gemms_and_onnx_runtime_columns():
    rows = [{"name": "w", "gflop": 1.0, "ours": 0.5, "gflops": 2.0, "hf": 1.0, "ratio_hf": 0.5, "floor": 0.4,
             "ratio_floor": 1.25, "floor_hf": 0.4, "gemms": 0.45, "ratio_gemms": 1.11, "ort": 0.8, "ratio_ort": 0.625,
             "ort_hf": 0.8, "ort_int8": 0.3, "int8_hf": 0.3, "load_avg": 0.1}]  # fmt: skip
    lines = bench.table(rows).splitlines()
    head = ["gemms s", "ours/gemms", "ort s", "ours/ort", "ort/hf", "int8 s", "int8/hf"]
    assert [c.strip() for c in lines[0].strip("|").split("|")][9:16] == head
    assert [c.strip() for c in lines[2].strip("|").split("|")][9:16] == ["0.450", "1.11", "0.800", "0.62", "0.80", "0.300", "0.30"]


def test_preprocess_table_and_images(tmp_path):
    from siglip2_ref.bench import preprocess

    rows = [{"image": "1024x768 JPEG", "setting": "NaFlex 256", "ours pil": 300.0, "hf pil": 200.0, "ratio pil": 1.5,
             "ours torchvision": 100.0, "load_avg": 2.0}]  # fmt: skip
    lines = preprocess.preprocess_table(rows).splitlines()
    assert [c.strip() for c in lines[2].strip("|").split("|")] == ["1024x768 JPEG", "NaFlex 256", "300", "200", "1.50", "100", "-", "-", "2.0"]
    paths = preprocess.write_images(tmp_path, ["1024x768 JPEG", "1024x768 PNG"])
    from PIL import Image

    assert [Image.open(p).size for p in paths.values()] == [(1024, 768), (1024, 768)]
    assert (preprocess.photo(30, 40) == preprocess.photo(30, 40)).all()  # the same files on every machine


@pytest.mark.parametrize("tower", ["vision", "text"])
def test_own_gemms_multiply_with_every_weight_of_the_tower(tower, tmp_path, monkeypatch):
    """Each layer's six projections with that layer's own weight arrays, per image q k^T and weights v over its
    keys only, and the products outside the encoder (vision: stem, MAP head k, v and MLP; text: head): the FLOP
    count of the tower, with padded keys left out as the forward leaves them out."""
    import numpy as np

    import siglip2_ref as s2
    from siglip2_ref.model import quant

    from .synthetic import random_weights, tiny_config, tiny_shapes, write_checkpoint

    config = tiny_config("naflex")
    model = s2.load_model(write_checkpoint(tmp_path, config, random_weights(tiny_shapes(config))))
    params = model.params[f"{tower}_model"]
    layers = params["encoder"]["layers"]
    at = lambda w: (w.__array_interface__["data"][0], w.shape[0])  # where a weight's memory starts, its rows
    weights = {at(l[g][name]["weight"]) for l in layers for g, names in (("self_attn", ("q_proj", "k_proj", "v_proj", "out_proj")),
                                                                        ("mlp", ("fc1", "fc2"))) for name in names}  # fmt: skip
    batch, n, keys = 3, 9, ([9, 4, 7] if tower == "vision" else None)
    D, F, L, T = 12, 7, 2, batch * n  # both tiny towers
    if tower == "vision":
        stem, head = params["embeddings"]["patch_embedding"]["weight"], params["head"]
        in_proj = head["attention"]["in_proj_weight"]  # [3D, D]: q, k, v rows; k and v multiply every token
        weights |= {at(stem), at(in_proj[D : 2 * D]), at(in_proj[2 * D :]), at(head["mlp"]["fc1"]["weight"]),
                    at(head["mlp"]["fc2"]["weight"])}  # fmt: skip
        outer = 2 * T * (stem.size // D) * D + 2 * 2 * T * D * D + 2 * 2 * batch * D * F
    else:
        weights.add(at(params["head"]["weight"]))
        outer = 2 * batch * D * params["head"]["weight"].shape[0]
    used, flops, matmul_t, matmul = set(), [], quant.matmul_t, np.matmul

    def counting_t(x, w, out=None):
        used.add(at(w))
        flops.append(2 * x.shape[0] * x.shape[1] * w.shape[0])
        return matmul_t(x, w, out=out)

    def counting(a, b, out=None):
        if a.ndim == 3:  # attention, [H, N, K] @ [H, K, M]; the projections call np.matmul through matmul_t
            flops.append(2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2])
        return matmul(a, b, out=out)

    monkeypatch.setattr(quant, "matmul_t", counting_t)
    monkeypatch.setattr(np, "matmul", counting)
    bench.own_gemms(model, tower, batch, n, threads=2, keys=keys)()
    per_layer = 2 * T * (4 * D * D + 2 * D * F) + sum(2 * 2 * n * m * D for m in keys or [n] * batch)
    assert used == weights and sum(flops) == L * per_layer + outer
