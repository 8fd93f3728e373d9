"""Train the two tiny demo SigLIP 2 checkpoints shipped in siglip2_ref/demo/ (NaFlex and FixRes).

A real checkpoint cannot be downloaded everywhere, and a random model teaches a new user nothing, so the
package ships two small models trained here, in about 18 minutes on one CPU core, on synthetic captioned
images of coloured shapes (siglip2_ref/demo/shapes.py). They are real transformers models (`Siglip2Model`,
model_type "siglip2", and `SiglipModel`, model_type "siglip") trained with the real sigmoid loss
(`return_loss=True`), saved in the layout of an official checkpoint folder, and they answer zero-shot
questions such as "red circle" vs "blue star" correctly.

    python golden/train_demo.py                    # both variants, writes siglip2_ref/demo/{naflex,fixres}
    python golden/train_demo.py --variant naflex   # one of them
    python golden/train_demo.py --out /tmp/demo    # somewhere else

Needs torch and transformers (the versions pinned in pyproject's `oracle` extra); the package never does.

Recipe (all seeded, so a rerun with the same library versions and thread count gives the same files):
- tokenizer: a Gemma-style SentencePiece BPE trained on every caption (golden/toy_tokenizer.py);
- images: a pool of 16,000 drawn once (shapes.draw, random sizes 80-160 px), preprocessed by transformers' own
  PIL-backend image processors (this project's default numerics), shared by both variants;
- batches of 64 distinct (colour, shape, position) triples; an image whose colour and shape also occur elsewhere
  in the batch gets a caption naming its position, so that no off-diagonal pair of a batch is a true match;
- AdamW, linear warm-up then cosine decay, logit scale/bias initialised to log(10) / -10 as in SigLIP;
- NaFlex from scratch (3000 steps); FixRes warm-started from it (800 steps), see `warm_start`;
- evaluation: fresh images (another seed), labels "colour shape", template "This is a photo of {}.", texts padded
  to 64, sigmoid probabilities, top-1 accuracy, using the checkpoint folder as transformers loads it.
"""

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from siglip2_ref.demo import shapes  # noqa: E402
from toy_tokenizer import make_gemma_style_tokenizer  # noqa: E402

SEED = 0
EVAL_SEED = 12345
VOCAB_SIZE = 400
TEXT_LENGTH = 64
TEMPLATE = "This is a photo of {}."

# Both towers of both variants share one width; sized to train in minutes and to stay < 1 MB each in float32.
TOWER = dict(hidden_size=48, intermediate_size=192, num_hidden_layers=3, num_attention_heads=4)
TEXT_TOWER = dict(TOWER, num_hidden_layers=1)  # captions are short bags of words; one layer reads them

# NaFlex is trained from scratch. FixRes starts from the trained NaFlex weights (same towers; the 8x8 position
# grid of a 128x128 image at patch 16 is the NaFlex grid itself, and the patch Linear is re-laid out as the
# Conv2d kernel) and is trained further on its own square-resized inputs.
VARIANTS = {
    "naflex": dict(
        vision=dict(TOWER, patch_size=16, num_patches=64),  # 8x8 learned position grid
        image_processor=dict(patch_size=16, max_num_patches=64),
        steps=3000,
        lr=2e-3,
        warm_start=None,
    ),
    "fixres": dict(
        vision=dict(TOWER, patch_size=16, image_size=128),  # 8x8 patches of 16 px
        image_processor=dict(size={"height": 128, "width": 128}, resample=2),  # 2 = bilinear, as the Hub files
        steps=800,
        lr=1e-3,
        warm_start="naflex",
    ),
}

POOL_SIZE = 16000  # training images drawn once: 80 per (colour, shape, position)
BATCH = 64
WEIGHT_DECAY = 1e-4
WARMUP = 100
LOGIT_LR_MULT = 10.0  # logit_scale / logit_bias would need far more steps than we have at the base rate


# ----------------------------------------------------------------------------------------------- setup


def all_captions():
    """Every caption the training can produce (the tokenizer's training corpus)."""
    return sorted(
        {
            shapes.caption(c, s, p, t)
            for c in shapes.COLOURS
            for s in shapes.SHAPES
            for p in shapes.POSITIONS
            for t in shapes.TEMPLATES
        }
    )


def triples():
    """All (colour, shape, position) combinations in a fixed order."""
    return [(c, s, p) for c in shapes.COLOURS for s in shapes.SHAPES for p in shapes.POSITIONS]


