"""Weight-only quantization of Linear weights: int8 per output channel, int4 group-wise, symmetric.

Shapes: docs/shapes.md (Dout, Din a linear layer's output and input widths, R rows of activations; local: g group
size, the inputs sharing one scale).

A weight W [O, I] is cut along its input axis into groups of G consecutive columns (int8: G = I, one group per
output channel). Each group gets one scale s = max|w| / qmax (qmax = 127 for int8, 7 for int4) and its values
become codes c = round(w / s) in [-qmax, qmax]; W is read back as c * s. int4 codes are stored two per byte,
c + 8 in each nibble, the even column in the low nibble (docs/quantization.md has the on-disk layout).

Compute dequantizes into the activation dtype, never a whole weight at once: `matmul_t` (what `layers.linear`
and the fast encoder's matrix multiplies call) works through blocks of the weight's rows whose float copy stays
under WORK_BYTES, so memory is the quantized model plus one block per thread (int8, one scale per output row,
converts the codes and scales the product instead: x (c s)^T = (x c^T) s). The fast encoder calls it once
per block of token rows, so each weight is dequantized once per 256 tokens: the time that costs is measured in
docs/quantization.md. `dequantize` is the readable definition it is tested against (tests/test_quant.py).
Every function takes its array module from its input, so NumPy and CuPy share the code.
"""

import math
from dataclasses import dataclass

from ..backend import get_xp

BITS = (8, 4)
DEFAULT_GROUP_SIZE = 64  # int4 inputs per scale, chosen by measurement (docs/quantization.md, "group size")
WORK_BYTES = 2 << 20  # float weight rows per block in `matmul_t`: 2 MiB (8 MiB timed up to ~10 % faster, loaded machine)


def qmax(bits):
    return 2 ** (bits - 1) - 1  # 127 or 7: symmetric, the code -2^(bits-1) is never used


@dataclass(frozen=True)
class QuantizedWeight:
    """A Linear weight [O, I] as integer codes and float scales; stands where the float weight would.

    codes: int8 [O, I] (bits 8) or uint8 [O, I/2] (bits 4, two codes per byte); scales: [O, I/G] in the compute
    dtype (int8: [O, 1]). `shape` is the float weight's, `size` its parameter count (what `info` counts).
    """

    bits: int
    codes: object
    scales: object

    @property
    def shape(self):
        return (self.codes.shape[0], self.codes.shape[1] * (2 if self.bits == 4 else 1))

    @property
    def size(self):
        return math.prod(self.shape)

    @property
    def group_size(self):
        return self.shape[1] // self.scales.shape[1]

    @property
    def dtype(self):
        return self.scales.dtype  # the dtype it dequantizes into by default

    @property
    def nbytes(self):
        return self.codes.nbytes + self.scales.nbytes

    def rows(self, start, stop):  # -> QuantizedWeight of output rows start:stop (scales are per row, so exact)
        return QuantizedWeight(self.bits, self.codes[start:stop], self.scales[start:stop])

    def reshape(self, *shape):  # (k, O/k, I) -> k weights of O/k rows: the split of a packed [q; k; v] projection
        k, rows, inputs = shape
        if (k * rows, inputs) != self.shape:
            raise ValueError(f"a quantized weight {self.shape} splits only along its rows, not into {shape}")
        return [self.rows(i * rows, (i + 1) * rows) for i in range(k)]

    def to(self, xp, dtype=None):  # -> the same weight on backend xp, scales in `dtype`
        scales = xp.asarray(self.scales)
        return QuantizedWeight(self.bits, xp.asarray(self.codes), scales.astype(dtype or scales.dtype))


# ---------------------------------------------------------------- int4 packing


def pack_int4(codes):  # [Dout, Din] int8 in [-7, 7] -> [Dout, Din/2] uint8
    """Two codes per byte: (c + 8) of even column i in the low nibble, of column i + 1 in the high one."""
    xp = get_xp(codes)
    u = (codes + 8).astype(xp.uint8)
    return u[:, 0::2] | (u[:, 1::2] << 4)


def unpack_int4(packed):  # [Dout, Din/2] uint8 -> [Dout, Din] int8
    xp = get_xp(packed)
    low = (packed & 15).astype(xp.int8) - 8
    high = (packed >> 4).astype(xp.int8) - 8
    return xp.stack([low, high], axis=-1).reshape(packed.shape[0], -1)  # o i two -> o (i two)


# ---------------------------------------------------------------- quantize, and the readable dequantize


