"""A Gemma-format tokenizer stand-in: 256,000 pieces in the layout of Gemma's tokenizer, written as Hub files.

Official SigLIP 2 checkpoints ship Gemma's 256k SentencePiece tokenizer (docs/preprocessing.md "Text"), which cannot be downloaded here. The toy model
of golden/toy_tokenizer.py has the recipe but a few hundred pieces; this stand-in has the real size and structure,
so that code paths only a real checkpoint reaches (a 256k vocabulary, hundreds of user-defined pieces, whitespace
runs as single pieces, HTML tags, `<unusedN>`, byte fallback next to a large vocabulary) are tested:

  ids 0..3          <pad> <eos> <bos> (CONTROL), <unk> (UNKNOWN)
  ids 4..216        USER_DEFINED, in Gemma's order: <mask> <2mass> [@BOS@] <unused0>..<unused98> <start_of_turn>
                    <end_of_turn>, "\\n" x 1..31, "▁" x 2..31, 48 HTML tags (<table> .. </code>)
  ids 217..472      the 256 byte pieces <0x00>..<0xFF> (BYTE)
  ids 473..255967   NORMAL pieces, scores 0, -1, -2, ...: merged pieces first (every one is the concatenation of two
                    earlier-or-single pieces, so BPE reaches it), then the single characters, as SentencePiece's BPE
                    trainer orders them
  ids 255968..255999  USER_DEFINED "\\t" x 1..31, [multimodal]

Normaliser and trainer settings are Gemma's: identity normalisation, no dummy prefix, no whitespace removal, byte
fallback, split digits (no piece holds a digit next to anything else). The merged pieces are not Gemma's: they
are the prefixes of words drawn from a fixed English word list and a seeded generator of Latin, accented Latin,
Greek, Cyrillic, CJK and Hangul words, plus punctuation and code fragments.

The files are those of a Hub checkpoint: `tokenizer.model` (the ModelProto, serialized here without protobuf),
`tokenizer.json` (what transformers' converter derives from the model: vocabulary and merges), and
`tokenizer_config.json` / `special_tokens_map.json` as transformers 4.x `save_pretrained` writes them for the
SigLIP 2 recipe (golden/toy_tokenizer.py), with an `added_tokens_decoder` entry for every control and
user-defined piece (convert_slow_tokenizer: control and user-defined pieces become AddedTokens with
normalized=False; special for control pieces and <start_of_turn>/<end_of_turn>).

Deterministic (no dependency on the Python or Unicode version) and fast (a few seconds); needs only the standard
library. Usage:

    python golden/gemma_standin.py DIR       # write the stand-in into DIR
    python golden/gemma_standin.py --record  # also record transformers' ids (needs transformers 5.24.0)

Mirrors: the layout of google/gemma-7b's tokenizer.model, as used by convert_siglip2_to_hf.get_siglip2_tokenizer.
"""

import argparse
import hashlib
import json
import os
import random
import struct
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from golden.toy_tokenizer import hub_special_tokens_map, hub_tokenizer_config, text_with_token_count  # noqa: E402

