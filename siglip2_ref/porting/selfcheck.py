"""`siglip2-ref selfcheck`: proof, on the user's machine and checkpoint, that the numbers are right.

    from siglip2_ref.porting.selfcheck import selfcheck
    report = selfcheck()                                   # the bundled NaFlex demo model
    report = selfcheck("siglip2-base-patch16-naflex", backend="cupy")
    print(report.format()); report.ok; report.as_dict()

Three parts, one report:
- published numbers (published.py): the values transformers' integration tests assert for this checkpoint, or
  transformers' own stages for the demo models, through the float32 fast path users run;
- internal consistency on any checkpoint: float32 fast path against the readable path, float32 against float64,
  and with backend="cupy" the GPU in float32 and float16 against NumPy float64 - every stage of one run compared
  by porting/compare.py under the tiers of porting/tolerances.py; a failing check names its first divergent stage;
- the environment (environment.py): BLAS library, kernel and threads, CuPy/CUDA versions and the device.
"""

import time
from dataclasses import asdict, dataclass

import numpy as np

from ..backend import backend_module
from .compare import compare_dumps, first_divergence
from .dump import make_dump
from .environment import environment, format_environment
from .published import BY_NAME, CIRCLE_TEXTS, RECORDS, circle_images, compare_record, config_mismatch, expected_stages, \
    matching_records, record_inputs  # fmt: skip
from .tolerances import TIERS

# (name, candidate, reference) as (backend, dtype, fast path?). The float64 reference runs the fast path: at base size
# the readable path is several times slower on a CPU, and tests/test_fast.py holds the two float64 paths together.
NUMPY_PAIRS = (("float32 fast path vs readable path", ("numpy", "float32", True), ("numpy", "float32", False)),
               ("float32 vs float64 (fast path)", ("numpy", "float32", True), ("numpy", "float64", True)))  # fmt: skip
CUPY_PAIRS = (("cupy float32 vs NumPy float64", ("cupy", "float32", False), ("numpy", "float64", True)),
              ("cupy float16 vs NumPy float64", ("cupy", "float16", False), ("numpy", "float64", True)))  # fmt: skip


@dataclass
class Check:
    name: str
    kind: str  # "published" | "transformers reference" | "consistency"
    status: str  # "pass" | "FAIL" | "skipped"
    error: float = None  # the worst measured error (stage-relative, or |a-e| / (atol + rtol|e|) for published)
    bound: float = None  # what that error must not exceed
    tolerance: str = ""  # the tier or the published tolerance
    stage: str = None  # FAIL: the first stage out of tolerance; pass: the stage with the largest error / bound
    detail: str = ""


@dataclass
class Report:
    model: str
    backend: str
    checks: list
    environment: dict
    seconds: float

    @property
    def ok(self):
        return all(c.status != "FAIL" for c in self.checks)

    def as_dict(self):
        return {"model": self.model, "backend": self.backend, "ok": self.ok, "seconds": round(self.seconds, 2),
                "checks": [asdict(c) for c in self.checks], "environment": self.environment}  # fmt: skip

    def format(self):
        head = f"{'check':<46} {'status':<7} {'error':>8} {'bound':>8}  {'tolerance':<24} stage"
        lines = [f"selfcheck of {self.model} (backend {self.backend})", "", head, "-" * len(head)]
        for c in self.checks:
            err = "" if c.error is None else f"{c.error:.2e}"
            bound = "" if c.bound is None else f"{c.bound:.0e}" if c.bound else "0"
            lines.append(f"{c.name:<46} {c.status:<7} {err:>8} {bound:>8}  {c.tolerance:<24} {c.stage or ''}")
            if c.detail:
                lines.append(f"    {c.detail}")
        verdict = "all checks passed" if self.ok else "FAILED: " + ", ".join(c.name for c in self.checks if c.status == "FAIL")
        skipped = sum(c.status == "skipped" for c in self.checks)
        lines += ["", "environment:", format_environment(self.environment), "",
                  f"{verdict}" + (f" ({skipped} skipped)" if skipped else "") + f" in {self.seconds:.1f} s"]  # fmt: skip
        return "\n".join(lines)


# ---------------------------------------------------------------- inputs


CONSISTENCY_PATCHES = 60  # NaFlex patch budget of the consistency run: quick readable path at base size; pads 224x1024
# A text the demo models match to the circle picture (p 0.7), and one of the test's: `probabilities`
# is compared stage-relative (error / its largest value), which is ill-conditioned when every probability is tiny.
CONSISTENCY_TEXTS = ("red circle", CIRCLE_TEXTS[3])


