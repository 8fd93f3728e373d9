"""Bad tokenizer files, bad text and bad templates: each gives one clear error, never a traceback or wrong ids.

Tokenizer files are the demo model's, copied into tmp_path and damaged there. Valid inputs keep their ids
(the goldens in test_tokenizer.py); here, only the refusals and their messages are checked.
"""

import json
import os
import shutil
import time

import pytest

from siglip2_ref.checkpoint.config import ConfigError
from siglip2_ref.cli import app as cli
from siglip2_ref.demo import DEMO_NAFLEX, EXAMPLE_IMAGE
from siglip2_ref.model.vision import InputError
from siglip2_ref.preprocess.tokenizer import load_tokenizer
from siglip2_ref.preprocess.tokenizer.files import TokenizerFileError
from siglip2_ref.tasks.pipelines import check_template

TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@pytest.fixture
def folder(tmp_path):
    """A copy of the demo tokenizer files (and the variant's config), free to damage."""
    out = tmp_path / "tok"
    out.mkdir()
    for name in (*TOKENIZER_FILES, "config.json"):
        shutil.copy(os.path.join(DEMO_NAFLEX, name), out / name)
    return out


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(DEMO_NAFLEX)


def refused(folder, *words):
    with pytest.raises(TokenizerFileError) as info:
        load_tokenizer(folder)
    message = str(info.value)
    for word in words:
        assert word in message, message
    assert "\n" not in message
    return message


def edit_json(path, change):
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_error_class_is_a_config_error():
    assert issubclass(TokenizerFileError, ConfigError) and issubclass(TokenizerFileError, ValueError)


# ---------------------------------------------------------------- tokenizer.model


