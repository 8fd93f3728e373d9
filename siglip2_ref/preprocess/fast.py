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

from ..backend import Workers, blas_thread_count, even_blocks, single_threaded_blas
from .pil_pixels import rgb_pixels, rgb_rows
from .resize import RESAMPLE_NAMES, resize, resize_pil, torch_axis_table

PIL_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
PROBES = (((300, 20), (40, 10)), ((37, 53), (16, 24)), ((5, 7), (16, 32)), ((64, 900), (30, 17)), ((480, 640), (224, 288)))
_AGREES = {}  # (pass_order, filter) -> bool, filled by the first call


def pillow_resize(image, size, resample):  # PIL.Image RGB -> [h, w, 3] uint8
    """`Image.resize((w, h), resample)`, Pillow's C resampler."""
    h, w = size
    return rgb_pixels(image.resize((int(w), int(h)), PIL_FILTERS[RESAMPLE_NAMES[resample]]))


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
# adding the per-output constant (128 S + 2^(p-1)) / 2^p gives the value to floor. In units of 2^-p every partial
# sum is an integer between -(128 P + 127 N) and 127 P + 128 N (P, N: the sums of the positive and of the negative
# weights), exact in float32 while those stay within 2^24: centring halves them, so a precision-16 bicubic pass
# and most outputs of a precision-17 bilinear one fit (uncentred, neither did). The constant is added in two steps:
# its fraction (the sum stays a multiple of 2^-p, exact) and, after a floor when p > 16, its whole part (integers).
# Elsewhere the rounding is at most gamma_n sum|x w| / 2^p (n nonzero terms, gamma_n = n u / (1 - n u), u = 2^-24):
# where that cannot move the floor, the GEMM's result is the exact one; the few outputs where it could are summed
# again exactly in integers. The weights are laid out as a dense band; outputs go in blocks, each multiplying only
# the window of inputs it reads. Blocks of rows run on the worker threads (backend.Workers), BLAS single-threaded.

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


def offsets(band):  # [out, n_in] (weights / 2^p) -> [out], [out] float32: whole part and fraction of (CENTRE S + 2^(p-1)) / 2^p
    offset = CENTRE * band.sum(axis=1, dtype=np.float64) + 0.5  # exact: a multiple of 2^-p far below 2^(53-p)
    whole = np.floor(offset)
    return whole.astype(np.float32), (offset - whole).astype(np.float32)  # exact: an integer below 2^24; p bits


def error_bound(table):  # -> [out] float64: how far acc + fraction may be from (A - 128 S) / 2^p + fraction
    """0 where every step is exact: in units of 2^-p the GEMM's partial sums lie between -(128 P + 127 N) and
    127 P + 128 N, and adding the fraction f < 2^p keeps the sum within 2^24. Elsewhere (gamma_K 128 sum|w| + the
    rounding of that addition) / 2^p, with margin: only the K taps are nonzero, and adding a zero is exact."""
    _, weights, precision = table
    half, n_terms = 1 << (precision - 1), weights.shape[1]
    positive, negative = np.clip(weights, 0, None).sum(axis=1), np.clip(-weights, 0, None).sum(axis=1)  # [out] P, N
    fraction = (CENTRE * (positive - negative) + half) % (1 << precision)  # [out] f, in units of 2^-p
    widest = np.maximum((CENTRE - 1) * positive + CENTRE * negative + fraction, CENTRE * positive + (CENTRE - 1) * negative)
    gamma = n_terms * 2.0**-24 / (1 - n_terms * 2.0**-24)
    l1 = (positive + negative).astype(np.float64)
    return np.where(widest <= 2**24, 0.0, ((gamma * 1.01 + 2.0**-22) * (255 * l1 + half) + 1) / (1 << precision))


