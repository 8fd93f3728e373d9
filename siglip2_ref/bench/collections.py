"""`python -m siglip2_ref.bench.collections`: photo-collection numbers for docs/collections.md.

1. embed throughput (images/s) on a folder of generated JPEGs of mixed sizes, for the demo model and a random
   base-size NaFlex checkpoint: the overlapped pipeline (threads decode and resize ahead of the model), the serial
   one, and transformers' loop (AutoImageProcessor + get_image_features, batch 16), interleaved in the same run;
2. Ray Data on a local 2-CPU cluster against the local overlapped path (demo model);
3. search over 1M x 768 synthetic unit rows memory-mapped from an index (float32 and float16): query time and
   peak RSS of a fresh process, and what float16 storage does to the top-10 (recall against float32).

Tables are printed; nothing is timed inside tests. OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset for this run.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLEARED_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
QUERY_CHILD = """
import json, sys, time, numpy as np
from siglip2_ref.bench.benchmark import peak_rss_kib
t0 = time.perf_counter()
from siglip2_ref.tasks.readers import open_embeddings
from siglip2_ref.tasks.query import top_k
e = open_embeddings(sys.argv[1]); opened = time.perf_counter() - t0
q = np.random.default_rng(int(sys.argv[2])).standard_normal(e.dim).astype(np.float32); q /= np.linalg.norm(q)
times = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter(); rows, scores = top_k(e, q, 10); times.append(time.perf_counter() - t)
print(json.dumps({"open_s": opened, "query_s": times, "rows": rows.tolist(), "peak_rss_mib": peak_rss_kib() / 1024}))
"""


# ---------------------------------------------------------------- inputs


def write_jpegs(folder, n, seed=0):
    """n JPEGs of mixed sizes (160..1600 px a side, portrait and landscape): shapes on noise, quality 90."""
    from PIL import Image

    from ..demo import shapes

    folder.mkdir(parents=True, exist_ok=True)
    existing = [folder / f"img{i:04d}.jpg" for i in range(n)]
    if all(f.is_file() for f in existing):  # a --workdir reused from an earlier run: the same files
        return existing
    rng = np.random.default_rng(seed)
    files = []
    for i in range(n):
        w, h = (int(x) for x in rng.integers(160, 1600, 2))
        colour, shape = list(shapes.COLOURS)[i % len(shapes.COLOURS)], list(shapes.SHAPES)[i % len(shapes.SHAPES)]
        image = shapes.draw(colour, shape, "center", rng, size=(w, h))
        noise = rng.integers(0, 24, (h, w, 3), dtype=np.uint8)
        image = Image.fromarray(np.clip(np.asarray(image, np.int16) + noise - 12, 0, 255).astype(np.uint8))
        files.append(folder / f"img{i:04d}.jpg")
        image.save(files[-1], quality=90)
    return files


def base_checkpoint(folder):
    """The random base-size NaFlex checkpoint of the CPU benchmark, with a preprocessor config (patch 16, 256)."""
    from .benchmark import checkpoints

    path = checkpoints(folder)["naflex"]
    pre = {"image_processor_type": "Siglip2ImageProcessor", "patch_size": 16, "max_num_patches": 256,
           "do_resize": True, "do_rescale": True, "do_normalize": True, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}  # fmt: skip
    (path / "preprocessor_config.json").write_text(json.dumps(pre))
    return path


# ---------------------------------------------------------------- 1. embed throughput


def ours(folder, files, workers, batch=16):
    """Seconds to embed `files` with this package (model loaded beforehand)."""
    from ..model.model import load_model
    from ..preprocess.processor import load_processor
    from ..tasks.pipelines import iter_image_embeddings

    model, processor = load_model(folder), load_processor(folder)

    def run():
        t = time.perf_counter()
        run.embeddings = np.concatenate([e for _, e in iter_image_embeddings(model, processor, files, batch, workers=workers)])
        return time.perf_counter() - t

    return run


def transformers_loop(folder, files, batch=16):
    """Seconds for transformers' equivalent: AutoImageProcessor on PIL images + get_image_features, batch 16."""
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModel

    model = AutoModel.from_pretrained(folder, attn_implementation="sdpa", dtype=torch.float32).eval()
    processor = AutoImageProcessor.from_pretrained(folder)

    def run():
        t = time.perf_counter()
        with torch.inference_mode():
            for start in range(0, len(files), batch):
                images = [Image.open(f).convert("RGB") for f in files[start : start + batch]]
                model.get_image_features(**processor(images=images, return_tensors="pt"))
        return time.perf_counter() - t

    return run


