"""Verification against the transformers goldens: per-stage errors, as a table a person can read.

`python -m siglip2_ref.porting.verify golden/model` (a checkout's golden folder) runs every golden case (golden/README.md) through this
implementation and prints, per case and stage, the stage-relative error, the tier it must meet and a verdict.
The golden tests call the same functions.
"""

import json
import sys
from pathlib import Path

from ..model.model import load_model
from .stages import run_stages
from .tolerances import TIERS, measure, stage_tier

CALL_KWARGS = ("interpolate_pos_encoding", "return_loss")


def case_names(golden):
    return [c["case"] for c in json.loads((Path(golden) / "manifest.json").read_text())["cases"]]


def load_case(name, golden):
    """(meta, inputs, expected stages, checkpoint folder) of one golden case."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    path = Path(golden) / "cases" / f"{name}.safetensors"
    with safe_open(path, "np") as f:
        meta = json.loads(f.metadata()["meta"])
    tensors = load_file(path)
    inputs = {k.removeprefix("input."): v for k, v in tensors.items() if k.startswith("input.")}
    expected = {k: v for k, v in tensors.items() if not k.startswith("input.")}
    return meta, inputs, expected, Path(golden) / "checkpoints" / meta["checkpoint"]


def golden_tier(stage, meta):
    """The tolerance tier of one stage in one golden case; docs/parity.md gives the reasons."""
    # transformers' float64 NaFlex path resizes position embeddings in float32, so every vision stage
    # after it (and everything joint) carries float32 rounding; eager attention rounds softmax to float32.
    rounded_positions = meta["checkpoint"].startswith("naflex") and not stage.startswith("text.")
    rounded_softmax = meta["attn_implementation"] == "eager" and ".attentions." in stage
    return stage_tier(stage, meta["dtype"], rounded_to_float32=rounded_positions or rounded_softmax)


def run_case(name, golden, **load_kwargs):
    """[(stage, Diff, tier)] for every expected stage of a case, plus our stages for further checks."""
    meta, inputs, expected, folder = load_case(name, golden)
    model = load_model(folder, dtype=meta["dtype"], **load_kwargs)
    got = run_stages(model, **inputs, **{k: v for k, v in meta["call"].items() if k in CALL_KWARGS})
    rows = []
    for stage, desired in expected.items():
        actual = got.get(stage)
        if actual is not None and actual.size == desired.size == 1:
            actual = actual.reshape(desired.shape)  # scalar loss vs a stored 1-element array
        rows.append((stage, None if actual is None or actual.shape != desired.shape else measure(actual, desired), golden_tier(stage, meta)))
    return meta, rows, got, expected


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m siglip2_ref.porting.verify GOLDEN_MODEL_FOLDER   (golden/model in a checkout)", file=sys.stderr)
        return 2
    golden = Path(args[0])
    failures = 0
    print(f"{'case':<22} {'dtype':<8} {'stage':<32} {'rel. error':>10}  {'tier':<20} verdict")
    for name in case_names(golden):
        meta, rows, _, _ = run_case(name, golden)
        for stage, diff, tier in rows:
            ok = diff is not None and diff.max_rel <= TIERS[tier].rel
            failures += not ok
            err = "missing" if diff is None else f"{diff.max_rel:.2e}"
            print(f"{name:<22} {meta['dtype']:<8} {stage:<32} {err:>10}  {tier + f' ({TIERS[tier].rel:g})':<20} {'ok' if ok else 'FAIL'}")
    print(f"\n{failures} stage(s) outside tolerance" if failures else "\nall stages within tolerance")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
