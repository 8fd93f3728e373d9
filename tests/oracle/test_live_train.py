"""Live oracle for training: the NumPy backward, optimizer steps and fine-tuned checkpoints against torch.

- gradients on random tiny two-tower configs (hypothesis; golden/make_golden.py's perturbation), float64:
  every parameter within 1e-10 of autograd (SDPA, NaFlex resize kept in float64 as golden/make_golden_grads.py does);
- one AdamW and one SGD (momentum, weight decay) step on the demo model in float32, our gradients + our optimizer
  against autograd + torch.optim, same settings;
- the checkpoint that train/finetune.py writes loads in transformers and gives our logits.
"""

import contextlib
import importlib.util
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import siglip2_ref as s2  # noqa: E402
from siglip2_ref.checkpoint.weights import nest  # noqa: E402
from siglip2_ref.demo import DEMO_NAFLEX  # noqa: E402
from siglip2_ref.train.finetune import draw_batch, finetune, save_checkpoint  # noqa: E402
from siglip2_ref.train.grads import GRAD_PREFIX, flatten, loss_and_grads  # noqa: E402
from siglip2_ref.train.optim import SGD, AdamW  # noqa: E402
from tests.oracle.test_live_model import build_and_save, text_configs, text_ids, vision_configs  # noqa: E402
from tests.test_train_grads import gradient_errors  # noqa: E402

pytestmark = pytest.mark.oracle

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("make_golden_grads", ROOT / "golden" / "make_golden_grads.py")
grads_golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(grads_golden)
golden = grads_golden.sys.modules["make_golden"]  # imported by make_golden_grads

CLASSES = {"fixres": transformers.SiglipModel, "naflex": transformers.Siglip2Model}
# A LayerNorm of width 2 outputs +-1 whatever its input: its Jacobian is zero, so every gradient behind it is rounding
# noise in both implementations. From width 4 on the gradients are well defined.
MIN_HIDDEN = 4
# Parameters after one SGD step differ by lr * (the gradients' difference), and float32 gradients differ by up to the
# float32 gradient bar (1e-5 of their size, tests/test_train_grads.py), so the same bar applies to the step, as a
# fraction of torch's largest update. Measured: 1.0e-6 (the worst at logit_scale, a sum over all B x B pairs).
FLOAT32_STEP = 1e-5


@pytest.fixture(autouse=True, scope="module")
def quiet_transformers():
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)