def bench_embed(name, folder, files, use_hf, repeats):
    """{method: [seconds per repeat]}, the methods interleaved within each repeat."""
    calls = {"overlapped (2 threads)": ours(folder, files, 2), "serial": ours(folder, files, 0)}
    if use_hf:
        calls["transformers loop"] = transformers_loop(folder, files)
    times = Times({k: [] for k in calls})
    for r in range(repeats):
        for k, call in calls.items():
            times[k].append(call())
            print(f"  {name} repeat {r + 1}: {k} {len(files) / times[k][-1]:.1f} images/s", file=sys.stderr, flush=True)
    times.embeddings = calls["serial"].embeddings
    return times


class Times(dict):
    """{method: [seconds]} and the embeddings the last serial run made."""


# ---------------------------------------------------------------- 2. Ray


def bench_ray(folder, files, out):
    """(cluster start s, Ray embed s, local overlapped s) for the demo model; Parquet written to `out`."""
    from ..tasks.ray_embed import embed_files_to_parquet, start_ray

    t = time.perf_counter()
    ray = start_ray(num_cpus=2)
    started = time.perf_counter() - t
    meta = {"model": str(folder), "dim": 48}
    t = time.perf_counter()
    embed_files_to_parquet([str(f) for f in files], str(out), folder, meta, batch_size=16, num_workers=2, overwrite=True)
    ray_s = time.perf_counter() - t
    ray.shutdown()
    return started, ray_s, ours(folder, files, 2)()


# ---------------------------------------------------------------- 3. 1M-row search


def synthetic_index(path, rows, dim, storage, seed=0):
    """An index of `rows` random unit rows, written block by block (never whole in memory)."""
    from ..tasks.embedfile import Rows, save_embeddings

    def blocks():
        rng = np.random.default_rng(seed)
        for start in range(0, rows, 65536):
            x = rng.standard_normal((min(65536, rows - start), dim), dtype=np.float32)
            yield x / np.linalg.norm(x, axis=1, keepdims=True)

    meta = {"model": "synthetic", "normalized": "true"}
    save_embeddings(path, Rows((rows, dim), storage, blocks), [f"/photos/{i:07d}.jpg" for i in range(rows)], meta, storage=storage)


def query_child(path, seed, repeats):
    done = subprocess.run([sys.executable, "-c", QUERY_CHILD, str(path), str(seed), str(repeats)], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def recall_at_10(a, b):
    return len(set(a) & set(b)) / 10


def bench_query(tmp, rows, dim, queries):
    """Per storage: index size, open s, first and warm query s, peak RSS; float16's recall@10 against float32."""
    out, tops = {}, {}
    for storage in ("float32", "float16"):
        path = tmp / f"synthetic_{storage}.safetensors"
        t = time.perf_counter()
        synthetic_index(path, rows, dim, storage)
        written = time.perf_counter() - t
        runs = [query_child(path, seed, 2) for seed in range(queries)]
        out[storage] = {"size_gib": path.stat().st_size / 2**30, "write_s": written, "open_s": runs[0]["open_s"],
                        "first_s": runs[0]["query_s"][0], "warm_s": float(np.median([r["query_s"][1] for r in runs])),
                        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs)}  # fmt: skip
        tops[storage] = [r["rows"] for r in runs]
        if storage == "float32":
            path.unlink()  # room on disk for the next one
    recalls = [recall_at_10(a, b) for a, b in zip(tops["float32"], tops["float16"])]
    return out, float(np.mean(recalls)), float(np.min(recalls))


def float16_recall_on(embeddings, queries=100):
    """Mean recall@10 of float16-stored rows against float32, each of the first rows as a query."""
    e32, e16 = embeddings.astype(np.float32), embeddings.astype(np.float16).astype(np.float32)
    recalls = []
    for q in e32[:queries]:
        a, b = np.argsort(-(e32 @ q), kind="stable")[:10], np.argsort(-(e16 @ q), kind="stable")[:10]
        recalls.append(recall_at_10(a, b))
    return float(np.mean(recalls))


