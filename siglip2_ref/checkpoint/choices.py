"""The one place that decides, from a checkpoint folder's JSON files, which classes transformers 5.24 would build.

`decide(folder)` reads config.json, tokenizer_config.json, preprocessor_config.json and processor_config.json
(each only if present) once and returns `FolderChoices`: the tokenizer class of `AutoTokenizer` (and so whether
text is lowercased), the image processor class of `AutoImageProcessor` (and which file holds its settings), the
`AutoModel` class and the variant. `sources` says which file and key decided each. The table of every file
combination is docs/checkpoint_folder.md; golden/choices.json is transformers' own answer for each row.

Where transformers would raise for a component, `errors` holds a message naming the files, and asking for that
component (`require`) raises `FolderChoiceError`; the other components of the folder stay usable (a folder with
only preprocessor_config.json still gives an image processor, as in transformers).

Mirrors (transformers 5.24, sentencepiece not installed, as here):
  AutoTokenizer.from_pretrained: a `tokenizer_class` (tokenizer_config.json, else config.json) loses to the class
    registered for config.json's model_type only for model types in MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS
    ("siglip2": GemmaTokenizer on the hub -> Siglip2Tokenizer); otherwise it wins; without one, the model_type's
    registered class (siglip2 -> Siglip2Tokenizer; siglip -> SiglipTokenizer, a SentencePiece class this package
    does not implement), and with no config.json at all TokenizersBackend.
  AutoImageProcessor.from_pretrained: processor_config.json's nested "image_processor" dict, else
    preprocessor_config.json; its image_processor_type (or feature_extractor_type), else config.json's model_type.
  AutoModel: MODEL_MAPPING_NAMES[config.json's model_type].
"""

import os
from dataclasses import dataclass, field

from .config import MODEL_TYPES
from .jsonfile import json_kind, read_json_object
from ..errors import FolderChoiceError

LOWERCASING_TOKENIZERS = ("Siglip2Tokenizer",)  # Siglip2Tokenizer = Gemma tokenizer + a Lowercase normalizer
TOKENIZER_CLASSES = ("GemmaTokenizer", "Siglip2Tokenizer", "TokenizersBackend")  # the classes our Tokenizer mirrors
TOKENIZER_FOR_MODEL_TYPE = {"siglip2": "Siglip2Tokenizer", "siglip": "SiglipTokenizer"}  # TOKENIZER_MAPPING_NAMES
HUB_TOKENIZER_CLASS_OVERRIDDEN = ("siglip2",)  # in MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS
IMAGE_PROCESSOR_FOR_MODEL_TYPE = {"siglip": "SiglipImageProcessor", "siglip2": "Siglip2ImageProcessor"}
IMAGE_PROCESSOR_VARIANT = {"SiglipImageProcessor": "fixres", "Siglip2ImageProcessor": "naflex"}
MODEL_CLASS_FOR_MODEL_TYPE = {  # MODEL_MAPPING_NAMES; the text-only types have no AutoModel entry
    "siglip": "SiglipModel", "siglip2": "Siglip2Model",
    "siglip_vision_model": "SiglipVisionModel", "siglip2_vision_model": "Siglip2VisionModel",
}
FILES = ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json")
CLASS_NAME_KEYS = ("model_type", "tokenizer_class", "image_processor_type", "feature_extractor_type", "processor_class")


@dataclass(frozen=True)
class FolderChoices:
    folder: str
    variant: str | None  # "naflex" | "fixres": config.json's model_type, else the image processor's; None: neither
    tokenizer_class: str | None  # "Siglip2Tokenizer" | "GemmaTokenizer" | "TokenizersBackend" | None (see errors)
    lowercase: bool  # the tokenizer lowercases text (Siglip2Tokenizer only)
    image_processor_class: str | None  # "Siglip2ImageProcessor" | "SiglipImageProcessor" | None (see errors)
    image_processor_file: str | None  # the file holding its settings: processor_config.json / preprocessor_config.json
    model_type: str | None  # config.json's model_type; None without config.json
    model_class: str | None  # AutoModel's class; None without config.json or for a text-only model type
    sources: dict = field(default_factory=dict)  # choice -> "file: key" that decided it
    errors: dict = field(default_factory=dict)  # "tokenizer" / "image_processor" / "model" -> why transformers raises

    @property
    def image_variant(self):
        """"naflex" / "fixres" for the image processor (may differ from the model's when the files disagree)."""
        return IMAGE_PROCESSOR_VARIANT.get(self.image_processor_class)

    @property
    def has_tokenizer(self):
        return self.tokenizer_class is not None

    @property
    def has_image_processor(self):
        return self.image_processor_class is not None

    def require(self, component):
        """Raise FolderChoiceError if transformers could not build `component` from this folder."""
        if component in self.errors:
            raise FolderChoiceError(self.errors[component])
        return self


def _read(folder, name):
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        return None
    data = read_json_object(path, FolderChoiceError)
    _check_class_names(data, path)
    nested = data.get("image_processor")
    if name == "processor_config.json" and nested is not None:
        if not isinstance(nested, dict):
            raise FolderChoiceError(f"{path}: image_processor: expected a JSON object of settings, got {json_kind(nested)}")
        _check_class_names(nested, f"{path}: image_processor")
    return data


def _check_class_names(data, where):
    """The keys that pick classes hold a name (a string) or null; anything else is refused, not guessed."""
    for key in CLASS_NAME_KEYS:
        if data.get(key) is not None and not isinstance(data[key], str):
            raise FolderChoiceError(f"{where}: {key}: expected a class or type name (a string), got {json_kind(data[key])}")


def _base_class(name, suffixes):
    for suffix in suffixes:
        if name.endswith(suffix) and name != suffix:
            return name[: -len(suffix)]
    return name


