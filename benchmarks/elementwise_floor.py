"""How low can ours/gemms go with NumPy? One base layer: the elementwise kernels of model/fast.py timed alone
against the layer's matrix multiplies, each run the way the forward runs them.

    python benchmarks/elementwise_floor.py                        # vision B=8 NaFlex-256: 2048 rows of 256 tokens
    python benchmarks/elementwise_floor.py --rows 512 --tokens 64 # text 8 x 64

`model/fast.py`'s rule (`row_workers`) decides how: with enough rows each worker takes its share through the
products on one BLAS thread and the kernels on the same core, so both are timed on one core over one share; with
fewer (text 4 x 64, vision B=1) one thread runs every step: the products on BLAS's threads, the kernels and the
softmax on one core between them. The kernels run on chunks that stay in L2, the products with weights that
differ per layer (12 layers' worth, 340 MB, cycled, so they stream from memory as in a forward). The last line,
the kernels' time over the products', is what the elementwise work costs when nothing else does (thread
hand-offs, stem and head, Python, caches the two evict from each other): a lower bound on ours/gemms - 1 for this
NumPy on this machine. Ufunc passes cannot go under it; only fused kernels could.

The second table bounds ours/floor the same way. The benchmark's GEMM floor (`bench.gemm_floor`) keeps one weight
per shape in cache; a forward streams every layer's own weights. So the encoder's products are timed with 12
distinct layers of weights, each kind of product (q, k, v and out; fc1; fc2; attention's two) three ways: on
BLAS's threads over all rows; the rows split over the workers; the output columns and heads split over them,
ignoring the waits a forward would need there. Every call is paired with the floor and starts after a pause. The
fastest way for each kind, summed, times 1 + the kernels' share, is what a NumPy forward that paid for nothing
else would reach: a lower bound on ours/floor.
"""

import argparse
import itertools
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from threadpoolctl import threadpool_limits  # noqa: E402

from siglip2_ref.backend import Scratch, Workers, blas_thread_count  # noqa: E402
from siglip2_ref.bench.benchmark import encoder_gemms, gemm_floor  # noqa: E402
from siglip2_ref.bench.timing import SETTLE, interleaved_times, median_time, paired_ratio  # noqa: E402
from siglip2_ref.model import fast  # noqa: E402

D, F, H, LAYERS = 768, 3072, 12, 12  # base size


