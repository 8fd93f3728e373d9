"""Tokenizer ids against transformers' goldens (toy Gemma-style model), options, decoding and errors."""

import numpy as np
import pytest

from golden.preprocess_goldens import TOKENIZER_DIR, load_text
from siglip2_ref.preprocess.tokenizer import load_tokenizer, lowercase_per_char

GOLDEN = load_text()
TEXTS = GOLDEN["texts"]
VARIANTS = {"fixres": False, "naflex": True}  # transformers 5.24: Siglip2Tokenizer (NaFlex) lowercases


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant_tok(request):
    return request.param, load_tokenizer(TOKENIZER_DIR, variant=request.param)


@pytest.mark.parametrize("option", sorted(GOLDEN["options"]))
def test_ids_match_transformers(variant_tok, option):
    variant, tok = variant_tok
    kwargs = GOLDEN["options"][option]
    expected = GOLDEN["ids"][f"{variant}|{option}"]
    got = tok(TEXTS, **kwargs)["input_ids"] if option == "longest" else [tok(t, **kwargs)["input_ids"] for t in TEXTS]
    mismatches = [(TEXTS[i], got[i], expected[i]) for i in range(len(TEXTS)) if got[i] != expected[i]]
    assert not mismatches, f"{len(mismatches)}/{len(TEXTS)} texts differ, first: {mismatches[0]}"


def test_decode_matches_transformers(variant_tok):
    variant, tok = variant_tok
    got = [tok.decode(tok(t)["input_ids"], skip_special_tokens=True) for t in TEXTS]
    assert got == GOLDEN["ids"][f"{variant}|decode"]


def test_golden_set_covers_the_length_limit():
    tok = load_tokenizer(TOKENIZER_DIR, variant="fixres")
    lengths = {len(tok(t, add_special_tokens=False)["input_ids"]) for t in TEXTS}
    assert {0, 62, 63, 64, 65} <= lengths and max(lengths) > 64


def test_default_lowercase_follows_variant():
    assert load_tokenizer(TOKENIZER_DIR, variant="naflex").lowercase
    assert not load_tokenizer(TOKENIZER_DIR, variant="fixres").lowercase
    assert not load_tokenizer(TOKENIZER_DIR).lowercase  # unknown variant: GemmaTokenizer, as AutoTokenizer
    forced = load_tokenizer(TOKENIZER_DIR, variant="fixres", lowercase=True)
    naflex = load_tokenizer(TOKENIZER_DIR, variant="naflex")
    assert forced("A Photo Of ΟΔΟΣ")["input_ids"] == naflex("A Photo Of ΟΔΟΣ")["input_ids"]


def test_lowercase_is_per_character():
    assert lowercase_per_char("ΟΔΟΣ") == "οδοσ" != "ΟΔΟΣ".lower()  # no word-final sigma
    assert lowercase_per_char("İ") == "İ".lower()


def test_eos_is_sticky_and_padding_is_right():
    tok = load_tokenizer(TOKENIZER_DIR)
    long_text = "the cat sat on the mat " * 40
    ids = tok(long_text, padding="max_length", max_length=64, truncation=True)["input_ids"]
    assert len(ids) == 64 and ids[-1] == tok.eos_token_id and ids.count(tok.eos_token_id) == 1
    short = tok("a cat", padding="max_length", max_length=64, truncation=True)["input_ids"]
    n = short.index(tok.eos_token_id)
    assert short[n + 1 :] == [tok.pad_token_id] * (63 - n) and tok.bos_token_id not in short


def test_return_tensors_np_and_attention_mask():
    tok = load_tokenizer(TOKENIZER_DIR)
    out = tok(["a", "a cat"], padding="max_length", max_length=8, return_tensors="np", return_attention_mask=True)
    assert out["input_ids"].dtype == np.int64 and out["input_ids"].shape == (2, 8)
    assert out["attention_mask"].sum(axis=1).tolist() == [len(tok("a")["input_ids"]), len(tok("a cat")["input_ids"])]
    assert set(tok("a")) == {"input_ids"}  # no attention mask unless asked (model_input_names)


def test_batch_decode_and_tokens():
    tok = load_tokenizer(TOKENIZER_DIR)
    ids = tok(["a photo", "of a cat"])["input_ids"]
    assert tok.batch_decode(ids, skip_special_tokens=True) == ["a photo", "of a cat"]
    assert tok.convert_tokens_to_ids(tok.tokenize("a photo")) == ids[0][:-1]
    assert tok.decode([tok.eos_token_id, tok.pad_token_id]) == "<eos><pad>"


@pytest.mark.parametrize(
    "text, kwargs, error, match",
    [
        (None, {}, TypeError, "None"),
        (123, {}, TypeError, "int"),
        (b"bytes", {}, TypeError, "bytes"),
        (["a", 1], {}, TypeError, r"text\[1\]"),
        ([], {}, ValueError, "empty"),
        ("a", {"padding": "foo"}, ValueError, "padding"),
        ("a", {"truncation": "only_second"}, ValueError, "truncation"),
        ("a", {"max_length": 0, "truncation": True}, ValueError, "max_length"),
        ("a", {"max_length": 2.5}, ValueError, "max_length"),
        ("a", {"return_tensors": "pt"}, ValueError, "return_tensors"),
        (["a", "a cat"], {"return_tensors": "np"}, ValueError, "different lengths"),
    ],
)
def test_bad_inputs_raise_clear_errors(text, kwargs, error, match):
    tok = load_tokenizer(TOKENIZER_DIR)
    with pytest.raises(error, match=match):
        tok(text, **kwargs)


def test_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.model"):
        load_tokenizer(tmp_path)
