"""Synthetic test images drawn in code, so goldens store only a recipe and a seed.

Drawing uses integer arithmetic and NumPy's PCG64 generator only (no transcendental functions, no codecs), so
every NumPy/Pillow version redraws the same pixels. Importable without torch or transformers.

A case is (name, kind, height, width, seed). `draw(case)` returns the object a user would pass: a PIL image of
some mode, a NumPy array, or (kind "exif_png") a path written into a folder the caller gives.
"""

import os
from collections import namedtuple

import numpy as np
from PIL import Image

Case = namedtuple("Case", "name kind height width seed")

CASES = [
    Case("rgb_1x1", "RGB", 1, 1, 1),
    Case("rgb_1x1000", "RGB", 1, 1000, 2),
    Case("rgb_1000x1", "RGB", 1000, 1, 3),
    Case("rgb_37x50", "RGB", 37, 50, 4),
    Case("rgb_224x224", "RGB", 224, 224, 5),
    Case("rgb_480x640", "RGB", 480, 640, 6),
    Case("rgb_768x1024", "RGB", 768, 1024, 7),
    Case("rgb_tall_2000x60", "RGB", 2000, 60, 8),
    Case("rgb_tall_1500x400", "RGB", 1500, 400, 9),
    Case("rgb_wide_50x1500", "RGB", 50, 1500, 10),
    Case("rgb_5000x16", "RGB", 5000, 16, 11),
    Case("rgb_3000x4000", "RGB", 3000, 4000, 12),
    Case("rgba_300x200", "RGBA", 300, 200, 13),
    Case("la_120x160", "LA", 120, 160, 14),
    Case("l_200x300", "L", 200, 300, 15),
    Case("p_150x100", "P", 150, 100, 16),
    Case("p_transparent_150x100", "P_transparency", 150, 100, 17),
    Case("cmyk_100x130", "CMYK", 100, 130, 18),
    Case("bilevel_90x70", "1", 90, 70, 19),
    Case("i16_128x96", "I;16", 128, 96, 20),
    Case("i32_96x128", "I", 96, 128, 21),
    Case("f32_80x120", "F", 80, 120, 22),
    Case("array_hwc_u8_240x320", "array_hwc_u8", 240, 320, 23),
    Case("array_hw_gray_200x150", "array_hw_gray", 200, 150, 24),
    Case("array_chw_u8_160x200", "array_chw_u8", 160, 200, 25),
    Case("array_hwc1_u8_64x80", "array_hwc1_u8", 64, 80, 26),
    Case("array_rgba_u8_140x90", "array_rgba_u8", 140, 90, 27),
    Case("array_float01_180x240", "array_float01", 180, 240, 28),
    Case("array_float255_100x100", "array_float255", 100, 100, 29),
    Case("exif_png_rot90_120x200", "exif_png", 120, 200, 30),
]
CASES_BY_NAME = {c.name: c for c in CASES}


