"""Invariants of preprocessing: NaFlex geometry, patchify round trip, token sequence shape."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from golden.preprocess_goldens import TOKENIZER_DIR
from siglip2_ref.preprocess.images import get_image_size_for_max_num_patches, patchify, unpatchify
from siglip2_ref.preprocess.tokenizer import load_tokenizer

sides = st.integers(min_value=1, max_value=6000)
patch_sizes = st.sampled_from([1, 2, 14, 16, 32])
budgets = st.integers(min_value=1, max_value=4096)
TOK = load_tokenizer(TOKENIZER_DIR, variant="naflex")
TEXT_ALPHABET = st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from([" ", "  ", "\t", "\n", "<eos>", "<pad>", "<mask>", "<MASK>", "Σ", "İ", "東京", "😀", "e\u0301"]),
)


@given(sides, sides, patch_sizes, budgets)
def test_naflex_size_is_patch_aligned_within_budget(H, W, p, budget):
    h, w = get_image_size_for_max_num_patches(H, W, p, budget)
    assert h % p == 0 and w % p == 0 and h >= p and w >= p  # at least one patch each way
    assert (h // p) * (w // p) <= max(budget, 1)


@given(sides, sides, patch_sizes, budgets)
def test_naflex_aspect_distortion_is_bounded_by_rounding(H, W, p, budget):
    """Each side is ceil(side * s / p) * p for one scale s, so side * s lies in (target - p, target]."""
    h, w = get_image_size_for_max_num_patches(H, W, p, budget)
    # H / W must lie in ((h - p) / w, h / (w - p)): written without division
    assert (h - p) * W < H * w * (1 + 1e-9)
    assert H * (w - p) < h * W * (1 + 1e-9)


@given(st.integers(1, 6), st.integers(1, 6), st.sampled_from([1, 2, 3, 16]), st.sampled_from([1, 3, 4]), st.integers(0, 9))
def test_patchify_unpatchify_round_trip(gh, gw, p, channels, seed):
    image = np.random.default_rng(seed).random((channels, gh * p, gw * p)).astype(np.float32)
    patches = patchify(image, p)
    assert patches.shape == (gh * gw, p * p * channels)
    padded = np.concatenate([patches, np.zeros((3, patches.shape[1]), np.float32)])  # padding rows are ignored
    assert np.array_equal(unpatchify(padded, (gh, gw), p, channels), image)


@given(st.lists(TEXT_ALPHABET, max_size=120).map("".join), st.integers(2, 80))
def test_tokens_have_max_length_and_one_eos_before_padding(text, max_length):
    ids = TOK(text, padding="max_length", max_length=max_length, truncation=True)["input_ids"]
    assert len(ids) == max_length
    eos_at = len(ids) - 1 - ids[::-1].index(TOK.eos_token_id)  # last EOS: the appended one
    assert all(i == TOK.pad_token_id for i in ids[eos_at + 1 :])
    bpe = TOK(text, add_special_tokens=False)["input_ids"]
    assert ids[:eos_at] == bpe[: max_length - 1]
    literal_eos = bpe[: max_length - 1].count(TOK.eos_token_id)  # "<eos>" typed in the text is kept as written
    assert ids.count(TOK.eos_token_id) == literal_eos + 1
