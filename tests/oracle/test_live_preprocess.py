"""Live comparison with transformers: tokenizer on 2,000 generated strings, image processors on random images
(uint8 through both back-ends; float arrays through the torchvision back-end, whose resize runs in float)."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from golden.preprocess_goldens import TOKENIZER_DIR  # noqa: E402
from golden.synthetic_images import base_rgb, draw, CASES_BY_NAME  # noqa: E402
from siglip2_ref.preprocess.images import ImageProcessor  # noqa: E402
from siglip2_ref.preprocess.resize import resize_float_torchvision  # noqa: E402
from siglip2_ref.preprocess.tokenizer import load_tokenizer  # noqa: E402

pytestmark = pytest.mark.oracle
transformers.logging.set_verbosity_error()
warnings.filterwarnings("ignore", module="transformers")

TWO_THOUSAND = settings(max_examples=2000, deadline=None, derandomize=True, database=None,
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SPECIAL_STRINGS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<MASK>", "<EOS>", "<eos", "eos>", "< eos >"]
TEXT = st.lists(
    st.one_of(
        st.characters(codec="utf-8"),  # any Unicode scalar: CJK, emoji, combining marks, controls
        st.sampled_from(list(" \t\n\r\u00a0\u2003\u200b\u3000") + ["  ", "   "]),  # whitespace runs
        st.sampled_from(SPECIAL_STRINGS + ["Σ", "ΟΔΟΣ", "İ", "ẞ", "ǅ", "東京", "😀", "🏳️‍🌈", "e\u0301", "A", "Photo"]),
    ),
    max_size=90,
).map("".join)
COUNTS = {"compared": 0}


@pytest.fixture(scope="module")
def tokenizers():
    from transformers import GemmaTokenizer, Siglip2Tokenizer

    return {
        "fixres": (load_tokenizer(TOKENIZER_DIR, variant="fixres"), GemmaTokenizer.from_pretrained(TOKENIZER_DIR)),
        "naflex": (load_tokenizer(TOKENIZER_DIR, variant="naflex"), Siglip2Tokenizer.from_pretrained(TOKENIZER_DIR)),
    }


def test_tokenizer_ids_on_2000_generated_strings(tokenizers):
    """Both variants (GemmaTokenizer for FixRes, lowercasing Siglip2Tokenizer for NaFlex), padded and raw."""

    @TWO_THOUSAND
    @given(TEXT)
    def check(text):
        for variant, (ours, theirs) in tokenizers.items():
            for kwargs in ({"padding": "max_length", "max_length": 64, "truncation": True}, {}):
                got, want = ours(text, **kwargs)["input_ids"], theirs(text, **kwargs)["input_ids"]
                assert got == want, f"{variant} {kwargs} {text!r}: {got} != {want}"
            assert ours.decode(want, skip_special_tokens=True) == theirs.decode(want, skip_special_tokens=True)
        COUNTS["compared"] += 1

    check()
    assert COUNTS["compared"] >= 2000, COUNTS


NON_STANDARD = {"image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}


def hf_processor(variant, backend, **cfg):
    from transformers import (Siglip2ImageProcessor, Siglip2ImageProcessorPil, SiglipImageProcessor,
                              SiglipImageProcessorPil)

    classes = {("fixres", "pil"): SiglipImageProcessorPil, ("naflex", "pil"): Siglip2ImageProcessorPil,
               ("fixres", "torchvision"): SiglipImageProcessor, ("naflex", "torchvision"): Siglip2ImageProcessor}
    return classes[(variant, backend)](do_convert_rgb=True, **cfg)


@pytest.mark.parametrize("backend", ["pil", "torchvision"])
@pytest.mark.parametrize(
    "variant, cfg",
    [("fixres", {"resample": 2, "size": {"height": 224, "width": 224}}),
     ("fixres", {"resample": 3, "size": {"height": 384, "width": 384}}),
     ("fixres", {"resample": 2, "size": {"height": 256, "width": 256}, **NON_STANDARD}),
     ("naflex", {"resample": 2, "max_num_patches": 256}),
     ("naflex", {"resample": 2, "max_num_patches": 1024}),
     ("naflex", {"resample": 2, "max_num_patches": 64, **NON_STANDARD})],
)
def test_image_processors_on_random_sizes(variant, cfg, backend):
    if backend == "torchvision":
        pytest.importorskip("torchvision")
    rng = np.random.default_rng(99)
    ours, theirs = ImageProcessor(variant, backend, **cfg), hf_processor(variant, backend, **cfg)
    for k in range(12):
        H, W = (int(v) for v in rng.integers(1, 1500, 2))
        if k % 3 == 0:
            H = int(rng.integers(1500, 5000))
        image = base_rgb(H, W, seed=1000 + k)
        got, want = ours(image), theirs(image, return_tensors="np")
        for field in got:
            assert np.array_equal(got[field], np.asarray(want[field])), f"{variant} {cfg} {backend} {H}x{W} {field}"


@pytest.mark.parametrize("backend", ["pil", "torchvision"])
def test_large_photo_full_arrays(backend):
    if backend == "torchvision":
        pytest.importorskip("torchvision")
    image = draw(CASES_BY_NAME["rgb_3000x4000"])
    for variant, cfg in [("fixres", {"resample": 2}), ("naflex", {"resample": 2})]:
        got = ImageProcessor(variant, backend, **cfg)(image)
        want = hf_processor(variant, backend, **cfg)(image, return_tensors="np")
        assert np.abs(got["pixel_values"] - want["pixel_values"]).max() == 0.0, f"{variant} {backend}"


# ---- float arrays: ATen's float resize, then transformers' rescale/normalise --------------------------------------

FLOAT_COUNTS = {"resize": 0, "processor": 0}


def require_avx2_kernels():
    """The float resize reproduces the operation order of ATen's AVX2 kernel (the usual x86-64 choice)."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    if capability != "AVX2":
        pytest.skip(f"float resize order is ATen's AVX2 kernel's; this torch runs {capability} kernels")


