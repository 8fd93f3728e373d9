"""The tokenizer on a Gemma-format stand-in with the real size (256,000 pieces) against transformers' goldens.

The stand-in is rebuilt per session by golden/gemma_standin.py (deterministic, a few seconds); its files must be
byte-identical to those the goldens of golden/preprocess/gemma_standin_text.json were recorded on.
"""

import copy
import json
import time

import pytest

from golden.gemma_standin import GOLDEN_FILE, file_digests, write_flagged, write_standin
from siglip2_ref.preprocess.tokenizer import load_tokenizer

with open(GOLDEN_FILE, encoding="utf-8") as f:
    GOLDEN = json.load(f)
TEXTS = GOLDEN["texts"]
LOAD_SECONDS = {}


@pytest.fixture(scope="session")
def standin_dir(tmp_path_factory):
    return write_standin(str(tmp_path_factory.mktemp("gemma_standin")))


@pytest.fixture(scope="module")
def tokenizers(standin_dir):
    """FixRes (GemmaTokenizer, no lowercasing) and NaFlex (Siglip2Tokenizer, lowercasing) from one load."""
    start = time.perf_counter()
    fixres = load_tokenizer(standin_dir, variant="fixres")
    LOAD_SECONDS["fixres"] = time.perf_counter() - start
    naflex = copy.copy(fixres)
    naflex.lowercase = True
    return {"fixres": fixres, "naflex": naflex}


def test_standin_is_the_one_the_goldens_were_recorded_on(standin_dir):
    assert file_digests(standin_dir) == GOLDEN["file_digests"]
    assert GOLDEN["versions"]["transformers"] == "5.24.0"
    assert GOLDEN["classes"] == {"fixres": "GemmaTokenizer", "naflex": "Siglip2Tokenizer"}


def test_standin_has_gemmas_layout(standin_dir):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=f"{standin_dir}/tokenizer.model")
    assert sp.get_piece_size() == 256_000
    assert [sp.id_to_piece(i) for i in range(5)] == ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    assert all(sp.is_control(i) for i in range(3)) and sp.is_unknown(3)
    assert sp.piece_to_id("<start_of_turn>") == 106 and sp.piece_to_id("<end_of_turn>") == 107
    assert sp.piece_to_id("<unused98>") == 105 and sp.piece_to_id("<table>") == 169
    assert sp.id_to_piece(217) == "<0x00>" and sp.id_to_piece(472) == "<0xFF>" and sp.is_byte(300)
    assert sp.id_to_piece(255999) == "[multimodal]" and sp.id_to_piece(255968) == "\t"
    with open(f"{standin_dir}/tokenizer_config.json", encoding="utf-8") as f:
        decoder = json.load(f)["added_tokens_decoder"]
    assert len(decoder) == 4 + 245 and decoder["139"]["content"] == "\u2581\u2581" and not decoder["139"]["special"]


@pytest.mark.parametrize("variant", ["fixres", "naflex"])
@pytest.mark.parametrize("option", sorted(GOLDEN["options"]))
def test_ids_match_transformers(tokenizers, variant, option):
    tok, kwargs = tokenizers[variant], GOLDEN["options"][option]
    expected = GOLDEN["ids"][f"{variant}|{option}"]
    got = [tok(t, **kwargs)["input_ids"] for t in TEXTS]
    mismatches = [(TEXTS[i], got[i], expected[i]) for i in range(len(TEXTS)) if got[i] != expected[i]]
    assert not mismatches, f"{len(mismatches)}/{len(TEXTS)} texts differ, first: {mismatches[0]}"


@pytest.mark.parametrize("variant", ["fixres", "naflex"])
def test_decode_matches_transformers(tokenizers, variant):
    tok = tokenizers[variant]
    ids = [tok(t)["input_ids"] for t in TEXTS]
    assert [tok.decode(i, skip_special_tokens=True) for i in ids] == GOLDEN["ids"][f"{variant}|decode"]
    assert [tok.decode(i) for i in ids] == GOLDEN["ids"][f"{variant}|decode_all"]


def test_golden_set_exercises_the_real_checkpoint_paths(tokenizers):
    """The texts reach user-defined pieces, long whitespace runs, byte fallback and the 64-token limit."""
    tok = tokenizers["fixres"]
    ids = GOLDEN["ids"]["fixres|no_padding"]
    flat = {i for seq in ids for i in seq}
    assert {106, 107, 108, 139, 169} <= flat  # <start_of_turn>, <end_of_turn>, "\n", "▁▁", <table>
    assert any(217 <= i < 473 for i in flat)  # byte fallback
    assert tok.convert_tokens_to_ids("\u2581" * 16) in flat  # a run of 32+ spaces, merged as transformers does
    assert {len(seq) - 1 for seq in ids} >= {62, 63, 64, 65} and max(len(seq) for seq in ids) > 65
    assert GOLDEN["ids"]["naflex|no_padding"] != ids  # lowercasing changes some ids


def test_load_is_fast_enough(tokenizers):
    """Loading 256k pieces plus tokenizer.json's merges: a few seconds (transformers takes longer)."""
    assert LOAD_SECONDS["fixres"] < 30, LOAD_SECONDS


def test_long_inputs_cost_no_more_than_n_log_n(tokenizers):
    """Space runs take transformers' merge path (a priority queue); 10x the input is far from 100x the time."""
    tok = tokenizers["fixres"]

    def seconds(text):
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            tok(text)
            best = min(best, time.perf_counter() - start)
        return best

    for unit in (" ", "a <table> b  c "):
        small, large = seconds(unit * 1000), seconds(unit * 10000)
        assert large < 40 * small, (unit, small, large)


def test_without_tokenizer_json_merges_come_from_the_vocabulary(standin_dir, tmp_path):
    """transformers converts tokenizer.model alone with the same merges; so do we, from piece ids."""
    import shutil

    for name in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(f"{standin_dir}/{name}", tmp_path / name)
    tok = load_tokenizer(tmp_path, variant="fixres")
    assert tok.merges is None
    expected = GOLDEN["ids"]["fixres|no_padding"]
    assert [tok(t)["input_ids"] for t in TEXTS] == expected


def test_token_flags_match_transformers(standin_dir, tmp_path):
    """lstrip / rstrip / single_word on Gemma's added tokens cut the text as transformers does."""
    fixres = load_tokenizer(write_flagged(standin_dir, str(tmp_path / "flagged")), variant="fixres")
    naflex = copy.copy(fixres)
    naflex.lowercase = True
    flags = GOLDEN["flags"]
    for variant, tok in (("fixres", fixres), ("naflex", naflex)):
        assert [tok(t)["input_ids"] for t in flags["texts"]] == flags["ids"][variant], variant
