"""Model inputs checked before any math: shapes, dtypes, ranges and masks, each refused with a clear InputError.

`Model` calls these on whatever the user passes (lists, NumPy or CuPy arrays); they return arrays on the model's
backend. Shapes: docs/shapes.md (T texts, I images, N positions or patch slots, P patch vector, S image side).
"""

import numpy as np

from ..backend import to_backend
from ..errors import InputError


def as_array(x, name, xp, ndim, dtype_kind):
    """`x` on backend `xp` with `ndim` dims (a missing batch axis is added) and an int or float dtype."""
    try:
        arr = to_backend(x, xp) if type(x).__module__.startswith(("numpy", "cupy")) else xp.asarray(np.asarray(x))
    except (ValueError, TypeError) as e:  # ragged nested lists, objects NumPy cannot hold
        raise InputError(f"{name}: expected a rectangular {ndim}-d array of numbers ({e})") from None
    if arr.ndim == ndim - 1:
        arr = arr[None]
    if arr.ndim != ndim:
        raise InputError(f"{name}: expected {ndim} dimensions, got shape {tuple(arr.shape)}")
    if 0 in arr.shape[:2]:
        raise InputError(f"{name}: empty batch or sequence (shape {tuple(arr.shape)}); expected at least one item and one position")
    if dtype_kind == "int" and arr.dtype.kind not in "iub":
        raise InputError(f"{name}: expected integers, got dtype {arr.dtype}")
    if dtype_kind == "float" and arr.dtype.kind not in "fiu":
        raise InputError(f"{name}: expected numbers, got dtype {arr.dtype}")
    return arr


def check_binary(mask, name, xp):
    """A 0/1 mask (ints or bools)."""
    if bool(((mask != 0) & (mask != 1)).any()):
        raise InputError(f"{name}: expected only 0 (padding) and 1 (real), got values {sorted(set(xp.unique(mask).tolist()))[:8]}")


def check_finite(arr, name, xp):
    """No NaN or inf among the pixels: they would spread through attention to every output."""
    if arr.dtype.kind == "f" and not bool(xp.isfinite(arr).all()):
        bad = int((~xp.isfinite(arr)).sum())
        raise InputError(f"{name}: {bad} non-finite values (NaN or inf); expected finite normalised pixels")


def check_index_range(arr, name, upper, what):
    if int(arr.min()) < 0 or int(arr.max()) >= upper:
        raise InputError(f"{name}: values must lie in [0, {upper}) ({what}), got [{int(arr.min())}, {int(arr.max())}]")


def check_text_inputs(cfg, input_ids, attention_mask, xp, position_ids=None):
    ids = as_array(input_ids, "input_ids", xp, 2, "int")  # [T, N]
    if ids.shape[1] > cfg.max_position_embeddings:
        raise InputError(f"input_ids: sequence length {ids.shape[1]} exceeds max_position_embeddings {cfg.max_position_embeddings}")
    check_index_range(ids, "input_ids", cfg.vocab_size, "vocab_size")
    if attention_mask is not None:
        attention_mask = as_array(attention_mask, "attention_mask", xp, 2, "int")
        if attention_mask.shape != ids.shape:
            raise InputError(f"attention_mask: shape {tuple(attention_mask.shape)} != input_ids shape {tuple(ids.shape)}")
        check_binary(attention_mask, "attention_mask", xp)
        if bool((attention_mask.sum(-1) == 0).any()):
            raise InputError("attention_mask: a row with no 1s (every position masked); expected at least one real token per text")
    if position_ids is not None:
        position_ids = as_array(position_ids, "position_ids", xp, 2, "int")
        if position_ids.shape[1] != ids.shape[1] or position_ids.shape[0] not in (1, ids.shape[0]):
            raise InputError(f"position_ids: shape {tuple(position_ids.shape)} does not fit input_ids shape {tuple(ids.shape)}")
        check_index_range(position_ids, "position_ids", cfg.max_position_embeddings, "max_position_embeddings")
    return ids.astype(xp.int64), attention_mask, position_ids


def check_fixres_pixels(cfg, pixel_values, interpolate, xp):
    """[I, C, S, S] at the checkpoint's image_size; other sizes only with interpolate_pos_encoding=True."""
    pixels = as_array(pixel_values, "pixel_values", xp, 4, "float")
    S, P = cfg.image_size, cfg.patch_size
    if pixels.shape[1] != cfg.num_channels or min(pixels.shape[2:]) < P:
        raise InputError(f"pixel_values: expected [I, {cfg.num_channels}, H, W] with H, W >= {P}, got {tuple(pixels.shape)}")
    if tuple(pixels.shape[2:]) != (S, S) and not interpolate:
        raise InputError(f"pixel_values: expected [I, {cfg.num_channels}, {S}, {S}] (the checkpoint's image_size), got "
                         f"{tuple(pixels.shape)}; resize the images or pass interpolate_pos_encoding=True")  # fmt: skip
    check_finite(pixels, "pixel_values", xp)
    return pixels


def check_spatial_shapes(spatial_shapes, I, N, xp):
    """[I, 2] positive (h, w) patch grids that fit the N patch slots."""
    if spatial_shapes is None:
        raise InputError("spatial_shapes is required for NaFlex checkpoints: [I, 2] patch-grid (h, w) per image")
    shapes = as_array(spatial_shapes, "spatial_shapes", xp, 2, "int").astype(xp.int64)
    if shapes.shape != (I, 2) or bool((shapes < 1).any()) or bool((shapes.prod(-1) > N).any()):
        raise InputError(f"spatial_shapes: expected [{I}, 2] positive (h, w) with h*w <= {N} patches, got {shapes.tolist()}")
    return shapes


def check_pixel_mask(mask, shapes, I, N, xp):
    """[I, N] 0/1 with exactly h*w ones per image. None attends to every slot, padding too, as transformers does."""
    if mask is None:
        return None
    mask = as_array(mask, "pixel_attention_mask", xp, 2, "int")
    if mask.shape != (I, N):
        raise InputError(f"pixel_attention_mask: expected shape {(I, N)}, got {tuple(mask.shape)}")
    check_binary(mask, "pixel_attention_mask", xp)
    if bool((mask.sum(-1) != shapes.prod(-1)).any()):
        raise InputError(f"pixel_attention_mask: real patches per image {mask.sum(-1).tolist()} != h*w of spatial_shapes {shapes.prod(-1).tolist()}")
    return mask


def check_image_inputs(cfg, pixel_values, pixel_attention_mask, spatial_shapes, xp, dtype, interpolate=True):
    """FixRes: [I, C, H, W]. NaFlex: [I, N, C*P*P] + spatial_shapes [I, 2] (+ pixel_attention_mask [I, N])."""
    if cfg.variant == "fixres":
        return check_fixres_pixels(cfg, pixel_values, interpolate, xp).astype(dtype), None, None
    pixels = as_array(pixel_values, "pixel_values", xp, 3, "float")  # [I, N, P]
    I, N, width = pixels.shape
    if width != cfg.num_channels * cfg.patch_size**2:
        raise InputError(f"pixel_values: NaFlex expects patchified input [I, N, {cfg.num_channels * cfg.patch_size**2}], got {tuple(pixels.shape)}")
    check_finite(pixels, "pixel_values", xp)
    shapes = check_spatial_shapes(spatial_shapes, I, N, xp)
    mask = check_pixel_mask(pixel_attention_mask, shapes, I, N, xp)
    return pixels.astype(dtype), mask, shapes