def group_size_for(inputs, bits, group_size=DEFAULT_GROUP_SIZE):
    """G for a weight with `inputs` columns: all of them for int8; for int4 `group_size`, or its largest
    divisor that divides `inputs` when it does not (a 48-wide weight with G = 64 gets G = 16)."""
    return inputs if bits == 8 else math.gcd(inputs, group_size)


def quantize(weight, bits, group_size=DEFAULT_GROUP_SIZE):  # [Dout, Din] float -> QuantizedWeight
    """Symmetric round-to-nearest: scale = max|w| / qmax per group, codes = round(w / scale), in float32."""
    xp = get_xp(weight)
    if bits not in BITS:
        raise ValueError(f"bits must be one of {BITS}, got {bits!r}")
    O, I = weight.shape
    G = group_size_for(I, bits, group_size)
    if bits == 4 and G % 2:
        raise ValueError(f"int4 needs an even group size; a weight with {I} inputs and group size {group_size} gives {G}")
    w = xp.asarray(weight, dtype=xp.float32).reshape(O, I // G, G)
    scales = xp.abs(w).max(axis=-1) / qmax(bits)  # [Dout, Din/g]
    safe = xp.where(scales == 0, 1, scales)[..., None]  # an all-zero group keeps codes 0
    codes = xp.clip(xp.rint(w / safe), -qmax(bits), qmax(bits)).astype(xp.int8).reshape(O, I)
    return QuantizedWeight(bits, codes if bits == 8 else pack_int4(codes), scales)


def integer_codes(weight):  # QuantizedWeight -> [Dout, Din] int8
    return weight.codes if weight.bits == 8 else unpack_int4(weight.codes)


def dequantize(weight, dtype=None):  # QuantizedWeight -> [Dout, Din] float
    """The float weight a quantized one stands for: codes * scale of their group, in `dtype` (default: the scales')."""
    O, I = weight.shape
    dtype = dtype or weight.scales.dtype
    w = integer_codes(weight).reshape(O, I // weight.group_size, weight.group_size).astype(dtype)  # [Dout, Din/g, g]
    w *= weight.scales.astype(dtype)[..., None]  # in place: one float copy of the weight, no second temporary
    return w.reshape(O, I)


# ---------------------------------------------------------------- compute without the whole float weight


def matmul_t(x, weight, out):  # [R, Din], [Dout, Din] -> out [R, Dout]
    """x W^T written into `out`. A quantized W is dequantized into x's dtype one block of its rows at a time
    (at most WORK_BYTES of float weight), each block multiplied straight into its columns of `out`."""
    xp = get_xp(x)
    if not isinstance(weight, QuantizedWeight):
        return xp.matmul(x, weight.T, out=out)
    O, I = weight.shape
    blocks = -(-O // max(1, WORK_BYTES // (I * x.itemsize)))  # as few as WORK_BYTES allows, of equal size
    step = -(-O // blocks)  # weight rows per block
    for start in range(0, O, step):
        rows, cols = weight.rows(start, start + step), out[:, start : start + step]
        if weight.bits == 8:  # one scale per output: x (c s)^T = (x c^T) s, one pass over the block less
            xp.matmul(x, rows.codes.astype(x.dtype).T, out=cols)
            cols *= rows.scales[:, 0].astype(x.dtype)
        else:
            xp.matmul(x, dequantize(rows, x.dtype).T, out=cols)  # [R, Din] @ [Din, step]
    return out


def linear_quantized(x, weight, bias):  # [..., Din] -> [..., Dout]
    """x W^T + b for a quantized W (what layers.linear runs for one), through `matmul_t`."""
    xp = get_xp(x)
    rows = x.reshape(-1, weight.shape[1])  # [R, Din]
    out = matmul_t(rows, weight, xp.empty((rows.shape[0], weight.shape[0]), x.dtype))  # [R, Dout]
    return out.reshape(*x.shape[:-1], weight.shape[0]) + bias


def dequantize_tree(tree, dtype):
    """A nested dict/list with every QuantizedWeight replaced by its float weight in `dtype`."""
    if isinstance(tree, dict):
        return {k: dequantize_tree(v, dtype) for k, v in tree.items()}
    if isinstance(tree, list):
        return [dequantize_tree(v, dtype) for v in tree]
    return dequantize(tree, dtype) if isinstance(tree, QuantizedWeight) else tree


def count_quantized(tree):
    if isinstance(tree, QuantizedWeight):
        return 1
    values = tree.values() if isinstance(tree, dict) else tree if isinstance(tree, list) else ()
    return sum(count_quantized(v) for v in values)


def is_quantized(params):
    """Whether a nested parameter tree holds any QuantizedWeight."""
    return count_quantized(params) > 0
