"""Generate the gradient goldens: torch autograd's gradients of the sigmoid loss on the tiny golden checkpoints.

    python golden/make_golden_grads.py            # rewrites golden/grads/ (one file per case, optim_f64, manifest.json)
    python golden/make_golden_grads.py --check    # regenerates into a temp dir and compares bit for bit

For each two-tower checkpoint of golden/model/checkpoints (`fixres`, `naflex`) and a square batch of 4 pairs
(NaFlex with padding and garbage in the padded patch rows), transformers computes `loss` with
`return_loss=True` in float64 and torch autograd computes d loss / d every parameter (stored as
`grad.<checkpoint key>`) and d loss / d the named stages (`grad.vision.hidden_states.{i}`, ...; the names of
porting/stages.py). golden/README.md, "Gradient goldens", describes the format.

Float64 exactly: SDPA attention (eager's softmax runs in float32) and, for NaFlex, the position resize patched to
run in the model's dtype (transformers 5.x rounds it through float32 even for a float64 model; the patched
function is the same closed form, `resize_float64` below). Without the patch NaFlex gradients would only be
float32-accurate. The float32 twin (eager, unpatched) is run too, and its worst gradient error against the float64
truth is recorded in the meta as `torch_float32_rel` (what torch itself achieves in float32).
"""

import argparse
import contextlib
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import transformers
from safetensors.numpy import load_file, save_file
from transformers.models.siglip2 import modeling_siglip2

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_golden import EXPECTED, NAFLEX_MAX, SEED, VISION_NAFLEX, naflex_patches, fixres_pixels, text_ids, versions  # noqa: E402

FORMAT = 1
TEXTS = [6, 17, 1, 64]  # lengths incl. EOS, as the forward goldens: short, medium, EOS only, full
NAFLEX_SHAPES = [(4, 4), (2, 3), (6, 1), (3, 5)]  # every image padded (max 24 patches)
CASES = {"fixres_grad_f64": "fixres", "naflex_grad_f64": "naflex"}
CLASSES = {"fixres": transformers.SiglipModel, "naflex": transformers.Siglip2Model}


def make_batches():
    rng = np.random.default_rng(SEED + 18)  # issue 18; independent of the forward goldens' inputs
    return {
        "fixres": {"input_ids": text_ids(rng, TEXTS), "pixel_values": fixres_pixels(rng, 4, 40, 40)},
        "naflex": {"input_ids": text_ids(rng, TEXTS), **naflex_patches(rng, NAFLEX_SHAPES, NAFLEX_MAX, VISION_NAFLEX["patch_size"])},
    }


def resize_float64(positional_embeddings, spatial_shapes, max_length):
    """transformers' Siglip2VisionEmbeddings.resize_positional_embeddings in the table's dtype (not float32)."""
    dtype, device = positional_embeddings.dtype, positional_embeddings.device
    grid_size = positional_embeddings.shape[0]
    sizes = spatial_shapes.to(dtype)[:, None]
    positions = torch.arange(max_length, device=device, dtype=dtype)[None, :, None]
    rows = torch.div(positions, sizes[..., 1:], rounding_mode="floor")
    output_index = torch.cat([rows, positions - rows * sizes[..., 1:]], dim=-1)
    output_index = output_index * (positions < sizes.prod(-1, keepdim=True))
    scale = grid_size / sizes
    support = scale.clamp(min=1)
    center = (output_index + 0.5) * scale - 0.5
    source = torch.arange(grid_size, device=device, dtype=dtype)
    weights = (1 - (source - center[..., None]).abs().div(support[..., None])).clamp(min=0)
    weights = weights / weights.sum(-1, keepdim=True)
    weights = (weights[..., 0, :, None] * weights[..., 1, None, :]).flatten(-2)
    return weights @ positional_embeddings.reshape(-1, positional_embeddings.shape[-1])