# ---------------------------------------------------------------- report


def row(cells):
    return "| " + " | ".join(str(c) for c in cells) + " |"


def main(argv=None):
    if any(k in os.environ for k in CLEARED_ENV):  # re-run without them, before NumPy's BLAS reads them
        env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
        os.execve(sys.executable, [sys.executable, "-m", "siglip2_ref.bench.collections", *(argv or sys.argv[1:])], env)
    p = argparse.ArgumentParser(prog="python -m siglip2_ref.bench.collections", description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=1000, help="JPEGs for the demo model and Ray (default: 1000)")
    p.add_argument("--base-images", type=int, default=1000, help="JPEGs for the base-size checkpoint (default: 1000)")
    p.add_argument("--repeats", type=int, default=1, help="interleaved repeats of each embed method (default: 1)")
    p.add_argument("--rows", type=int, default=1_000_000, help="rows of the synthetic index (default: 1000000)")
    p.add_argument("--queries", type=int, default=5, help="query processes per index (default: 5)")
    p.add_argument("--skip", nargs="*", default=[], choices=("demo", "base", "ray", "query"), help="sections to leave out")
    p.add_argument("--workdir", help="where the JPEGs, checkpoint and indexes go (default: a temporary folder)")
    args = p.parse_args(argv)
    from ..demo import DEMO_NAFLEX
    from .benchmark import environment, transformers_available

    tmp = Path(args.workdir or tempfile.mkdtemp(prefix="collections-bench-"))
    use_hf = transformers_available()
    print("\n".join(environment(os.cpu_count())))
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    files = write_jpegs(tmp / "jpegs", max(args.images, args.base_images))
    embed_rows = [("demo", Path(DEMO_NAFLEX), files[: args.images])] * ("demo" not in args.skip)
    if "base" not in args.skip:
        embed_rows.append(("base (random, 256 patches)", base_checkpoint(tmp / "checkpoints"), files[: args.base_images]))
    if embed_rows:
        print("\n| model | images | method | images/s | vs transformers |\n|---|---|---|---|---|")
    recalls = []
    for name, folder, subset in embed_rows:
        times = bench_embed(name, folder, subset, use_hf, args.repeats)
        hf = times.get("transformers loop")
        for method, t in times.items():
            ratio = f"{np.median(np.array(hf) / np.array(t)):.2f}x" if hf else "n/a"
            print(row([name, len(subset), method, f"{len(subset) / np.median(t):.1f}", ratio]), flush=True)
        recalls.append((name, float16_recall_on(times.embeddings)))
    for name, recall in recalls:
        print(f"float16 storage of the {name} embeddings: top-10 recall against float32, 100 image queries: {recall:.3f}")
    if "ray" not in args.skip:
        started, ray_s, local_s = bench_ray(Path(DEMO_NAFLEX), files[: args.images], tmp / "ray.parquet")
        n = args.images
        print(f"\n| demo model, {n} JPEGs | seconds | images/s |\n|---|---|---|")
        print(row(["Ray Data, local cluster of 2 CPUs, 2 workers (cluster start not included)", f"{ray_s:.1f}", f"{n / ray_s:.1f}"]))
        print(row(["Ray cluster start", f"{started:.1f}", ""]))
        print(row(["local overlapped pipeline, same process", f"{local_s:.1f}", f"{n / local_s:.1f}"]), flush=True)
    if "query" not in args.skip:
        result, mean_recall, min_recall = bench_query(tmp, args.rows, 768, args.queries)
        print(f"\n| {args.rows:,} x 768 index | file GiB | open s | first query s | warm query s | peak RSS MiB |\n|---|---|---|---|---|---|")
        for storage, r in result.items():
            print(row([storage, f"{r['size_gib']:.2f}", f"{r['open_s']:.2f}", f"{r['first_s']:.2f}", f"{r['warm_s']:.2f}",
                       f"{r['peak_rss_mib']:.0f}"]))  # fmt: skip
        print(f"float16 storage, top-10 recall against float32 over {args.queries} random queries: mean {mean_recall:.3f}, min {min_recall:.2f}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
