"""A faster CPU encoder: the math of `layers.encoder`, arranged for speed (NumPy only).

Shapes: docs/shapes.md (B batch, N sequence, M keys, R token rows (B*N, or one block's), D width, H heads, K head
dim, F MLP width; local: q query rows of one block, hb heads of one block).

`layers.py` stays the readable reference; `FastEncoder` is a drop-in for its `encoder` (same signature,
same outputs, the checkpoint's own weight arrays: nothing is copied or re-laid) and tests/test_fast.py
proves the two agree. What differs, and why (docs/performance.md has the measurements):

1. Token rows go through each layer in blocks of at most BLOCK_ROWS rows (one per worker when they fit), and
   the elementwise work (LayerNorm, bias adds, GELU, residual adds) runs in place on what BLAS has just written,
   CHUNK_ELEMENTS values at a time, in per-worker scratch buffers: no full-size temporaries, data in cache, no copies.
2. Blocks are shared by a small pool of threads while BLAS runs single-threaded. NumPy releases the GIL
   inside ufuncs and matmul, so the elementwise work, which plain NumPy runs on one core, uses all of them.
   When the images divide evenly among the workers, each worker takes its images through every layer with no
   barrier; below MIN_WORKER_ROWS rows a worker, one thread runs every step, its products on BLAS's own threads.
   Never both at once: OpenBLAS's threads spin for up to about 0.1 s after a threaded product, and workers
   started meanwhile share the cores with them (a GELU job on two workers took 1.3x as long right after one).
3. Attention runs per (image, head group, query block), so the scores never exceed SCORE_BYTES per worker:
   memory grows linearly with the sequence length, not quadratically. Keys that are padding at the end of
   an image (NaFlex) are skipped: their weight is exactly 0 in the reference too.
4. q is scaled by K^-0.5 before q k^T (the same numbers when that is a power of two, as for head dim 64),
   the softmax is normalised after the product with v unless the weights are asked for, and GELU uses one
   exp instead of a tanh: each a smaller pass, each within one rounding of the reference.

NumPy only, float32 and float64: anything else (CuPy arrays, float16) goes to `layers.encoder`.
"""

import threading

import numpy as np

from ..backend import Workers, blas_thread_count, even_blocks  # one worker without threadpoolctl
from ..checkpoint.config import GELU_TANH_NAMES
from .layers import ACTIVATIONS, SQRT_2_OVER_PI, encoder
from .quant import matmul_t  # x W^T into `out`; int8/int4 weights dequantized a block of rows at a time

BLOCK_ROWS = 1024  # most token rows per block: single-threaded GEMMs run faster the more rows share one packed weight
CHUNK_ELEMENTS = 1 << 17  # values per elementwise pass (512 KiB of float32): a chunk and its scratch stay in L2
SCORE_BYTES = 1 << 19  # one worker's attention scores (512 KiB: the L2 of a Zen 3 or Skylake core)
MIN_WORKER_ROWS = 256  # fewer token rows a worker, and one thread runs every step with BLAS's own threads


# ---------------------------------------------------------------- in-place elementwise kernels on one chunk


