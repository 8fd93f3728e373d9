"""CPU benchmark: `python -m siglip2_ref.bench [--quick]`.

Builds base-size checkpoints (B/16 NaFlex and FixRes 224, the official shapes incl. the 256k-token text
embedding) with random weights in a temporary folder, no download, then times on the same inputs and the
same thread count: this package (fast path, and with --plain the readable path), transformers with SDPA
attention when it is installed, and NumPy's matrix multiply alone on the workload's GEMM shapes (the
"GEMM floor": what the workload would cost if everything but the matrix multiplies were free, with weights
kept in cache) and on the tower's own weights, cut as our forward cuts them ("gemms"). Peak RSS
is measured per workload in a fresh subprocess. docs/performance.md describes the method and the results.

Long (about 600 lines) on purpose: one benchmark run (workloads, child processes, paired timing, the
tables) reads top to bottom; it is a measuring tool, not part of the model a reader studies.
"""

import argparse
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..checkpoint.config import parse_config
from ..checkpoint.weights import STORAGE_DTYPES, expected_shapes
from .timing import SETTLE, interleaved_times, median_time, paired_ratio  # noqa: F401 (paired_ratio: tests call bench.paired_ratio)

BASE_TEXT = dict(vocab_size=256000, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                 max_position_embeddings=64, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6, projection_size=768,
                 pad_token_id=0, eos_token_id=1, bos_token_id=2)  # fmt: skip
BASE_VISION = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, num_channels=3,
                   patch_size=16, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)  # fmt: skip
CHECKPOINTS = {
    "naflex": {"model_type": "siglip2", "architectures": ["Siglip2Model"], "dtype": "float32",
               "text_config": BASE_TEXT | {"model_type": "siglip2_text_model"},
               "vision_config": BASE_VISION | {"model_type": "siglip2_vision_model", "num_patches": 256}},
    "fixres": {"model_type": "siglip", "architectures": ["SiglipModel"], "dtype": "float32",
               "text_config": BASE_TEXT | {"model_type": "siglip_text_model"},
               "vision_config": BASE_VISION | {"model_type": "siglip_vision_model", "image_size": 224}},
}  # fmt: skip

# name -> (checkpoint, tower, batch, patches or text length[, layout]); NaFlex images are square grids with no padding,
# except "mixed": eight aspect ratios from 1:4 to 4:1 under the 256-patch budget, each padded to 256 (mixed_naflex)
WORKLOADS = {
    "vision naflex-256 B=1": ("naflex", "vision", 1, 256),
    "vision naflex-256 B=8": ("naflex", "vision", 8, 256),
    "vision naflex-256 mixed B=8": ("naflex", "vision", 8, 256, "mixed"),
    "vision naflex-1024 B=1": ("naflex", "vision", 1, 1024),
    "vision naflex-1024 B=8": ("naflex", "vision", 8, 1024),
    "vision fixres-224 B=1": ("fixres", "vision", 1, 196),
    "vision fixres-224 B=8": ("fixres", "vision", 8, 196),
    "text 8x64": ("naflex", "text", 8, 64),
}
QUICK = ("vision naflex-256 B=1", "vision naflex-256 B=8", "vision naflex-256 mixed B=8", "vision fixres-224 B=8", "text 8x64")
ONNX = ("vision naflex-256 B=8", "vision naflex-256 mixed B=8", "vision fixres-224 B=8", "text 8x64")  # ONNX Runtime rows
ASPECTS = ((1, 4), (1, 3), (1, 2), (2, 3), (3, 2), (2, 1), (3, 1), (4, 1))  # height : width of the mixed batch
LONG = ("naflex", "vision", 1, 4096)  # the bounded-memory check: ours only, peak RSS
FORCED_BLAS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")  # a forced kernel / cache size: unset for the benchmark's run


# ---------------------------------------------------------------- random base-size checkpoints


