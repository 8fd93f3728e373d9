"""The NumPy resize against the installed Pillow (live), pass-order rules, errors and speed."""

import time
from fractions import Fraction

import numpy as np
import PIL
import pytest
from PIL import Image

from siglip2_ref.preprocess.resize import (
    fused_multiply_add,
    pillow_vertical_first,
    resize,
    resize_float_torchvision,
    resize_pil,
    resize_torchvision,
)

PILLOW_MAJOR = int(PIL.__version__.split(".")[0])
PILLOW_ORDER = "pillow13" if PILLOW_MAJOR >= 13 else None
FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
needs_pillow13 = pytest.mark.skipif(PILLOW_ORDER is None, reason="pass order encoded here is Pillow >= 13's")


def pillow_resize(chw, size, name):  # [C, H, W] -> [C, h, w] through Image.resize
    image = Image.fromarray(np.ascontiguousarray(chw.transpose(1, 2, 0)))
    return np.asarray(image.resize((int(size[1]), int(size[0])), FILTERS[name])).transpose(2, 0, 1)


def random_sizes(rng, n):
    """Size pairs mixing down/upscaling, tall, wide, thin and 1-pixel edges."""
    pairs = []
    for k in range(n):
        H, W, h, w = (int(v) for v in rng.integers(1, 260, 4))
        if k % 4 == 0:
            H = int(rng.integers(200, 2500))  # tall: Pillow 13 may resize rows first
        if k % 6 == 0:
            W = int(rng.integers(200, 2500))
        if k % 9 == 0:
            h, w = 1, int(rng.integers(1, 50))
        pairs.append(((H, W), (h, w)))
    return pairs


@needs_pillow13
@pytest.mark.parametrize("name", sorted(FILTERS))
def test_matches_installed_pillow_on_random_sizes(name):
    rng = np.random.default_rng(1234 if name == "bilinear" else 4321)
    for (H, W), (h, w) in random_sizes(rng, 60):
        image = rng.integers(0, 256, (3, H, W), dtype=np.uint8)
        expected = pillow_resize(image, (h, w), name)
        got = resize_pil(image, (h, w), name)
        assert np.array_equal(got, expected), f"{name} {H}x{W} -> {h}x{w}: {np.abs(got.astype(int) - expected).max()}"


@needs_pillow13
def test_pass_order_rule_is_exercised():
    """On tall downscales the older orders give different pixels, so the Pillow 13 rule is really tested."""
    rng = np.random.default_rng(7)
    differs = {"pillow12.2": 0, "pillow-classic": 0}
    for _ in range(20):
        H, W = int(rng.integers(300, 2000)), int(rng.integers(2, 40))
        h, w = int(rng.integers(16, 200)), int(rng.integers(2, 40))
        image = rng.integers(0, 256, (3, H, W), dtype=np.uint8)
        expected = pillow_resize(image, (h, w), "bilinear")
        assert pillow_vertical_first((H, W), (h, w)) == ((H - h) > 0 and (H - h) > 2 * (W - w))
        assert np.array_equal(resize_pil(image, (h, w)), expected)
        for order in differs:
            differs[order] += not np.array_equal(resize_pil(image, (h, w), pass_order=order), expected)
    assert all(n > 0 for n in differs.values()), differs


def test_older_pass_order_rules():
    assert not pillow_vertical_first((5000, 40), (100, 20), "pillow-classic")
    assert pillow_vertical_first((5000, 40), (100, 20), "pillow12.2")  # H > 100 W and h < H
    assert not pillow_vertical_first((3000, 40), (100, 20), "pillow12.2")
    assert pillow_vertical_first((300, 200), (100, 150), "pillow13")  # 200 > 2 * 50
    assert not pillow_vertical_first((300, 200), (100, 90), "pillow13")


def test_identity_size_is_a_copy():
    image = np.random.default_rng(3).integers(0, 256, (3, 37, 50), dtype=np.uint8)
    for backend in ("pil", "torchvision"):
        assert np.array_equal(resize(image, (37, 50), backend=backend), image)


def test_one_pixel_images():
    image = np.full((3, 1, 1), 77, np.uint8)
    for backend in ("pil", "torchvision"):
        assert (resize(image, (16, 16), backend=backend) == 77).all()


