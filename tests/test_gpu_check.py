"""The prepared GPU check script runs end to end on a CPU in --dry-run mode (NumPy stand-in, tiny sizes)."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


def test_gpu_check_dry_run(capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--dry-run", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "| random-naflex | float32 | logits_per_image |" in out
    assert "vision fixres B=2" in out and "text B=2" in out