VOCAB_SIZE = 256_000
SEED = 20250227
GOLDEN_FILE = os.path.join(HERE, "preprocess", "gemma_standin_text.json")
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, BYTE = 1, 2, 3, 4, 6  # SentencePiece piece types
SPACE = "\u2581"
MAX_PIECE_LENGTH = 16  # Gemma's max_sentencepiece_length
TURN_TOKENS = ("<start_of_turn>", "<end_of_turn>")  # marked special by transformers' GemmaConverter
HTML_TAGS = [
    "<table>", "<caption>", "<thead>", "<tbody>", "<tfoot>", "<tr>", "<th>", "<td>",
    "</table>", "</caption>", "</thead>", "</tbody>", "</tfoot>", "</tr>", "</th>", "</td>",
    "<h1>", "<h2>", "<h3>", "<h4>", "<h5>", "<h6>", "<blockquote>",
    "</h1>", "</h2>", "</h3>", "</h4>", "</h5>", "</h6>", "</blockquote>",
    "<strong>", "<em>", "<b>", "<i>", "<u>", "<s>", "<sub>", "<sup>", "<code>",
    "</strong>", "</em>", "</b>", "</i>", "</u>", "</s>", "</sub>", "</sup>", "</code>",
]
ENGLISH = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have an they "
    "you were her she there been one all we their has would when if so no will more out up into do any about what "
    "them some could him time these two may then first other new like very after also made over did many such "
    "where most only through back years way see well much before right because just good those people how too "
    "photo picture image cat cats dog dogs car cars red blue green black white small large big old young man woman "
    "men women child children house tree trees street city water sky cloud sun night day food table chair bird "
    "birds flower flowers mountain river beach road boat plane train bus bike horse cow sheep grass snow rain "
    "person group sitting standing walking running playing holding looking near next front top bottom left side "
    "background close view shot image of logo text sign drawing painting sketch diagram map chart screenshot art "
    "mat sat on cow ing tion ed ly er est ment ness able ful less ous ive al ic ize ise ity ship hood dom "
    "Zürich École São Paulo naïve café Москва кошка собака город οδός Σίσυφος θάλασσα ΟΔΟΣ "
    "The This A An In On At For With Photo Picture Image Cat Dog THE CAT DOG PHOTO"
).split()
PUNCTUATION_PIECES = [
    "..", "...", "....", "--", "---", "----", "==", "===", "**", "***", "__", "##", "###", "//", "/*", "*/", "->",
    "=>", "<=", ">=", "!=", "::", ":=", "()", "();", "{}", "[]", "),", ").", ");", "],", "},", "\"\"", "''", "',", "\",",
    "\".", "'.", "?\"", "!\"", ".\"", ",\"", "'s", "n't", "'re", "'ll", "'ve", "'m", "'d", "://", "www", ".com",
    ".org", "<!", "<!--", "-->", "</", "/>", "<div", "<span", "<p", "<a", "<br", "<ta", "<tab", "<table", "<tr",
    "<h", "<e", "<em", "<eo", "<eos", "<st", "<str", "<strong", "<co", "<cod", "<code", "</d", "</di", "</div", "</t", "</ta",
    "</tab", "</table", "</p", "</a", "&amp", "&amp;", "&lt", "&lt;", "&gt", "&gt;", "[@", "@]", "<u", "<un", "<unu",
    "<unus", "<unuse", "<unused", "<s", "<st", "<sta", "<star", "<start", "<start_", "<start_o",
    "<start_of", "<start_of_", "<start_of_t", "<start_of_tu", "<start_of_tur", "<start_of_turn",
]


def user_defined_head():
    """Pieces 4..216: Gemma's leading user-defined pieces."""
    pieces = ["<mask>", "<2mass>", "[@BOS@]"] + [f"<unused{k}>" for k in range(99)] + list(TURN_TOKENS)
    pieces += ["\n" * k for k in range(1, 32)] + [SPACE * k for k in range(2, 32)] + HTML_TAGS
    return pieces


def user_defined_tail():
    """Pieces 255968..255999: tab runs and [multimodal]."""
    return ["\t" * k for k in range(1, 32)] + ["[multimodal]"]


def char_range(first, last):
    return [chr(c) for c in range(first, last + 1)]


def single_chars():
    """The characters that are pieces: several scripts, a few emoji; the rest of Unicode falls back to bytes.

    Explicit code point ranges (not unicodedata) so the vocabulary does not depend on the Python version. Rare CJK
    (above U+6387), most emoji, control characters, "\\r" and supplementary planes are left to byte fallback.
    """
    chars = [SPACE] + char_range(0x21, 0x7E) + char_range(0xA0, 0x24F)  # ASCII, Latin-1, Latin Extended A/B
    chars += char_range(0x370, 0x3FF) + char_range(0x400, 0x4FF)  # Greek, Cyrillic
    chars += char_range(0x5D0, 0x5EA) + char_range(0x621, 0x64A) + char_range(0x900, 0x97F) + char_range(0xE01, 0xE5B)
    chars += char_range(0x1E00, 0x1EFF)  # Latin Extended Additional (ẞ, Vietnamese)
    chars += char_range(0x2010, 0x2027) + char_range(0x2030, 0x205E) + char_range(0x20A0, 0x20BF)
    chars += char_range(0x2190, 0x21FF) + char_range(0x2200, 0x22FF) + char_range(0x2500, 0x257F)
    chars += char_range(0x3000, 0x303F) + char_range(0x3041, 0x3096) + char_range(0x30A1, 0x30FA)  # CJK punct, kana
    chars += char_range(0x4E00, 0x6387)  # 5,512 common CJK ideographs
    chars += char_range(0xAC00, 0xB3FF)  # 2,048 Hangul syllables
    chars += char_range(0xFF01, 0xFF5E) + char_range(0x1F600, 0x1F64F)  # fullwidth forms, emoticons
    return chars


