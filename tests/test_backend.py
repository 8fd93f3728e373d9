"""Backend rules: the model math takes its array module from the data, and runs on every available backend."""

import ast
from pathlib import Path

import numpy as np
import pytest

import siglip2_ref as s2
from siglip2_ref.backend import cupy_available, get_xp, to_numpy
from siglip2_ref.porting.stages import run_stages
from siglip2_ref.porting.tolerances import assert_close
from siglip2_ref.porting.verify import load_case
from tests.synthetic import GOLDEN_MODEL

PACKAGE = Path(s2.__file__).parent
# Pure model math: no NumPy module calls at all. fast.py is NumPy-only by design (in-place `out=` kernels);
# load_model never gives it CuPy arrays, which test_fast_path_is_numpy_only checks.
DEVICE_MODULES = ["model/layers.py", "model/vision.py", "model/text.py", "model/head.py", "model/quant.py"]
HOST_EDGE_FUNCTIONS = {"model/inputs.py": {"as_array"}, "model/model.py": {"load_model"}}  # where host data enters or weights are read


def numpy_uses(tree):
    """(function name, line) for every `np.something` in a module."""
    uses = []
    for fn in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Module))]:
        name = getattr(fn, "name", "<module>")
        for node in ast.walk(fn):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("np", "numpy"):
                uses.append((name, node.lineno))
    return uses


@pytest.mark.parametrize("module", DEVICE_MODULES + list(HOST_EDGE_FUNCTIONS))
def test_no_numpy_module_calls_in_device_code(module):
    path = PACKAGE / module
    assert path.exists(), f"{module} is listed as device code but is not in the package"
    allowed = HOST_EDGE_FUNCTIONS.get(module, set())
    bad = {(fn, line) for fn, line in numpy_uses(ast.parse(path.read_text())) if fn not in allowed and fn != "<module>"}
    assert not bad, f"{module}: NumPy called on what may be device arrays (use xp = get_xp(x)): {sorted(bad)}"


def test_fast_path_is_numpy_only():
    from siglip2_ref.model.layers import encoder

    folder = Path(__file__).parent.parent / "golden/model/checkpoints/naflex"
    assert s2.load_model(folder, dtype="float16").run_encoder is encoder
    assert s2.load_model(folder, fast=False).run_encoder is encoder
    assert s2.load_model(folder).run_encoder is not encoder


def test_backend_follows_the_data():
    assert get_xp(np.zeros(2)) is np
    assert to_numpy((np.ones(1), {"a": np.zeros(1)}))[1]["a"].shape == (1,)


def test_cupy_backend_without_gpu_is_a_clear_error():
    if cupy_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="backend='cupy'"):
        s2.load_model(Path(__file__).parent.parent / "golden/model/checkpoints/naflex", backend="cupy")


@pytest.mark.parametrize("case", ["naflex_f32", "fixres_f32"])
def test_golden_case_on_each_backend(backend, case):
    meta, inputs, expected, folder = load_case(case, GOLDEN_MODEL)
    model = s2.load_model(folder, backend=backend, dtype="float32")
    got = run_stages(model, **inputs)
    assert type(got["logits_per_image"]).__module__.split(".")[0] == ("numpy" if backend == "numpy" else "cupy")
    for stage in ("vision.pooler_output", "text.pooler_output", "logits_per_image"):
        assert_close(to_numpy(got[stage]), expected[stage], "float32_pooled", f"{backend} {case} {stage}")


# ---------------------------------------------------------------- CPU threads of the fast paths


def blas_threads():
    from threadpoolctl import threadpool_info

    return max(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")


def test_single_threaded_blas_nests_and_restores_when_the_last_user_leaves():
    """Two users that overlap (entered A, entered B, left A, left B) leave BLAS as it was, not stuck at one thread."""
    from threadpoolctl import threadpool_limits

    from siglip2_ref.backend import single_threaded_blas

    with threadpool_limits(2, user_api="blas"):
        a, b = single_threaded_blas, single_threaded_blas
        a.__enter__()
        assert blas_threads() == 1
        b.__enter__()
        a.__exit__(None, None, None)
        assert blas_threads() == 1  # B is still inside
        b.__exit__(None, None, None)
        assert blas_threads() == 2


def test_workers_give_each_thread_its_own_scratch_when_called_from_several_threads():
    """Two callers running tasks at once on one pool: every task sees a buffer nobody else writes meanwhile."""
    import threading
    import time

    from siglip2_ref.backend import Workers

    workers, errors = Workers(2), []

    def task(value, scratch):
        buf = scratch.get("b", (64,), np.int64)
        buf[:] = value
        time.sleep(0.001)  # let the other caller's tasks run meanwhile
        if not (buf == value).all():
            errors.append(value)

    callers = [threading.Thread(target=workers.run, args=(task, list(range(k, 200, 2)))) for k in (0, 1)]
    for c in callers:
        c.start()
    for c in callers:
        c.join()
    assert errors == []


def test_even_blocks_cover_the_range_in_even_shares():
    from siglip2_ref.backend import even_blocks

    for total, most, workers in [(768, 512, 2), (3000, 131, 2), (7, 3, 2), (1, 100, 2), (12, 5, 3), (2048, 1024, 2)]:
        blocks = even_blocks(total, most, workers)
        assert blocks[0].start == 0 and blocks[-1].stop == total
        assert all(a.stop == b.start for a, b in zip(blocks, blocks[1:]))
        assert all(0 < b.stop - b.start <= most for b in blocks)
        if total >= 2 * workers:
            assert len(blocks) % workers == 0, (total, most, workers, len(blocks))


def test_run_owning_cores_makes_blas_single_threaded_only_for_several_workers():
    from threadpoolctl import threadpool_info

    from siglip2_ref.backend import Workers

    blas_threads = lambda: max(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")  # noqa: E731
    workers, seen = Workers(2), []
    before = blas_threads()
    workers.run_owning_cores(lambda task, _: seen.append((task, blas_threads())), [0, 1], 2)
    workers.run_owning_cores(lambda task, _: seen.append((task, blas_threads())), [2], 1)
    assert sorted(seen) == [(0, 1), (1, 1), (2, before)]
    assert blas_threads() == before
