import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from siglip2_ref.backend import cupy_available

# Deterministic, bounded examples in CI; more (and random) examples locally with HYPOTHESIS_PROFILE=dev.
settings.register_profile(
    "ci", max_examples=15, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

BACKENDS = ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Runs a test body once per available backend; CuPy skips cleanly without a GPU."""
    if request.param == "cupy" and not cupy_available():
        pytest.skip("CuPy with a CUDA device is not available")
    return request.param


@pytest.fixture
def xp(backend):
    if backend == "numpy":
        return np
    import cupy

    return cupy
