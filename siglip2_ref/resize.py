"""Antialiased resize of uint8 images, bit-exact with Pillow and with torchvision's uint8 kernel.

Both references resample separably with the same real-valued weights (a triangle or Keys-cubic filter
stretched by the downscale factor, so downscaling averages instead of skipping pixels), but they differ in
fixed-point arithmetic and in the order of the two passes; each pass rounds to uint8, so order matters.

  Pillow (`src/libImaging/Resample.c`, `precompute_coeffs` + `normalize_coeffs_8bpc`): 22 fractional bits,
      pass order by Pillow version (see `pillow_vertical_first`).
  torchvision / ATen (`UpSampleKernel.cpp`, `_compute_index_ranges_int16_weights`): int16 weights with a
      per-axis precision chosen from the largest weight; always horizontal pass first.

Everything here works on channels-first uint8 arrays [C, H, W] (torchvision's layout; the column pass is
the costly one and is fastest on planes). Shape alphabet: C channels; H, W input height/width; h, w output
height/width; O outputs of one axis; K taps (filter support) per output.
"""

import math

import numpy as np

PILLOW_PRECISION_BITS = 32 - 8 - 2  # Resample.c PRECISION_BITS
PASS_ORDERS = ("pillow13", "pillow12.2", "pillow-classic", "torchvision")
RESAMPLE_NAMES = {2: "bilinear", 3: "bicubic", "bilinear": "bilinear", "bicubic": "bicubic"}


def bilinear_filter(x):  # [...] -> [...]
    """Triangle filter: 1 - |x| on (-1, 1). Mirrors: Resample.c bilinear_filter / HelperInterpLinear::aa_filter."""
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


def bicubic_filter_pillow(x):  # [...] -> [...]
    """Keys cubic, a = -0.5, in Pillow's evaluation order. Mirrors: Resample.c bicubic_filter."""
    a = -0.5
    x = np.abs(x)
    inner = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    outer = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1.0, inner, np.where(x < 2.0, outer, 0.0))


def bicubic_filter_torch(x):  # [...] -> [...]
    """Keys cubic, a = -0.5, in ATen's evaluation order. Mirrors: HelperInterpCubic::aa_filter (UpSample.h)."""
    a = -0.5
    x = np.abs(x)
    inner = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    outer = ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    return np.where(x < 1.0, inner, np.where(x < 2.0, outer, 0.0))


FILTERS = {  # name -> (support at scale 1, Pillow's filter, ATen's filter)
    "bilinear": (1.0, bilinear_filter, bilinear_filter),
    "bicubic": (2.0, bicubic_filter_pillow, bicubic_filter_torch),
}


def filter_weights(in_size, out_size, support1, kernel):  # -> start [O], weights float64 [O, K]
    """Normalised real-valued resampling weights of one axis, computed as both references do in float64.

    Mirrors: Resample.c precompute_coeffs; UpSampleKernel.cpp _compute_indices_min_size_weights_aa.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = support1 * filterscale
    K = int(math.ceil(support)) * 2 + 1
    center = (np.arange(out_size) + 0.5) * scale  # [O]
    start = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)  # [O]
    stop = np.minimum(np.trunc(center + support + 0.5), in_size).astype(np.int64)  # [O]
    taps = np.arange(K)  # [K]
    valid = taps[None, :] < (stop - start)[:, None]  # [O, K]
    x = ((start[:, None] + taps[None, :]).astype(np.float64) - center[:, None] + 0.5) * (1.0 / filterscale)
    weights = np.where(valid, kernel(x), 0.0)  # [O, K]
    total = np.cumsum(weights, axis=1)[:, -1:]  # [O, 1]; left-to-right sum, as the C loops add
    weights = np.where(total != 0.0, weights / np.where(total != 0.0, total, 1.0), weights)
    return start, weights


def round_half_away(x):  # [...] float -> [...] int64
    """C's (int)(x + 0.5) for x >= 0 and (int)(x - 0.5) for x < 0."""
    return np.trunc(np.where(x < 0, x - 0.5, x + 0.5)).astype(np.int64)


def pillow_axis_table(in_size, out_size, resample):  # -> start [O], int weights [O, K], precision
    """Pillow's 8-bit fixed-point weights: 22 fractional bits. Mirrors: Resample.c normalize_coeffs_8bpc."""
    support1, pil_kernel, _ = FILTERS[resample]
    start, weights = filter_weights(in_size, out_size, support1, pil_kernel)
    return start, round_half_away(weights * (1 << PILLOW_PRECISION_BITS)), PILLOW_PRECISION_BITS


