"""Named conventions: how other SigLIP 2 ecosystems preprocess, as explicit switches, and preprocessing as stages.

The defaults are this project's (transformers >= 5.20, Pillow numerics; docs/conventions.md "Decisions"). Each other value
reproduces one ecosystem where its rules are known; docs/conventions.md says what each does, what could not be
executed here, and how much each switch moves pixels, embeddings and logits.

    image_resize     "pil" (default) | "torchvision" | "big_vision"
    text             "hf" (default)  | "big_vision"  | "open_clip"
    position_resize  "antialiased-bilinear" (default) | "bicubic"     (NaFlex only)

`preprocess(processor, images, texts, conventions)` returns every preprocessing stage by name (`text.normalized`,
`text.input_ids`, `image.rgb.{k}`, `image.resized.{k}`, `image.normalized.{k}`, `vision.pixel_values`, ...).

Shapes: docs/shapes.md (I images, T texts, N text positions or patch slots, C channels, h0 x w0 input size,
h x w resized size, p patch side, P patch vector).
"""

import html
import string
import unicodedata
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..preprocess.images import pad_patches, patchify, stack_steps, to_rgb
from ..preprocess.resize import resize_float_torchvision
from ..preprocess.tokenizer import lowercase_per_char

CHOICES = {
    "image_resize": ("pil", "torchvision", "big_vision"),
    "text": ("hf", "big_vision", "open_clip"),
    "position_resize": ("antialiased-bilinear", "bicubic"),
}
TEXT_LENGTH = 64  # every official checkpoint pads and truncates text to 64 ids


@dataclass(frozen=True)
class Conventions:
    """One choice per switch; `Conventions()` is the default (transformers >= 5.20 with Pillow numerics)."""

    image_resize: str = "pil"
    text: str = "hf"
    position_resize: str = "antialiased-bilinear"

    def __post_init__(self):
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"convention {name}={getattr(self, name)!r} is unknown; choose one of {', '.join(allowed)}")

    def changed(self):
        """{switch: value} of the switches that differ from the default."""
        default = Conventions()
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)}

    def as_dict(self):
        return asdict(self)


DEFAULT = Conventions()


def parse_conventions(spec):
    """Conventions from None, a dict, a Conventions, or text like "image_resize=big_vision,text=open_clip"."""
    if spec is None or isinstance(spec, Conventions):
        return spec or DEFAULT
    if isinstance(spec, str):
        pairs = [item.split("=", 1) for item in spec.replace(" ", "").split(",") if item]
        bad = [item for item in pairs if len(item) != 2]
        if bad:
            raise ValueError(f"conventions: expected switch=value pairs separated by commas, got {spec!r}")
        spec = dict(pairs)
    unknown = set(spec) - set(CHOICES)
    if unknown:
        raise ValueError(f"conventions: unknown switch(es) {sorted(unknown)}; known: {', '.join(CHOICES)}")
    return Conventions(**spec)


# ---------------------------------------------------------------- text


ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
NO_PUNCTUATION = str.maketrans("", "", string.punctuation)


def ascii_lowercase(text):
    """A-Z to a-z only. Mirrors: big_vision pp `lower` = tf.strings.lower(encoding="") ("ÉCOLE" -> "École")."""
    return text.translate(ASCII_LOWER)


def ftfy_fix_text(text):
    """ftfy.fix_text when ftfy is installed (as open_clip runs it), else its Unicode NFC step only."""
    try:
        import ftfy
    except ImportError:
        return unicodedata.normalize("NFC", text)
    return ftfy.fix_text(text)


def open_clip_canonicalize(text):
    """open_clip's `clean="canonicalize"` (its SigLIP / SigLIP 2 configs): basic_clean, then canonicalize_text.

    basic_clean: ftfy.fix_text, html.unescape twice, strip. canonicalize_text: "_" -> " ", drop
    string.punctuation, str.lower (whole-string: a final capital sigma becomes "ς"), collapse whitespace, strip.
    Mirrors: open_clip tokenizer.py `_clean_canonicalize` (from big_vision's prompt_engineering.py).
    """
    text = html.unescape(html.unescape(ftfy_fix_text(text))).strip()
    text = text.replace("_", " ").translate(NO_PUNCTUATION).lower()
    return " ".join(text.split()).strip()


