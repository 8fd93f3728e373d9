"""Expected outputs for named checkpoints, and the check of one record against this package.

Two kinds of record share one code path (`check_record`):

- **published**: the values transformers' own integration tests assert for an official checkpoint, with the
  test's own tolerance (`torch.testing.assert_close(rtol, atol)`), copied with their source file and commit;
- **transformers reference**: every stage transformers 5.24 computes for a bundled demo model on the same
  inputs (golden/make_selfcheck.py writes `demo/expected/<variant>.safetensors`), under the stage tiers.

The SigLIP 2 test draws its images (a blue circle with a green border on red, three sizes); `circle_images`
draws the same pictures, so that check runs anywhere. The SigLIP 1 test uses a COCO photograph, which this
package may not ship: that record applies only when the user passes the photograph (`--image`).
docs/selfcheck.md lists the records.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .compare import compare_stage
from .stages import pipeline_order

CIRCLE_TEXTS = ("circle", "ellipsoid", "blue circle on red background", "blue circle with green border on red background",
                "green circle on red background", "a dog", "a blue dog with a green border on a red background")  # fmt: skip
CIRCLE_SIZES = ((224, 224), (1024, 1024), (224, 1024))  # (height, width)
EXPECTED_DIR = Path(__file__).resolve().parent.parent / "demo" / "expected"


@dataclass(frozen=True)
class Record:
    name: str  # the checkpoint it is for: a hub id, or "demo-naflex" / "demo-fixres"
    kind: str  # "published" or "transformers reference"
    source: str  # where the numbers come from: file, test, commit, transformers version
    images: str  # "circles" (drawn here) or "user" (the file the user passes, described in `image_note`)
    texts: tuple
    expected: dict = field(default_factory=dict)  # {stage: nested list}; empty: read from `expected_file`
    expected_file: str = ""  # a stage dump next to the package (transformers reference records)
    rtol: float = None  # the published tolerance; None: the stage tiers of porting/tolerances.py
    atol: float = None
    resize_backend: str = "pil"
    config: dict = field(default_factory=dict)  # facts a checkpoint must have for the record to apply
    image_note: str = ""
    note: str = ""


RECORDS = (
    Record(
        name="google/siglip2-base-patch16-naflex", kind="published",
        source="huggingface/transformers tests/models/siglip2/test_modeling_siglip2.py, "
               "Siglip2ModelIntegrationTest.test_inference (file at commit 01ae98ae2414210efd0d9ac1ffe78ff21588f1f7; "
               "later versions keep these values as the ('cuda', None) expectation), transformers 5.x",
        images="circles", texts=CIRCLE_TEXTS, rtol=1e-3, atol=1e-3, resize_backend="torchvision",
        expected={"logits_per_text": [
            [1.0195, -0.0280, -1.4468], [-4.5395, -6.2269, -1.5667], [4.1757, 5.0358, 3.5159],
            [9.4264, 10.1879, 6.3353], [2.4409, 3.1058, 4.5491], [-12.3230, -13.7355, -13.4632],
            [1.1520, 1.1687, -1.9647]]},
        config={"variant": "naflex", "hidden_size": 768, "num_hidden_layers": 12, "patch_size": 16},
        note="measured by transformers on a CUDA GPU; the test's processor is Siglip2Processor.from_pretrained with "
             "transformers' default (torchvision) image back-end, which resize_backend='torchvision' reproduces. An "
             "earlier version of the file asserted other values ([1.0775, 0.0974, -1.7726], ...) for the same test.",
    ),
    Record(
        name="google/siglip-base-patch16-224", kind="published",
        source="huggingface/transformers tests/models/siglip/test_modeling_siglip.py, "
               "SiglipModelIntegrationTest.test_inference (file at commit 01080c629600d4ff3121446bb4f4a2e240c2cf41)",
        images="user", texts=("a photo of 2 cats", "a photo of 2 dogs"), rtol=1e-3, atol=1e-3,
        expected={"logits_per_image": [[-0.7567, -10.3354]], "probabilities": [[3.1937e-01, 3.2463e-05]]},
        config={"variant": "fixres", "hidden_size": 768, "num_hidden_layers": 12, "patch_size": 16},
        image_note="COCO val2017 000000039769.jpg (two cats on a sofa; COCO's licence terms: not shipped here)",
        note="SigLIP 1: its SiglipTokenizer (T5-style SentencePiece) is not implemented by this package, so the "
             "check reports why it cannot run even when the image is given.",
    ),
    Record(
        name="demo-naflex", kind="transformers reference", images="circles", texts=CIRCLE_TEXTS,
        source="transformers 5.24.0, torch 2.13.0 (CPU, float32, eager) via golden/make_selfcheck.py",
        expected_file="naflex.safetensors", config={"variant": "naflex"},
    ),
    Record(
        name="demo-fixres", kind="transformers reference", images="circles", texts=CIRCLE_TEXTS,
        source="transformers 5.24.0, torch 2.13.0 (CPU, float32, eager) via golden/make_selfcheck.py",
        expected_file="fixres.safetensors", config={"variant": "fixres"},
    ),
)  # fmt: skip
BY_NAME = {r.name: r for r in RECORDS}


def circle_images():
    """The three pictures of the SigLIP 2 integration test: a blue disc with a green rim on red, at three sizes."""
    from PIL import Image, ImageDraw

    images = []
    for height, width in CIRCLE_SIZES:
        image = Image.new("RGB", (width, height), color="red")
        cx, cy = width // 2, height // 2
        r = min(cx, cy) // 8 * 7
        ImageDraw.Draw(image).ellipse((cx - r, cy - r, cx + r, cy + r), fill="blue", outline="green", width=width // 20)
        images.append(image)
    return images


def demo_record_name(folder):
    """'demo-naflex' / 'demo-fixres' when `folder` is a bundled demo model, else None."""
    from ..demo import DEMO_FIXRES, DEMO_NAFLEX

    here = os.path.realpath(folder)
    return next((f"demo-{v}" for v, p in (("naflex", DEMO_NAFLEX), ("fixres", DEMO_FIXRES)) if os.path.realpath(p) == here), None)


def matching_records(folder, given=None):
    """The records that name this checkpoint: by the --model id given, the folder's name, or the hub cache path."""
    demo = demo_record_name(folder)
    if demo:
        return [BY_NAME[demo]]
    parts = Path(folder).resolve().parts
    found = []
    for r in RECORDS:
        if r.kind != "published":
            continue
        org, repo = r.name.split("/")
        if given == r.name or f"models--{org}--{repo}" in parts or parts[-1] == repo:
            found.append(r)
    return found


