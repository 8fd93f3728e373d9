"""`siglip2-ref selfcheck`: published numbers, internal consistency and the environment, in one report."""

import json
import os

from .options import EXIT_OK, EXIT_RUNTIME, CommandError, UsageError, checkpoint_folder

NAME = "selfcheck"
SUMMARY = "check that this install, checkpoint and device give the right numbers"
IMAGES = False  # takes --resize-backend and --max-num-patches
EXAMPLES = """examples:
  siglip2-ref selfcheck                                   # the bundled demo model
  siglip2-ref selfcheck --model google/siglip2-base-patch16-naflex
  siglip2-ref selfcheck --model CKPT --backend cupy --json
checks: published numbers (transformers' integration tests, docs/selfcheck.md), float32 fast path vs readable
path, float32 vs float64, and with --backend cupy the GPU in float32 and float16 vs NumPy float64
exit status: 0 when no check fails (skipped checks say why), 1 when one does"""


def configure(p):
    p.add_argument("--image", metavar="FILE", help="the test image a published record needs that cannot be shipped "
                   "(the SigLIP 1 test's COCO val2017 000000039769.jpg)")  # fmt: skip
    p.add_argument("--published", metavar="NAME", help="apply this record of expected values whatever the folder is "
                   "called (names in docs/selfcheck.md)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args):
    from ..porting.published import BY_NAME
    from ..porting.selfcheck import selfcheck

    if args.dtype != "float32":
        raise UsageError("selfcheck runs its own dtypes (float32 and float64; float16 on cupy): --dtype does not apply")
    if args.published is not None and args.published not in BY_NAME:
        raise UsageError(f"--published {args.published}: unknown; known: {', '.join(BY_NAME)}")
    if args.image is not None and not os.path.isfile(args.image):
        raise CommandError(f"--image {args.image}: no such file")
    folder = checkpoint_folder(args)
    report = selfcheck(args.model if args.model is not None else folder, backend=args.backend, image=args.image,
                       published=args.published)  # fmt: skip
    print(json.dumps(report.as_dict(), indent=1, default=str) if args.json else report.format())
    return EXIT_OK if report.ok else EXIT_RUNTIME
