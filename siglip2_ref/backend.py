"""Array backends: NumPy always, CuPy when installed and a CUDA device is present.

The model math never asks for a global backend; each function takes its handle
from the data it receives (`xp = get_xp(x)`). The device is chosen at the edges:
when weights are loaded and when inputs are moved to the weights' device.

On the CPU, the fast paths (model/fast.py, preprocess/fast.py) share the cores with their own threads while
BLAS runs single-threaded: `Workers` is that pool, `single_threaded_blas` the process-wide switch.
"""

import itertools
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np

try:  # optional: the fast CPU paths use it to keep BLAS single-threaded while their own workers share the cores
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover
    ThreadpoolController = None

BACKENDS = ("numpy", "cupy")


def get_xp(x):
    """The array module (numpy or cupy) that owns array `x`."""
    if type(x).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np


def backend_module(name):
    """The array module for a backend name; a clear error when CuPy is unusable."""
    if name == "numpy":
        return np
    if name != "cupy":
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    try:
        import cupy
    except ImportError as e:
        raise RuntimeError(
            "backend='cupy' needs CuPy: pip install 'siglip2-ref[gpu]' (cupy-cuda12x), "
            "or the CuPy wheel that matches your CUDA version"
        ) from e
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError has no stable import path
        raise RuntimeError(f"backend='cupy' but no usable CUDA device: {e}") from e
    return cupy


def cupy_available():
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        backend_module("cupy")
    except RuntimeError:
        return False
    return True


def to_numpy(x):
    """Bring an array (NumPy, CuPy) or a nest of tuples/lists/dicts of them to the host."""
    if isinstance(x, (tuple, list)):
        return type(x)(to_numpy(v) for v in x)
    if isinstance(x, dict):
        return {k: to_numpy(v) for k, v in x.items()}
    if x is None or isinstance(x, (int, float, str)):
        return x
    if type(x).__module__.startswith("cupy"):
        return x.get()
    return np.asarray(x)


def to_backend(x, xp):
    """Move a host array to the backend `xp` (no copy when it is already there)."""
    if x is None:
        return None
    if xp is np:
        return to_numpy(x)
    return xp.asarray(x)


# ---------------------------------------------------------------- CPU threads for the fast paths


def blas_thread_count():
    """Threads BLAS is set to use now (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or the core count); 1 if unknown."""
    if ThreadpoolController is None:
        return 1
    counts = [lib["num_threads"] for lib in ThreadpoolController().info() if lib["user_api"] == "blas"]
    return max(counts, default=1)


class SingleThreadedBlas:
    """`with single_threaded_blas:` BLAS runs on one thread inside, for every thread of the process.

    threadpoolctl's limit is process-wide, so nested or concurrent users (the model on one thread, preprocessing
    on others) share one count: the first to enter sets BLAS to one thread, the last to leave restores it. Two
    independent `limit()` calls would not do: the one that leaves last restores what the other had set.
    """

    def __init__(self):
        self.lock, self.depth, self.limiter, self.controller = threading.Lock(), 0, None, None

    def __enter__(self):
        with self.lock:
            if self.depth == 0 and ThreadpoolController is not None:
                self.controller = self.controller or ThreadpoolController()  # made once: it scans the loaded libraries
                self.limiter = self.controller.limit(limits=1, user_api="blas")
            self.depth += 1

    def __exit__(self, *exc):
        with self.lock:
            self.depth -= 1
            if self.depth == 0 and self.limiter is not None:
                self.limiter.restore_original_limits()
                self.limiter = None


single_threaded_blas = SingleThreadedBlas()


def even_blocks(total, most, workers):  # -> [slice]
    """0:total cut into blocks of at most `most`, their number a multiple of `workers` so that they share evenly."""
    count = -(-total // max(1, most))
    count = -(-count // workers) * workers
    step = -(-total // count)
    return [slice(r, min(r + step, total)) for r in range(0, total, step)]


class Scratch:
    """One worker's reusable buffers: `get(name, shape, dtype)` returns a view, growing the buffer when needed."""

    def __init__(self):
        self.buffers = {}

    def get(self, name, shape, dtype):
        size = math.prod(shape)
        buf = self.buffers.get(name)
        if buf is None or buf.dtype != dtype or buf.size < size:
            buf = self.buffers[name] = np.empty(size, dtype)
        return buf[:size].reshape(shape)


class Workers:
    """`n` workers (the calling thread and n - 1 pool threads) pulling tasks from one shared counter.

    Each thread has its own `Scratch`, so callers on several threads may `run` at once (they share the pool).
    """

    def __init__(self, n):
        self.n = n
        self.pool = ThreadPoolExecutor(n - 1, thread_name_prefix="siglip2_ref") if n > 1 else None
        self.local = threading.local()

    def scratch(self):
        if not hasattr(self.local, "scratch"):
            self.local.scratch = Scratch()
        return self.local.scratch

    def run(self, fn, tasks, n=None):
        """fn(task, scratch) for every task on min(n, self.n) workers; returns when all are done."""
        n = max(1, min(n or self.n, self.n, len(tasks)))
        counter = itertools.count()

        def loop():
            scratch = self.scratch()
            while (i := next(counter)) < len(tasks):  # itertools.count is atomic under the GIL
                fn(tasks[i], scratch)

        futures = [self.pool.submit(loop) for _ in range(1, n)]
        try:
            loop()
        finally:
            for f in futures:
                f.result()

    def run_owning_cores(self, fn, tasks, n=None):
        """`run`, with BLAS single-threaded when it asks for more than one worker: our threads replace BLAS's own."""
        with single_threaded_blas if min(n or self.n, self.n) > 1 else nullcontext():
            self.run(fn, tasks, n)