class StageGrads:
    """Forward hooks keeping (with retain_grad) the outputs whose gradients are stored as `grad.<stage>`."""

    def __init__(self, model):
        self.kept, self.handles = {}, []
        for tower, module in (("vision", model.vision_model), ("text", model.text_model)):
            self._keep(f"{tower}.hidden_states.0", module.embeddings)
            for i, layer in enumerate(module.encoder.layers):
                self._keep(f"{tower}.hidden_states.{i + 1}", layer)
        self._keep("vision.last_hidden_state", model.vision_model.post_layernorm)
        self._keep("vision.pooler_output", model.vision_model.head)
        self._keep("text.last_hidden_state", model.text_model.final_layer_norm)
        self._keep("text.pooler_output", model.text_model.head)

    def _keep(self, name, module):
        def hook(mod, args, output):
            output = output[0] if isinstance(output, tuple) else output
            output.retain_grad()
            self.kept[name] = output
        self.handles.append(module.register_forward_hook(hook))

    def grads(self):
        for h in self.handles:
            h.remove()
        return {f"grad.{name}": t.grad for name, t in self.kept.items()}


@contextlib.contextmanager
def float64_resize():
    """Within the block, transformers' NaFlex position resize runs in the table's dtype (`resize_float64`)."""
    cls = modeling_siglip2.Siglip2VisionEmbeddings
    original = cls.__dict__["resize_positional_embeddings"]  # the staticmethod itself
    cls.resize_positional_embeddings = staticmethod(resize_float64)
    try:
        yield
    finally:
        cls.resize_positional_embeddings = original


def autograd(model_cls, folder, batch, dtype, call=None):
    """(loss, {grad.<param key>}, {grad.<stage>}) from transformers + torch autograd (float64: SDPA, float64 resize)."""
    float64 = dtype == "float64"
    model = model_cls.from_pretrained(folder, attn_implementation="sdpa" if float64 else "eager")
    model = model.double() if float64 else model
    tensors = {k: torch.from_numpy(v) for k, v in batch.items()}
    tensors["pixel_values"] = tensors["pixel_values"].to(torch.float64 if float64 else torch.float32)
    stages = StageGrads(model)
    with float64_resize() if float64 else contextlib.nullcontext():
        out = model(**tensors, **(call or {}), return_loss=True)
    out.image_embeds.retain_grad()
    out.text_embeds.retain_grad()
    out.loss.backward()
    stage_grads = stages.grads() | {"grad.image_embeds": out.image_embeds.grad, "grad.text_embeds": out.text_embeds.grad}
    param_grads = {f"grad.{k}": p.grad for k, p in model.named_parameters()}
    missing = [k for k, g in param_grads.items() if g is None]
    assert not missing, f"{folder}: no gradient for {missing}"
    as_numpy = lambda d: {k: v.detach().numpy() for k, v in d.items()}  # noqa: E731
    return out.loss.detach().numpy(), as_numpy(param_grads), as_numpy(stage_grads)


# One golden of the optimizers themselves: torch.optim applied to a few parameters of the naflex checkpoint with the
# naflex case's float64 gradients, two steps (the gradient, then minus half of it), in float64.
OPTIM_KEYS = ["logit_scale", "logit_bias", "vision_model.head.probe", "vision_model.encoder.layers.0.mlp.fc1.weight",
              "text_model.encoder.layers.1.mlp.fc2.bias", "vision_model.embeddings.position_embedding.weight"]  # fmt: skip
OPTIMIZERS = {"adamw": ("AdamW", dict(lr=1e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=1e-4)),
              "sgd": ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=1e-4))}  # fmt: skip


def optimizer_golden(folder, grads):
    """{'param.<key>', 'grad.<key>', '<optimizer>.<key>' (after two steps)} for OPTIM_KEYS."""
    from safetensors.numpy import load_file as load

    start = {k: v.astype(np.float64) for k, v in load(str(folder / "model.safetensors")).items() if k in OPTIM_KEYS}
    arrays = {f"param.{k}": v for k, v in start.items()} | {f"grad.{k}": grads[f"grad.{k}"] for k in OPTIM_KEYS}
    for name, (cls_name, settings) in OPTIMIZERS.items():
        tensors = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
        optimizer = getattr(torch.optim, cls_name)(list(tensors.values()), **settings)
        for factor in (1.0, -0.5):
            for k, t in tensors.items():
                t.grad = torch.from_numpy(factor * grads[f"grad.{k}"])
            optimizer.step()
        arrays |= {f"{name}.{k}": t.detach().numpy() for k, t in tensors.items()}
    return arrays