def chunk_rows(width):  # -> rows of a [., width] array that hold about CHUNK_ELEMENTS values
    return max(1, CHUNK_ELEMENTS // width)


def chunks(R, width):  # -> [slice]: rows of an [R, width] array, chunk_rows(width) at a time
    step = chunk_rows(width)
    return [slice(r, min(r + step, R)) for r in range(0, R, step)]


def row_mean(x):  # [R, D] -> [R, 1]
    """The mean of each row as one matrix-vector product with a column of 1/D (BLAS: about 4x NumPy's row sums)."""
    return x @ np.full((x.shape[-1], 1), 1 / x.shape[-1], x.dtype)


def layer_norm_into(x, weight, bias, eps, out, tmp):  # [R, D] -> out [R, D]; tmp [R, D] scratch
    """layers.layer_norm's operations in its order, written into `out` without temporaries (means by `row_mean`)."""
    np.subtract(x, row_mean(x), out=out)
    np.multiply(out, out, out=tmp)
    std = row_mean(tmp)  # [R, 1], the biased variance
    std += eps
    np.sqrt(std, out=std)
    out /= std
    out *= weight
    out += bias
    return out


def gelu_tanh_(x, tmp):  # [R, F] -> [R, F] in place; tmp [R, F] scratch
    """layers.gelu_tanh in place, through 0.5 (1 + tanh u) = sigmoid(2u): x / (1 + exp(-2u)).

    u = sqrt(2/pi) (x + 0.044715 x^3). One exp instead of a tanh halves the cost in NumPy; for x << 0,
    exp overflows to inf and the result is -0.0, as the tanh form gives.
    """
    np.multiply(x, x, out=tmp)
    tmp *= -2 * SQRT_2_OVER_PI * 0.044715
    tmp -= 2 * SQRT_2_OVER_PI
    tmp *= x  # -2u
    with np.errstate(over="ignore"):
        np.exp(tmp, out=tmp)
    tmp += 1.0
    x /= tmp
    return x


def activation_(x, act, tmp):  # [R, F] in place
    if act in GELU_TANH_NAMES:
        return gelu_tanh_(x, tmp)
    x[...] = ACTIVATIONS[act](x)  # the activations no official checkpoint uses: the plain function
    return x


def softmax_keys_first_(scores):  # [..., M, q] in place -> column sums [..., 1, q]
    """exp(s - max over keys) in place, keys on the second-last axis; returns the sums over keys, so that the caller
    divides where it is cheapest. Keys first because NumPy reduces across rows (one vector op per row) several
    times faster than along them, and the sums are one matrix product with a row of ones."""
    np.subtract(scores, scores.max(axis=-2, keepdims=True), out=scores)
    np.exp(scores, out=scores)
    return np.ones((1, scores.shape[-2]), scores.dtype) @ scores


# ---------------------------------------------------------------- one layer in three steps, each over blocks


def qkv_block(rows, h, layer, eps, scale, qkv, scratch):  # rows of h [R, D] -> rows of q, k, v [R, D] each
    """LayerNorm 1 and the q, k, v projections of one block of token rows; q comes out scaled by K^-0.5."""
    x = h[rows]  # [R, D]
    y, t = scratch.get("y", x.shape, x.dtype), scratch.get("t", x.shape, x.dtype)
    for c in chunks(*x.shape):
        layer_norm_into(x[c], **layer["layer_norm1"], eps=eps, out=y[c], tmp=t[c])
    for name, out in zip(("q_proj", "k_proj", "v_proj"), qkv):
        proj, out = layer["self_attn"][name], out[rows]  # out: [R, D]
        matmul_t(y, proj["weight"], out=out)
        for c in chunks(*out.shape):
            out[c] += proj["bias"]
            if name == "q_proj":
                out[c] *= scale


def attention_block(task, qkv, ctx, N, H, keys, weights, scratch):  # one (image, head group, query block)
    """softmax(q k^T + bias) v for heads h0:h1 and queries q0:q1 of image b, written into ctx.

    The scores are computed transposed, keys first (k q^T: [hb, M, q]), see `softmax_keys_first_`.
    `keys[b]` is (M, bias): attend to the first M keys, adding `bias` [M] (None when the rest are padding).
    """
    b, h0, h1, q0, q1 = task
    M, bias = keys[b]
    first = b * N
    q, k, v = (a[first : first + N].reshape(N, H, -1)[:, h0:h1] for a in qkv)  # [N, hb, K] views; n (h k) -> n h k
    q, k, v = q[q0:q1].transpose(1, 2, 0), k[:M].transpose(1, 0, 2), v[:M].transpose(1, 0, 2)  # [hb, K, q] [hb, M, K] [hb, M, K]
    out = ctx[first + q0 : first + q1].reshape(q1 - q0, H, -1)[:, h0:h1].transpose(1, 0, 2)  # [hb, q, K] view
    s = scratch.get("s", (h1 - h0, M, q1 - q0), ctx.dtype)  # [hb, M, q]
    np.matmul(k, q, out=s)
    if bias is not None:
        s += bias[:, None]
    sums = softmax_keys_first_(s).transpose(0, 2, 1)  # [hb, q, 1]
    if weights is None:
        np.matmul(s.transpose(0, 2, 1), v, out=out)
        out /= sums
    else:
        s /= sums.transpose(0, 2, 1)
        weights[b, h0:h1, q0:q1, :M] = s.transpose(0, 2, 1)
        np.matmul(s.transpose(0, 2, 1), v, out=out)


def mlp_block(rows, h, layer, eps, act, ctx, scratch):  # rows of h [R, D] updated in place
    """Attention output projection + residual, then LayerNorm 2, MLP and residual, for one block of rows.

    Each matrix product covers the whole block; the elementwise work after it goes chunk by chunk."""
    x, c = h[rows], ctx[rows]  # [R, D]
    R, D = x.shape
    fc1, fc2, out_proj = layer["mlp"]["fc1"], layer["mlp"]["fc2"], layer["self_attn"]["out_proj"]
    t, y = scratch.get("t", (R, D), x.dtype), scratch.get("y", (R, D), x.dtype)
    u = scratch.get("u", (R, fc1["bias"].shape[0]), x.dtype)  # [R, F]
    v = scratch.get("v", (min(R, chunk_rows(u.shape[1])), u.shape[1]), x.dtype)  # [chunk, F]
    matmul_t(c, out_proj["weight"], out=t)
    for r in chunks(R, D):
        t[r] += out_proj["bias"]
        x[r] += t[r]  # residual 1
        layer_norm_into(x[r], **layer["layer_norm2"], eps=eps, out=y[r], tmp=t[r])
    matmul_t(y, fc1["weight"], out=u)
    for r in chunks(*u.shape):
        u[r] += fc1["bias"]
        activation_(u[r], act, v[: r.stop - r.start])
    matmul_t(u, fc2["weight"], out=t)
    for r in chunks(R, D):
        t[r] += fc2["bias"]
        x[r] += t[r]  # residual 2


# ---------------------------------------------------------------- how the work is cut


def split_rows(T, workers):  # -> [slice]
    """At most BLOCK_ROWS rows per block, the number of blocks a multiple of `workers` so that they share evenly."""
    return even_blocks(T, BLOCK_ROWS, workers)


def row_workers(T, workers):  # -> how many workers share the steps (rows and attention) of T token rows
    """All of them when each gets MIN_WORKER_ROWS rows or more, else one (which runs the products on BLAS's threads).

    Measured on 2 cores, each forward starting on idle cores (docs/performance.md, "Threads"): text 8 x 64 (256 rows
    a worker) 0.92x the time on the workers, vision B=2 NaFlex-256 0.94x; 128 rows a worker: text 4 x 64 0.96x
    but vision B=1 1.10x, text 2 x 64 (64 rows) 1.07x."""
    return workers if T >= MIN_WORKER_ROWS * workers else 1


def layer_steps(layers):  # -> [(layer or None, following layer or None)]
    """The row steps of a forward in order: the first layer's q, k, v alone, then each layer's MLP followed by the
    next layer's q, k, v (the same rows, still in cache); each step after the first comes after its layer's attention."""
    layers = list(layers)
    return list(zip([None, *layers], [*layers, None])) if layers else []


def attention_tasks(B, N, H, itemsize):  # -> [(b, h0, h1, q0, q1)]
    """Chunks whose scores (h x Q x N) fit SCORE_BYTES: groups of whole heads when one fits, else query blocks."""
    per_head = N * N * itemsize
    if per_head <= SCORE_BYTES:
        g = min(H, SCORE_BYTES // per_head)  # heads per chunk
        return [(b, h, min(h + g, H), 0, N) for b in range(B) for h in range(0, H, g)]
    Q = max(8, SCORE_BYTES // (N * itemsize))  # query rows per chunk
    return [(b, h, h + 1, q, min(q + Q, N)) for b in range(B) for h in range(H) for q in range(0, N, Q)]


def key_ranges(bias, B, N):  # [B, 1, 1, N] or None -> [(M, bias row [N] or None)] per image
    """Per image: attend to the first M keys when all others are masked (finfo.min), else to all N with the bias row."""
    if bias is None:
        return [(N, None)] * B
    rows = np.broadcast_to(bias, (B, 1, 1, N))[:, 0, 0]  # [B, N]
    masked = np.finfo(rows.dtype).min
    keys = []
    for row in rows:
        M = int((row == 0).sum())
        if M > 0 and (row[:M] == 0).all() and (row[M:] == masked).all():
            keys.append((M, None))  # exp(finfo.min - max) is exactly 0: leaving these keys out changes nothing
        else:
            keys.append((N, np.ascontiguousarray(row)))
    return keys


# ---------------------------------------------------------------- the encoder


class FastEncoder:
    """Drop-in for `layers.encoder` (`Model.run_encoder`), running on `workers` threads (default: BLAS's count).

    It holds no weights, only the thread pool and its scratch buffers; calls from several threads take turns.
    """

    def __init__(self, workers=None):
        self.workers = Workers(workers or blas_thread_count())
        self.lock = threading.Lock()  # one forward at a time: two would only compete for the same cores

    def __call__(self, x, bias, layers, cfg, keep_hidden=False, keep_attentions=False):  # [B, N, D] -> [B, N, D], tuples
        if type(x) is not np.ndarray or x.dtype not in (np.float32, np.float64):
            return encoder(x, bias, layers, cfg, keep_hidden, keep_attentions)  # CuPy, float16: the plain path
        with self.lock:
            return self.run(x, bias, layers, cfg, keep_hidden, keep_attentions)

    def run(self, x, bias, layers, cfg, keep_hidden, keep_attentions):  # [B, N, D] -> [B, N, D], tuples
        B, N, D = x.shape
        H, T = cfg.num_attention_heads, B * N
        h = np.array(x, order="C").reshape(T, D)  # [R, D], the residual stream, updated in place
        qkv, ctx = [np.empty((T, D), x.dtype) for _ in range(3)], np.empty((T, D), x.dtype)  # [R, D] each
        n = row_workers(T, self.workers.n)  # workers sharing every step
        rows, tasks, keys = split_rows(T, n), attention_tasks(B, N, H, x.itemsize), key_ranges(bias, B, N)
        eps, act, scale = cfg.layer_norm_eps, cfg.hidden_act, (D // H) ** -0.5

        def rows_step(r, s, layer, following):  # one layer's MLP, then the next one's q, k, v: the same rows, still hot
            if layer is not None:
                mlp_block(r, h, layer, eps, act, ctx, s)
            if following is not None:
                qkv_block(r, h, following, eps, scale, qkv, s)

        steps, hidden_states, attentions = layer_steps(layers), [x], []
        if n > 1 and B % n == 0 and not (keep_hidden or keep_attentions):
            # Tokens of different images never meet: each worker takes B / n whole images through every layer, and
            # no worker waits for another between steps (about 3% faster than the barriers below, measured).

            def images_through_every_layer(g, s):
                first, count = g * B // n, B // n
                own_tasks = [t for t in tasks if first <= t[0] < first + count]
                blocks = [slice(first * N + r.start, first * N + r.stop) for r in split_rows(count * N, 1)]
                for layer, following in steps:
                    for task in own_tasks if layer is not None else ():
                        attention_block(task, qkv, ctx, N, H, keys, None, s)
                    for r in blocks:
                        rows_step(r, s, layer, following)

            self.workers.run_owning_cores(images_through_every_layer, list(range(n)), n)
            return h.reshape(B, N, D), None, None
        for layer, following in steps:
            if layer is None:  # the first step: the first layer's q, k, v
                self.workers.run_owning_cores(lambda r, s: rows_step(r, s, None, following), rows, n)
                continue
            weights = np.zeros((B, H, N, N), x.dtype) if keep_attentions else None  # [B, H, N, N]
            self.workers.run_owning_cores(lambda task, s: attention_block(task, qkv, ctx, N, H, keys, weights, s), tasks, n)
            self.workers.run_owning_cores(lambda r, s: rows_step(r, s, layer, following), rows, n)
            if keep_hidden:
                hidden_states.append(h.reshape(B, N, D).copy())
            if keep_attentions:
                attentions.append(weights)
        return h.reshape(B, N, D), (tuple(hidden_states) if keep_hidden else None), (tuple(attentions) if keep_attentions else None)
