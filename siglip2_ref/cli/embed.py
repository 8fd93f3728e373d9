"""`siglip2-ref embed`: image files and folders into one embeddings file, resumable."""

import argparse
import os
import sys
import time

from .. import __version__
from .options import (EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNTIME, IMAGE_SUFFIXES, PROG, CommandError, Progress, UsageError,
                      checkpoint_folder, load, plural, positive_int)

NAME = "embed"
SUMMARY = "embed images (files, folders) into one .safetensors/.npz"
IMAGES = True  # takes --resize-backend and --max-num-patches
EXAMPLES = """examples:
  siglip2-ref embed photos/ -o photos.safetensors          # every image under photos/, recursively
  siglip2-ref embed photos/ -o photos.safetensors --resume # continue an interrupted run
  siglip2-ref search photos.safetensors "a dog on a beach"
"""


def configure(p):
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files and folders (searched recursively)")
    p.add_argument("-o", "--output", default="embeddings.safetensors", metavar="FILE",
                   help="output file, .safetensors or .npz (default: embeddings.safetensors)")  # fmt: skip
    p.add_argument("--batch-size", type=positive_int, default=16, metavar="N", help="images per forward pass (default: 16)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="keep the embeddings already in FILE and add the missing paths")
    mode.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    p.add_argument("--save-every", type=positive_int, default=1000, metavar="N",
                   help="write FILE after every N new images, so an interrupted run can --resume (default: 1000)")  # fmt: skip
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: only when stderr is a terminal)")  # fmt: skip


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


def embeddings_metadata(model, folder, args):
    cfg = model.config
    return {"model": str(folder), "model_type": cfg.model_type, "variant": cfg.variant, "dim": cfg.vision.hidden_size,
            "normalized": "true", "dtype": args.dtype, "resize_backend": args.resize_backend,
            "max_num_patches": args.max_num_patches or "", "created_by": f"{PROG} {__version__}"}  # fmt: skip


def check_output(args):
    """The output path is usable: known suffix, not silently overwritten, resumable from the same model."""
    if not args.output.endswith((".safetensors", ".npz")):
        raise UsageError(f"--output {args.output}: use a .safetensors or .npz file name")
    if os.path.isdir(args.output):
        raise UsageError(f"--output {args.output} is a folder; give a file name")
    if os.path.exists(args.output) and not (args.resume or args.overwrite):
        raise UsageError(f"{args.output} exists: pass --resume to add to it or --overwrite to replace it")


def previous_embeddings(args, folder):
    """(embeddings list, paths) already in --output when resuming, checked to come from the same model."""
    from ..tasks.pipelines import load_embeddings

    if not (args.resume and os.path.exists(args.output)):
        return [], []
    embeddings, paths, meta = load_embeddings(args.output)
    if meta.get("model") != str(folder):
        raise CommandError(f"--resume: {args.output} was made with {meta.get('model')}, not {folder}; "
                           "use the same --model or another --output")  # fmt: skip
    return list(embeddings), paths


def run(args):
    from ..tasks.pipelines import iter_image_embeddings, save_embeddings

    check_output(args)
    files, ignored = find_images(args.paths)
    if not files:
        raise CommandError(f"no image files found in {', '.join(args.paths)} (looked for {', '.join(IMAGE_SUFFIXES)})")
    folder = checkpoint_folder(args)
    model, processor = load(args, folder)
    embeddings, done = previous_embeddings(args, folder)
    todo = [f for f in files if f not in set(done)]
    meta = embeddings_metadata(model, folder, args)
    progress = Progress(len(todo), "images", args.progress)
    skipped, since_save, start = [], 0, time.monotonic()

    def skip(index, path, error):
        skipped.append(path)
        progress.note(f"skipped unreadable image {path}: {error}")
        progress.update(1)

    try:
        for indices, embeds in iter_image_embeddings(model, processor, todo, args.batch_size,
                                                     max_num_patches=args.max_num_patches, on_error=skip):  # fmt: skip
            embeddings.extend(embeds)
            done.extend(todo[i] for i in indices)
            progress.update(len(indices))
            since_save += len(indices)
            if since_save >= args.save_every:
                save_embeddings(args.output, embeddings, done, meta)
                since_save = 0
    except KeyboardInterrupt:
        progress.close()
        if embeddings:
            save_embeddings(args.output, embeddings, done, meta)
        print(f"{PROG}: interrupted: {len(done)} embeddings saved in {args.output}; rerun with --resume to finish",
              file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    progress.close()
    return finish_embed(args, embeddings, done, meta, len(todo) - len(skipped), skipped, ignored, time.monotonic() - start)


def finish_embed(args, embeddings, done, meta, new, skipped, ignored, seconds):
    from ..tasks.pipelines import save_embeddings

    if embeddings:
        save_embeddings(args.output, embeddings, done, meta)
    rate = f" in {seconds:.1f} s ({new / seconds:.1f} images/s)" if new and seconds > 0 else ""
    print(f"embedded {new} new images{rate}; {args.output} holds {len(done)} embeddings of width {meta['dim']}")
    if ignored:
        print(f"ignored {plural(ignored, 'file')} without an image extension in the folders")
    if skipped:
        print(f"skipped {plural(len(skipped), 'unreadable image')} (warnings above)", file=sys.stderr)
    return EXIT_RUNTIME if not done else EXIT_OK
