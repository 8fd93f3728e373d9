"""The fast image path: the same pixel values as the NumPy reference, in fewer and cheaper passes.

Three ideas, each checked bit for bit against the reference (tests/test_fast_preprocess.py):

1. Resize with Pillow's own C resampler (`Image.resize`, what transformers' Pillow back-end calls) when the
   installed Pillow computes exactly what `resize.resize_pil` computes for the chosen pass order. That is checked
   once per (pass order, filter) on small probe images that exercise both pass orders (`pillow_agrees`); a Pillow
   whose numbers differ falls back to the NumPy resize. The image stays a PIL image until it is resized, so a
   4000x3000 photo is never transposed or copied in NumPy.
2. Rescale and normalise are elementwise functions of (channel, uint8 level): they are evaluated once, by the
   reference `rescale_and_normalize`, on the 256 levels of each channel (a value table [C, 256]). One gather
   through that table then writes the normalised pixels straight into the patch layout and the zero padding.
3. torchvision's uint8 resize (`resize.resize_torchvision`) as banded matrix multiplies in floats that hold its
   integer sums exactly (see the section below), so BLAS does the multiply-accumulate.

Shape alphabet as in images.py; L the 256 uint8 levels.
"""

import functools
from typing import NamedTuple

import numpy as np
from PIL import Image

from ..backend import Workers, blas_thread_count, single_threaded_blas
from .resize import RESAMPLE_NAMES, resize, resize_pil, torch_axis_table

PIL_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
PROBES = (((300, 20), (40, 10)), ((37, 53), (16, 24)), ((5, 7), (16, 32)), ((64, 900), (30, 17)), ((480, 640), (224, 288)))
_AGREES = {}  # (pass_order, filter) -> bool, filled by the first call
_POOL = {}  # the worker threads of the banded resize, made on first use


def pillow_resize(image, size, resample):  # PIL.Image RGB -> [h, w, 3] uint8
    """`Image.resize((w, h), resample)`, Pillow's C resampler."""
    h, w = size
    return np.asarray(image.resize((int(w), int(h)), PIL_FILTERS[RESAMPLE_NAMES[resample]]))


def pillow_agrees(pass_order, resample):
    """Whether the installed Pillow resizes exactly as `resize_pil(..., pass_order)` on the probe images.

    The probes cover rows-first and columns-first downscales, an upscale and a wide image (about 10 ms, once).
    """
    key = (pass_order, RESAMPLE_NAMES[resample])
    if key not in _AGREES:
        rng = np.random.default_rng(0)
        agrees = True
        for (H, W), size in PROBES:
            chw = rng.integers(0, 256, (3, H, W), dtype=np.uint8)
            pil = Image.fromarray(np.ascontiguousarray(chw.transpose(1, 2, 0)))
            ours = resize_pil(chw, size, resample, pass_order).transpose(1, 2, 0)
            agrees = agrees and np.array_equal(pillow_resize(pil, size, resample), ours)
        _AGREES[key] = agrees
    return _AGREES[key]


def image_size(rgb):  # PIL.Image | [3, h0, w0] -> (h0, w0)
    return (rgb.height, rgb.width) if isinstance(rgb, Image.Image) else rgb.shape[1:]


def resize_chw(rgb, size, resample, backend, pass_order):  # PIL.Image RGB | [3, h0, w0] u8 -> [3, h, w] u8
    """The reference resize's result (possibly a transposed view): Pillow when it agrees, torchvision's by GEMMs."""
    if backend == "torchvision":
        return resize_torchvision_chw(rgb, size, resample)
    if pillow_agrees(pass_order, resample):
        if not isinstance(rgb, Image.Image):
            rgb = Image.fromarray(np.ascontiguousarray(rgb.transpose(1, 2, 0)))
        return pillow_resize(rgb, size, resample).transpose(2, 0, 1)
    chw = np.asarray(rgb).transpose(2, 0, 1) if isinstance(rgb, Image.Image) else rgb
    return resize(np.ascontiguousarray(chw), size, resample, backend, pass_order)


def levels(channels=3):  # -> [C, 1, L] uint8: every uint8 level once per channel
    return np.ascontiguousarray(np.broadcast_to(np.arange(256, dtype=np.uint8), (channels, 1, 256)))


def gather_patches(chw, table, patch_size, max_num_patches):  # [C, h, w] u8, [C, L] -> [N, P], [N] int32
    """Normalised, patchified and zero-padded in one gather per channel: out[i, (py px c)] = table[c, pixel].

    Same result as images.pad_patches(images.patchify(normalised)) on the reference path. Each channel's table is
    1 KiB, so the lookups stay in L1; they write straight into the patch layout (a strided view of the output).
    """
    C, h, w = chw.shape
    p = patch_size
    gh, gw = h // p, w // p
    out = np.zeros((max_num_patches, p * p * C), table.dtype)  # [N, P]
    patches = out[: gh * gw].reshape(gh, gw, p, p, C)  # view: (gh gw) (py px c)
    for c in range(C):
        np.take(table[c], chw[c].reshape(gh, p, gw, p).transpose(0, 2, 1, 3), out=patches[..., c])
    mask = np.zeros(max_num_patches, np.int32)
    mask[: gh * gw] = 1
    return out, mask


