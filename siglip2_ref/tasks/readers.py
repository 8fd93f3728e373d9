"""Open any embeddings container `embed` writes: a .safetensors index, a .npz file, or a Parquet folder (Ray).

    e = open_embeddings("photos.safetensors")    # e.paths, e.meta, e.chunks(65536), e.array()

The formats and their checks are in embedfile.py (safetensors, npz) and parquet_io.py (Parquet).
"""

import os

from .embedfile import EmbeddingsFileError, open_index, open_npz
from .parquet_io import open_parquet


def open_embeddings(path):
    """An `Embeddings` for a .safetensors or .npz file, or a Parquet folder/file; checked before any row is used."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise EmbeddingsFileError(f"{path}: no such embeddings file (make one with `siglip2-ref embed`)")
    if os.path.isdir(path) or path.endswith(".parquet"):
        return open_parquet(path)
    opener = open_npz if path.endswith(".npz") else open_index
    return opener(path)


def load_embeddings(path):
    """(embeddings [I, D] float32, paths, metadata dict): the whole file in memory, every row checked."""
    e = open_embeddings(path)
    return e.array(), e.paths, e.meta
