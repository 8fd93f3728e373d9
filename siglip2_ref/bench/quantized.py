"""Quantized-model benchmark: `python -m siglip2_ref.bench.quantized [--sizes base large] [--rounds 2]`.

Writes vision-only NaFlex checkpoints with random weights (base: B/16, D 768 x 12 layers; large: L/16, D 1024 x
24 layers, the official shapes) into a temporary folder, quantizes each with `quantize_checkpoint` (int8, int4),
then measures in a fresh interpreter per run: load + one vision forward (B images of N = 256 patches), its peak
RSS (VmHWM) and the forward's seconds, and separately how long one pass dequantizing every encoder weight takes
(the fast encoder pays it once per block of 256 token rows: B passes per forward here). Runs of float32 / int8 / int4 alternate, `--rounds`
times, so that a busy machine slows them alike; the table gives medians and ratios to float32 of the same size.
"quantize at load" is a float checkpoint loaded with `quantize=`: it reads the float weights once, so its peak
includes them. docs/quantization.md has the results and how to read them.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .benchmark import BASE_VISION, environment, inputs, peak_rss_kib, write_random_checkpoint

SIZES = {"base": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
         "large": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16),
         "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2)}  # tiny: the test  # fmt: skip
KINDS = [("float32", "float", None), ("int8", "int8", None), ("int4", "int4", None), ("int8 at load", "float", "int8"),
         ("int4 at load", "float", "int4")]  # (row name, folder, quantize=)  # fmt: skip


BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")  # benchmarks run with OpenBLAS's own choices


def vision_config(size):
    return {"model_type": "siglip2_vision_model", "architectures": ["Siglip2VisionModel"], "dtype": "float32",
            **BASE_VISION, **SIZES[size], "num_patches": 256}  # fmt: skip


def folders(root, size, group_size):
    """{"float", "int8", "int4": folder} of one size, written once under `root`."""
    from ..model.quantized_weights import quantize_checkpoint

    float_folder = Path(root) / f"{size}-float32"
    if not (float_folder / "model.safetensors").is_file():
        write_random_checkpoint(float_folder, vision_config(size))
    out = {"float": float_folder}
    for bits in (8, 4):
        folder = Path(root) / f"{size}-int{bits}-g{group_size}"
        if not (folder / "model.safetensors").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            quantize_checkpoint(float_folder, folder, bits, group_size)
        out[f"int{bits}"] = folder
    return out


def child_main(path, quantize, batch, group_size):
    """In a fresh interpreter: load + one vision forward; prints peak RSS (MiB), forward seconds, dequantize seconds."""
    import numpy as np

    from ..model.model import load_model
    from ..model.quant import dequantize_tree

    model = load_model(path, quantize=None if quantize == "none" else quantize, group_size=group_size)
    data = inputs("naflex", "vision", batch, 256)
    t = time.perf_counter()
    model.get_image_features(**data)
    seconds = time.perf_counter() - t
    peak = peak_rss_kib() / 1024
    t = time.perf_counter()
    for layer in model.params["vision_model"]["encoder"]["layers"]:  # what the forward spends dequantizing
        dequantize_tree(layer, np.float32)
    dequant = time.perf_counter() - t if model.quantization else 0.0
    print(json.dumps({"peak_rss_mib": peak, "seconds": seconds, "dequantize_seconds": dequant}))


def measure(path, quantize, batch, group_size):
    cmd = [sys.executable, "-m", "siglip2_ref.bench.quantized", "--child", str(path), quantize or "none", str(batch), str(group_size)]
    env = {k: v for k, v in os.environ.items() if k not in BLAS_OVERRIDES}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[2])
    if done.returncode:
        raise RuntimeError(f"child {cmd} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def paired_times(paths, batch, repeats):
    """{kind: {"wall", "cpu": (median seconds, median of per-repeat ratios to float32)}} of one vision forward; all
    three models loaded in this process and run back to back in every repeat (after one warm-up each). "cpu" is the
    process's CPU time (all its threads): on a machine other sessions share it is the steadier of the two."""
    from ..model.model import load_model

    models = {kind: load_model(paths[kind]) for kind in ("float", "int8", "int4")}
    data = inputs("naflex", "vision", batch, 256)
    seconds = {clock: {kind: [] for kind in models} for clock in ("wall", "cpu")}
    for repeat in range(repeats + 1):
        for kind, model in models.items():
            wall, cpu = time.perf_counter(), time.process_time()
            model.get_image_features(**data)
            if repeat:  # repeat 0 warms up
                seconds["wall"][kind].append(time.perf_counter() - wall)
                seconds["cpu"][kind].append(time.process_time() - cpu)
    return {clock: {k: (statistics.median(v), statistics.median(a / b for a, b in zip(v, s["float"]))) for k, v in s.items()}
            for clock, s in seconds.items()}  # fmt: skip


