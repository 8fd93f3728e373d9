"""`siglip2-ref embed`: image files and folders into one index, updated incrementally (tasks/index.py)."""

import argparse
import os
import sys
import time

from .. import __version__
from .options import (EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNTIME, IMAGE_SUFFIXES, PROG, CommandError, Progress, UsageError,
                      checkpoint_folder, load, plural, positive_int)

NAME = "embed"
SUMMARY = "embed images (files, folders) into an index; a rerun embeds only what is new or changed"
IMAGES = True  # takes --resize-backend and --max-num-patches
EXAMPLES = """examples:
  siglip2-ref embed photos/ -o photos.safetensors          # every image under photos/, recursively
  siglip2-ref embed photos/ -o photos.safetensors          # later: only new and changed files; gone ones dropped
  siglip2-ref embed photos/ -o photos.safetensors --hash   # unchanged = same content (SHA-256), not same mtime
  siglip2-ref embed photos/ -o photos.parquet --engine ray --address auto   # on a Ray cluster
  siglip2-ref search photos.safetensors "a dog on a beach"
"""


def configure(p):
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files and folders (searched recursively)")
    p.add_argument("-o", "--output", default="embeddings.safetensors", metavar="INDEX",
                   help="the index: .safetensors (memory-mapped by search) or .npz; with --engine ray a Parquet folder "
                        "(default: embeddings.safetensors)")  # fmt: skip
    p.add_argument("--batch-size", type=positive_int, default=16, metavar="N", help="images per forward pass (default: 16)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)  # every run resumes now; kept for old scripts
    mode.add_argument("--overwrite", action="store_true", help="rebuild INDEX from scratch instead of updating it")
    p.add_argument("--hash", action="store_true",
                   help="a file is unchanged when its content (SHA-256) is, not its size and modification time")  # fmt: skip
    p.add_argument("--storage", choices=("float32", "float16"), default="float32",
                   help="dtype of the stored embeddings; float16 halves the index (docs/collections.md: effect on ranking)")  # fmt: skip
    p.add_argument("--workers", type=int, default=2, metavar="N",
                   help="threads decoding and resizing ahead of the model (0: one after the other; default: 2)")  # fmt: skip
    p.add_argument("--save-every", type=positive_int, default=1000, metavar="N",
                   help="write INDEX after every N new images, so an interrupted run loses at most N (default: 1000)")  # fmt: skip
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar with images/s and ETA on stderr (default: only when stderr is a terminal)")  # fmt: skip
    ray = p.add_argument_group("Ray (pip install \"siglip2-ref[ray]\")")
    ray.add_argument("--engine", choices=("local", "ray"), default="local", help="where to run (default: local)")
    ray.add_argument("--address", metavar="ADDRESS", help="Ray cluster address (default: start a local one; 'auto': the running one)")
    ray.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="N", help="CPUs each Ray worker asks for (default: 1)")
    ray.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="N",
                     help="GPUs each Ray worker asks for; use with --backend cupy (default: 0)")  # fmt: skip
    ray.add_argument("--num-workers", type=positive_int, metavar="N", help="Ray workers, each loading the model once (default: 2)")


def find_images(paths):
    """(image files, count of non-image files ignored): files as given, folders walked recursively in sorted order."""
    files, ignored = [], 0
    for path in paths:
        if not os.path.exists(path):
            raise CommandError(f"no such file or folder: {path}")
        if not os.path.isdir(path):
            files.append(path)
            continue
        for root, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                if name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith("."):
                    files.append(os.path.join(root, name))
                else:
                    ignored += 1
    return list(dict.fromkeys(files)), ignored


def absolute(path):
    return os.path.abspath(os.path.normpath(path))


def embeddings_metadata(model, processor, folder, args):
    """What the index records: the model (path and fingerprint), preprocessing settings, dtypes."""
    from ..tasks.index import model_fingerprint, preprocessing_settings

    cfg = model.config
    return {"model": str(folder), "model_fingerprint": model_fingerprint(folder), "model_type": cfg.model_type,
            "variant": cfg.variant, "dim": cfg.vision.hidden_size, "normalized": "true", "dtype": args.dtype,
            "storage": args.storage, "resize_backend": args.resize_backend, "max_num_patches": args.max_num_patches or "",
            "preprocessing": preprocessing_settings(processor, args.max_num_patches), "hash": "sha256" if args.hash else "",
            "created_by": f"{PROG} {__version__}"}  # fmt: skip


def check_output(args):
    """The output path is usable: a known suffix (a Parquet folder for Ray), not a folder for the local index."""
    if args.engine == "ray":
        if args.output.endswith((".safetensors", ".npz")):
            raise UsageError(f"--output {args.output}: --engine ray writes a Parquet folder; give a name such as photos.parquet")
        return
    if not args.output.endswith((".safetensors", ".npz")):
        raise UsageError(f"--output {args.output}: use a .safetensors or .npz file name (a Parquet folder needs --engine ray)")
    if os.path.isdir(args.output):
        raise UsageError(f"--output {args.output} is a folder; give a file name")
    if args.workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {args.workers}")