def make_model(variant, vocab_size):
    """A freshly initialised transformers model of the variant, seeded."""
    from transformers import SiglipConfig, SiglipModel, Siglip2Config, Siglip2Model

    torch.manual_seed(SEED)
    text = dict(TEXT_TOWER, vocab_size=vocab_size, max_position_embeddings=TEXT_LENGTH)
    vision = VARIANTS[variant]["vision"]
    if variant == "naflex":
        model = Siglip2Model(Siglip2Config(text_config=text, vision_config=vision))
    else:
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
    with torch.no_grad():  # SigLIP's initialisation of the two learned scalars (transformers zeroes them)
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-10.0)
    return model


def make_image_processor(variant):
    """transformers' PIL-backend image processor of the variant (the project's default numerics)."""
    from transformers import SiglipImageProcessorPil, Siglip2ImageProcessorPil

    cls = Siglip2ImageProcessorPil if variant == "naflex" else SiglipImageProcessorPil
    return cls(**VARIANTS[variant]["image_processor"])


def save_preprocessor_config(processor, variant, out_dir):
    """preprocessor_config.json with the fields of the Hub files (processor_class, do_convert_rgb null)."""
    processor.save_pretrained(out_dir)
    path = os.path.join(out_dir, "preprocessor_config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["do_convert_rgb"] = None
    cfg["processor_class"] = "Siglip2Processor" if variant == "naflex" else "SiglipProcessor"
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def load_tokenizer(out_dir):
    """The tokenizer exactly as transformers loads it from the finished checkpoint folder."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(out_dir)


def tokenize(tokenizer, texts):
    """[T, 64] int64 ids: EOS appended, right-padded with 0 to 64, as the official processors do."""
    enc = tokenizer(texts, padding="max_length", max_length=TEXT_LENGTH, truncation=True, return_tensors="pt")
    return enc["input_ids"]


# ----------------------------------------------------------------------------------------------- data


def draw_pool(n, rng):
    """n images with their (colour, shape, position) index; every combination equally often."""
    combos = triples()
    index = np.arange(n) % len(combos)
    rng.shuffle(index)
    images = [shapes.draw(*combos[k], rng, size=shapes.random_size(rng)) for k in index]
    return images, index


def preprocess(processor, images, chunk=500):
    """Pixel tensors for all images through the transformers image processor, in chunks."""
    parts = [processor(images=images[i : i + chunk], return_tensors="pt") for i in range(0, len(images), chunk)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0].keys()}


class PixelPool:
    """The processor's outputs for the training pool, kept as uint8 codes (4x smaller) and expanded exactly.

    Each float the PIL-backend processor writes is a function of one uint8 pixel value (rescale, normalise), so a
    256-entry table maps codes back to the very same floats; NaFlex padding (zeros) is restored from the mask.
    Every chunk is checked bit for bit against the processor's own output.
    """

    def __init__(self, processor, images, chunk=500):
        self.lut = torch.full((256,), float("nan"))
        parts = []
        for i in range(0, len(images), chunk):
            out = dict(processor(images=images[i : i + chunk], return_tensors="pt"))
            pixels = out.pop("pixel_values")
            codes = torch.round((pixels + 1) * 127.5).to(torch.uint8)
            real = out.get("pixel_attention_mask", torch.ones(codes.shape[:2])).bool()  # NaFlex: not padding
            self.lut[codes[real].reshape(-1).long()] = pixels[real].reshape(-1)
            parts.append({"codes": codes, **out})
            if not torch.equal(self.expand(parts[-1]), pixels):
                raise AssertionError("the uint8 pixel pool does not reproduce the processor's pixel_values")
        self.data = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    def expand(self, part):
        """pixel_values of a dict of stored rows."""
        pixels = self.lut[part["codes"].long()]
        if "pixel_attention_mask" in part:  # NaFlex: padded patches are zeros
            pixels = torch.where(part["pixel_attention_mask"].bool()[:, :, None], pixels, torch.zeros(()))
        return pixels

    def __getitem__(self, rows):
        """The model inputs of pool rows `rows`."""
        part = {k: v[rows] for k, v in self.data.items()}
        return {"pixel_values": self.expand(part), **{k: v for k, v in part.items() if k != "codes"}}


def caption_table(tokenizer):
    """ids[triple, template, 64] and whether each template names the position."""
    combos = triples()
    texts = [shapes.caption(c, s, p, t) for (c, s, p) in combos for t in shapes.TEMPLATES]
    ids = tokenize(tokenizer, texts).reshape(len(combos), len(shapes.TEMPLATES), TEXT_LENGTH)
    has_position = torch.tensor(["{p}" in t for t in shapes.TEMPLATES])
    return ids, has_position


# ----------------------------------------------------------------------------------------------- train


def lr_at(step, steps, lr):
    """Linear warm-up to lr, then cosine decay to zero."""
    if step < WARMUP:
        return lr * (step + 1) / WARMUP
    return 0.5 * lr * (1 + math.cos(math.pi * (step - WARMUP) / max(1, steps - WARMUP)))


def make_optimizer(model):
    """AdamW; the two logit scalars learn LOGIT_LR_MULT times faster and without weight decay."""
    scalars = [model.logit_scale, model.logit_bias]
    rest = [p for n, p in model.named_parameters() if n not in ("logit_scale", "logit_bias")]
    groups = [
        dict(params=rest, weight_decay=WEIGHT_DECAY, lr_mult=1.0),
        dict(params=scalars, weight_decay=0.0, lr_mult=LOGIT_LR_MULT),
    ]
    return torch.optim.AdamW(groups)


def train(model, pixels, pool_index, ids, has_position, steps, lr, rng, log_every=100, probe=None, probe_every=0):
    """AdamW on the sigmoid loss; returns the losses. `probe(model)` is printed every `probe_every` steps."""
    opt = make_optimizer(model)
    by_triple = [np.flatnonzero(pool_index == k) for k in range(ids.shape[0])]  # pool rows of each triple
    losses, t0 = [], time.time()
    model.train()
    for step in range(steps):
        rows, input_ids = make_batch(by_triple, ids, has_position, rng)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr) * g["lr_mult"]
        batch = pixels[rows]
        loss = model(input_ids=input_ids, **batch, return_loss=True).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % log_every == 0 or step == steps - 1:
            print(
                f"  step {step:5d}  loss {np.mean(losses[-log_every:]):.4f}  "
                f"scale {model.logit_scale.exp().item():6.2f}  bias {model.logit_bias.item():6.2f}  "
                f"{time.time() - t0:6.1f}s",
                flush=True,
            )
        if probe_every and (step + 1) % probe_every == 0:
            model.eval()
            print("   probe", step + 1, probe(model), flush=True)
            model.train()
    model.eval()
    return losses


def make_batch(by_triple, ids, has_position, rng):
    """(pool rows, input_ids [BATCH, 64]) of one batch of distinct triples with unambiguous captions."""
    n_triples = ids.shape[0]
    chosen = rng.choice(n_triples, size=BATCH, replace=False)  # distinct (colour, shape, position)
    pair = chosen // len(shapes.POSITIONS)  # (colour, shape) index; triples() puts positions innermost
    shared = np.bincount(pair, minlength=n_triples)[pair] > 1  # needs a caption that names the position
    with_pos = np.flatnonzero(has_position.numpy())
    n_templates = ids.shape[1]
    templates = np.array([with_pos[rng.integers(len(with_pos))] if s else rng.integers(n_templates) for s in shared])
    rows = np.array([by_triple[k][rng.integers(len(by_triple[k]))] for k in chosen])
    return torch.as_tensor(rows), ids[torch.as_tensor(chosen), torch.as_tensor(templates)]


# ----------------------------------------------------------------------------------------------- eval


@torch.no_grad()
def zero_shot_accuracy(model, image_processor, tokenizer, n=400, seed=EVAL_SEED):
    """Top-1 accuracy on colour x shape labels for n fresh images, as the zero-shot pipeline scores them."""
    labels = shapes.labels()
    rng = np.random.default_rng(seed)
    samples = [shapes.sample(rng) for _ in range(n)]
    pixels = preprocess(image_processor, [s[0] for s in samples])
    input_ids = tokenize(tokenizer, [TEMPLATE.format(label) for label in labels])
    out = model(input_ids=input_ids, **pixels)
    probs = torch.sigmoid(out.logits_per_image)  # [n, labels]
    best = probs.argmax(dim=1).numpy()
    truth = np.array([labels.index(f"{c} {s}") for _, _, (c, s, _) in samples])
    colour_ok = [labels[b].split()[0] == labels[t].split()[0] for b, t in zip(best, truth)]
    shape_ok = [labels[b].split()[1] == labels[t].split()[1] for b, t in zip(best, truth)]
    return {
        "top1": float(np.mean(best == truth)),
        "colour": float(np.mean(colour_ok)),
        "shape": float(np.mean(shape_ok)),
        "mean_prob_true": float(probs[np.arange(n), truth].mean()),
        "n": n,
    }


# ----------------------------------------------------------------------------------------------- main


def warm_start(fixres_model, naflex_dir):
    """Copy a trained NaFlex checkpoint into a FixRes model whose patch grid equals the NaFlex position grid."""
    from transformers import Siglip2Model

    state = Siglip2Model.from_pretrained(naflex_dir).state_dict()
    key = "vision_model.embeddings.patch_embedding.weight"
    d, p = state[key].shape[0], fixres_model.config.vision_config.patch_size
    state[key] = state[key].reshape(d, p, p, 3).permute(0, 3, 1, 2).contiguous()  # d (py px c) -> d c py px
    fixres_model.load_state_dict(state, strict=True)
    print(f"  warm start from {naflex_dir}", flush=True)


def build(variant, out_dir, images, pool_index, tokenizer_dir, steps, probe_every=0):
    """Train one variant and write its checkpoint folder; returns a summary dict."""
    t0, c0 = time.time(), time.process_time()
    spec = VARIANTS[variant]
    os.makedirs(out_dir, exist_ok=True)
    for name in ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(tokenizer_dir, name), os.path.join(out_dir, name))
    model = make_model(variant, VOCAB_SIZE)
    model.config.save_pretrained(out_dir)  # so that the tokenizer loads with this model type's rules
    image_processor = make_image_processor(variant)
    save_preprocessor_config(image_processor, variant, out_dir)
    tokenizer = load_tokenizer(out_dir)
    ids, has_position = caption_table(tokenizer)
    pixels = PixelPool(image_processor, images)
    print(f"[{variant}] preprocessed {len(images)} images in {time.time() - t0:.1f}s", flush=True)
    if spec["warm_start"]:
        warm_start(model, os.path.join(os.path.dirname(out_dir), spec["warm_start"]))
    probe = lambda m: zero_shot_accuracy(m, image_processor, tokenizer, n=200)  # noqa: E731
    t1 = time.time()
    rng = np.random.default_rng(SEED + 1)
    losses = train(model, pixels, pool_index, ids, has_position, steps, spec["lr"], rng, probe=probe,
                   probe_every=probe_every)  # fmt: skip
    train_s = time.time() - t1
    model.save_pretrained(out_dir)
    acc = evaluate_folder(variant, out_dir)
    print(f"[{variant}] trained {steps} steps in {train_s:.0f}s; zero-shot {acc}", flush=True)
    return {
        "steps": steps,
        "train_seconds": round(train_s, 1),
        "wall_seconds": round(time.time() - t0, 1),
        "cpu_seconds": round(time.process_time() - c0, 1),
        "final_loss": round(float(np.mean(losses[-100:])), 4),
        "logit_scale_exp": round(model.logit_scale.exp().item(), 3),
        "logit_bias": round(model.logit_bias.item(), 3),
        **acc,
    }


def evaluate_folder(variant, out_dir):
    """Reload the written folder the way a transformers user would and measure zero-shot accuracy."""
    from transformers import SiglipImageProcessorPil, SiglipModel, Siglip2ImageProcessorPil, Siglip2Model

    model_cls = Siglip2Model if variant == "naflex" else SiglipModel
    proc_cls = Siglip2ImageProcessorPil if variant == "naflex" else SiglipImageProcessorPil
    model = model_cls.from_pretrained(out_dir).eval()
    return zero_shot_accuracy(model, proc_cls.from_pretrained(out_dir), load_tokenizer(out_dir))


def write_example(path):
    """The demo picture: a red circle in the middle of a grey 160x120 image."""
    shapes.draw("red", "circle", "center", np.random.default_rng(7), size=(160, 120)).save(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "siglip2_ref", "demo"), help="default: the package's demo/")
    parser.add_argument("--variant", choices=["naflex", "fixres", "both"], default="both",
                        help="fixres alone warm-starts from OUT/naflex, which must exist")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the shipped files; other counts round differently)")
    parser.add_argument("--naflex-steps", type=int, default=VARIANTS["naflex"]["steps"])
    parser.add_argument("--fixres-steps", type=int, default=VARIANTS["fixres"]["steps"])
    parser.add_argument("--pool", type=int, default=POOL_SIZE, help="training images drawn")
    parser.add_argument("--probe-every", type=int, default=0, help="print zero-shot accuracy every N steps")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()  # the CLIP-leftover token ids of the text config warn
    t0, c0 = time.time(), time.process_time()
    variants = ["naflex", "fixres"] if args.variant == "both" else [args.variant]
    steps = {"naflex": args.naflex_steps, "fixres": args.fixres_steps}
    summary = {}
    with tempfile.TemporaryDirectory() as tokenizer_dir:
        make_gemma_style_tokenizer(all_captions(), tokenizer_dir, VOCAB_SIZE)
        images, pool_index = draw_pool(args.pool, np.random.default_rng(SEED))
        print(f"drew {len(images)} training images in {time.time() - t0:.1f}s", flush=True)
        for v in variants:
            out_dir = os.path.join(args.out, v)
            summary[v] = build(v, out_dir, images, pool_index, tokenizer_dir, steps[v], args.probe_every)
    write_example(os.path.join(args.out, "example.png"))
    summary["total_wall_seconds"] = round(time.time() - t0, 1)
    summary["total_cpu_seconds"] = round(time.process_time() - c0, 1)
    summary["threads"] = args.threads
    summary["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
