"""Added tokens (`<eos>`, `<pad>`, user-defined ones) cut out of the raw text as the `tokenizers` library matches them."""

import re
import unicodedata


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