def normalize_text(text, convention, lowercase):
    """The string each convention hands to BPE; `lowercase`: whether the hf tokenizer lowercases (NaFlex)."""
    if convention == "hf":
        return lowercase_per_char(text) if lowercase else text
    if convention == "big_vision":
        return ascii_lowercase(text)
    return open_clip_canonicalize(text)


def sentencepiece_ids(tokenizer, text, length=TEXT_LENGTH):
    """big_vision's `tok(model="gemma", bos="no", eos="sticky", length=64)`: SentencePiece alone, EOS kept on
    truncation, right-padded with 0. Literal "<eos>"/"<pad>" in the text are spelled out, not special."""
    ids = tokenizer.sp.encode(text)[: length - 1] + [tokenizer.eos_token_id]
    return ids + [tokenizer.pad_token_id] * (length - len(ids))


def tokenize(tokenizer, texts, convention="hf", length=TEXT_LENGTH):  # -> [T] str, [T, N] int64
    """(normalised strings, input_ids) of `texts` under a text convention."""
    normalized = [normalize_text(t, convention, tokenizer.lowercase) for t in texts]
    if convention == "big_vision":
        ids = [sentencepiece_ids(tokenizer, t, length) for t in normalized]
        return normalized, np.asarray(ids, dtype=np.int64).reshape(len(texts), length)
    source = texts if convention == "hf" else normalized  # open_clip: the HF tokenizer on canonicalised text
    ids = tokenizer(source, padding="max_length", max_length=length, truncation=True, return_tensors="np")["input_ids"]
    return normalized, ids


def encode_strings(texts):  # [T] str -> [T, n] int32
    """Unicode code points of each string, padded with -1 (a string as a tensor, for dumps)."""
    width = max([len(t) for t in texts] + [1])
    out = np.full((len(texts), width), -1, dtype=np.int32)
    for row, t in enumerate(texts):
        out[row, : len(t)] = [ord(c) for c in t]
    return out


def decode_strings(codes):  # [T, n] int32 -> [T] str
    return ["".join(chr(c) for c in row if c >= 0) for row in np.asarray(codes)]


# ---------------------------------------------------------------- images: big_vision


def value_range(image):  # [C, h0, w0] uint8 -> float32 in [-1, 1]
    """big_vision `value_range(-1, 1)`: float32 (x - 0) / (255 - 0) * 2 - 1, in that operation order."""
    x = image.astype(np.float32) / np.float32(255)
    return np.float32(-1) + x * np.float32(2)


def tf_bilinear_axis(in_size, out_size):  # -> lower [out], upper [out], lerp [out] float32
    """Source indices and weights of tf.image.resize(method="bilinear", antialias=False) (half-pixel centres).

    Mirrors: TensorFlow resize_bilinear_op.cc compute_interpolation_weights with HalfPixelScaler, in float32.
    """
    scale = np.float32(in_size) / np.float32(out_size)
    src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(src)
    lower = np.maximum(floor, 0).astype(np.int64)
    upper = np.minimum(np.ceil(src), in_size - 1).astype(np.int64)
    return lower, upper, (src - floor).astype(np.float32)


def tf_resize_bilinear(image, size):  # [C, h0, w0] -> [C, h, w] float32
    """tf.image.resize(bilinear, antialias=False): top + (bottom - top) * y_lerp of two x-lerps, in float32."""
    (h, w), x = size, image.astype(np.float32)
    y0, y1, ly = tf_bilinear_axis(image.shape[1], h)
    x0, x1, lx = tf_bilinear_axis(image.shape[2], w)
    rows0, rows1 = x[:, y0], x[:, y1]  # [C, h, w0]
    top = rows0[:, :, x0] + (rows0[:, :, x1] - rows0[:, :, x0]) * lx
    bottom = rows1[:, :, x0] + (rows1[:, :, x1] - rows1[:, :, x0]) * lx
    return top + (bottom - top) * ly[:, None]


def big_vision_fixres_resize(image, size):  # [C, h0, w0] uint8 -> [C, h, w] uint8
    """big_vision `resize(RES)` on uint8: non-antialiased bilinear, clipped, cast back (truncated) to uint8.

    Mirrors: big_vision pp/ops_image.py get_resize (tf.cast(tf.clip_by_value(resized, 0, 255), uint8)).
    """
    return np.clip(tf_resize_bilinear(image, size), 0, 255).astype(np.uint8)


