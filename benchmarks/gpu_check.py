"""The prepared GPU check for the CuPy backend: `siglip2-ref selfcheck --backend cupy` on every golden checkpoint
and a base-size random model, then throughput, in one report.

    python benchmarks/gpu_check.py                 # on a machine with a CUDA GPU and cupy-cuda12x (< 5 min)
    python benchmarks/gpu_check.py --dry-run       # NumPy only, tiny sizes: checks the script itself on a CPU

Parity is the self-check's own implementation (siglip2_ref/porting/selfcheck.py): every stage of one run, in
float32 and float16 on the backend, against NumPy float64 under the tolerance tiers, naming the first stage out
of tolerance; plus the NumPy checks (fast vs readable path, float32 vs float64). Without a usable CuPy the CuPy
rows say "skipped" and why. Throughput: vision B=1/8/64 (NaFlex 256 patches, FixRes 224) and text B=64, for this
backend and, when PyTorch with CUDA is present, transformers (eager and SDPA, float32 and float16). Peak GPU
memory per workload.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from siglip2_ref.backend import backend_module  # noqa: E402
from siglip2_ref.model.fast import FastEncoder  # noqa: E402
from siglip2_ref.model.layers import encoder  # noqa: E402
from siglip2_ref.model.model import Model, tree_map  # noqa: E402
from siglip2_ref.porting.environment import environment, format_environment  # noqa: E402
from siglip2_ref.porting.random_model import random_model  # noqa: E402
from siglip2_ref.porting.selfcheck import consistency_checks, selfcheck, synthetic_arrays  # noqa: E402

GOLDEN_CHECKPOINTS = ROOT / "golden" / "model" / "checkpoints"
BASE = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
TINY = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)


def sync(xp):
    if xp.__name__ == "cupy":
        xp.cuda.Stream.null.synchronize()


def gpu_peak_bytes(xp):
    return xp.get_default_memory_pool().total_bytes() if xp.__name__ == "cupy" else 0


def timed(fn, xp, repeats):
    fn()  # warm-up (kernel compilation, memory pool)
    sync(xp)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(xp)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def random_loader(variant, sizes, vocab):
    """loader(backend, dtype, fast) -> one random model's weights (built once) on that backend, dtype and path."""
    base = random_model(variant, sizes, "numpy", "float32", vocab=vocab)

    def loader(backend, dtype, fast):
        xp = backend_module(backend)
        params = tree_map(lambda a: xp.asarray(a.astype(dtype)), base.params)
        return Model(base.config, params, backend, dtype, None, FastEncoder() if fast else encoder)

    return loader, base.config


def parity_rows(backend, sizes, vocab):
    """[(case, Check)]: the self-check of every golden checkpoint, then of a random NaFlex model of `sizes`."""
    rows = []
    for folder in sorted(GOLDEN_CHECKPOINTS.iterdir()):
        rows += [(folder.name, c) for c in selfcheck(str(folder), backend=backend).checks if c.kind == "consistency"]
    loader, config = random_loader("naflex", sizes, vocab)
    rows += [("random-naflex", c) for c in consistency_checks(loader, {"arrays": synthetic_arrays(config)}, backend)]
    return rows