def round_shift(acc, whole, fraction, bound, precision, exact_sums, out):  # acc [..., o] f32 (overwritten) -> out u8
    """out = clip(floor((A + 2^(p-1)) / 2^p), 0, 255) = clip(floor(acc + fraction) + whole, 0, 255), outputs on the
    last axis, acc + fraction within `bound` [o] of its exact value. Where a rounding step lies within the bound,
    A is recomputed in integers: exact_sums(*index) -> int64 [k] for an index into acc."""
    acc += fraction  # exact where the bound is 0
    inexact, index = np.flatnonzero(bound), None  # [k] the outputs whose sums may be off
    if inexact.size:  # floor steps at integers: find their values within the bound of one
        near = acc[..., inexact]  # [..., k] a copy
        np.abs(np.subtract(near, np.rint(near), out=near), out=near)  # exact (Sterbenz): a value and its nearest integer
        flat = np.flatnonzero(near <= bound[inexact].astype(np.float32))  # a few: faster than np.nonzero on [..., k]
        *lead, k = np.unravel_index(flat, near.shape)
        index = (*lead, inexact[k])
    if precision > 16:  # above 2^(24-p) <= 128, acc + whole may round: floor first, then add integers (exact)
        np.floor(acc, out=acc)
    acc += whole  # p <= 16: below 256 the sum is a multiple of 2^-16, exact; 256 and over is clipped anyway
    if index is not None:
        acc[index] = (exact_sums(*index) + (1 << (precision - 1))) >> precision
    np.clip(acc, 0, 255, out=out, casting="unsafe")  # the cast truncates, which is floor on 0..255


class Pass(NamedTuple):
    """What one pass needs that depends only on its sizes and filter (made once per size: photos repeat sizes)."""

    weights: np.ndarray  # [out, taps] int
    precision: int
    band: np.ndarray  # [out, n_in] float32, the weights times 2^-precision
    whole: np.ndarray  # [out] float32, see `offsets`
    fraction: np.ndarray  # [out] float32, see `offsets`
    blocks: list  # [(o0, o1, lo, hi)], see `output_blocks`
    bound: np.ndarray  # [out] float64, see `error_bound`
    taps: np.ndarray  # [out, taps] input index of each weight, clipped to the image


@functools.lru_cache(maxsize=16)  # at most 16 bands: 3.6 MB each for a 4000-pixel side
def plan_pass(n_in, n_out, resample):  # -> Pass
    start, weights, precision = table = torch_axis_table(n_in, n_out, RESAMPLE_NAMES[resample])
    band = band_matrix(table, n_in)
    blocks = output_blocks(start, weights.shape[1], n_in)
    bound = error_bound(table)
    taps = np.minimum(start[:, None] + np.arange(weights.shape[1]), n_in - 1)
    plan = Pass(weights, precision, band, *offsets(band), blocks, bound, taps)
    for array in (plan.weights, plan.band, plan.whole, plan.fraction, plan.bound, plan.taps):
        array.flags.writeable = False  # shared by every later call
    return plan