def synthetic_arrays(config, seed=0):  # -> {input name: array}
    """Seeded model inputs for a checkpoint without tokenizer or image processor: one image, one text.

    NaFlex: CONSISTENCY_PATCHES slots (or the grid's size, if smaller), the image's grid leaving some padded.
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    if config.text is not None:
        arrays["input_ids"] = rng.integers(0, config.text.vocab_size, (1, config.text.max_position_embeddings))  # [T, L]
    v = config.vision
    if v is not None and v.variant == "naflex":
        N, p = min(v.grid_size**2, CONSISTENCY_PATCHES), v.patch_size
        h = max(1, int(N**0.5) // 2)
        shapes = np.array([[h, max(1, N // h - 1)]], dtype=np.int64)  # [I, 2]: fewer than N patches, wider than tall
        mask = (np.arange(N)[None, :] < shapes.prod(-1)[:, None]).astype(np.int32)  # [I, N]
        pixels = rng.uniform(-1, 1, (1, N, p * p * v.num_channels)).astype(np.float32) * mask[..., None]  # [I, N, P]
        arrays |= {"pixel_values": pixels, "pixel_attention_mask": mask, "spatial_shapes": shapes}
    elif v is not None:
        arrays["pixel_values"] = rng.uniform(-1, 1, (1, v.num_channels, v.image_size, v.image_size)).astype(np.float32)
    return arrays


def consistency_inputs(folder, config):
    """make_dump's inputs through the checkpoint's own processor when it has one (one drawn image, one text),
    else synthetic arrays; and a few words saying which."""
    from ..preprocess.processor import load_processor

    try:
        processor = load_processor(folder)
    except (OSError, ValueError):
        processor = None
    vision, text = config.vision is not None, config.text is not None
    if processor is None or (vision and processor.image_processor is None) or (text and processor.tokenizer is None):
        return {"arrays": synthetic_arrays(config)}, "synthetic input arrays (no tokenizer/image processor files)"
    naflex = config.variant == "naflex"
    budget = min(processor.image_processor.max_num_patches, CONSISTENCY_PATCHES) if naflex and vision else None
    inputs = {"processor": processor, "images": [circle_images()[2]] if vision else None,  # 224x1024: padded NaFlex grid
              "texts": list(CONSISTENCY_TEXTS) if text else None, "max_num_patches": budget}  # fmt: skip
    return inputs, "one drawn image, two texts" + (f", {budget} patches" if budget else "")


# ---------------------------------------------------------------- checks


def tier_bound(result):
    return TIERS[result.tier].rel if result.tier else 0.0


def stage_error(result):
    return float(result.differing) if result.differing is not None else result.max_rel


def compared_check(name, kind, results):
    """A Check from compare_dumps results: the first divergent stage, or the worst stage relative to its tier."""
    first = first_divergence(results)
    missing = [r.stage for r in results if r.verdict.startswith("only")]
    measured = [r for r in results if r.tier is not None]
    worst = first or max(measured, key=lambda r: stage_error(r) / tier_bound(r) if tier_bound(r) else float(stage_error(r) > 0),
                         default=None)  # fmt: skip
    if worst is None:
        return Check(name, kind, "FAIL", detail="no stage to compare")
    status = "FAIL" if first or missing else "pass"
    detail = "" if not missing else f"stages missing on one side: {', '.join(missing[:4])}"
    if first is not None and first.note:
        detail = first.note
    return Check(name, kind, status, stage_error(worst), tier_bound(worst), worst.tier or "", worst.stage, detail)


class Runs:
    """Dumps of one set of inputs on (backend, dtype, fast path?) models, each computed once."""

    def __init__(self, loader, inputs):
        self.loader, self.inputs, self.dumps = loader, inputs, {}

    def get(self, key):
        if key not in self.dumps:
            self.dumps[key] = make_dump(self.loader(*key), **self.inputs)
        return self.dumps[key]


def pair_check(runs, name, candidate, reference):
    """One consistency check; a run that raises (non-finite float16 outputs, device errors) fails it, saying why."""
    try:
        return compared_check(name, "consistency", compare_dumps(runs.get(candidate), runs.get(reference)))
    except (ValueError, RuntimeError, MemoryError) as e:  # InputError and NonFiniteError are ValueErrors
        return Check(name, "consistency", "FAIL", detail=f"the run raised {type(e).__name__}: {e}")


def consistency_checks(loader, inputs, backend="numpy"):
    """The internal-consistency checks of one model (`loader(backend, dtype, fast) -> Model`) on `inputs`."""
    runs = Runs(loader, inputs)
    checks = [pair_check(runs, *pair) for pair in NUMPY_PAIRS]
    if backend != "cupy":
        return checks
    try:
        backend_module("cupy")
    except RuntimeError as e:
        return checks + [Check(name, "consistency", "skipped", detail=str(e)) for name, _, _ in CUPY_PAIRS]
    return checks + [pair_check(runs, *pair) for pair in CUPY_PAIRS]


def record_check(record, folder, config, model, image=None):
    """The check of one record through `model` (the float32 fast path): pass/FAIL per its tolerance, or skipped."""
    from ..preprocess.processor import load_processor

    name = f"{'published' if record.kind == 'published' else 'transformers'}: {record.name}"
    tolerance = f"rtol {record.rtol:g}, atol {record.atol:g}" if record.rtol is not None else "stage tiers"
    skip = lambda why: Check(name, record.kind, "skipped", tolerance=tolerance, detail=why)  # noqa: E731
    mismatch = config_mismatch(record, config)
    if mismatch:
        return skip(f"this checkpoint is not {record.name}: {mismatch}")
    images, texts = record_inputs(record, image)
    if images is None:
        return skip(f"needs the test image {record.image_note}; pass its path with --image")
    try:
        processor = load_processor(folder, resize_backend=record.resize_backend)
    except (OSError, ValueError) as e:
        return skip(f"cannot preprocess its inputs here: {e}")
    reference, manifest = expected_stages(record)
    got, _ = make_dump(model, processor, images, texts)
    result = compare_record(record, got, manifest, reference)
    stage, error, bound, _, tolerance = result.first_failure or result.worst
    return Check(name, record.kind, "FAIL" if result.first_failure else "pass", error, bound, tolerance, stage,
                 f"{len(result.rows)} stages; source: {record.source}")  # fmt: skip


def published_checks(folder, config, model, given=None, image=None, published=None):
    """The record checks that apply to this checkpoint (`published`: a record name, forcing that record)."""
    records = [BY_NAME[published]] if published else matching_records(folder, given)
    if not records:
        names = ", ".join(r.name for r in RECORDS if r.kind == "published")
        return [Check("published numbers", "published", "skipped",
                      detail=f"no published values for this checkpoint (there are for: {names}; docs/selfcheck.md)")]  # fmt: skip
    return [record_check(r, folder, config, model, image) for r in records]


def selfcheck(model=None, backend="numpy", image=None, published=None):
    """The Report for checkpoint `model` (folder or cached hub id; default the NaFlex demo) on `backend`.

    image: the file a published record needs that cannot be shipped (the SigLIP 1 test's COCO photograph);
    published: a record name of published.RECORDS to apply whatever the folder is called.
    """
    from ..checkpoint.folder import resolve_checkpoint
    from ..demo import DEMO_NAFLEX
    from ..model.layers import encoder
    from ..model.model import Model, load_model

    if published is not None and published not in BY_NAME:
        raise ValueError(f"published={published!r}: unknown record; known: {', '.join(BY_NAME)}")
    start = time.perf_counter()
    folder = resolve_checkpoint(model) if model is not None else DEMO_NAFLEX
    fast32 = load_model(folder, dtype="float32")
    config = fast32.config
    fast32.path = None  # make_dump would hash the weight files (seconds at base size); the report names the folder
    readable32 = Model(config, fast32.params, "numpy", "float32", None, encoder)  # the same weights, not re-read
    loaded = {("numpy", "float32", True): fast32, ("numpy", "float32", False): readable32}

    def loader(backend_name, dtype, fast):
        key = (backend_name, dtype, fast)
        if key not in loaded:
            loaded[key] = load_model(folder, backend=backend_name, dtype=dtype, fast=fast)
            loaded[key].path = None  # make_dump would hash the weight files (seconds at base size) for its manifest
        return loaded[key]

    checks = published_checks(folder, config, fast32, model, image, published)
    inputs, described = consistency_inputs(folder, config)
    for c in (found := consistency_checks(loader, inputs, backend)):
        c.detail = c.detail or described
    checks += found
    return Report(str(model or folder), backend, checks, environment(), time.perf_counter() - start)
