"""BPE with tokenizer.json's merges: transformers' rules where they differ from SentencePiece's own encoder."""

import numpy as np


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