def syllable_words(rng, onsets, vowels, codas, low, high):
    """One pseudo-word of low..high syllables."""
    return "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(rng.randint(low, high)))


def word_stream(rng):
    """Words in a fixed order: the English list, then an endless seeded mix of scripts."""
    yield from ENGLISH
    latin = ("b c d f g h j k l m n p r s t v w z br ch cr dr fl gr pl pr sh st th tr str".split(), list("aeiou") +
             ["ai", "ea", "ou", "ie"], [""] * 6 + "n r s t l m nd st ng ck".split())
    accented = (list("bdklmnprstvz") + ["ch", "tr"], list("aeiouéèêüöäåøñçàí"), [""] * 4 + list("nrslz"))
    greek = (list("βγδθκλμνπρστφχ"), list("αεηιουωάέίόύ"), [""] * 4 + list("νςσ"))
    cyrillic = (list("бвгджзклмнпрстфхцчш"), list("аеиоуыяюэё"), [""] * 4 + list("йнрстл"))
    cjk = [chr(c) for c in range(0x4E00, 0x6388)]
    hangul = [chr(c) for c in range(0xAC00, 0xB400)]
    while True:
        kind = rng.random()
        if kind < 0.55:
            w = syllable_words(rng, *latin, 1, 4)
            r = rng.random()
            yield w.capitalize() if r < 0.15 else w.upper() if r < 0.18 else w
        elif kind < 0.68:
            yield syllable_words(rng, *accented, 1, 3)
        elif kind < 0.76:
            yield syllable_words(rng, *greek, 1, 3)
        elif kind < 0.86:
            w = syllable_words(rng, *cyrillic, 1, 3)
            yield w.capitalize() if rng.random() < 0.15 else w
        elif kind < 0.95:
            yield "".join(rng.choice(cjk) for _ in range(rng.randint(2, 4)))
        else:
            yield "".join(rng.choice(hangul) for _ in range(rng.randint(2, 3)))


def merged_pieces(count, reserved):
    """`count` multi-character pieces, each after the piece it extends (BPE-consistent: prefix + one character).

    A word w contributes the prefixes of "▁w" and of w (the in-word continuation), shortest first.
    """
    rng = random.Random(SEED)
    out, seen = [], set(reserved)

    def add_prefixes(form):
        for k in range(2, min(len(form), MAX_PIECE_LENGTH) + 1):
            piece = form[:k]
            if piece not in seen:
                seen.add(piece)
                out.append(piece)

    for piece in PUNCTUATION_PIECES:
        add_prefixes(piece)
    for word in word_stream(rng):
        if len(out) >= count:
            break
        add_prefixes(SPACE + word)
        if len(word) > 1:
            add_prefixes(word)
    return out[:count]


def standin_pieces():
    """[(piece, score, type)] for ids 0..255999."""
    head = [("<pad>", CONTROL), ("<eos>", CONTROL), ("<bos>", CONTROL), ("<unk>", UNKNOWN)]
    head += [(p, USER_DEFINED) for p in user_defined_head()]
    head += [(f"<0x{b:02X}>", BYTE) for b in range(256)]
    tail = [(p, USER_DEFINED) for p in user_defined_tail()]
    chars = single_chars()
    reserved = {p for p, _ in head + tail} | set(chars)
    merged = merged_pieces(VOCAB_SIZE - len(head) - len(tail) - len(chars), reserved)
    normal = merged + chars
    pieces = [(p, 0.0, t) for p, t in head] + [(p, -float(k), NORMAL) for k, p in enumerate(normal)]
    pieces += [(p, 0.0, t) for p, t in tail]
    if len(pieces) != VOCAB_SIZE or len({p for p, _, _ in pieces}) != VOCAB_SIZE:
        raise RuntimeError(f"stand-in has {len(pieces)} pieces, {len({p for p, _, _ in pieces})} distinct")
    return pieces


