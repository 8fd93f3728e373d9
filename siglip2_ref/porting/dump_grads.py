"""Gradient dumps for porters: every forward stage plus every `grad.*` stage of one batch, in the dump format.

    python -m siglip2_ref.porting.dump_grads golden/grads/naflex_grad_f64.safetensors -o ours.safetensors
    python -m siglip2_ref.porting.dump_grads golden/grads/naflex_grad_f64.safetensors --as-dump -o autograd.safetensors
    siglip2-ref compare ours.safetensors autograd.safetensors      # stage by stage, first divergent gradient named

The first form runs this package (the golden's checkpoint, or `--model`) on the inputs stored in a gradient
golden; `--as-dump` rewrites the golden itself (torch autograd's numbers) as a dump, so both sides compare with
the porter tools. Your port writes the same names (docs/stages.md) to compare against either.
Attention key-bias gradients (`*.k_proj.bias`) are left out of both: they are zero by construction (softmax
ignores a constant added to every key) and hold only rounding noise, which no relative tier can judge.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..backend import to_numpy
from ..model.model import load_model
from .dump import INPUT_NAMES, make_dump, write_dump
from .stages import gradient_stages

GOLDEN_CHECKPOINTS = Path(__file__).resolve().parents[2] / "golden" / "model" / "checkpoints"


def judged(stages):
    """The stages without the identically-zero key-bias gradients (see the module docstring)."""
    return {k: v for k, v in stages.items() if not k.endswith("k_proj.bias")}


def read_golden(path):
    """(meta, arrays) of a golden/grads file."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    try:
        with safe_open(str(path), "np") as f:
            meta = json.loads((f.metadata() or {}).get("meta", "null"))
        arrays = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types; json its own
        raise ValueError(f"{path}: not a readable safetensors file with JSON metadata ({type(e).__name__}: {e})") from None
    needed = ("input.input_ids", "input.pixel_values", "loss")
    if not isinstance(meta, dict) or "checkpoint" not in meta or not all(k in arrays for k in needed):
        raise ValueError(f"{path}: not a gradient golden case (expected meta with a 'checkpoint' and tensors {list(needed)}, "
                         "grad.*); see golden/README.md")  # fmt: skip
    return meta, arrays


def gradient_dump(model, arrays, devices=1):
    """(stages, manifest): make_dump's forward stages and manifest, plus `loss` and every gradient stage."""
    inputs = {k: np.asarray(v) for k, v in arrays.items() if k in INPUT_NAMES}
    stages, manifest = make_dump(model, arrays=inputs, return_loss=True, attentions=False)
    grads = gradient_stages(model, **inputs, devices=devices)
    stages |= {k: np.asarray(to_numpy(v)) for k, v in grads.items()}
    manifest["call"]["gradients"] = True
    return judged(stages), manifest


def golden_as_dump(meta, arrays, reference_manifest):
    """The golden's autograd numbers under the dump format (manifest taken from a run on the same inputs)."""
    stages = {f"{'text' if k in ('input.input_ids', 'input.attention_mask') else 'vision'}.{k[6:]}": v
              for k, v in arrays.items() if k.startswith("input.")}  # fmt: skip
    stages |= {k: v for k, v in arrays.items() if not k.startswith("input.")}
    manifest = dict(reference_manifest, producer=f"{meta['generator']} (torch {meta['torch']}, transformers {meta['transformers']})",
                    precision={"dtype": meta["dtype"], "emulation": None, "float32_rounded": []})  # fmt: skip
    return judged(stages), manifest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("golden", type=Path, help="a golden/grads/*.safetensors file (its inputs are used)")
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--model", help="checkpoint folder (default: the golden's own tiny checkpoint)")
    parser.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    parser.add_argument("--as-dump", action="store_true", help="write the golden's autograd numbers as a dump instead")
    args = parser.parse_args(argv)
    try:
        meta, arrays = read_golden(args.golden)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    model = load_model(args.model or GOLDEN_CHECKPOINTS / meta["checkpoint"], dtype=args.dtype, fast=False)
    stages, manifest = gradient_dump(model, {k[6:]: v for k, v in arrays.items() if k.startswith("input.")})
    if args.as_dump:
        stages, manifest = golden_as_dump(meta, arrays, manifest)
    write_dump(args.out, stages, manifest)
    print(f"wrote {args.out}: {len(stages)} stages ({sum(k.startswith('grad.') for k in stages)} gradients)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
