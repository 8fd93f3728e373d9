"""Embedding files: what `embed` writes and `search` reads, checked on the way in.

Three containers hold the same rows (one L2-normalised embedding per image, with its path):

    photos.safetensors   the index `embed` writes: tensors embeddings [I, D] (float32 or float16), sizes [I],
                         mtimes [I] (ns), optional sha256 [I, 32], paths (UTF-8 JSON list as bytes); the model,
                         preprocessing settings and dtype in the header metadata. Memory-mapped, read in chunks.
    photos.npz           the same arrays in a NumPy archive (read whole; fine for small collections).
    photos.parquet/      what `embed --engine ray` writes: Parquet files with columns path and embedding
                         (fixed-size list of float32) plus siglip2-ref.json holding the same metadata, written
                         last, so a folder without it is an unfinished run. Read row group by row group.

Every reader refuses, naming the file: an unknown format, embeddings of a dtype other than float32/float16, rows
that disagree with the recorded width or count, repeated paths, and (chunk by chunk, as rows are read) rows that
are not finite or not unit length. Shapes: docs/shapes.md (I rows (images), D embedding width; local: c rows in one chunk).
"""

import json
import mmap
import os

import numpy as np

from ..checkpoint.weights import CheckpointError, open_safetensors, read_header
from ..errors import EmbeddingsFileError, InputError

FORMAT = "siglip2-ref-embeddings/2"
STORAGE = {"float32": np.float32, "float16": np.float16}
SAFETENSORS_DTYPE = {"float32": "F32", "float16": "F16", "int64": "I64", "uint8": "U8", "float64": "F64", "int32": "I32"}
RECORD_KEYS = ("sizes", "mtimes", "sha256")  # per-row file records (sha256 only when hashing was asked for)
PARQUET_META = "siglip2-ref.json"
CHUNK_ROWS = 16384  # rows per chunk: 48 MiB of float32 at D=768 (RSS stays near a few chunks)
NORM_TOLERANCE = {"float32": 1e-3, "float16": 1e-2}  # float16 rounds each component to ~5e-4 relative


# ---------------------------------------------------------------- writing


class Rows:
    """An [I, D] array written block by block (kept rows read from the old index, then new ones): never whole."""

    def __init__(self, shape, dtype, blocks):
        self.shape, self.dtype, self.blocks = tuple(shape), np.dtype(dtype), blocks  # blocks: () -> iterator of [c, D]
        self.nbytes = int(np.prod(self.shape)) * self.dtype.itemsize


def safetensors_header(arrays, metadata):  # {name: array or Rows} -> header bytes (length + JSON, 8-byte aligned)
    """The safetensors header for `arrays` laid out in the given order."""
    header, start = {"__metadata__": metadata}, 0
    for name, a in arrays.items():
        header[name] = {"dtype": SAFETENSORS_DTYPE[a.dtype.name], "shape": list(a.shape),
                        "data_offsets": [start, start + a.nbytes]}  # fmt: skip
        start += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the JSON with spaces so data starts 8-byte aligned
    return len(text).to_bytes(8, "little") + text


def write_safetensors(path, arrays, metadata):
    """Write `arrays` (Rows block by block), so a large index is copied in bounded memory; flushed to disk."""
    with open(path, "wb") as f:
        f.write(safetensors_header(arrays, metadata))
        for name, a in arrays.items():
            written = 0
            for block in a.blocks() if isinstance(a, Rows) else [a]:
                block = np.ascontiguousarray(block, dtype=a.dtype)
                f.write(block.tobytes())
                written += block.nbytes
            if written != a.nbytes:
                raise RuntimeError(f"{path}: wrote {written} bytes of {name!r}, expected {a.nbytes}")  # a bug, not bad input
        f.flush()
        os.fsync(f.fileno())


def save_embeddings(path, embeddings, paths, metadata=None, records=None, storage="float32"):
    """Write embeddings [I, D] (an array or `Rows`) with their paths and file records to `.safetensors` or `.npz`.

    Atomic: the file is written next to `path` and renamed into place, so an interrupted run leaves the previous
    file whole. `records`: {"sizes": [I] int64, "mtimes": [I] int64 (ns), "sha256": [I, 32] uint8 (optional)}.
    """
    path, paths = os.fspath(path), list(paths)
    if not isinstance(embeddings, Rows):
        embeddings = np.asarray(embeddings, dtype=STORAGE[storage]).reshape(len(paths), -1)
    if len(embeddings.shape) != 2 or embeddings.shape[0] != len(paths):
        raise InputError(f"embeddings {embeddings.shape} and {len(paths)} paths do not match")
    arrays = {"embeddings": embeddings, **record_arrays(records, len(paths)),
              "paths": np.frombuffer(json.dumps(paths, ensure_ascii=False).encode(), np.uint8)}  # fmt: skip
    meta = {**{k: str(v) for k, v in (metadata or {}).items()}, "format": FORMAT, "storage": storage,
            "rows": str(len(paths)), "dim": str(embeddings.shape[1])}  # fmt: skip
    tmp = partial_path(path)
    if path.endswith(".npz"):
        if isinstance(embeddings, Rows):
            arrays["embeddings"] = np.concatenate([np.zeros((0, embeddings.shape[1]), embeddings.dtype), *embeddings.blocks()])
        np.savez(tmp, **arrays, metadata=np.array(json.dumps(meta)))
    else:
        write_safetensors(tmp, arrays, meta)
    os.replace(tmp, path)


