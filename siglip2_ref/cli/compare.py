"""`siglip2-ref compare`: two stage dumps in pipeline order, and the first stage where they diverge."""

import json
from pathlib import Path

from ..porting.compare import compare_dumps, explain_first, first_divergence, format_table
from ..porting.dump import INPUT_NAMES, make_dump, read_dump
from ..porting.stages import pipeline_order
from .dump import load_for_dump
from .options import EXIT_OK, EXIT_RUNTIME, CommandError, UsageError

NAME = "compare"
SUMMARY = "compare two stage dumps in pipeline order and name the first divergent stage"
IMAGES = False  # takes --resize-backend and --max-num-patches
EXAMPLES = """examples:
  siglip2-ref compare yours.safetensors ours.safetensors
  siglip2-ref compare yours.safetensors --model CKPT     # re-run your dump's inputs here
exit status: 0 when every common stage is within its tier, 1 on divergence or error"""
PORTER = True


def configure(p):
    p.add_argument("candidate", metavar="A", help="the dump to check (e.g. from your port)")
    p.add_argument("reference", nargs="?", metavar="B",
                   help="the reference dump; without it, siglip2-ref re-runs A's own inputs on --model "
                        "(default: the checkpoint A's manifest names, when it is here)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def reference_from_inputs(candidate, args):
    """Our dump of the candidate's own raw inputs (texts in its manifest, `image.rgb.k` stages) or input arrays."""

    stages, manifest = candidate
    model, processor = load_for_dump(args)
    inputs = manifest.get("inputs") or {}
    call = manifest.get("call") or {}
    kwargs = dict(conventions=manifest.get("conventions"), attentions=bool(call.get("attentions")),
                  interpolate_pos_encoding=bool(call.get("interpolate_pos_encoding")), return_loss=bool(call.get("return_loss")))  # fmt: skip
    rgb = [stages[k] for k in pipeline_order(s for s in stages if s.startswith("image.rgb."))]
    if inputs.get("texts") is not None or rgb:
        if processor is None:
            raise CommandError(f"{model.path} has no tokenizer/preprocessor files to preprocess A's raw inputs")
        return make_dump(model, processor, rgb or None, inputs.get("texts"), max_num_patches=inputs.get("max_num_patches"), **kwargs)
    arrays = {name.split(".", 1)[1]: v for name, v in stages.items() if name.split(".", 1)[-1] in INPUT_NAMES}
    if not arrays:
        raise CommandError("A holds neither raw inputs (manifest texts, image.rgb.k) nor model input arrays to re-run")
    return make_dump(model, arrays=arrays, **kwargs)


def recorded_checkpoint(candidate, args):
    """Without B and --model: the checkpoint A's manifest names, when that folder is here."""
    recorded = ((candidate[1].get("model") or {}).get("path")) or ""
    if recorded and (Path(recorded) / "config.json").is_file():
        return recorded
    raise UsageError(f"{args.candidate} names the checkpoint {recorded or '(none)'}, which is not here: "
                     "give the reference dump B, or --model with the checkpoint to re-run A's inputs on")  # fmt: skip


def run(args):
    candidate = read_dump(args.candidate)
    if args.reference is None and args.model is None:
        args.model = recorded_checkpoint(candidate, args)
    reference = read_dump(args.reference) if args.reference else reference_from_inputs(candidate, args)
    results = compare_dumps(candidate, reference)
    first = first_divergence(results)
    if args.json:
        print(json.dumps({"first_divergent_stage": first.stage if first else None,
                          "stages": [r.__dict__ | {"shape": list(r.shape)} for r in results]}, indent=1))  # fmt: skip
    else:
        print(format_table(results))
        compared = sum(r.verdict in ("ok", "DIVERGED") for r in results)
        print(f"\n{compared} stages compared, {sum(r.diverged for r in results)} diverged")
        print(explain_first(first, reference[0]) if first else "no divergence: every common stage is within its tier")
        for label, (_, manifest) in (("A", candidate), ("B", reference)):
            print(f"{label} was made with: {manifest.get('command') or manifest.get('producer')}")
    return EXIT_RUNTIME if first else EXIT_OK
