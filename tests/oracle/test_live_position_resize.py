"""NaFlex position-embedding resize in float64 against torch's antialiased bilinear interpolation.

transformers 5.x computes this stage in float32 even for float64 weights, so the float64 goldens cannot pin it
below ~1e-7; torch's `F.interpolate(bilinear, antialias=True)` in float64 (transformers 4.x's method) can.
Shapes with output width 1 are excluded: torch's CPU kernel is wrong there (docs/parity.md "Deliberate choices", NaFlex position resize), and 5.x is not.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from siglip2_ref.porting.tolerances import assert_close  # noqa: E402
from siglip2_ref.model.vision import naflex_position_embeddings  # noqa: E402

pytestmark = pytest.mark.oracle


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 16), st.integers(1, 40), st.integers(2, 40), st.integers(0, 2**16))
def test_float64_resize_matches_torch_antialiased_bilinear(G, h, w, seed):
    table = np.random.default_rng(seed).normal(size=(G * G, 5))
    ours = naflex_position_embeddings(table, np.array([[h, w]]), h * w + 3)[0]  # [N, D]
    grid = torch.from_numpy(table.reshape(G, G, 5)).permute(2, 0, 1)[None]  # [1, D, G, G]
    ref = torch.nn.functional.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    ref = ref[0].permute(1, 2, 0).reshape(h * w, 5).numpy()
    assert_close(ours[: h * w], ref, "float64", f"resize {G}x{G} -> {h}x{w}")
    assert_close(ours[h * w :], np.broadcast_to(ours[0], (3, 5)), "float64", "padding rows repeat position (0, 0)")
