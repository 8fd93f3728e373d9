"""Live comparison with transformers on the 256k Gemma-format stand-in (golden/gemma_standin.py).

transformers loads the stand-in the way it loads a SigLIP 2 checkpoint: AutoTokenizer on the Hub files
(GemmaTokenizer for FixRes; Siglip2Tokenizer for NaFlex, chosen from config.json's model_type "siglip2").
"""

import json
import os
import shutil
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

transformers = pytest.importorskip("transformers")

from golden.gemma_standin import (  # noqa: E402
    ENGLISH, GOLDEN_FILE, SPACE, standin_pieces, tokenizer_json, user_defined_head, user_defined_tail, write_flagged,
    write_standin,
)
from siglip2_ref.preprocess.tokenizer import load_tokenizer  # noqa: E402

pytestmark = pytest.mark.oracle
transformers.logging.set_verbosity_error()
warnings.filterwarnings("ignore", module="transformers")

TWO_THOUSAND = settings(max_examples=2500, deadline=None, derandomize=True, database=None,
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
USER_DEFINED = user_defined_head() + user_defined_tail()
LITERALS = USER_DEFINED + [u.upper() for u in USER_DEFINED] + [
    "<pad>", "<eos>", "<bos>", "<unk>", "<EOS>", "<Pad>", "<0x41>", "<unused99>", "<table", "<tabl>", "[@BOS@",
    SPACE, "ΟΔΟΣ", "İ", "ẞ", "\u1c89", "東京", "龘", "𠀀", "😀", "🦜", "🏳️‍🌈", "e\u0301", "\r\n", "\u00a0", "\u3000",
]
TEXT = st.lists(
    st.one_of(
        st.characters(codec="utf-8"),  # any Unicode scalar
        st.sampled_from(LITERALS),  # user-defined pieces (and their uppercase forms) spliced into the text
        st.sampled_from(ENGLISH).map(lambda w: " " + w),
        st.tuples(st.sampled_from([" ", "\n", "\t", SPACE]), st.integers(1, 70)).map(lambda r: r[0] * r[1]),
        st.text(st.characters(codec="utf-8"), max_size=4),
    ),
    max_size=40,
).map("".join)
COUNTS = {"compared": 0}
OPTIONS = ({"padding": "max_length", "max_length": 64, "truncation": True}, {})


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The stand-in as a FixRes folder (tokenizer files only) and as a NaFlex one (plus config.json)."""
    fixres = write_standin(str(tmp_path_factory.mktemp("standin_fixres")))
    naflex = str(tmp_path_factory.mktemp("standin_naflex"))
    for name in os.listdir(fixres):
        shutil.copy(os.path.join(fixres, name), naflex)
    with open(os.path.join(naflex, "config.json"), "w", encoding="utf-8") as f:
        json.dump({"model_type": "siglip2"}, f)
    return {"fixres": fixres, "naflex": naflex}


@pytest.fixture(scope="module")
def pairs(folders):
    from transformers import AutoTokenizer

    out = {v: (load_tokenizer(path), AutoTokenizer.from_pretrained(path)) for v, path in folders.items()}
    assert type(out["fixres"][1]).__name__ == "GemmaTokenizer" and not out["fixres"][0].lowercase
    assert type(out["naflex"][1]).__name__ == "Siglip2Tokenizer" and out["naflex"][0].lowercase
    return out


def test_tokenizer_json_is_what_transformers_converts(folders, tmp_path):
    """The generator's tokenizer.json equals transformers' conversion of tokenizer.model (vocab, merges, pipeline)."""
    from transformers import GemmaTokenizer

    shutil.copy(os.path.join(folders["fixres"], "tokenizer.model"), tmp_path)
    GemmaTokenizer.from_pretrained(str(tmp_path), add_bos_token=False, add_eos_token=True).save_pretrained(str(tmp_path))
    with open(tmp_path / "tokenizer.json", encoding="utf-8") as f:
        theirs = json.load(f)
    ours = tokenizer_json(standin_pieces())
    assert ours["model"]["vocab"] == theirs["model"]["vocab"]
    assert ours["model"]["merges"] == theirs["model"]["merges"]
    for key in ("normalizer", "pre_tokenizer", "post_processor", "decoder"):
        assert ours[key] == theirs[key], key
    assert [(t["id"], t["content"]) for t in ours["added_tokens"]] == [(t["id"], t["content"]) for t in theirs["added_tokens"]]


def test_goldens_are_reproduced_by_the_installed_transformers(pairs):
    with open(GOLDEN_FILE, encoding="utf-8") as f:
        golden = json.load(f)
    for variant, (_, theirs) in pairs.items():
        for name, kwargs in golden["options"].items():
            assert [theirs(t, **kwargs)["input_ids"] for t in golden["texts"]] == golden["ids"][f"{variant}|{name}"]


def test_ids_and_decoding_on_generated_strings(pairs):
    """Both variants, padded to 64 and raw; decoding with and without special tokens; >= 2,000 strings."""

    @TWO_THOUSAND
    @given(TEXT)
    def check(text):
        for variant, (ours, theirs) in pairs.items():
            for kwargs in OPTIONS:
                got, want = ours(text, **kwargs)["input_ids"], theirs(text, **kwargs)["input_ids"]
                assert got == want, f"{variant} {kwargs} {text!r}: {got} != {want}"
            for skip in (True, False):
                assert ours.decode(want, skip_special_tokens=skip) == theirs.decode(want, skip_special_tokens=skip)
        COUNTS["compared"] += 1

    check()
    assert COUNTS["compared"] >= 2000, COUNTS
    print(f"compared {COUNTS['compared']} generated strings with transformers")


def test_without_tokenizer_json_both_build_merges_from_the_vocabulary(folders, tmp_path, pairs):
    from transformers import GemmaTokenizer

    for name in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(folders["fixres"], name), tmp_path)
    ours, theirs = load_tokenizer(tmp_path), GemmaTokenizer.from_pretrained(str(tmp_path))
    texts = ["a  b   c", " " * 45, "x<table>y <TABLE> <EOS>", "<start_of_turn>user\n" + "\t" * 40, "😀 龘 a photo"]
    for text in texts:
        assert ours(text)["input_ids"] == theirs(text)["input_ids"] == pairs["fixres"][1](text)["input_ids"], text


def test_token_flags_on_generated_strings(folders, tmp_path):
    """lstrip / rstrip / single_word set on Gemma's added tokens (golden/gemma_standin.py FLAG_CHANGES)."""
    from transformers import GemmaTokenizer

    folder = write_flagged(folders["fixres"], str(tmp_path / "flagged"))
    ours, theirs = load_tokenizer(folder), GemmaTokenizer.from_pretrained(folder)
    pieces = st.sampled_from(["<mask>", "<start_of_turn>", "<end_of_turn>", "<table>", " ", "  ", "\n", "\t", "a", "_",
                              "é", "Ⓐ", "²", "\u0301", "\u3000", "\x1c", "\x85", "\u00a0", "-"])

    @TWO_THOUSAND
    @given(st.lists(st.one_of(pieces, st.characters(codec="utf-8")), max_size=14).map("".join))
    def check(text):
        assert ours(text)["input_ids"] == theirs(text)["input_ids"], repr(text)

    check()