def naflex_inputs(batch, patches, vocab, seed=0):
    rng = np.random.default_rng(seed)
    side = int(patches**0.5)
    return dict(pixel_values=rng.uniform(-1, 1, (batch, patches, 768)).astype(np.float32),
                pixel_attention_mask=np.ones((batch, patches), np.int32),
                spatial_shapes=np.tile([side, patches // side], (batch, 1)).astype(np.int64),
                input_ids=rng.integers(0, vocab, (batch, 64)))  # fmt: skip


def ours_timings(backend, sizes, vocab, batches, repeats):
    xp = backend_module(backend)
    rows = []
    for dtype in ("float32", "float16"):
        for variant in ("naflex", "fixres"):
            model = random_model(variant, sizes, backend, dtype, vocab=vocab)
            for B in batches:
                if variant == "naflex":
                    x = naflex_inputs(B, 256, vocab)
                    args = [xp.asarray(x[k]) for k in ("pixel_values", "pixel_attention_mask", "spatial_shapes")]
                else:
                    args = [xp.asarray(np.random.default_rng(0).uniform(-1, 1, (B, 3, 224, 224)).astype(np.float32))]
                t = timed(lambda: model.get_image_features(*args), xp, repeats)
                rows.append(("siglip2-ref", backend, dtype, f"vision {variant} B={B}", t, B / t, gpu_peak_bytes(xp)))
            if variant == "naflex":
                ids = xp.asarray(naflex_inputs(batches[-1], 4, vocab)["input_ids"])
                t = timed(lambda: model.get_text_features(ids), xp, repeats)
                rows.append(("siglip2-ref", backend, dtype, f"text B={batches[-1]}", t, batches[-1] / t, gpu_peak_bytes(xp)))
            del model
    return rows


def transformers_timings(sizes, vocab, batches, repeats):
    try:
        import torch
        import transformers
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    rows = []
    for attn in ("eager", "sdpa"):
        for dtype in (torch.float32, torch.float16):
            config = transformers.Siglip2Config(text_config=sizes | {"vocab_size": vocab},
                                                vision_config=sizes | {"num_patches": 256, "patch_size": 16})  # fmt: skip
            model = transformers.Siglip2Model(config).to("cuda", dtype).eval()
            model.set_attn_implementation(attn)
            for B in batches:
                x = naflex_inputs(B, 256, vocab)
                kw = dict(pixel_values=torch.from_numpy(x["pixel_values"]).to("cuda", dtype),
                          pixel_attention_mask=torch.from_numpy(x["pixel_attention_mask"]).cuda(),
                          spatial_shapes=torch.from_numpy(x["spatial_shapes"]).cuda())  # fmt: skip
                torch.cuda.reset_peak_memory_stats()
                with torch.inference_mode():
                    t = timed(lambda: model.vision_model(**kw), _TorchSync(torch), repeats)
                rows.append(("transformers " + attn, "torch", str(dtype).split(".")[-1], f"vision naflex B={B}", t, B / t,
                             torch.cuda.max_memory_allocated()))  # fmt: skip
            del model
            torch.cuda.empty_cache()
    return rows


class _TorchSync:
    """Lets `timed` synchronise torch's CUDA stream through the same `sync(xp)` call."""

    __name__ = "cupy"

    def __init__(self, torch):
        self.cuda = type("cuda", (), {"Stream": type("Stream", (), {"null": type("null", (), {"synchronize": staticmethod(torch.cuda.synchronize)})})})

    def get_default_memory_pool(self):  # peak is read from torch directly
        return type("pool", (), {"total_bytes": staticmethod(lambda: 0)})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="NumPy backend, tiny sizes: check the script on a CPU")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    backend, sizes, vocab, batches = ("numpy", TINY, 300, (1, 2)) if args.dry_run else ("cupy", BASE, 256000, (1, 8, 64))
    print(f"# backend {backend}" + (" (dry run)" if args.dry_run else "") + "\n" + format_environment(environment()))
    print("\n## parity: siglip2-ref selfcheck's consistency checks (stage-relative error, worst or first failing stage)\n")
    print("| case | check | status | error | bound | tier | stage |\n|---|---|---|---|---|---|---|")
    rows = parity_rows("numpy" if args.dry_run else "cupy", sizes, vocab)
    for case, c in rows:
        error = "" if c.error is None else f"{c.error:.2e}"
        bound = "" if c.bound is None else f"{c.bound:g}"
        print(f"| {case} | {c.name} | {c.status} | {error} | {bound} | {c.tolerance} | {c.stage or c.detail} |")
    ok = all(c.status != "FAIL" for _, c in rows)
    print("\n## throughput\n")
    print("| implementation | backend | dtype | workload | median s | items/s | peak GPU MiB |\n|---|---|---|---|---|---|---|")
    timings = ours_timings(backend, sizes, vocab, batches, args.repeats) + transformers_timings(sizes, vocab, batches, args.repeats)
    for impl, be, dtype, work, t, rate, peak in timings:
        print(f"| {impl} | {be} | {dtype} | {work} | {t:.4f} | {rate:.1f} | {peak / 2**20:.0f} |")
    print(f"\nparity: {'all within bounds' if ok else 'SOME STAGES OUTSIDE BOUNDS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
