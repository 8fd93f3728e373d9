"""How low can ours/gemms go with NumPy? One base layer: the elementwise kernels of model/fast.py timed alone
against the layer's matrix multiplies, each run the way the forward runs them.

    python benchmarks/elementwise_floor.py                        # vision B=8 NaFlex-256: 2048 rows of 256 tokens
    python benchmarks/elementwise_floor.py --rows 512 --tokens 64 # text 8 x 64

`model/fast.py`'s rule (`row_workers`) decides how: with enough rows each worker takes its share through the
products on one BLAS thread and the kernels on the same core, so both are timed on one core over one share; with
fewer (text 4 x 64, vision B=1) one thread runs every step: the products on BLAS's threads, the kernels and the
softmax on one core between them. The kernels run on chunks that stay in L2, the products with weights that
differ per layer (12 layers' worth, 340 MB, cycled, so they stream from memory as in a forward). The last line, the kernels' time over the products', is what the
elementwise work costs when nothing else does (thread hand-offs, stem and head, Python, caches the two evict
from each other): a lower bound on ours/gemms - 1 for this NumPy on this machine. Ufunc passes cannot go under
it; only fused kernels could.

The second table bounds ours/floor the same way. The benchmark's GEMM floor (`bench.gemm_floor`) keeps one weight
per shape in cache; a forward streams every layer's own weights. So the encoder's products are timed three ways
with 12 distinct layers of weights (BLAS's threads on all rows; the rows split over the workers; the output
columns and heads split over them, ignoring the waits a forward would need there), paired with the floor, each call
after a pause. The fastest way, times 1 + the kernels' share, is what a NumPy forward that paid nothing else
would reach: a lower bound on ours/floor.
"""

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from threadpoolctl import threadpool_limits  # noqa: E402

from siglip2_ref.backend import Scratch, Workers, blas_thread_count, single_threaded_blas  # noqa: E402
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


def layer_weights(rng, layers=LAYERS):  # -> [[Wq, Wk, Wv, Wo, W1, W2]] of `layers` distinct layers ([out, in] each)
    return [[rng.standard_normal(s, dtype=np.float32) for s in [(D, D)] * 4 + [(F, D), (D, F)]] for _ in range(layers)]


def products(R, N, rng):  # -> fn: one layer's matrix multiplies on R rows, weights cycling over LAYERS layers
    x, o, u = rng.standard_normal((R, D), dtype=np.float32), np.empty((R, D), np.float32), np.empty((R, F), np.float32)
    q = rng.standard_normal((R // N, H, N, D // H), dtype=np.float32)  # [B, H, N, K]
    layers, scratch = itertools.cycle(layer_weights(rng)), Scratch()

    def run():
        layer_products(next(layers), x, o, u, q, slice(None), slice(None), slice(None), range(R // N), slice(None), scratch)

    return run


def layer_products(W, x, o, u, q, rows, cols, fcols, images, heads, scratch):
    """One layer's products on token `rows`, for output columns `cols` of D and `fcols` of F, and attention for
    `heads` of `images` (q stands in for q, k and v): x [R, D], o [R, D], u [R, F], q [B, H, N, K]."""
    Wq, Wk, Wv, Wo, W1, W2 = W
    for Wp in (Wq, Wk, Wv, Wo):
        np.matmul(x[rows], Wp[cols].T, out=o[rows, cols])
    np.matmul(x[rows], W1[fcols].T, out=u[rows, fcols])
    np.matmul(u[rows], W2[cols].T, out=o[rows, cols])
    for b in images:
        qb = q[b, heads]  # [h, N, K]
        h, n, k = qb.shape
        s, ctx = scratch.get("s", (h, n, n), np.float32), scratch.get("ctx", (h, n, k), np.float32)
        np.matmul(qb, qb.transpose(0, 2, 1), out=s)  # q k^T [h, N, M]
        np.matmul(s, qb, out=ctx)  # weights v [h, N, K]


def streamed_encoders(T, N, threads, rng):  # -> {way: fn}, (x, o, u, weights): the products of LAYERS distinct layers
    """The products of one encoder over T token rows, three ways: on BLAS's threads; each worker a share of the rows
    (fast.py's way); each worker a share of the output columns and heads (no waits: a forward would need some).
    Also the arrays they work on, so that a test can check what they wrote."""
    weights, workers = layer_weights(rng), Workers(threads)
    x, o, u = rng.standard_normal((T, D), dtype=np.float32), np.empty((T, D), np.float32), np.empty((T, F), np.float32)
    q = rng.standard_normal((T // N, H, N, D // H), dtype=np.float32)  # [B, H, N, K]
    everything = (slice(None), slice(None), slice(None), range(T // N), slice(None))
    row_shares = [(r, slice(None), slice(None), range(r.start // N, -(-r.stop // N)), slice(None)) for r in fast.split_rows(T, threads)]
    column_shares = [(slice(None), share(D, w, threads), share(F, w, threads), range(T // N), share(H, w, threads)) for w in range(threads)]

    def on_workers(shares):
        def run():
            with single_threaded_blas:
                for W in weights:
                    workers.run(lambda part, scratch: layer_products(W, x, o, u, q, *part, scratch), shares)

        return run

    def on_blas_threads():
        for W in weights:
            layer_products(W, x, o, u, q, *everything, workers.scratch())

    ways = {"BLAS's threads": on_blas_threads, "rows split": on_workers(row_shares), "columns split": on_workers(column_shares)}
    return ways, (x, o, u, weights)


def share(n, w, workers):  # -> slice: worker w's part of range(n)
    return slice(w * n // workers, (w + 1) * n // workers)


def products_bound(T, N, threads, repeats, rng):  # -> [(way, seconds, ratio to the floor)]
    """The encoder's products with streamed weights, each way paired with the benchmark's GEMM floor."""
    calls = {"floor": gemm_floor(encoder_gemms(T // N, N, LAYERS), threads), **streamed_encoders(T, N, threads, rng)[0]}
    times = interleaved_times(calls, repeats, settle=SETTLE)
    return [(way, float(np.median(t)), paired_ratio(t, times["floor"])) for way, t in times.items()]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2048, help="token rows of the batch (B x N)")
    p.add_argument("--tokens", type=int, default=256, help="tokens per image (N)")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--bound-repeats", type=int, default=7, help="paired repeats of the second table (0: skip it)")
    args = p.parse_args(argv)
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
        ways = products_bound(args.rows, N, threads, args.bound_repeats, rng)
        print(f"\nThe encoder's products ({LAYERS} layers) against the GEMM floor, {args.bound_repeats} paired repeats:\n")
        print("| products | s | of the floor |\n|---|---|---|")
        for way, seconds, ratio in ways:
            print(f"| {way} | {seconds:.3f} | {ratio:.3f} |")
        best = min(ratio for way, _, ratio in ways if way != "floor")
        print(f"\nlower bound on ours/floor: {best:.3f} x (1 + {total / gemm:.3f}) = {best * (1 + total / gemm):.3f}")


if __name__ == "__main__":
    main()