def truncated(data):
    return data[: len(data) // 2]


@pytest.mark.parametrize("damage, words", [
    (lambda data: b"", ["empty", "0 bytes"]),
    (lambda data: bytes(range(256)) * 8, ["not a SentencePiece model"]),
    (truncated, ["not a SentencePiece model", "truncated"]),
    (lambda data: data[:7], ["not a SentencePiece model"]),
    (lambda data: b"this is a text file, not a model\n" * 20, ["not a SentencePiece model"]),
    (lambda data: json.dumps({"model": "x"}).encode(), ["not a SentencePiece model"]),
], ids=["empty", "random", "truncated-half", "truncated-7", "text", "json"])
def test_bad_sentencepiece_model(folder, damage, words):
    path = folder / "tokenizer.model"
    path.write_bytes(damage(path.read_bytes()))
    message = refused(folder, "tokenizer.model", *words)
    assert "PYBIND11" not in message


# ---------------------------------------------------------------- tokenizer.json


def set_model(value):
    return lambda d: d.__setitem__("model", value)


def set_in_model(key, value):
    return lambda d: d["model"].__setitem__(key, value)


def set_added(index, **changes):
    def change(d):
        entry = d["added_tokens"][index]
        for k, v in changes.items():
            if v is KeyError:
                del entry[k]
            else:
                entry[k] = v
    return change


@pytest.mark.parametrize("change, words", [
    (set_model([1, 2]), ["'model'", "list", "JSON object"]),
    (set_model("BPE"), ["'model'", "str", "JSON object"]),
    (set_in_model("merges", "a b"), ["'model.merges'", "list of merges"]),
    (set_in_model("merges", {"a": "b"}), ["'model.merges'", "dict"]),
    (set_in_model("merges", [["a", "b"], 7]), ["'model.merges'[1]", "7"]),
    (set_in_model("merges", ["ab"]), ["'model.merges'[0]", "left right"]),
    (set_in_model("vocab", "abc"), ["'model.vocab'", "str", "piece -> id"]),
    (set_in_model("vocab", 12), ["'model.vocab'", "int"]),
    (set_in_model("vocab", {"a": "1"}), ["'model.vocab'['a']", "non-negative integer"]),
    (set_in_model("vocab", {"a": -1}), ["'model.vocab'['a']", "-1"]),
    (set_in_model("vocab", [[1, 0.0]]), ["'model.vocab'[0]", "[piece, score]"]),
    (set_added(0, content=KeyError), ["'added_tokens'[0]", "'content' is missing"]),
    (set_added(1, id=KeyError), ["'added_tokens'[1]", "'id' is missing"]),
    (set_added(0, content=5), ["'added_tokens'[0]", "'content' is 5", "string"]),
    (set_added(0, id="0"), ["'added_tokens'[0]", "'id' is '0'", "non-negative integer"]),
    (set_added(0, id=True), ["'added_tokens'[0]", "'id' is True"]),
    (set_added(0, special="yes"), ["'added_tokens'[0]", "'special'", "true or false"]),
    (lambda d: d.__setitem__("added_tokens", {"0": "<pad>"}), ["'added_tokens'", "dict", "list"]),
    (lambda d: d["added_tokens"].__setitem__(0, "<pad>"), ["'added_tokens'[0]", "str"]),
], ids=lambda v: None if callable(v) else "-".join(v)[:40])
def test_bad_tokenizer_json(folder, change, words):
    edit_json(folder / "tokenizer.json", change)
    refused(folder, "tokenizer.json", *words)


@pytest.mark.parametrize("name", TOKENIZER_FILES[1:])
@pytest.mark.parametrize("content, words", [
    (b"{not json", ["not valid JSON"]),
    (b"", ["not valid JSON"]),
    (b'{"a": "\xff\xfe"}', ["not UTF-8", "0xff", "offset 7"]),
    (b"[1, 2, 3]", ["list", "JSON object"]),
    (b'"text"', ["str", "JSON object"]),
    (b"[" * 100000, ["nested too deeply"]),
], ids=["broken", "empty", "latin1", "list", "string", "deep"])
def test_json_files_not_json_objects(folder, name, content, words):
    (folder / name).write_bytes(content)
    refused(folder, name, *words)


# ---------------------------------------------------------------- tokenizer_config.json / special_tokens_map.json


def set_key(key, value):
    return lambda d: d.__setitem__(key, value)


@pytest.mark.parametrize("change, words", [
    (set_key("added_tokens_decoder", [1, 2]), ["'added_tokens_decoder'", "list", "JSON object"]),
    (set_key("added_tokens_decoder", {"x": {"content": "<pad>"}}), ["'added_tokens_decoder' key 'x'", "token id"]),
    (set_key("added_tokens_decoder", {"0": "<pad>"}), ["'added_tokens_decoder'['0']", "str"]),
    (set_key("added_tokens_decoder", {"0": {"special": True}}), ["'added_tokens_decoder'['0']", "'content' is missing"]),
    (set_key("added_tokens_decoder", {"0": {"content": ["<pad>"]}}), ["'added_tokens_decoder'['0']", "'content'"]),
    (set_key("model_max_length", "64"), ["'model_max_length'", "'64'", "non-negative number"]),
    (set_key("model_max_length", -1), ["'model_max_length'", "-1"]),
    (set_key("model_max_length", True), ["'model_max_length'", "True"]),
    (set_key("add_eos_token", "true"), ["'add_eos_token'", "true or false"]),
    (set_key("add_bos_token", 1), ["'add_bos_token'", "true or false"]),
    (set_key("padding_side", "top"), ["'padding_side'", "'top'"]),
    (set_key("eos_token", 1), ["'eos_token'", "token string"]),
    (set_key("pad_token", ["<pad>"]), ["'pad_token'", "list"]),
    (set_key("unk_token", {"content": None}), ["'unk_token'", "'content'"]),
    (set_key("additional_special_tokens", "<mask>"), ["'additional_special_tokens'", "list of tokens"]),
    (set_key("additional_special_tokens", [3]), ["'additional_special_tokens[0]'", "token string"]),
], ids=lambda v: None if callable(v) else "-".join(v)[:40])
def test_bad_tokenizer_config(folder, change, words):
    edit_json(folder / "tokenizer_config.json", change)
    refused(folder, "tokenizer_config.json", *words)


@pytest.mark.parametrize("change, words", [
    (set_key("bos_token", 2), ["'bos_token'", "token string"]),
    (set_key("eos_token", {"lstrip": False}), ["'eos_token'", "'content' is missing"]),
    (set_key("pad_token", {"content": "<pad>", "lstrip": "no"}), ["'pad_token'", "'lstrip'", "true or false"]),
    (set_key("additional_special_tokens", {"a": 1}), ["'additional_special_tokens'", "dict"]),
], ids=lambda v: None if callable(v) else "-".join(v)[:40])
def test_bad_special_tokens_map(folder, change, words):
    edit_json(folder / "special_tokens_map.json", change)
    refused(folder, "special_tokens_map.json", *words)


def test_accepted_variations_keep_ids(folder, tok):
    """Nulls, float model_max_length as some Hub files have, merges written "a b": same ids as the demo files."""
    edit_json(folder / "tokenizer_config.json", lambda d: d.update(model_max_length=1e30, sep_token=None))
    edit_json(folder / "tokenizer.json", lambda d: d["model"].__setitem__("merges", [" ".join(m) for m in d["model"]["merges"]]))
    text = ["a photo of a cat", "Hello  World <pad> x", "\x00 é 😀"]
    assert load_tokenizer(folder)(text)["input_ids"] == tok(text)["input_ids"]


# ---------------------------------------------------------------- text given to the tokenizer


@pytest.mark.parametrize("text, kind, words", [
    ("\ud800", InputError, ["text:", "character 0", "surrogate", "U+D800"]),
    ("a cat \udfff", InputError, ["text:", "character 6", "U+DFFF"]),
    (["a", "b\udc80c"], InputError, ["text[1]", "character 1", "surrogate"]),
    (b"a cat", TypeError, ["text", "bytes"]),
    (None, TypeError, ["text", "None"]),
    (3, TypeError, ["text", "int"]),
    (["a", None], TypeError, ["text[1]", "NoneType"]),
    (["a", "b", 7], TypeError, ["text[2]", "int"]),
    (["a", b"b"], TypeError, ["text[1]", "bytes"]),
    ([["a", "b"]], TypeError, ["text[0]", "list"]),
    ([], ValueError, ["empty"]),
], ids=["surrogate", "surrogate-late", "surrogate-batch", "bytes", "none", "int", "none-item", "int-item",
        "bytes-item", "nested", "empty-list"])
def test_bad_text(tok, text, kind, words):
    with pytest.raises(kind) as info:
        tok(text)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_surrogate_in_tokenize(tok):
    with pytest.raises(InputError, match="surrogate"):
        tok.tokenize("x\ud83d")
    with pytest.raises(TypeError, match="surrogate"):  # what `tokenizers` raises, so code written for it still works
        tok("x\ud83d")


def test_random_model_byte_changes_load_or_are_refused(tmp_path):
    """Single- and three-byte changes to tokenizer.model: each loads and tokenizes, or is a TokenizerFileError."""
    import random

    from siglip2_ref.preprocess.tokenizer import Tokenizer

    orig = open(os.path.join(DEMO_NAFLEX, "tokenizer.model"), "rb").read()
    rng, path, refused_count = random.Random(0), tmp_path / "tokenizer.model", 0
    for trial in range(300):
        data = bytearray(orig)
        for _ in range(1 if trial % 2 else 3):
            data[rng.randrange(len(data))] = rng.randrange(256)
        path.write_bytes(bytes(data))
        try:
            t = Tokenizer(path)
        except TokenizerFileError:
            refused_count += 1
            continue
        t(["a photo of a cat", "Zebra  \u00e9 \U0001F600 <pad>"])
        t.decode(list(range(t.vocab_size)))
    assert 0 < refused_count < 300


def test_surrogate_pair_characters_are_fine(tok):
    """A real astral character (what a surrogate pair stands for) encodes; NUL and controls too."""
    assert tok("😀")["input_ids"][-1] == 1
    assert tok("a\x00b\x7f")["input_ids"] == tok("a\x00b\x7f")["input_ids"]
    assert len(tok("a\x00b")["input_ids"]) > 2


def test_long_text_costs_linear_time(tok):
    """1 MB of text with truncation: the same ids as its first words, in time linear in the length (no cap)."""
    short = "a photo of a cat. " * 50
    long = "a photo of a cat. " * (10**6 // 18)
    start = time.perf_counter()
    ids = tok(long, max_length=64, truncation=True)["input_ids"]
    assert ids == tok(short, max_length=64, truncation=True)["input_ids"]
    assert time.perf_counter() - start < 30


# ---------------------------------------------------------------- templates


@pytest.mark.parametrize("template, words", [
    ("{0} {1}", ["'{0} {1}'", "2 replacement fields", "exactly one"]),
    ("{", ["'{'", "not a valid format string", "Single '{'"]),
    ("}", ["'}'", "Single '}'"]),
    ("a {} }", ["'a {} }'", "Single '}'"]),
    ("{name}", ["'{name}'", "field '{name}'"]),
    ("{0}", ["field '{0}'"]),
    ("{:>9}", ["field '{:>9}'"]),
    ("{!r}", ["field '{!r}'"]),
    ("a photo", ["no '{}'", "exactly one"]),
    ("{{}}", ["no '{}'"]),
    (None, ["template must be a str", "NoneType"]),
], ids=["two", "open", "close", "close-after", "named", "numbered", "spec", "conversion", "none", "escaped", "not-str"])
def test_bad_template(template, words):
    with pytest.raises(InputError) as info:
        check_template(template)
    for word in words:
        assert word in str(info.value), str(info.value)


@pytest.mark.parametrize("template, label, text", [
    ("This is a photo of {}.", "cat", "This is a photo of cat."),
    ("{{{}}}", "cat", "{cat}"),
    ("{} {{literal}}", "cat", "cat {literal}"),
])
def test_good_templates(template, label, text):
    check_template(template)
    assert template.format(label) == text


def test_zero_shot_bad_template_from_python():
    from siglip2_ref.model.model import load_model
    from siglip2_ref.preprocess.processor import load_processor
    from siglip2_ref.tasks.pipelines import zero_shot

    with pytest.raises(InputError, match="Single '}'"):
        zero_shot(load_model(DEMO_NAFLEX), load_processor(DEMO_NAFLEX), None, ["cat"], template="a {} }")


# ---------------------------------------------------------------- the command line


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("template", ["{0} {1}", "{", "}", "{name}", "no slot"])
def test_cli_bad_template(capsys, template):
    code, _, err = run(capsys, "classify", "--labels", "cat", "--template", template)
    assert code == 2 and "--template" in err and repr(template) in err and "Traceback" not in err


@pytest.mark.parametrize("content, offset, line", [(b"cat\ndog \xe9\n", 8, 2), (b"\xff\xfe c\x00a\x00t\x00", 0, 1)],
                         ids=["latin1", "utf16"])
def test_cli_labels_file_not_utf8(capsys, tmp_path, content, offset, line):
    path = tmp_path / "labels.txt"
    path.write_bytes(content)
    code, _, err = run(capsys, "classify", "--labels-file", path)
    assert code == 1 and str(path) in err and "not UTF-8" in err and f"offset {offset}" in err and f"line {line}" in err


def test_cli_texts_file_not_utf8(capsys, tmp_path):
    path = tmp_path / "texts.txt"
    path.write_bytes(b"a cat\n\x80\n")
    code, _, err = run(capsys, "dump", "--texts-file", path, "-o", tmp_path / "d.safetensors")
    assert code == 1 and "--texts-file" in err and str(path) in err and "offset 6" in err


def test_cli_labels_file_with_bom_and_crlf(tmp_path):
    from types import SimpleNamespace

    from siglip2_ref.cli.classify import read_labels

    path = tmp_path / "labels.txt"
    path.write_bytes("\ufeffcat\r\ndog\r\n# note\r\n".encode("utf-8"))
    assert read_labels(SimpleNamespace(labels_file=str(path), labels=None, model=None)) == ["cat", "dog"]


def test_cli_damaged_tokenizer(capsys, tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(DEMO_NAFLEX, folder)
    (folder / "tokenizer.model").write_bytes(b"\x00" * 10)
    code, _, err = run(capsys, "classify", EXAMPLE_IMAGE, "--model", folder, "--labels", "cat")
    assert code == 1 and "tokenizer.model" in err and "not a SentencePiece model" in err and "Traceback" not in err
