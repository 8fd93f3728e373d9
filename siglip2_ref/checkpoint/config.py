"""Configuration: `config.json` read into frozen dataclasses with transformers' field names.

Missing fields take the defaults of transformers' `SiglipTextConfig`, `SiglipVisionConfig`,
`Siglip2VisionConfig` (transformers 5.24 `configuration_siglip.py`, `configuration_siglip2.py`). Unknown keys are ignored (official files carry many:
`torch_dtype`, `architectures`, token ids...). Inconsistent values fail here, naming the field,
before any weight is read.
"""

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from .jsonfile import json_kind, read_json_object
from ..errors import ConfigError

# model_type -> (variant, which towers the checkpoint holds)
MODEL_TYPES = {
    "siglip": ("fixres", "both"),
    "siglip2": ("naflex", "both"),
    "siglip_vision_model": ("fixres", "vision"),
    "siglip2_vision_model": ("naflex", "vision"),
    "siglip_text_model": ("fixres", "text"),
    "siglip2_text_model": ("naflex", "text"),
}
GELU_TANH_NAMES = ("gelu_pytorch_tanh", "gelu_new", "gelu_fast")  # transformers' names for the tanh approximation
ACTIVATIONS = (*GELU_TANH_NAMES, "gelu", "quick_gelu", "relu")  # every hidden_act this package computes