# --- tokenizer.model: the SentencePiece ModelProto, protobuf wire format --------------------------------------


def varint(value):
    if value < 0x80:
        return SMALL_VARINTS[value]
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


SMALL_VARINTS = [bytes([v]) for v in range(0x80)]


def field_bytes(number, payload):
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(data)) + data


def field_int(number, value):
    return varint(number << 3) + varint(value)


def piece_message(piece, score, kind):
    """ModelProto.SentencePiece: piece (1), score (2, float), type (3; omitted for NORMAL, as the trainer does)."""
    body = field_bytes(1, piece) + varint(2 << 3 | 5) + struct.pack("<f", score)
    return body + (field_int(3, kind) if kind != NORMAL else b"")


def trainer_spec():
    """TrainerSpec with Gemma's settings, fields in number order (sentencepiece_model.proto), as protobuf writes."""
    ints = [(3, 2), (4, VOCAB_SIZE), (20, MAX_PIECE_LENGTH)]  # model_type BPE, vocab_size, max piece length
    ints += [(21, 1), (22, 1), (23, 1)]  # split_by_unicode_script, split_by_whitespace, split_by_number
    ints += [(24, 0), (25, 1), (26, 1)]  # treat_whitespace_as_suffix, split_digits, allow_whitespace_only_pieces
    ints += [(32, 1), (35, 1)]  # vocabulary_output_piece_score, byte_fallback
    ints += [(40, 3), (41, 2), (42, 1), (43, 0)]  # unk, bos, eos, pad ids
    spec = b"".join(field_int(number, value) for number, value in ints)
    for number, value in ((45, "<unk>"), (46, "<bos>"), (47, "<eos>"), (48, "<pad>")):
        spec += field_bytes(number, value)
    return spec


def normalizer_spec():
    """NormalizerSpec: identity, no dummy prefix, no whitespace removal, spaces escaped to "▁"."""
    return field_bytes(1, "identity") + field_bytes(2, b"") + field_int(3, 0) + field_int(4, 0) + field_int(5, 1)


def model_proto(pieces):
    parts = [field_bytes(1, piece_message(p, s, t)) for p, s, t in pieces]
    return b"".join(parts) + field_bytes(2, trainer_spec()) + field_bytes(3, normalizer_spec())


# --- tokenizer.json / tokenizer_config.json -------------------------------------------------------------------


def generate_merges(pieces):
    """BPE merges from the vocabulary: every split of a piece into two pieces, ranked by the piece's id, then by
    the left part's length. Mirrors: transformers tokenization_utils_base.generate_merges (no scores)."""
    known = {p for p, _, _ in pieces}.__contains__
    merges = []
    for piece, _, _ in pieces:
        for k in range(1, len(piece)):
            right = piece[k:]
            if known(right) and known(piece[:k]):
                merges.append([piece[:k], right])
    return merges


def added_tokens(pieces):
    """The AddedTokens transformers makes of control and user-defined pieces (plus <unk>), in id order."""
    out = []
    for i, (piece, _, kind) in enumerate(pieces):
        if kind in (CONTROL, UNKNOWN, USER_DEFINED):
            special = kind != USER_DEFINED or piece in TURN_TOKENS
            out.append({"id": i, "content": piece, "single_word": False, "lstrip": False, "rstrip": False,
                        "normalized": False, "special": special})
    return out


def tokenizer_json(pieces):
    """tokenizer.json of the Gemma recipe: Replace(" ", "▁") normaliser, BPE with byte fallback, "$A <eos>"."""
    eos = {"SpecialToken": {"id": "<eos>", "type_id": 0}}
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added_tokens(pieces),
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": SPACE},
        "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}, eos],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, eos, {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "<eos>", "type_id": 1}}],
            "special_tokens": {"<eos>": {"id": "<eos>", "ids": [1], "tokens": ["<eos>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPACE}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
            "vocab": {p: i for i, (p, _, _) in enumerate(pieces)}, "merges": generate_merges(pieces),
        },
    }


def tokenizer_config(pieces):
    """tokenizer_config.json of the SigLIP 2 recipe, with an added_tokens_decoder entry per added token."""
    config = hub_tokenizer_config()
    config["added_tokens_decoder"] = {
        str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}
        for t in added_tokens(pieces)
    }
    return config


