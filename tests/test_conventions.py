"""Named conventions: each ecosystem's rule on hand-computed cases, and the defaults unchanged.

JAX, TensorFlow, timm and open_clip are not installed here, so their rules are checked on small cases worked out
by hand from their sources (cited per test); the live comparison of the bicubic position resize with PyTorch's
F.interpolate is in tests/oracle/test_transformers_dump.py.
"""

import numpy as np
import pytest

from siglip2_ref.porting import conventions as cv
from siglip2_ref.demo import shapes
from siglip2_ref.preprocess.images import FixResImageProcessor, NaFlexImageProcessor
from siglip2_ref.preprocess.processor import Processor
from siglip2_ref.preprocess.tokenizer import load_tokenizer
from siglip2_ref.model.vision import naflex_position_embeddings
from tests.test_pipelines import tokenizer_source

IMAGES = [shapes.draw("red", "circle", "left", np.random.default_rng(0), size=(300, 100)),
          shapes.draw("blue", "star", "top", np.random.default_rng(1), size=(64, 200)),
          shapes.draw("green", "cross", "center", np.random.default_rng(2), size=(640, 480))]  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(tokenizer_source(), variant="naflex")


# ---------------------------------------------------------------- switches


def test_default_is_transformers_with_pillow():
    assert cv.Conventions() == cv.parse_conventions(None) == cv.parse_conventions("")
    assert cv.DEFAULT.as_dict() == {"image_resize": "pil", "text": "hf", "position_resize": "antialiased-bilinear"}
    assert cv.parse_conventions("image_resize=big_vision, text=open_clip").changed() == {"image_resize": "big_vision", "text": "open_clip"}


@pytest.mark.parametrize("spec, message", [("image_resize=cv2", "image_resize='cv2' is unknown"),
                                           ("colour=red", "unknown switch"), ("text", "switch=value")])  # fmt: skip
def test_bad_conventions_are_named(spec, message):
    with pytest.raises(ValueError, match=message):
        cv.parse_conventions(spec)


@pytest.mark.parametrize("backend", ["pil", "torchvision"])
@pytest.mark.parametrize("make", [NaFlexImageProcessor, lambda b: FixResImageProcessor(b, resample=2)])
def test_default_conventions_reproduce_the_processor_bit_for_bit(tokenizer, backend, make):
    processor = Processor(tokenizer, make(backend))
    texts = ["This is a photo of a RED circle.", "ΟΔΟΣ <eos> x"]
    stages, inputs = cv.preprocess(processor, IMAGES, texts, cv.Conventions(image_resize=backend))
    expected = processor(text=texts, images=IMAGES)
    assert inputs.keys() == expected.keys()
    for name, value in expected.items():
        assert np.array_equal(inputs[name], value) and inputs[name].dtype == value.dtype, name


@pytest.mark.parametrize("make", [NaFlexImageProcessor, lambda b: FixResImageProcessor(b, resample=2)])
def test_resized_stage_is_pillows_own_resize(tokenizer, make):
    stages, _ = cv.preprocess(Processor(tokenizer, make("pil")), IMAGES)
    for k, image in enumerate(IMAGES):
        resized = stages[f"image.resized.{k}"]  # [3, h, w] uint8
        expected = np.asarray(image.resize((resized.shape[2], resized.shape[1]), 2)).transpose(2, 0, 1)
        assert np.array_equal(resized, expected), k
        assert np.array_equal(stages[f"image.rgb.{k}"], np.asarray(image).transpose(2, 0, 1))


# ---------------------------------------------------------------- text


def test_ascii_lowercase_keeps_non_ascii_capitals():
    # big_vision `lower` = tf.strings.lower(encoding=""): ASCII only
    assert cv.ascii_lowercase("ÉCOLE Zürich ΣΑΣ ABC") == "École zürich ΣΑΣ abc"


@pytest.mark.parametrize("text, expected", [
    ("  Hello,   WORLD_wide!  ", "hello world wide"),  # "_" -> " ", punctuation dropped, whitespace collapsed
    ("A &amp;amp; B", "a b"),  # html.unescape twice, then "&" is punctuation
    ("ΟΔΟΣ.", "οδος"),  # str.lower on the whole string: final sigma
    ("e\u0301t\u00e9", "\u00e9t\u00e9"),  # NFC (ftfy's default normalisation)
    ("(a) 3.14", "a 314"),
])  # fmt: skip
def test_open_clip_canonicalize(text, expected):
    assert cv.open_clip_canonicalize(text) == expected


def test_hf_lowercases_per_character_only_for_naflex(tokenizer):
    assert cv.normalize_text("ΟΔΟΣ Ab", "hf", lowercase=True) == "οδοσ ab"  # tokenizers' Lowercase: no final sigma
    assert cv.normalize_text("ΟΔΟΣ Ab", "hf", lowercase=False) == "ΟΔΟΣ Ab"  # FixRes (GemmaTokenizer)


