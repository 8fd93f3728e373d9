"""Live: for each checkpoint-folder row (golden/choices_rows.py), siglip2_ref.checkpoint.choices.decide against what
transformers builds right now (AutoTokenizer / AutoImageProcessor / AutoConfig classes, lowercasing), and the
stored golden/choices.json against the same live answer."""

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from golden.choices_rows import ROWS, as_row, build_folder, comparable  # noqa: E402
from siglip2_ref.checkpoint.choices import decide  # noqa: E402

pytestmark = pytest.mark.oracle
ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("make_golden_choices", ROOT / "golden" / "make_golden_choices.py")
make_golden_choices = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_golden_choices)
GOLDEN = json.loads((ROOT / "golden" / "choices.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", list(ROWS))
def test_choices_match_live_transformers(name, tmp_path):
    folder = build_folder(name, tmp_path / name)
    live = make_golden_choices.expected_row(folder)
    assert as_row(decide(folder)) == comparable(live)
    if transformers.__version__ == GOLDEN["transformers_version"]:
        assert live == GOLDEN["rows"][name]
