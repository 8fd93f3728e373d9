"""The SigLIP 2 text tokenizer: Gemma's SentencePiece model with transformers' rules around it.

What transformers 5.24 does with the Hub files, and what this module reproduces (docs/preprocessing.md "Text"):
  1. literal added/special tokens in the text ("<eos>", "<pad>", ...) are cut out first, on the raw text;
  2. NaFlex checkpoints lowercase every other piece of text character by character (Siglip2Tokenizer);
     FixRes checkpoints do not (GemmaTokenizer) - `lowercase=` overrides either way;
  3. each piece is BPE-encoded (spaces become "▁", no dummy prefix, byte fallback for unknown characters) -
     by SentencePiece, or, where the two differ (text holding a user-defined, control or byte piece, e.g. a run
     of spaces), by transformers' BPE rules with the merges of tokenizer.json;
  4. no BOS; EOS (id 1) is appended and survives truncation: `ids[:max_length - 1] + [1]`;
  5. right padding with <pad> (id 0); only `input_ids` are returned (no attention mask).

Shape alphabet: B texts; L sequence length (max_length after padding).
"""

import heapq
import json
import os
import re
import unicodedata

import numpy as np

PIECE_NORMAL, PIECE_UNKNOWN, PIECE_CONTROL, PIECE_USER_DEFINED, PIECE_BYTE = 1, 2, 3, 4, 6
LARGE_INTEGER = int(1e20)  # transformers: model_max_length above this means "no limit"
NAMED_SPECIAL = ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token", "sep_token", "cls_token")


# Capital letters whose lowercase Unicode added after version 14.0 (Python 3.11's tables; tokenizers 0.23 uses
# Unicode 17): Cyrillic TJE, Latin additions, Garay, Beria Erfe. Measured by comparing every code point.
LOWERCASE_AFTER_UNICODE_14 = {
    0x1C89: 0x1C8A, 0xA7CB: 0x0264, 0xA7CC: 0xA7CD, 0xA7CE: 0xA7CF, 0xA7D2: 0xA7D3, 0xA7D4: 0xA7D5, 0xA7DA: 0xA7DB,
    0xA7DC: 0x019B, **{c: c + 0x20 for c in range(0x10D50, 0x10D66)}, **{c: c + 0x1B for c in range(0x16EA0, 0x16EB9)},
}


def lowercase_per_char(text):
    """Lowercase each character on its own, as the `tokenizers` Lowercase normalizer does.

    Python's str.lower() would turn a word-final capital sigma into "ς"; per character it stays "σ". Case pairs
    newer than the running Python's Unicode tables come from LOWERCASE_AFTER_UNICODE_14.
    """
    return "".join(c.lower() for c in text.translate(LOWERCASE_AFTER_UNICODE_14))


def read_json(path, default=None):
    if not os.path.isfile(path):
        return default
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e


def token_content(value):
    """A special-token entry of the config files: a plain string or an AddedToken dict."""
    return value.get("content") if isinstance(value, dict) else value


def piece_types(model_proto):
    """SentencePiece piece types (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).

    Parses the few protobuf fields needed (ModelProto.pieces[i].type) so protobuf is not a dependency. Pieces
    laid out as SentencePiece writes them (piece, score, type if not normal) take an inlined fast path.
    """
    types, pos, data = [], 0, model_proto
    while pos < len(data):
        key, pos = read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire != 2:
            pos = skip_field(data, pos, wire)
            continue
        size, pos = read_varint(data, pos)
        end = pos + size
        if field == 1:
            types.append(fast_piece_type(data, pos, end) or piece_type(data[pos:end]))
        pos = end
    return types


def fast_piece_type(data, start, end):
    """Type of the SentencePiece message data[start:end] if it reads [piece][score][type < 128]?, else None."""
    if end - start < 7 or data[start] != 0x0A or data[start + 1] >= 0x80:
        return None
    piece_end = start + 2 + data[start + 1]
    if piece_end == end - 5 and data[piece_end] == 0x15:
        return PIECE_NORMAL
    if piece_end == end - 7 and data[piece_end] == 0x15 and data[end - 2] == 0x18 and data[end - 1] < 0x80:
        return data[end - 1] or None
    return None


