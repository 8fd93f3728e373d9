"""`siglip2-ref export-goldens`: a golden bundle (standard inputs and every stage) for a checkpoint."""

import shlex
from pathlib import Path

from ..porting.bundle import export_goldens
from .options import EXIT_OK, UsageError, checkpoint_folder

NAME = "export-goldens"
SUMMARY = "write a golden bundle (standard inputs and every stage) for a checkpoint"
IMAGES = False  # takes --resize-backend and --max-num-patches
EXAMPLES = """examples:
  siglip2-ref export-goldens --model CKPT -o siglip2_goldens/"""
PORTER = True


def configure(p):
    p.add_argument("-o", "--output", required=True, metavar="FOLDER", help="where to write the bundle")
    p.add_argument("--attentions", action="store_true", help="also store every layer's attention weights (large)")


def run(args):
    if getattr(args, "quantize", None):
        raise UsageError("goldens are the float truth; --quantize does not apply (dump a quantized run with `dump --quantize`)")

    out = Path(args.output)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--output {out} exists and is not empty; give a new folder")
    folder = checkpoint_folder(args)
    command = f"siglip2-ref export-goldens --model {shlex.quote(str(folder))} --dtype {args.dtype} -o {shlex.quote(str(out))}"
    bundle = export_goldens(folder, out, args.dtype, args.attentions, command=command + (" --attentions" if args.attentions else ""))
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out}: {len(bundle['cases'])} cases, {len(bundle['images'])} images, {len(bundle['texts'])} texts, "
          f"{total / 2**20:.1f} MiB (see {out / 'README.md'})")  # fmt: skip
    return EXIT_OK