def kernels(R, N, rng):  # -> [(name, fn)]: one layer's elementwise work on R rows of R // N images, as fast.py runs it
    x, y, t = (rng.standard_normal((R, D), dtype=np.float32) for _ in range(3))  # [R, D]
    u, g = rng.standard_normal((R, F), dtype=np.float32), np.empty((fast.chunk_rows(F), F), np.float32)  # [R, F]
    w, b, bf = rng.standard_normal(D, dtype=np.float32), rng.standard_normal(D, dtype=np.float32), rng.standard_normal(F, dtype=np.float32)
    per_head = N * N * 4
    hb = max(1, min(H, fast.SCORE_BYTES // per_head))  # heads per attention task (queries all N when one fits)
    scores = rng.standard_normal((hb, N, N), dtype=np.float32)  # [hb, M, q]
    ctx, out = rng.standard_normal((hb, N, D // H), dtype=np.float32), np.empty((hb, N, D // H), np.float32)  # [hb, q, K]

    def layer_norms():  # LayerNorm 1 and 2
        for _ in range(2):
            for c in fast.chunks(R, D):
                fast.layer_norm_into(x[c], w, b, 1e-6, out=y[c], tmp=t[c])

    def bias_adds():  # q, k, v biases and q's scale; out_proj and fc2 biases and both residuals
        for c in fast.chunks(R, D):
            for _ in range(3):
                y[c] += b
            y[c] *= 0.125
            for _ in range(2):
                t[c] += b
                x[c] += t[c]

    def gelu():  # fc1's bias and the activation
        for r in fast.chunks(R, F):
            u[r] += bf
            fast.gelu_tanh_(u[r], g[: r.stop - r.start])

    def softmax():  # every attention task of R // N images: exp(s - max) and the division of weights v
        for _ in range((R // N) * (H // hb)):
            sums = fast.softmax_keys_first_(scores).transpose(0, 2, 1)  # [hb, q, 1]
            np.divide(ctx, sums, out=out)

    return [("LayerNorm x2", layer_norms), ("bias and residual adds", bias_adds), ("fc1 bias + GELU", gelu),
            ("softmax + division", softmax)]  # fmt: skip


def layer_weights(rng, layers=None):  # -> [[Wq, Wk, Wv, Wo, W1, W2]] of `layers` (default LAYERS) distinct layers
    shapes = [(D, D)] * 4 + [(F, D), (D, F)]  # [out, in] each
    return [[rng.standard_normal(s, dtype=np.float32) for s in shapes] for _ in range(layers or LAYERS)]


class Arrays(NamedTuple):
    """What the products read and write: x [T, D], o [T, D], u [T, F], q [B, H, N, K] (standing in for q, k and v),
    ctx [B, H, N, K]."""

    x: np.ndarray
    o: np.ndarray
    u: np.ndarray
    q: np.ndarray
    ctx: np.ndarray


def make_arrays(T, N, rng):  # -> Arrays for T token rows of N-token images
    x, q = rng.standard_normal((T, D), dtype=np.float32), rng.standard_normal((T // N, H, N, D // H), dtype=np.float32)
    return Arrays(x, np.empty((T, D), np.float32), np.empty((T, F), np.float32), q, np.empty_like(q))


class Part(NamedTuple):
    """One worker's part of a layer's products; the defaults are all of them."""

    rows: slice = slice(None)  # token rows
    cols: slice = slice(None)  # output columns of D
    fcols: slice = slice(None)  # output columns of F
    images: range = None  # images whose attention it computes (None: every image)
    heads: slice = slice(None)


KINDS = ("q, k, v, out", "fc1", "fc2", "attention")


def layer_products(W, a, part, kinds, scratch):
    """The products of `kinds` for one layer with weights W, `part` of them, on Arrays a."""
    Wq, Wk, Wv, Wo, W1, W2 = W
    rows, cols = part.rows, part.cols
    if "q, k, v, out" in kinds:
        for Wp in (Wq, Wk, Wv, Wo):
            np.matmul(a.x[rows], Wp[cols].T, out=a.o[rows, cols])
    if "fc1" in kinds:
        np.matmul(a.x[rows], W1[part.fcols].T, out=a.u[rows, part.fcols])
    if "fc2" in kinds:
        np.matmul(a.u[rows], W2[cols].T, out=a.o[rows, cols])
    if "attention" in kinds:
        for b in range(len(a.q)) if part.images is None else part.images:
            qb = a.q[b, part.heads]  # [h, N, K]
            scores = scratch.get("scores", (len(qb), qb.shape[1], qb.shape[1]), np.float32)  # [h, N, M]
            np.matmul(qb, qb.transpose(0, 2, 1), out=scores)  # q k^T
            np.matmul(scores, qb, out=a.ctx[b, part.heads])  # weights v


def products(R, N, rng):  # -> fn: one layer's matrix multiplies on R rows, weights cycling over LAYERS layers
    arrays, layers, scratch = make_arrays(R, N, rng), itertools.cycle(layer_weights(rng)), Scratch()

    def run():
        layer_products(next(layers), arrays, Part(), KINDS, scratch)

    return run


def share(n, w, parts):  # -> slice: part w of range(n) cut into `parts`
    return slice(w * n // parts, (w + 1) * n // parts)


def ways_parts(T, N, threads):  # -> {way: [Part]}: the three ways to cut the products among the workers
    """BLAS's threads: one part, all rows. Rows split: fast.py's row blocks, each worker's attention over its share of
    whole images. Columns split: all rows, each worker a share of the output columns and of the heads."""
    B, blocks = T // N, fast.split_rows(T, threads)
    rows = [Part(rows=r, images=range(B)[share(B, i, len(blocks))]) for i, r in enumerate(blocks)]
    columns = [Part(cols=share(D, w, threads), fcols=share(F, w, threads), heads=share(H, w, threads)) for w in range(threads)]
    return {"BLAS's threads": [Part()], "rows split": rows, "columns split": columns}


def streamed_encoders(T, N, threads, rng):  # -> {(way, kind): fn}, Arrays, weights
    """The products of one encoder (LAYERS distinct layers of weights) over T token rows, each way and each kind of
    product on its own, so that the fastest way can be picked for each kind as a forward could. The columns split
    does not wait between products (a forward would have to). The arrays and weights are returned for the tests."""
    weights, workers, arrays = layer_weights(rng), Workers(threads), make_arrays(T, N, rng)

    def way(parts, kind):
        def run():
            for W in weights:
                workers.run_owning_cores(lambda part, scratch: layer_products(W, arrays, part, (kind,), scratch), parts, len(parts))

        return run

    calls = {(name, kind): way(parts, kind) for name, parts in ways_parts(T, N, threads).items() for kind in KINDS}
    return calls, arrays, weights


def products_bound(T, N, threads, repeats, rng):  # -> {(way, kind): ratio to the floor}, repeats run
    """Each way and kind of the encoder's products with streamed weights, paired with the benchmark's GEMM floor;
    also (way, "all"), and ("fastest", kind) and ("fastest", "all"): each kind the fastest way in that repeat."""
    streamed = streamed_encoders(T, N, threads, rng)[0]
    times = interleaved_times({"floor": gemm_floor(encoder_gemms(T // N, N, LAYERS), threads), **streamed}, repeats, settle=SETTLE)
    floor, ways = times.pop("floor"), list(dict.fromkeys(way for way, _ in streamed))
    per_repeat = {**times, **{("fastest", kind): [min(t) for t in zip(*(times[w, kind] for w in ways))] for kind in KINDS}}
    for way in [*ways, "fastest"]:
        per_repeat[way, "all"] = [sum(t) for t in zip(*(per_repeat[way, kind] for kind in KINDS))]
    return {key: paired_ratio(t, floor) for key, t in per_repeat.items()}, len(floor)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2048, help="token rows of the batch (B x N)")
    p.add_argument("--tokens", type=int, default=256, help="tokens per image (N)")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--bound-repeats", type=int, default=7, help="paired repeats of the second table (0: skip it)")
    args = p.parse_args(argv)
    if args.rows % args.tokens:
        p.error(f"--rows {args.rows} is not a whole number of {args.tokens}-token images")
    threads = blas_thread_count()
    workers = fast.row_workers(args.rows, threads)
    R, N = args.rows // workers, args.tokens  # one worker's share of the rows
    rng = np.random.default_rng(0)
    with threadpool_limits(1 if workers > 1 else threads, user_api="blas"):
        gemm = median_time(products(R, N, rng), args.repeats, warmup=LAYERS)
    with threadpool_limits(1, user_api="blas"):
        rows = [(name, median_time(fn, args.repeats)) for name, fn in kernels(R, N, rng)]
    how = f"each of {workers} workers' {R} rows on one core" if workers > 1 else f"products on {threads} BLAS threads, kernels on one"
    print(f"{args.rows} rows of {N}-token images, one base layer ({how}): products {gemm * 1e3:.2f} ms\n")
    print("| kernel | ms | of the products |\n|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1e3:.2f} | {seconds / gemm:.1%} |")
    total = sum(seconds for _, seconds in rows)
    print(f"| all | {total * 1e3:.2f} | {total / gemm:.1%} |")
    if args.bound_repeats:
        ratios, repeats = products_bound(args.rows, N, threads, args.bound_repeats, rng)
        ways = list(dict.fromkeys(way for way, _ in ratios))
        print(f"\nThe encoder's products ({LAYERS} layers of weights) over the GEMM floor's time, {repeats} paired repeats:\n")
        print("| products | " + " | ".join(ways) + " |")
        print("|---" * (len(ways) + 1) + "|")
        for kind in [*KINDS, "all"]:
            print(f"| {kind} | " + " | ".join(f"{ratios[way, kind]:.3f}" for way in ways) + " |")
        best = ratios["fastest", "all"]
        print(f"\nlower bound on ours/floor: {best:.3f} x (1 + {total / gemm:.3f}) = {best * (1 + total / gemm):.3f}")


if __name__ == "__main__":
    main()