def json_object(value, where):
    """`value` if it is a JSON object (a missing or null sub-config reads as {}, as transformers)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a JSON object of settings, got {json_kind(value)}")
    return value


@dataclass(frozen=True)
class TextConfig:
    vocab_size: int = 32000
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    max_position_embeddings: int = 64
    hidden_act: str = "gelu_pytorch_tanh"
    layer_norm_eps: float = 1e-6
    projection_size: int | None = None  # None -> hidden_size (as transformers' __post_init__)

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    @property
    def output_size(self):
        return self.projection_size or self.hidden_size


@dataclass(frozen=True)
class VisionConfig:
    variant: str = "fixres"  # "fixres" (Conv2d stem, image_size) or "naflex" (Linear stem, num_patches)
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    num_channels: int = 3
    image_size: int = 224  # FixRes only
    patch_size: int = 16
    num_patches: int = 256  # NaFlex only: the learned position grid is sqrt(num_patches) squared
    hidden_act: str = "gelu_pytorch_tanh"
    layer_norm_eps: float = 1e-6
    vision_use_head: bool = True

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    @property
    def grid_size(self):
        """Side G of the learned position grid (FixRes: image_size // patch_size)."""
        if self.variant == "naflex":
            return int(round(self.num_patches**0.5))
        return self.image_size // self.patch_size


@dataclass(frozen=True)
class Config:
    model_type: str
    variant: str  # "fixres" | "naflex"
    towers: str  # "both" | "vision" | "text"
    text: TextConfig | None
    vision: VisionConfig | None
    architecture: str = ""  # e.g. "SiglipModel", "Siglip2ForImageClassification"
    num_labels: int = 0  # image-classification checkpoints only
    id2label: dict = field(default_factory=dict)

    @property
    def is_classifier(self):
        return self.architecture.endswith("ForImageClassification")


def _typed_fields(cls, raw, where):
    """Pick the dataclass fields of `cls` out of a config dict, checking their types."""
    values = {}
    for f in fields(cls):
        if f.name not in raw or f.name == "variant":
            continue
        v = raw[f.name]
        if f.name == "patch_size" and isinstance(v, (list, tuple)):
            if len(v) != 2 or v[0] != v[1]:
                raise ConfigError(f"{where}.patch_size: only square patches are supported, got {v}")
            v = v[0]
        if f.name == "projection_size" and v is None:
            continue
        if f.name in ("image_size",) and isinstance(v, (list, tuple)):
            if len(v) != 2 or v[0] != v[1]:
                raise ConfigError(f"{where}.image_size: FixRes checkpoints are square, got {v}")
            v = v[0]
        expected = {int: int, float: (int, float), bool: bool, str: str}.get(type(f.default), int)
        if isinstance(v, bool) and expected is not bool or not isinstance(v, expected):
            raise ConfigError(f"{where}.{f.name}: expected {getattr(expected, '__name__', 'a number')}, got {v!r}")
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{where}.{f.name}: expected a finite number, got {v}")
        values[f.name] = v
    return values


def _check_tower(cfg, where):
    """Consistency checks shared by both towers; the error names the offending field."""
    for name in ("hidden_size", "intermediate_size", "num_attention_heads"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{where}.{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.num_hidden_layers < 0:
        raise ConfigError(f"{where}.num_hidden_layers must be >= 0, got {cfg.num_hidden_layers}")
    if cfg.hidden_size % cfg.num_attention_heads:
        raise ConfigError(
            f"{where}.hidden_size ({cfg.hidden_size}) must be divisible by "
            f"{where}.num_attention_heads ({cfg.num_attention_heads})"
        )
    if cfg.hidden_act not in ACTIVATIONS:
        raise ConfigError(f"{where}.hidden_act {cfg.hidden_act!r} is not supported; expected one of {ACTIVATIONS}")
    if not 0 < cfg.layer_norm_eps < 1:
        raise ConfigError(
            f"{where}.layer_norm_eps must be a small positive number (0 < eps < 1; official checkpoints use 1e-6), "
            f"got {cfg.layer_norm_eps}"
        )


def text_config(raw, where="text_config"):
    cfg = TextConfig(**_typed_fields(TextConfig, raw, where))
    _check_tower(cfg, where)
    for name in ("vocab_size", "max_position_embeddings"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{where}.{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.projection_size is not None and cfg.projection_size < 1:
        raise ConfigError(f"{where}.projection_size must be >= 1, got {cfg.projection_size}")
    return cfg


def vision_config(raw, variant, where="vision_config"):
    cfg = VisionConfig(variant=variant, **_typed_fields(VisionConfig, raw, where))
    _check_tower(cfg, where)
    if cfg.patch_size < 1 or cfg.num_channels < 1:
        raise ConfigError(f"{where}: patch_size and num_channels must be >= 1, got {cfg.patch_size}, {cfg.num_channels}")
    if variant == "naflex" and (cfg.num_patches < 1 or cfg.grid_size**2 != cfg.num_patches):
        raise ConfigError(f"{where}.num_patches must be a perfect square (a G x G position grid), got {cfg.num_patches}")
    if variant == "fixres" and cfg.image_size < cfg.patch_size:
        raise ConfigError(f"{where}.image_size ({cfg.image_size}) must be >= patch_size ({cfg.patch_size})")
    return cfg


def parse_config(raw, source="config.json"):
    """A `Config` from the parsed JSON of a checkpoint's config.json; errors start with `source`."""
    try:
        return _parse_config(raw)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def _parse_config(raw):
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a JSON object, got {type(raw).__name__}")
    model_type = raw.get("model_type")
    if not isinstance(model_type, str) or model_type not in MODEL_TYPES:
        raise ConfigError(
            f"model_type {model_type!r} is not a SigLIP / SigLIP 2 type; expected one of {sorted(MODEL_TYPES)}"
        )
    variant, towers = MODEL_TYPES[model_type]
    architecture = first_architecture(raw.get("architectures"))
    sub = lambda key: json_object(raw.get(key), key)  # noqa: E731 (missing sub-config -> all defaults, as transformers)
    text = vision = None
    if towers == "text":
        text = text_config(raw, "config")
    elif towers == "vision":
        vision = vision_config(raw, variant, "config")
    else:
        vision = vision_config(sub("vision_config"), variant)
        if not architecture.endswith("ForImageClassification"):
            text = text_config(sub("text_config"))
    if text is not None and vision is not None and text.output_size != vision.hidden_size:
        raise ConfigError(
            f"text_config.projection_size ({text.output_size}) must equal vision_config.hidden_size "
            f"({vision.hidden_size}): image and text embeddings are compared by a dot product"
        )
    id2label = labels_by_id(raw.get("id2label"))
    num_labels = raw.get("num_labels", len(id2label)) if architecture.endswith("ForImageClassification") else 0
    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 0:
        raise ConfigError(f"num_labels: expected a non-negative integer, got {json_kind(num_labels)}")
    return Config(model_type, variant, towers, text, vision, architecture, num_labels, id2label)


def first_architecture(architectures):
    """The model class config.json names (`architectures: ["SiglipModel"]`); "" when absent or empty."""
    if architectures is None:
        return ""
    if not isinstance(architectures, list) or not all(isinstance(a, str) for a in architectures):
        raise ConfigError(f"architectures: expected a list of class names, got {json_kind(architectures)}")
    return architectures[0] if architectures else ""


def labels_by_id(id2label):
    """{class index: label} from config.json's `id2label` ({"0": "cat", ...}); {} when absent."""
    table = json_object(id2label, "id2label")
    try:
        labels = {int(k): v for k, v in table.items()}
    except ValueError:
        raise ConfigError(f"id2label: expected integer keys (\"0\", \"1\", ...), got {sorted(table)[:5]}") from None
    bad = [k for k, v in labels.items() if not isinstance(v, str)]
    if bad:
        raise ConfigError(f"id2label[{bad[0]}]: expected a label string, got {json_kind(labels[bad[0]])}")
    return labels


def load_config(folder):
    """Read and check `folder/config.json`."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{path}: not found; a checkpoint folder needs config.json")
    return parse_config(read_json_object(path, ConfigError), str(path))