def piece_type(message):
    """The `type` field (3) of one SentencePiece message; NORMAL when absent."""
    pos, kind = 0, PIECE_NORMAL
    while pos < len(message):
        key, pos = read_varint(message, pos)
        field, wire = key >> 3, key & 7
        if field == 3 and wire == 0:
            kind, pos = read_varint(message, pos)
        elif wire == 2:
            size, pos = read_varint(message, pos)
            pos += size
        else:
            pos = skip_field(message, pos, wire)
    return kind


def read_varint(data, pos):
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def skip_field(data, pos, wire):
    if wire == 0:
        return read_varint(data, pos)[1]
    if wire in (1, 5):
        return pos + (8 if wire == 1 else 4)
    raise ValueError(f"tokenizer.model: unexpected protobuf wire type {wire}")


class AddedToken:
    """A literal token matched in the raw text before BPE. Mirrors: tokenizers.AddedToken."""

    def __init__(self, content, id, special=True, lstrip=False, rstrip=False, single_word=False, normalized=False):
        self.content, self.id, self.special = content, int(id), bool(special)
        self.lstrip, self.rstrip, self.single_word, self.normalized = bool(lstrip), bool(rstrip), bool(single_word), bool(normalized)

    def matches_as_word(self, text, start, stop):
        """single_word: no word character right before or after the match."""
        return not (start > 0 and is_word_char(text[start - 1])) and not (stop < len(text) and is_word_char(text[stop]))


# Rust's regex whitespace (Unicode White_Space): what tokenizers strips for lstrip/rstrip (Python's \s adds \x1c-\x1f)
WHITE_SPACE = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(map(chr, range(0x2000, 0x200B))))


def is_word_char(ch):
    """Rust's regex word class (alphabetic, marks, decimal digits, connector punctuation, joiners).

    Exact for the characters the running Python's Unicode tables know; tokenizers' newer tables know more.
    """
    return unicodedata.category(ch) in WORD_CATEGORIES or ch in "\u200c\u200d" or ch in ALPHABETIC_SYMBOLS


# Symbols with Unicode's Other_Alphabetic property (circled, parenthesized and squared letters)
ALPHABETIC_SYMBOLS = frozenset(map(chr, [*range(0x24B6, 0x24EA), *range(0x1F130, 0x1F14A), *range(0x1F150, 0x1F16A),
                                         *range(0x1F170, 0x1F18A)]))


