"""`siglip2-ref dump`: every named stage of a run, written to one safetensors file (docs/porting.md)."""

import os
import shlex
from pathlib import Path

from ..porting.conventions import Conventions
from ..porting.dump import INPUT_NAMES, make_dump, write_dump
from .options import EXIT_OK, CommandError, UsageError, check_files_exist, checkpoint_folder, read_text_file

NAME = "dump"
SUMMARY = "run a model on images and texts and write every named stage to one .safetensors"
IMAGES = False  # takes --resize-backend and --max-num-patches
EXAMPLES = """examples:
  siglip2-ref dump cat.jpg --text "a photo of a cat" --model CKPT -o ours.safetensors
  siglip2-ref dump cat.jpg --text cat --image-resize big_vision --text-convention big_vision -o bv.safetensors
  siglip2-ref dump --inputs arrays.safetensors --model CKPT --attentions -o ours.safetensors"""
PORTER = True  # dumps are the truth: float64 unless --dtype says otherwise


def add_convention_options(parser):
    group = parser.add_argument_group("conventions (docs/conventions.md; defaults: transformers >= 5.20, Pillow resize)")
    group.add_argument("--image-resize", choices=("pil", "torchvision", "big_vision"), default="pil")
    group.add_argument("--text-convention", choices=("hf", "big_vision", "open_clip"), default="hf")
    group.add_argument("--position-resize", choices=("antialiased-bilinear", "bicubic"), default="antialiased-bilinear")
    group.add_argument("--emulate", metavar="FORMAT[:POINTS]",
                       help="round the float32 path to bfloat16 or float16 at weights,activations,scores (default: all)")  # fmt: skip


def configure(p):
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files")
    p.add_argument("--text", action="append", default=None, metavar="TEXT", help="a text (repeat for several)")
    p.add_argument("--texts-file", metavar="FILE", help="texts, one per line")
    p.add_argument("--inputs", metavar="FILE.safetensors",
                   help="model inputs as arrays (input_ids, pixel_values, ...; a golden case's input.* works) instead of raw inputs")  # fmt: skip
    p.add_argument("-o", "--output", required=True, metavar="FILE.safetensors", help="where to write the dump")
    p.add_argument("--attentions", action="store_true", help="also store every layer's attention weights (large)")
    p.add_argument("--max-num-patches", type=int, metavar="N", help="NaFlex patch budget (default: the checkpoint's)")
    p.add_argument("--interpolate-pos-encoding", action="store_true", help="FixRes inputs at another resolution")
    p.add_argument("--return-loss", action="store_true", help="also compute the sigmoid loss (square batches)")
    add_convention_options(p)


def dump_command(args):
    """The command line that reproduces a dump, rebuilt from the parsed options."""
    words = ["siglip2-ref", "dump", *args.images]
    for text in args.text or ():
        words += ["--text", text]
    options = [("--texts-file", args.texts_file), ("--inputs", args.inputs), ("--model", args.model),
               ("--dtype", args.dtype), ("--quantize", getattr(args, "quantize", None)), ("--max-num-patches", args.max_num_patches), ("--emulate", args.emulate),
               ("--image-resize", args.image_resize if args.image_resize != "pil" else None),
               ("--text-convention", args.text_convention if args.text_convention != "hf" else None),
               ("--position-resize", args.position_resize if args.position_resize != "antialiased-bilinear" else None)]  # fmt: skip
    words += [w for flag, value in options if value is not None for w in (flag, str(value))]
    words += [flag for flag in ("--attentions", "--interpolate-pos-encoding", "--return-loss") if getattr(args, flag[2:].replace("-", "_"))]
    return " ".join(shlex.quote(w) for w in words + ["-o", args.output])


def load_for_dump(args):
    """(model, processor) for --model (default: the bundled demo), emulated when --emulate asks."""
    from ..porting.emulate import emulated_model, parse_emulation
    from ..model.model import load_model
    from ..preprocess.processor import load_processor

    folder = checkpoint_folder(args)
    try:
        emulation = parse_emulation(getattr(args, "emulate", None))
    except ValueError as e:
        raise UsageError(f"--emulate: {e}") from None
    if emulation is not None and getattr(args, "quantize", None):
        raise UsageError("--emulate rounds float weights; it cannot be combined with --quantize")
    if emulation is not None and args.dtype != "float32":
        args.dtype = "float32"  # emulation rounds the float32 path
    model = load_model(folder, backend=args.backend, dtype=args.dtype, quantize=getattr(args, "quantize", None))
    if emulation is not None:
        model = emulated_model(model, emulation)
    has_files = any((Path(folder) / f).is_file() for f in ("tokenizer.model", "preprocessor_config.json"))
    return model, (load_processor(folder) if has_files else None)


def read_inputs_file(path):
    """Model input arrays from a safetensors file (keys with or without the golden files' `input.` prefix)."""
    from safetensors.numpy import load_file


    if not os.path.isfile(path):
        raise CommandError(f"--inputs {path}: no such file")
    arrays = {k.removeprefix("input."): v for k, v in load_file(path).items()}
    arrays = {k: v for k, v in arrays.items() if k in INPUT_NAMES}
    if not arrays:
        raise CommandError(f"--inputs {path}: no model inputs in it (expected some of {', '.join(INPUT_NAMES)})")
    return arrays


def read_texts(args):

    texts = list(args.text or [])
    if args.texts_file:
        texts += read_text_file("--texts-file", args.texts_file)
    return texts or None


def run(args):

    texts = read_texts(args)
    if args.inputs and (args.images or texts):
        raise UsageError("--inputs replaces IMAGE and --text; give one or the other")
    if not (args.inputs or args.images or texts):
        raise UsageError("nothing to dump: give IMAGE files, --text, or --inputs")
    if not args.output.endswith(".safetensors"):
        raise UsageError(f"--output {args.output}: a dump is a .safetensors file")
    check_files_exist(args.images)
    conventions = Conventions(args.image_resize, args.text_convention, args.position_resize)
    model, processor = load_for_dump(args)
    if processor is None and not args.inputs:
        raise UsageError(f"{model.path} has no tokenizer.model / preprocessor_config.json: pass model inputs with --inputs")
    if args.max_num_patches is not None and model.config.variant != "naflex":
        raise UsageError("--max-num-patches applies to NaFlex checkpoints only")
    arrays = read_inputs_file(args.inputs) if args.inputs else None
    stages, manifest = make_dump(model, processor, args.images or None, texts, arrays, conventions, args.attentions,
                                 args.max_num_patches, args.interpolate_pos_encoding, args.return_loss, dump_command(args))  # fmt: skip
    write_dump(args.output, stages, manifest)
    size = os.path.getsize(args.output)
    print(f"wrote {args.output}: {len(stages)} stages, {size / 2**20:.1f} MiB, {model.dtype}"
          + (f", emulating {manifest['precision']['emulation']}" if manifest["precision"]["emulation"] else ""))  # fmt: skip
    return EXIT_OK
