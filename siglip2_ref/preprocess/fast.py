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

import numpy as np
from PIL import Image

from ..model.fast import ThreadpoolController
from .resize import RESAMPLE_NAMES, resize, resize_pil, torch_axis_table

PIL_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
PROBES = (((300, 20), (40, 10)), ((37, 53), (16, 24)), ((5, 7), (16, 32)), ((64, 900), (30, 17)), ((480, 640), (224, 288)))
_AGREES = {}  # (pass_order, filter) -> bool, filled by the first call
_POOL = {}  # the threadpoolctl controller, made on first use


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


def image_size(rgb):  # PIL.Image | [3, H, W] -> (H, W)
    return (rgb.height, rgb.width) if isinstance(rgb, Image.Image) else rgb.shape[1:]


def resize_chw(rgb, size, resample, backend, pass_order):  # PIL.Image RGB | [3, H, W] u8 -> [3, h, w] u8
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
    """Normalised, patchified and zero-padded in one gather: out[i, (py px c)] = table[c, pixel].

    Same result as images.pad_patches(images.patchify(normalised)) on the reference path.
    """
    C, h, w = chw.shape
    p = patch_size
    gh, gw = h // p, w // p
    n = gh * gw
    patches = chw.reshape(C, gh, p, gw, p).transpose(1, 3, 2, 4, 0).reshape(n, p * p * C)  # [n, P] uint8
    index = patches + np.tile(np.arange(C, dtype=np.intp) * 256, p * p)  # [n, P]: row of the flat [C L] table
    out = np.zeros((max_num_patches, p * p * C), table.dtype)  # [N, P]
    np.take(table.ravel(), index, out=out[:n])
    mask = np.zeros(max_num_patches, np.int32)
    mask[:n] = 1
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
# Each output of a pass is an integer sum of K products (uint8 pixel x integer weight), then a rounding shift. All
# terms are integers, so a float GEMM computes the sum exactly as long as no partial sum leaves the float's integer
# range: 255 * sum |w| < 2^24 for float32 (checked per table; else float64, exact below 2^53). The weight table is
# laid out as a dense band [n_in, O]; outputs go in blocks of G, each multiplying only its window of inputs.


def band_matrix(table, n_in):  # (start [O], weights int [O, K], precision) -> [O, n_in] float
    """The pass as a matrix: row o holds output o's integer weights at its taps; float32 if exact, else float64."""
    start, weights, _ = table
    O, K = weights.shape
    dtype = np.float32 if 255 * np.abs(weights).sum(axis=1).max(initial=0) < 2**24 else np.float64
    band = np.zeros((O, n_in), dtype)
    taps = start[:, None] + np.arange(K)  # [O, K]
    valid = (taps < n_in) & (weights != 0)
    band[np.nonzero(valid)[0], taps[valid]] = weights[valid]
    return band


def output_blocks(start, K, n_in, block=16):  # -> [(o0, o1, lo, hi)]: outputs o0:o1 read only inputs lo:hi
    O = len(start)
    return [(o0, min(o0 + block, O), int(start[o0]), int(min(start[min(o0 + block, O) - 1] + K, n_in)))
            for o0 in range(0, O, block)]  # fmt: skip


def round_shift(acc, precision):  # [...] float holding exact integers -> [...] uint8
    """(acc + 2^(p-1)) >> p, clipped to 0..255 (the C code's rounding shift; exact on integers held in floats)."""
    acc += 1 << (precision - 1)
    acc *= 1.0 / (1 << precision)
    return np.clip(np.floor(acc, out=acc), 0, 255, out=acc).astype(np.uint8)


def run_blocks(fn, tasks):
    """fn(task) for every task, BLAS single-threaded meanwhile: these GEMMs are small, and BLAS's thread hand-offs
    cost more than they gain (several times more when other processes share the cores)."""
    if "controller" not in _POOL:
        _POOL["controller"] = ThreadpoolController() if ThreadpoolController is not None else None
    if _POOL["controller"] is None:
        return [fn(task) for task in tasks]
    with _POOL["controller"].limit(limits=1, user_api="blas"):
        return [fn(task) for task in tasks]


def width_pass(hwc, w, resample, rows=32):  # [H, W, 3] u8 -> [3, H, w] u8
    """torchvision's horizontal pass: a block of rows at a time, converted to floats channels first, times the band."""
    H, W, C = hwc.shape
    start, weights, precision = table = torch_axis_table(W, w, RESAMPLE_NAMES[resample])
    band = band_matrix(table, W).T  # [W, w]
    blocks = output_blocks(start, weights.shape[1], W)
    out = np.empty((C, H, w), np.uint8)

    def row_block(r0):
        src = np.empty((C, min(rows, H - r0), W), band.dtype)  # [C, r, W]
        np.copyto(src, hwc[r0 : r0 + rows].transpose(2, 0, 1), casting="unsafe")
        src = src.reshape(-1, W)  # [C r, W]
        acc = np.empty((src.shape[0], w), band.dtype)  # [C r, w]
        for o0, o1, lo, hi in blocks:
            acc[:, o0:o1] = src[:, lo:hi] @ band[lo:hi, o0:o1]
        out[:, r0 : r0 + rows] = round_shift(acc, precision).reshape(C, -1, w)

    run_blocks(row_block, range(0, H, rows))
    return out


def height_pass(chw, h, resample):  # [3, H, w] u8 -> [3, h, w] u8
    """torchvision's vertical pass: each block of output rows is its band window times the input rows it reads."""
    C, H, w = chw.shape
    start, weights, precision = table = torch_axis_table(H, h, RESAMPLE_NAMES[resample])
    band = band_matrix(table, H)  # [h, H]
    src = chw.astype(band.dtype)
    out = np.empty((C, h, w), np.uint8)

    def row_block(block):
        o0, o1, lo, hi = block
        out[:, o0:o1] = round_shift(band[o0:o1, lo:hi] @ src[:, lo:hi], precision)

    run_blocks(row_block, output_blocks(start, weights.shape[1], H))
    return out


def resize_torchvision_chw(rgb, size, resample):  # PIL.Image RGB | [3, H, W] u8 -> [3, h, w] u8
    """`resize.resize_torchvision`'s numbers: width pass, then height pass, each only if that size changes."""
    chw = None if isinstance(rgb, Image.Image) else rgb
    (H, W), (h, w) = image_size(rgb), size
    if w != W:
        chw = width_pass(np.asarray(rgb) if chw is None else chw.transpose(1, 2, 0), w, resample)
    elif chw is None:
        chw = np.asarray(rgb).transpose(2, 0, 1)
    return height_pass(chw, h, resample) if h != H else chw
