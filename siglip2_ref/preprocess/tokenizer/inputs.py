"""Text a Python user can pass that is not text: the checks the tokenizer runs on each str before encoding."""

import re

from ...errors import TextEncodingError

SURROGATE = re.compile("[\ud800-\udfff]")


def check_encodable(text, what):
    """Text that UTF-8 can hold: a lone surrogate ("\\ud800") is refused, as `tokenizers` refuses it.

    `tokenizers` 0.23 (what transformers' fast tokenizers run) raises TypeError("TextInputSequence must be str")
    on such a str; SentencePiece raises a pybind11 cast error. Both mean the same: the str is not text.
    """
    if not text.isascii():
        m = SURROGATE.search(text)
        if m:
            raise TextEncodingError(f"{what}: character {m.start()} is the lone surrogate {m.group()!r} (U+{ord(m.group()):04X}), "
                             "which is not text and cannot be encoded as UTF-8; decode bytes with errors='replace' "
                             "or remove it")
