"""What every subcommand shares: exit codes, the two error kinds, --model and friends, loading, progress.

A subcommand module (classify.py, embed.py, ...) defines NAME, SUMMARY, EXAMPLES, IMAGES, `configure(parser)`
that adds its own options and `run(args) -> exit code`; app.py lists the modules and adds these shared options.
"""

import argparse
import os
import sys
import time
from pathlib import Path

from ..checkpoint.folder import resolve_checkpoint

PROG = "siglip2-ref"
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a command whose reader closed the pipe
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jfif", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")


class UsageError(Exception):
    """Options that are missing or contradict each other (exit code 2)."""


class CommandError(Exception):
    """A request the command cannot carry out (exit code 1)."""


def read_text_file(flag, path):
    """The lines of a UTF-8 text file given to `flag`, or a CommandError naming the file and the bad byte."""
    if not os.path.isfile(path):
        raise CommandError(f"{flag} {path}: no such file")
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise CommandError(f"{flag} {path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}, line {line}); "
                           "save the file as UTF-8") from None
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return lines[:-1] if lines[-1] == "" else lines  # as iterating over the file in text mode


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


def add_model_options(parser, images=True, dtype_default="float32"):
    """--model and friends, shared by every subcommand (the porter tools compute in float64 unless asked)."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", metavar="PATH_OR_ID",
                       help="checkpoint folder, or a hub id such as google/siglip2-base-patch16-naflex already in the "
                            "local Hugging Face cache (nothing is downloaded); default: the bundled NaFlex demo model")  # fmt: skip
    group.add_argument("--backend", choices=("numpy", "cupy"), default="numpy", help="array library (default: numpy)")
    group.add_argument("--dtype", choices=("float32", "float64", "float16"), default=dtype_default,
                       help=f"compute dtype (default: {dtype_default})")  # fmt: skip
    group.add_argument("--quantize", choices=("int8", "int4"),
                       help="quantize the Linear weights at load time (docs/quantization.md); a folder written by "
                            "`siglip2-ref quantize` is read quantized without it")  # fmt: skip
    if images:
        group.add_argument("--resize-backend", choices=("pil", "torchvision"), default="pil",
                           help="bit-exact resize of transformers' PIL (default) or torchvision image processors")  # fmt: skip
        group.add_argument("--max-num-patches", type=positive_int, metavar="N",
                           help="NaFlex patch budget per image (default: the checkpoint's, 256 for official models)")  # fmt: skip


def demo():
    from .. import demo as package

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
    from ..model.model import load_model
    from ..preprocess.processor import load_processor

    folder = folder or checkpoint_folder(args)
    model = load_model(folder, backend=args.backend, dtype=args.dtype, quantize=getattr(args, "quantize", None))
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


def score_text(p):
    """A probability in 7 characters: 0.9146, or 3.2e-07 when four decimals would show 0.0000."""
    return f"{p:7.4f}" if p >= 5e-5 or p == 0 else f"{p:7.1e}"


def configure_picture(p, what):
    p.add_argument("image", nargs="?", metavar="IMAGE", help="an image file (default with the demo model: its demo image)")
    p.add_argument("-o", "--output", metavar="FILE.png", help=f"where to write the PNG (default: IMAGE's name without its folder and suffix + .{what}.png, "
                        "in the current folder)")


def picture_paths(args, what):
    image = demo_image(args, [args.image] if args.image else [])[0]
    check_files_exist([image])
    output = args.output or f"{Path(image).stem}.{what}.png"
    if not output.lower().endswith(".png"):
        raise UsageError(f"--output {output}: the picture is a PNG; use a .png file name")
    return image, output
