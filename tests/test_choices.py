"""One owner of the checkpoint folder: siglip2_ref.checkpoint.choices.decide against transformers' answers.

Each row of docs/checkpoint_folder.md is a folder built from a demo checkpoint (golden/choices_rows.py); the
expected classes are golden/choices.json, written by golden/make_golden_choices.py from transformers 5.24.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from golden.choices_rows import KEEP, ROWS, TEST_TEXT, as_row, build_folder, comparable
from siglip2_ref.checkpoint.choices import FolderChoiceError, decide
from siglip2_ref.preprocess.processor import load_processor
from siglip2_ref.preprocess.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = json.loads((ROOT / "golden" / "choices.json").read_text(encoding="utf-8"))


def test_golden_covers_every_row_and_says_how_it_was_made():
    assert sorted(GOLDEN["rows"]) == sorted(ROWS)
    assert GOLDEN["transformers_version"] == "5.24.0"
    assert GOLDEN["command"] == "python golden/make_golden_choices.py" and GOLDEN["test_text"] == TEST_TEXT
    # every combination with the demo's config.json is also a row without config.json
    with_config = [name for name, row in ROWS.items() if row[1] == KEEP]
    assert all(f"{name}_no_config" in ROWS for name in with_config), with_config


def test_docs_table_lists_every_row():
    table = (ROOT / "docs" / "checkpoint_folder.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in table for name in ROWS)


@pytest.mark.parametrize("name", list(ROWS))
def test_choices_match_transformers(name, tmp_path):
    folder = build_folder(name, tmp_path / name)
    assert as_row(decide(folder)) == comparable(GOLDEN["rows"][name])


@pytest.mark.parametrize("name", list(ROWS))
def test_loaders_receive_the_choices(name, tmp_path):
    """load_processor / load_tokenizer follow the decided classes; they raise where transformers does."""
    folder = build_folder(name, tmp_path / name)
    expected = GOLDEN["rows"][name]
    if expected["tokenizer_class"] is None:
        with pytest.raises((FolderChoiceError, FileNotFoundError)):
            load_tokenizer(folder)
    else:
        tok = load_tokenizer(folder)
        assert tok.lowercase == expected["lowercase"]
        same = tok(TEST_TEXT)["input_ids"] == tok(TEST_TEXT.lower())["input_ids"]
        assert same == expected["lowercase"]
    if expected["image_processor_class"] is None and expected["tokenizer_class"] is None or (
        expected["tokenizer_class"] is None and (folder / "tokenizer.model").is_file()
    ):
        with pytest.raises((FolderChoiceError, FileNotFoundError)):
            load_processor(folder)
        return
    if expected["image_processor_class"] is None:
        with pytest.raises(FolderChoiceError, match="image_processor_type"):
            load_processor(folder)
        return
    proc = load_processor(folder)
    variant = {"SiglipImageProcessor": "fixres", "Siglip2ImageProcessor": "naflex"}[expected["image_processor_class"]]
    assert proc.image_processor.variant == variant
    assert (proc.tokenizer is None) == (expected["tokenizer_class"] is None)
    if proc.tokenizer is not None:
        assert proc.tokenizer.lowercase == expected["lowercase"]
    out = proc(images=np.zeros((20, 30, 3), np.uint8))
    assert ("pixel_attention_mask" in out) == (variant == "naflex")


def test_sources_name_the_deciding_file(tmp_path):
    c = decide(build_folder("naflex", tmp_path / "a"))
    assert c.sources["tokenizer_class"].startswith("config.json: model_type 'siglip2' (overrides tokenizer_config.json")
    assert c.sources["image_processor_class"] == "preprocessor_config.json: image_processor_type"
    assert c.sources["variant"] == "config.json: model_type"
    c = decide(build_folder("naflex_processor_config_no_config", tmp_path / "b"))
    assert c.sources["image_processor_class"] == "processor_config.json: image_processor.image_processor_type"
    assert c.image_processor_file == "processor_config.json" and c.sources["variant"] == c.sources["image_processor_class"]


def test_errors_name_the_files(tmp_path):
    c = decide(build_folder("naflex_no_image_processor_type_no_config", tmp_path / "a"))
    with pytest.raises(FolderChoiceError, match="preprocessor_config.json has no image_processor_type and there is no config.json"):
        c.require("image_processor")
    c = decide(build_folder("fixres_no_tokenizer_class", tmp_path / "b"))
    with pytest.raises(FolderChoiceError, match="config.json: model_type 'siglip' selects 'SiglipTokenizer'"):
        c.require("tokenizer")
    (tmp_path / "b" / "config.json").write_text("[1]")
    with pytest.raises(FolderChoiceError, match="config.json: expected a JSON object"):
        decide(tmp_path / "b")


def test_explicit_arguments_still_win(tmp_path):
    folder = build_folder("naflex", tmp_path / "a")
    assert load_tokenizer(folder, lowercase=False).lowercase is False
    assert load_processor(folder, lowercase=False).tokenizer.lowercase is False
    assert load_tokenizer(build_folder("fixres_no_tokenizer_class", tmp_path / "b"), lowercase=True).lowercase is True


def test_load_image_processor_model_type_stands_in_for_config_json(tmp_path):
    from siglip2_ref.preprocess.images import load_image_processor

    folder = build_folder("naflex_no_image_processor_type_no_config", tmp_path / "a")
    with pytest.raises(FolderChoiceError):
        load_image_processor(folder)
    assert load_image_processor(folder, model_type="siglip2").variant == "naflex"
