"""Incremental indexing: embed only what is new or changed since the last run, drop what is gone, never lose work.

    update = IndexUpdate(output, settings, files, roots, use_hash=False)   # plan: keep / embed / remove
    for paths, embeds in ...:  update.add(paths, embeds); update.save()   # save() is atomic (temp + rename)

A file is unchanged when its size and modification time (ns) are those recorded, or, with use_hash, when its
SHA-256 is (so a copied or touched file is not embedded again). Rows of files under the given roots that were
not found again are removed; rows of files outside them are kept as they are (rclip's rule), so indexing one
folder more does not forget the others. The index records the model (a fingerprint of its files), the
preprocessing settings and the dtypes; an update with different ones is refused instead of mixing embeddings
that do not compare.
"""

import hashlib
import json
import os

import numpy as np

from ..checkpoint.weights import weight_files
from ..errors import IndexMismatch
from .embedfile import CHUNK_ROWS, Rows, partial_path, save_embeddings
from .readers import open_embeddings

SETTINGS_THAT_MUST_MATCH = ("model_fingerprint", "preprocessing", "dtype", "storage", "dim")
SAMPLE_BLOCKS, SAMPLE_BYTES = 16, 4096  # bytes of each weights file read for the fingerprint


# ---------------------------------------------------------------- what the index records


