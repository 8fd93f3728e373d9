"""Live comparison with transformers: tokenizer on 2,000 generated strings, image processors on random images."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from golden.preprocess_goldens import TOKENIZER_DIR  # noqa: E402
from golden.synthetic_images import base_rgb, draw, CASES_BY_NAME  # noqa: E402
from siglip2_ref.image_processing import ImageProcessor  # noqa: E402
from siglip2_ref.tokenizer import load_tokenizer  # noqa: E402

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