def _tokenizer(folder, config, tok_config, sources, errors):
    has_files = any(os.path.isfile(os.path.join(folder, f)) for f in ("tokenizer.model", "tokenizer.json"))
    if not has_files:
        errors["tokenizer"] = f"{folder}: no tokenizer.model or tokenizer.json, so no tokenizer"
        return None
    model_type = (config or {}).get("model_type")
    hub, hub_source = None, None
    if (tok_config or {}).get("tokenizer_class"):
        hub, hub_source = tok_config["tokenizer_class"], "tokenizer_config.json: tokenizer_class"
    elif (config or {}).get("tokenizer_class"):
        hub, hub_source = config["tokenizer_class"], "config.json: tokenizer_class"
    if hub is not None:
        hub = _base_class(hub, ("Fast",))
        if model_type in HUB_TOKENIZER_CLASS_OVERRIDDEN and hub != TOKENIZER_FOR_MODEL_TYPE[model_type]:
            name = TOKENIZER_FOR_MODEL_TYPE[model_type]
            sources["tokenizer_class"] = f"config.json: model_type {model_type!r} (overrides {hub_source} {hub!r})"
        else:
            name = hub
            sources["tokenizer_class"] = hub_source
    elif config is None:
        name = "TokenizersBackend"
        sources["tokenizer_class"] = "no config.json and no tokenizer_class: tokenizer.json as it is"
    elif model_type in TOKENIZER_FOR_MODEL_TYPE:
        name = TOKENIZER_FOR_MODEL_TYPE[model_type]
        sources["tokenizer_class"] = f"config.json: model_type {model_type!r}"
    else:
        name = "TokenizersBackend"
        sources["tokenizer_class"] = f"config.json: model_type {model_type!r} has no tokenizer class"
    if name not in TOKENIZER_CLASSES:
        errors["tokenizer"] = (
            f"{folder}: {sources.pop('tokenizer_class')} selects {name!r}; only {', '.join(TOKENIZER_CLASSES)} are "
            "implemented (set tokenizer_class in tokenizer_config.json to GemmaTokenizer or Siglip2Tokenizer)"
        )
        return None
    return name


def _image_processor(folder, config, pre, processor, sources, errors):
    nested = (processor or {}).get("image_processor")
    if isinstance(nested, dict):
        settings, file = nested, "processor_config.json"
        key = "processor_config.json: image_processor.image_processor_type"
    elif pre is not None:
        settings, file = pre, "preprocessor_config.json"
        key = "preprocessor_config.json: image_processor_type"
    else:
        errors["image_processor"] = f"{folder}: neither preprocessor_config.json nor processor_config.json's image_processor"
        return None, None
    kind = settings.get("image_processor_type")
    if kind is None and settings.get("feature_extractor_type"):
        kind = settings["feature_extractor_type"].replace("FeatureExtractor", "ImageProcessor")
        key = key.replace("image_processor_type", "feature_extractor_type")
    if kind is None and config is not None and config.get("image_processor_type"):
        kind, key = config["image_processor_type"], "config.json: image_processor_type"
    if kind is None:
        model_type = (config or {}).get("model_type")
        if model_type not in IMAGE_PROCESSOR_FOR_MODEL_TYPE:
            why = "there is no config.json" if config is None else f"config.json's model_type {model_type!r} has none"
            errors["image_processor"] = (
                f"{folder}: {file} has no image_processor_type and {why}; transformers' AutoImageProcessor raises "
                "(add \"image_processor_type\": \"SiglipImageProcessor\" or \"Siglip2ImageProcessor\")"
            )
            return None, file
        kind, key = IMAGE_PROCESSOR_FOR_MODEL_TYPE[model_type], f"config.json: model_type {model_type!r}"
    name = _base_class(kind, ("Fast", "Pil"))
    if name not in IMAGE_PROCESSOR_VARIANT:
        errors["image_processor"] = (
            f"{folder}: {key} is {kind!r}; only SiglipImageProcessor and Siglip2ImageProcessor are implemented"
        )
        return None, file
    sources["image_processor_class"] = key
    return name, file


def decide(folder):
    """`FolderChoices` for a local checkpoint folder (see the module docstring and docs/checkpoint_folder.md)."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: not a folder")
    config, tok_config, pre, processor = (_read(folder, name) for name in FILES)
    sources, errors = {}, {}
    tokenizer_class = _tokenizer(folder, config, tok_config, sources, errors)
    lowercase = tokenizer_class in LOWERCASING_TOKENIZERS
    if tokenizer_class is not None:
        sources["lowercase"] = f"tokenizer class {tokenizer_class}"
    image_processor_class, image_file = _image_processor(folder, config, pre, processor, sources, errors)
    model_type = model_class = variant = None
    if config is None:
        errors["model"] = f"{folder}: no config.json, so no model (AutoConfig / AutoModel raise)"
    else:
        model_type = config.get("model_type")
        if model_type not in MODEL_TYPES:
            errors["model"] = (
                f"{folder}/config.json: model_type {model_type!r} is not a SigLIP / SigLIP 2 type; "
                f"expected one of {sorted(MODEL_TYPES)}"
            )
        else:
            variant = MODEL_TYPES[model_type][0]
            sources["variant"] = sources["model_class"] = "config.json: model_type"
            model_class = MODEL_CLASS_FOR_MODEL_TYPE.get(model_type)
    if variant is None and image_processor_class is not None:
        variant = IMAGE_PROCESSOR_VARIANT[image_processor_class]
        sources["variant"] = sources["image_processor_class"]
    return FolderChoices(folder, variant, tokenizer_class, lowercase, image_processor_class, image_file,
                         model_type, model_class, sources, errors)
