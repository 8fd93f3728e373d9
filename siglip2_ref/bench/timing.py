"""Timing for the benchmarks: medians, and repeats interleaved so that paired ratios survive a shared machine."""

import statistics
import time

SETTLE = 0.25  # seconds of sleep before each timed call: no call pays for the last one's spinning threads


def median_time(fn, repeats, warmup=1):
    """Median wall time of fn() over `repeats` runs after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def paired_ratio(a, b):
    """Median of a[i] / b[i] over the repeats: each pair ran back to back, under the same machine speed."""
    return statistics.median(x / y for x, y in zip(a, b))


def interleaved_times(calls, repeats, settle=0.0):  # {name: fn} -> {name: [seconds per repeat]}
    """One warm-up each, then `repeats` rounds (3 when a round takes over 10 s) running every call back to back.

    `settle` seconds of sleep before each timed call let the previous call's threads go idle: OpenBLAS's, OpenMP's
    and ONNX Runtime's workers spin for a while after a call (OpenBLAS up to 2^28 cycles, about 0.1 s), and a call
    that starts while another library's threads still spin on the same cores pays for them."""
    warm = time.perf_counter()
    for fn in calls.values():
        fn()
    repeats = repeats if time.perf_counter() - warm < 10 else min(repeats, 3)
    times = {k: [] for k in calls}
    for _ in range(repeats):
        for k, fn in calls.items():
            time.sleep(settle)
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return times