def write_random_checkpoint(folder, raw_config, seed=0):
    """config.json + model.safetensors with every expected key, written tensor by tensor (never all in memory)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shapes = expected_shapes(parse_config(raw_config))
    header, offset = {}, 0
    for key, shape in shapes.items():
        nbytes = math.prod(shape) * 4
        header[key] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    rng = np.random.default_rng(seed)
    with open(folder / "model.safetensors", "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for key, shape in shapes.items():
            rows = shape[0] if len(shape) > 1 else 1
            for r in range(0, rows, 16384):  # the 256k-row embedding in slices
                part = (min(16384, rows - r), *shape[1:]) if len(shape) > 1 else shape
                f.write(random_tensor(key, part, shape, rng).astype(STORAGE_DTYPES["F32"]).tobytes())
    (folder / "config.json").write_text(json.dumps(raw_config, indent=1))
    return folder


def random_tensor(key, part, shape, rng):
    """Plausible magnitudes: LayerNorm scales near 1, weights ~ 1/sqrt(fan-in), small biases."""
    x = rng.standard_normal(part, dtype=np.float32)
    if key.endswith("norm1.weight") or key.endswith("norm2.weight") or "layernorm.weight" in key or "layer_norm.weight" in key:
        return 1 + 0.1 * x
    if key == "logit_scale":
        return np.full(part, math.log(10.0), np.float32)
    if key == "logit_bias":
        return np.full(part, -10.0, np.float32)
    if len(shape) == 1:
        return 0.02 * x
    fan_in = math.prod(shape[1:]) if "embedding" not in key and key != "vision_model.head.probe" else 1
    return x * (fan_in**-0.5 if fan_in > 1 else 0.02)


def checkpoints(folder):
    """Write (once) the two random base checkpoints under `folder`; {name: path}."""
    out = {}
    for name, raw in CHECKPOINTS.items():
        path = Path(folder) / name
        if not (path / "config.json").is_file() or json.loads((path / "config.json").read_text()) != raw:
            write_random_checkpoint(path, raw)
        out[name] = path
    return out


# ---------------------------------------------------------------- inputs, FLOP counts, GEMM floor


def mixed_grids(n, patch_size=16, aspects=ASPECTS):  # -> [(gh, gw)]: each aspect's NaFlex grid under n patches
    """The patch grid transformers' Siglip2ImageProcessor gives a 1024-pixel-tall image of each aspect ratio."""
    from ..preprocess.images import get_image_size_for_max_num_patches

    sizes = [get_image_size_for_max_num_patches(1024, 1024 * w // h, patch_size, n) for h, w in aspects]
    return [(h // patch_size, w // patch_size) for h, w in sizes]


def inputs(checkpoint, tower, batch, n, layout="square", seed=0):
    """NumPy inputs for one workload (the same arrays go to transformers as tensors)."""
    rng = np.random.default_rng(seed)
    if layout == "mixed":
        grids = mixed_grids(n)
        mask = (np.arange(n) < np.array([gh * gw for gh, gw in grids])[:, None]).astype(np.int32)  # [B, N]
        return {"pixel_values": (rng.uniform(-1, 1, (len(grids), n, 3 * 16 * 16)) * mask[..., None]).astype(np.float32),
                "pixel_attention_mask": mask, "spatial_shapes": np.array(grids, np.int64)}  # fmt: skip
    if tower == "text":
        return {"input_ids": rng.integers(0, BASE_TEXT["vocab_size"], (batch, n), dtype=np.int64)}
    if checkpoint == "fixres":
        return {"pixel_values": rng.uniform(-1, 1, (batch, 3, 224, 224)).astype(np.float32)}
    side = int(round(n**0.5))
    return {"pixel_values": rng.uniform(-1, 1, (batch, n, 3 * 16 * 16)).astype(np.float32),
            "pixel_attention_mask": np.ones((batch, n), np.int32),
            "spatial_shapes": np.full((batch, 2), side, np.int64)}  # fmt: skip


def encoder_gemms(batch, n, layers=12, D=768, F=3072, H=12):
    """The base encoder's matrix multiplies as (count, batch, m, k, n), each shape `layers` times."""
    T, L = batch * n, layers
    return [(L, 1, T, D, 3 * D), (L, 1, T, D, D), (L, 1, T, D, F), (L, 1, T, F, D),  # q/k/v, out, fc1, fc2
            (L, batch * H, n, D // H, n), (L, batch * H, n, n, D // H)]  # q k^T, weights v  # fmt: skip


def gemms(tower, batch, n):
    """The matrix multiplies of one forward as (count, batch, m, k, n) with FLOP = 2*batch*m*k*n each."""
    D, F, T = 768, 3072, batch * n
    layer = encoder_gemms(batch, n)
    if tower == "text":
        return layer + [(1, 1, batch, D, D)]  # text head
    stem = [(1, 1, T, 3 * 16 * 16, D)]
    head = [(1, 1, T, D, 2 * D), (1, 1, batch, D, F), (1, 1, batch, F, D)]  # MAP head: k/v of every token, MLP
    return stem + layer + head


def gflop(shapes):
    return sum(c * 2 * b * m * k * n for c, b, m, k, n in shapes) / 1e9


def gemm_floor(shapes, threads, repeats=3):
    """A callable that runs just the matrix multiplies of one forward through NumPy: every GEMM in `shapes`,
    each distinct shape in the faster of two ways, chosen here by timing both (median of `repeats`): one call
    on BLAS's threads, or split over `threads` single-threaded workers (fast.py's scheme)."""
    plan = []
    for count, b, m, k, n in shapes:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((b, m, k), dtype=np.float32)
        w = rng.standard_normal((b, k, n), dtype=np.float32)
        out = np.empty((b, m, n), np.float32)
        whole, split = (lambda x=x, w=w, out=out: np.matmul(x, w, out=out)), split_matmul(x, w, out, threads)
        plan.append((count, min((whole, split), key=lambda fn: median_time(fn, repeats))))

    def run():
        for count, fn in plan:
            for _ in range(count):
                fn()

    return run


def split_matmul(x, w, out, threads):
    """x @ w with the rows (or the batch) cut into blocks for `threads` workers, BLAS single-threaded: fast.py's scheme."""
    from threadpoolctl import threadpool_limits

    from ..backend import Workers
    from ..model.fast import split_rows

    workers = Workers(threads)
    b, m = x.shape[:2]
    if b == 1:
        blocks = [(0, r) for r in split_rows(m, threads)]
    else:
        blocks = [(i, slice(None)) for i in range(b)]

    def run():
        with threadpool_limits(1, user_api="blas"):
            workers.run(lambda blk, _: np.matmul(x[blk[0], blk[1]], w[blk[0]], out=out[blk[0], blk[1]]), blocks, threads)

    return run


def own_gemms(model, tower, batch, n, threads, keys=None):
    """A callable that runs just the matrix multiplies of our forward as it runs them: every encoder projection with the
    model's own weights (a base tower streams 340 MB of them from memory, where gemm_floor keeps one weight per shape
    in cache), the rows cut as model/fast.py cuts them, q k^T and weights v per image over its `keys` [B] (default n:
    no padding), and the stem and head products outside the encoder (`outer_gemms`). ours / this = 1 + what
    everything that is not a matrix multiply costs."""
    from ..backend import Workers
    from ..model import fast
    from ..model.quant import matmul_t

    layers = model.params[f"{tower}_model"]["encoder"]["layers"]
    F, D = layers[0]["mlp"]["fc1"]["weight"].shape
    H, T = getattr(model.config, tower).num_attention_heads, batch * n
    keys = [n] * batch if keys is None else [int(m) for m in keys]
    workers = Workers(threads)
    row_workers = fast.row_workers(T, threads)
    blocks = fast.split_rows(T, row_workers)
    rng = np.random.default_rng(0)
    x, y, u = rng.standard_normal((T, D), dtype=np.float32), np.empty((T, D), np.float32), np.empty((T, F), np.float32)
    q = rng.standard_normal((batch, H, n, D // H), dtype=np.float32)  # [B, H, N, K]
    scores, ctx = np.empty((batch, H, n, n), np.float32), np.empty_like(q)  # [B, H, N, M], [B, H, N, K]
    outer = outer_gemms(model.params[f"{tower}_model"], tower, batch, n)

    def projections(layer, r):
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            matmul_t(x[r], layer["self_attn"][name]["weight"], out=y[r])
        matmul_t(x[r], layer["mlp"]["fc1"]["weight"], out=u[r])
        matmul_t(u[r], layer["mlp"]["fc2"]["weight"], out=y[r])

    def attention(b):
        M = keys[b]
        np.matmul(q[b], q[b, :, :M].transpose(0, 2, 1), out=scores[b, :, :, :M])  # [H, N, K] @ [H, K, M]
        np.matmul(scores[b, :, :, :M], q[b, :, :M], out=ctx[b])  # [H, N, M] @ [H, M, K]

    def run():
        for layer in layers:
            workers.run_owning_cores(lambda r, _: projections(layer, r), blocks, row_workers)
            workers.run_owning_cores(lambda b, _: attention(b), list(range(batch)), row_workers)
        outer()

    return run


def outer_gemms(params, tower, batch, n):
    """A callable that runs the tower's products outside the encoder with its own weights, on BLAS's threads as
    `layers.linear` runs them: the vision stem and the MAP head (k and v of every token, the MLP of each pooled row),
    or the text head of each pooled row (the ones `gemms` counts)."""
    from ..model.quant import matmul_t

    if tower == "text":
        products = [(batch, params["head"]["weight"])]  # [E, D]
    else:
        stem = params["embeddings"]["patch_embedding"]["weight"]  # [D, P] (NaFlex) or [D, C, p, p] (FixRes)
        head = params["head"]
        D = stem.shape[0]
        _, Wk, Wv = head["attention"]["in_proj_weight"].reshape(3, D, D)
        products = [(batch * n, stem.reshape(D, -1)), (batch * n, Wk), (batch * n, Wv),
                    (batch, head["mlp"]["fc1"]["weight"]), (batch, head["mlp"]["fc2"]["weight"])]  # fmt: skip
    rng = np.random.default_rng(1)
    calls = [(rng.standard_normal((rows, w.shape[1]), dtype=np.float32), w, np.empty((rows, w.shape[0]), np.float32))
             for rows, w in products]  # ([R, I], [O, I], [R, O])  # fmt: skip

    def run():
        for x, w, out in calls:
            matmul_t(x, w, out=out)

    return run


# ---------------------------------------------------------------- the two implementations


def ours_call(model, tower, batch_inputs):
    if tower == "text":
        return lambda: model.get_text_features(**batch_inputs)
    return lambda: model.get_image_features(**batch_inputs)


def hf_load(path):
    import torch
    from transformers import AutoModel

    return AutoModel.from_pretrained(path, attn_implementation="sdpa", dtype=torch.float32).eval()


def hf_call(model, tower, batch_inputs):
    import torch

    tensors = {k: torch.from_numpy(v) for k, v in batch_inputs.items()}
    fn = model.get_text_features if tower == "text" else model.get_image_features

    def call():
        with torch.inference_mode():
            return fn(**tensors)

    return call


def transformers_available():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------- peak RSS in a fresh process


def child_main(impl, path, workload, threads):
    """Runs in a subprocess: load + one forward, then print peak RSS (MiB) and the forward's seconds as JSON."""
    checkpoint, tower, batch, n, *layout = workload
    data = inputs(checkpoint, tower, batch, n, *layout)
    if impl == "hf":
        import torch

        torch.set_num_threads(threads)
        model = hf_load(path)
        call = hf_call(model, tower, data)
    else:
        from ..model.model import load_model

        model = load_model(path, fast=impl == "ours")
        call = ours_call(model, tower, data)
    t = time.perf_counter()
    call()
    seconds = time.perf_counter() - t
    print(json.dumps({"peak_rss_mib": peak_rss_kib() / 1024, "seconds": seconds}))


def peak_rss_kib():
    """This process's peak RSS. Linux: VmHWM, because ru_maxrss survives exec and so includes the parent's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS


def peak_rss(impl, path, workload, threads):
    """{peak_rss_mib, seconds} of load + one forward in a fresh interpreter."""
    cmd = [sys.executable, "-m", "siglip2_ref.bench", "--child", impl, str(path), json.dumps(workload), str(threads)]
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parent.parent)
    if done.returncode:
        raise RuntimeError(f"{impl} child failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the report


def environment(threads):
    """Thread count, BLAS library and kernel (threadpoolctl), OPENBLAS_* variables, machine load."""
    lines = [f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, threads {threads}"]
    try:
        from threadpoolctl import threadpool_info

        for lib in threadpool_info():
            if lib["user_api"] == "blas":
                lines.append(f"BLAS: {lib['internal_api']} {lib['version']}, kernel {lib.get('architecture')}, "
                             f"{lib['num_threads']} threads ({Path(lib['filepath']).name})")  # fmt: skip
    except ImportError:
        lines.append("BLAS: unknown (pip install threadpoolctl to report it)")
    blas_env = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "MKL_", "GOTO"))}
    lines.append(f"BLAS environment: {blas_env or 'none set'}")
    if transformers_available():
        import torch
        import transformers

        lines.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}, attention sdpa")
    lines.append(f"load average: {os.getloadavg()[0]:.2f}")
    return lines


def fmt(x, spec=".3f"):
    return "-" if x is None else format(x, spec)


def table(rows):
    """The workload rows as a Markdown table ("-" where a value was not measured)."""
    head = ("workload", "GFLOP", "ours s", "GFLOP/s", "hf s", "ours/hf", "floor s", "ours/floor", "floor/hf",
            "gemms s", "ours/gemms", "ort s", "ours/ort", "ort/hf", "int8 s", "int8/hf", "plain s", "load")  # fmt: skip
    out = [head] + [(r["name"], fmt(r["gflop"], ".1f"), fmt(r["ours"]), fmt(r["gflops"], ".0f"), fmt(r.get("hf")),
                     fmt(r.get("ratio_hf"), ".2f"), fmt(r["floor"]), fmt(r["ratio_floor"], ".2f"),
                     fmt(r.get("floor_hf"), ".2f"), fmt(r.get("gemms")), fmt(r.get("ratio_gemms"), ".2f"),
                     fmt(r.get("ort")), fmt(r.get("ratio_ort"), ".2f"),
                     fmt(r.get("ort_hf"), ".2f"), fmt(r.get("ort_int8")), fmt(r.get("int8_hf"), ".2f"),
                     fmt(r.get("plain")), fmt(r.get("load_avg"), ".1f")) for r in rows]  # fmt: skip
    widths = [max(len(row[i]) for row in out) for i in range(len(head))]
    return "\n".join("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in out[:1] + [["-" * w for w in widths]] + out[1:])


def bench_workloads(names, paths, args, use_hf):
    """Time every workload: ours, the GEMM floor and transformers interleaved per repeat, so that a change in the
    machine's speed (shared hosts drift by +-30% within minutes) hits all three alike and the ratios hold."""
    from ..model.model import load_model

    ours = {name: load_model(path) for name, path in paths.items()}
    plain = {name: load_model(path, fast=False) for name, path in paths.items()} if args.plain else {}
    hf = {name: hf_load(path) for name, path in paths.items()} if use_hf else {}
    rows = []
    for name in names:
        checkpoint, tower, batch, n, *layout = WORKLOADS[name]
        data = inputs(checkpoint, tower, batch, n, *layout)
        keys = data["pixel_attention_mask"].sum(axis=1) if "pixel_attention_mask" in data else None  # [B]
        calls = {"ours": ours_call(ours[checkpoint], tower, data), "floor": gemm_floor(gemms(tower, batch, n), args.threads_used),
                 "gemms": own_gemms(ours[checkpoint], tower, batch, n, args.threads_used, keys)}  # fmt: skip
        if use_hf:
            calls["hf"] = hf_call(hf[checkpoint], tower, data)
        if use_hf and args.use_onnx and name in ONNX:
            from .onnx_runtime import onnx_calls

            calls.update(onnx_calls(hf[checkpoint], tower, data, args.onnx_dir, name, args.threads_used))
        if args.plain and name in QUICK:  # the plain path is slow: the small workloads only
            calls["plain"] = ours_call(plain[checkpoint], tower, data)
        times = interleaved_times(calls, args.repeats, settle=SETTLE)
        row = {"name": name, "gflop": gflop(gemms(tower, batch, n)), **{k: statistics.median(v) for k, v in times.items()}}
        row["gflops"] = row["gflop"] / row["ours"]
        row["ratio_floor"] = paired_ratio(times["ours"], times["floor"])
        row["ratio_gemms"] = paired_ratio(times["ours"], times["gemms"])
        if use_hf:
            row["ratio_hf"] = paired_ratio(times["ours"], times["hf"])
            row["floor_hf"] = paired_ratio(times["floor"], times["hf"])  # the best ours/hf any NumPy code could reach
        if "ort" in times:
            row["ratio_ort"] = paired_ratio(times["ours"], times["ort"])
            row["ort_hf"] = paired_ratio(times["ort"], times["hf"])
            row["int8_hf"] = paired_ratio(times["ort_int8"], times["hf"])
        row["load_avg"] = os.getloadavg()[0]
        rows.append(row)
        print(f"  {name}: ours {row['ours']:.3f} s" + (f", hf {row['hf']:.3f} s" if use_hf else ""), file=sys.stderr)
    return rows


def bench_load(paths, args, use_hf):
    """Median seconds to load the NaFlex checkpoint: ours (memory-mapped) and transformers' from_pretrained."""
    from ..model.model import load_model

    path = paths["naflex"]
    result = {"ours": median_time(lambda: load_model(path), args.repeats)}
    if use_hf:
        result["hf"] = median_time(lambda: hf_load(path), args.repeats)
    return result


def main(argv=None):
    """Parse the options, build (or reuse) the random checkpoints, run everything and print the report."""
    parser = argparse.ArgumentParser(prog="python -m siglip2_ref.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the B/16 NaFlex-256, FixRes B=8 and text workloads only")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per workload (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="threads for both libraries (default: BLAS's own count)")
    parser.add_argument("--plain", action="store_true", help="also time the readable path (load_model(fast=False))")
    parser.add_argument("--no-transformers", action="store_true", help="skip transformers even when installed")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS subprocesses")
    parser.add_argument("--no-onnx", action="store_true", help="skip ONNX Runtime even when installed")
    parser.add_argument("--no-preprocess", action="store_true", help="skip the preprocessing throughput table")
    parser.add_argument("--preprocess-only", action="store_true", help="only the preprocessing throughput table")
    parser.add_argument("--checkpoint-dir", help="keep the random checkpoints here (default: a temporary folder)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    forced = [k for k in FORCED_BLAS if k in os.environ]
    if forced and not args.child:  # OpenBLAS read them when NumPy was imported: run again without them
        print(f"unsetting {', '.join(forced)} for the benchmark's own run (restarting)", file=sys.stderr)
        env = {k: v for k, v in os.environ.items() if k not in FORCED_BLAS}
        os.execve(sys.executable, [sys.executable, "-m", "siglip2_ref.bench", *(sys.argv[1:] if argv is None else argv)], env)
    if args.child:
        impl, path, workload, threads = args.child
        return child_main(impl, path, tuple(json.loads(workload)), int(threads))
    from ..backend import blas_thread_count

    threads = args.threads_used = args.threads or blas_thread_count()
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    use_hf = transformers_available() and not args.no_transformers
    if use_hf:
        import torch

        torch.set_num_threads(threads)
    folder = Path(args.checkpoint_dir or tempfile.mkdtemp(prefix="siglip2_ref_bench_"))
    try:
        return report(args, folder, threads, use_hf)
    finally:
        if not args.checkpoint_dir:
            shutil.rmtree(folder, ignore_errors=True)


def gemm_rate(threads, use_hf):
    """float32 matmul GFLOP/s on the biggest shape of the workloads ([2048, 768] @ [768, 3072]), median of 5:
    NumPy on BLAS's threads, NumPy split over `threads` single-threaded workers, and torch (None without it)."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2048, 768), dtype=np.float32), rng.standard_normal((3072, 768), dtype=np.float32)
    times = [median_time(lambda: x @ w.T, 5),
             median_time(split_matmul(x[None], w.T[None], np.empty((1, 2048, 3072), np.float32), threads), 5)]  # fmt: skip
    if use_hf:
        import torch

        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        times.append(median_time(lambda: tx @ tw.T, 5))
    return [2 * 2048 * 768 * 3072 / 1e9 / t for t in times] + [None] * (3 - len(times))


def report(args, folder, threads, use_hf):
    """Run the workloads, the load timing and the peak-RSS children; print (and optionally save) the results."""
    results = {"environment": environment(threads)}
    args.use_onnx = not args.no_onnx and use_hf and onnx_available()
    args.onnx_dir = folder
    if args.use_onnx:
        from .onnx_runtime import versions

        results["environment"].append(versions())
    if not args.no_preprocess:
        from .preprocess import bench_preprocess

        print("preprocessing throughput ...", file=sys.stderr)
        results["preprocess"] = bench_preprocess(folder / "images", args.repeats, use_hf, quick=args.quick)
    if args.preprocess_only:
        return finish(args, results)
    print("building random base checkpoints ...", file=sys.stderr)
    paths = checkpoints(folder)
    whole, split, torch_rate = gemm_rate(threads, use_hf)
    results["environment"].append(f"NumPy matmul [2048, 768] @ [768, 3072]: {whole:.0f} GFLOP/s on BLAS's threads, "
                                  f"{split:.0f} GFLOP/s split over {threads} single-threaded workers"
                                  + (f"; torch: {torch_rate:.0f} GFLOP/s" if torch_rate else ""))  # fmt: skip
    names = QUICK if args.quick else tuple(WORKLOADS)
    results["workloads"] = bench_workloads(names, paths, args, use_hf)
    results["load"] = bench_load(paths, args, use_hf)
    if not args.no_rss:
        rss_workload = WORKLOADS["vision naflex-256 B=8"]
        impls = ["ours"] + ["hf"] * use_hf + ["plain"] * args.plain
        results["rss"] = {impl: peak_rss(impl, paths["naflex"], rss_workload, threads) for impl in impls}
        if not args.quick:
            results["long"] = {"ours": peak_rss("ours", paths["naflex"], LONG, threads),
                               "naive_scores_mib": 12 * LONG[3] ** 2 * 4 / 2**20}  # fmt: skip
            if args.plain:
                results["long"]["plain"] = peak_rss("plain", paths["naflex"], LONG, threads)
    return finish(args, results)


def finish(args, results):
    print_report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def onnx_available():
    from .onnx_runtime import available

    return available()


def print_report(results):
    """The environment lines, the workload table, then load, RSS and long-sequence lines."""
    print("\n".join(results["environment"]))
    if "preprocess" in results:
        from .preprocess import preprocess_table

        print("\npreprocessing, file -> arrays (images/s; ratios: ours/transformers throughput, paired)\n")
        print(preprocess_table(results["preprocess"]))
    if "workloads" not in results:
        return
    print()
    print(table(results["workloads"]))
    load = results["load"]
    line = f"\ncheckpoint load (B/16 NaFlex, 1.5 GB float32): ours {load['ours']:.3f} s"
    if "hf" in load:
        line += f", transformers {load['hf']:.3f} s, ratio {load['ours'] / load['hf']:.2f}"
    print(line)
    rss = results.get("rss")
    if rss:
        line = f"peak RSS, load + vision naflex-256 B=8 (fresh process): ours {rss['ours']['peak_rss_mib']:.0f} MiB"
        if "hf" in rss:
            line += f", transformers {rss['hf']['peak_rss_mib']:.0f} MiB, ratio {rss['ours']['peak_rss_mib'] / rss['hf']['peak_rss_mib']:.2f}"
        if "plain" in rss:
            line += f"; plain path {rss['plain']['peak_rss_mib']:.0f} MiB"
        print(line)
    long = results.get("long")
    if long:
        line = (f"vision naflex-4096 B=1 (fresh process): ours {long['ours']['seconds']:.2f} s, peak RSS "
                f"{long['ours']['peak_rss_mib']:.0f} MiB; naive attention scores alone: {long['naive_scores_mib']:.0f} MiB per layer")  # fmt: skip
        if "plain" in long:
            line += f"; plain path {long['plain']['seconds']:.2f} s, peak RSS {long['plain']['peak_rss_mib']:.0f} MiB"
        print(line)


if __name__ == "__main__":
    sys.exit(main())