def torch_axis_table(in_size, out_size, resample):  # -> start [O], int weights [O, K], precision
    """ATen's int16 weights, precision = most bits for which the largest weight still fits in int16.

    Mirrors: UpSampleKernel.cpp HelperInterpBase::_compute_index_ranges_int16_weights.
    """
    support1, _, torch_kernel = FILTERS[resample]
    start, weights = filter_weights(in_size, out_size, support1, torch_kernel)
    wt_max = float(weights.max()) if weights.size else 0.0
    precision = 0
    while precision < 22 and int(0.5 + wt_max * (1 << (precision + 1))) < (1 << 15):
        precision += 1
    return start, round_half_away(weights * (1 << precision)), precision


def resample_axis(image, axis, table, block_elements=1 << 21):  # [C, H, W] uint8 -> resized along axis 1 or 2
    """One separable pass: int32 multiply-accumulate over the K taps, rounding shift, clip to uint8.

    Both references accumulate in 32-bit integers starting from half an output step. Vectorised as a gather of
    all taps ([O, K] index table) and an integer einsum, a block of rows (or columns) at a time.
    Mirrors: Resample.c ImagingResampleHorizontal_8bpc / ImagingResampleVertical_8bpc and ATen's
    basic_loop_aa_horizontal<uint8_t> / basic_loop_aa_vertical<uint8_t> (same arithmetic, own precision).
    """
    start, weights, precision = table
    C, in_size = image.shape[0], image.shape[axis]
    O, K = weights.shape
    taps = np.minimum(start[:, None] + np.arange(K), in_size - 1).ravel()  # [O K]
    weights = weights.astype(np.int32)
    other = 3 - axis  # the spatial axis that is not resampled
    out_shape = list(image.shape)
    out_shape[axis] = O
    out = np.empty(out_shape, np.uint8)  # [C, O, W] or [C, H, O]
    step = max(1, block_elements // (C * O * K))
    for b0 in range(0, image.shape[other], step):
        block = (slice(None), slice(b0, b0 + step)) if other == 1 else (slice(None), slice(None), slice(b0, b0 + step))
        gathered = np.take(image[block], taps, axis=axis)  # [C, b, O K] or [C, O K, b]
        if axis == 2:
            acc = np.einsum("cbok,ok->cbo", gathered.reshape(C, -1, O, K), weights, dtype=np.int32)
        else:
            acc = np.einsum("cokb,ok->cob", gathered.reshape(C, O, K, -1), weights, dtype=np.int32)
        out[block] = np.clip((acc + (1 << (precision - 1))) >> precision, 0, 255)
    return out


def pillow_vertical_first(in_hw, out_hw, pass_order="pillow13"):
    """Whether Pillow resizes rows (vertical pass) before columns, by Pillow version.

    "pillow13" (Pillow >= 13.0, Resample.c ImagingResampleInner): iff (H-h) > 0 and (H-h) > 2 (W-w).
    "pillow12.2" (Pillow 12.2-12.3, Image.resize): iff H > 100 W and h < H.
    "pillow-classic" (Pillow < 12.2): never.
    """
    (H, W), (h, w) = in_hw, out_hw
    if pass_order == "pillow13":
        return (H - h) > 0 and (H - h) > 2 * (W - w)
    if pass_order == "pillow12.2":
        return H > 100 * W and h < H
    if pass_order == "pillow-classic":
        return False
    raise ValueError(f"unknown Pillow pass order {pass_order!r}; expected one of {PASS_ORDERS[:3]}")


def check_resize_args(image, size, resample):
    """Clear errors for what the resampler cannot take."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
        got = f"{type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}"
        raise TypeError(f"resize expects a uint8 array [C, H, W], got {got}")
    if image.shape[1] < 1 or image.shape[2] < 1:
        raise ValueError(f"resize: cannot resize an empty image of shape {image.shape}")
    h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise ValueError(f"resize: target size must be at least 1x1, got {size}")
    if resample not in RESAMPLE_NAMES:
        raise ValueError(f"resize: unsupported resample filter {resample!r}; supported: 2/'bilinear', 3/'bicubic'")
    return (h, w), RESAMPLE_NAMES[resample]


def resize_pil(image, size, resample="bilinear", pass_order="pillow13"):  # [C, H, W] u8 -> [C, h, w] u8
    """`PIL.Image.resize((w, h), resample)` on a uint8 image, bit-exact. Mirrors: Resample.c ImagingResample."""
    (h, w), resample = check_resize_args(image, size, resample)
    H, W = image.shape[1:]
    vertical_first = pillow_vertical_first((H, W), (h, w), pass_order)
    passes = [(1, H, h), (2, W, w)] if vertical_first else [(2, W, w), (1, H, h)]
    for axis, n_in, n_out in passes:
        if n_in != n_out:  # Pillow skips a pass whose size does not change
            image = resample_axis(image, axis, pillow_axis_table(n_in, n_out, resample))
    return image


def resize_torchvision(image, size, resample="bilinear"):  # [C, H, W] u8 -> [C, h, w] u8
    """`torchvision.transforms.v2.functional.resize(antialias=True)` on a uint8 CPU tensor, bit-exact.

    Mirrors: ATen _upsample_bilinear2d_aa / _upsample_bicubic2d_aa, uint8 path (horizontal pass first).
    """
    (h, w), resample = check_resize_args(image, size, resample)
    H, W = image.shape[1:]
    for axis, n_in, n_out in [(2, W, w), (1, H, h)]:
        if n_in != n_out:
            image = resample_axis(image, axis, torch_axis_table(n_in, n_out, resample))
    return image


def filter_weights_float32(in_size, out_size, support1, kernel):  # -> start [O], weights float32 [O, K]
    """Resampling weights computed in float32, as ATen does for float images (opmath_t = float).

    Mirrors: UpSampleKernel.cpp _compute_indices_min_size_weights_aa<float>.
    """
    f = np.float32
    scale = f(in_size) / f(out_size)
    support = f(support1) * scale if scale >= 1 else f(support1)
    invscale = f(1) / scale if scale >= 1 else f(1)
    K = int(math.ceil(support)) * 2 + 1
    center = scale * (np.arange(out_size, dtype=f) + f(0.5))  # [O]
    start = np.maximum(np.trunc(center - support + f(0.5)), 0).astype(np.int64)
    stop = np.minimum(np.trunc(center + support + f(0.5)), in_size).astype(np.int64)
    taps = np.arange(K)
    valid = taps[None, :] < (stop - start)[:, None]  # [O, K]
    x = ((start[:, None] + taps[None, :]).astype(f) - center[:, None] + f(0.5)) * invscale
    weights = np.where(valid, kernel(x).astype(f), f(0))  # [O, K]
    total = np.zeros(out_size, f)
    for k in range(K):  # left-to-right float32 sum
        total = total + weights[:, k]
    return start, np.where(total[:, None] != 0, weights / np.where(total != 0, total, f(1))[:, None], weights).astype(f)


def resample_axis_float(image, axis, start, weights):  # [C, H, W] float32 -> resized along axis 1 or 2
    """One separable pass on float32 pixels: t = x0 w0, then t = fma(xk, wk, t), kept in float32.

    A float64 product plus float64 sum rounded to float32 stands in for the fused multiply-add.
    """
    in_size = image.shape[axis]
    O, K = weights.shape
    w_shape = [1, 1, 1]
    w_shape[axis] = O
    acc = None
    for k in range(K):
        src = np.take(image, np.minimum(start + k, in_size - 1), axis=axis).astype(np.float64)
        term = src * weights[:, k].astype(np.float64).reshape(w_shape)
        acc = term.astype(np.float32) if acc is None else (acc.astype(np.float64) + term).astype(np.float32)
    return acc


def resize_float_torchvision(image, size, resample="bilinear"):  # [C, H, W] float -> [C, h, w] float32
    """Antialiased resize of a float image as torchvision does it (float32, no uint8 rounding).

    Close to, not bit-exact with, ATen (its compiled kernel's operation order is not fully reproduced; about
    1e-7 relative). Mirrors: ATen _upsample_bilinear2d_aa / _upsample_bicubic2d_aa, float path (width first).
    """
    h, w = (int(s) for s in size)
    support1, _, torch_kernel = FILTERS[RESAMPLE_NAMES[resample]]
    x = image.astype(np.float32)
    for axis, n_out in [(2, w), (1, h)]:
        if x.shape[axis] != n_out:
            x = resample_axis_float(x, axis, *filter_weights_float32(x.shape[axis], n_out, support1, torch_kernel))
    return x


def resize(image, size, resample="bilinear", backend="pil", pass_order="pillow13"):  # [C, H, W] -> [C, h, w]
    """Antialiased uint8 resize with the numerics of `backend` ("pil" or "torchvision")."""
    if backend == "pil":
        return resize_pil(image, size, resample, pass_order)
    if backend == "torchvision":
        return resize_torchvision(image, size, resample)
    raise ValueError(f"unknown resize backend {backend!r}; expected 'pil' or 'torchvision'")