def test_big_vision_tokenizer_is_sentencepiece_with_sticky_eos(tokenizer):
    short, long = "a <eos> b", "word " * 80
    _, ids = cv.tokenize(tokenizer, [short, long], "big_vision")
    expected_short = tokenizer.sp.encode(short) + [1]
    assert ids[0].tolist() == expected_short + [0] * (64 - len(expected_short))
    assert 1 not in ids[0, : len(expected_short) - 1]  # the literal "<eos>" is spelled out, not special
    assert ids[1].tolist() == tokenizer.sp.encode(long)[:63] + [1]
    _, hf = cv.tokenize(tokenizer, [short], "hf")
    assert 1 in hf[0, :3]  # transformers matches the literal special token


def test_strings_round_trip_as_code_points():
    texts = ["", "école 東京 😀", "a"]
    codes = cv.encode_strings(texts)
    assert codes.dtype == np.int32 and codes.shape == (3, 10) and codes[0, 0] == -1
    assert cv.decode_strings(codes) == texts


# ---------------------------------------------------------------- images: big_vision


def test_tf_bilinear_without_antialias_by_hand():
    # half-pixel centres: downsampling 4 -> 2 reads source 0.5 and 2.5; upsampling 2 -> 4 reads -0.25 (clamped), ...
    row = np.array([[[0, 10, 20, 30]]], np.uint8)
    assert cv.tf_resize_bilinear(row, (1, 2)).tolist() == [[[5.0, 25.0]]]
    up = cv.tf_resize_bilinear(np.array([[[0, 10]]], np.uint8), (1, 4))
    assert up.tolist() == [[[0.0, 2.5, 7.5, 10.0]]]
    assert cv.big_vision_fixres_resize(np.array([[[0, 10]]], np.uint8), (1, 4)).tolist() == [[[0, 2, 7, 10]]]  # truncated


def test_value_range_by_hand():
    x = cv.value_range(np.array([[[0, 127, 255]]], np.uint8))
    assert x.dtype == np.float32
    assert x.tolist() == [[[-1.0, np.float32(-1) + np.float32(127 / 255) * 2, 1.0]]]


@pytest.mark.parametrize("hw, expected", [((480, 640), (224, 288)), ((1000, 300), (448, 144)), ((224, 224), (256, 256)),
                                          ((1080, 1920), (192, 336)), ((1, 1), (112, 112)), ((5000, 16), (4096, 16))])  # fmt: skip
def test_big_vision_sequence_search_on_the_spec_examples(hw, expected):
    assert cv.image_size_for_sequence_float32(*hw, 16, 256) == expected  # the float64 values of transformers 5.24 get_image_size_for_max_num_patches


def test_big_vision_naflex_normalises_before_a_float_resize():
    processor = NaFlexImageProcessor(max_num_patches=16, patch_size=4)
    flat = np.full((20, 30, 3), 51, np.uint8)  # a constant image stays constant under any normalised filter
    steps = cv.image_steps(processor, flat, "big_vision")
    assert steps["normalized"].shape == (3, 20, 30)  # at the input size
    assert steps["resized"].dtype == np.float32 and steps["spatial_shape"] == (3, 5)
    np.testing.assert_allclose(steps["resized"], -0.6, atol=1e-6)
    assert steps["mask"].sum() == 15


def test_big_vision_fixres_truncates_a_non_antialiased_resize():
    processor = FixResImageProcessor(size={"height": 1, "width": 2})
    image = np.array([[[0, 10, 20, 31]] * 2] * 3, np.uint8).transpose(1, 2, 0)  # [2, 4, 3]: two equal rows
    steps = cv.image_steps(processor, image, "big_vision")
    assert steps["resized"][0].tolist() == [[5, 25]]  # 25.5 truncated
    assert steps["normalized"][0, 0, 1] == np.float32(-1) + np.float32(25 / 255) * 2


# ---------------------------------------------------------------- NaFlex position resize


def test_bicubic_position_resize_by_hand():
    # A 4x4 grid whose value is the row index, resized to (2, 4): width unchanged (identity), height 4 -> 2.
    # ATen antialiased bicubic (timm): scale 2, support 4, centre 1 for output row 0, taps at |x| = .25 .25 .75 1.25
    # of Keys a = -0.5: .8671875 .8671875 .2265625 -.0703125, sum 1.890625.
    table = np.repeat(np.arange(4.0, dtype=np.float32), 4)[:, None]  # [16, 1], row-major (row, col)
    out = naflex_position_embeddings(table, np.array([[2, 4]]), 8, method="bicubic")[0, :, 0]
    row0 = (0.8671875 + 2 * 0.2265625 - 3 * 0.0703125) / 1.890625
    np.testing.assert_allclose(out, [row0] * 4 + [3 - row0] * 4, rtol=1e-6)
    bilinear = naflex_position_embeddings(table, np.array([[2, 4]]), 8)[0, :, 0]  # triangle: .75 .75 .25 0
    np.testing.assert_allclose(bilinear, [1.25 / 1.75] * 4 + [3 - 1.25 / 1.75] * 4, rtol=1e-6)


def test_unknown_position_resize_is_named():
    with pytest.raises(ValueError, match="unknown position resize 'nearest'"):
        naflex_position_embeddings(np.zeros((16, 2), np.float32), np.array([[2, 2]]), 4, method="nearest")