WORD_CATEGORIES = frozenset(("Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "Pc"))


def tokens_regex(tokens):
    """A matcher for `tokens`: (regex over their contents, longest first, so matches are leftmost-longest; content
    -> token). Plain alternatives let the regex engine skip positions whose character starts no token."""
    if not tokens:
        return None, {}
    ordered = sorted(tokens, key=lambda t: -len(t.content))
    return re.compile("|".join(re.escape(t.content) for t in ordered)), {t.content: t for t in reversed(ordered)}


def split_on_tokens(text, tokens, compiled=None):
    """Cut `text` at leftmost-longest matches of `tokens`: a list of str pieces and AddedToken matches.

    lstrip/rstrip widen a match over the whitespace beside it (rstrip even over a following token, which is then
    emitted as well); single_word drops a match inside a word. Mirrors: tokenizers
    AddedVocabulary::find_matches (Aho-Corasick, leftmost-longest).
    """
    regex, by_content = compiled or tokens_regex(tokens)
    if regex is None or not text:
        return [text] if text else []
    out, done = [], 0
    for m in regex.finditer(text):
        token, start, stop = by_content[m.group(0)], m.start(), m.end()
        if token.single_word and not token.matches_as_word(text, start, stop):
            continue
        if token.lstrip:
            while start > done and text[start - 1] in WHITE_SPACE:
                start -= 1
        if token.rstrip:
            while stop < len(text) and text[stop] in WHITE_SPACE:
                stop += 1
        if done < start:
            out.append(text[done:start])
        out.append(token)
        done = stop
    if done < len(text):
        out.append(text[done:])
    return out


class MergeTable:
    """BPE merges as (left id, right id) -> (rank, merged id), stored as sorted NumPy arrays (~12 bytes a merge).

    Mirrors: tokenizers models::bpe::BPE merges (a HashMap<Pair, (rank, new_id)>).
    """

    def __init__(self, merges, vocab, source="tokenizer.json"):
        n = len(merges)
        self.width = max(vocab.values()) + 1
        try:
            left = np.array([vocab[a] for a, _ in merges], dtype=np.int64)
            right = np.array([vocab[b] for _, b in merges], dtype=np.int64)
            merged = np.array([vocab[a + b] for a, b in merges], dtype=np.int64)
        except KeyError as e:
            raise ValueError(f"{source}: a merge uses {e.args[0]!r}, which is not in the vocabulary") from None
        except ValueError as e:
            raise ValueError(f"{source}: merges must be pairs of pieces ({e})") from None
        keys = left * self.width + right
        order = np.argsort(keys, kind="stable")  # a pair listed twice keeps its first (lowest) rank
        keys = keys[order]
        first = np.ones(n, dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        self.keys, self.ranks, self.merged = keys[first], order[first], merged[order][first]
        self.cache = {}  # pair -> result, for the pairs seen (runs of spaces repeat the same few)

    def get(self, a, b):
        """(rank, merged id) of the pair of ids, or None."""
        key = a * self.width + b
        if key in self.cache:
            return self.cache[key]
        k = int(np.searchsorted(self.keys, key))
        found = (int(self.ranks[k]), int(self.merged[k])) if k < len(self.keys) and self.keys[k] == key else None
        if len(self.cache) > 100_000:
            self.cache.clear()
        self.cache[key] = found
        return found


def vocab_differences(sp, vocab):
    """({piece: id}, {id: piece}) for the entries of `vocab` that SentencePiece's model does not have as such.

    Usually empty; transformers' converter renames a missing "\t" onto <0x09> for old Gemma models, for example.
    """
    size = sp.get_piece_size()
    changed = {p: i for p, i in vocab.items() if i >= size or sp.id_to_piece(i) != p}
    return changed, {i: p for p, i in changed.items()}


class Tokenizer:
    """Gemma SentencePiece tokenizer with transformers' call signature and outputs.

    Mirrors: transformers GemmaTokenizer (FixRes) / Siglip2Tokenizer (NaFlex, lowercasing) loaded from Hub files;
    big_vision pp ops `tok(model="gemma", bos="no", eos="sticky")`.
    """

    def __init__(self, model_file, added_tokens=(), lowercase=False, add_bos_token=False, add_eos_token=True,
                 special_tokens=None, model_max_length=None, padding_side="right", merges=None, vocab=None):
        import sentencepiece as spm

        with open(model_file, "rb") as f:
            proto = f.read()
        self.sp = spm.SentencePieceProcessor(model_proto=proto)
        self.piece_types = piece_types(proto)
        self.lowercase, self.add_bos_token, self.add_eos_token = bool(lowercase), bool(add_bos_token), bool(add_eos_token)
        self.special = dict(special_tokens or {})  # "eos_token" -> "<eos>", ...
        self.model_max_length = model_max_length if model_max_length and model_max_length <= LARGE_INTEGER else None
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        self.padding_side = padding_side
        self.set_added_tokens(added_tokens)
        # Pieces SentencePiece treats apart from BPE: it always matches user-defined ones, never produces control,
        # unknown or byte ones from text. transformers' BPE only reaches any of them through merges.
        self.not_bpe_pieces = [self.sp.id_to_piece(i) for i, k in enumerate(self.piece_types) if k != PIECE_NORMAL]
        self.user_defined = [self.sp.id_to_piece(i) for i, k in enumerate(self.piece_types) if k == PIECE_USER_DEFINED]
        # transformers' BPE uses tokenizer.json's vocabulary: SentencePiece's, up to the entries kept here
        self.vocab_changes, self.id_changes = vocab_differences(self.sp, vocab or {})
        self.merges = None if merges is None else MergeTable(merges, vocab or self.sp_vocab())

    def set_added_tokens(self, added_tokens):
        """The literal tokens cut out of the text, and the lookups derived from them."""
        self.added_tokens = list(added_tokens)
        self.raw_tokens = [t for t in self.added_tokens if not t.normalized]
        self.normalized_tokens = [t for t in self.added_tokens if t.normalized]
        self.raw_regex, self.normalized_regex = tokens_regex(self.raw_tokens), tokens_regex(self.normalized_tokens)
        self.added_by_id = {t.id: t.content for t in self.added_tokens}
        self.added_by_content = {t.content: t.id for t in self.added_tokens}

    def sp_vocab(self):
        return {self.sp.id_to_piece(i): i for i in range(self.sp.get_piece_size())}

    # --- vocabulary -------------------------------------------------------------------------------------------

    @property
    def vocab_size(self):
        return self.sp.get_piece_size()

    def __len__(self):
        return max([self.vocab_size] + [t.id + 1 for t in self.added_tokens])

    def piece_id(self, piece):
        """Id of a vocabulary piece, or None."""
        if piece in self.vocab_changes:
            return self.vocab_changes[piece]
        i = self.sp.piece_to_id(piece)
        return None if i in self.id_changes or piece != self.sp.id_to_piece(i) else i

    def piece(self, i):
        return self.id_changes[i] if i in self.id_changes else self.sp.id_to_piece(i)

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, str):
            if tokens in self.added_by_content:
                return self.added_by_content[tokens]
            i = self.piece_id(tokens)
            return self.sp.unk_id() if i is None else i
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def convert_ids_to_tokens(self, ids):
        if isinstance(ids, (int, np.integer)):
            return self.added_by_id.get(int(ids)) or self.piece(int(ids))
        return [self.convert_ids_to_tokens(i) for i in ids]

    def token_id(self, name):
        content = self.special.get(name)
        return None if content is None else self.convert_tokens_to_ids(content)

    eos_token_id = property(lambda self: self.token_id("eos_token"))
    bos_token_id = property(lambda self: self.token_id("bos_token"))
    pad_token_id = property(lambda self: self.token_id("pad_token"))
    unk_token_id = property(lambda self: self.token_id("unk_token"))

    @property
    def all_special_ids(self):
        ids = {t.id for t in self.added_tokens if t.special}
        ids |= {self.token_id(n) for n in NAMED_SPECIAL if self.special.get(n) is not None}
        return sorted(i for i in ids if i is not None)

    # --- encoding ---------------------------------------------------------------------------------------------

    def bpe_ids(self, text):
        """BPE ids of one text without special tokens (steps 1-3 of the module docstring)."""
        ids = []
        for piece in split_on_tokens(text, self.raw_tokens, self.raw_regex):
            if isinstance(piece, AddedToken):
                ids.append(piece.id)
                continue
            piece = lowercase_per_char(piece) if self.lowercase else piece
            for sub in split_on_tokens(piece, self.normalized_tokens, self.normalized_regex):
                ids.extend([sub.id] if isinstance(sub, AddedToken) else self.encode_piece(sub))
        return ids

    def encode_piece(self, text):
        """BPE of text containing no added token: SentencePiece, or transformers' rules where the two differ.

        SentencePiece matches its user-defined pieces (e.g. "▁▁" in "a  b", or "<mask>" after lowercasing) before
        BPE and never produces control or byte pieces from text; transformers' BPE treats every piece alike and
        reaches one only through merges (32 spaces: "▁" x 16 twice, not "▁" x 31 + "▁"). Text that holds such a
        piece once spaces are "▁" is merged the transformers way.
        """
        normalized = text.replace(" ", "\u2581")
        if any(p in normalized for p in self.not_bpe_pieces):
            return self.bpe_by_merges(normalized)
        return self.sp.encode(text)

    def initial_symbols(self, normalized):
        """One id per character in the vocabulary, else its UTF-8 bytes as <0xNN> (byte fallback) or <unk>."""
        ids = []
        for ch in normalized:
            i = self.piece_id(ch)
            if i is not None:
                ids.append(i)
                continue
            byte_ids = [self.piece_id(f"<0x{b:02X}>") for b in ch.encode("utf-8")]
            ids.extend(byte_ids if None not in byte_ids else [self.sp.unk_id()])
        return ids

    def bpe_by_merges(self, normalized):
        """BPE over the characters of `normalized` (spaces already "▁"): lowest merge rank first, leftmost on ties.

        Mirrors: tokenizers models::bpe::Word::merge_all (a priority queue over a linked list of symbols, so
        long runs cost O(n log n)). Merges from tokenizer.json, else generated from the vocabulary as
        transformers does (tokenization_utils_base.generate_merges).
        """
        ids = self.initial_symbols(normalized)
        n = len(ids)
        prev, nxt, alive = list(range(-1, n - 1)), list(range(1, n + 1)), [True] * n
        if n:
            nxt[-1] = -1
        queue = []
        for pos in range(n - 1):
            self.push_merge(queue, ids, pos, nxt[pos])
        heapq.heapify(queue)
        while queue:
            rank, pos, new_id = heapq.heappop(queue)
            right = nxt[pos]
            if not alive[pos] or right == -1:
                continue
            found = self.merge(ids[pos], ids[right])
            if found is None or found[1] != new_id:  # an expired entry
                continue
            ids[pos], alive[right], nxt[pos] = new_id, False, nxt[right]
            if nxt[pos] != -1:
                prev[nxt[pos]] = pos
                self.push_merge(queue, ids, pos, nxt[pos], heap=True)
            if prev[pos] != -1:
                self.push_merge(queue, ids, prev[pos], pos, heap=True)
        return [i for i, keep in zip(ids, alive) if keep]

    def push_merge(self, queue, ids, left, right, heap=False):
        found = self.merge(ids[left], ids[right])
        if found is not None:
            (heapq.heappush if heap else list.append)(queue, (found[0], left, found[1]))

    def merge(self, a, b):
        """(rank, merged id) for adjacent ids a, b, or None."""
        if self.merges is not None:
            return self.merges.get(a, b)
        left, right = self.piece(a), self.piece(b)
        merged = self.piece_id(left + right)
        # generate_merges' order: by the merged piece's id, then by the left part's length
        return None if merged is None else ((merged, len(left)), merged)

    def with_special_tokens(self, ids, max_length=None):
        """BOS/EOS added as configured; with `max_length`, the text is cut first so EOS is kept (sticky EOS)."""
        prefix = [self.bos_token_id] if self.add_bos_token else []
        suffix = [self.eos_token_id] if self.add_eos_token else []
        if max_length is not None:
            ids = ids[: max(max_length - len(prefix) - len(suffix), 0)]
        return prefix + ids + suffix

    def encode(self, text, add_special_tokens=True, max_length=None, truncation=None):
        """Ids of one text (no padding), as `transformers` `tokenizer.encode`."""
        return self(text, add_special_tokens=add_special_tokens, max_length=max_length, truncation=truncation)["input_ids"]

    def tokenize(self, text):
        """Token strings of one text, without special tokens added."""
        check_text(text)
        return self.convert_ids_to_tokens(self.bpe_ids(text))

    def __call__(self, text, padding=False, truncation=None, max_length=None, pad_to_multiple_of=None,
                 return_tensors=None, add_special_tokens=True, return_attention_mask=None, padding_side=None):
        """Tokenize one text or a batch; returns {"input_ids": ...} (and "attention_mask" only when asked).

        Keyword semantics follow transformers' PreTrainedTokenizerBase.__call__; outputs are Python lists,
        or int64 NumPy arrays [B, L] with return_tensors="np".
        """
        single = isinstance(text, str)
        texts = [text] if single else check_batch(text)
        padding, truncation, max_length = resolve_strategies(padding, truncation, max_length, self.model_max_length)
        if pad_to_multiple_of is not None and (not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of < 1):
            raise ValueError(f"pad_to_multiple_of must be a positive int, got {pad_to_multiple_of!r}")
        cut = max_length if truncation else None
        seqs = []
        for t in texts:
            ids = self.bpe_ids(t)
            seqs.append(self.with_special_tokens(ids, cut) if add_special_tokens else (ids[:cut] if cut else ids))
        masks = [[1] * len(s) for s in seqs]
        target = pad_length(seqs, padding, max_length, pad_to_multiple_of)
        if target is not None:
            side = padding_side or self.padding_side
            seqs = [pad(s, target, self.pad_token_id, side) for s in seqs]
            masks = [pad(m, target, 0, side) for m in masks]
        out = {"input_ids": seqs}
        if return_attention_mask:
            out["attention_mask"] = masks
        return to_output(out, single, return_tensors)

    # --- decoding ---------------------------------------------------------------------------------------------

    def decode(self, ids, skip_special_tokens=False):
        """Text of a sequence of ids. Mirrors: tokenizers decoders Replace("▁", " ") + ByteFallback + Fuse."""
        ids = [int(i) for i in np.asarray(ids).reshape(-1)]
        special = set(self.all_special_ids) if skip_special_tokens else ()
        return join_pieces([self.convert_ids_to_tokens(i) for i in ids if i not in special])

    def batch_decode(self, sequences, skip_special_tokens=False):
        return [self.decode(s, skip_special_tokens=skip_special_tokens) for s in sequences]


def join_pieces(pieces):
    """Concatenate pieces: "▁" -> " ", runs of <0xNN> bytes decoded as UTF-8 (each byte "�" if invalid)."""
    out, run = [], bytearray()
    byte_piece = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
    for p in pieces:
        m = byte_piece.match(p)
        if m:
            run.append(int(m.group(1), 16))
            continue
        out.append(decode_bytes(run))
        run = bytearray()
        out.append(p.replace("\u2581", " "))
    out.append(decode_bytes(run))
    return "".join(out)


def decode_bytes(run):
    """ByteFallback: a run of bytes is valid UTF-8 as a whole, or becomes one U+FFFD per byte."""
    try:
        return bytes(run).decode("utf-8")
    except UnicodeDecodeError:
        return "\ufffd" * len(run)


def check_text(text):
    if not isinstance(text, str):
        raise TypeError(f"text must be a str or a list of str, got {type(text).__name__}")


def check_batch(texts):
    """A list/tuple of str; clear errors for anything else."""
    if texts is None:
        raise TypeError("text must be a str or a list of str, got None")
    if not isinstance(texts, (list, tuple)):
        raise TypeError(f"text must be a str or a list of str, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError("text is an empty list; pass at least one string")
    for k, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"text[{k}] must be a str, got {type(t).__name__} ({t!r:.40})")
    return list(texts)


def resolve_strategies(padding, truncation, max_length, model_max_length):
    """(padding in {None, "longest", "max_length"}, truncate?, max_length), with transformers' rules.

    Mirrors: PreTrainedTokenizerBase._get_padding_truncation_strategies.
    """
    if max_length is not None:
        if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or max_length < 1:
            raise ValueError(f"max_length must be a positive int, got {max_length!r}")
        max_length = int(max_length)
    if max_length is not None and padding is False and truncation is None:
        truncation = True  # transformers: a bare max_length activates truncation
    modes = {False: None, "do_not_pad": None, True: "longest", "longest": "longest", "max_length": "max_length"}
    if padding not in modes or isinstance(padding, (int, float)) and not isinstance(padding, bool):
        raise ValueError(f"padding={padding!r} is not valid; use False, True, 'longest', 'max_length' or 'do_not_pad'")
    padding = modes[padding]
    cuts = {None: False, False: False, "do_not_truncate": False, True: True, "longest_first": True, "only_first": True}
    if truncation not in cuts or isinstance(truncation, (int, float)) and not isinstance(truncation, bool):
        raise ValueError(
            f"truncation={truncation!r} is not valid; use True, False, 'longest_first', 'only_first' or 'do_not_truncate'"
        )
    truncation = cuts[truncation]
    if max_length is None:  # no explicit limit: model_max_length, which the Hub files leave unbounded
        max_length = model_max_length
        if max_length is None:
            padding = None if padding == "max_length" else padding
            truncation = False
    return padding, truncation, max_length


def pad_length(seqs, padding, max_length, multiple):
    """Target length for padding, or None when no padding applies."""
    if padding is None:
        return None
    target = max(len(s) for s in seqs) if padding == "longest" else max_length
    if multiple:
        target = -(-target // multiple) * multiple
    return target


def pad(seq, length, value, side):
    fill = [value] * max(length - len(seq), 0)
    return seq + fill if side == "right" else fill + seq


def to_output(out, single, return_tensors):
    """Lists (one text: a flat list) or int64 arrays [B, L] for return_tensors="np"."""
    if return_tensors is None:
        return {k: v[0] if single else v for k, v in out.items()}
    if return_tensors != "np":
        raise ValueError(f"return_tensors={return_tensors!r} is not supported; use None or 'np' (no torch here)")
    lengths = {len(s) for s in out["input_ids"]}
    if len(lengths) > 1:
        raise ValueError(f"sequences have different lengths {sorted(lengths)}; pass padding=True or 'max_length'")
    return {k: np.asarray(v, dtype=np.int64).reshape(len(v), -1) for k, v in out.items()}


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
    """"naflex" / "fixres" / None from config.json's model_type or preprocessor_config.json."""
    config = read_json(os.path.join(folder, "config.json"), {}) or {}
    model_type = str(config.get("model_type") or "")
    if model_type:
        return "naflex" if model_type.startswith("siglip2") else "fixres"
    pre = read_json(os.path.join(folder, "preprocessor_config.json"), {}) or {}
    kind = str(pre.get("image_processor_type") or "")
    if kind:
        return "naflex" if kind.startswith("Siglip2") else "fixres"
    return None


def load_tokenizer(path, lowercase=None, variant=None):
    """Tokenizer from a checkpoint folder (`tokenizer.model` + `tokenizer_config.json` etc.).

    `lowercase=None` follows transformers >= 5.20 per variant: NaFlex ("siglip2") lowercases, FixRes does not
    (nor does a folder of unknown variant). The models were trained on lowercased text (docs/parity.md "Pitfalls" 3).
    """
    path = os.fspath(path)
    model_file = os.path.join(path, "tokenizer.model")
    if not os.path.isfile(model_file):
        raise FileNotFoundError(f"{model_file}: the SentencePiece model is missing")
    config = read_json(os.path.join(path, "tokenizer_config.json"), {}) or {}
    special_map = read_json(os.path.join(path, "special_tokens_map.json"), {}) or {}
    special = {k: token_content(config.get(k, special_map.get(k))) for k in NAMED_SPECIAL}
    special["mask_token"] = special["mask_token"] or "<mask>"  # GemmaTokenizer's class default
    defaults = {"bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>"}
    special = {k: v if v is not None else defaults.get(k) for k, v in special.items()}
    variant = variant or read_variant(path)
    if lowercase is None:
        lowercase = variant == "naflex"
    tok_json = read_json(os.path.join(path, "tokenizer.json"), {}) or {}
    tokenizer = Tokenizer(
        model_file, read_added_tokens(config, tok_json), lowercase=lowercase,
        add_bos_token=config.get("add_bos_token", False), add_eos_token=config.get("add_eos_token", True),
        special_tokens=special, model_max_length=config.get("model_max_length"),
        padding_side=config.get("padding_side", "right"), merges=read_merges(tok_json), vocab=read_vocab(tok_json),
    )
    del tok_json  # the parsed file is the bulk of the loading memory
    tokenizer.set_added_tokens(add_named_specials(tokenizer.added_tokens, special, tokenizer.piece_id))
    return tokenizer
