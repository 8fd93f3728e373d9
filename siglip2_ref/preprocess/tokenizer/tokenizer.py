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

Shapes: docs/shapes.md (T texts, N positions: max_length after padding).
"""

import heapq
import re

import numpy as np

from .added_tokens import AddedToken, split_on_tokens, tokens_regex
from .bpe import MergeTable, vocab_differences
from .files import fail, read_model_proto
from .inputs import check_encodable
from .sentencepiece_model import PIECE_NORMAL, PIECE_USER_DEFINED, piece_types


NAMED_SPECIAL = ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token", "sep_token", "cls_token")
LARGE_INTEGER = int(1e20)  # transformers: model_max_length above this means "no limit"


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


class Tokenizer:
    """Gemma SentencePiece tokenizer with transformers' call signature and outputs.

    Mirrors: transformers GemmaTokenizer (FixRes) / Siglip2Tokenizer (NaFlex, lowercasing) loaded from Hub files;
    big_vision pp ops `tok(model="gemma", bos="no", eos="sticky")`.
    """

    def __init__(self, model_file, added_tokens=(), lowercase=False, add_bos_token=False, add_eos_token=True,
                 special_tokens=None, model_max_length=None, padding_side="right", merges=None, vocab=None):
        import sentencepiece as spm

        proto = read_model_proto(model_file)
        try:
            self.sp = spm.SentencePieceProcessor(model_proto=proto)
            self.piece_types = piece_types(proto)
            self.sp.id_to_piece(list(range(self.sp.get_piece_size())))  # every piece valid UTF-8 (ValueError if not)
        except (RuntimeError, OSError, ValueError, IndexError) as e:  # SentencePiece's own text is low-level
            fail(model_file, f"not a SentencePiece model ({len(proto)} bytes that SentencePiece cannot parse "
                             f"[{type(e).__name__}]: corrupt, truncated or another kind of file)")
        if len(self.piece_types) != self.sp.get_piece_size():
            fail(model_file, f"{len(self.piece_types)} pieces read, SentencePiece reports {self.sp.get_piece_size()}: corrupt")
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
        check_encodable(text, "text")
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
        for k, t in enumerate(texts):
            check_encodable(t, "text" if single else f"text[{k}]")
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
