"""Antialiased resize, bit-exact with Pillow and with torchvision's uint8 and float kernels.

All three references resample separably with the same real-valued weights (a triangle or Keys-cubic filter
stretched by the downscale factor, so downscaling averages instead of skipping pixels), but they differ in
arithmetic and in the order of the two passes.

  Pillow (`src/libImaging/Resample.c`, `precompute_coeffs` + `normalize_coeffs_8bpc`): uint8, 22 fractional
      bits, pass order by Pillow version (see `pillow_vertical_first`); each pass rounds to uint8.
  torchvision / ATen, uint8 (`UpSampleKernel.cpp`, `_compute_index_ranges_int16_weights`): int16 weights with a
      per-axis precision chosen from the largest weight; always horizontal pass first.
  torchvision / ATen, float32 / float64 (`_compute_indices_min_size_weights_aa`): weights and sums in the image's
      dtype, with ATen's compiled operation order (double intermediates, fused multiply-adds; see
      `aten_float_resample_axis`); horizontal pass first.

Everything here works on channels-first arrays [C, H, W] (torchvision's layout; the column pass is the costly
one and is fastest on planes). Shapes: docs/shapes.md (C channels; h0, w0 input height/width; h, w output height/width;
out outputs of one axis; taps filter taps per output).
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


def filter_weights(in_size, out_size, support1, kernel):  # -> start [out], weights float64 [out, taps]
    """Normalised real-valued resampling weights of one axis, computed as both references do in float64.

    Mirrors: Resample.c precompute_coeffs; UpSampleKernel.cpp _compute_indices_min_size_weights_aa.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = support1 * filterscale
    K = int(math.ceil(support)) * 2 + 1
    center = (np.arange(out_size) + 0.5) * scale  # [out]
    start = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)  # [out]
    stop = np.minimum(np.trunc(center + support + 0.5), in_size).astype(np.int64)  # [out]
    taps = np.arange(K)  # [taps]
    valid = taps[None, :] < (stop - start)[:, None]  # [out, taps]
    x = ((start[:, None] + taps[None, :]).astype(np.float64) - center[:, None] + 0.5) * (1.0 / filterscale)
    weights = np.where(valid, kernel(x), 0.0)  # [out, taps]
    total = np.cumsum(weights, axis=1)[:, -1:]  # [out, 1]; left-to-right sum, as the C loops add
    weights = np.where(total != 0.0, weights / np.where(total != 0.0, total, 1.0), weights)
    return start, weights


def round_half_away(x):  # [...] float -> [...] int64
    """C's (int)(x + 0.5) for x >= 0 and (int)(x - 0.5) for x < 0."""
    return np.trunc(np.where(x < 0, x - 0.5, x + 0.5)).astype(np.int64)


def pillow_axis_table(in_size, out_size, resample):  # -> start [out], int weights [out, taps], precision
    """Pillow's 8-bit fixed-point weights: 22 fractional bits. Mirrors: Resample.c normalize_coeffs_8bpc."""
    support1, pil_kernel, _ = FILTERS[resample]
    start, weights = filter_weights(in_size, out_size, support1, pil_kernel)
    return start, round_half_away(weights * (1 << PILLOW_PRECISION_BITS)), PILLOW_PRECISION_BITS


def torch_axis_table(in_size, out_size, resample):  # -> start [out], int weights [out, taps], precision
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


