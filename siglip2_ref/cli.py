"""The `siglip2-ref` command line (also `python -m siglip2_ref`).

    siglip2-ref classify                                  # the bundled demo model on its demo image
    siglip2-ref classify photo.jpg --labels cat dog "a red car" --model google/siglip2-base-patch16-naflex
    siglip2-ref embed photos/ -o photos.safetensors       # then: siglip2-ref search photos.safetensors "a beach"
    siglip2-ref info | patches IMAGE | attention IMAGE

Each subcommand is a `configure(parser)` function that adds its options and a `run(args) -> int`; `COMMANDS`
lists them. Other modules add subcommands with `add_commands(subparsers)`: create a parser with
`subparsers.add_parser(name, help=..., description=...)`, call `add_model_options(parser)` (and
`add_global_options(parser)`), and `parser.set_defaults(run=function)`; `EXTENSIONS` names the modules asked.
Errors: exit code 2 for usage (bad or conflicting options), 1 for everything that fails at run time; one line
`siglip2-ref: error: ...` and no traceback unless --debug.
"""

import argparse
import json
import os
import sys
import time
import traceback
from importlib import import_module
from pathlib import Path

from . import __version__
from .checkpoint import CheckpointNotFound, resolve_checkpoint
from .config import ConfigError, load_config
from .image_processing import ImageInputError
from .vision import InputError
from .weights import CheckpointError

PROG = "siglip2-ref"
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jfif", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
EXTENSIONS = ("siglip2_ref.porting",)  # modules with add_commands(subparsers); a missing one is skipped
RUNTIME_ERRORS = (CheckpointNotFound, ConfigError, CheckpointError, InputError, ImageInputError, OSError, ValueError,
                  RuntimeError)  # fmt: skip; ValueError/RuntimeError: preprocessing settings, backend


class UsageError(Exception):
    """Options that are missing or contradict each other (exit code 2)."""


class CommandError(Exception):
    """A request the command cannot carry out (exit code 1)."""


# ---------------------------------------------------------------- shared options and loading


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_global_options(parser, suppress=True):
    """--debug, accepted before or after the subcommand name."""
    default = argparse.SUPPRESS if suppress else False
    parser.add_argument("--debug", action="store_true", default=default, help="show full tracebacks on errors")


def add_model_options(parser, images=True):
    """--model and friends, shared by every subcommand."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", metavar="PATH_OR_ID",
                       help="checkpoint folder, or a hub id such as google/siglip2-base-patch16-naflex already in the "
                            "local Hugging Face cache (nothing is downloaded); default: the bundled NaFlex demo model")  # fmt: skip
    group.add_argument("--backend", choices=("numpy", "cupy"), default="numpy", help="array library (default: numpy)")
    group.add_argument("--dtype", choices=("float32", "float64", "float16"), default="float32",
                       help="compute dtype (default: float32)")  # fmt: skip
    if images:
        group.add_argument("--resize-backend", choices=("pil", "torchvision"), default="pil",
                           help="bit-exact resize of transformers' PIL (default) or torchvision image processors")  # fmt: skip
        group.add_argument("--max-num-patches", type=positive_int, metavar="N",
                           help="NaFlex patch budget per image (default: the checkpoint's, 256 for official models)")  # fmt: skip


def demo():
    from . import demo as package

    return package


def checkpoint_folder(args):
    """The folder that --model names (default: the bundled demo), checked to be a checkpoint."""
    if args.model is None:
        folder = Path(demo().DEMO_NAFLEX)
        if not (folder / "config.json").is_file():
            raise CommandError(f"the bundled demo model is missing ({folder}); pass --model with a checkpoint folder")
        return folder
    given = Path(args.model).expanduser()
    if given.is_file():
        raise CommandError(f"--model {args.model}: is a file; pass the checkpoint folder that holds it ({given.parent})")
    folder = resolve_checkpoint(args.model)
    if not (folder / "config.json").is_file():
        raise CommandError(
            f"--model {args.model}: {folder} is not a checkpoint folder (no config.json). A checkpoint folder holds "
            "config.json, model.safetensors, tokenizer.model and preprocessor_config.json, as Hugging Face saves them"
        )
    return folder


def load(args, folder=None):
    """(model, processor) for --model; --max-num-patches is checked against the checkpoint's variant."""
    from .model import load_model
    from .processor import load_processor

    folder = folder or checkpoint_folder(args)
    model = load_model(folder, backend=args.backend, dtype=args.dtype)
    processor = load_processor(folder, resize_backend=getattr(args, "resize_backend", "pil"))
    if getattr(args, "max_num_patches", None) is not None and model.config.variant != "naflex":
        raise UsageError(f"--max-num-patches applies to NaFlex checkpoints only; {folder} is a FixRes checkpoint")
    return model, processor


