"""The checkpoint-folder rows of docs/checkpoint_folder.md: which JSON files a folder holds and what they say.

Each row starts from a demo checkpoint (siglip2_ref/demo/naflex or fixres), copies its tokenizer and
preprocessing files (and config.json where the row keeps it; never the weights) and edits the JSON files.
`build_folder` is shared by golden/make_golden_choices.py (runs transformers), tests/test_choices.py (compares with
golden/choices.json) and tests/oracle/test_live_choices.py (compares with transformers live).
"""

import json
import shutil
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "siglip2_ref" / "demo"
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
TEST_TEXT = "A Photo of TWO Cats"  # lowercased or not, the ids differ (the probe of `lowercase`)
KEEP = "keep"  # a key left as the demo file has it
DROP = "drop"  # a key (or file) removed

# name -> (demo folder, config.json model_type, tokenizer_class, image_processor_type, processor_config.json, tokenizer)
#   model_type: KEEP / DROP (no config.json) / a model_type string
#   tokenizer_class, image_processor_type: KEEP / DROP / a class name
#   processor_config: None (no file) or the image_processor_type its nested "image_processor" dict carries
#     (DROP: nested dict without the key)
#   tokenizer: False -> no tokenizer files at all (a folder with only preprocessor_config.json)
#   an optional 7th entry False -> no preprocessor_config.json (processor_config.json alone carries the settings)
ROWS = {
    "naflex": ("naflex", KEEP, KEEP, KEEP, None, True),
    "naflex_no_config": ("naflex", DROP, KEEP, KEEP, None, True),
    "fixres": ("fixres", KEEP, KEEP, KEEP, None, True),
    "fixres_no_config": ("fixres", DROP, KEEP, KEEP, None, True),
    "naflex_no_tokenizer_class": ("naflex", KEEP, DROP, KEEP, None, True),
    "naflex_no_tokenizer_class_no_config": ("naflex", DROP, DROP, KEEP, None, True),
    "fixres_no_tokenizer_class": ("fixres", KEEP, DROP, KEEP, None, True),
    "fixres_no_tokenizer_class_no_config": ("fixres", DROP, DROP, KEEP, None, True),
    "naflex_siglip2_tokenizer": ("naflex", KEEP, "Siglip2Tokenizer", KEEP, None, True),
    "naflex_siglip2_tokenizer_no_config": ("naflex", DROP, "Siglip2Tokenizer", KEEP, None, True),
    "fixres_siglip2_tokenizer": ("fixres", KEEP, "Siglip2Tokenizer", KEEP, None, True),
    "fixres_siglip2_tokenizer_no_config": ("fixres", DROP, "Siglip2Tokenizer", KEEP, None, True),
    "naflex_no_image_processor_type": ("naflex", KEEP, KEEP, DROP, None, True),
    "naflex_no_image_processor_type_no_config": ("naflex", DROP, KEEP, DROP, None, True),
    "fixres_no_image_processor_type": ("fixres", KEEP, KEEP, DROP, None, True),
    "fixres_no_image_processor_type_no_config": ("fixres", DROP, KEEP, DROP, None, True),
    "naflex_config_fixres_image_processor": ("naflex", KEEP, KEEP, "SiglipImageProcessor", None, True),
    "fixres_config_naflex_image_processor": ("fixres", KEEP, KEEP, "Siglip2ImageProcessor", None, True),
    "naflex_config_fixres_image_processor_no_config": ("naflex", DROP, KEEP, "SiglipImageProcessor", None, True),
    "fixres_config_naflex_image_processor_no_config": ("fixres", DROP, KEEP, "Siglip2ImageProcessor", None, True),
    "naflex_processor_config": ("naflex", KEEP, KEEP, "SiglipImageProcessor", "Siglip2ImageProcessor", True),
    "naflex_processor_config_no_config": ("naflex", DROP, KEEP, "SiglipImageProcessor", "Siglip2ImageProcessor", True),
    "fixres_processor_config_untyped": ("fixres", KEEP, KEEP, "Siglip2ImageProcessor", DROP, True),
    "fixres_processor_config_untyped_no_config": ("fixres", DROP, KEEP, "Siglip2ImageProcessor", DROP, True),
    "naflex_vision_model": ("naflex", "siglip2_vision_model", KEEP, KEEP, None, True),
    "fixres_text_model": ("fixres", "siglip_text_model", KEEP, KEEP, None, True),
    "naflex_only_preprocessor_no_config": ("naflex", DROP, KEEP, KEEP, None, False),
    "fixres_only_preprocessor_no_config": ("fixres", DROP, KEEP, KEEP, None, False),
    "naflex_vision_model_no_tokenizer_class": ("naflex", "siglip2_vision_model", DROP, KEEP, None, True),
    "naflex_only_processor_config": ("naflex", KEEP, KEEP, KEEP, "Siglip2ImageProcessor", True, False),
    "naflex_only_processor_config_no_config": ("naflex", DROP, KEEP, KEEP, "Siglip2ImageProcessor", True, False),
    "naflex_no_tokenizer_files_no_preprocessor_no_config": ("naflex", DROP, KEEP, KEEP, None, False, False),
}


def _edit(path, key, value):
    data = json.loads(path.read_text(encoding="utf-8"))
    if value == DROP:
        data.pop(key, None)
    elif value != KEEP:
        data[key] = value
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return data


def build_folder(name, dest):
    """Write row `name`'s folder at `dest` (created) and return it as a Path."""
    demo, model_type, tokenizer_class, image_processor_type, processor_config, tokenizer, *rest = ROWS[name]
    preprocessor = rest[0] if rest else True
    src, dest = DEMO / demo, Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for file in (*TOKENIZER_FILES, "preprocessor_config.json", "config.json"):
        if file in TOKENIZER_FILES and not tokenizer or file == "config.json" and model_type == DROP:
            continue
        shutil.copyfile(src / file, dest / file)
    if model_type != DROP:
        _edit(dest / "config.json", "model_type", model_type)
    if tokenizer:
        _edit(dest / "tokenizer_config.json", "tokenizer_class", tokenizer_class)
    pre = _edit(dest / "preprocessor_config.json", "image_processor_type", image_processor_type)
    if processor_config is not None:
        nested = {k: v for k, v in pre.items() if k != "image_processor_type"}
        if processor_config != DROP:
            nested["image_processor_type"] = processor_config
        processor = {"image_processor": nested, "processor_class": pre.get("processor_class", "SiglipProcessor")}
        (dest / "processor_config.json").write_text(json.dumps(processor, indent=2), encoding="utf-8")
    if not preprocessor:
        (dest / "preprocessor_config.json").unlink()
    return dest


def as_row(choices):
    """`FolderChoices` in golden/choices.json's terms (what `make_golden_choices.expected_row` records)."""
    return {
        "tokenizer_class": choices.tokenizer_class,
        "lowercase": choices.lowercase,
        "image_processor_class": choices.image_processor_class,
        "model_type": choices.model_type,
        "model_class": choices.model_class,
        "raises": sorted(choices.errors),
    }


def comparable(expected):
    """A golden row reduced to the keys of `as_row`; `raises` lists the components transformers raised for."""
    row = {k: expected[k] for k in ("tokenizer_class", "lowercase", "image_processor_class", "model_type", "model_class")}
    row["raises"] = sorted(k[: -len("_error")] for k in expected if k.endswith("_error"))
    return row