def model_fingerprint(folder):
    """SHA-256 (hex, 16 digits) of config.json and, per weights file, its size, header and 16 sampled blocks.

    Cheap on a multi-GB checkpoint, and any two different trainings differ in the sampled weights; a full hash
    of the weights would cost seconds on every run.
    """
    h = hashlib.sha256()
    h.update(open(os.path.join(folder, "config.json"), "rb").read())
    for path in weight_files(folder):
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            h.update(size.to_bytes(8, "little") + f.read(n))
            for i in range(SAMPLE_BLOCKS):
                f.seek(8 + n + (size - 8 - n - SAMPLE_BYTES) * i // (SAMPLE_BLOCKS - 1) if size > 8 + n + SAMPLE_BYTES else 8 + n)
                h.update(f.read(SAMPLE_BYTES))
    return h.hexdigest()[:16]


def preprocessing_settings(processor, max_num_patches=None):
    """The image processor's settings as one JSON string: what decides the pixels a model sees."""
    image_processor = processor.require_image_processor()
    config = dict(image_processor.config)
    if max_num_patches is not None:
        config["max_num_patches"] = int(max_num_patches)
    config.update(variant=image_processor.variant, resize_backend=image_processor.resize_backend,
                  pass_order=image_processor.pass_order)  # fmt: skip
    return json.dumps(config, sort_keys=True, default=str)


def check_settings(path, old_meta, new_meta):
    """Refuse to add to an index made with another model, preprocessing or dtype (naming what differs)."""
    differ = [k for k in SETTINGS_THAT_MUST_MATCH if k in new_meta and old_meta.get(k) != str(new_meta[k])]
    if differ:
        what = "; ".join(f"{k}: index {old_meta.get(k)!r}, this run {str(new_meta[k])!r}" for k in differ)
        raise IndexMismatch(f"{path} was made with other settings ({what}); embeddings made differently do not "
                            "compare, so they are not mixed: pass --overwrite to rebuild it, or use another --output")  # fmt: skip


# ---------------------------------------------------------------- files on disk


def file_record(path, use_hash=False):  # -> (size, mtime_ns, sha256 bytes or None)
    st = os.stat(path)
    digest = None
    if use_hash:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digest = h.digest()
    return st.st_size, st.st_mtime_ns, digest


def under(path, roots):
    """Whether `path` is one of `roots` or inside one of them (all absolute and normalised)."""
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def unchanged(old, new, use_hash):  # records (size, mtime, sha) -> bool
    if use_hash and old[2] is not None:
        return old[0] == new[0] and old[2] == new[2]
    return old[0] == new[0] and old[1] == new[1]


# ---------------------------------------------------------------- the update


class IndexUpdate:
    """The plan for one run (rows kept from the old index, files to embed, rows removed) and its saving."""

    def __init__(self, output, meta, found, roots, use_hash=False, overwrite=False):
        self.output, self.meta, self.use_hash = os.fspath(output), dict(meta), use_hash
        self.storage = self.meta.get("storage", "float32")
        if os.path.exists(partial_path(self.output)):
            os.remove(partial_path(self.output))  # left by a run that was killed while saving
        self.old = None if overwrite or not os.path.exists(self.output) else open_embeddings(self.output)
        if self.old is not None:
            check_settings(self.output, self.old.meta, self.meta)
        self.refreshed = 0
        self.keep, self.todo, self.removed, self.changed = self.plan(found, roots)
        self.found, self.new_paths, self.new_rows = found, [], []

    def plan(self, found, roots):
        """(old rows to keep, paths to embed, number of rows removed, set of changed files)."""
        if self.old is None:
            return [], list(found), 0, set()
        old_records = self.old_records()
        keep, removed, changed = [], 0, set()
        for row, path in enumerate(self.old.paths):
            if path in found:
                if unchanged(old_records[row], found[path], self.use_hash):
                    keep.append(row)
                    self.refreshed += self.use_hash and old_records[row][1] != found[path][1]  # same content, new mtime
                else:
                    changed.add(path)
            elif under(path, roots):
                removed += 1
            else:
                keep.append(row)  # outside this run's folders: not looked at, kept as it is
        kept = {self.old.paths[row] for row in keep}
        return keep, [p for p in found if p not in kept], removed, changed

    def old_records(self):  # -> [(size, mtime, sha or None)] per old row
        r = self.old.records
        sha = r.get("sha256")
        return [(int(s), int(m), None if sha is None else bytes(sha[i])) for i, (s, m) in enumerate(zip(r["sizes"], r["mtimes"]))]

    def add(self, paths, embeds):  # [b], [b, D]
        self.new_paths.extend(paths)
        self.new_rows.append(np.asarray(embeds, np.float32))

    def paths(self):
        return [self.old.paths[row] for row in self.keep] + self.new_paths

    def save(self):
        """Write kept + new rows to the index atomically (the old index stays whole until the rename)."""
        paths = self.paths()
        if not paths and self.old is None:
            return  # nothing to write, nothing to empty
        dim = int(self.meta["dim"])
        rows = Rows((len(paths), dim), self.storage, self.blocks)
        save_embeddings(self.output, rows, paths, self.meta, self.records(paths), self.storage)

    def blocks(self):  # kept rows in their stored dtype (no second rounding), then the new ones
        kept = np.zeros(len(self.old) if self.old is not None else 0, bool)  # [I_old]
        kept[self.keep] = True
        for start in range(0, len(kept), CHUNK_ROWS):
            stop = min(start + CHUNK_ROWS, len(kept))
            if kept[start:stop].any():
                yield self.old._read_rows(start, stop)[kept[start:stop]]
        yield from self.new_rows

    def records(self, paths):  # -> {"sizes", "mtimes"[, "sha256"]}
        old = self.old_records() if self.keep else []
        kept = {self.old.paths[row]: old[row] for row in self.keep}
        rec = [self.found.get(p) or kept[p] for p in paths]
        out = {"sizes": [r[0] for r in rec], "mtimes": [r[1] for r in rec]}
        if self.use_hash:
            out["sha256"] = np.stack([np.frombuffer(r[2] or bytes(32), np.uint8) for r in rec])
        return out


def summary(update):
    """Counts for the closing line: rows kept, files embedded that were new or changed, rows removed."""
    changed = sum(p in update.changed for p in update.new_paths)
    return {"kept": len(update.keep), "embedded": len(update.new_paths), "new": len(update.new_paths) - changed,
            "changed": changed, "removed": update.removed}  # fmt: skip
