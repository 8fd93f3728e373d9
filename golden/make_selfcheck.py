"""The transformers reference of `siglip2-ref selfcheck` for the two demo models (golden/README.md, "Selfcheck").

    pip install -e ".[oracle]"                 # torch==2.13.0, transformers==5.24.0 (CPU)
    python golden/make_selfcheck.py            # writes siglip2_ref/demo/expected/{naflex,fixres}.safetensors
    python golden/make_selfcheck.py --check    # regenerates into a temp dir and compares bit for bit

The inputs are those of transformers' SigLIP 2 integration test (siglip2_ref/porting/published.py: the three
drawn circle pictures and seven texts), run through transformers' own processor (Pillow back-end) and model in
float32 with eager attention (golden/transformers_dump.py). Kept: every model stage except attention maps, and
the token ids; dropped to keep the package small: the per-image pictures (`image.*`, up to 1024x1024x3 bytes)
and `vision.pixel_values` (their patches; `vision.spatial_shapes` and the mask stay), and `text.embeddings`
(equal to `text.hidden_states.0`).
"""

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers_dump import dump_transformers  # noqa: E402

from siglip2_ref.demo import DEMO_FIXRES, DEMO_NAFLEX  # noqa: E402
from siglip2_ref.porting.dump import read_dump, write_dump  # noqa: E402
from siglip2_ref.porting.published import CIRCLE_TEXTS, EXPECTED_DIR, circle_images  # noqa: E402

COMMAND = "python golden/make_selfcheck.py"
DROPPED = ("image.", "vision.pixel_values", "text.embeddings")  # text.embeddings: the same array as text.hidden_states.0


def make(out_dir):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for k, image in enumerate(circle_images()):
            paths.append(Path(tmp) / f"circle_{k}.png")
            image.save(paths[-1])  # PNG is lossless: transformers reads the very pixels the package draws
        for variant, folder in (("naflex", DEMO_NAFLEX), ("fixres", DEMO_FIXRES)):
            stages, manifest = dump_transformers(folder, [str(p) for p in paths], list(CIRCLE_TEXTS), command=COMMAND)
            kept = {k: v for k, v in stages.items() if not k.startswith(DROPPED)}
            manifest["model"]["path"] = f"siglip2_ref/demo/{variant}"
            manifest["inputs"]["images"] = [{"source": f"published.circle_images()[{k}]"} for k in range(len(paths))]
            write_dump(out_dir / f"{variant}.safetensors", kept, manifest)
            (out_dir / f"{variant}.safetensors").chmod(0o644)
            print(f"{variant}: {len(kept)} stages, {(out_dir / f'{variant}.safetensors').stat().st_size} bytes")


def check():
    with tempfile.TemporaryDirectory() as tmp:
        make(Path(tmp))
        for variant in ("naflex", "fixres"):
            new, _ = read_dump(Path(tmp) / f"{variant}.safetensors")
            old, _ = read_dump(EXPECTED_DIR / f"{variant}.safetensors")
            same = set(new) == set(old) and all(np.array_equal(new[k], old[k]) for k in new)
            print(f"{variant}: {'identical' if same else 'DIFFERENT'}")
            if not same:
                return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true")
    sys.exit(check() if parser.parse_args().check else make(EXPECTED_DIR) or 0)
