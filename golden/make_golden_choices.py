"""golden/choices.json: what transformers builds for each checkpoint-folder row of golden/choices_rows.py.

For each row: the classes of AutoTokenizer / AutoImageProcessor / AutoConfig and AutoModel's mapped class (not
built: the rows carry no weights), whether the tokenizer lowercases (ids of TEST_TEXT == ids of its lowercase), or
the exception each raises. tests/test_choices.py compares siglip2_ref.checkpoint.choices.decide with this file;
tests/oracle/test_live_choices.py compares it with transformers live (`expected_row`).

Run:  python golden/make_golden_choices.py   (needs the `oracle` extra: torch + transformers 5.24)
"""

import json
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from golden.choices_rows import ROWS, TEST_TEXT, build_folder  # noqa: E402

GOLDEN_FILE = ROOT / "golden" / "choices.json"
COMMAND = "python golden/make_golden_choices.py"


def _base(name):  # transformers' back-end classes (Siglip2ImageProcessorPil, ...) -> the class named in the files
    for suffix in ("Pil", "Fast"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def expected_row(folder):
    """transformers' answer for one folder: a dict of class names (None + an `*_error` entry where it raises)."""
    import transformers
    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    folder = str(folder)
    row = {}
    try:
        tok = AutoTokenizer.from_pretrained(folder)
        row["tokenizer_class"] = type(tok).__name__
        row["lowercase"] = tok(TEST_TEXT)["input_ids"] == tok(TEST_TEXT.lower())["input_ids"]
    except Exception as e:  # noqa: BLE001 (recorded: which exception transformers raises)
        row.update(tokenizer_class=None, lowercase=False, tokenizer_error=type(e).__name__)
    try:
        row["image_processor_class"] = _base(type(AutoImageProcessor.from_pretrained(folder)).__name__)
    except Exception as e:  # noqa: BLE001
        row.update(image_processor_class=None, image_processor_error=type(e).__name__)
    try:
        config = AutoConfig.from_pretrained(folder)
        row.update(config_class=type(config).__name__, model_type=config.model_type,
                   model_class=MODEL_MAPPING_NAMES.get(config.model_type))
    except Exception as e:  # noqa: BLE001
        row.update(config_class=None, model_type=None, model_class=None, model_error=type(e).__name__)
    return row


def main():
    import transformers

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ROWS:
            rows[name] = expected_row(build_folder(name, Path(tmp) / name))
    out = {"transformers_version": transformers.__version__, "command": COMMAND, "test_text": TEST_TEXT,
           "rows": rows}
    GOLDEN_FILE.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN_FILE} ({len(rows)} rows, transformers {transformers.__version__})")


if __name__ == "__main__":
    main()
