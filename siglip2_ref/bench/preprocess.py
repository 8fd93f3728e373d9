"""Preprocessing throughput: siglip2_ref's image processors next to transformers', on the same image files.

Generated photo-like images (1024x768 and 4000x3000, JPEG and PNG) are written once to a folder. Each call
goes from the file to the model's arrays: siglip2_ref gets the path, transformers gets
`transformers.image_utils.load_image(path)` (what its pipelines do), so decoding is in both. Settings: FixRes 224
(bilinear, as the Hub configs) and NaFlex 256; back-ends: Pillow and torchvision for both libraries. The four
processors of one image and setting run interleaved, call by call, and ratios are paired (bench/timing.py).
"""

import os
import statistics
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from ..preprocess.images import ImageProcessor
from .timing import SETTLE, interleaved_times, paired_ratio

HUB = {"do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5] * 3, "image_std": [0.5] * 3,
       "rescale_factor": 1 / 255, "resample": 2}  # fmt: skip
SETTINGS = {"FixRes 224": ("fixres", {**HUB, "size": {"height": 224, "width": 224}}),
            "NaFlex 256": ("naflex", {**HUB, "patch_size": 16, "max_num_patches": 256})}  # fmt: skip
IMAGES = {"1024x768 JPEG": (768, 1024, "jpg"), "1024x768 PNG": (768, 1024, "png"),
          "4000x3000 JPEG": (3000, 4000, "jpg"), "4000x3000 PNG": (3000, 4000, "png")}  # fmt: skip
QUICK_IMAGES = ("1024x768 JPEG", "1024x768 PNG")
BACKENDS = ("pil", "torchvision")


def photo(height, width, seed=0):  # -> [h0, w0, 3] uint8
    """A photo-like image: smooth colour gradients, a few soft blobs and mild sensor noise (compresses like a photo)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = y / height, x / width
    image = np.stack([80 + 120 * x, 60 + 100 * y, 140 - 80 * x * y], axis=-1)  # [h0, w0, 3]
    for cy, cx, r, colour in zip(rng.uniform(0, 1, 6), rng.uniform(0, 1, 6), rng.uniform(0.05, 0.3, 6), rng.uniform(-60, 60, (6, 3))):
        image += colour * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))[..., None]
    image += rng.normal(0, 4, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_images(folder, names=tuple(IMAGES)):
    """The benchmark's image files under `folder` (written once); {label: path}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in names:
        height, width, ext = IMAGES[name]
        path = folder / f"photo_{width}x{height}.{ext}"
        if not path.is_file():
            image = Image.fromarray(photo(height, width))
            image.save(path, quality=90) if ext == "jpg" else image.save(path)
        paths[name] = path
    return paths


def transformers_processors(variant, cfg):
    """{backend: callable(path)} for transformers' Pillow and torchvision processors ({} without transformers)."""
    try:
        import transformers
        from transformers import Siglip2ImageProcessor, Siglip2ImageProcessorPil, SiglipImageProcessor, SiglipImageProcessorPil
        from transformers.image_utils import load_image
    except ImportError:
        return {}
    transformers.logging.set_verbosity_error()
    classes = {"pil": (SiglipImageProcessorPil, Siglip2ImageProcessorPil), "torchvision": (SiglipImageProcessor, Siglip2ImageProcessor)}
    built = {backend: pair[variant == "naflex"](**cfg) for backend, pair in classes.items()}
    return {backend: (lambda path, p=p: p(load_image(str(path)), return_tensors="np")) for backend, p in built.items()}


def calls_per_repeat(fn, path, target_s=0.05):
    """How many calls make one timed unit of about `target_s` (small images are too quick to time one by one)."""
    t = statistics.median(interleaved_times({"x": lambda: fn(path)}, 1)["x"])
    return max(1, round(target_s / max(t, 1e-6)))


def bench_preprocess(folder, repeats, use_hf, quick=False):
    """One row per image and setting: images/s of every processor, and ours/transformers throughput ratios."""
    warnings.filterwarnings("ignore")
    paths = write_images(folder, QUICK_IMAGES if quick else tuple(IMAGES))
    rows = []
    for image_name, path in paths.items():
        for setting, (variant, cfg) in SETTINGS.items():
            fns = {f"ours {b}": ImageProcessor(variant, b, **cfg) for b in BACKENDS}
            if use_hf:
                fns.update({f"hf {b}": fn for b, fn in transformers_processors(variant, cfg).items()})
            k = calls_per_repeat(fns["ours pil"], path)
            units = {name: (lambda fn=fn: [fn(path) for _ in range(k)]) for name, fn in fns.items()}
            times = interleaved_times(units, repeats, settle=SETTLE)
            row = {"image": image_name, "setting": setting, "load_avg": os.getloadavg()[0]}
            row.update({name: k / statistics.median(t) for name, t in times.items()})  # images/s
            for b in BACKENDS:
                if f"hf {b}" in times:  # throughput ratio ours / transformers = time ratio transformers / ours
                    row[f"ratio {b}"] = 1 / paired_ratio(times[f"ours {b}"], times[f"hf {b}"])
            rows.append(row)
    return rows


def preprocess_table(rows):
    """Markdown table: images/s per processor and the paired ours/transformers throughput ratios."""
    head = ["image", "setting", "ours pil", "hf pil", "ours/hf pil", "ours torchvision", "hf torchvision", "ours/hf tv", "load"]
    keys = ["ours pil", "hf pil", "ratio pil", "ours torchvision", "hf torchvision", "ratio torchvision"]
    out = [head]
    for r in rows:
        cells = [f"{r[k]:.2f}" if k.startswith("ratio") and k in r else f"{r[k]:.0f}" if k in r else "-" for k in keys]
        out.append([r["image"], r["setting"], *cells, f"{r['load_avg']:.1f}"])
    lines = ["| " + " | ".join(row) + " |" for row in out]
    return "\n".join(lines[:1] + ["|" + "---|" * 2 + "---:|" * (len(head) - 2)] + lines[1:])
