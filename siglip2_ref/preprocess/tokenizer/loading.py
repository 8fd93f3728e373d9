"""Loading a tokenizer from a checkpoint folder: tokenizer.model, tokenizer.json, tokenizer_config.json, special_tokens_map.json."""

import os

from ...checkpoint.choices import decide
from .added_tokens import AddedToken
from .files import check_special_tokens_map, check_tokenizer_config, check_tokenizer_json, read_json
from .tokenizer import NAMED_SPECIAL, Tokenizer


def token_content(value):
    """A special-token entry of the config files: a plain string or an AddedToken dict."""
    return value.get("content") if isinstance(value, dict) else value


def read_added_tokens(config, tok_json):
    """Added tokens: tokenizer_config.json's added_tokens_decoder, else tokenizer.json's added_tokens.

    Mirrors: PreTrainedTokenizerBase._from_pretrained (5.24 reads tokenizer.json's list only without the former).
    """
    decoder = config.get("added_tokens_decoder")
    if decoder is not None:
        entries = [{"id": int(i), **v} for i, v in decoder.items()]
    else:
        entries = tok_json.get("added_tokens") or []
    flags = ("special", "lstrip", "rstrip", "single_word", "normalized")
    return [AddedToken(e["content"], e["id"], **{k: e.get(k, False) for k in flags}) for e in entries]


def add_named_specials(added, special, vocab_id):
    """Named special tokens missing from the added tokens join them as special tokens, as transformers does."""
    known = {t.content for t in added}
    extra = []
    for content in dict.fromkeys(v for v in special.values() if v is not None):
        i = vocab_id(content)
        if content not in known and i is not None:
            extra.append(AddedToken(content, i, special=True))
    return added + extra


def read_merges(tok_json):
    """BPE merges from tokenizer.json, as pairs, or None."""
    merges = (tok_json.get("model") or {}).get("merges")
    if merges is None:
        return None
    return [m.split(" ", 1) if isinstance(m, str) else m for m in merges]


def read_vocab(tok_json):
    """tokenizer.json's BPE vocabulary (piece -> id), or None."""
    vocab = (tok_json.get("model") or {}).get("vocab")
    if isinstance(vocab, list):  # [[piece, score], ...]
        vocab = {(v[0] if isinstance(v, list) else v): i for i, v in enumerate(vocab)}
    return vocab or None


def read_variant(folder):
    """"naflex" / "fixres" / None for a folder, as decided by siglip2_ref.checkpoint.choices (kept for callers)."""
    return decide(folder).variant


def load_tokenizer(path, lowercase=None, variant=None, choices=None):
    """Tokenizer from a checkpoint folder (`tokenizer.model` + `tokenizer_config.json` etc.).

    `lowercase=None`: as the tokenizer class transformers 5.24's AutoTokenizer picks for the folder
    (Siglip2Tokenizer lowercases; GemmaTokenizer / TokenizersBackend do not), decided by
    siglip2_ref.checkpoint.choices (pass `choices=` when already decided; docs/checkpoint_folder.md has the table).
    `variant="naflex"` / `"fixres"` instead says which model the text is for, as a config.json of that variant
    would (NaFlex lowercases, FixRes does not). The models were trained on lowercased text (docs/parity.md "Pitfalls" 3).
    Raises FolderChoiceError where AutoTokenizer would raise and neither `lowercase` nor `variant` is given.
    """
    path = os.fspath(path)
    model_file = os.path.join(path, "tokenizer.model")
    if not os.path.isfile(model_file):
        raise FileNotFoundError(f"{model_file}: the SentencePiece model is missing")
    config_file, map_file, json_file = (os.path.join(path, n) for n in ("tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"))
    config = check_tokenizer_config(config_file, read_json(config_file), NAMED_SPECIAL)
    special_map = check_special_tokens_map(map_file, read_json(map_file), NAMED_SPECIAL)
    special = {k: token_content(config.get(k, special_map.get(k))) for k in NAMED_SPECIAL}
    special["mask_token"] = special["mask_token"] or "<mask>"  # GemmaTokenizer's class default
    defaults = {"bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>"}
    special = {k: v if v is not None else defaults.get(k) for k, v in special.items()}
    if lowercase is None and variant is not None:
        lowercase = variant == "naflex"
    if lowercase is None:
        if choices is None:
            choices = decide(path)
        lowercase = choices.require("tokenizer").lowercase
    tok_json = check_tokenizer_json(json_file, read_json(json_file))
    tokenizer = Tokenizer(
        model_file, read_added_tokens(config, tok_json), lowercase=lowercase,
        add_bos_token=config.get("add_bos_token", False), add_eos_token=config.get("add_eos_token", True),
        special_tokens=special, model_max_length=config.get("model_max_length"),
        padding_side=config.get("padding_side", "right"), merges=read_merges(tok_json), vocab=read_vocab(tok_json),
    )
    del tok_json  # the parsed file is the bulk of the loading memory
    tokenizer.set_added_tokens(add_named_specials(tokenizer.added_tokens, special, tokenizer.piece_id))
    return tokenizer
