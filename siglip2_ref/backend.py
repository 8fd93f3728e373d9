"""Array backends: NumPy always, CuPy when installed and a CUDA device is present.

The model math never asks for a global backend; each function takes its handle
from the data it receives (`xp = get_xp(x)`). The device is chosen at the edges:
when weights are loaded and when inputs are moved to the weights' device.
"""

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
