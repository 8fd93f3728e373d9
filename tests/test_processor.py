"""Processor: transformers' call signature, output names/dtypes, text defaults, loading from folders."""

import json
import shutil

import numpy as np
import pytest

from golden.preprocess_goldens import TOKENIZER_DIR, load_meta, load_text
from golden.synthetic_images import CASES_BY_NAME, draw
from siglip2_ref.preprocess.processor import Processor, load_processor

META = load_meta()
GOLDEN = load_text()


def checkpoint(tmp_path, config_name, model_type=None):
    """A folder with only the preprocessing files of a checkpoint (no config.json or weights unless asked).

    NaFlex folders lowercase text only with a NaFlex config.json (transformers then picks Siglip2Tokenizer over the
    files' GemmaTokenizer; docs/checkpoint_folder.md), so the NaFlex cases here pass model_type="siglip2".
    """
    for name in ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(f"{TOKENIZER_DIR}/{name}", tmp_path / name)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({**META["configs"][config_name], "do_convert_rgb": None}))
    if model_type:
        (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type}))
    return tmp_path


def test_naflex_outputs_names_dtypes_and_goldens(tmp_path):
    proc = load_processor(checkpoint(tmp_path, "naflex16", model_type="siglip2"))
    assert isinstance(proc, Processor) and proc.variant == "naflex" and proc.tokenizer.lowercase
    texts = GOLDEN["texts"][:5]
    image = draw(CASES_BY_NAME["rgb_480x640"])
    out = proc(text=texts, images=[image, image], max_num_patches=16)
    assert {k: (v.dtype, v.shape) for k, v in out.items()} == {
        "input_ids": (np.int64, (5, 64)), "pixel_values": (np.float32, (2, 16, 768)),
        "pixel_attention_mask": (np.int32, (2, 16)), "spatial_shapes": (np.int64, (2, 2)),
    }
    assert out["input_ids"].tolist() == GOLDEN["ids"]["naflex|max_length64"][:5]


def test_fixres_uses_the_same_text_defaults_without_lowercase(tmp_path):
    proc = load_processor(checkpoint(tmp_path, "fixres64x48_bilinear"))
    assert proc.variant == "fixres" and not proc.tokenizer.lowercase
    out = proc(text=GOLDEN["texts"], images=draw(CASES_BY_NAME["rgb_37x50"]))
    assert out["input_ids"].tolist() == GOLDEN["ids"]["fixres|max_length64"]
    assert out["pixel_values"].shape == (1, 3, 64, 48) and out["pixel_values"].dtype == np.float32


def test_explicit_text_options_behave_as_transformers(tmp_path):
    proc = load_processor(checkpoint(tmp_path, "naflex16", model_type="siglip2"))
    texts = GOLDEN["texts"]
    out = proc(text=texts, padding="longest", max_length=None, truncation=False, return_tensors=None)
    assert out["input_ids"] == GOLDEN["ids"]["naflex|longest"]
    short = proc(text=texts, padding="max_length", max_length=16)
    assert short["input_ids"].tolist() == GOLDEN["ids"]["naflex|max_length16"]


def test_naflex_without_config_json_does_not_lowercase_as_transformers(tmp_path):
    proc = load_processor(checkpoint(tmp_path, "naflex16"))
    assert proc.variant == "naflex" and not proc.tokenizer.lowercase  # AutoTokenizer: GemmaTokenizer


def test_variant_from_config_json_and_lowercase_override(tmp_path):
    folder = checkpoint(tmp_path, "fixres64x48_bilinear", model_type="siglip")
    (folder / "preprocessor_config.json").write_text(json.dumps({"resample": 2, "size": {"height": 8, "width": 8}}))
    proc = load_processor(folder, lowercase=True)
    assert proc.variant == "fixres" and proc.tokenizer.lowercase
    assert proc(images=np.zeros((4, 4, 3), np.uint8))["pixel_values"].shape == (1, 3, 8, 8)


def test_torchvision_backend_option(tmp_path):
    proc = load_processor(checkpoint(tmp_path, "naflex16"), resize_backend="torchvision")
    assert proc.image_processor.resize_backend == "torchvision"


def test_text_only_images_only_and_errors(tmp_path):
    proc = load_processor(checkpoint(tmp_path, "naflex16", model_type="siglip2"))
    assert set(proc(text="a cat")) == {"input_ids"}
    assert set(proc(images=np.zeros((8, 8, 3), np.uint8))) == {"pixel_values", "pixel_attention_mask", "spatial_shapes"}
    with pytest.raises(ValueError, match="text=.*images="):
        proc()
    with pytest.raises(TypeError, match="unexpected keyword"):
        proc(text="a", max_num_patches=4)
    (tmp_path / "fixres").mkdir()
    fixres = load_processor(checkpoint(tmp_path / "fixres", "fixres64x48_bilinear"))
    with pytest.raises(ValueError, match="NaFlex"):
        fixres(images=np.zeros((8, 8, 3), np.uint8), max_num_patches=16)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_processor(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_processor(tmp_path / "nope")
