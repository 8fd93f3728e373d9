"""The `siglip2-ref` command line (also `python -m siglip2_ref`): the parser and the error boundary.

    siglip2-ref classify                                  # the bundled demo model on its demo image
    siglip2-ref classify photo.jpg --labels cat dog "a red car" --model google/siglip2-base-patch16-naflex
    siglip2-ref embed photos/ -o photos.safetensors       # then: siglip2-ref search photos.safetensors "a beach"
    siglip2-ref info | patches IMAGE | attention IMAGE
    siglip2-ref dump | compare | export-goldens           # the porter tools (docs/porting.md)
    siglip2-ref selfcheck                                 # are the numbers right here? (docs/selfcheck.md)

Each subcommand is one module of this package (options.py says what it defines); `COMMANDS` lists them in
the order `--help` shows. Errors: exit code 2 for usage (bad or conflicting options), 1 for everything that
fails at run time; one line `siglip2-ref: error: ...` and no traceback unless --debug.
Command modules import the library's heavier parts (NumPy, the model, Pillow) inside their `run`, so that
`siglip2-ref --help` and usage errors answer at once.
"""

import argparse
import os
import sys
import traceback

from .. import __version__
from ..errors import CheckpointError, CheckpointNotFound, ConfigError, ImageInputError, InputError
from . import attention, classify, compare, dump, embed, export_goldens, info, patches, quantize, search, selfcheck
from .options import (EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_RUNTIME, EXIT_USAGE, PROG, CommandError, UsageError, add_global_options,
                      add_model_options)

COMMANDS = (classify, embed, search, info, patches, attention, dump, compare, export_goldens, selfcheck, quantize)
RUNTIME_ERRORS = (CheckpointNotFound, ConfigError, CheckpointError, InputError, ImageInputError, OSError, ValueError,
                  RuntimeError)  # fmt: skip; ValueError/RuntimeError: preprocessing settings, backend


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Help laid out as written (examples keep their lines), with room for the longest subcommand name."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=32)
        self._action_max_length = 20  # argparse measures subcommand names without their indent


def add_command(subparsers, module):
    """One subcommand: its own options, then the shared ones (porter commands default to float64, the truth)."""
    parser = subparsers.add_parser(module.NAME, help=module.SUMMARY, description=module.SUMMARY[0].upper() + module.SUMMARY[1:] + ".",
                                   epilog=module.EXAMPLES, formatter_class=Formatter)  # fmt: skip
    module.configure(parser)
    porter = getattr(module, "PORTER", False)
    add_model_options(parser, images=module.IMAGES, dtype_default="float64" if porter else "float32")
    add_global_options(parser)
    parser.set_defaults(run=module.run)


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
    for module in COMMANDS:
        add_command(subparsers, module)
    return parser


def report(error, debug, cause=None):
    """Print one clear error line (with --debug, first the traceback of `cause`, else of `error`)."""
    if debug:
        traceback.print_exception(cause or error)
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
        code = args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the boundary, not at interpreter exit
        return code
    except BrokenPipeError:  # the reader of stdout went away (`siglip2-ref info --json | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the final flush at exit cannot fail
        return EXIT_BROKEN_PIPE
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
        report(RuntimeError(f"internal error, {type(e).__name__}: {e}" + ("" if debug else " (rerun with --debug for the traceback)")), debug, cause=e)
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
