"""benchmarks/elementwise_floor.py runs end to end on a small share (one layer of weights, 64 rows), and its kernels
do the work they stand for: each changes the arrays fast.py's kernel would change."""

import importlib.util
import re
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "elementwise_floor.py"


def load():
    spec = importlib.util.spec_from_file_location("elementwise_floor", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_elementwise_floor_prints_every_kernel_against_the_products(monkeypatch, capsys):
    module = load()
    monkeypatch.setattr(module, "LAYERS", 1)  # one layer's weights (28 MB) instead of twelve
    module.main(["--rows", "64", "--tokens", "16", "--repeats", "1"])
    out = capsys.readouterr().out
    assert re.search(r"products \d+\.\d+ ms", out)
    for name in ("LayerNorm x2", "bias and residual adds", "fc1 bias \\+ GELU", "softmax \\+ division", "all"):
        assert re.search(rf"\| {name} \| \d+\.\d+ \| \d+\.\d+% \|", out), name


def test_each_kernel_changes_its_arrays():
    module = load()
    for name, fn in module.kernels(32, 16, np.random.default_rng(0)):
        arrays = [c.cell_contents for c in fn.__closure__ if isinstance(c.cell_contents, np.ndarray)]
        before = [a.copy() for a in arrays]
        fn()
        assert any(not np.array_equal(a, b) for a, b in zip(arrays, before)), f"{name} changed nothing"