@st.composite
def float_images(draw):
    """(array, value_range): float16/32/64, HWC or CHW, [0, 1] or [0, 255], sometimes integral values."""
    H = draw(st.one_of(st.integers(1, 40), st.integers(40, 700)))
    W = draw(st.one_of(st.integers(1, 40), st.integers(40, 700)))
    dtype = draw(st.sampled_from(["float32", "float64", "float16"]))
    value_range, layout = draw(st.sampled_from(["01", "255"])), draw(st.sampled_from(["hwc", "chw"]))
    if layout == "hwc" and H == 4 and value_range == "255":
        layout = "chw"  # [4, W, 3] reads as RGBA in both libraries, which need values in [0, 1]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.random((H, W, 3)) * (255.0 if value_range == "255" else 1.0)  # [H, W, 3]
    if draw(st.booleans()):
        values = np.round(values * (1.0 if value_range == "255" else 255.0)) / (1.0 if value_range == "255" else 255.0)
    values = values.astype(dtype)
    return (np.ascontiguousarray(values.transpose(2, 0, 1)) if layout == "chw" else values), value_range


@st.composite
def float_processor_configs(draw):
    """(variant, config) with FixRes sizes (width >= 2, see docs/preprocessing.md) or NaFlex budgets."""
    cfg = {"do_normalize": draw(st.sampled_from([True, True, True, False]))}
    if draw(st.booleans()):
        cfg.update(NON_STANDARD)
    if draw(st.booleans()):
        size = {"height": draw(st.integers(1, 300)), "width": draw(st.integers(2, 300))}
        return "fixres", {**cfg, "resample": draw(st.sampled_from([2, 3])), "size": size}
    patch = draw(st.sampled_from([16, 14]))
    return "naflex", {**cfg, "resample": 2, "patch_size": patch, "max_num_patches": draw(st.integers(1, 400))}


def test_float_arrays_through_torchvision_processors():
    """Random float images and configs: every output array equal to transformers' byte for byte, same dtype."""
    pytest.importorskip("torchvision")
    require_avx2_kernels()

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(float_images(), float_processor_configs())
    def check(image_and_range, variant_and_config):
        (image, value_range), (variant, cfg) = image_and_range, variant_and_config
        cfg = {**cfg, "do_rescale": value_range == "255"}
        got = ImageProcessor(variant, "torchvision", **cfg)(image)
        want = hf_processor(variant, "torchvision", **cfg)(image.copy(), return_tensors="np")
        assert set(got) == set(want)
        for field in got:
            expected = np.asarray(want[field])
            where = f"{variant} {cfg} {image.dtype} {image.shape} {field}"
            assert got[field].dtype == expected.dtype and got[field].shape == expected.shape, where
            assert got[field].tobytes() == expected.tobytes(), f"{where}: max {np.abs(got[field] - expected).max()}"
        FLOAT_COUNTS["processor"] += 1

    check()
    print(f"float arrays through the processors: {FLOAT_COUNTS['processor']} examples compared")


