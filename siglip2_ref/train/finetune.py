"""Fine-tune the shipped demo model with the NumPy backward, and write a checkpoint transformers loads.

    python -m siglip2_ref.train.finetune                        # 300 steps of 8 pairs, writes ./demo-finetuned
    python -m siglip2_ref.train.finetune --steps 50 --out /tmp/ft --variant fixres

The demo model (siglip2_ref/demo) was trained on "colour shape" captions and never learned where a shape is:
zero-shot over the 200 captions "a red circle on the left", ..., it is near chance on the position. Here it is
fine-tuned on captions that name the position (shapes.py draws fresh images each step, each batch holds
distinct (colour, shape, position) triples so that no off-diagonal pair is a true match), with AdamW and the
sigmoid loss; the zero-shot accuracy over those 200 captions and over the 40 "colour shape" labels is reported
before and after. The output folder has the demo's layout (config, tokenizer, preprocessor, model.safetensors).
"""

import argparse
import os
import shutil
import sys
import time

import numpy as np

from ..demo import demo_path, shapes
from ..model.model import Model
from ..preprocess.processor import load_processor
from ..tasks.pipelines import zero_shot
from ..checkpoint.config import load_config
from ..checkpoint.weights import load_params
from .grads import flatten, loss_and_grads
from .optim import AdamW

POSITION_TEMPLATES = tuple(t for t in shapes.TEMPLATES if "{p}" in t)
TRIPLE = "{a} {c} {s} {p}"  # the zero-shot captions that name the position


def draw_batch(rng, size):
    """`size` images with captions naming colour, shape and position; the (colour, shape, position) are distinct."""
    triples = [(c, s, p) for c in shapes.COLOURS for s in shapes.SHAPES for p in shapes.POSITIONS]
    chosen = [triples[i] for i in rng.choice(len(triples), size=size, replace=False)]
    images = [shapes.draw(c, s, p, rng, size=shapes.random_size(rng)) for c, s, p in chosen]
    texts = [shapes.caption(c, s, p, POSITION_TEMPLATES[rng.integers(len(POSITION_TEMPLATES))]) for c, s, p in chosen]
    return images, texts


def evaluate(model, processor, n, seed):
    """(top-1 over the 200 colour-shape-position captions, top-1 over the 40 colour-shape labels) on n fresh images."""
    rng = np.random.default_rng(seed)
    drawn = [shapes.sample(rng) for _ in range(n)]
    images = [image for image, _, _ in drawn]
    truths = [triple for _, _, triple in drawn]
    captions = [shapes.caption(c, s, p, TRIPLE) for c in shapes.COLOURS for s in shapes.SHAPES for p in shapes.POSITIONS]
    full = zero_shot(model, processor, images, captions, template="{}")
    pairs = zero_shot(model, processor, images, shapes.labels())
    top_triple = np.mean([ranked[0][0] == shapes.caption(*t, TRIPLE) for ranked, t in zip(full, truths)])
    top_pair = np.mean([ranked[0][0] == f"{t[0]} {t[1]}" for ranked, t in zip(pairs, truths)])
    return float(top_triple), float(top_pair)


def save_checkpoint(model, source, out):
    """`source`'s folder with model.safetensors replaced by the current parameters (float32, the same keys)."""
    from safetensors.numpy import save_file

    os.makedirs(out, exist_ok=True)
    for name in os.listdir(source):
        if name != "model.safetensors":
            shutil.copy(os.path.join(source, name), os.path.join(out, name))
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in flatten(model.params).items()}
    save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})


def finetune(variant="naflex", steps=300, batch=8, lr=5e-4, weight_decay=1e-4, seed=0, log_every=25, log=print):
    """Train the demo model `variant` in place of a copy; returns (model, processor, [loss per step])."""
    source = demo_path(variant)
    config = load_config(source)
    model = Model(config, load_params(source, config, "float32"), path=source)  # the readable encoder, float32
    processor = load_processor(source)
    optimizer = AdamW(lr=lr, weight_decay=weight_decay)
    state = optimizer.init(model.params)
    rng = np.random.default_rng(seed)
    losses, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        images, texts = draw_batch(rng, batch)
        loss, grads = loss_and_grads(model, processor(text=texts, images=images))
        model.params, state = optimizer.step(model.params, grads, state)
        losses.append(float(loss))
        if step % log_every == 0 or step == steps:
            recent = np.mean(losses[-log_every:])
            log(f"step {step:4d}  loss {recent:.4f} (mean of the last {min(log_every, step)})  {time.perf_counter() - start:6.1f} s")
    return model, processor, losses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", default="naflex", choices=("naflex", "fixres"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8, help="pairs per step (distinct colour-shape-position triples)")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-images", type=int, default=200)
    parser.add_argument("--out", default="demo-finetuned", help="output checkpoint folder")
    args = parser.parse_args(argv)
    if not 2 <= args.batch <= 200 or args.steps < 1:
        parser.error("--batch must be 2..200 (distinct triples) and --steps at least 1")
    source = demo_path(args.variant)
    before_model = Model(load_config(source), load_params(source, load_config(source), "float32"), path=source)
    before = evaluate(before_model, load_processor(source), args.eval_images, seed=12345)
    print(f"before: top-1 {before[0]:.3f} over 200 'colour shape position' captions, {before[1]:.3f} over 40 'colour shape' labels")
    model, processor, losses = finetune(args.variant, args.steps, args.batch, args.lr, seed=args.seed)
    after = evaluate(model, processor, args.eval_images, seed=12345)
    print(f"after:  top-1 {after[0]:.3f} over 200 'colour shape position' captions, {after[1]:.3f} over 40 'colour shape' labels")
    first, last = np.mean(losses[:25]), np.mean(losses[-25:])
    print(f"loss: mean of the first 25 steps {first:.4f}, of the last 25 {last:.4f}")
    save_checkpoint(model, source, args.out)
    print(f"wrote {args.out} (transformers: {load_config(source).architecture}.from_pretrained({args.out!r}))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