def rel(a, b):
    return float(np.abs(a.astype(np.float64) - b).max() / (np.abs(b).max() or 1.0))


def generate(root):
    root.mkdir(parents=True, exist_ok=True)
    batches, entries = make_batches(), []
    for case, ckpt in CASES.items():
        folder = HERE / "model" / "checkpoints" / ckpt
        loss, params, stages = autograd(CLASSES[ckpt], folder, batches[ckpt], "float64")
        loss32, params32, _ = autograd(CLASSES[ckpt], folder, batches[ckpt], "float32")
        torch32 = max(rel(params32[k], params[k]) for k in params if "k_proj.bias" not in k)
        arrays = {f"input.{k}": v for k, v in batches[ckpt].items()} | {"loss": loss} | params | stages
        meta = {"format": FORMAT, "checkpoint": ckpt, "dtype": "float64", **versions(), "seed": SEED + 18,
                "attn_implementation": "sdpa", "position_resize": "float64 (patched, see make_golden_grads.py)",
                "call": {"return_loss": True}, "torch_float32_rel": torch32, "torch_float32_loss": float(loss32),
                "generator": "golden/make_golden_grads.py",
                "description": f"d loss / d every parameter and named stage of {ckpt}, 4 pairs, autograd in float64"}  # fmt: skip
        path = root / f"{case}.safetensors"
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path),
                  metadata={"meta": json.dumps(meta, sort_keys=True)})
        entries.append({"case": case, "file": path.name, "checkpoint": ckpt, "num_tensors": len(arrays),
                        "bytes": path.stat().st_size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                        "torch_float32_rel": torch32})  # fmt: skip
        print(f"  {case:18s} {len(arrays):3d} tensors {path.stat().st_size / 1024:7.1f} KiB  loss {float(loss):.6f}  "
              f"torch float32 vs float64: worst parameter-relative {torch32:.2e}")  # fmt: skip
    arrays = optimizer_golden(HERE / "model" / "checkpoints" / "naflex", params)  # params: the naflex case, last
    meta = {"format": FORMAT, **versions(), "generator": "golden/make_golden_grads.py", "checkpoint": "naflex",
            "dtype": "float64", "optimizers": {k: {"class": c, **kw} for k, (c, kw) in OPTIMIZERS.items()},
            "steps": "two: the naflex_grad_f64 gradient, then -0.5 times it", "keys": OPTIM_KEYS}  # fmt: skip
    path = root / "optim_f64.safetensors"
    save_file(arrays, str(path), metadata={"meta": json.dumps(meta, sort_keys=True)})
    entries.append({"case": "optim_f64", "file": path.name, "checkpoint": "naflex", "num_tensors": len(arrays),
                    "bytes": path.stat().st_size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})  # fmt: skip
    print(f"  optim_f64          {len(arrays):3d} tensors {path.stat().st_size / 1024:7.1f} KiB  torch.optim AdamW and SGD, two steps")
    manifest = {"format": FORMAT, **versions(), "generator": "golden/make_golden_grads.py", "cases": entries}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "grads")
    parser.add_argument("--check", action="store_true", help="regenerate into a temp dir and compare bit for bit")
    args = parser.parse_args(argv)
    for lib, want in EXPECTED.items():
        if versions()[lib] != want:
            print(f"warning: {lib} {versions()[lib]} != {want}; review every diff before committing", file=sys.stderr)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    if not args.check:
        generate(args.out)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        bad = [f"{case}: {k}" for case in [*CASES, "optim_f64"] for k, v in load_file(Path(tmp) / f"{case}.safetensors").items()
               if not np.array_equal(v, load_file(args.out / f"{case}.safetensors")[k])]  # fmt: skip
    print("\n".join(bad) if bad else "check: regenerated gradient goldens equal the committed ones")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
