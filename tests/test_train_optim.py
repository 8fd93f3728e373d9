"""SGD and AdamW on parameter trees against their closed forms, and the fine-tuning example end to end (no torch).

tests/oracle/test_live_train.py compares both optimizers with torch.optim.
"""

from pathlib import Path

import numpy as np
import pytest

import siglip2_ref as s2
from siglip2_ref.train.finetune import PAIRS, draw_batch, finetune, save_checkpoint
from siglip2_ref.train.grads import flatten
from siglip2_ref.train.optim import SGD, AdamW


def tree(rng):
    return {"a": {"weight": rng.normal(size=(3, 4))}, "layers": [{"b": rng.normal(size=5)}, {"b": rng.normal(size=5)}]}


def test_adamw_first_step_is_decay_plus_lr_times_sign():
    """Step 1: the bias corrections make m_hat = g and v_hat = g^2, so the update is lr * g / (|g| + eps)."""
    rng = np.random.default_rng(0)
    params, grads = tree(rng), tree(rng)
    opt = AdamW(lr=0.01, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    new, state = opt.step(params, grads, opt.init(params))
    for key, p in flatten(params).items():
        g = flatten(grads)[key]
        np.testing.assert_allclose(flatten(new)[key], p * (1 - 0.01 * 0.1) - 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)
    assert state["step"] == 1 and flatten(params)["a.weight"] is not flatten(new)["a.weight"]  # nothing in place


def test_adamw_second_step_uses_the_moments():
    rng = np.random.default_rng(1)
    p, g1, g2 = rng.normal(size=6), rng.normal(size=6), rng.normal(size=6)
    b1, b2, lr, eps = 0.9, 0.99, 0.1, 1e-8
    opt = AdamW(lr=lr, betas=(b1, b2), eps=eps, weight_decay=0.0)
    state = opt.init({"p": p})
    one, state = opt.step({"p": p}, {"p": g1}, state)
    two, state = opt.step(one, {"p": g2}, state)
    m = (1 - b1) * (b1 * g1 + g2)
    v = (1 - b2) * (b2 * g1**2 + g2**2)
    expected = one["p"] - lr / (1 - b1**2) * m / (np.sqrt(v) / np.sqrt(1 - b2**2) + eps)
    np.testing.assert_allclose(two["p"], expected, rtol=1e-12)


def test_sgd_momentum_and_weight_decay():
    rng = np.random.default_rng(2)
    p, g1, g2 = rng.normal(size=4), rng.normal(size=4), rng.normal(size=4)
    opt = SGD(lr=0.5, momentum=0.9, weight_decay=0.01)
    one, state = opt.step({"p": p}, {"p": g1}, opt.init({"p": p}))
    d1 = g1 + 0.01 * p
    np.testing.assert_allclose(one["p"], p - 0.5 * d1, rtol=1e-14)
    two, _ = opt.step(one, {"p": g2}, state)
    np.testing.assert_allclose(two["p"], one["p"] - 0.5 * (0.9 * d1 + g2 + 0.01 * one["p"]), rtol=1e-14)


def test_finetune_steps_and_the_checkpoint_reloads(tmp_path):
    model, processor, losses = finetune(steps=2, batch=4, log=lambda line: None)
    assert len(losses) == 2 and all(np.isfinite(losses))
    save_checkpoint(model, model.path, tmp_path)
    reloaded = s2.load_model(tmp_path)
    for key, value in flatten(model.params).items():
        assert np.array_equal(flatten(reloaded.params)[key], value), key
    original = flatten(s2.load_model(model.path).params)
    assert any(not np.array_equal(original[k], v) for k, v in flatten(model.params).items())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in Path(model.path).iterdir())


def test_finetune_batches_never_repeat_a_label():
    images, texts = draw_batch(np.random.default_rng(3), len(PAIRS))
    assert len(images) == len(texts) == 40
    with pytest.raises(ValueError):
        draw_batch(np.random.default_rng(3), len(PAIRS) + 1)


def test_two_steps_match_the_torch_optim_golden():
    """golden/grads/optim_f64: torch.optim.AdamW and SGD, two float64 steps on a few naflex parameters."""
    import json

    from safetensors import safe_open
    from safetensors.numpy import load_file

    path = Path(__file__).resolve().parent.parent / "golden" / "grads" / "optim_f64.safetensors"
    with safe_open(str(path), "np") as f:
        meta = json.loads(f.metadata()["meta"])
    arrays = load_file(str(path))
    params = {k: arrays[f"param.{k}"] for k in meta["keys"]}
    grads = {k: arrays[f"grad.{k}"] for k in meta["keys"]}
    for name, cls in (("adamw", AdamW), ("sgd", SGD)):
        settings = {k: v for k, v in meta["optimizers"][name].items() if k != "class"}
        settings = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
        opt = cls(**settings)
        state = opt.init(params)
        current = params
        for factor in (1.0, -0.5):
            current, state = opt.step(current, {k: factor * g for k, g in grads.items()}, state)
        for key in meta["keys"]:
            want = arrays[f"{name}.{key}"]
            update = float(np.abs(want - params[key]).max())
            assert float(np.abs(current[key] - want).max()) <= 1e-12 * update, f"{name} {key}"
