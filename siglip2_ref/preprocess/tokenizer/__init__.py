"""The SigLIP 2 text tokenizer, in its natural parts.

    sentencepiece_model.py  the piece types read from tokenizer.model (protobuf)
    added_tokens.py         literal special and added tokens cut out of the raw text
    bpe.py                  BPE with tokenizer.json's merges, where it differs from SentencePiece
    tokenizer.py            the tokenizer: transformers' rules around SentencePiece (lowercase, EOS, padding)
    loading.py              the tokenizer from a checkpoint folder's files
    files.py                checks on those files (TokenizerFileError)
    inputs.py               checks on the text itself (lone surrogates)
"""

from .loading import load_tokenizer, read_variant
from .tokenizer import Tokenizer, lowercase_per_char

__all__ = ["load_tokenizer", "read_variant", "Tokenizer", "lowercase_per_char"]