def config_mismatch(record, config):
    """Why `config` is not the checkpoint `record` is for ('' when every recorded fact agrees)."""
    facts = {"variant": config.variant}
    if config.vision is not None:
        facts |= {k: getattr(config.vision, k) for k in ("hidden_size", "num_hidden_layers", "patch_size")}
    bad = [f"{k} {facts.get(k)} != {v}" for k, v in record.config.items() if facts.get(k) != v]
    return "; ".join(bad)


def expected_stages(record):
    """{stage: array} the record asserts, and the manifest of its dump (None for published values)."""
    if record.expected:
        return {k: np.asarray(v, dtype=np.float64) for k, v in record.expected.items()}, None
    from .dump import read_dump

    return read_dump(EXPECTED_DIR / record.expected_file)


def allclose_ratio(actual, desired, rtol, atol):
    """max |a - e| / (atol + rtol |e|): at most 1 where `torch.testing.assert_close(rtol, atol)` passes."""
    a, d = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
    return float(np.max(np.abs(a - d) / (atol + rtol * np.abs(d)))) if d.size else 0.0


@dataclass
class RecordResult:
    rows: list  # [(stage, error, bound, ok, tolerance)] in pipeline order
    first_failure: tuple = None  # the first row out of tolerance
    worst: tuple = None  # the row with the largest error / bound


def compare_record(record, got, manifest=None, reference=None):
    """Every stage the record holds, against our stages `got` (the same inputs), in pipeline order."""
    mask = got.get("vision.pixel_attention_mask")
    rows = []
    for stage in pipeline_order(set(reference)):
        desired = reference[stage]
        actual = got.get(stage)
        if actual is None or np.shape(actual) != np.shape(desired):
            rows.append((stage, float("inf"), 0.0, False, "missing or shape differs"))
        elif record.rtol is not None:
            ratio = allclose_ratio(actual, desired, record.rtol, record.atol)
            rows.append((stage, ratio, 1.0, ratio <= 1.0, f"rtol {record.rtol:g}, atol {record.atol:g}"))
        else:
            from .tolerances import TIERS

            r = compare_stage(stage, np.asarray(actual), np.asarray(desired), mask, ({"precision": {"dtype": "float32"}}, manifest))
            err = float(r.differing if r.differing is not None else r.max_rel)
            rows.append((stage, err, TIERS[r.tier].rel, not r.diverged, r.tier))
    first = next((row for row in rows if not row[3]), None)
    worst = max(rows, key=lambda t: t[1] / t[2] if t[2] else (0 if t[1] == 0 else np.inf), default=None)
    return RecordResult(rows, first, worst)


def record_inputs(record, image_path=None):
    """(images, texts) of a record: the drawn circles, or the user's file; None images when it is missing."""
    if record.images == "circles":
        return circle_images(), list(record.texts)
    return ([image_path] if image_path else None), list(record.texts)
