"""Checks on the tokenizer files of a checkpoint folder: each wrong shape is one TokenizerFileError.

The message names the file, the key and what was expected, so a damaged or hand-edited file is found at
load time instead of as a KeyError deep in the tokenizer or as silently different ids.
"""

import math
import os

from ...checkpoint import jsonfile
from ...errors import TokenizerFileError

FLAGS = ("special", "lstrip", "rstrip", "single_word", "normalized")


def fail(path, message):
    raise TokenizerFileError(f"{os.path.basename(path)} ({path}): {message}")


def kind(value):
    return "null" if value is None else type(value).__name__


def read_json(path, default=None):
    """Parsed JSON, `default` when the file is absent; a TokenizerFileError when it is not UTF-8 JSON."""
    if not os.path.isfile(path):
        return default
    return jsonfile.read_json(path, TokenizerFileError, f"{os.path.basename(path)} ({path})")


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def check_object(path, value, where="the file"):
    if not isinstance(value, dict):
        fail(path, f"{where} is a {kind(value)}, expected a JSON object")
    return value


def check_flags(path, entry, where):
    for flag in FLAGS:
        if flag in entry and not isinstance(entry[flag], bool):
            fail(path, f"{where}: {flag!r} is {entry[flag]!r}, expected true or false")


def check_added_token(path, entry, where, need_id=True):
    if not isinstance(entry, dict):
        fail(path, f"{where} is a {kind(entry)}, expected an object with 'content' and 'id'")
    if not isinstance(entry.get("content"), str):
        problem = "missing" if "content" not in entry else f"{entry['content']!r}"
        fail(path, f"{where}: 'content' is {problem}, expected a string")
    if need_id and not (is_int(entry.get("id")) and entry["id"] >= 0):
        problem = "missing" if "id" not in entry else f"{entry['id']!r}"
        fail(path, f"{where}: 'id' is {problem}, expected a non-negative integer")
    check_flags(path, entry, where)


def check_token_entry(path, key, value):
    """A named special token: a string, an AddedToken object with a string 'content', or null."""
    if value is None or isinstance(value, str):
        return
    if isinstance(value, dict):
        check_added_token(path, value, f"{key!r}", need_id=False)
        return
    fail(path, f"{key!r} is {value!r} ({kind(value)}), expected a token string or an object with 'content'")


def check_special_entries(path, data, names):
    for key in names:
        if key in data:
            check_token_entry(path, key, data[key])
    extra = data.get("additional_special_tokens")
    if extra is not None:
        if not isinstance(extra, list):
            fail(path, f"'additional_special_tokens' is a {kind(extra)}, expected a list of tokens")
        for i, value in enumerate(extra):
            check_token_entry(path, f"additional_special_tokens[{i}]", value)


def check_tokenizer_config(path, config, names):
    """tokenizer_config.json: the keys the loader reads, each of the type transformers writes."""
    if config is None:
        return {}
    check_object(path, config)
    decoder = config.get("added_tokens_decoder")
    if decoder is not None:
        check_object(path, decoder, "'added_tokens_decoder'")
        for key, entry in decoder.items():
            if not (key.isdigit() and key.isascii()):
                fail(path, f"'added_tokens_decoder' key {key!r} is not a token id (expected a non-negative integer)")
            check_added_token(path, entry, f"'added_tokens_decoder'[{key!r}]", need_id=False)
    limit = config.get("model_max_length")
    if limit is not None:
        number = (is_int(limit) or isinstance(limit, float)) and not (isinstance(limit, float) and math.isnan(limit))
        if not number or limit < 0:
            fail(path, f"'model_max_length' is {limit!r}, expected a non-negative number (or null for no limit)")
    for key in ("add_bos_token", "add_eos_token"):
        if key in config and not isinstance(config[key], bool):
            fail(path, f"{key!r} is {config[key]!r}, expected true or false")
    if "padding_side" in config and config["padding_side"] not in ("right", "left"):
        fail(path, f"'padding_side' is {config['padding_side']!r}, expected \"right\" or \"left\"")
    check_special_entries(path, config, names)
    return config


def check_special_tokens_map(path, data, names):
    if data is None:
        return {}
    check_object(path, data)
    check_special_entries(path, data, names)
    return data


def check_tokenizer_json(path, tok_json):
    """tokenizer.json: 'model' (its 'vocab' and 'merges') and 'added_tokens', as the loader reads them."""
    if tok_json is None:
        return {}
    check_object(path, tok_json)
    model = tok_json.get("model")
    if model is not None:
        check_object(path, model, "'model'")
        vocab = model.get("vocab")
        if isinstance(vocab, dict):
            for piece, i in vocab.items():
                if not (is_int(i) and i >= 0):
                    fail(path, f"'model.vocab'[{piece!r}] is {i!r}, expected a non-negative integer id")
        elif isinstance(vocab, list):
            for i, entry in enumerate(vocab):
                if not (isinstance(entry, str) or isinstance(entry, list) and entry and isinstance(entry[0], str)):
                    fail(path, f"'model.vocab'[{i}] is {entry!r:.60}, expected [piece, score]")
        elif vocab is not None:
            fail(path, f"'model.vocab' is a {kind(vocab)}, expected an object of piece -> id (or a list of [piece, score])")
        merges = model.get("merges")
        if merges is not None:
            if not isinstance(merges, list):
                fail(path, f"'model.merges' is a {kind(merges)}, expected a list of merges (\"a b\" or [a, b])")
            for i, m in enumerate(merges):
                pair = isinstance(m, list) and len(m) == 2 and all(isinstance(s, str) for s in m)
                if not (pair or isinstance(m, str) and " " in m):
                    fail(path, f"'model.merges'[{i}] is {m!r:.60}, expected \"left right\" or [left, right]")
    added = tok_json.get("added_tokens")
    if added is not None:
        if not isinstance(added, list):
            fail(path, f"'added_tokens' is a {kind(added)}, expected a list of token objects")
        for i, entry in enumerate(added):
            check_added_token(path, entry, f"'added_tokens'[{i}]")
    return tok_json


def read_model_proto(model_file):
    """The bytes of tokenizer.model, refused when empty."""
    with open(model_file, "rb") as f:
        proto = f.read()
    if not proto:
        fail(model_file, "the file is empty (0 bytes); expected a SentencePiece model")
    return proto