def partial_path(path):
    """Where `save_embeddings` writes before renaming: beside the file, same suffix."""
    return f"{path}.partial{os.path.splitext(path)[1]}"


def record_arrays(records, n):
    """The per-row record arrays with their storage dtypes (zeros when none are known)."""
    records = records or {}
    out = {"sizes": np.asarray(records.get("sizes", np.zeros(n)), np.int64),
           "mtimes": np.asarray(records.get("mtimes", np.zeros(n)), np.int64)}  # fmt: skip
    if records.get("sha256") is not None:
        out["sha256"] = np.asarray(records["sha256"], np.uint8).reshape(n, 32)
    return out


# ---------------------------------------------------------------- reading


class Embeddings:
    """An opened embeddings file: `paths`, `meta`, `records`, and rows read chunk by chunk (`chunks`)."""

    def __init__(self, path, paths, meta, records, read_rows):
        self.path, self.paths, self.meta, self.records = path, paths, meta, records
        self._read_rows = read_rows  # (start, stop) -> [c, D] stored dtype
        self.dim = int(meta["dim"])
        self.storage = meta.get("storage", "float32")

    def __len__(self):
        return len(self.paths)

    def chunks(self, chunk_rows=CHUNK_ROWS):  # yields (start, [c, D] float32), every row checked
        for start in range(0, len(self), chunk_rows):
            rows = self._read_rows(start, min(start + chunk_rows, len(self)))
            yield start, self.checked(start, np.asarray(rows, dtype=np.float32))

    def rows(self, indices):  # [k] -> [k, D] float32, checked
        return np.stack([self.checked(int(i), self._read_rows(int(i), int(i) + 1).astype(np.float32))[0] for i in indices])

    def array(self):  # [I, D] float32: every row, in memory
        return np.concatenate([c for _, c in self.chunks()]) if len(self) else np.zeros((0, self.dim), np.float32)

    def checked(self, start, rows):  # [c, D] -> [c, D]
        """Rows that are finite and unit length, as `embed` writes them; else an error naming the row and path."""
        norms = np.sqrt(np.einsum("cd,cd->c", rows, rows))  # [c]; a NaN or inf anywhere makes its row's norm so
        off = ~(np.abs(norms - 1) <= NORM_TOLERANCE.get(self.storage, 1e-3))  # one pass checks both
        if off.any():
            c = int(np.argmax(off))
            i = start + c
            if not np.isfinite(rows[c]).all():
                raise EmbeddingsFileError(f"{self.path}: row {i} ({self.paths[i]}) holds NaN or inf; expected finite "
                                          "L2-normalised rows (was it written from a damaged model?)")  # fmt: skip
            raise EmbeddingsFileError(f"{self.path}: row {i} ({self.paths[i]}) has length {norms[c]:.4g}; "
                                      "the file says its rows are L2-normalised (length 1)")  # fmt: skip
        return rows


def open_index(path):
    """The .safetensors index, memory-mapped: the embeddings are read only chunk by chunk."""
    try:
        with open(path, "rb") as f:  # one open file for every read: `embed` may replace `path` meanwhile
            tensors = open_safetensors(path, f)
            meta = dict(read_metadata(f))
            check_meta(path, meta, {k: v[1] for k, v in tensors.items()})
            embeddings = tensors["embeddings"][0]
            index = checked_file(path, embeddings.shape, paths_of(path, tensors["paths"][0]), meta,
                                 {k: tensors[k][0] for k in RECORD_KEYS if k in tensors}, None)  # fmt: skip
            index._read_rows = mapped_reader(path, f, embeddings.dtype, embeddings.shape[1])  # the shape is [I, D] now
    except (CheckpointError, OSError) as e:
        raise EmbeddingsFileError(f"{path}: not an embeddings file written by `siglip2-ref embed` ({e})") from None
    return index


def read_metadata(f):
    """The header's __metadata__ (read_header checks and drops it, so it is read once more here)."""
    f.seek(0)
    n = int.from_bytes(f.read(8), "little")
    return json.loads(f.read(n)).get("__metadata__") or {}


