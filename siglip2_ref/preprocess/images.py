"""Image preprocessing for SigLIP 2: loading, RGB conversion, FixRes and NaFlex processors.

Reproduces transformers' `SiglipImageProcessor` (FixRes) and `Siglip2ImageProcessor` (NaFlex) pixel for pixel,
with either of its two resize back-ends ("pil": Pillow >= 13, the default here; "torchvision": transformers 5.x's
default). Non-RGB inputs are converted, never rejected (docs/conventions.md "Decisions" 4).

Shapes: docs/shapes.md (B images; C channels, 3 after conversion; h0, w0 input height/width; h, w resized height/width;
p patch side; gh, gw patch grid (h = gh p, w = gw p); N patch slots (max_num_patches); P patch vector (p p C)).

Long (about 460 lines) on purpose: loading, the FixRes and NaFlex processors and their shared steps
(target size, rescale/normalise, patchify) stay on one page so the NaFlex path reads in order.
"""

import math
import os
import warnings

import numpy as np
from PIL import Image, ImageOps

from ..checkpoint.choices import decide
from ..checkpoint.config import json_object
from ..errors import ImageFileError, ImageInputError, ImageTooLargeError
from . import fast as fast_path
from .image_config import detect_variant, merged_config, read_preprocessor_config
from .resize import resize, resize_float_torchvision

RESIZE_BACKENDS = ("pil", "torchvision")

SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


# ----------------------------------------------------------------------------------------------------------------
# Loading and conversion to RGB