@st.composite
def training_cases(draw, variant):
    """(config kwargs, batch, forward kwargs): B matching pairs, NaFlex with padding, FixRes sometimes resized."""
    vision = draw(vision_configs(variant, MIN_HIDDEN))
    text = draw(text_configs(vision["hidden_size"], MIN_HIDDEN))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    B = draw(st.integers(1, 4))
    lengths = draw(st.lists(st.integers(1, 64), min_size=B, max_size=B))
    batch, call = {"input_ids": text_ids(rng, lengths, text["vocab_size"])}, {}
    if draw(st.booleans()):
        batch["attention_mask"] = (np.arange(64)[None] < np.asarray(lengths)[:, None]).astype(np.int64)
    if variant == "fixres":
        patch, size = vision["patch_size"], vision["image_size"]
        height = width = size
        if draw(st.booleans()):
            height, width = (draw(st.integers(patch, 6 * patch)) for _ in range(2))
            call["interpolate_pos_encoding"] = True
        batch["pixel_values"] = rng.uniform(-1, 1, size=(B, 3, height, width))
    else:
        max_patches = draw(st.integers(1, 30))
        shapes = []
        for _ in range(B):
            h = draw(st.integers(1, max_patches))
            shapes.append((h, draw(st.integers(1, max_patches // h))))
        batch |= golden.naflex_patches(rng, shapes, max_patches, vision["patch_size"])
        batch["pixel_values"] = batch["pixel_values"].astype(np.float64)
    return {"vision": vision, "text": text}, batch, call


@pytest.mark.parametrize("variant", ["fixres", "naflex"])
@settings(max_examples=min(settings.default.max_examples, 10))
@given(data=st.data())
def test_random_config_gradients_match_autograd(variant, data):
    cfgs, batch, call = data.draw(training_cases(variant))
    with tempfile.TemporaryDirectory() as folder:
        model_cls = build_and_save(variant, "model", cfgs, folder, seed=data.draw(st.integers(0, 2**31)))
        loss, params, stages = grads_golden.autograd(model_cls, folder, batch, "float64", call)
        model = s2.load_model(folder, dtype="float64", fast=False)
    ours_loss, grads = loss_and_grads(model, batch | call)
    assert abs(float(ours_loss) - float(loss)) <= 1e-12 * max(1.0, abs(float(loss)))
    errors = gradient_errors({GRAD_PREFIX + k: v for k, v in flatten(grads).items()}, params)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1e-10, f"{worst}: relative error {errors[worst]:.3g}; config {cfgs}"


def demo_batch(size=8, seed=3):
    images, texts = draw_batch(np.random.default_rng(seed), size)
    return s2.load_processor(DEMO_NAFLEX)(text=texts, images=images)


def torch_step(optimizer_cls, settings_, batch, dtype="float32", steps=1, grads=None):
    """Demo model parameters before and after `steps` of torch.optim on autograd's gradients of one batch.

    float64: SDPA attention and the NaFlex resize in float64 (golden/make_golden_grads.py), else eager float32.
    Also returns autograd's gradients of the first step.
    """
    float64 = dtype == "float64"
    model = transformers.Siglip2Model.from_pretrained(DEMO_NAFLEX, attn_implementation="sdpa" if float64 else "eager")
    model = model.double() if float64 else model
    optimizer = optimizer_cls(model.parameters(), **settings_)
    tensors = {k: torch.from_numpy(np.asarray(v)) for k, v in batch.items()}
    tensors["pixel_values"] = tensors["pixel_values"].to(torch.float64 if float64 else torch.float32)
    before = {k: p.detach().clone().numpy() for k, p in model.named_parameters()}
    first = None
    for _ in range(steps):
        optimizer.zero_grad()
        with grads_golden.float64_resize() if float64 else contextlib.nullcontext():
            model(**tensors, return_loss=True).loss.backward()
        first = first or {k: p.grad.clone().numpy() for k, p in model.named_parameters()}
        optimizer.step()
    return before, {k: p.detach().numpy() for k, p in model.named_parameters()}, first


def step_error(ours, before, after, model):
    """max|ours - torch| over the parameters, as a fraction of torch's largest update (key biases left out).

    Key biases have a zero gradient by construction (softmax ignores a constant added to every key): both sides hold
    rounding noise there, which AdamW normalises to steps of +-lr, so they cannot be compared.
    """
    ours = dict(ours)
    D = model.config.vision.hidden_size
    key_part = ours["vision_model.head.attention.in_proj_bias"].copy()
    key_part[D : 2 * D] = after["vision_model.head.attention.in_proj_bias"][D : 2 * D]
    ours["vision_model.head.attention.in_proj_bias"] = key_part
    compared = [k for k in after if not k.endswith("k_proj.bias")]
    largest_update = max(float(np.abs(after[k] - before[k]).max()) for k in compared)
    worst = max(compared, key=lambda k: float(np.abs(ours[k] - after[k]).max()))
    return worst, float(np.abs(ours[worst] - after[worst]).max()) / largest_update


ADAMW = dict(lr=1e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=1e-4)
SGD_MOMENTUM = dict(lr=0.1, momentum=0.9, weight_decay=1e-4)


@pytest.mark.parametrize("ours_cls, torch_name, settings_, dtype, tolerance", [
    (SGD, "SGD", SGD_MOMENTUM, "float32", FLOAT32_STEP),
    (AdamW, "AdamW", ADAMW, "float64", 1e-9),
])  # fmt: skip
def test_one_optimizer_step_matches_torch(ours_cls, torch_name, settings_, dtype, tolerance):
    """Our gradients + our optimizer against autograd + torch.optim, one step from the demo model.

    AdamW is compared end to end in float64: its first step is lr * g / (|g| + eps) per element, so an element whose
    gradient is at float32 rounding level moves by an arbitrary +-lr in either implementation (the float32 optimizer
    itself is checked on torch's own gradients below).
    """
    batch = demo_batch()
    before, after, _ = torch_step(getattr(torch.optim, torch_name), settings_, batch, dtype)
    model = s2.load_model(DEMO_NAFLEX, dtype=dtype, fast=False)
    _, grads = loss_and_grads(model, batch)
    optimizer = ours_cls(**settings_)
    params, _ = optimizer.step(model.params, grads, optimizer.init(model.params))
    worst, error = step_error(flatten(params), before, after, model)
    assert error <= tolerance, f"{torch_name} {dtype}: {worst} differs from torch by {error:.3g} of the largest update"


def test_adamw_float32_on_torch_gradients_matches_torch_optim():
    """One float32 AdamW step fed torch's own gradients (the optimizer alone): within 2 float32 ulps of the larger of
    the parameter and its update (the update is rounded before it is added, so a parameter near 0 gets its error)."""
    batch = demo_batch()
    before, after, grads = torch_step(torch.optim.AdamW, ADAMW, batch, steps=1)
    model = s2.load_model(DEMO_NAFLEX, fast=False)
    optimizer = AdamW(**ADAMW)
    tree = nest({k: v for k, v in grads.items()})
    params, _ = optimizer.step(model.params, tree, optimizer.init(model.params))
    ours = flatten(params)
    for key, value in after.items():
        ulps = np.abs(ours[key] - value) / np.spacing(np.maximum(np.abs(value), np.abs(value - before[key])))
        assert float(ulps.max()) <= 2, f"{key}: {float(ulps.max())} float32 ulps from torch.optim.AdamW"


def test_finetuned_checkpoint_loads_in_transformers_and_matches():
    model, processor, losses = finetune(steps=2, batch=4, log=lambda line: None)
    assert len(losses) == 2 and all(np.isfinite(losses))
    batch = demo_batch(4, seed=11)
    with tempfile.TemporaryDirectory() as out:
        save_checkpoint(model, DEMO_NAFLEX, out)
        reloaded = transformers.Siglip2Model.from_pretrained(out, attn_implementation="eager")
        state = {k: v.numpy() for k, v in reloaded.state_dict().items()}
        ours_after_reload = s2.load_model(out)
    for key, value in flatten(model.params).items():
        assert np.array_equal(state[key], value), f"{key}: transformers loaded other values"
    with torch.no_grad():
        theirs = reloaded(**{k: torch.from_numpy(np.asarray(v)) for k, v in batch.items()}).logits_per_image.numpy()
    mine = ours_after_reload(**batch).logits_per_image
    assert np.abs(mine - theirs).max() <= 2e-5 * max(1.0, float(np.abs(theirs).max()))
    assert not np.array_equal(flatten(model.params)["logit_bias"], flatten(s2.load_model(DEMO_NAFLEX).params)["logit_bias"])
