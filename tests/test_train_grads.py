"""The hand-written backward (siglip2_ref/train) against torch autograd's gradients in golden/grads, without torch.

Error measure: per tensor, max|ours - autograd| / max|autograd| (the stage-relative error of porting/tolerances).
Exception: the attention key biases (`k_proj.bias`) have an identically zero gradient (adding one vector to every
key adds the same number to a whole row of scores, which softmax ignores), so autograd stores rounding noise
there (~1e-17 in float64); those, and any other gradient that is zero up to rounding, are measured against the
largest gradient of the model.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

from siglip2_ref.model.model import load_model
from siglip2_ref.model.vision import InputError
from siglip2_ref.train.grads import GRAD_PREFIX, flatten, loss_and_grads

ROOT = Path(__file__).resolve().parent.parent
GRADS = ROOT / "golden" / "grads"
CHECKPOINTS = ROOT / "golden" / "model" / "checkpoints"
CASES = {"fixres": "fixres_grad_f64", "naflex": "naflex_grad_f64"}
FLOAT64_REL = 1e-10  # issue 18's bar; measured 4.5e-15 (fixres) and 3.6e-15 (naflex)
FLOAT32_REL = 1e-5  # float32 backward vs float64 autograd; measured 2.1e-6 / 1.9e-6, torch's own float32 2.2e-6


def golden(variant):
    path = GRADS / f"{CASES[variant]}.safetensors"
    with safe_open(str(path), "np") as f:
        meta = json.loads(f.metadata()["meta"])
    arrays = load_file(str(path))
    batch = {k.removeprefix("input."): v for k, v in arrays.items() if k.startswith("input.")}
    return meta, batch, arrays


def ours(variant, dtype, batch, devices=1):
    model = load_model(CHECKPOINTS / variant, dtype=dtype, fast=False)
    stages = {}
    loss, grads = loss_and_grads(model, batch, devices=devices, stage_grads=stages)
    return model, loss, {GRAD_PREFIX + k: v for k, v in flatten(grads).items()} | stages


def gradient_errors(got, expected):
    """{name: error} over every gradient named in `expected` (see the module docstring for k_proj.bias).

    A tensor whose autograd gradient is zero up to rounding (max below 1e-8 of the model's largest gradient, e.g.
    every key bias, or a whole tower behind a LayerNorm of width 2, whose output is +-1 whatever its input) is
    measured against the largest gradient instead of its own size.
    """
    expected = {k: v for k, v in expected.items() if k.startswith(GRAD_PREFIX)}
    largest = max(float(np.abs(v).max()) for v in expected.values())
    errors = {}
    for name, want in expected.items():
        assert name in got, f"{name}: no such gradient computed"
        assert got[name].shape == want.shape, f"{name}: shape {got[name].shape} != autograd's {want.shape}"
        diff = float(np.abs(got[name].astype(np.float64) - want).max())
        own = float(np.abs(want).max())
        zero = name.endswith("k_proj.bias") or own <= 1e-8 * largest
        errors[name] = diff / (largest if zero else own)
    return errors


@pytest.mark.parametrize("variant", CASES)
@pytest.mark.parametrize("dtype, tolerance", [("float64", FLOAT64_REL), ("float32", FLOAT32_REL)])
def test_every_gradient_matches_autograd(variant, dtype, tolerance):
    meta, batch, expected = golden(variant)
    _, loss, got = ours(variant, dtype, batch)
    assert abs(float(loss) - expected["loss"].item()) <= tolerance * abs(expected["loss"].item())
    errors = gradient_errors(got, expected)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= tolerance, f"{variant} {dtype}: {worst} relative error {errors[worst]:.3g} > {tolerance:g}"
    assert len(errors) > 90, f"only {len(errors)} gradients in the golden file"


@pytest.mark.parametrize("variant", CASES)
def test_gradient_tree_has_the_checkpoint_keys(variant):
    meta, batch, expected = golden(variant)
    model, _, got = ours(variant, "float64", batch)
    params = flatten(model.params)
    param_grads = {k.removeprefix(GRAD_PREFIX) for k in got if k.removeprefix(GRAD_PREFIX) in params}
    assert param_grads == set(params)
    golden_params = {k.removeprefix(GRAD_PREFIX) for k in expected if k.startswith(("grad.text_model.", "grad.vision_model.", "grad.logit_"))}
    assert golden_params == set(params)  # autograd's named_parameters() are the checkpoint's keys
    for key, p in params.items():
        assert got[GRAD_PREFIX + key].shape == p.shape and got[GRAD_PREFIX + key].dtype == p.dtype, key


def test_key_bias_gradients_are_zero_in_the_golden_too():
    """The reason for the k_proj.bias exception: autograd's values there are rounding noise."""
    _, _, expected = golden("fixres")
    largest = max(float(np.abs(v).max()) for k, v in expected.items() if k.startswith(GRAD_PREFIX))
    kbias = [k for k in expected if k.endswith("k_proj.bias")]
    assert kbias and all(float(np.abs(expected[k]).max()) < 1e-14 * largest for k in kbias)


def test_padded_patches_get_no_gradient():
    _, batch, expected = golden("naflex")
    _, _, got = ours("naflex", "float64", batch)
    padded = batch["pixel_attention_mask"] == 0
    assert padded.any()
    for i in range(3):
        assert not got[f"grad.vision.hidden_states.{i}"][padded].any()


