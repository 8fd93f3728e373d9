"""benchmarks/elementwise_floor.py runs end to end on a small share (one layer of weights, 64 rows), and its kernels
do the work they stand for: each changes the arrays fast.py's kernel would change."""

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

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


def test_the_bound_table_pairs_every_way_and_kind_with_the_floor(monkeypatch, capsys):
    module = load()
    monkeypatch.setattr(module, "LAYERS", 1)
    monkeypatch.setattr(module, "SETTLE", 0.0)
    module.main(["--rows", "64", "--tokens", "16", "--repeats", "1", "--bound-repeats", "1"])
    out = capsys.readouterr().out
    assert "| products | BLAS's threads | rows split | columns split | fastest |\n|---|---|---|---|---|\n" in out
    table = {}
    for kind in (*module.KINDS, "all"):
        row = re.search(rf"\| {kind} \| (\d+\.\d+) \| (\d+\.\d+) \| (\d+\.\d+) \| (\d+\.\d+) \|", out)
        assert row, kind
        table[kind] = [float(v) for v in row.groups()]
    assert all(fastest <= min(ways) + 1e-3 for *ways, fastest in table.values())  # per kind the fastest way
    best, share, bound = map(float, re.search(r"ours/floor: (\d+\.\d+) x \(1 \+ (\d+\.\d+)\) = (\d+\.\d+)", out).groups())
    assert best == table["all"][-1]
    assert abs(best * (1 + share) - bound) <= 1e-3 * (1 + bound)  # each printed to 3 decimals


def test_rows_that_are_not_whole_images_are_refused(capsys):
    with pytest.raises(SystemExit):
        load().main(["--rows", "100", "--tokens", "16"])
    assert "not a whole number of 16-token images" in capsys.readouterr().err


@pytest.mark.parametrize("rows, tokens", [(48, 16), (64, 16), (16, 16)])
def test_each_way_computes_every_output_of_the_products_once(monkeypatch, rows, tokens):
    """Each way's parts cover all rows, columns, images and heads, each once. The column parts do not wait for each
    other's fc1 columns (BLAS zeroes and accumulates u while the other worker reads it), so there o is only checked
    to be written."""
    module = load()
    monkeypatch.setattr(module, "LAYERS", 1)
    calls, a, weights = module.streamed_encoders(rows, tokens, 2, np.random.default_rng(0))
    W1, W2 = weights[-1][4:]
    attention = a.q @ a.q.transpose(0, 1, 3, 2) @ a.q  # [B, H, N, K]
    for way, parts in module.ways_parts(rows, tokens, 2).items():
        covered = np.zeros((rows // tokens, module.H), int)
        for part in parts:
            covered[range(rows // tokens) if part.images is None else part.images, part.heads] += 1
        assert (covered == 1).all(), way
        a.u[...], a.ctx[...] = np.nan, np.nan
        for kind in module.KINDS:
            calls[way, kind]()
        np.testing.assert_allclose(a.u, a.x @ W1.T, rtol=1e-4, atol=1e-3, err_msg=way)
        np.testing.assert_allclose(a.ctx, attention, rtol=1e-4, atol=1e-2, err_msg=way)
        a.o[...] = np.nan
        calls[way, "fc2"]()
        np.testing.assert_allclose(a.o, a.u @ W2.T, rtol=1e-4, atol=1e-2, err_msg=way)