def write_json(path, obj, indent=None):
    text = json.dumps(obj, ensure_ascii=False, indent=indent, sort_keys=indent is not None)  # C encoder: one shot
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def write_standin(out_dir):
    """Write the four Hub tokenizer files into `out_dir`; returns `out_dir`."""
    os.makedirs(out_dir, exist_ok=True)
    pieces = standin_pieces()
    with open(os.path.join(out_dir, "tokenizer.model"), "wb") as f:
        f.write(model_proto(pieces))
    write_json(os.path.join(out_dir, "tokenizer.json"), tokenizer_json(pieces))
    write_json(os.path.join(out_dir, "tokenizer_config.json"), tokenizer_config(pieces), indent=2)
    write_json(os.path.join(out_dir, "special_tokens_map.json"), hub_special_tokens_map(), indent=2)
    return out_dir


def file_digests(folder):
    """sha256 of each Hub file, so a rebuilt stand-in can be checked against the one the goldens were made on."""
    names = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
    out = {}
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


# --- goldens: transformers' ids on the stand-in ----------------------------------------------------------------


def golden_texts(hf_tok):
    """User-defined pieces (literal, in words, uppercase), whitespace runs, byte fallback, digits, case, specials."""
    texts = [
        "", " ", "a photo of a cat", "This is a photo of a dog.", "A Photo Of Two CATS",
        "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n", "<START_OF_TURN>user", "<start_of_turn",
        "x<table>y", "<TABLE><TR><TD>1</TD></TR></TABLE>", "<table><tr><td>1</td></tr></table>",
        "<h1>Title</h1>\n\n\n<code>x = 1</code>", "<b>bold</b> <i>it</i> <s>no</s> <u>u</u>", "<tabl>", "<table",
        "<unused0><unused98><unused99>", "<UNUSED7>", "[@BOS@] <2mass> [multimodal] [MULTIMODAL]", "<mask> <MASK>",
        "a  b", "a   b", "two  spaces  and   three", " " * 31, " " * 32, " " * 33, "x" + " " * 40 + "y", " " * 70,
        "   leading", "trailing    ", "\n", "\n\n", "\n" * 31 + "x", "\n" * 35, "a\n\nb \n c", "\t", "\tx\t\ty",
        "\t" * 33, " \t \t ", "\r\n", "\u2581", "\u2581\u2581", "x\u2581\u2581y", "\u2581\u2581\u2581 four",
        "<0x41>", "😀 🦜 🏳️‍🌈", "龘 𠀀 丂 东京", "한국어 서울 고양이", "e\u0301 combining", "\u200bzero width",
        "12345 3.14159 2025-02-27 #42 @user 1,000,000", "Zürich École São Paulo naïve café",
        "ΟΔΟΣ οδός ΣΊΣΥΦΟΣ Σίσυφος", "İstanbul DİYARBAKIR ẞ STRASSE ǅ", "МОСКВА Москва кошка",
        "\u1c89 \ua7cb\ua7cc \U00010d50\U00010d51 \U00016ea0 (case pairs newer than Unicode 14)",
        "<pad>", "<eos>", "<bos>", "<unk>", "a <eos> in the middle", "<pad><pad>x<mask>", "<EOS>", "<eos",
        "the cat sat on the mat " * 40,
    ]
    for target in (62, 63, 64, 65):
        texts.append(text_with_token_count(hf_tok, target, "a photo of <b>two</b> cats  near 12 trees in Zürich \n"))
    return texts


# Token flags Gemma's files leave False, set here to check how added tokens are cut out with them
FLAG_CHANGES = {"4": {"lstrip": True}, "106": {"rstrip": True}, "107": {"single_word": True},
                "169": {"lstrip": True, "rstrip": True}}  # <mask>, <start_of_turn>, <end_of_turn>, <table>