def width_pass(hwc, w, resample):  # [h0, w0, 3] u8 (or pil_pixels.RowStrips) -> [h0, 3, w] u8
    """torchvision's horizontal pass: a block of rows at a time, converted to floats channels first, times the band.
    Each task reads its rows as hwc[rows], so a photo Pillow keeps in several blocks is read strip by strip."""
    H, W, C = hwc.shape
    weights, precision, band, whole, fraction, blocks, bound, taps = plan_pass(W, w, resample)
    band = band.T  # [w0, w]
    out = np.empty((H, C, w), np.uint8)

    def row_block(rows, scratch):
        pixels = hwc[rows].transpose(2, 0, 1)  # [C, r, w0] view
        r = pixels.shape[1]
        src = scratch.get("src", (C * r, W), np.float32)  # [C r, w0]
        for c in range(C):  # a plain cast per channel, then one contiguous subtraction (1.5x faster than one strided)
            np.copyto(src[c * r : (c + 1) * r], pixels[c])
        src -= np.float32(CENTRE)
        acc = scratch.get("acc", (C * r, w), np.float32)  # [C r, w]
        for o0, o1, lo, hi in blocks:
            np.matmul(src[:, lo:hi], band[lo:hi, o0:o1], out=acc[:, o0:o1])

        def exact_sums(c, y, o):  # channels c, rows y and outputs o -> exact integer sums
            return (pixels[c[:, None], y[:, None], taps[o]].astype(np.int64) * weights[o]).sum(axis=1)

        out_rows = out[rows].transpose(1, 0, 2)  # [C, r, w]
        round_shift(acc.reshape(C, r, w), whole, fraction, bound, precision, exact_sums, out_rows)

    row_blocks = even_blocks(H, max(1, BLOCK_VALUES // (W * C)), workers().n)
    run_blocks(row_block, row_blocks, (row_blocks[0].stop - row_blocks[0].start) * W * C)
    return out


def height_pass(rows_first, h, resample):  # [h0, 3 w] u8 -> [h, 3 w] u8
    """torchvision's vertical pass: each block of output rows is its band window times the input rows it reads,
    written into one accumulator; then one rounding shift for all of them (one call instead of one per block)."""
    H, M = rows_first.shape
    weights, precision, band, whole, fraction, blocks, bound, taps = plan_pass(H, h, resample)  # band [h, h0]
    out = np.empty((h, M), np.uint8)
    acc = np.empty((M, h), np.float32)  # [3 w, out]: round_shift wants the outputs last

    def row_block(block, scratch):
        o0, o1, lo, hi = block
        src = scratch.get("src", (hi - lo, M), np.float32)  # [window, 3 w], converted here: blocks overlap little
        np.subtract(rows_first[lo:hi], np.float32(CENTRE), out=src)
        np.matmul(band[o0:o1, lo:hi], src, out=acc.T[o0:o1])  # [out, 3 w]

    def exact_sums(m, o):  # columns m and outputs o -> exact integer sums
        return (rows_first[taps[o], m[:, None]].astype(np.int64) * weights[o]).sum(axis=1)

    run_blocks(row_block, blocks, max(hi - lo for _, _, lo, hi in blocks) * M)
    round_shift(acc, whole, fraction, bound, precision, exact_sums, out.T)
    return out


BLOCK_VALUES = 3 << 19  # input values per task of the width pass: fewer, larger tasks cost less in calls (measured)
MIN_TASK_PIXELS = 1 << 17  # fewer input values a task (about 0.1 ms of work), and one thread runs them all


@functools.cache
def workers():  # -> the banded resize's Workers, made on first use
    return Workers(blas_thread_count())


def run_blocks(fn, tasks, task_pixels):
    """fn(task, scratch) for every task on the worker threads, BLAS single-threaded meanwhile: these GEMMs are small,
    and BLAS's thread hand-offs cost more than they gain (several times more when other processes share the cores).
    Tasks of fewer than MIN_TASK_PIXELS input values all run on the calling thread: handing such short tasks to
    another thread cost more than it saved (the height pass of a 1024x768 photo took 1.4x as long on two)."""
    with single_threaded_blas:
        workers().run(fn, list(tasks), 1 if task_pixels < MIN_TASK_PIXELS else None)


def resize_torchvision_chw(rgb, size, resample):  # PIL.Image RGB | [3, h0, w0] u8 -> [3, h, w] u8 (maybe a view)
    """`resize.resize_torchvision`'s numbers: width pass, then height pass, each only if that size changes."""
    (H, W), (h, w) = image_size(rgb), size
    if isinstance(rgb, Image.Image):
        hwc = rgb_rows(rgb) if w != W else rgb_pixels(rgb)  # [h0, w0, 3]: rows for the width pass, else an array
    else:
        hwc = rgb.transpose(1, 2, 0)  # [h0, w0, 3] view
    x = width_pass(hwc, w, resample) if w != W else hwc.transpose(0, 2, 1)  # [h0, 3, w]
    if h != H:
        x = height_pass(np.ascontiguousarray(x).reshape(H, 3 * w), h, resample).reshape(h, 3, w)
    return x.transpose(1, 0, 2)  # [3, h, w]
