"""`siglip2-ref selfcheck`: passes where the numbers are right, fails naming the stage where they are not."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from siglip2_ref.backend import cupy_available
from siglip2_ref.cli import main
from siglip2_ref.demo import DEMO_FIXRES, DEMO_NAFLEX, EXAMPLE_IMAGE
from siglip2_ref.model.model import load_model
from siglip2_ref.porting import published as pub
from siglip2_ref.porting.dump import read_dump
from siglip2_ref.porting.selfcheck import record_check, selfcheck, synthetic_arrays

GOLDEN_CHECKPOINTS = sorted((Path(__file__).resolve().parent.parent / "golden" / "model" / "checkpoints").iterdir())


def by_name(report):
    return {c.name: c for c in report.checks}


@pytest.mark.parametrize("folder,record", [(DEMO_NAFLEX, "demo-naflex"), (DEMO_FIXRES, "demo-fixres")])
def test_demo_models_pass_every_check(folder, record):
    report = selfcheck(folder)
    checks = by_name(report)
    assert report.ok, report.format()
    assert checks[f"transformers: {record}"].status == "pass"
    assert checks["transformers: " + record].stage is not None  # the worst stage is named even on a pass
    for name in ("float32 fast path vs readable path", "float32 vs float64 (fast path)"):
        assert checks[name].status == "pass" and checks[name].error <= checks[name].bound
    assert "all checks passed" in report.format()


@pytest.mark.parametrize("folder", GOLDEN_CHECKPOINTS, ids=lambda p: p.name)
def test_golden_checkpoints_pass_on_synthetic_inputs(folder):
    report = selfcheck(str(folder))
    checks = by_name(report)
    assert report.ok, report.format()
    assert checks["published numbers"].status == "skipped"  # no published values for a random tiny checkpoint
    assert "synthetic input arrays" in checks["float32 fast path vs readable path"].detail


def perturbed_copy(tmp_path, key, index, delta):
    """The NaFlex demo checkpoint with one weight element changed by `delta`."""
    from safetensors.numpy import load_file, save_file

    folder = tmp_path / "perturbed"
    shutil.copytree(DEMO_NAFLEX, folder)
    tensors = load_file(folder / "model.safetensors")
    tensors[key][index] += delta
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def test_a_perturbed_weight_fails_the_reference_at_the_stage_after_it(tmp_path):
    folder = perturbed_copy(tmp_path, "vision_model.encoder.layers.1.mlp.fc1.weight", (3, 5), 0.05)
    report = selfcheck(str(folder), published="demo-naflex")
    checks = by_name(report)
    assert not report.ok
    ref = checks["transformers: demo-naflex"]
    assert ref.status == "FAIL" and ref.stage == "vision.hidden_states.2"  # layer 1's output
    assert ref.error > ref.bound
    # both of this package's paths read the same (wrong) weights: only a reference can see a bad checkpoint
    assert checks["float32 fast path vs readable path"].status == "pass"
    assert "FAILED: transformers: demo-naflex" in report.format()


def test_a_perturbed_text_weight_is_named_in_the_text_tower(tmp_path):
    folder = perturbed_copy(tmp_path, "text_model.embeddings.position_embedding.weight", (0, 7), 0.05)
    ref = by_name(selfcheck(str(folder), published="demo-naflex"))["transformers: demo-naflex"]
    assert ref.status == "FAIL" and ref.stage == "text.hidden_states.0"


def test_a_perturbed_fast_path_stage_fails_naming_the_first_layer_output(monkeypatch):
    import siglip2_ref.model.fast as fast

    original = fast.gelu_tanh_

    def off_in_float32(x, tmp):  # the fast path's float32 GELU, 1e-4 relative too large
        out = original(x, tmp)
        if x.dtype == np.float32:
            out *= np.float32(1 + 1e-4)
        return out

    monkeypatch.setattr(fast, "gelu_tanh_", off_in_float32)
    checks = by_name(selfcheck(DEMO_NAFLEX))
    for name in ("float32 fast path vs readable path", "float32 vs float64 (fast path)", "transformers: demo-naflex"):
        assert checks[name].status == "FAIL", name
        assert checks[name].stage == "text.hidden_states.1", name  # text comes first in pipeline order


def test_a_perturbed_float32_head_fails_float32_vs_float64_only(monkeypatch):
    import siglip2_ref.model.model as model_module

    original = model_module.l2_normalize

    def off_in_float32(x):
        out = original(x)
        return out * np.float32(1 + 1e-4) if out.dtype == np.float32 else out

    monkeypatch.setattr(model_module, "l2_normalize", off_in_float32)
    checks = by_name(selfcheck(DEMO_FIXRES))
    assert checks["float32 vs float64 (fast path)"].status == "FAIL"
    assert checks["float32 vs float64 (fast path)"].stage == "image_embeds"
    assert checks["float32 fast path vs readable path"].status == "pass"  # both float32 paths share the head


def demo_published_record(**changes):
    """A 'published' record for the NaFlex demo: transformers' logits (the golden dump) under rtol/atol."""
    stages, _ = read_dump(pub.EXPECTED_DIR / "naflex.safetensors")
    record = pub.Record(name="demo-naflex (as published)", kind="published", source="golden/make_selfcheck.py",
                        images="circles", texts=pub.CIRCLE_TEXTS, rtol=1e-4, atol=1e-4,
                        expected={"logits_per_text": stages["logits_per_text"].tolist()}, config={"variant": "naflex"})  # fmt: skip
    return replace(record, **changes)


