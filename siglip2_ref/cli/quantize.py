"""`siglip2-ref quantize`: write a checkpoint's Linear weights as int8 or int4 into a new folder (docs/quantization.md)."""

from pathlib import Path

from .options import EXIT_OK, UsageError, checkpoint_folder, positive_int

NAME = "quantize"
SUMMARY = "write a checkpoint with int8 or int4 Linear weights to a new folder"
IMAGES = False  # takes --resize-backend and --max-num-patches
EXAMPLES = """examples:
  siglip2-ref quantize siglip2-base-patch16-naflex -o siglip2-base-int8 --bits 8
  siglip2-ref quantize siglip2-large-patch16-512 -o large-int4 --bits 4
  siglip2-ref classify cat.jpg --labels cat dog --model large-int4     # read quantized, as stored"""


def configure(p):
    from ..model.quant import DEFAULT_GROUP_SIZE

    p.add_argument("source", nargs="?", metavar="MODEL", help="the float checkpoint folder or cached hub id (default: --model, or the demo)")
    p.add_argument("-o", "--output", required=True, metavar="FOLDER", help="the new folder (must not hold a checkpoint)")
    p.add_argument("--bits", type=int, choices=(8, 4), required=True, help="8: per output channel; 4: group-wise")
    p.add_argument("--group-size", type=positive_int, default=DEFAULT_GROUP_SIZE, metavar="G",
                   help=f"int4 inputs per scale (default: {DEFAULT_GROUP_SIZE}, chosen by measurement)")  # fmt: skip


def run(args):
    from ..checkpoint.weights import weight_files
    from ..model.quantized_weights import quantize_checkpoint

    if args.source and args.model and args.source != args.model:
        raise UsageError(f"MODEL {args.source} and --model {args.model} disagree; give one")
    if args.quantize:
        raise UsageError("--quantize applies to commands that run a model; here use --bits")
    if args.group_size % 2 and args.bits == 4:
        raise UsageError(f"--group-size {args.group_size}: int4 packs two codes per byte, so the group size must be even")
    args.model = args.source or args.model
    source = checkpoint_folder(args)
    out, block = quantize_checkpoint(source, Path(args.output), args.bits, args.group_size)
    before = sum(p.stat().st_size for p in weight_files(source))
    after = (out / "model.safetensors").stat().st_size
    group = f", group size {block['group_size']}" if args.bits == 4 else ", per output channel"
    print(f"wrote {out}: {len(block['quantized'])} Linear weights as int{args.bits}{group}; "
          f"weights {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB ({after / before:.2f}x)")
    return EXIT_OK