def mapped_reader(path, f, dtype, width):
    """(start, stop) -> rows, from a private read-only map of the open file f whose pages are released after each chunk.

    Released pages stay in the page cache (a second query is as fast) but stop counting in this process's RSS,
    so a 3 GB index is searched with a resident set of about one chunk.
    """
    header, data_start = read_header(path, f)
    begin, row_bytes = data_start + header["embeddings"]["data_offsets"][0], width * dtype.itemsize
    mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # outlives f

    def read(start, stop):  # -> [c, D]
        lo, hi = begin + start * row_bytes, begin + stop * row_bytes
        rows = np.frombuffer(mapped, dtype, count=(stop - start) * width, offset=lo).reshape(stop - start, width).copy()
        if hasattr(mmap, "MADV_DONTNEED"):  # Linux and most Unixes; elsewhere the OS reclaims the pages itself
            page = lo - lo % mmap.PAGESIZE
            mapped.madvise(mmap.MADV_DONTNEED, page, hi - page)
        return rows

    return read


def check_meta(path, meta, dtypes):
    """The header says it is our format, and holds embeddings of a float dtype it names (F32 or F16)."""
    if meta.get("format") != FORMAT:
        found = meta.get("format")
        hint = " (written by an older siglip2-ref: rerun `siglip2-ref embed` with --overwrite)" if str(found).startswith("siglip2-ref") else ""
        raise EmbeddingsFileError(f"{path}: not an embeddings file written by `siglip2-ref embed`: format {found!r}, expected {FORMAT!r}{hint}")
    missing = [k for k in ("embeddings", "paths", "sizes", "mtimes") if k not in dtypes]
    if missing:
        raise EmbeddingsFileError(f"{path}: no {', '.join(missing)} tensor; expected embeddings, paths, sizes, mtimes")
    storage = meta.get("storage")
    if storage not in STORAGE or dtypes["embeddings"] != SAFETENSORS_DTYPE[storage]:
        raise EmbeddingsFileError(f"{path}: embeddings are {dtypes['embeddings']} but the metadata says storage {storage!r}; "
                                  "expected F32 (float32) or F16 (float16), as recorded")  # fmt: skip
    for key, want in (("paths", "U8"), ("sizes", "I64"), ("mtimes", "I64"), ("sha256", "U8")):
        if key in dtypes and dtypes[key] != want:
            raise EmbeddingsFileError(f"{path}: tensor {key!r} is {dtypes[key]}, expected {want}")


def paths_of(path, raw):  # [bytes] uint8 -> list of str
    try:
        paths = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise EmbeddingsFileError(f"{path}: the paths tensor is not a UTF-8 JSON list ({e})") from None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise EmbeddingsFileError(f"{path}: the paths tensor is not a JSON list of strings")
    return paths


def checked_file(path, shape, paths, meta, records, read_rows):
    """An `Embeddings` after the checks that need no row values: shapes, counts, width, unique paths."""
    shape = tuple(shape)
    if len(shape) != 2 or shape[1] < 1:
        raise EmbeddingsFileError(f"{path}: embeddings have shape {shape}, expected [rows, width] with width at least 1")
    for key, value in (("rows", shape[0]), ("dim", shape[1])):
        if meta.get(key) != str(value):
            raise EmbeddingsFileError(f"{path}: metadata {key}={meta.get(key)!r} but the embeddings are {shape[0]} x {shape[1]}")
    counts = {"paths": len(paths), **{k: len(v) for k, v in records.items()}}
    for key, n in counts.items():
        if n != shape[0]:
            raise EmbeddingsFileError(f"{path}: {n} {key} for {shape[0]} embedding rows; expected one per row")
    if "sha256" in records and tuple(records["sha256"].shape) != (shape[0], 32):
        raise EmbeddingsFileError(f"{path}: sha256 has shape {tuple(records['sha256'].shape)}, expected [{shape[0]}, 32]")
    if len(set(paths)) != len(paths):
        seen = set()
        repeated = next(p for p in paths if p in seen or seen.add(p))
        raise EmbeddingsFileError(f"{path}: the path {repeated} appears more than once; expected one row per file")
    return Embeddings(path, paths, meta, records, read_rows)


def open_npz(path):
    """A .npz file written by `save_embeddings`, read into memory."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays.pop("metadata")))
        if not isinstance(meta, dict):
            raise ValueError("metadata is not a JSON object")
    except Exception as e:  # zip/JSON/KeyError/ValueError: all mean "not our file"
        raise EmbeddingsFileError(f"{path}: not an embeddings file written by `siglip2-ref embed` ({type(e).__name__}: {e})") from None
    dtypes = {k: SAFETENSORS_DTYPE.get(a.dtype.name, a.dtype.name) for k, a in arrays.items()}
    check_meta(path, meta, dtypes)
    embeddings = arrays["embeddings"]
    return checked_file(path, embeddings.shape, paths_of(path, arrays["paths"]), meta,
                        {k: arrays[k] for k in RECORD_KEYS if k in arrays}, lambda a, b: embeddings[a:b])  # fmt: skip