def test_the_published_values_path_passes_and_fails_with_the_published_tolerance(tmp_path):
    record = demo_published_record()
    model = load_model(DEMO_NAFLEX)
    check = record_check(record, DEMO_NAFLEX, model.config, model)
    assert check.status == "pass" and check.stage == "logits_per_text" and check.error <= 1.0
    assert check.tolerance == "rtol 0.0001, atol 0.0001"
    folder = perturbed_copy(tmp_path, "vision_model.head.mlp.fc2.weight", (0, 0), 0.05)
    bad = load_model(folder)
    check = record_check(record, folder, bad.config, bad)
    assert check.status == "FAIL" and check.stage == "logits_per_text" and check.error > 1.0


def test_the_official_records_are_recorded_with_their_source():
    naflex = pub.BY_NAME["google/siglip2-base-patch16-naflex"]
    assert naflex.expected["logits_per_text"][0] == [1.0195, -0.0280, -1.4468]
    assert np.shape(naflex.expected["logits_per_text"]) == (len(naflex.texts), len(pub.CIRCLE_SIZES))
    assert "test_modeling_siglip2.py" in naflex.source and naflex.rtol == naflex.atol == 1e-3
    siglip = pub.BY_NAME["google/siglip-base-patch16-224"]
    assert siglip.images == "user" and "000000039769" in siglip.image_note