def resample_axis(image, axis, table, block_elements=1 << 21):  # [C, h0, w0] uint8 -> resized along axis 1 or 2
    """One separable pass: int32 multiply-accumulate over the K taps, rounding shift, clip to uint8.

    Both references accumulate in 32-bit integers starting from half an output step. Vectorised as a gather of
    all taps ([O, K] index table) and an integer einsum, a block of rows (or columns) at a time.
    Mirrors: Resample.c ImagingResampleHorizontal_8bpc / ImagingResampleVertical_8bpc and ATen's
    basic_loop_aa_horizontal<uint8_t> / basic_loop_aa_vertical<uint8_t> (same arithmetic, own precision).
    """
    start, weights, precision = table
    C, in_size = image.shape[0], image.shape[axis]
    O, K = weights.shape
    taps = np.minimum(start[:, None] + np.arange(K), in_size - 1).ravel()  # [out taps]
    weights = weights.astype(np.int32)
    other = 3 - axis  # the spatial axis that is not resampled
    out_shape = list(image.shape)
    out_shape[axis] = O
    out = np.empty(out_shape, np.uint8)  # [C, out, w0] or [C, h0, out]
    step = max(1, block_elements // (C * O * K))
    for b0 in range(0, image.shape[other], step):
        block = (slice(None), slice(b0, b0 + step)) if other == 1 else (slice(None), slice(None), slice(b0, b0 + step))
        gathered = np.take(image[block], taps, axis=axis)  # [C, b, out taps] or [C, out taps, b]
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
    """Clear errors for what the uint8 resampler cannot take."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
        got = f"{type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}"
        raise TypeError(f"resize expects a uint8 array [C, H, W], got {got}")
    return check_geometry(image, size, resample)


def check_geometry(image, size, resample):  # [C, h0, w0] -> (h, w), filter name
    """Errors both resamplers share: an empty image, a target below 1x1, an unknown filter."""
    if image.shape[1] < 1 or image.shape[2] < 1:
        raise ValueError(f"resize: cannot resize an empty image of shape {image.shape}")
    h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise ValueError(f"resize: target size must be at least 1x1, got {size}")
    if resample not in RESAMPLE_NAMES:
        raise ValueError(f"resize: unsupported resample filter {resample!r}; supported: 2/'bilinear', 3/'bicubic'")
    return (h, w), RESAMPLE_NAMES[resample]


def resize_pil(image, size, resample="bilinear", pass_order="pillow13"):  # [C, h0, w0] u8 -> [C, h, w] u8
    """`PIL.Image.resize((w, h), resample)` on a uint8 image, bit-exact. Mirrors: Resample.c ImagingResample."""
    (h, w), resample = check_resize_args(image, size, resample)
    H, W = image.shape[1:]
    vertical_first = pillow_vertical_first((H, W), (h, w), pass_order)
    passes = [(1, H, h), (2, W, w)] if vertical_first else [(2, W, w), (1, H, h)]
    for axis, n_in, n_out in passes:
        if n_in != n_out:  # Pillow skips a pass whose size does not change
            image = resample_axis(image, axis, pillow_axis_table(n_in, n_out, resample))
    return image


def resize_torchvision(image, size, resample="bilinear"):  # [C, h0, w0] u8 -> [C, h, w] u8
    """`torchvision.transforms.v2.functional.resize(antialias=True)` on a uint8 CPU tensor, bit-exact.

    Mirrors: ATen _upsample_bilinear2d_aa / _upsample_bicubic2d_aa, uint8 path (horizontal pass first).
    """
    (h, w), resample = check_resize_args(image, size, resample)
    H, W = image.shape[1:]
    for axis, n_in, n_out in [(2, W, w), (1, H, h)]:
        if n_in != n_out:
            image = resample_axis(image, axis, torch_axis_table(n_in, n_out, resample))
    return image


# ----------------------------------------------------------------------------------------------------------------
# Float images: ATen's float kernel, operation for operation
#
# NumPy has no fused multiply-add, but ATen's compiled float loops use one, so it is emulated exactly: the float64
# helpers below give the correctly rounded a b + c for float32 and float64 operands.


def two_sum(a, b):  # [...] f64, [...] f64 -> sum, error (sum + error == a + b exactly)
    """Knuth's error-free addition."""
    s = a + b
    b_virtual = s - a
    return s, (a - (s - b_virtual)) + (b - b_virtual)


def round_to_odd(s, error):  # [...] f64 -> [...] f64
    """s, moved one step towards s + error when the sum was inexact and s is even (Boldo-Melquiond rounding to odd).

    Rounding an odd-rounded float64 once more to float32 (or adding it to a larger float64) rounds correctly.
    """
    even = (s.view(np.int64) & 1) == 0
    return np.where((error != 0) & even, np.nextafter(s, np.where(error > 0, np.inf, -np.inf)), s)


def split_float64(a):  # [...] f64 -> high, low (high + low == a exactly)
    """Veltkamp's split into two halves of at most 26 significant bits, so their products are exact."""
    t = a * 134217729.0  # 2**27 + 1
    high = t - (t - a)
    return high, a - high


def fused_multiply_add(a, b, c):  # [...] float32 | float64 -> [...] same dtype
    """a b + c rounded once, as the hardware fma instruction does.

    float32: the product is exact in float64, the sum is rounded to odd in float64, then to float32.
    float64: Dekker's exact product, then Boldo-Melquiond's emulated fma (sum of three terms, rounded to odd once).
    """
    dtype = np.result_type(a, b, c)
    a, b, c = (np.asarray(v, np.float64) for v in (a, b, c))
    product = a * b  # exact when a and b are float32
    if dtype == np.float32:
        return round_to_odd(*two_sum(product, c)).astype(np.float32)
    (a_hi, a_lo), (b_hi, b_lo) = split_float64(a), split_float64(b)
    product_error = ((a_hi * b_hi - product) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
    high, low = two_sum(c, product)
    return high + round_to_odd(*two_sum(low, product_error))


def aten_filter(x, resample, fused):  # [...] float -> [...] same dtype
    """ATen's filters evaluated as compiled: triangle 1 - |x| (in double), Keys cubic by Horner, fma-contracted.

    Mirrors: UpSampleKernel.cpp HelperInterpLinear::aa_filter / HelperInterpCubic::aa_filter (a = -0.5).
    """
    dtype = x.dtype.type
    x = np.abs(x)
    if resample == "bilinear":
        return np.where(x < 1, (1.0 - x.astype(np.float64)).astype(dtype), dtype(0))
    a = dtype(-0.5)
    mul_add = fused_multiply_add if fused else (lambda u, v, w: u * v + w)
    inner = mul_add(mul_add(a + 2, x, -(a + 3)) * x, x, dtype(1))  # ((a + 2) x - (a + 3)) x x + 1
    outer = mul_add(mul_add(mul_add(a, x, -5 * a), x, 8 * a), x, -4 * a)  # ((a x - 5 a) x + 8 a) x - 4 a
    return np.where(x < 1, inner, np.where(x < 2, outer, dtype(0))).astype(dtype)


def aten_float_weights(in_size, out_size, resample, dtype, fused=True):  # -> start [out], size [out], weights [out, taps]
    """One axis' taps and weights for a float image, in the image's dtype with ATen's mixed float/double steps.

    `center` and the filter argument are computed in double from float operands and rounded back to `dtype`; the
    weights are normalised by their left-to-right sum in `dtype`.
    Mirrors: UpSampleKernel.cpp HelperInterpBase::_compute_index_ranges_weights / _compute_indices_min_size_weights_aa.
    """
    f = np.dtype(dtype).type
    support1 = FILTERS[resample][0]
    scale = f(f(in_size) / out_size)  # area_pixel_compute_scale
    support = f(support1 * float(scale)) if scale >= 1 else f(support1)
    invscale = f(1.0 / float(scale)) if scale >= 1 else f(1)
    K = int(math.ceil(support)) * 2 + 1
    center = (float(scale) * (np.arange(out_size) + 0.5)).astype(f)  # [out]
    start = np.maximum(np.trunc(np.float64(center - support) + 0.5), 0).astype(np.int64)  # [out]
    stop = np.trunc(np.float64(center + support) + 0.5).astype(np.int64)  # [out]
    size = np.clip(np.minimum(stop, in_size) - start, 0, K)  # [out]; clipped to K as ATen does
    taps = np.arange(K)  # [taps]
    offset = (start[:, None] + taps).astype(f) - center[:, None]  # [out, taps] in dtype
    x = ((np.float64(offset) + 0.5) * float(invscale)).astype(f)  # [out, taps]; + 0.5 and * invscale in double
    weights = np.where(taps < size[:, None], aten_filter(x, resample, fused), f(0))  # [out, taps]
    total = np.zeros(out_size, f)  # [out]
    for k in range(K):  # left-to-right sum in dtype, as the C loop adds
        total = total + weights[:, k]
    safe = np.where(total != 0, total, f(1))[:, None]  # [out, 1]
    return start, size, np.where(total[:, None] != 0, weights / safe, weights)


def aten_float_resample_axis(image, axis, table, fused=True):  # [C, h0, w0] float -> resized along axis 1 or 2
    """One separable pass of ATen's float kernel: out = x0 w0, then out += xk wk for the other taps, in dtype.

    The tap loop as GCC compiled it for AVX2 (with fma): taps are taken in groups of one 16-byte vector of
    products (4 float32 / 2 float64), each product rounded, then added in order; the (size - 1) % lanes taps left
    over run as scalar fused multiply-adds. Without fma (the DEFAULT build) every product is rounded.
    Mirrors: UpSampleKernel.cpp basic_loop_aa_horizontal / basic_loop_aa_vertical
    (interpolate_aa_single_dim[_zero_strides]), non-uint8 path.
    """
    start, size, weights = table
    O, K = weights.shape
    n_in, outputs = image.shape[axis], np.arange(O)
    lanes = 16 // image.itemsize if fused else 1  # products per vector; 1: every product rounded
    w_shape = (O,) if axis == 2 else (O, 1)  # weights broadcast along the output axis

    def tap(k):  # k [out] or int -> source pixels [C, h0, out] / [C, out, w0], weights [out] or [out, 1]
        k = np.broadcast_to(k, (O,))
        pixels = np.take(image, np.minimum(start + k, n_in - 1), axis=axis)
        return pixels, weights[outputs, np.minimum(k, K - 1)].reshape(w_shape)

    rounded = 1 + (np.maximum(size, 1) - 1) // lanes * lanes  # [out] taps summed from rounded products
    pixels, w = tap(0)
    out = pixels * w  # [C, h0, out] or [C, out, w0]
    for k in range(1, K):
        pixels, w = tap(k)
        out = np.where((k < rounded).reshape(w_shape), out + pixels * w, out)
    for r in range(lanes - 1):  # the left-over taps: fused multiply-adds
        k = rounded + r  # [out]
        pixels, w = tap(k)
        out = np.where((k < size).reshape(w_shape), fused_multiply_add(pixels, w, out), out)
    return out


ATEN_CPU_KERNELS = {"avx2": True, "default": False}  # torch.backends.cpu.get_cpu_capability() -> uses fma


def resize_float_torchvision(image, size, resample="bilinear", cpu_kernel="avx2"):  # [C, h0, w0] float -> [C, h, w]
    """`torchvision.transforms.v2.functional.resize(antialias=True)` on a float CPU tensor, bit-exact.

    float32 and float64 are resized in their own dtype; other floats (float16) in float32 and cast back, as
    torchvision does. Width pass first, each pass only if that size changes. `cpu_kernel` is the CPU capability
    of the ATen kernel whose operation order is reproduced: "avx2" (x86-64 with AVX2 and FMA, torch's usual
    choice) or "default" (no vector extensions, no fma; ATEN_CPU_CAPABILITY=default). AVX-512 builds are not
    reproduced. One ATen quirk is not reproduced either: torch 2.14's float kernel gives every output row the
    first input row when the image is one pixel wide during the height pass (target width 1); this resamples.
    Mirrors: torchvision resize_image; ATen _upsample_bilinear2d_aa / _upsample_bicubic2d_aa,
    separable_upsample_generic_Nd_kernel_impl, float path.
    """
    (h, w), resample = check_float_resize_args(image, size, resample, cpu_kernel)
    if (h, w) == image.shape[1:]:
        return image
    x = image if image.dtype in (np.float32, np.float64) else image.astype(np.float32)
    fused = ATEN_CPU_KERNELS[cpu_kernel]
    for axis, n_out in [(2, w), (1, h)]:
        if x.shape[axis] != n_out:
            table = aten_float_weights(x.shape[axis], n_out, resample, x.dtype, fused)
            x = aten_float_resample_axis(x, axis, table, fused)
    return x.astype(image.dtype, copy=False)


def check_float_resize_args(image, size, resample, cpu_kernel):
    """Clear errors for what the float resampler cannot take."""
    if not isinstance(image, np.ndarray) or not np.issubdtype(image.dtype, np.floating) or image.ndim != 3:
        got = f"{type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}"
        raise TypeError(f"resize_float_torchvision expects a float array [C, H, W], got {got}")
    if image.dtype.itemsize > 8:
        raise TypeError(f"resize_float_torchvision: {image.dtype} is not a torch dtype; use float16/32/64")
    if cpu_kernel not in ATEN_CPU_KERNELS:
        raise ValueError(f"unknown ATen CPU kernel {cpu_kernel!r}; expected one of {sorted(ATEN_CPU_KERNELS)}")
    return check_geometry(image, size, resample)


def resize(image, size, resample="bilinear", backend="pil", pass_order="pillow13"):  # [C, h0, w0] -> [C, h, w]
    """Antialiased uint8 resize with the numerics of `backend` ("pil" or "torchvision")."""
    if backend == "pil":
        return resize_pil(image, size, resample, pass_order)
    if backend == "torchvision":
        return resize_torchvision(image, size, resample)
    raise ValueError(f"unknown resize backend {backend!r}; expected 'pil' or 'torchvision'")
