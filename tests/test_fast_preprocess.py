"""The fast image path (preprocess/fast.py) against the readable reference steps, bit for bit.

Every golden case (every PIL mode, arrays, 1x1 to 4000x3000, tall and wide, the EXIF file) under every golden
config and both back-ends; random sizes for the value table and the patch gather; and the fallback when the
installed Pillow's numbers differ from the reference's.
"""

import functools

import numpy as np
import pytest
from PIL import Image

from golden.preprocess_goldens import load_meta
from golden.synthetic_images import CASES, CASES_BY_NAME, draw
from siglip2_ref.preprocess import fast
from siglip2_ref.preprocess.images import ImageProcessor
from siglip2_ref.preprocess.resize import resize_torchvision, torch_axis_table

META = load_meta()
CONFIGS = sorted(META["configs"])


def processors(config_name, backend):  # -> (fast, reference) processors of one golden config
    cfg = {k: v for k, v in META["configs"][config_name].items() if k not in ("image_processor_type", "processor_class")}
    variant = "naflex" if config_name.startswith("naflex") else "fixres"
    return ImageProcessor(variant, backend, fast=True, **cfg), ImageProcessor(variant, backend, fast=False, **cfg)


@functools.lru_cache(maxsize=1)
def drawn(case_name, folder):
    return draw(CASES_BY_NAME[case_name], folder)


def assert_same(got, want, label):
    assert set(got) == set(want), label
    for field in want:
        assert got[field].dtype == want[field].dtype, f"{label} {field} dtype"
        assert np.array_equal(got[field], want[field]), f"{label} {field}: max {np.abs(got[field] - want[field]).max()}"


@pytest.mark.parametrize("case", [c.name for c in CASES])
def test_fast_path_equals_reference_on_every_golden_case(case, tmp_path_factory):
    image = drawn(case, str(tmp_path_factory.getbasetemp()))
    for config in CONFIGS:
        for backend in ("pil", "torchvision"):
            quick, reference = processors(config, backend)
            assert_same(quick(image), reference(image), f"{case} {config} {backend}")


def random_options(rng):
    mean, std = rng.uniform(0, 1, 3).round(3).tolist(), rng.uniform(0.1, 1, 3).round(3).tolist()
    return {"image_mean": mean, "image_std": std, "do_rescale": bool(rng.integers(2)), "do_normalize": bool(rng.integers(2)),
            "rescale_factor": float(rng.choice([1 / 255, 0.5, 1.0])), "resample": int(rng.choice([2, 3]))}  # fmt: skip


@pytest.mark.parametrize("backend", ["pil", "torchvision"])
def test_fast_path_equals_reference_on_random_sizes_and_options(backend):
    rng = np.random.default_rng(15)
    for k in range(12):
        H, W = (int(v) for v in rng.integers(1, 400, 2))
        image = Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)) if k % 2 else rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        options = random_options(rng)
        n = int(rng.integers(1, 300))
        for variant, extra in [("naflex", {"max_num_patches": n, "patch_size": int(rng.choice([8, 16]))}),
                               ("fixres", {"size": {"height": int(rng.integers(1, 90)), "width": int(rng.integers(1, 90))}})]:  # fmt: skip
            quick = ImageProcessor(variant, backend, fast=True, **options, **extra)
            reference = ImageProcessor(variant, backend, fast=False, **options, **extra)
            assert_same(quick(image), reference(image), f"{variant} {backend} {H}x{W} {options} {extra}")


def test_installed_pillow_agrees_with_the_reference():
    """Pillow 13 (what the goldens were made with) resizes as resize_pil(pass_order="pillow13"): the fast path is on."""
    assert fast.pillow_agrees("pillow13", 2) and fast.pillow_agrees("pillow13", 3)
    assert not fast.pillow_agrees("pillow-classic", 2)  # the probes see the pass order: an older order disagrees


def test_a_pillow_that_disagrees_falls_back_to_the_numpy_resize(monkeypatch):
    """A Pillow whose numbers differ is detected by the probe and not used; the result stays the reference's."""
    real = fast.pillow_resize

    def off_by_one(image, size, resample):
        out = real(image, size, resample).copy()
        out[0, 0, 0] ^= 1
        return out

    monkeypatch.setattr(fast, "_AGREES", {})
    monkeypatch.setattr(fast, "pillow_resize", off_by_one)
    image = np.random.default_rng(2).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    quick, reference = processors("naflex256", "pil")
    assert_same(quick(image), reference(image), "fallback")
    assert fast._AGREES == {("pillow13", "bilinear"): False}


def banded_cases(rng):
    pairs = [((1, 1), (5, 3)), ((2000, 37), (100, 37)), ((40, 2300), (40, 90)), ((1, 900), (16, 1)), ((3000, 400), (224, 30))]
    pairs += [((int(rng.integers(1, 700)), int(rng.integers(1, 700))), (int(rng.integers(1, 300)), int(rng.integers(1, 300))))
              for _ in range(30)]  # fmt: skip
    return pairs