def open_image_file(path):
    """Open, fully decode and EXIF-orient an image file. Mirrors: transformers.image_utils.load_image."""
    path = os.fspath(path)
    if path.startswith(("http://", "https://")):
        raise ImageFileError(f"{path}: URLs are not fetched (no network access); download the file first")
    if not os.path.isfile(path):
        raise ImageFileError(f"{path}: no such image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageTooLargeError(f"{path}: {e}") from e
    except (OSError, SyntaxError, ValueError) as e:  # PIL.UnidentifiedImageError is an OSError
        raise ImageFileError(f"{path}: cannot read image ({type(e).__name__}: {e})") from e
    ImageOps.exif_transpose(image, in_place=True)  # the same pixels as the copy transformers makes, without the copy
    return image


def sixteen_bit_to_uint8(values):  # [...] integer 0..65535 -> [...] uint8
    """Scale 16-bit values to 8 bits, v / 257 rounded (Pillow and transformers clip to 255 instead)."""
    values = np.clip(np.asarray(values, dtype=np.int64), 0, 65535)
    return ((values + 128) // 257).astype(np.uint8)


def pil_rgb_image(image):  # PIL.Image any mode -> PIL.Image "RGB"
    """An RGB PIL image of any mode; transparency is composited onto white.

    Mirrors: transformers 5.x image_transforms.convert_to_rgb (do_convert_rgb=True); 16-bit modes are scaled.
    """
    if image.width < 1 or image.height < 1:
        raise ImageInputError(f"image has zero size {image.width}x{image.height} (width x height)")
    if image.mode in SIXTEEN_BIT_MODES:
        return Image.fromarray(sixteen_bit_to_uint8(np.asarray(image))).convert("RGB")  # grey [h0, w0] repeated
    if image.mode == "F":
        if np.isnan(np.asarray(image)).any():
            raise ImageInputError("mode 'F' image contains NaN pixels")
    has_alpha = "A" in image.getbands() or image.info.get("transparency") is not None
    try:
        if has_alpha:
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(white, rgba).convert("RGB")
        elif image.mode != "RGB":
            image = image.convert("RGB")
    except (ValueError, OSError) as e:
        raise ImageInputError(f"cannot convert a mode {image.mode!r} image to RGB: {e}") from e
    return image


def pil_to_rgb(image):  # PIL.Image -> [3, h0, w0] uint8
    """RGB pixels of a PIL image of any mode, channels first (see `pil_rgb_image`)."""
    return np.ascontiguousarray(np.asarray(pil_rgb_image(image)).transpose(2, 0, 1))


def channels_first(array):  # [h0, w0] | [h0, w0, C] | [C, h0, w0] -> [C, h0, w0]
    """Put channels first, inferring the layout as transformers does (C in 1, 3, 4; first axis wins if ambiguous).

    Mirrors: transformers.image_utils.infer_channel_dimension_format(num_channels=(1, 3, 4)).
    """
    if array.ndim == 2:
        return array[None]
    if array.ndim != 3:
        raise ImageInputError(f"image array must be [H, W], [H, W, C] or [C, H, W], got shape {array.shape}")
    if array.shape[0] in (1, 3, 4):
        return array
    if array.shape[2] in (1, 3, 4):
        return array.transpose(2, 0, 1)
    raise ImageInputError(f"cannot find the channel axis of an image of shape {array.shape}: need 1, 3 or 4 channels")


def composite_rgba_array(rgba, backend):  # [4, h0, w0] -> [3, h0, w0], same dtype
    """Composite an RGBA array onto white with the arithmetic of each transformers back-end.

    Mirrors: image_transforms.convert_to_rgb (numpy, "pil") and TorchvisionBackend.convert_to_rgb.
    """
    if np.issubdtype(rgba.dtype, np.floating):
        if rgba.min() < 0.0 or rgba.max() > 1.0:
            raise ImageInputError(f"float RGBA image must lie in [0, 1], got [{rgba.min()}, {rgba.max()}]")
        if backend == "pil":
            alpha = rgba[3:4] / 1.0
            return (alpha * rgba[:3] + (1 - alpha) * 1.0).astype(rgba.dtype)
        x = rgba.astype(np.float32)  # tvF.to_dtype(float32): a plain cast for floats
        return (x[:3] * x[3:4] + (1 - x[3:4])).astype(rgba.dtype)
    if backend == "pil":
        alpha = rgba[3:4] / 255
        return np.round(alpha * rgba[:3] + (1 - alpha) * 255).astype(rgba.dtype)
    x = rgba.astype(np.float32) * np.float32(1.0 / 255)  # tvF.to_dtype(float32, scale=True)
    x = x[:3] * x[3:4] + (1 - x[3:4])
    return (x * np.float32(255 + 1.0 - 1e-3)).astype(np.uint8)  # to_dtype(uint8, scale=True): truncation


def array_to_rgb(array, backend):  # [h0, w0] | [h0, w0, C] | [C, h0, w0] -> [3, h0, w0] uint8 or float
    """RGB array in channels-first layout from a NumPy (or array-like) image."""
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ImageInputError(f"image array must have an integer or float dtype, got {array.dtype}")
    chw = channels_first(array)
    if chw.shape[1] < 1 or chw.shape[2] < 1:
        raise ImageInputError(f"image has zero size: shape {array.shape}")
    if np.issubdtype(chw.dtype, np.floating) and np.isnan(chw).any():
        raise ImageInputError(f"image array of shape {array.shape} contains NaN values")
    if chw.dtype == np.uint16:
        chw = sixteen_bit_to_uint8(chw)
    elif np.issubdtype(chw.dtype, np.integer) and chw.dtype != np.uint8:
        if chw.min() < 0 or chw.max() > 255:
            raise ImageInputError(f"integer image values must lie in [0, 255], got [{chw.min()}, {chw.max()}]")
        chw = chw.astype(np.uint8)
    if chw.shape[0] == 1:
        chw = np.repeat(chw, 3, axis=0)
    elif chw.shape[0] == 4:
        chw = composite_rgba_array(chw, backend)
    return np.ascontiguousarray(chw)


def to_rgb(image, backend="pil"):  # image -> [3, h0, w0] uint8 (or float for float arrays)
    """Any supported image (path, PIL image, array-like) as an RGB channels-first array."""
    if isinstance(image, (str, os.PathLike)):
        image = open_image_file(image)
    if isinstance(image, Image.Image):
        return pil_to_rgb(image)
    if isinstance(image, np.ndarray) or hasattr(image, "__array__"):
        return array_to_rgb(np.asarray(image), backend)
    raise TypeError(
        f"unsupported image type {type(image).__name__}; expected a file path, PIL.Image.Image or a NumPy array"
    )


def as_image_list(images):
    """A single image or a (possibly nested) list of images as a flat list."""
    if isinstance(images, (list, tuple)):
        flat = [img for item in images for img in as_image_list(item)]
        if not flat:
            raise ImageInputError("got an empty list of images")
        return flat
    if images is None:
        raise TypeError("images must be given (a path, PIL image, array, or a list of them), got None")
    return [images]


# ----------------------------------------------------------------------------------------------------------------
# Resize of float arrays, rescale and normalise


def quantise_float_for_pil(image):  # [C, h0, w0] float -> ([C, h0, w0] uint8, was_rescaled)
    """The uint8 image transformers hands to Pillow for a float array, and whether it multiplied by 255 first.

    Mirrors: transformers image_transforms._rescale_for_pil_conversion + to_pil_image (truncating cast).
    """
    if np.allclose(image, image.astype(int)):
        if image.min() < 0 or image.max() > 255:
            raise ImageInputError(f"float image values must lie in [0, 255] or [0, 1], got [{image.min()}, {image.max()}]")
        return image.astype(np.uint8), False
    if image.min() < 0 or image.max() > 1:
        raise ImageInputError(
            f"non-integral float image values must lie in [0, 1], got [{image.min()}, {image.max()}]"
        )
    return (image.astype(np.float64) * 255).astype(np.float32).astype(np.uint8), True


def resize_any(image, size, resample, backend, pass_order="pillow13"):  # [C, h0, w0] -> [C, h, w]
    """Resize a uint8 image bit-exactly; float images take each back-end's float route.

    "pil": transformers quantises to uint8 (x255 first if the values look like [0, 1]), resizes, divides back.
    "torchvision": resized as floats in the array's dtype (float32 / float64) by ATen's float kernel, bit-exact.
    """
    if image.dtype == np.uint8:
        return resize(image, size, resample, backend, pass_order)
    if backend == "torchvision":
        return resize_float_torchvision(image, size, resample)
    quantised, was_rescaled = quantise_float_for_pil(image)
    resized = resize(quantised, size, resample, backend, pass_order)
    return (resized.astype(np.float64) * (1 / 255)).astype(np.float32) if was_rescaled else resized


def torch_rescale(image, factor):  # [C, h, w] -> [C, h, w] float
    """`tensor * factor` with torch's dtype rules: integers give float32, floats keep their dtype.

    float64 multiplies in float64; everything else in float32 by float32(factor), rounded back to float16 if so.
    Mirrors: TorchvisionBackend.rescale.
    """
    if image.dtype == np.float64:
        return image * factor
    product = image.astype(np.float32) * np.float32(factor)  # [C, h, w]
    return product.astype(image.dtype) if np.issubdtype(image.dtype, np.floating) else product


def rescale_and_normalize(image, cfg, backend):  # [C, h, w] uint8/float -> [C, h, w] float32 (see below)
    """`(x * rescale_factor - mean) / std` in float32 with each back-end's operation order.

    Mirrors: PilBackend.rescale + normalize (float64 rescale, then float32) and TorchvisionBackend
    .rescale_and_normalize (mean and std divided by the rescale factor, one float32 normalise; without
    normalisation the tensor keeps its dtype: `x * factor` or x itself). With both steps off, both back-ends
    return the resized image as it is (uint8 stays uint8).
    """
    mean = np.asarray(cfg["image_mean"], np.float32).reshape(-1, 1, 1)  # [C, 1, 1]
    std = np.asarray(cfg["image_std"], np.float32).reshape(-1, 1, 1)
    do_rescale, do_normalize, factor = cfg["do_rescale"], cfg["do_normalize"], cfg["rescale_factor"]
    if backend == "torchvision":
        x = image.astype(np.float32)
        if do_rescale and do_normalize:
            inv = np.float32(1.0 / factor)
            return (x - mean * inv) / (std * inv)
        if do_normalize:
            return (x - mean) / std
        return torch_rescale(image, factor) if do_rescale else image
    if not (do_rescale or do_normalize):
        return image
    x = image
    if do_rescale:
        x = (x.astype(np.float64) * factor).astype(np.float32)
    if do_normalize:
        x = x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)
        x = (x - mean.astype(x.dtype)) / std.astype(x.dtype)
    return x.astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# NaFlex geometry


def get_image_size_for_max_num_patches(image_height, image_width, patch_size, max_num_patches, eps=1e-5):
    """Largest patch-aligned size of the same aspect ratio with at most `max_num_patches` patches.

    Binary search on the scale in float64; each side rounds up to a multiple of `patch_size`, at least one patch.
    Mirrors: transformers siglip2 get_image_size_for_max_num_patches; big_vision ops_naflex (float32 there).
    """

    def scaled(scale, size):
        return int(max(patch_size, math.ceil(size * scale / patch_size) * patch_size))

    lo, hi = eps / 10, 100.0
    while (hi - lo) >= eps:
        mid = (lo + hi) / 2
        if (scaled(mid, image_height) / patch_size) * (scaled(mid, image_width) / patch_size) <= max_num_patches:
            lo = mid
        else:
            hi = mid
    return scaled(lo, image_height), scaled(lo, image_width)


def patchify(image, patch_size):  # [C, h, w] -> [gh gw, p p C]
    """Cut an image into row-major patches, each flattened in (py, px, c) order.

    Mirrors: transformers siglip2 convert_image_to_patches; big_vision tf.image.extract_patches order.
    """
    C, h, w = image.shape
    gh, gw = h // patch_size, w // patch_size
    x = image.reshape(C, gh, patch_size, gw, patch_size)  # c (gh py) (gw px) -> c gh py gw px
    x = x.transpose(1, 3, 2, 4, 0)  # -> gh gw py px c
    return x.reshape(gh * gw, patch_size * patch_size * C)  # [gh gw, P]


def unpatchify(patches, spatial_shape, patch_size, channels=3):  # [N, P] -> [C, gh p, gw p]
    """Inverse of `patchify` for the first gh*gw rows (padding rows are dropped)."""
    gh, gw = (int(s) for s in spatial_shape)
    x = patches[: gh * gw].reshape(gh, gw, patch_size, patch_size, channels)  # gh gw py px c
    x = x.transpose(4, 0, 2, 1, 3)  # -> c gh py gw px
    return x.reshape(channels, gh * patch_size, gw * patch_size)


def pad_patches(patches, max_num_patches):  # [n, P] -> [N, P], mask [N] int32
    """Zero-pad the patch axis to `max_num_patches`; mask is 1 for real patches. Mirrors: pad_along_first_dim."""
    n = patches.shape[0]
    padded = np.zeros((max_num_patches, patches.shape[1]), patches.dtype)
    padded[:n] = patches
    mask = np.zeros(max_num_patches, np.int32)
    mask[:n] = 1
    return padded, mask


# ----------------------------------------------------------------------------------------------------------------
# One image, every step: what the processors run, and what porting/conventions.py names as stages


def fixres_steps(rgb, cfg, backend, pass_order="pillow13"):  # [3, h0, w0] -> {"rgb", "resized", "normalized" [3, h, w] f32}
    """Resize to the configured size (aspect ratio not kept), rescale, normalise."""
    resized = rgb
    if cfg["do_resize"]:
        resized = resize_any(rgb, (cfg["size"]["height"], cfg["size"]["width"]), cfg["resample"], backend, pass_order)
    return {"rgb": rgb, "resized": resized, "normalized": rescale_and_normalize(resized, cfg, backend)}


def naflex_steps(rgb, cfg, backend, pass_order="pillow13"):  # [3, h0, w0] -> fixres' steps + [N, P], [N], (gh, gw)
    """Resize to the patch budget, rescale, normalise, then "patches" (padded to max_num_patches), "mask", "spatial_shape"."""
    p, n_max = cfg["patch_size"], cfg["max_num_patches"]
    resized = rgb
    if cfg["do_resize"]:
        size = get_image_size_for_max_num_patches(rgb.shape[1], rgb.shape[2], p, n_max)
        resized = resize_any(rgb, size, cfg["resample"], backend, pass_order)
    elif rgb.shape[1] % p or rgb.shape[2] % p or (rgb.shape[1] // p) * (rgb.shape[2] // p) > n_max:
        raise ImageInputError(f"do_resize=False needs a patch-aligned image within {n_max} patches, got {rgb.shape}")
    pixels = rescale_and_normalize(resized, cfg, backend)  # [3, h, w]
    patches, mask = pad_patches(patchify(pixels, p), n_max)  # [N, P], [N]
    spatial_shape = (pixels.shape[1] // p, pixels.shape[2] // p)
    return {"rgb": rgb, "resized": resized, "normalized": pixels, "patches": patches, "mask": mask, "spatial_shape": spatial_shape}


def stack_steps(steps, dtype=None):
    """The model's image inputs from per-image steps: FixRes pixel_values [B, C, h, w]; NaFlex patches, mask, shapes.

    Pixels keep the steps' dtype (uint8 when neither rescaled nor normalised, as transformers) unless `dtype` is given.
    """
    pixels = [s["patches" if "patches" in s else "normalized"] for s in steps]  # B x [C, h, w] | B x [N, P]
    pixels = pixels[0][None] if len(pixels) == 1 else np.stack(pixels)  # [B, C, h, w] | [B, N, P]; one image: a view
    pixels = pixels if dtype is None else pixels.astype(dtype, copy=False)
    if "patches" not in steps[0]:
        return {"pixel_values": pixels}
    return {
        "pixel_values": pixels,
        "pixel_attention_mask": np.stack([s["mask"] for s in steps]),  # [B, N] int32
        "spatial_shapes": np.array([s["spatial_shape"] for s in steps], dtype=np.int64),  # [B, 2]
    }


# ----------------------------------------------------------------------------------------------------------------
# Processors


class ImageProcessor:
    """FixRes or NaFlex image processor with transformers' options and outputs (NumPy arrays).

    Mirrors: SiglipImageProcessor / SiglipImageProcessorPil (FixRes) and Siglip2ImageProcessor /
    Siglip2ImageProcessorPil (NaFlex) of transformers 5.24.
    """

    def __init__(self, variant="naflex", resize_backend="pil", pass_order="pillow13", fast=True, **config):
        if variant not in ("fixres", "naflex"):
            raise ValueError(f"variant must be 'fixres' or 'naflex', got {variant!r}")
        if resize_backend not in RESIZE_BACKENDS:
            raise ValueError(f"resize_backend must be one of {RESIZE_BACKENDS}, got {resize_backend!r}")
        self.variant, self.resize_backend, self.pass_order = variant, resize_backend, pass_order
        self.fast = fast  # False: every image through the readable reference steps below (same numbers)
        self.config = merged_config(variant, config)

    def __repr__(self):
        return f"ImageProcessor(variant={self.variant!r}, resize_backend={self.resize_backend!r}, {self.config})"

    def __getattr__(self, name):  # processor.max_num_patches, processor.size, ... as in transformers
        config = self.__dict__.get("config", {})
        if name in config:
            return config[name]
        raise AttributeError(name)

    def settings(self, overrides):
        """The processor's settings with per-call `overrides` (only keys it knows), checked."""
        unknown = set(overrides) - set(self.config)
        if unknown:
            raise TypeError(f"unexpected image processor option(s) {sorted(unknown)}; known: {sorted(self.config)}")
        return merged_config(self.variant, {**self.config, **overrides})

    def steps(self, image, backend=None, **overrides):
        """Every step of one image by name ("rgb", "resized", "normalized", NaFlex: "patches", "mask", "spatial_shape").

        `backend` ("pil" | "torchvision") overrides the processor's resize back-end for this call.
        """
        backend = backend or self.resize_backend
        steps = fixres_steps if self.variant == "fixres" else naflex_steps
        return steps(to_rgb(image, backend), self.settings(overrides), backend, self.pass_order)

    def __call__(self, images, return_tensors=None, **overrides):
        """Preprocess one image or a list; returns a dict of NumPy arrays with transformers' names."""
        if return_tensors not in (None, "np"):
            raise ValueError(f"return_tensors={return_tensors!r} is not supported; outputs are NumPy arrays")
        cfg = self.settings(overrides)
        table = rescale_and_normalize(fast_path.levels(), cfg, self.resize_backend)[:, 0]  # [3, 256], once per call
        return stack_steps([self.one(img, cfg, table) for img in as_image_list(images)])

    def one(self, image, cfg, table):
        """One image's steps: the fast path (preprocess/fast.py) for uint8 pixels and do_resize, else the reference steps."""
        if isinstance(image, (str, os.PathLike)):
            image = open_image_file(image)
        rgb = pil_rgb_image(image) if isinstance(image, Image.Image) else to_rgb(image, self.resize_backend)
        if self.fast and cfg["do_resize"] and (isinstance(rgb, Image.Image) or rgb.dtype == np.uint8):
            return self.fast_one(rgb, cfg, table)
        rgb = pil_to_rgb(rgb) if isinstance(rgb, Image.Image) else rgb
        steps = fixres_steps if self.variant == "fixres" else naflex_steps
        return steps(rgb, cfg, self.resize_backend, self.pass_order)

    def fast_one(self, rgb, cfg, table):  # PIL.Image RGB | [3, h0, w0] uint8, [3, 256] -> the steps stack_steps reads
        """Resize (Pillow when it agrees), then one gather through the normalised value table (each uint8 level's value)."""
        if self.variant == "fixres":
            size = (cfg["size"]["height"], cfg["size"]["width"])
            chw = fast_path.resize_chw(rgb, size, cfg["resample"], self.resize_backend, self.pass_order)  # [3, h, w]
            return {"normalized": fast_path.gather_image(chw, table)}
        p, n_max = cfg["patch_size"], cfg["max_num_patches"]
        size = get_image_size_for_max_num_patches(*fast_path.image_size(rgb), p, n_max)
        chw = fast_path.resize_chw(rgb, size, cfg["resample"], self.resize_backend, self.pass_order)  # [3, h, w]
        patches, mask = fast_path.gather_patches(chw, table, p, n_max)  # [N, P], [N]
        return {"patches": patches, "mask": mask, "spatial_shape": (size[0] // p, size[1] // p)}

    preprocess = __call__


def FixResImageProcessor(resize_backend="pil", **config):
    """FixRes (SiglipImageProcessor) processor; `config` takes preprocessor_config.json keys."""
    return ImageProcessor("fixres", resize_backend, **config)


def NaFlexImageProcessor(resize_backend="pil", **config):
    """NaFlex (Siglip2ImageProcessor) processor; `config` takes preprocessor_config.json keys."""
    return ImageProcessor("naflex", resize_backend, **config)


def load_image_processor(path, resize_backend="pil", model_type=None, pass_order="pillow13", choices=None):
    """Image processor from a checkpoint folder (or a preprocessor_config.json file).

    For a folder, the class and the file holding its settings (processor_config.json's "image_processor", else
    preprocessor_config.json) are those siglip2_ref.checkpoint.choices decides, as transformers' AutoImageProcessor
    (pass `choices=` when already decided); it raises FolderChoiceError where AutoImageProcessor would, unless
    `model_type` stands in for the missing config.json. For a file, the variant is its image_processor_type, else
    `model_type`.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        if choices is None:
            choices = decide(path)
        if model_type is None or choices.image_processor_file is None:
            choices.require("image_processor")
        file = os.path.join(path, choices.image_processor_file)
        raw = read_preprocessor_config(file)
        if choices.image_processor_file == "processor_config.json":
            raw = json_object(raw.get("image_processor"), f"{file}: image_processor")
        variant = choices.image_variant or detect_variant(raw, model_type)
    else:
        file, raw = path, read_preprocessor_config(path)
        variant = detect_variant(raw, model_type)
    settings = {k: v for k, v in merged_config(variant, raw, source=file).items() if k in raw}
    return ImageProcessor(variant, resize_backend, pass_order, **settings)