def test_circle_images_are_the_tests_pictures():
    images = pub.circle_images()
    assert [im.size for im in images] == [(224, 224), (1024, 1024), (1024, 224)]
    pixels = np.asarray(images[1])
    assert tuple(pixels[0, 0]) == (255, 0, 0) and tuple(pixels[512, 512]) == (0, 0, 255)
    assert tuple(pixels[512, 512 - 7 * 512 // 8 + 10]) == (0, 128, 0)  # PIL's "green" rim, width 1024 // 20


def test_records_are_found_by_hub_id_or_folder_name(tmp_path):
    folder = tmp_path / "models--google--siglip2-base-patch16-naflex" / "snapshots" / "abc"
    folder.mkdir(parents=True)
    assert [r.name for r in pub.matching_records(folder)] == ["google/siglip2-base-patch16-naflex"]
    assert [r.name for r in pub.matching_records(DEMO_NAFLEX)] == ["demo-naflex"]
    assert pub.matching_records(tmp_path) == []
    assert pub.matching_records(tmp_path / "siglip2-base-patch16-naflex-finetuned") == []
    assert [r.name for r in pub.matching_records(tmp_path, given="google/siglip-base-patch16-224")] == ["google/siglip-base-patch16-224"]


def test_a_record_for_another_checkpoint_is_skipped_with_the_reason(tmp_path):
    folder = tmp_path / "siglip2-base-patch16-naflex"
    shutil.copytree(DEMO_NAFLEX, folder)
    check = by_name(selfcheck(str(folder)))["published: google/siglip2-base-patch16-naflex"]
    assert check.status == "skipped" and "hidden_size 48 != 768" in check.detail


def test_a_record_needing_the_users_image_says_so_and_runs_when_given():
    record = replace(pub.BY_NAME["google/siglip-base-patch16-224"], config={})
    model = load_model(DEMO_FIXRES)
    check = record_check(record, DEMO_FIXRES, model.config, model)
    assert check.status == "skipped" and "--image" in check.detail and "000000039769" in check.detail
    check = record_check(record, DEMO_FIXRES, model.config, model, image=EXAMPLE_IMAGE)
    assert check.status == "FAIL" and check.stage == "logits_per_image"  # ran: the demo model is not SigLIP 1


def test_synthetic_arrays_leave_naflex_padding():
    config = load_model(GOLDEN_CHECKPOINTS[0].parent / "naflex").config
    arrays = synthetic_arrays(config)
    assert arrays["pixel_attention_mask"].sum() < arrays["pixel_attention_mask"].size
    assert arrays["spatial_shapes"].prod() == arrays["pixel_attention_mask"].sum()


def test_cli_json_report(capsys):
    assert main(["selfcheck", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and {c["status"] for c in report["checks"]} == {"pass"}
    assert report["environment"]["blas"] and "cupy" in report["environment"]["cuda"]


def test_cli_usage_errors(capsys):
    assert main(["selfcheck", "--dtype", "float16"]) == 2
    assert main(["selfcheck", "--published", "no-such-record"]) == 2
    assert main(["selfcheck", "--image", "no-such-file.jpg"]) == 1
    assert "no such file" in capsys.readouterr().err


@pytest.mark.skipif(cupy_available(), reason="checks the report of a machine without a usable CuPy")
def test_cupy_checks_skip_cleanly_without_a_gpu(capsys):
    assert main(["selfcheck", "--backend", "cupy"]) == 0
    out = capsys.readouterr().out
    assert "cupy float32 vs NumPy float64" in out and "cupy float16 vs NumPy float64" in out and "skipped" in out


@pytest.mark.gpu
@pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA device")
def test_cupy_checks_pass_on_the_demo_model():
    checks = by_name(selfcheck(DEMO_NAFLEX, backend="cupy"))
    assert checks["cupy float32 vs NumPy float64"].status == "pass"
    assert checks["cupy float16 vs NumPy float64"].status == "pass"


def test_readme_shows_what_selfcheck_prints_on_the_demo_model():
    """The README's 'Check your install' block: the same checks, statuses, tiers and stages as a run now."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("On the demo model (the default):\n\n```\n", 1)[1].split("```", 1)[0]
    report = selfcheck()
    for c in report.checks:
        row = next(line for line in block.splitlines() if line.startswith(c.name + " ")).split()
        assert row[-5] == c.status and row[-2] == c.tolerance, row  # ... status error bound tier stage
        # The stage of the worst error is not pinned: which stage's rounding is largest depends on the BLAS kernel
        # (measured: Haswell and SkylakeX kernels name different stages at errors of 4e-7 to 6e-7, bound 2e-6).
        assert row[-1] in {"probabilities", "logits_per_image", "logits_per_text", "text_embeds", "image_embeds"}, row
    assert "all checks passed" in block


def test_the_cupy_branch_compares_every_stage_when_a_backend_is_usable(monkeypatch):
    """Without a GPU, the CuPy pairs' code path with NumPy float32 standing in for the device."""
    import siglip2_ref.porting.selfcheck as sc

    monkeypatch.setattr(sc, "backend_module", lambda name: np)
    monkeypatch.setattr(sc, "CUPY_PAIRS", (("device float32 vs NumPy float64", ("numpy", "float32", False), ("numpy", "float64", True)),))
    check = by_name(sc.selfcheck(DEMO_NAFLEX, backend="cupy"))["device float32 vs NumPy float64"]
    assert check.status == "pass" and check.tolerance.startswith("float32") and check.stage


def test_a_run_that_raises_fails_its_check_with_the_reason(monkeypatch):
    """A device run that overflows (NonFiniteError) is one FAIL row, not a traceback that hides the other checks."""
    import siglip2_ref.porting.selfcheck as sc
    from siglip2_ref.model.model import NonFiniteError

    def overflowing_loader(backend, dtype, fast):
        if dtype == "float64":
            raise NonFiniteError("vision.hidden_states.2 holds inf")
        return load_model(DEMO_FIXRES, dtype=dtype, fast=fast)

    inputs, _ = sc.consistency_inputs(DEMO_FIXRES, load_model(DEMO_FIXRES).config)
    checks = {c.name: c for c in sc.consistency_checks(overflowing_loader, inputs)}
    assert checks["float32 fast path vs readable path"].status == "pass"
    bad = checks["float32 vs float64 (fast path)"]
    assert bad.status == "FAIL" and "NonFiniteError: vision.hidden_states.2 holds inf" in bad.detail