@pytest.mark.parametrize(
    "image, size, resample, error",
    [
        (np.zeros((3, 4, 4), np.float32), (2, 2), "bilinear", TypeError),
        (np.zeros((4, 4), np.uint8), (2, 2), "bilinear", TypeError),
        (np.zeros((3, 0, 4), np.uint8), (2, 2), "bilinear", ValueError),
        (np.zeros((3, 4, 4), np.uint8), (0, 2), "bilinear", ValueError),
        (np.zeros((3, 4, 4), np.uint8), (2, 2), "lanczos", ValueError),
    ],
)
def test_bad_arguments(image, size, resample, error):
    with pytest.raises(error):
        resize_torchvision(image, size, resample)
    with pytest.raises(error):
        resize_pil(image, size, resample)


def test_large_photo_is_fast():
    """A 4000x3000 photo resizes in well under a second (about 0.1-0.2 s on an idle 2-core machine)."""
    image = np.random.default_rng(0).integers(0, 256, (3, 3000, 4000), dtype=np.uint8)
    for backend in ("pil", "torchvision"):
        t0 = time.perf_counter()
        resize(image, (224, 224), backend=backend)
        elapsed = time.perf_counter() - t0
        assert elapsed < 2.0, f"{backend}: {elapsed:.2f} s"  # loose bound: shared CI machines are noisy


# ---- float images (torchvision's float path); bit-exactness against transformers: test_image_processing ----


def exact_fma_rounded(a, b, c, dtype):
    """a b + c in exact rational arithmetic, rounded to the nearest `dtype` (ties to even)."""
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    nearest = dtype(float(exact))  # Fraction -> float64 is correctly rounded; float32 needs the neighbours
    candidates = [np.nextafter(nearest, dtype(-np.inf)), nearest, np.nextafter(nearest, dtype(np.inf))]
    return min(candidates, key=lambda v: (abs(Fraction(float(v)) - exact), int(np.asarray(v).view(f"i{v.itemsize}")) & 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_multiply_add_rounds_once(dtype):
    """Against exact rationals, including near-ties where a product-then-sum in float64 would round twice."""
    rng = np.random.default_rng(11)
    # a b lands exactly halfway between two neighbours of `dtype`; a tiny c must tip it upwards
    tie = {np.float32: (1 + 2.0**-12, 1 + 2.0**-12, 2.0**-100), np.float64: (1 + 2.0**-26, 1 + 2.0**-27, 2.0**-200)}
    a, b, c = (np.concatenate([[v], rng.standard_normal(300)]).astype(dtype) for v in tie[dtype])
    c[1:150] = (-(a[1:150].astype(np.float64) * b[1:150])).astype(dtype) * dtype(1 + 2.0**-10)  # cancellation
    got = fused_multiply_add(a, b, c)
    assert got.dtype == dtype
    expected = [exact_fma_rounded(x, y, z, dtype) for x, y, z in zip(a, b, c)]
    assert np.array_equal(got, np.array(expected, dtype)), np.nonzero(got != np.array(expected, dtype))
    naive = (a.astype(np.float64) * b + c).astype(dtype)
    assert naive[0] != got[0]  # the first case really needs the single rounding


def test_float_resize_keeps_dtype_and_skips_identity():
    image = np.random.default_rng(5).random((3, 9, 7)).astype(np.float16)
    assert resize_float_torchvision(image, (9, 7)) is image
    out = resize_float_torchvision(image, (4, 12), "bicubic")
    assert out.dtype == np.float16 and out.shape == (3, 4, 12)


@pytest.mark.parametrize(
    "image, size, kwargs, error",
    [
        (np.zeros((3, 4, 4), np.uint8), (2, 2), {}, TypeError),
        (np.zeros((4, 4), np.float32), (2, 2), {}, TypeError),
        (np.zeros((3, 4, 4), np.longdouble), (2, 2), {}, TypeError),
        (np.zeros((3, 0, 4), np.float32), (2, 2), {}, ValueError),
        (np.zeros((3, 4, 4), np.float32), (2, 0), {}, ValueError),
        (np.zeros((3, 4, 4), np.float32), (2, 2), {"resample": "lanczos"}, ValueError),
        (np.zeros((3, 4, 4), np.float32), (2, 2), {"cpu_kernel": "avx512"}, ValueError),
    ],
)
def test_float_resize_bad_arguments(image, size, kwargs, error):
    with pytest.raises(error):
        resize_float_torchvision(image, size, **kwargs)