def gather_image(chw, table):  # [C, h, w] u8, [C, L] -> [C, h, w]
    """Normalised in one gather per channel: out[c] = table[c, pixel[c]]."""
    out = np.empty(chw.shape, table.dtype)
    for c in range(chw.shape[0]):
        np.take(table[c], chw[c], out=out[c])
    return out


# ----------------------------------------------------------------------------------------------------------------
# torchvision's uint8 resize as banded matrix multiplies
#
# Each output of a pass is an integer sum A = sum_k w_k x_k of K products (uint8 pixel x, integer weight w < 2^15),
# then a rounding shift (A + 2^(p-1)) >> p = floor((A + 2^(p-1)) / 2^p). The GEMM multiplies the centred pixels
# x - 128 by the weights scaled by 2^-p (exact: a power of two), so it returns (A - 128 S) / 2^p, S = sum_k w_k;
# adding the per-output constant (128 S + 2^(p-1)) / 2^p gives the value to floor. Centring halves the magnitudes:
# every partial sum is an integer multiple of 2^-p below 128 sum|w| / 2^p, exact in float32 while 128 sum|w| +
# 2^(p-1) < 2^24 (a precision-16 bicubic pass, sum|w| about 76800, still is; uncentred it was not). Otherwise the
# rounding is at most gamma_n sum|x w| / 2^p (n terms, gamma_n = n u / (1 - n u), u = 2^-24): where that cannot move
# the floor, the GEMM's result is the exact one; the few outputs where it could are summed again exactly in integers.
# The weights are laid out as a dense band; outputs go in blocks, each multiplying only the window of inputs it
# reads. Blocks of rows run on the worker threads (backend.Workers) with BLAS single-threaded.

CENTRE = 128  # subtracted from every pixel before the GEMM


def band_matrix(table, n_in):  # (start [out], weights int [out, taps], precision) -> [out, n_in] float32
    """The pass as a matrix: row o holds output o's integer weights at its taps, times 2^-precision (exact)."""
    start, weights, precision = table
    O, K = weights.shape
    band = np.zeros((O, n_in), np.float32)
    taps = start[:, None] + np.arange(K)  # [out, taps]
    valid = (taps < n_in) & (weights != 0)
    band[np.nonzero(valid)[0], taps[valid]] = weights[valid] * 2.0**-precision
    return band


def output_blocks(start, K, n_in, block=16):  # -> [(o0, o1, lo, hi)]: outputs o0:o1 read only inputs lo:hi
    O = len(start)
    return [(o0, min(o0 + block, O), int(start[o0]), int(min(start[min(o0 + block, O) - 1] + K, n_in)))
            for o0 in range(0, O, block)]  # fmt: skip


def offsets(band):  # [out, n_in] (weights / 2^p) -> [out] float32: (CENTRE S + 2^(p-1)) / 2^p, exact (see error_bound)
    return (CENTRE * band.sum(axis=1, dtype=np.float64) + 0.5).astype(np.float32)


def error_bound(table, n_terms):  # -> [out] float64: how far the GEMM's value may be from (A + 2^(p-1)) / 2^p
    """0 where every step is exact: the GEMM's partial sums and the offset (both below 2^24 in units of 2^-p), and
    the final addition, whose result is exact below 2^24 and past 255 after the shift anyway when p <= 16 (else it
    must stay below 2^24 too). Elsewhere (gamma_n 128 sum|w| + the roundings of the offset and the addition) / 2^p,
    with margin."""
    _, weights, precision = table
    l1, half = np.abs(weights).sum(axis=1).astype(np.float64), 1 << (precision - 1)  # [out]
    exact = (CENTRE * l1 + half < 2**24) & ((precision <= 16) | (255 * l1 + half < 2**24))
    gamma = n_terms * 2.0**-24 / (1 - n_terms * 2.0**-24)
    return np.where(exact, 0.0, ((gamma * 1.01 + 2.0**-22) * (255 * l1 + half) + 1) / (1 << precision))


def round_shift(acc, offset, bound, precision, exact_sums, out):  # acc f32 (overwritten), offset/bound broadcast -> out u8
    """out = clip(floor((A + 2^(p-1)) / 2^p), 0, 255), acc + offset being within `bound` of the exact value. Where a
    rounding step lies within the bound, A is recomputed in integers: exact_sums(*index) -> int64 [k] for np.nonzero's
    index."""
    acc += offset
    if bound.any():  # floor steps at integers: redo the values within `bound` of one
        near = np.rint(acc)
        np.subtract(acc, near, out=near)  # exact (Sterbenz): acc and its nearest integer are within a factor 2, or 0
        index = np.nonzero(np.abs(near, out=near) <= bound.astype(np.float32))
        acc[index] = (exact_sums(*index) + (1 << (precision - 1))) >> precision
    np.clip(acc, 0, 255, out=out, casting="unsafe")  # the cast truncates, which is floor on 0..255


