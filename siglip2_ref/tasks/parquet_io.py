"""Parquet embeddings (what `embed --engine ray` writes), read by `search` row group by row group.

A folder of Parquet files with columns path (string) and embedding (fixed-size list of float32, width D), plus
siglip2-ref.json: the model, preprocessing settings, dtype and row count, written after the last Parquet file.
Checked on opening: the JSON is there and ours, the embedding column has the recorded width, the row count and
the paths agree, no path repeats. Rows are checked (finite, unit length) as they are read (embedfile.Embeddings).
"""

import glob
import json
import os

import numpy as np

from ..errors import InputError
from .embedfile import FORMAT, PARQUET_META, EmbeddingsFileError, checked_file


def pyarrow_parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise EmbeddingsFileError('reading Parquet embeddings needs pyarrow: pip install "siglip2-ref[ray]"') from None
    return pq


def parquet_files(folder):
    return sorted(glob.glob(os.path.join(folder, "**", "*.parquet"), recursive=True)) if os.path.isdir(folder) else [folder]


def parquet_paths(folder):
    """Every row's path, in file order (only the path column is read)."""
    pq = pyarrow_parquet()
    return [p for f in parquet_files(folder) for p in pq.read_table(f, columns=["path"]).column("path").to_pylist()]


def check_parquet_output(output, overwrite):
    """A Parquet output folder may be (re)written: new, or one of ours with --overwrite."""
    if not os.path.exists(output):
        return
    ours = os.path.isdir(output) and all(n == PARQUET_META or n.endswith((".parquet", ".partial")) or n.startswith(".") for n in os.listdir(output))
    if not ours:
        raise InputError(f"--output {output} exists and is not a Parquet folder written by `embed --engine ray`; give a new folder")
    if not overwrite:
        raise InputError(f"--output {output} exists: pass --overwrite to replace it (the Ray engine rebuilds the whole folder)")


def read_meta(folder):
    meta_file = os.path.join(folder, PARQUET_META)
    if not os.path.isfile(meta_file):
        raise EmbeddingsFileError(f"{folder}: no {PARQUET_META}; the Ray run that wrote it did not finish (or it is not "
                                  "a folder written by `siglip2-ref embed --engine ray`): run it again")  # fmt: skip
    try:
        meta = json.load(open(meta_file, encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise EmbeddingsFileError(f"{meta_file}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise EmbeddingsFileError(f"{meta_file}: format {meta.get('format') if isinstance(meta, dict) else None!r}, expected {FORMAT!r}")
    return {k: str(v) for k, v in meta.items()}


def open_parquet(path):
    """An `Embeddings` over a Parquet folder (or one file beside its siglip2-ref.json)."""
    pq = pyarrow_parquet()
    folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
    meta, files = read_meta(folder), parquet_files(path)
    groups, paths = [], []  # (file, row group, first row, rows)
    for f in files:
        pf = pq.ParquetFile(f)
        check_schema(f, pf.schema_arrow, meta)
        for g in range(pf.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            groups.append((pf, g, len(paths), n))
            paths.extend(pf.read_row_group(g, columns=["path"]).column("path").to_pylist())
    dim = int(meta["dim"])
    return checked_file(path, (len(paths), dim), paths, meta, {}, group_reader(groups, dim))


def check_schema(file, schema, meta):
    import pyarrow as pa

    want = pa.list_(pa.float32(), int(meta["dim"]))
    if "path" not in schema.names or "embedding" not in schema.names:
        raise EmbeddingsFileError(f"{file}: columns {schema.names}; expected path and embedding")
    if schema.field("embedding").type != want:
        raise EmbeddingsFileError(f"{file}: the embedding column is {schema.field('embedding').type}, expected {want} "
                                  f"(width {meta['dim']} as {PARQUET_META} records)")  # fmt: skip


def group_reader(groups, dim):
    """(start, stop) -> [C, D] float32, reading only the row groups that overlap (the last one is kept)."""
    cache = {}

    def rows_of(i):  # -> [n, D]
        if i not in cache:
            cache.clear()
            pf, g, _, n = groups[i]
            column = pf.read_row_group(g, columns=["embedding"]).column("embedding").combine_chunks()
            cache[i] = column.values.to_numpy(zero_copy_only=False).reshape(n, dim)
        return cache[i]

    def read(start, stop):
        parts = [rows_of(i)[max(start - first, 0) : stop - first] for i, (_, _, first, n) in enumerate(groups)
                 if first < stop and first + n > start]  # fmt: skip
        return np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)

    return read