def base_rgb(height, width, seed):  # -> [H, W, 3] uint8
    """Gradients, a few discs and boxes, and mild noise: edges and smooth regions, all in integers."""
    rng = np.random.default_rng(seed)
    y = np.arange(height, dtype=np.int32)[:, None]
    x = np.arange(width, dtype=np.int32)[None, :]
    img = np.empty((height, width, 3), np.int16)
    img[..., 0] = (x * 255) // max(width - 1, 1)
    img[..., 1] = (y * 255) // max(height - 1, 1)
    img[..., 2] = ((x + 2 * y) * 7) % 256
    for _ in range(6):
        cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
        r = int(rng.integers(1, max(2, min(height, width) // 2 + 2)))
        disc = (y - cy) ** 2 + (x - cx) ** 2 < r * r  # [H, W]
        img[disc] = rng.integers(0, 256, 3)
    for _ in range(4):
        y0, x0 = int(rng.integers(0, height)), int(rng.integers(0, width))
        y1, x1 = y0 + int(rng.integers(1, height + 1)), x0 + int(rng.integers(1, width + 1))
        img[y0:y1, x0:x1] = (img[y0:y1, x0:x1] + rng.integers(0, 256, 3).astype(np.int16)) // 2
    img += rng.integers(-3, 4, img.shape, dtype=np.int8)  # mild noise: rounding is exercised, goldens compress
    return np.clip(img, 0, 255).astype(np.uint8)


def channel_pattern(height, width, seed, high=256):  # -> [H, W] int64 in [0, high)
    """A second integer pattern (for alpha, 16-bit values, ...)."""
    rng = np.random.default_rng(seed + 1000)
    y = np.arange(height, dtype=np.int64)[:, None]
    x = np.arange(width, dtype=np.int64)[None, :]
    base = ((x * 3 + y * 5) * (high // 64 + 1)) % high
    return np.clip(base + rng.integers(-(high // 32), high // 32 + 1, (height, width)), 0, high - 1)


def luminance(rgb):  # [H, W, 3] uint8 -> [H, W] uint8 (integer weights, ITU-R 601)
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    return ((299 * r + 587 * g + 114 * b + 500) // 1000).astype(np.uint8)


def from_buffer(mode, array):
    """PIL image of `mode` from raw array bytes (avoids Image.fromarray's deprecated mode argument)."""
    h, w = array.shape[:2]
    return Image.frombytes(mode, (w, h), np.ascontiguousarray(array).tobytes())


def draw_pil(kind, h, w, seed):
    """PIL image of the given mode drawn from the base pattern."""
    rgb = base_rgb(h, w, seed)
    if kind == "RGB":
        return from_buffer("RGB", rgb)
    alpha = channel_pattern(h, w, seed).astype(np.uint8)
    if kind == "RGBA":
        return from_buffer("RGBA", np.dstack([rgb, alpha]))
    if kind == "LA":
        return from_buffer("LA", np.dstack([luminance(rgb), alpha]))
    if kind == "L":
        return from_buffer("L", luminance(rgb))
    if kind in ("P", "P_transparency"):
        image = from_buffer("L", (luminance(rgb) // 4).astype(np.uint8))  # 64 palette entries
        palette = base_rgb(1, 256, seed + 7)[0]  # [256, 3]
        image.putpalette(palette.ravel().tolist())
        if kind == "P_transparency":
            image.info["transparency"] = 5
        return image
    if kind == "CMYK":
        return from_buffer("CMYK", np.dstack([255 - rgb, alpha]))
    if kind == "1":
        return from_buffer("L", luminance(rgb)).convert("1", dither=Image.Dither.NONE)
    if kind == "I;16":
        return Image.fromarray(channel_pattern(h, w, seed, high=65536).astype(np.uint16))
    if kind == "I":
        return Image.fromarray(channel_pattern(h, w, seed, high=65536).astype(np.int32))
    if kind == "F":
        frac = channel_pattern(h, w, seed, high=1000).astype(np.float32) / np.float32(1000)
        return Image.fromarray(np.minimum(luminance(rgb).astype(np.float32) + frac, np.float32(255)))
    raise ValueError(f"unknown PIL kind {kind!r}")


def draw_array(kind, h, w, seed):
    """NumPy image of the given layout/dtype drawn from the base pattern."""
    rgb = base_rgb(h, w, seed)
    if kind == "array_hwc_u8":
        return rgb
    if kind == "array_hw_gray":
        return luminance(rgb)
    if kind == "array_chw_u8":
        return np.ascontiguousarray(rgb.transpose(2, 0, 1))
    if kind == "array_hwc1_u8":
        return luminance(rgb)[..., None]
    if kind == "array_rgba_u8":
        return np.dstack([rgb, channel_pattern(h, w, seed).astype(np.uint8)])
    if kind == "array_float01":
        frac = channel_pattern(h, w, seed, high=97).astype(np.float32) / np.float32(97 * 255)
        return np.minimum(rgb.astype(np.float32) / np.float32(255) + frac[..., None], np.float32(1))
    if kind == "array_float255":
        return rgb.astype(np.float32)
    raise ValueError(f"unknown array kind {kind!r}")


FloatCase = namedtuple("FloatCase", "name dtype value_range layout height width seed")

# Float arrays for the torchvision back-end's float resize (goldens in golden/preprocess/float_arrays.*):
# value_range "01" is given to transformers with do_rescale=False, "255" with the default do_rescale=True.
FLOAT_CASES = [
    FloatCase("f32_01_180x240", "float32", "01", "hwc", 180, 240, 41),
    FloatCase("f32_255_100x100", "float32", "255", "hwc", 100, 100, 42),
    FloatCase("f64_01_20x15", "float64", "01", "hwc", 20, 15, 43),
    FloatCase("f64_255_300x200", "float64", "255", "hwc", 300, 200, 44),
    FloatCase("f32_01_tall_900x40", "float32", "01", "hwc", 900, 40, 45),
    FloatCase("f32_255_wide_30x700", "float32", "255", "hwc", 30, 700, 46),
    FloatCase("f32_01_1x300", "float32", "01", "chw", 1, 300, 47),  # HWC [1, 300, 3] would read as 1 channel
    FloatCase("f64_255_200x1", "float64", "255", "hwc", 200, 1, 48),
    FloatCase("f32_01_chw_120x90", "float32", "01", "chw", 120, 90, 49),
    FloatCase("f64_01_chw_45x61", "float64", "01", "chw", 45, 61, 50),
    FloatCase("f16_01_70x50", "float16", "01", "hwc", 70, 50, 51),
    FloatCase("f32_01_32x24", "float32", "01", "hwc", 32, 24, 52),
]
FLOAT_CASES_BY_NAME = {c.name: c for c in FLOAT_CASES}


def draw_float(case):  # -> [H, W, 3] or [3, H, W] float array
    """A float image with non-integral values: (97 v + f) / (255 97 + 96) in [0, 1] or (97 v + f) / 97 in [0, 255].

    v is the base pattern, f in [0, 97) a second pattern; one IEEE division then one cast, so it redraws exactly.
    """
    case = FLOAT_CASES_BY_NAME[case] if isinstance(case, str) else case
    rgb = base_rgb(case.height, case.width, case.seed).astype(np.int64)  # [H, W, 3]
    numerator = 97 * rgb + channel_pattern(case.height, case.width, case.seed, high=97)[..., None]
    denominator = 255 * 97 + 96 if case.value_range == "01" else 97
    values = np.minimum(numerator / denominator, 255.0).astype(case.dtype)  # float64 division, then one cast
    return np.ascontiguousarray(values.transpose(2, 0, 1)) if case.layout == "chw" else values


def write_exif_png(case, folder):
    """PNG whose EXIF orientation (6: rotate 90 degrees clockwise to display) must be applied on loading."""
    image = from_buffer("RGB", base_rgb(case.height, case.width, case.seed))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    path = os.path.join(folder, f"{case.name}.png")
    image.save(path, exif=exif.tobytes())
    return path


def draw(case, folder=None):
    """The input object of a case (a path for "exif_png", which needs `folder`)."""
    case = CASES_BY_NAME[case] if isinstance(case, str) else case
    if case.kind == "exif_png":
        if folder is None:
            raise ValueError("exif_png cases are files: pass a folder to write them into")
        return write_exif_png(case, folder)
    if case.kind.startswith("array_"):
        return draw_array(case.kind, case.height, case.width, case.seed)
    return draw_pil(case.kind, case.height, case.width, case.seed)


def sixteen_bit_reference_rgb(image):  # I;16 / I PIL image -> RGB PIL image
    """The project's documented 16-to-8-bit rule, written independently: round(v / 257) per pixel, as RGB."""
    values = np.clip(np.asarray(image).astype(np.float64), 0, 65535)
    gray = np.round(values / 257.0).astype(np.uint8)
    return from_buffer("L", gray).convert("RGB")
