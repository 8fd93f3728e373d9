"""The machine a self-check ran on: Python, NumPy and its BLAS (library, kernel, threads), CuPy, CUDA and the GPU.

Every value is read, never guessed; what cannot be read says why ("not installed", "no usable CUDA device: ...").
"""

import os
import platform

import numpy as np

from .dump import library_versions


def blas_report():
    """[{library, version, kernel, threads, file}] of the BLAS libraries NumPy loaded, from threadpoolctl."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"library": "unknown", "note": "threadpoolctl is not installed"}]
    rows = []
    for pool in threadpool_info():
        if pool.get("user_api") != "blas":
            continue
        rows.append({"library": pool.get("internal_api"), "version": pool.get("version"),
                     "kernel": pool.get("architecture"), "threads": pool.get("num_threads"),
                     "threading_layer": pool.get("threading_layer"), "file": pool.get("filepath")})  # fmt: skip
    return rows or [{"library": "none found", "note": "threadpoolctl saw no BLAS library loaded by NumPy"}]


def cuda_report():
    """CuPy and CUDA versions and the device, or why CuPy cannot be used here."""
    try:
        import cupy
    except ImportError:
        return {"cupy": "not installed"}
    report = {"cupy": cupy.__version__}
    try:
        runtime = cupy.cuda.runtime
        props = runtime.getDeviceProperties(0)
        name = props["name"]
        report |= {"cuda_runtime": runtime.runtimeGetVersion(), "cuda_driver": runtime.driverGetVersion(),
                   "devices": runtime.getDeviceCount(), "device": name.decode() if isinstance(name, bytes) else str(name),
                   "compute_capability": f"{props['major']}.{props['minor']}",
                   "memory_GiB": round(props["totalGlobalMem"] / 2**30, 1)}  # fmt: skip
    except Exception as e:  # CUDARuntimeError has no stable import path
        report["error"] = f"no usable CUDA device: {e}"
    return report


def environment():
    """One dict: versions, CPU, the BLAS pools, thread variables, CuPy/CUDA."""
    threads = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                          "OPENBLAS_CORETYPE") if k in os.environ}  # fmt: skip
    return {"versions": library_versions(), "platform": platform.platform(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "numpy": np.__version__, "blas": blas_report(), "thread_variables": threads,
            "cuda": cuda_report()}  # fmt: skip


def format_environment(env):
    """The environment as a few indented lines."""
    lines = [f"  python {env['versions']['python']}, numpy {env['numpy']}, {env['platform']}, {env['cpu_count']} CPUs"]
    for b in env["blas"]:
        if "note" in b:
            lines.append(f"  BLAS: {b['library']} ({b['note']})")
        else:
            lines.append(f"  BLAS: {b['library']} {b['version']}, kernel {b['kernel']}, {b['threads']} threads"
                         + (f", {b['threading_layer']}" if b.get("threading_layer") else ""))  # fmt: skip
    if env["thread_variables"]:
        lines.append("  " + ", ".join(f"{k}={v}" for k, v in env["thread_variables"].items()))
    c = env["cuda"]
    if "device" in c:
        lines.append(f"  CuPy {c['cupy']}, CUDA runtime {c['cuda_runtime']}, driver {c['cuda_driver']}; "
                     f"{c['device']} (compute {c['compute_capability']}, {c['memory_GiB']} GiB)")  # fmt: skip
    else:
        lines.append(f"  CuPy: {c['cupy']}" + (f" ({c['error']})" if "error" in c else ""))
    return "\n".join(lines)
