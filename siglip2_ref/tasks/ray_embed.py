"""Ray Data for collections beyond one machine: the same embeddings, computed by a pool of Ray workers.

    import ray
    ds = ray.data.from_items([{"path": p} for p in paths])      # or rows with "path" and "bytes" (encoded image)
    ds = embed_dataset(ds, "siglip2-base-patch16-naflex", num_workers=8)   # adds "embedding": fixed-size float32 list
    ds.write_parquet("photos.parquet")

`map_batches` runs `Embedder`, a stateful callable: each worker (a Ray actor) loads the model once, its weights
memory-mapped, then decodes, preprocesses and embeds the batches it is given with the same functions as the local
path, so the numbers are the same. Ray restarts a worker that dies and retries its batch, so every row comes out
exactly once. `embed_files_to_parquet` is what `siglip2-ref embed --engine ray` runs: Parquet files plus
siglip2-ref.json with the model and settings (written last), which `search` reads directly (tasks/parquet_io.py).
Ray and pyarrow are an optional extra: pip install "siglip2-ref[ray]".
"""

import io
import json
import logging
import math
import os
import shutil

import numpy as np

from .embedfile import FORMAT, PARQUET_META
from .parquet_io import check_parquet_output, parquet_paths

INSTALL = 'pip install "siglip2-ref[ray]"'


class RayMissing(ImportError):
    """Ray Data or pyarrow is not installed."""


def import_ray():
    """(ray, pyarrow), or RayMissing saying how to install them."""
    try:
        import pyarrow
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise RayMissing(f"--engine ray needs Ray Data and pyarrow ({e.name} is not installed): {INSTALL}") from None
    return ray, pyarrow


class Embedder:
    """One Ray worker: the model loaded once; a batch of rows {"path"[, "bytes"]} -> {"path", "embedding"}.

    Files that cannot be read or decoded are left out of the output (the caller counts them from the paths).
    """

    def __init__(self, folder, dtype="float32", backend="numpy", resize_backend="pil", max_num_patches=None, batch_size=16):
        from ..model.model import load_model
        from ..preprocess.processor import load_processor

        self.model = load_model(folder, backend=backend, dtype=dtype)  # weights memory-mapped, shared by the OS
        self.processor = load_processor(folder, resize_backend=resize_backend)
        self.max_num_patches, self.batch_size = max_num_patches, batch_size

    def images(self, batch):
        if "bytes" in batch:
            from PIL import Image

            return [Image.open(io.BytesIO(b)) for b in batch["bytes"]]
        return [str(p) for p in batch["path"]]

    def __call__(self, batch):  # {"path": [b]} -> pyarrow.Table path, embedding fixed_size_list<float32>[D]
        from .pipelines import iter_image_embeddings

        _, pa = import_ray()
        paths, kept, rows = [str(p) for p in batch["path"]], [], []
        for indices, embeds in iter_image_embeddings(self.model, self.processor, self.images(batch), self.batch_size,
                                                     max_num_patches=self.max_num_patches, on_error=lambda *a: None):  # fmt: skip
            kept.extend(paths[i] for i in indices)
            rows.append(np.asarray(embeds, np.float32))
        dim = self.model.config.vision.hidden_size
        flat = np.concatenate(rows).reshape(-1) if rows else np.zeros(0, np.float32)  # [b D]
        return pa.table({"path": pa.array(kept, pa.string()),
                         "embedding": pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim)})  # fmt: skip


def embed_dataset(ds, model, batch_size=16, num_workers=2, cpus_per_worker=1.0, gpus_per_worker=0.0, dtype="float32",
                  backend="numpy", resize_backend="pil", max_num_patches=None):  # fmt: skip
    """A Ray Dataset of rows {"path"[, "bytes"]} -> one of {"path", "embedding"} (L2-normalised float32 lists).

    `model`: a checkpoint folder every worker can read. Each of `num_workers` actors asks for `cpus_per_worker`
    CPUs and `gpus_per_worker` GPUs (with backend="cupy"). A worker that dies is restarted and its batch retried.
    """
    from ..checkpoint.folder import resolve_checkpoint

    folder = str(resolve_checkpoint(model))
    args = dict(folder=folder, dtype=dtype, backend=backend, resize_backend=resize_backend,
                max_num_patches=max_num_patches, batch_size=batch_size)  # fmt: skip
    import ray.data

    # Ray Data's actor pool restarts a dead actor and retries its tasks by default (max_restarts=-1,
    # max_task_retries=-1): that is what makes a killed worker cost time, not rows.
    return ds.map_batches(Embedder, fn_constructor_kwargs=args, batch_size=batch_size, batch_format="numpy",
                          compute=ray.data.ActorPoolStrategy(size=num_workers), num_cpus=cpus_per_worker,
                          num_gpus=gpus_per_worker or None, udf_modifying_row_count=True)  # fmt: skip


def start_ray(address=None, num_cpus=None):
    """Connect to the cluster at `address` (or the one already started in this process; else a local one)."""
    ray, _ = import_ray()
    if not ray.is_initialized():
        options = dict(address=address) if address else dict(num_cpus=num_cpus or os.cpu_count())
        ray.init(**options, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its INFO lines name internal plans and log folders
    return ray


def embed_files_to_parquet(files, output, model, metadata, batch_size=16, num_workers=2, cpus_per_worker=1.0,
                           gpus_per_worker=0.0, address=None, overwrite=False, **options):  # fmt: skip
    """Embed `files` on Ray into the Parquet folder `output`; returns {"rows", "dim", "skipped_paths"}.

    siglip2-ref.json (the model and settings in `metadata`, the row count) is written last: a folder without it
    is an unfinished run, which `search` refuses.
    """
    check_parquet_output(output, overwrite)
    if os.path.isdir(output):
        shutil.rmtree(output)  # check_parquet_output made sure it is one of ours
    ray = start_ray(address)
    blocks = max(num_workers, min(len(files), math.ceil(len(files) / (4 * batch_size))))  # several batches per worker
    ds = ray.data.from_items([{"path": f} for f in files], override_num_blocks=blocks)
    ds = embed_dataset(ds, model, batch_size, num_workers, cpus_per_worker, gpus_per_worker, **options)
    ds.write_parquet(output)
    written = parquet_paths(output)
    meta = {**{k: str(v) for k, v in metadata.items()}, "format": FORMAT, "rows": str(len(written)), "storage": "float32"}
    with open(os.path.join(output, PARQUET_META + ".partial"), "w") as f:
        json.dump(meta, f, indent=1)
    os.replace(os.path.join(output, PARQUET_META + ".partial"), os.path.join(output, PARQUET_META))
    done = set(written)
    return {"rows": len(written), "dim": int(meta["dim"]), "skipped_paths": [f for f in files if f not in done]}