def demo_image(args, images):
    """The given IMAGE paths; without any (and without --model) the bundled demo image, said on stderr."""
    if images:
        return images
    if args.model is not None:
        raise UsageError("give at least one IMAGE")
    print(f"(no IMAGE given: using the demo image {demo().EXAMPLE_IMAGE})", file=sys.stderr)
    return [demo().EXAMPLE_IMAGE]


def check_files_exist(paths):
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise CommandError(f"no such file: {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    folders = [p for p in paths if os.path.isdir(p)]
    if folders:
        raise CommandError(f"{folders[0]} is a folder; give image files (`embed` takes folders)")


def plural(n, noun):
    return f"{n} {noun}" + ("" if n == 1 else "s")


def warn(message):
    print(f"{PROG}: warning: {message}", file=sys.stderr)


class Progress:
    """A one-line progress bar on stderr: redrawn in place on a terminal, one line every few seconds otherwise."""

    def __init__(self, total, what="images", enabled=None, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.enabled = self.tty if enabled is None else enabled
        self.total, self.what, self.done = total, what, 0
        self.start = self.last = time.monotonic()

    def line(self):
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        percent = 100 * self.done / self.total if self.total else 100
        minutes, seconds = divmod(int(eta + 0.5), 60)
        return f"{self.done}/{self.total} {self.what} ({percent:3.0f}%)  {rate:.1f} {self.what}/s  ETA {minutes}:{seconds:02d}"

    def update(self, n):
        self.done += n
        now = time.monotonic()
        if self.enabled and (self.tty or now - self.last >= 2.0 or self.done >= self.total):
            self.last = now
            print(("\r" + self.line() + "\033[K") if self.tty else self.line(), end="" if self.tty else "\n",
                  file=self.stream, flush=True)  # fmt: skip

    def note(self, message):
        """Print a warning without garbling the bar."""
        if self.enabled and self.tty:
            print("\r\033[K", end="", file=self.stream)
        warn(message)

    def close(self):
        if self.enabled and self.tty:
            print(file=self.stream)


# ---------------------------------------------------------------- classify


def configure_classify(p):
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files (default with the demo model: its demo image)")
    labels = p.add_mutually_exclusive_group()
    labels.add_argument("--labels", nargs="+", metavar="LABEL", help='candidate labels, e.g. --labels cat dog "a red car"')
    labels.add_argument("--labels-file", metavar="FILE", help="candidate labels, one per line")
    p.add_argument("--template", default=None, metavar="TEXT",
                   help='prompt around each label, with {} for the label (default: "This is a photo of {}.")')  # fmt: skip
    p.add_argument("--top-k", type=positive_int, default=5, metavar="K", help="labels shown per image (default: 5)")
    p.add_argument("--all", action="store_true", help="show every label (overrides --top-k)")
    p.add_argument("--json", action="store_true", help="print JSON: [{image, predictions: [{label, score}]}]")


def read_labels(args):
    """Labels from --labels / --labels-file, the demo labels for the demo model, or a usage error."""
    if args.labels_file is not None:
        if not os.path.isfile(args.labels_file):
            raise CommandError(f"--labels-file {args.labels_file}: no such file")
        with open(args.labels_file, encoding="utf-8") as f:
            labels = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
        if not labels:
            raise UsageError(f"--labels-file {args.labels_file}: no labels in it (one label per line)")
        return labels
    if args.labels is None:
        if args.model is None:
            from .demo import shapes

            return shapes.labels()
        raise UsageError('--labels is required: the candidate labels, e.g. --labels cat dog "a red car"')
    blank = [i for i, label in enumerate(args.labels) if not label.strip()]
    if blank:
        raise UsageError(f"--labels: label {blank[0] + 1} is empty")
    swallowed = [label for label in args.labels if label.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(label)]
    if swallowed:
        raise UsageError(f"--labels got the image file {swallowed[0]!r}: put IMAGE arguments before --labels "
                         "(it takes every word after it)")  # fmt: skip
    return args.labels


def run_classify(args):
    from .pipelines import DEFAULT_TEMPLATE, check_template, classify_embeddings, iter_image_embeddings, label_embeddings

    template = DEFAULT_TEMPLATE if args.template is None else args.template
    try:
        check_template(template)
    except InputError as e:
        raise UsageError(f"--template: {e}") from None
    labels = read_labels(args)
    images = demo_image(args, args.images)
    check_files_exist(images)
    model, processor = load(args)
    label_embeds = label_embeddings(model, processor, labels, template)  # [L, D]
    failed = []
    results = {}
    for indices, embeds in iter_image_embeddings(model, processor, images, max_num_patches=args.max_num_patches,
                                                 on_error=lambda i, path, e: failed.append((path, e))):  # fmt: skip
        top = None if args.all else args.top_k
        results.update(zip(indices, classify_embeddings(model, label_embeds, embeds, labels, top)))
    print_classification([(images[i], results[i]) for i in sorted(results)], args.json)
    for path, error in failed:
        print(f"{PROG}: error: {error}", file=sys.stderr)
    return EXIT_RUNTIME if failed else EXIT_OK


def score_text(p):
    """A probability in 7 characters: 0.9146, or 3.2e-07 when four decimals would show 0.0000."""
    return f"{p:7.4f}" if p >= 5e-5 or p == 0 else f"{p:7.1e}"


def print_classification(results, as_json):
    if as_json:
        rows = [{"image": str(path), "predictions": [{"label": label, "score": score} for label, score in preds]}
                for path, preds in results]  # fmt: skip
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for path, predictions in results:
        print(path)
        for label, score in predictions:
            print(f"  {score_text(score)}  {label}")
    if results:
        print("(scores are independent sigmoid probabilities: they need not sum to 1)")


# ---------------------------------------------------------------- embed


def configure_embed(p):
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
    from .pipelines import load_embeddings

    if not (args.resume and os.path.exists(args.output)):
        return [], []
    embeddings, paths, meta = load_embeddings(args.output)
    if meta.get("model") != str(folder):
        raise CommandError(f"--resume: {args.output} was made with {meta.get('model')}, not {folder}; "
                           "use the same --model or another --output")  # fmt: skip
    return list(embeddings), paths


def run_embed(args):
    from .pipelines import iter_image_embeddings, save_embeddings

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
        progress.note(f"skipped unreadable image: {error}")
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
    from .pipelines import save_embeddings

    if embeddings:
        save_embeddings(args.output, embeddings, done, meta)
    rate = f" in {seconds:.1f} s ({new / seconds:.1f} images/s)" if new and seconds > 0 else ""
    print(f"embedded {new} new images{rate}; {args.output} holds {len(done)} embeddings of width {meta['dim']}")
    if ignored:
        print(f"ignored {plural(ignored, 'file')} without an image extension in the folders")
    if skipped:
        print(f"skipped {plural(len(skipped), 'unreadable image')} (warnings above)", file=sys.stderr)
    return EXIT_RUNTIME if not done else EXIT_OK


# ---------------------------------------------------------------- search


def configure_search(p):
    p.add_argument("embeddings", metavar="EMBEDDINGS", help="a file written by `siglip2-ref embed`")
    p.add_argument("query", metavar="QUERY", help='what to look for, e.g. "a red circle"')
    p.add_argument("--top-k", type=positive_int, default=5, metavar="K", help="results shown (default: 5)")
    p.add_argument("--json", action="store_true", help="print JSON: [{rank, path, score, cosine}]")


def search_model_folder(args, meta):
    """--model, else the model recorded in the embeddings file (it must be the one that made them)."""
    if args.model is not None:
        folder = checkpoint_folder(args)
        if meta.get("model") and meta["model"] != str(folder):
            warn(f"{args.embeddings} was made with {meta['model']}; searching it with {folder}")
        return folder
    recorded = meta.get("model", "")
    if recorded and (Path(recorded) / "config.json").is_file():
        return Path(recorded)
    raise CommandError(f"{args.embeddings} was made with {recorded or 'an unknown model'}, which is not found here; "
                       "pass --model with that checkpoint")  # fmt: skip


def run_search(args):
    import numpy as np

    from .pipelines import embed_texts, load_embeddings, search

    if not args.query.strip():
        raise UsageError("QUERY is empty")
    embeddings, paths, meta = load_embeddings(args.embeddings)
    model, processor = load(args, search_model_folder(args, meta))
    hits = search(model, processor, args.query, embeddings, args.top_k)
    query = embed_texts(model, processor, [args.query])[0]  # [D]
    rows = [dict(rank=r + 1, path=paths[i], score=p, cosine=float(np.dot(embeddings[i], query))) for r, (i, p) in enumerate(hits)]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    print(f"{'rank':>4}  {'score':>7}  {'cosine':>7}  path")
    for row in rows:
        print(f"{row['rank']:>4}  {score_text(row['score'])}  {row['cosine']:+.4f}  {row['path']}")
    print(f"(score = sigmoid probability that the image matches {args.query!r}; {len(paths)} images searched)")
    return EXIT_OK


# ---------------------------------------------------------------- info


def configure_info(p):
    p.add_argument("--json", action="store_true", help="print the facts as JSON")


def count_parameters(tree):
    if isinstance(tree, dict):
        return sum(count_parameters(v) for v in tree.values())
    if isinstance(tree, list):
        return sum(count_parameters(v) for v in tree)
    return int(tree.size)


def storage_summary(folder):
    """({safetensors dtype: tensor count}, total bytes of the weight files)."""
    from .weights import read_tensors, weight_files

    counts = {}
    for _, tag in read_tensors(folder).values():
        counts[tag] = counts.get(tag, 0) + 1
    return counts, sum(p.stat().st_size for p in weight_files(folder))


def model_facts(model, processor, folder, args):
    """Everything `info` prints, as a dict."""
    cfg, params = model.config, model.params
    facts = {"checkpoint": str(folder), "model_type": cfg.model_type, "architecture": cfg.architecture,
             "variant": cfg.variant, "towers": cfg.towers}  # fmt: skip
    if cfg.vision is not None:
        facts["vision"] = {k: getattr(cfg.vision, k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                           "num_attention_heads", "patch_size", "vision_use_head")}  # fmt: skip
        facts["vision"]["position_grid"] = cfg.vision.grid_size
        facts["vision"][("num_patches" if cfg.variant == "naflex" else "image_size")] = (
            cfg.vision.num_patches if cfg.variant == "naflex" else cfg.vision.image_size)  # fmt: skip
    if cfg.text is not None:
        facts["text"] = {k: getattr(cfg.text, k) for k in ("vocab_size", "hidden_size", "intermediate_size",
                         "num_hidden_layers", "num_attention_heads", "max_position_embeddings")}  # fmt: skip
        facts["text"]["projection_size"] = cfg.text.output_size
    facts["parameters"] = {name: count_parameters(params[name]) for name in params if not name.startswith("logit_")}
    facts["parameters"]["total"] = count_parameters(params)
    stored, size = storage_summary(folder)
    facts["weights"] = {"stored_as": stored, "bytes": size, "compute_dtype": args.dtype, "backend": args.backend}
    if "logit_scale" in params:
        import numpy as np

        scale, bias = (float(np.asarray(params[k]).reshape(-1)[0]) for k in ("logit_scale", "logit_bias"))
        facts["logits"] = {"logit_scale": scale, "exp_logit_scale": float(np.exp(scale)), "logit_bias": bias}
    facts["tokenizer"] = tokenizer_facts(processor, folder)
    facts["image_processor"] = dict(processor.image_processor.config, resize_backend=getattr(args, "resize_backend", "pil"))
    return facts


def tokenizer_facts(processor, folder):
    """Tokenizer class, vocabulary and text rules, from the loaded tokenizer and tokenizer_config.json."""
    tok = processor.tokenizer
    facts = {}
    config = Path(folder) / "tokenizer_config.json"
    if config.is_file():
        raw = json.loads(config.read_text(encoding="utf-8"))
        facts["tokenizer_class"] = raw.get("tokenizer_class")
    for name in ("vocab_size", "lowercase", "pad_token_id", "eos_token_id"):
        value = getattr(tok, name, None)
        if value is not None and not callable(value):
            facts[name] = value
    return facts


def run_info(args):
    folder = checkpoint_folder(args)
    model, processor = load(args, folder)
    facts = model_facts(model, processor, folder, args)
    if args.json:
        print(json.dumps(facts, indent=2, default=str))
        return EXIT_OK
    for line in info_lines(facts):
        print(line)
    return EXIT_OK


STORAGE_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}
RESAMPLE = {2: "bilinear", 3: "bicubic", 0: "nearest", 1: "lanczos"}


def info_lines(f):
    """`info`'s human-readable page, one line per topic."""
    kind = {"naflex": "NaFlex: native aspect ratio, variable patch count", "fixres": "FixRes: fixed square resolution"}
    lines = [f"checkpoint    {f['checkpoint']}",
             f"model         {f['architecture'] or f['model_type']} (model_type {f['model_type']!r}; {kind[f['variant']]})"]  # fmt: skip
    if "vision" in f:
        v = f["vision"]
        grid = f"{v['position_grid']}x{v['position_grid']}" + (
            " (resized to each image's grid)" if "num_patches" in v else f", image {v['image_size']}x{v['image_size']} px")
        lines.append(f"vision        width {v['hidden_size']}, {plural(v['num_hidden_layers'], 'layer')} x {v['num_attention_heads']} heads, "
                     f"MLP {v['intermediate_size']}, patch {v['patch_size']} px, position grid {grid}")  # fmt: skip
    if "text" in f:
        t = f["text"]
        lines.append(f"text          width {t['hidden_size']}, {plural(t['num_hidden_layers'], 'layer')} x {t['num_attention_heads']} heads, "
                     f"MLP {t['intermediate_size']}, vocabulary {t['vocab_size']:,}, {t['max_position_embeddings']} positions, "
                     f"output {t['projection_size']}")  # fmt: skip
    p = dict(f["parameters"])
    total = p.pop("total")
    parts = [f"{name.replace('_model', '')} {count:,}" for name, count in p.items()]
    lines.append(f"parameters    {total:,} = " + " + ".join(parts) + (" + logit scale and bias 2" if "logits" in f else ""))
    w = f["weights"]
    stored = ", ".join(f"{STORAGE_NAMES.get(tag, tag)} x{n} tensors" for tag, n in w["stored_as"].items())
    lines.append(f"weights       {w['bytes'] / 1e6:,.1f} MB on disk ({stored}); computing in {w['compute_dtype']} on {w['backend']}")
    if "logits" in f:
        g = f["logits"]
        sign = "-" if g["logit_bias"] < 0 else "+"
        lines.append(f"logits        {g['exp_logit_scale']:.2f} * cos(image, text) {sign} {abs(g['logit_bias']):.2f}   "
                     f"(exp(logit_scale), logit_bias); probability = sigmoid(logit)")  # fmt: skip
    lines.append("tokenizer     " + tokenizer_line(f["tokenizer"]))
    lines.append("images        " + image_processor_line(f["image_processor"], f["variant"]))
    return lines


def tokenizer_line(t):
    rules = ["lowercases text" if t.get("lowercase") else "keeps case"]
    if t.get("eos_token_id") is not None:
        rules.append(f"appends EOS {t['eos_token_id']}")
    if t.get("pad_token_id") is not None:
        rules.append(f"pads with {t['pad_token_id']} to 64")
    return f"{t.get('tokenizer_class') or 'SentencePiece'} (tokenizer.model), {t.get('vocab_size', '?'):,} pieces; " + ", ".join(rules)


def image_processor_line(c, variant):
    if variant == "naflex":
        size = f"NaFlex, up to {c.get('max_num_patches')} patches of {c.get('patch_size')} px, aspect ratio kept"
    else:
        size = f"resized to {c['size']['width']}x{c['size']['height']}" if isinstance(c.get("size"), dict) else "FixRes"
    resample = RESAMPLE.get(c.get("resample"), c.get("resample"))
    return (f"{size}; {resample} resize ({c.get('resize_backend')} numerics), pixels * {c.get('rescale_factor', 0):.6g}, "
            f"mean {c.get('image_mean')}, std {c.get('image_std')}")  # fmt: skip


# ---------------------------------------------------------------- patches and attention pictures


def configure_picture(p, what):
    p.add_argument("image", nargs="?", metavar="IMAGE", help="an image file (default with the demo model: its demo image)")
    p.add_argument("-o", "--output", metavar="FILE.png", help=f"where to write the PNG (default: IMAGE's name + .{what}.png)")


def picture_paths(args, what):
    image = demo_image(args, [args.image] if args.image else [])[0]
    check_files_exist([image])
    output = args.output or f"{Path(image).stem}.{what}.png"
    if not output.lower().endswith(".png"):
        raise UsageError(f"--output {output}: the picture is a PNG; use a .png file name")
    return image, output


def run_patches(args):
    from .viz import patches_figure, patches_lines

    image, output = picture_paths(args, "patches")
    from .processor import load_processor

    folder = checkpoint_folder(args)
    config = load_config(folder)
    if args.max_num_patches is not None and config.variant != "naflex":
        raise UsageError(f"--max-num-patches applies to NaFlex checkpoints only; {folder} is a FixRes checkpoint")
    processor = load_processor(folder, resize_backend=args.resize_backend)
    figure, facts = patches_figure(processor, image, config.vision.patch_size, args.max_num_patches)
    figure.save(output)
    print(f"{image}:")
    for line in patches_lines(facts):
        print("  " + line)
    print(f"wrote {output} ({figure.width}x{figure.height} px)")
    return EXIT_OK


def run_attention(args):
    from .viz import attention_figure

    image, output = picture_paths(args, "attention")
    model, processor = load(args)
    figure, facts = attention_figure(model, processor, image, args.max_num_patches)
    figure.save(output)
    gh, gw = facts["spatial_shape"]
    print(f"{image}: MAP head attention over {gh}x{gw} = {facts['real_patches']} patches, {facts['heads']} heads")
    print(f"  (uniform attention would give every patch {1 / facts['real_patches']:.4f})")
    for name, low, high, (row, col) in facts["summary"]:
        print(f"  {name:>8}: weights {low:.4f} to {high:.4f}, peak at patch row {row}, column {col}")
    print(f"wrote {output} ({figure.width}x{figure.height} px)")
    return EXIT_OK


# ---------------------------------------------------------------- the parser and the error boundary

COMMANDS = (  # name, one-line help, configure(parser), run(args), whether images are involved
    ("classify", "zero-shot classification of images against text labels", configure_classify, run_classify, True),
    ("embed", "embed images (files, folders) into one .safetensors/.npz", configure_embed, run_embed, True),
    ("search", "find the embedded images that best match a text query", configure_search, run_search, True),
    ("info", "checkpoint facts: sizes, parameters, dtypes, tokenizer", configure_info, run_info, False),
    ("patches", "PNG of how an image is resized and cut into patches", lambda p: configure_picture(p, "patches"), run_patches, True),
    ("attention", "PNG of the MAP head's attention over an image's patches", lambda p: configure_picture(p, "attention"),
     run_attention, True),
)  # fmt: skip


EXAMPLES = {
    "classify": """examples:
  siglip2-ref classify                                   # demo model, demo image, demo labels
  siglip2-ref classify cat.jpg dog.png --labels cat dog "a red car"
  siglip2-ref classify photo.jpg --labels-file labels.txt --model google/siglip2-base-patch16-naflex --json""",
    "embed": """examples:
  siglip2-ref embed photos/ -o photos.safetensors          # every image under photos/, recursively
  siglip2-ref embed photos/ -o photos.safetensors --resume # continue an interrupted run
  siglip2-ref search photos.safetensors "a dog on a beach"
""",
    "search": """examples:
  siglip2-ref search photos.safetensors "a dog on a beach" --top-k 10
the model recorded in EMBEDDINGS is used unless --model is given""",
    "info": """examples:
  siglip2-ref info
  siglip2-ref info --model ~/checkpoints/siglip2-base-patch16-naflex --json""",
    "patches": """examples:
  siglip2-ref patches photo.jpg -o photo.patches.png
  siglip2-ref patches photo.jpg --max-num-patches 64   # a smaller NaFlex budget: coarser grid""",
    "attention": """examples:
  siglip2-ref attention photo.jpg -o photo.attention.png""",
}


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Help laid out as written (examples keep their lines), with room for the longest subcommand name."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=32)
        self._action_max_length = 20  # argparse measures subcommand names without their indent


def add_commands(subparsers):
    """Register this module's subcommands (the same hook other modules provide)."""
    for name, summary, configure, run, images in COMMANDS:
        parser = subparsers.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".",
                                       epilog=EXAMPLES.get(name), formatter_class=Formatter)  # fmt: skip
        configure(parser)
        add_model_options(parser, images=images)
        add_global_options(parser)
        parser.set_defaults(run=run)


