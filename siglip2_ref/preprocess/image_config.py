"""The image processor's settings: class defaults, preprocessor_config.json, and the checks on every value.

Every setting is checked before any image is touched; a bad one gets one `ImageConfigError` naming the file (when
the value came from one), the key, and what was expected. Two limits keep memory bounded whatever a file says
(docs/bad_input.md "Memory limits"):

- `MAX_RESIZED_PIXELS`: a resized image holds at most 2^24 pixels (4096 x 4096; 192 MiB as float32 RGB). FixRes
  `size` and NaFlex `max_num_patches * patch_size^2` must fit.
- `MAX_NUM_PATCHES`: at most 4096 NaFlex patch slots per image. The readable attention holds one image's scores as
  [H, N, N] float32: 64 MiB per head at N = 4096 (official checkpoints use 256 to 1024).
"""

import math
import os

from ..checkpoint.jsonfile import json_kind, read_json_object
from .resize import RESAMPLE_NAMES
from ..errors import ImageConfigError, ImageConfigTypeError

FIXRES_DEFAULTS = {  # SiglipImageProcessor class defaults (Hub configs override resample with 2 = bilinear)
    "do_resize": True, "size": {"height": 224, "width": 224}, "resample": 3, "do_rescale": True,
    "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
}  # fmt: skip
NAFLEX_DEFAULTS = {  # Siglip2ImageProcessor class defaults (= the Hub configs)
    "do_resize": True, "resample": 2, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "patch_size": 16, "max_num_patches": 256,
}  # fmt: skip
FLAGS = ("do_resize", "do_rescale", "do_normalize")
MAX_RESIZED_PIXELS = 1 << 24
MAX_NUM_PATCHES = 4096


def defaults(variant):
    return NAFLEX_DEFAULTS if variant == "naflex" else FIXRES_DEFAULTS


def read_preprocessor_config(path):
    """The dict in `preprocessor_config.json` (path to the file or to the checkpoint folder)."""
    path = os.fspath(path)
    file = os.path.join(path, "preprocessor_config.json") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise FileNotFoundError(f"{file}: preprocessor_config.json not found")
    return read_json_object(file, ImageConfigError, "image processor settings")


def detect_variant(preprocessor_config, model_type=None):
    """"fixres" or "naflex" from `image_processor_type` (or, failing that, config.json's model_type / keys)."""
    kind = str(preprocessor_config.get("image_processor_type") or "")
    if kind.startswith("Siglip2"):
        return "naflex"
    if kind.startswith("Siglip"):
        return "fixres"
    if model_type is not None:
        return "naflex" if str(model_type).startswith("siglip2") else "fixres"
    return "naflex" if "max_num_patches" in preprocessor_config else "fixres"


def merged_config(variant, overrides, source=None):
    """Class defaults of the variant updated with the non-null entries of a preprocessor config, all checked.

    `source` (a file name) starts every error message, for settings read from a file.
    """
    cfg = dict(defaults(variant))
    cfg.update({k: v for k, v in overrides.items() if v is not None and k in cfg})
    try:
        validate_config(cfg, variant)
    except ImageConfigError as e:
        if source is None:
            raise
        raise type(e)(f"{source}: {e}") from None
    return cfg


def validate_config(cfg, variant):
    """Specific errors for settings the processors cannot honour."""
    for key in FLAGS:
        if not isinstance(cfg[key], bool):
            raise ImageConfigTypeError(f"{key}: expected true or false, got {json_kind(cfg[key])}")
    if isinstance(cfg["resample"], bool) or cfg["resample"] not in RESAMPLE_NAMES:
        raise ImageConfigError(f"resample={cfg['resample']!r} is not supported; use 2 (bilinear) or 3 (bicubic)")
    check_positive_number("rescale_factor", cfg["rescale_factor"])
    for key in ("image_mean", "image_std"):
        check_channel_values(key, cfg[key], positive=key == "image_std")
    if variant == "fixres":
        check_fixres_size(cfg["size"])
    else:
        check_positive_int("patch_size", cfg["patch_size"])
        check_positive_int("max_num_patches", cfg["max_num_patches"], MAX_NUM_PATCHES)
        check_pixels("max_num_patches * patch_size^2", cfg["max_num_patches"] * cfg["patch_size"] ** 2)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) or hasattr(value, "dtype")


def check_positive_int(name, value, limit=None):
    if isinstance(value, bool) or not isinstance(value, int) and not (hasattr(value, "dtype") and value.dtype.kind in "iu"):
        raise ImageConfigTypeError(f"{name} must be an int, got {json_kind(value)}")
    if value < 1:
        raise ImageConfigError(f"{name} must be at least 1, got {value}")
    if limit is not None and value > limit:
        raise ImageConfigError(f"{name} is {value}, over the limit of {limit} (bounded memory; docs/bad_input.md)")


def check_positive_number(name, value):
    if not is_number(value):
        raise ImageConfigTypeError(f"{name}: expected a number, got {json_kind(value)}")
    if not (math.isfinite(value) and value > 0):
        raise ImageConfigError(f"{name}: expected a finite number > 0, got {value}")


def check_channel_values(name, value, positive):
    """image_mean / image_std: one number, or one per RGB channel, all finite (std also > 0)."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(values) not in (1, 3) or not all(is_number(v) for v in values):
        raise ImageConfigTypeError(f"{name} must have 1 or 3 values (numbers), got {json_kind(value)}")
    if not all(math.isfinite(v) for v in values) or positive and not all(v > 0 for v in values):
        expected = "finite numbers > 0 (it divides)" if positive else "finite numbers"
        raise ImageConfigError(f"{name}: expected {expected}, got {value!r}")


def check_fixres_size(size):
    if not isinstance(size, dict) or not {"height", "width"} <= set(size):
        raise ImageConfigTypeError(f"FixRes size must be {{'height': H, 'width': W}}, got {json_kind(size)}")
    check_positive_int("size.height", size["height"])
    check_positive_int("size.width", size["width"])
    check_pixels("size.height * size.width", size["height"] * size["width"])


def check_pixels(name, pixels):
    if pixels > MAX_RESIZED_PIXELS:
        raise ImageConfigError(
            f"{name} asks for {pixels} pixels per resized image, over the limit of {MAX_RESIZED_PIXELS} "
            "(4096 x 4096; bounded memory, docs/bad_input.md)"
        )