@pytest.mark.parametrize("variant", CASES)
def test_finite_differences(variant):
    """An independent witness: central differences of the model's own forward loss (model/, not train/)."""
    _, batch, _ = golden(variant)
    model, _, got = ours(variant, "float64", batch)
    params = flatten(model.params)
    rng = np.random.default_rng(0)
    picks = ["logit_scale", "logit_bias", "vision_model.embeddings.position_embedding.weight",
             "vision_model.embeddings.patch_embedding.weight", "vision_model.head.probe",
             "vision_model.encoder.layers.0.self_attn.q_proj.weight", "text_model.encoder.layers.1.mlp.fc1.bias",
             "text_model.embeddings.position_embedding.weight", "vision_model.head.attention.in_proj_weight"]  # fmt: skip
    for key in picks:
        p = params[key]
        index = tuple(int(rng.integers(s)) for s in p.shape)
        old, h = p[index], 1e-5
        p[index] = old + h
        up = float(model(**batch, return_loss=True).loss)
        p[index] = old - h
        down = float(model(**batch, return_loss=True).loss)
        p[index] = old
        fd, analytic = (up - down) / (2 * h), float(got[GRAD_PREFIX + key][index])
        assert abs(fd - analytic) <= 1e-7 + 1e-6 * abs(analytic), f"{key}{index}: finite difference {fd} vs backward {analytic}"


def random_pairs(B):
    """B NaFlex pairs with padding for the naflex golden checkpoint (fits its 24-patch, 300-token config)."""
    rng = np.random.default_rng(7)
    ids = rng.integers(2, 300, size=(B, 64))
    mask = np.zeros((B, 24), np.int32)
    shapes = np.array([[1 + i % 4, 1 + (3 * i) % 5] for i in range(B)])
    for i, (h, w) in enumerate(shapes):
        mask[i, : h * w] = 1
    return {"input_ids": ids, "pixel_values": rng.normal(size=(B, 24, 48)), "pixel_attention_mask": mask,
            "spatial_shapes": shapes}  # fmt: skip


def test_chunked_loss_equals_full_loss_on_1_2_4_8_devices():
    batch = random_pairs(8)
    model = load_model(CHECKPOINTS / "naflex", dtype="float64", fast=False)
    full_loss, full = loss_and_grads(model, batch)
    assert float(full_loss) == pytest.approx(float(model(**batch, return_loss=True).loss), rel=1e-13)
    full = {GRAD_PREFIX + k: v for k, v in flatten(full).items()}
    for devices in (1, 2, 4, 8):
        loss, grads = loss_and_grads(model, batch, devices=devices)
        assert abs(float(loss) - float(full_loss)) <= 1e-12 * abs(float(full_loss)), devices
        errors = gradient_errors({GRAD_PREFIX + k: v for k, v in flatten(grads).items()}, full)
        worst = max(errors, key=errors.get)
        assert errors[worst] <= 1e-12, f"{devices} devices: {worst} differs by {errors[worst]:.3g}"


def test_bad_batches_get_specific_errors():
    model = load_model(CHECKPOINTS / "naflex", dtype="float64", fast=False)
    batch = random_pairs(4)
    with pytest.raises(InputError, match="pairs text i with image i; got 3 texts and 4 images"):
        loss_and_grads(model, dict(batch, input_ids=batch["input_ids"][:3]))
    with pytest.raises(ValueError, match="batch of 4 pairs does not split over 3 devices"):
        loss_and_grads(model, batch, devices=3)
    with pytest.raises(InputError, match="lacks \\['pixel_values'\\]"):
        loss_and_grads(model, {"input_ids": batch["input_ids"]})
    with pytest.raises(InputError, match="float32 or float64; this model was loaded with dtype='float16'"):
        loss_and_grads(load_model(CHECKPOINTS / "naflex", dtype="float16", fast=False), batch)
    with pytest.raises(InputError, match="needs a two-tower SigLIP model"):
        loss_and_grads(load_model(CHECKPOINTS / "naflex_vision", fast=False), batch)


def test_gradient_dumps_compare_clean_against_the_golden(tmp_path, capsys):
    """dump_grads writes ours and autograd's as dumps; the porter's compare finds no divergent gradient stage."""
    from siglip2_ref.porting.compare import compare_dumps, first_divergence
    from siglip2_ref.porting.dump import read_dump
    from siglip2_ref.porting import dump_grads

    golden_file = str(GRADS / "naflex_grad_f64.safetensors")
    assert dump_grads.main([golden_file, "-o", str(tmp_path / "ours.safetensors")]) == 0
    assert dump_grads.main([golden_file, "--as-dump", "-o", str(tmp_path / "autograd.safetensors")]) == 0
    results = compare_dumps(read_dump(tmp_path / "ours.safetensors"), read_dump(tmp_path / "autograd.safetensors"))
    compared = [r for r in results if r.stage.startswith("grad.") and r.verdict == "ok"]
    assert len(compared) > 90 and first_divergence(results) is None
    assert [r.stage for r in results].index("grad.image_embeds") > [r.stage for r in results].index("loss")
    assert dump_grads.main([str(GRADS / "optim_f64.safetensors"), "-o", str(tmp_path / "x.safetensors")]) == 1
    assert "not a gradient golden case" in capsys.readouterr().err