def scan(files, use_hash, skip):
    """{absolute path: (size, mtime_ns, sha256 or None)} for the files that can still be read."""
    from ..tasks.index import file_record

    found = {}
    for path in files:
        try:
            found[path] = file_record(path, use_hash)
        except OSError as e:
            skip(path, e)
    return found


def run(args):
    check_output(args)
    files, ignored = find_images(args.paths)
    if not files:
        raise CommandError(f"no image files found in {', '.join(args.paths)} (looked for {', '.join(IMAGE_SUFFIXES)})")
    folder = checkpoint_folder(args)
    if args.engine == "ray":
        return run_ray(args, [absolute(f) for f in files], folder, ignored)
    model, processor = load(args, folder)
    return embed_local(args, model, processor, folder, [absolute(f) for f in files], ignored)


def embed_local(args, model, processor, folder, files, ignored):
    from ..tasks.index import IndexMismatch, IndexUpdate

    skipped = []

    def skip(path, error):
        skipped.append(path)
        progress.note(f"skipped unreadable image {path}: {error}")
        progress.update(1)

    progress = Progress(len(files), "images", False)
    try:
        update = IndexUpdate(args.output, embeddings_metadata(model, processor, folder, args),
                             scan(files, args.hash, skip), [absolute(p) for p in args.paths], args.hash, args.overwrite)  # fmt: skip
    except IndexMismatch as e:
        raise CommandError(str(e)) from None
    progress = Progress(len(update.todo), "images", args.progress)
    start = time.monotonic()
    try:
        embed_todo(args, model, processor, update, progress, lambda i, path, error: skip(path, error))
    except KeyboardInterrupt:
        progress.close()
        update.save()
        print(f"{PROG}: interrupted: {len(update.paths())} embeddings saved in {args.output}; rerun the same command to finish",
              file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    progress.close()
    return finish_embed(args, update, skipped, ignored, time.monotonic() - start)


def embed_todo(args, model, processor, update, progress, on_error):
    """Embed the files the plan lists, saving the index every --save-every images."""
    from ..tasks.pipelines import iter_image_embeddings

    since_save, todo = 0, update.todo
    for indices, embeds in iter_image_embeddings(model, processor, todo, args.batch_size, max_num_patches=args.max_num_patches,
                                                 on_error=on_error, workers=args.workers):  # fmt: skip
        update.add([todo[i] for i in indices], embeds)
        progress.update(len(indices))
        since_save += len(indices)
        if since_save >= args.save_every:
            update.save()
            since_save = 0


def finish_embed(args, update, skipped, ignored, seconds):
    from ..tasks.index import summary

    counts, total = summary(update), len(update.paths())
    if counts["embedded"] or counts["removed"] or update.changed or update.refreshed or args.overwrite or not os.path.exists(args.output):
        update.save()
    n = counts["embedded"]
    rate = f" in {seconds:.1f} s ({n / seconds:.1f} images/s)" if n and seconds > 0 else ""
    print(f"embedded {plural(n, 'image')} ({counts['new']} new, {counts['changed']} changed){rate}; kept {counts['kept']} unchanged, "
          f"removed {counts['removed']} gone; {args.output} holds {total} embeddings of width {update.meta['dim']}")  # fmt: skip
    if ignored:
        print(f"ignored {plural(ignored, 'file')} without an image extension in the folders")
    if skipped:
        print(f"skipped {plural(len(skipped), 'unreadable image')} (warnings above)", file=sys.stderr)
    return EXIT_RUNTIME if not total else EXIT_OK


def run_ray(args, files, folder, ignored):
    """Embed `files` on a Ray cluster into the Parquet folder --output; prints what `embed` prints."""
    from ..tasks.ray_embed import RayMissing, embed_files_to_parquet, import_ray

    try:
        import_ray()
    except RayMissing as e:
        raise CommandError(str(e)) from None
    if args.storage != "float32":
        raise UsageError("--engine ray writes float32 embeddings (Parquet fixed-size float32 lists); drop --storage")
    from ..model.model import load_model
    from ..preprocess.processor import load_processor

    meta = embeddings_metadata(load_model(folder), load_processor(folder, resize_backend=args.resize_backend), folder, args)
    start = time.monotonic()
    written = embed_files_to_parquet(files, args.output, folder, meta, batch_size=args.batch_size,
                                     num_workers=args.num_workers or 2, cpus_per_worker=args.cpus_per_worker,
                                     gpus_per_worker=args.gpus_per_worker, address=args.address, overwrite=args.overwrite,
                                     dtype=args.dtype, backend=args.backend, resize_backend=args.resize_backend,
                                     max_num_patches=args.max_num_patches)  # fmt: skip
    seconds = time.monotonic() - start
    print(f"embedded {plural(written['rows'], 'image')} on Ray in {seconds:.1f} s ({written['rows'] / seconds:.1f} images/s); "
          f"{args.output} holds {written['rows']} embeddings of width {written['dim']} (Parquet)")  # fmt: skip
    for path in written["skipped_paths"]:
        print(f"{PROG}: warning: skipped unreadable image {path}", file=sys.stderr)
    if ignored:
        print(f"ignored {plural(ignored, 'file')} without an image extension in the folders")
    return EXIT_OK