FLAG_TEXTS = [
    "a <mask> b", "a\u3000\u3000<mask>", "x\n<mask>", "a\x1c<mask>", "<start_of_turn>  user", "<start_of_turn> \n  x",
    "<start_of_turn>\t\tb", "x<end_of_turn>", "x <end_of_turn> y", "_<end_of_turn>", "é<end_of_turn>", "Ⓐ<end_of_turn>",
    "²<end_of_turn>", "<end_of_turn>\u0301", "<end_of_turn><end_of_turn>", "a <table> b", "a\t<table>\n\nb",
    " <table>  <table> ", "<mask><table><start_of_turn> <end_of_turn> <mask>",
]


def flagged_config(config):
    """tokenizer_config.json with FLAG_CHANGES applied."""
    config = json.loads(json.dumps(config))
    for token_id, flags in FLAG_CHANGES.items():
        config["added_tokens_decoder"][token_id].update(flags)
    return config


def write_flagged(standin_dir, out_dir):
    """The stand-in with FLAG_CHANGES, without tokenizer.json (merges come from the vocabulary then)."""
    os.makedirs(out_dir, exist_ok=True)
    for name in ("tokenizer.model", "special_tokens_map.json"):
        with open(os.path.join(standin_dir, name), "rb") as src, open(os.path.join(out_dir, name), "wb") as dst:
            dst.write(src.read())
    with open(os.path.join(standin_dir, "tokenizer_config.json"), encoding="utf-8") as f:
        write_json(os.path.join(out_dir, "tokenizer_config.json"), flagged_config(json.load(f)), indent=2)
    return out_dir


def record(out_file):
    """Build the stand-in in a temp folder and record transformers' ids, tokens and decodings for the text set."""
    import time
    import warnings

    import transformers
    from transformers import GemmaTokenizer, Siglip2Tokenizer

    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_standin(tmp)
        built = time.perf_counter() - start
        toks = {"fixres": GemmaTokenizer.from_pretrained(tmp), "naflex": Siglip2Tokenizer.from_pretrained(tmp)}
        texts = golden_texts(toks["fixres"])
        options = {
            "max_length64": dict(padding="max_length", max_length=64, truncation=True),
            "no_padding": dict(),
        }
        ids = {}
        for variant, tok in toks.items():
            for name, kwargs in options.items():
                ids[f"{variant}|{name}"] = [tok(t, **kwargs)["input_ids"] for t in texts]
            ids[f"{variant}|decode"] = [tok.decode(tok(t)["input_ids"], skip_special_tokens=True) for t in texts]
            ids[f"{variant}|decode_all"] = [tok.decode(tok(t)["input_ids"]) for t in texts]
        flagged = {v: cls.from_pretrained(write_flagged(tmp, os.path.join(tmp, "flagged")))
                   for v, cls in (("fixres", GemmaTokenizer), ("naflex", Siglip2Tokenizer))}
        golden = {
            "about": "transformers' ids on the Gemma-format stand-in written by golden/gemma_standin.py",
            "command": "python golden/gemma_standin.py --record",
            "versions": {"transformers": transformers.__version__, "tokenizers": __import__("tokenizers").__version__,
                         "python": sys.version.split()[0]},
            "classes": {k: type(v).__name__ for k, v in toks.items()},
            "vocab_size": VOCAB_SIZE, "file_digests": file_digests(tmp),
            "texts": texts, "options": options, "ids": ids,
            "flags": {"changes": FLAG_CHANGES, "texts": FLAG_TEXTS,
                      "ids": {v: [t(x)["input_ids"] for x in FLAG_TEXTS] for v, t in flagged.items()}},
        }
    with open(out_file, "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"stand-in built in {built:.1f} s; {len(texts)} texts recorded to {out_file}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", help="folder to write the stand-in into")
    parser.add_argument("--record", action="store_true", help=f"record transformers' ids into {GOLDEN_FILE}")
    args = parser.parse_args()
    if args.out:
        write_standin(args.out)
        print(f"wrote {args.out}")
    if args.record:
        record(GOLDEN_FILE)
    if not args.out and not args.record:
        parser.error("give a folder, --record, or both")


if __name__ == "__main__":
    main()