def add_extension_commands(subparsers):
    """Subcommands from optional modules (e.g. the porter tools); a module that is not there is skipped."""
    for module_name in EXTENSIONS:
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name == module_name:
                continue
            warn(f"{module_name} could not be loaded ({e}); its subcommands are unavailable")
            continue
        module.add_commands(subparsers)


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=Formatter,
        description="SigLIP 2 in plain NumPy: zero-shot classification, image embeddings and search,\n"
        "and pictures of what the model sees. Runs offline; without --model it uses the small\n"
        "bundled demo model (it knows coloured shapes: 'red circle', 'blue star', ...).",
        epilog=f"Run '{PROG} COMMAND --help' for a command's options and examples.\n"
        f"First try: {PROG} classify    (the demo model on its demo image)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_global_options(parser, suppress=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    add_commands(subparsers)
    add_extension_commands(subparsers)
    return parser


def report(error, debug):
    """Print one clear error line (the traceback too with --debug)."""
    if debug:
        traceback.print_exception(error)
    message = str(error) or type(error).__name__
    if isinstance(error, FileNotFoundError) and error.filename and str(error.filename) not in message:
        message = f"{error.filename}: {message}"
    print(f"{PROG}: error: {message}", file=sys.stderr)


def main(argv=None):
    """Run the command line; returns the exit code (0 ok, 1 run-time error, 2 usage error, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or argparse's own usage errors (exit code 2)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    debug = getattr(args, "debug", False)
    try:
        return args.run(args)
    except UsageError as e:
        report(e, debug)
        print(f"(see '{PROG} {args.command} --help')", file=sys.stderr)
        return EXIT_USAGE
    except (CommandError, *RUNTIME_ERRORS) as e:
        report(e, debug)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError as e:
        report(MemoryError(f"out of memory ({e}); try a smaller --batch-size or --max-num-patches"), debug)
        return EXIT_RUNTIME
    except Exception as e:  # a bug: still one line, with a pointer to the traceback
        report(RuntimeError(f"internal error, {type(e).__name__}: {e} (rerun with --debug for the traceback)"), debug)
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
