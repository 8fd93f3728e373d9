"""The fast image path: the same pixel values as the NumPy reference, in fewer and cheaper passes.

Two ideas, each checked bit for bit against the reference (tests/test_fast_preprocess.py):

1. Resize with Pillow's own C resampler (`Image.resize`, what transformers' Pillow back-end calls) when the
   installed Pillow computes exactly what `resize.resize_pil` computes for the chosen pass order. That is checked
   once per (pass order, filter) on small probe images that exercise both pass orders (`pillow_agrees`); a Pillow
   whose numbers differ falls back to the NumPy resize. The image stays a PIL image until it is resized, so a
   4000x3000 photo is never transposed or copied in NumPy.
2. Rescale and normalise are elementwise functions of (channel, uint8 level): they are evaluated once, by the
   reference `rescale_and_normalize`, on the 256 levels of each channel (a value table [C, 256]). One gather
   through that table then writes the normalised pixels straight into the patch layout and the zero padding.

Shape alphabet as in images.py; L the 256 uint8 levels.
"""

import numpy as np
from PIL import Image

from .resize import RESAMPLE_NAMES, resize, resize_pil

PIL_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
PROBES = (((300, 20), (40, 10)), ((37, 53), (16, 24)), ((5, 7), (16, 32)), ((64, 900), (30, 17)), ((480, 640), (224, 288)))
_AGREES = {}  # (pass_order, filter) -> bool, filled by the first call


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


def resize_hwc(rgb, size, resample, backend, pass_order):  # PIL.Image RGB | [3, H, W] u8 -> [h, w, 3] u8
    """The reference resize's result, channels last, through Pillow when it agrees (see `pillow_agrees`)."""
    if backend == "pil" and pillow_agrees(pass_order, resample):
        if not isinstance(rgb, Image.Image):
            rgb = Image.fromarray(np.ascontiguousarray(rgb.transpose(1, 2, 0)))
        return pillow_resize(rgb, size, resample)
    chw = np.asarray(rgb).transpose(2, 0, 1) if isinstance(rgb, Image.Image) else rgb
    return resize(np.ascontiguousarray(chw), size, resample, backend, pass_order).transpose(1, 2, 0)


def levels(channels=3):  # -> [C, 1, L] uint8: every uint8 level once per channel
    return np.ascontiguousarray(np.broadcast_to(np.arange(256, dtype=np.uint8), (channels, 1, 256)))


def gather_patches(hwc, table, patch_size, max_num_patches):  # [h, w, C] u8, [C, L] -> [N, P], [N] int32
    """Normalised, patchified and zero-padded in one gather: out[i, (py px c)] = table[c, pixel].

    Same result as images.pad_patches(images.patchify(normalised)) on the reference path.
    """
    h, w, C = hwc.shape
    p = patch_size
    gh, gw = h // p, w // p
    n = gh * gw
    patches = hwc.reshape(gh, p, gw, p, C).transpose(0, 2, 1, 3, 4).reshape(n, p * p * C)  # [n, P] uint8
    index = patches + np.tile(np.arange(C, dtype=np.intp) * 256, p * p)  # [n, P]: row of the flat [C L] table
    out = np.zeros((max_num_patches, p * p * C), table.dtype)  # [N, P]
    np.take(table.ravel(), index, out=out[:n])
    mask = np.zeros(max_num_patches, np.int32)
    mask[:n] = 1
    return out, mask


def gather_image(hwc, table):  # [h, w, C] u8, [C, L] -> [C, h, w]
    """Normalised and channels first in one gather per channel: out[c] = table[c, pixel[..., c]]."""
    h, w, C = hwc.shape
    out = np.empty((C, h, w), table.dtype)
    for c in range(C):
        np.take(table[c], hwc[:, :, c], out=out[c])
    return out