def image_size_for_sequence_float32(height, width, patch_size, max_patches, eps=1e-5):
    """big_vision's binary search for the NaFlex target size, in TF's float32 (transformers runs it in float64).

    Mirrors: big_vision pp/proj/image_text/ops_naflex.py _get_image_size_for_seq.
    """
    f, hw = np.float32, np.array([height, width], np.float32)

    def target(ratio):
        return np.maximum(f(patch_size) * np.ceil(hw * ratio / f(patch_size)), f(patch_size)).astype(np.int64)

    lo, hi = f(eps / 10.0), f(100.0)
    while (hi - lo) >= f(eps):
        mid = (lo + hi) / f(2)
        if np.prod(target(mid) // patch_size) <= max_patches:
            lo = mid
        else:
            hi = mid
    return tuple(int(s) for s in target(lo))


# ---------------------------------------------------------------- images: one image, every step


def image_steps(image_processor, image, convention="pil", max_num_patches=None):
    """{"rgb", "resized", "normalized"} of one image, then "patches", "mask", "spatial_shape" for NaFlex.

    "pil" / "torchvision" are the processor's own steps (`ImageProcessor.steps` with that resize back-end).
    "big_vision": FixRes = non-antialiased bilinear on uint8, truncated, then value_range; NaFlex = value_range
    first, then an antialiased float32 resize (so "normalized" is at the input size and "resized" is float).
    """
    overrides = {} if max_num_patches is None else {"max_num_patches": max_num_patches}
    if convention != "big_vision":
        return image_processor.steps(image, convention, **overrides)
    cfg = image_processor.settings(overrides)
    rgb = to_rgb(image, "pil")
    if rgb.dtype != np.uint8:
        raise ValueError("the big_vision convention starts from decoded uint8 images; got a float image array")
    if image_processor.variant == "fixres":
        resized = big_vision_fixres_resize(rgb, (cfg["size"]["height"], cfg["size"]["width"]))
        return {"rgb": rgb, "resized": resized, "normalized": value_range(resized)}
    return big_vision_naflex_steps(rgb, cfg["patch_size"], cfg["max_num_patches"])


def big_vision_naflex_steps(rgb, p, n_max):  # [3, h0, w0] uint8 -> the steps of naflex_steps (images.py)
    normalized = value_range(rgb)  # [C, h0, w0] float32
    size = image_size_for_sequence_float32(rgb.shape[1], rgb.shape[2], p, n_max)
    resized = resize_float_torchvision(normalized, size, "bilinear")  # antialiased triangle, float32
    patches, mask = pad_patches(patchify(resized, p), n_max)  # [N, P], [N]
    return {"rgb": rgb, "normalized": normalized, "resized": resized, "patches": patches, "mask": mask,
            "spatial_shape": (resized.shape[1] // p, resized.shape[2] // p)}  # fmt: skip


# ---------------------------------------------------------------- every preprocessing stage


def preprocess(processor, images=None, texts=None, conventions=DEFAULT, max_num_patches=None):
    """(stages, model inputs): every named preprocessing stage, and the arrays to feed the model."""
    conventions = parse_conventions(conventions)
    stages, inputs = {}, {}
    if texts is not None:
        if processor.tokenizer is None:
            raise ValueError("texts given, but this checkpoint has no tokenizer (tokenizer.model)")
        normalized, ids = tokenize(processor.tokenizer, list(texts), conventions.text)
        stages |= {"text.normalized": encode_strings(normalized), "text.input_ids": ids}
        inputs["input_ids"] = ids
    if images is not None:
        image_processor = processor.require_image_processor()
        steps = [image_steps(image_processor, img, conventions.image_resize, max_num_patches) for img in images]
        for k, step in enumerate(steps):
            stages |= {f"image.{name}.{k}": step[name] for name in ("rgb", "resized", "normalized")}
        image_inputs = stack_steps(steps, np.float32)  # what the model takes
        stages |= {f"vision.{name}": value for name, value in image_inputs.items()}
        inputs |= image_inputs
    return stages, inputs