class Pass(NamedTuple):
    """What one pass needs that depends only on its sizes and filter (made once per size: photos repeat sizes)."""

    weights: np.ndarray  # [out, taps] int
    precision: int
    band: np.ndarray  # [out, n_in] float32, the weights times 2^-precision
    offset: np.ndarray  # [out] float32, see `offsets`
    blocks: list  # [(o0, o1, lo, hi)], see `output_blocks`
    bound: np.ndarray  # [out] float64, see `error_bound`
    taps: np.ndarray  # [out, taps] input index of each weight, clipped to the image


@functools.lru_cache(maxsize=16)  # at most 16 bands: 3.6 MB each for a 4000-pixel side
def plan_pass(n_in, n_out, resample):  # -> Pass
    start, weights, precision = table = torch_axis_table(n_in, n_out, RESAMPLE_NAMES[resample])
    band = band_matrix(table, n_in)
    blocks = output_blocks(start, weights.shape[1], n_in)
    bound = error_bound(table, max(hi - lo for _, _, lo, hi in blocks))
    taps = np.minimum(start[:, None] + np.arange(weights.shape[1]), n_in - 1)
    plan = Pass(weights, precision, band, offsets(band), blocks, bound, taps)
    for array in (plan.weights, plan.band, plan.offset, plan.bound, plan.taps):
        array.flags.writeable = False  # shared by every later call
    return plan


def width_pass(hwc, w, resample, rows=128):  # [h0, w0, 3] u8 -> [h0, 3, w] u8
    """torchvision's horizontal pass: a block of rows at a time, converted to floats channels first, times the band."""
    H, W, C = hwc.shape
    weights, precision, band, offset, blocks, bound, taps = plan_pass(W, w, resample)
    band = band.T  # [w0, w]
    out = np.empty((H, C, w), np.uint8)

    def row_block(r0, scratch):
        pixels = hwc[r0 : r0 + rows].transpose(2, 0, 1)  # [C, r, w0] view
        r = pixels.shape[1]
        src = scratch.get("src", (C * r, W), np.float32)  # [C r, w0]
        np.subtract(pixels, np.float32(CENTRE), out=src.reshape(pixels.shape))
        acc = scratch.get("acc", (C * r, w), np.float32)  # [C r, w]
        for o0, o1, lo, hi in blocks:
            np.matmul(src[:, lo:hi], band[lo:hi, o0:o1], out=acc[:, o0:o1])

        def exact_sums(c, y, o):  # channels c, rows y and outputs o -> exact integer sums
            return (pixels[c[:, None], y[:, None], taps[o]].astype(np.int64) * weights[o]).sum(axis=1)

        round_shift(acc.reshape(C, r, w), offset, bound, precision, exact_sums, out[r0 : r0 + rows].transpose(1, 0, 2))

    run_blocks(row_block, range(0, H, rows))
    return out


def height_pass(rows_first, h, resample):  # [h0, 3 w] u8 -> [h, 3 w] u8
    """torchvision's vertical pass: each block of output rows is its band window times the input rows it reads."""
    H, M = rows_first.shape
    weights, precision, band, offset, blocks, bound, taps = plan_pass(H, h, resample)  # band [h, h0]
    offset = offset[:, None]  # [h, 1]
    src = np.subtract(rows_first, np.float32(CENTRE), dtype=np.float32)  # [h0, 3 w]
    out = np.empty((h, M), np.uint8)

    def row_block(block, scratch):
        o0, o1, lo, hi = block
        acc = scratch.get("acc", (o1 - o0, M), np.float32)  # [out, 3 w]
        np.matmul(band[o0:o1, lo:hi], src[lo:hi], out=acc)

        def exact_sums(o, m):  # outputs o0 + o and columns m -> exact integer sums
            o = o + o0
            return (rows_first[taps[o], m[:, None]].astype(np.int64) * weights[o]).sum(axis=1)

        round_shift(acc, offset[o0:o1], bound[o0:o1, None], precision, exact_sums, out[o0:o1])

    run_blocks(row_block, blocks)
    return out


def run_blocks(fn, tasks):
    """fn(task, scratch) for every task on the worker threads, BLAS single-threaded meanwhile: these GEMMs are small,
    and BLAS's thread hand-offs cost more than they gain (several times more when other processes share the cores)."""
    if "workers" not in _POOL:
        _POOL["workers"] = Workers(blas_thread_count())
    with single_threaded_blas:
        _POOL["workers"].run(fn, list(tasks))


def resize_torchvision_chw(rgb, size, resample):  # PIL.Image RGB | [3, h0, w0] u8 -> [3, h, w] u8 (maybe a view)
    """`resize.resize_torchvision`'s numbers: width pass, then height pass, each only if that size changes."""
    (H, W), (h, w) = image_size(rgb), size
    hwc = np.asarray(rgb) if isinstance(rgb, Image.Image) else rgb.transpose(1, 2, 0)  # [h0, w0, 3]
    x = width_pass(hwc, w, resample) if w != W else hwc.transpose(0, 2, 1)  # [h0, 3, w]
    if h != H:
        x = height_pass(np.ascontiguousarray(x).reshape(H, 3 * w), h, resample).reshape(h, 3, w)
    return x.transpose(1, 0, 2)  # [3, h, w]
