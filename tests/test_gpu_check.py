"""The prepared GPU check script runs end to end on a CPU in --dry-run mode (NumPy only, tiny sizes); its parity
section is `siglip2-ref selfcheck`'s consistency checks (tests/test_selfcheck.py tests those)."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


def test_gpu_check_dry_run(capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--dry-run", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "| random-naflex | float32 fast path vs readable path | pass |" in out
    assert "| naflex_vision | float32 vs float64 (fast path) | pass |" in out
    assert "BLAS:" in out  # the environment report heads the output
    assert "vision fixres B=2" in out and "text B=2" in out
