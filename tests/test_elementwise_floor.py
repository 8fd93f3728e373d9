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
    module.main(["--rows", "64", "--tokens", "16", "--repeats", "1", "--bound-repeats", "0"])
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


def test_the_bound_table_pairs_every_way_with_the_floor(monkeypatch, capsys):
    module = load()
    monkeypatch.setattr(module, "LAYERS", 1)
    monkeypatch.setattr(module, "SETTLE", 0.0)
    module.main(["--rows", "64", "--tokens", "16", "--repeats", "1", "--bound-repeats", "1"])
    out = capsys.readouterr().out
    for way in ("floor", "BLAS's threads", "rows split", "columns split"):
        assert re.search(rf"\| {way} \| \d+\.\d+ \| \d+\.\d+ \|", out), way
    best, share, bound = map(float, re.search(r"ours/floor: (\d+\.\d+) x \(1 \+ (\d+\.\d+)\) = (\d+\.\d+)", out).groups())
    assert abs(best * (1 + share) - bound) <= 1e-3 * (1 + bound)  # each printed to 3 decimals


def test_each_way_computes_every_output_of_the_products(monkeypatch):
    """Each way's shares cover all rows and columns: a share left out leaves its outputs unwritten. The column shares
    do not wait for each other's fc1 columns (BLAS zeroes and accumulates u while the other worker reads it), so
    there o is only checked to be written."""
    module = load()
    monkeypatch.setattr(module, "LAYERS", 1)
    ways, (x, o, u, weights) = module.streamed_encoders(48, 16, 2, np.random.default_rng(0))
    W1, W2 = weights[-1][4:]
    for way, run in ways.items():
        u[...] = np.nan
        run()
        np.testing.assert_allclose(u, x @ W1.T, rtol=1e-4, atol=1e-3, err_msg=way)
        o[...] = np.nan
        run()
        if way == "columns split":
            assert np.isfinite(o).all()
        else:
            np.testing.assert_allclose(o, u @ W2.T, rtol=1e-4, atol=1e-2, err_msg=way)
