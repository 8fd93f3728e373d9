"""Fine-tune the shipped demo model with the NumPy backward, and write a checkpoint transformers loads.

    python -m siglip2_ref.train.finetune                        # 300 steps of 16 pairs, writes ./demo-finetuned
    python -m siglip2_ref.train.finetune --steps 50 --out /tmp/ft --variant fixres

The task is a domain shift: photographic negatives of the drawings the demo model was trained on (shapes.py,
colours inverted with PIL.ImageOps.invert). The demo model has never seen them: zero-shot over the 40
"colour shape" labels it names no negative correctly. Fine-tuning on negatives with their usual captions
(fresh drawings every step; each batch holds distinct (colour, shape) pairs so that no off-diagonal pair is a
true match), with AdamW and the sigmoid loss, teaches it the new domain. Half of every batch stays ordinary
drawings (`--negatives`, the fraction), so that it does not forget them; zero-shot top-1 on negatives and on
ordinary drawings is reported before and after. The output folder has the demo's layout (config, tokenizer,
preprocessor, model.safetensors).
"""

import argparse
import os
import shutil
import sys
import time

import numpy as np

from PIL import ImageOps

from ..demo import demo_path, shapes
from ..model.model import Model
from ..preprocess.processor import load_processor
from ..tasks.pipelines import zero_shot
from ..checkpoint.config import load_config
from ..checkpoint.weights import load_params
from .grads import flatten, loss_and_grads
from .optim import AdamW

PAIRS = [(c, s) for c in shapes.COLOURS for s in shapes.SHAPES]  # the 40 "colour shape" labels


def draw_batch(rng, size, negatives=0.5):
    """`size` captioned drawings, the first `negatives` fraction of them inverted; all (colour, shape) pairs differ."""
    chosen = [PAIRS[i] for i in rng.choice(len(PAIRS), size=size, replace=False)]
    images, texts = [], []
    for k, (colour, shape) in enumerate(chosen):
        negative = k < round(negatives * size)
        position = shapes.POSITIONS[rng.integers(len(shapes.POSITIONS))]
        image = shapes.draw(colour, shape, position, rng, size=shapes.random_size(rng))
        images.append(ImageOps.invert(image) if negative else image)
        texts.append(shapes.caption(colour, shape, position, shapes.TEMPLATES[rng.integers(len(shapes.TEMPLATES))]))
    return images, texts


def evaluate(model, processor, n, seed):
    """Zero-shot top-1 over the 40 "colour shape" labels on n fresh drawings: (on their negatives, on the originals)."""
    rng = np.random.default_rng(seed)
    drawn = [shapes.sample(rng) for _ in range(n)]
    truths = [f"{colour} {shape}" for _, _, (colour, shape, _) in drawn]
    scores = []
    for images in ([ImageOps.invert(image) for image, _, _ in drawn], [image for image, _, _ in drawn]):
        answers = zero_shot(model, processor, images, shapes.labels())
        scores.append(float(np.mean([ranked[0][0] == truth for ranked, truth in zip(answers, truths)])))
    return tuple(scores)


def save_checkpoint(model, source, out):
    """`source`'s folder with model.safetensors replaced by the current parameters (float32, the same keys)."""
    from safetensors.numpy import save_file

    os.makedirs(out, exist_ok=True)
    for name in os.listdir(source):
        if name != "model.safetensors":
            shutil.copy(os.path.join(source, name), os.path.join(out, name))
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in flatten(model.params).items()}
    save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})


def finetune(variant="naflex", steps=300, batch=16, lr=5e-4, weight_decay=1e-4, seed=0, log_every=25, log=print,
             negatives=0.5):  # fmt: skip
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
        images, texts = draw_batch(rng, batch, negatives)
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
    parser.add_argument("--batch", type=int, default=16, help="pairs per step (distinct colour-shape pairs, at most 40)")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--negatives", type=float, default=0.5, help="fraction of each batch that is inverted (0..1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-images", type=int, default=200)
    parser.add_argument("--out", default="demo-finetuned", help="output checkpoint folder")
    args = parser.parse_args(argv)
    if not 2 <= args.batch <= len(PAIRS) or args.steps < 1:
        parser.error(f"--batch must be 2..{len(PAIRS)} (distinct colour-shape pairs) and --steps at least 1")
    if not 0 <= args.negatives <= 1:
        parser.error("--negatives must be a fraction between 0 and 1")
    source = demo_path(args.variant)
    before_model = Model(load_config(source), load_params(source, load_config(source), "float32"), path=source)
    before = evaluate(before_model, load_processor(source), args.eval_images, seed=12345)
    print(f"before: zero-shot top-1 over 40 labels {before[0]:.3f} on negatives, {before[1]:.3f} on the original drawings")
    model, processor, losses = finetune(args.variant, args.steps, args.batch, args.lr, seed=args.seed, negatives=args.negatives)
    after = evaluate(model, processor, args.eval_images, seed=12345)
    print(f"after:  zero-shot top-1 over 40 labels {after[0]:.3f} on negatives, {after[1]:.3f} on the original drawings")
    first, last = np.mean(losses[:25]), np.mean(losses[-25:])
    print(f"loss: mean of the first 25 steps {first:.4f}, of the last 25 {last:.4f}")
    save_checkpoint(model, source, args.out)
    print(f"wrote {args.out} (transformers: {load_config(source).architecture}.from_pretrained({args.out!r}))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
