"""Preprocessing throughput (images/s) on a 1024x768 photo: siglip2_ref next to transformers' processors.

    python benchmarks/bench_preprocess.py [--repeats 30]

Measures, in one run on the same machine and image: FixRes 224 (bilinear, as the Hub configs) and NaFlex 256,
for siglip2_ref's two resize back-ends and (when installed) transformers' PIL and torchvision processors.
Each number is images/s for one image per call, from a PIL RGB image to NumPy arrays; the best of a few rounds.
Prints a Markdown table.
"""

import argparse
import os
import platform
import sys
import time
import warnings

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from golden.synthetic_images import base_rgb  # noqa: E402
from siglip2_ref.preprocess.images import ImageProcessor  # noqa: E402

HUB = {"do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5] * 3, "image_std": [0.5] * 3,
       "rescale_factor": 1 / 255, "resample": 2}
SETTINGS = {"FixRes 224": ("fixres", {**HUB, "size": {"height": 224, "width": 224}}),
            "NaFlex 256": ("naflex", {**HUB, "patch_size": 16, "max_num_patches": 256})}


def images_per_second(fn, image, repeats, rounds=3):
    fn(image)  # warm-up
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn(image)
        best = min(best, (time.perf_counter() - t0) / repeats)
    return 1.0 / best


def transformers_processors(variant, cfg):
    """{label: callable} for the transformers processors that can be built here."""
    try:
        import transformers
        from transformers import Siglip2ImageProcessorPil, SiglipImageProcessorPil
    except ImportError:
        return {}
    transformers.logging.set_verbosity_error()
    out = {}
    pil_cls = SiglipImageProcessorPil if variant == "fixres" else Siglip2ImageProcessorPil
    out[f"transformers {transformers.__version__} PIL"] = pil_cls(**cfg)
    try:
        from transformers import Siglip2ImageProcessor, SiglipImageProcessor

        tv_cls = SiglipImageProcessor if variant == "fixres" else Siglip2ImageProcessor
        out[f"transformers {transformers.__version__} torchvision"] = tv_cls(**cfg)
    except ImportError:
        pass
    return {k: (lambda img, p=p: p(img, return_tensors="np")) for k, p in out.items()}


def versions():
    import PIL

    parts = [f"numpy {np.__version__}", f"Pillow {PIL.__version__}", f"Python {platform.python_version()}"]
    try:
        import torch
        import torchvision

        parts += [f"torch {torch.__version__}", f"torchvision {torchvision.__version__}", f"threads {torch.get_num_threads()}"]
    except ImportError:
        pass
    return ", ".join(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    image = Image.fromarray(base_rgb(768, 1024, seed=7))  # a 1024x768 (width x height) photo-like image
    rows = {}
    for setting, (variant, cfg) in SETTINGS.items():
        runners = {f"siglip2_ref ({b})": ImageProcessor(variant, b, **cfg) for b in ("pil", "torchvision")}
        runners.update(transformers_processors(variant, cfg))
        for label, fn in runners.items():
            rows.setdefault(label, {})[setting] = images_per_second(fn, image, args.repeats)
    print(f"Preprocessing throughput, 1024x768 RGB PIL image, one image per call ({os.cpu_count()} CPUs; {versions()})\n")
    print("| processor | " + " | ".join(f"{s} (images/s)" for s in SETTINGS) + " |")
    print("|---|" + "---:|" * len(SETTINGS))
    for label, values in rows.items():
        print(f"| {label} | " + " | ".join(f"{values[s]:.0f}" for s in SETTINGS) + " |")


if __name__ == "__main__":
    main()