@pytest.mark.parametrize("min_task_pixels", [None, 0], ids=["default", "every-pass-on-all-workers"])
@pytest.mark.parametrize("resample", ["bilinear", "bicubic"])
def test_banded_gemm_resize_equals_the_torchvision_reference(resample, min_task_pixels, monkeypatch):
    """Random sizes: up- and downscales, 1-pixel edges, one axis unchanged, and downscales deep enough (> 4x) that
    float32 sums are not exact and outputs near a rounding step are summed again in integers. Small passes run on
    one thread; with MIN_TASK_PIXELS 0 every pass is shared by all the workers, in width-pass blocks of few rows."""
    if min_task_pixels is not None:
        monkeypatch.setattr(fast, "MIN_TASK_PIXELS", min_task_pixels)
        monkeypatch.setattr(fast, "BLOCK_VALUES", 300)
    rng = np.random.default_rng(16 if resample == "bilinear" else 61)
    inexact = 0
    for (H, W), (h, w) in banded_cases(rng):
        chw = rng.integers(0, 256, (3, H, W), dtype=np.uint8)
        expected = resize_torchvision(chw, (h, w), resample)
        for rgb in (chw, Image.fromarray(np.ascontiguousarray(chw.transpose(1, 2, 0)))):
            got = fast.resize_torchvision_chw(rgb, (h, w), resample)
            assert np.array_equal(got, expected), f"{H}x{W} -> {h}x{w} {resample}"
        inexact += sum(fast.error_bound(torch_axis_table(n, m, resample)).any() for n, m in ((W, w), (H, h)))
    assert inexact >= 2


def test_banded_gemm_resize_when_every_output_is_recomputed(monkeypatch):
    """The integer re-summation alone gives the reference's numbers (a bound so wide every output is redone)."""
    monkeypatch.setattr(fast, "error_bound", lambda table: np.full(len(table[0]), 1e12))
    fast.plan_pass.cache_clear()  # plans made with the real bound must not be reused, nor these later
    try:
        rng = np.random.default_rng(5)
        for (H, W), (h, w) in [((90, 130), (20, 33)), ((17, 40), (50, 8)), ((300, 7), (31, 7))]:
            chw = rng.integers(0, 256, (3, H, W), dtype=np.uint8)
            for resample in ("bilinear", "bicubic"):
                got, want = fast.resize_torchvision_chw(chw, (h, w), resample), resize_torchvision(chw, (h, w), resample)
                assert np.array_equal(got, want)
        assert fast.plan_pass(130, 33, "bilinear").bound.min() == 1e12  # the wide bound really was used
    finally:
        fast.plan_pass.cache_clear()


def test_centred_pixels_make_bicubic_downscales_exact_in_float32():
    """Centring the pixels (x - 128) halves every partial sum: bicubic 1024x768 -> 288x224 (precision 16, sum|w| about
    76800 from the negative lobes) needs no re-summation (uncentred, 255 sum|w| > 2^24 did), and neither do most
    outputs of bilinear 1024 -> 224 (precision 17); the rest, whose rounded weights sum past 2^17, still do. Black
    and white stretches give the largest partial sums of either sign; each case gives the reference's numbers."""
    rng = np.random.default_rng(7)
    for (H, W), (h, w), resample, exact in [((768, 1024), (224, 288), "bicubic", True),
                                            ((768, 1024), (224, 224), "bilinear", False)]:  # fmt: skip
        bounds = [fast.error_bound(torch_axis_table(n, m, resample)) for n, m in ((W, w), (H, h))]
        assert all((b == 0).all() for b in bounds) == exact, (H, W, h, w, resample)
        assert (bounds[0] == 0).mean() > 0.5  # the width pass: exact outputs are the most
        chw = rng.integers(0, 256, (3, H, W), dtype=np.uint8)
        chw[:, :40] = 0
        chw[:, 40:80] = 255
        assert np.array_equal(fast.resize_torchvision_chw(chw, (h, w), resample), resize_torchvision(chw, (h, w), resample))


def test_a_precision_17_pass_adds_its_offset_in_two_steps():
    """(A + 2^16) / 2^17 is a multiple of 2^-17; past 128 float32 keeps only multiples of 2^-16, so adding the whole
    offset to the exact centred sum in one step would round some values up across an integer. On this image such
    values occur (checked below), and the fast path, which adds the fraction, floors, then adds the whole part, still
    gives the reference's numbers."""
    rng = np.random.default_rng(3)
    chw = rng.integers(0, 256, (3, 768, 1024), dtype=np.uint8)
    start, weights, precision = torch_axis_table(1024, 224, "bilinear")
    assert precision == 17
    taps = np.minimum(start[:, None] + np.arange(weights.shape[1]), 1023)  # [out, taps]
    sums = (chw[..., taps].astype(np.int64) * weights).sum(axis=-1)  # [3, 768, out] the exact integer sums A
    centred = ((sums - fast.CENTRE * weights.sum(axis=1)) / 2.0**precision).astype(np.float32)  # exact (bound 0)
    whole, fraction = fast.plan_pass(1024, 224, "bilinear")[3:5]
    one_step = np.floor(centred + (whole + fraction))  # float32 throughout
    exact = (sums + (1 << (precision - 1))) >> precision
    exact_outputs = fast.error_bound((start, weights, precision)) == 0
    assert (one_step != exact)[..., exact_outputs].any()
    assert np.array_equal(fast.width_pass(np.ascontiguousarray(chw.transpose(1, 2, 0)), 224, "bilinear").transpose(1, 0, 2),
                          np.clip(exact, 0, 255))  # fmt: skip