def matmul_overhead(size, repeats=7):
    """{kind: CPU seconds, ratio to float32} of one layer's six weight products on 256 token rows (the fast
    encoder's block), one thread, `quant.matmul_t`: the part of the time quantization changes, measured alone."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from ..model.quant import matmul_t, quantize

    D, F = SIZES[size]["hidden_size"], SIZES[size]["intermediate_size"]
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(s, np.float32) for s in [(D, D)] * 4 + [(F, D), (D, F)]]
    kinds = {"float32": weights, "int8": [quantize(w, 8) for w in weights], "int4": [quantize(w, 4) for w in weights]}
    x = {n: rng.standard_normal((256, n), np.float32) for n in (D, F)}
    outs = [np.empty((256, w.shape[0]), np.float32) for w in weights]
    best = {}
    with threadpool_limits(1, "blas"):
        for kind, ws in kinds.items():
            times = []
            for _ in range(repeats):
                t = time.process_time()
                for w, out in zip(ws, outs):
                    matmul_t(x[w.shape[1]], w, out)
                times.append(time.process_time() - t)
            best[kind] = min(times)
    return {k: (v, v / best["float32"]) for k, v in best.items()}


def weight_mib(folder):
    return sum(p.stat().st_size for p in Path(folder).glob("*.safetensors")) / 2**20


def table(size, runs, paths):
    """Markdown rows for one size: medians over rounds, ratios to float32."""
    ref = {k: statistics.median(r[k] for r in runs["float32"]) for k in ("peak_rss_mib", "seconds")}
    rows = [f"| {size} | {name} | {weight_mib(paths[folder]):.1f} | {statistics.median(r['peak_rss_mib'] for r in runs[name]):.0f} | "
            f"{statistics.median(r['peak_rss_mib'] for r in runs[name]) / ref['peak_rss_mib']:.2f} | "
            f"{statistics.median(r['seconds'] for r in runs[name]):.2f} | "
            f"{statistics.median(r['seconds'] for r in runs[name]) / ref['seconds']:.2f} | "
            f"{statistics.median(r['dequantize_seconds'] for r in runs[name]):.2f} |"
            for name, folder, _ in KINDS if name in runs]  # fmt: skip
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["base", "large"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of every kind (medians)")
    parser.add_argument("--group-size", type=int, default=None, help="int4 group size (default: the package's)")
    parser.add_argument("--no-at-load", action="store_true", help="skip the quantize-at-load rows")
    parser.add_argument("--time-size", choices=sorted(SIZES), default="base", help="size of the paired timing (one process)")
    parser.add_argument("--repeats", type=int, default=3, help="paired timing repeats")
    parser.add_argument("--time-only", action="store_true", help="only the paired timing, no memory table")
    parser.add_argument("--folder", help="keep the checkpoints here (default: a temporary folder, removed after)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child[0], args.child[1], int(args.child[2]), int(args.child[3]))
        return 0
    from ..model.quant import DEFAULT_GROUP_SIZE

    group = args.group_size or DEFAULT_GROUP_SIZE
    root = args.folder or tempfile.mkdtemp(prefix="siglip2_ref_quant_")
    print("\n".join(environment(int(os.environ.get("OPENBLAS_NUM_THREADS", os.cpu_count())))))
    kinds = KINDS[:3] if args.no_at_load else KINDS
    lines = ["| size | weights | file MiB | peak RSS MiB | x float32 | forward s | x float32 | dequantize s |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    try:
        for size in [] if args.time_only else args.sizes:
            paths = folders(root, size, group)
            runs = {name: [] for name, _, _ in kinds}
            for _ in range(args.rounds):
                for name, folder, quantize in kinds:
                    runs[name].append(measure(paths[folder], quantize, args.batch, group))
                    print(f"  {size} {name}: {runs[name][-1]}", file=sys.stderr, flush=True)
            lines += table(size, runs, paths)
        timed = paired_times(folders(root, args.time_size, group), args.batch, args.repeats)
        products = matmul_overhead(args.time_size)
    finally:
        if not args.folder:
            shutil.rmtree(root, ignore_errors=True)
    if not args.time_only:
        print(f"\nload + one vision forward, NaFlex B={args.batch} x 256 patches, int4 group size {group}, "
              f"{args.rounds} alternating rounds (medians); load average now {os.getloadavg()[0]:.2f}\n")
        print("\n".join(lines))
    print(f"\npaired timing, {args.time_size}, one process, {args.repeats} repeats after a warm-up (median of per-repeat ratios)\n")
    print("| weights | wall s | x float32 | CPU s | x float32 |\n|---|---:|---:|---:|---:|")
    for kind in timed["wall"]:
        (wall, wall_ratio), (cpu, cpu_ratio) = timed["wall"][kind], timed["cpu"][kind]
        print(f"| {'float32' if kind == 'float' else kind} | {wall:.2f} | {wall_ratio:.2f} | {cpu:.2f} | {cpu_ratio:.2f} |")
    print(f"\none {args.time_size} layer's six weight products on 256 token rows, one thread, CPU time (best of 7)\n")
    print("| weights | ms | x float32 |\n|---|---:|---:|")
    for kind, (sec, ratio) in products.items():
        print(f"| {kind} | {sec * 1e3:.1f} | {ratio:.2f} |")
    return 0


def without_blas_overrides():
    """Run this command again without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (OpenBLAS reads them when it loads)."""
    if set(BLAS_OVERRIDES) & set(os.environ) and "--child" not in sys.argv:
        env = {k: v for k, v in os.environ.items() if k not in BLAS_OVERRIDES}
        os.execve(sys.executable, [sys.executable, "-m", "siglip2_ref.bench.quantized", *sys.argv[1:]], env)


if __name__ == "__main__":
    without_blas_overrides()
    sys.exit(main())
