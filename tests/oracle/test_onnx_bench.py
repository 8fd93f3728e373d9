"""The benchmark's ONNX Runtime rows: a tiny random Siglip2Model exported as the benchmark does, run by ONNX
Runtime, gives transformers' features (float32) and runs in dynamic int8."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from siglip2_ref.bench import onnx_runtime  # noqa: E402

pytestmark = pytest.mark.oracle


def tiny_model():
    small = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
    config = transformers.Siglip2Config(text_config=dict(vocab_size=300, max_position_embeddings=16, **small),
                                        vision_config=dict(num_patches=64, patch_size=4, **small))  # fmt: skip
    torch.manual_seed(0)
    return transformers.Siglip2Model(config).eval()


def test_exported_towers_match_transformers(tmp_path):
    model, rng = tiny_model(), np.random.default_rng(0)
    mask = np.ones((2, 64), np.int32)
    mask[1, 32:] = 0
    vision = {"pixel_values": rng.uniform(-1, 1, (2, 64, 48)).astype(np.float32), "pixel_attention_mask": mask,
              "spatial_shapes": np.array([[8, 8], [4, 8]], np.int64)}  # fmt: skip
    text = {"input_ids": rng.integers(0, 300, (2, 16))}
    for tower, data, features in [("vision", vision, model.get_image_features), ("text", text, model.get_text_features)]:
        calls = onnx_runtime.onnx_calls(model, tower, data, tmp_path, tower, threads=1)
        with torch.no_grad():
            want = features(**{k: torch.from_numpy(v) for k, v in data.items()}).pooler_output.numpy()
        got, int8 = calls["ort"]()[0], calls["ort_int8"]()[0]
        assert got.shape == want.shape and np.abs(got - want).max() < 1e-4 * max(1.0, np.abs(want).max()), tower
        assert int8.shape == want.shape and np.isfinite(int8).all()
        assert np.abs(int8 - want).max() > 0  # int8 really is a different model (quantised weights)