def test_float_resize_matches_torch_interpolate():
    """resize_float_torchvision against F.interpolate(antialias=True) on float32/float64 tensors, byte for byte."""
    import torch

    require_avx2_kernels()

    @settings(deadline=None)
    @given(st.integers(1, 4), st.integers(1, 300), st.integers(1, 300), st.integers(1, 300), st.integers(2, 300),
           st.sampled_from(["float32", "float64"]), st.sampled_from(["bilinear", "bicubic"]), st.integers(0, 2**32 - 1))
    def check(C, H, W, h, w, dtype, mode, seed):
        image = (np.random.default_rng(seed).random((C, H, W)) * 255).astype(dtype)  # [C, H, W]
        want = torch.nn.functional.interpolate(torch.from_numpy(image)[None], size=(h, w), mode=mode, antialias=True)
        got = resize_float_torchvision(image, (h, w), mode)
        assert got.dtype == image.dtype and got.tobytes() == want[0].numpy().tobytes(), f"{image.shape} -> {h}x{w}"
        FLOAT_COUNTS["resize"] += 1

    check()
    print(f"float resize against F.interpolate: {FLOAT_COUNTS['resize']} examples compared")


@pytest.mark.parametrize("variant", ["fixres", "naflex"])
@pytest.mark.parametrize("do_rescale, do_normalize", [(False, False), (True, False), (False, True)])
def test_torchvision_rescale_normalize_flags_keep_torch_dtypes(variant, do_rescale, do_normalize):
    """uint8 and float64 inputs with rescale and/or normalise switched off: same values and dtypes as torch."""
    pytest.importorskip("torchvision")
    rng = np.random.default_rng(3)
    cfg = {"do_rescale": do_rescale, "do_normalize": do_normalize, "resample": 2}
    cfg.update({"size": {"height": 32, "width": 40}} if variant == "fixres" else {"max_num_patches": 16})
    for image in (rng.integers(0, 256, (50, 70, 3), dtype=np.uint8), rng.random((50, 70, 3)) * 255):
        got = ImageProcessor(variant, "torchvision", **cfg)(image)["pixel_values"]
        want = np.asarray(hf_processor(variant, "torchvision", **cfg)(image, return_tensors="np")["pixel_values"])
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), f"{variant} {cfg} {image.dtype}"


@pytest.mark.parametrize("variant", ["fixres", "naflex"])
@pytest.mark.parametrize("do_rescale, do_normalize", [(False, False), (True, False), (False, True)])
def test_pil_rescale_normalize_flags_keep_transformers_dtypes(variant, do_rescale, do_normalize):
    """uint8, float32 and float64 [0, 1] inputs with rescale and/or normalise off: same values and dtypes."""
    rng = np.random.default_rng(4)
    cfg = {"do_rescale": do_rescale, "do_normalize": do_normalize, "resample": 2}
    cfg.update({"size": {"height": 32, "width": 40}} if variant == "fixres" else {"max_num_patches": 16})
    for image in (rng.integers(0, 256, (50, 70, 3), dtype=np.uint8), rng.random((50, 70, 3)).astype(np.float32),
                  rng.random((50, 70, 3))):
        got = ImageProcessor(variant, "pil", **cfg)(image)["pixel_values"]
        want = np.asarray(hf_processor(variant, "pil", **cfg)(image, return_tensors="np")["pixel_values"])
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), f"{variant} {cfg} {image.dtype}"


DEFAULT_KERNEL_SCRIPT = """
import sys, numpy as np, torch
assert torch.backends.cpu.get_cpu_capability() == "DEFAULT"
cases = np.load(sys.argv[1], allow_pickle=True)
out = {}
for i, (image, size, mode) in enumerate(cases["cases"]):
    out[str(i)] = torch.nn.functional.interpolate(torch.from_numpy(image)[None], size=size, mode=mode,
                                                  antialias=True)[0].numpy()
np.savez(sys.argv[2], **out)
"""


def test_float_resize_default_cpu_kernel(tmp_path):
    """cpu_kernel="default" against torch run with ATEN_CPU_CAPABILITY=default (no vector units, no fma)."""
    rng = np.random.default_rng(17)
    cases = []
    for k in range(24):
        H, W, h, w = (int(v) for v in rng.integers(1, 200, 4))
        dtype = np.float32 if k % 2 else np.float64
        cases.append(((rng.random((3, H, W)) * 255).astype(dtype), (h, max(w, 2)), ["bilinear", "bicubic"][k % 3 == 0]))
    holder = np.empty(len(cases), dtype=object)
    holder[:] = cases
    np.savez(tmp_path / "in.npz", cases=holder)
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    subprocess.run([sys.executable, "-c", DEFAULT_KERNEL_SCRIPT, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                   env=env, check=True)
    want = np.load(tmp_path / "out.npz")
    for i, (image, size, mode) in enumerate(cases):
        got = resize_float_torchvision(image, size, mode, cpu_kernel="default")
        assert got.tobytes() == want[str(i)].tobytes(), f"{image.dtype} {image.shape} -> {size} {mode}"
