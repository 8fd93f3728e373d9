"""Checkpoint loading: storage dtypes, sharding, and a specific error for each kind of bad checkpoint."""

import json

import numpy as np
import pytest

import siglip2_ref as s2
from siglip2_ref.checkpoint.config import ConfigError
from siglip2_ref.checkpoint.weights import CheckpointError

from .synthetic import bf16_bits, random_weights, tiny_config, tiny_shapes, write_checkpoint


@pytest.fixture(params=["naflex", "fixres"])
def variant(request):
    return request.param


def make(tmp_path, variant, name="ckpt", **kw):
    config = tiny_config(variant)
    weights = random_weights(tiny_shapes(config))
    return write_checkpoint(tmp_path / name, config, weights, **kw), weights


def flat(params, prefix=""):
    if isinstance(params, dict):
        return {k2: v2 for k, v in params.items() for k2, v2 in flat(v, f"{prefix}{k}.").items()}
    if isinstance(params, list):
        return {k2: v2 for i, v in enumerate(params) for k2, v2 in flat(v, f"{prefix}{i}.").items()}
    return {prefix[:-1]: params}


def test_every_tensor_lands_at_its_key(tmp_path, variant):
    folder, weights = make(tmp_path, variant)
    loaded = flat(s2.load_model(folder).params)
    assert loaded.keys() == weights.keys()
    for k, w in weights.items():
        np.testing.assert_array_equal(loaded[k], w, err_msg=k)


@pytest.mark.parametrize("storage", ["F16", "BF16", "F64"])
def test_storage_dtypes_convert_exactly(tmp_path, variant, storage):
    folder, weights = make(tmp_path, variant, storage=storage)
    loaded = flat(s2.load_model(folder, dtype="float32").params)
    for k, w in weights.items():
        if storage == "BF16":  # bfloat16 keeps the upper 16 bits of a float32
            expected = (bf16_bits(w).astype(np.uint32) << 16).view(np.float32)
        else:
            expected = w.astype({"F16": np.float16, "F64": np.float64}[storage]).astype(np.float32)
        assert loaded[k].dtype == np.float32
        np.testing.assert_array_equal(loaded[k], expected, err_msg=k)


@pytest.mark.parametrize("dtype", ["float64", "float16"])
def test_compute_dtype(tmp_path, dtype):
    folder, _ = make(tmp_path, "naflex")
    model = s2.load_model(folder, dtype=dtype)
    assert all(v.dtype == np.dtype(dtype) for v in flat(model.params).values())


def test_sharded_equals_single_file(tmp_path, variant):
    single, _ = make(tmp_path, variant, name="single")
    sharded, _ = make(tmp_path, variant, name="sharded", shards=3)
    a, b = flat(s2.load_model(single).params), flat(s2.load_model(sharded).params)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_weights_are_memory_mapped_not_copied(tmp_path):
    folder, _ = make(tmp_path, "naflex")
    table = s2.load_model(folder).params["text_model"]["embeddings"]["token_embedding"]["weight"]
    assert isinstance(table.base, np.memmap) or isinstance(table, np.memmap)


# ---------------------------------------------------------------- bad checkpoints


def expect(error, match, folder):
    with pytest.raises(error, match=match):
        s2.load_model(folder)


def test_missing_key_is_named(tmp_path):
    config = tiny_config("naflex")
    weights = random_weights(tiny_shapes(config))
    del weights["vision_model.encoder.layers.1.mlp.fc2.bias"]
    expect(CheckpointError, r"missing keys \(1\):\s+vision_model.encoder.layers.1.mlp.fc2.bias", write_checkpoint(tmp_path / "c", config, weights))


def test_unexpected_key_is_named(tmp_path):
    config = tiny_config("naflex")
    weights = random_weights(tiny_shapes(config)) | {"vision_model.extra.weight": np.zeros(3, np.float32)}
    expect(CheckpointError, r"unexpected keys \(1\):\s+vision_model.extra.weight", write_checkpoint(tmp_path / "c", config, weights))


def test_wrong_shape_names_key_and_both_shapes(tmp_path):
    config = tiny_config("fixres")
    weights = random_weights(tiny_shapes(config))
    weights["text_model.encoder.layers.0.mlp.fc1.weight"] = np.zeros((8, 12), np.float32)
    expect(CheckpointError, r"text_model.encoder.layers.0.mlp.fc1.weight: stored \(8, 12\), config implies \(7, 12\)",
           write_checkpoint(tmp_path / "c", config, weights))  # fmt: skip


def test_truncated_file(tmp_path):
    folder, _ = make(tmp_path, "naflex")
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    expect(CheckpointError, r"model.safetensors: tensor .* ends at byte \d+ but the file holds \d+ data bytes: truncated", folder)


def test_truncated_header(tmp_path):
    folder, _ = make(tmp_path, "naflex")
    (folder / "model.safetensors").write_bytes(b"\x10\x00")
    expect(CheckpointError, "truncated safetensors file", folder)


def test_not_safetensors(tmp_path):
    folder, _ = make(tmp_path, "naflex")
    (folder / "model.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{not json at all")
    expect(CheckpointError, "header is not valid JSON", folder)


def test_pickle_checkpoint_is_refused_without_opening(tmp_path):
    folder, _ = make(tmp_path, "naflex")
    (folder / "model.safetensors").unlink()
    # A pickle that would run code if it were ever unpickled.
    (folder / "pytorch_model.bin").write_bytes(b"cos\nsystem\n(S'touch PWNED'\ntR.")
    expect(CheckpointError, "only pickle weight files found .*pytorch_model.bin.*never opened", folder)
    assert not (tmp_path / "PWNED").exists()


def test_shard_path_escaping_the_folder(tmp_path):
    folder, _ = make(tmp_path, "naflex", shards=2)
    index = folder / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    first = next(iter(data["weight_map"]))
    data["weight_map"][first] = "../../outside.safetensors"
    index.write_text(json.dumps(data))
    expect(CheckpointError, r"shard path '../../outside.safetensors' points outside the checkpoint folder", folder)


def test_shard_listed_but_missing(tmp_path):
    folder, _ = make(tmp_path, "naflex", shards=2)
    (folder / "model-00002-of-00002.safetensors").unlink()
    expect(CheckpointError, r"shard 'model-00002-of-00002.safetensors' is listed but missing", folder)


def test_no_weights_at_all(tmp_path):
    folder, _ = make(tmp_path, "naflex")
    (folder / "model.safetensors").unlink()
    expect(CheckpointError, "no model.safetensors or model.safetensors.index.json", folder)


def test_unknown_model_type(tmp_path):
    folder, _ = make(tmp_path, "naflex")
    (folder / "config.json").write_text(json.dumps({"model_type": "clip"}))
    expect(ConfigError, r"model_type 'clip' is not a SigLIP / SigLIP 2 type", folder)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("num_attention_heads", 5, r"vision_config.hidden_size \(12\) must be divisible by vision_config.num_attention_heads \(5\)"),
        ("num_patches", 10, r"vision_config.num_patches must be a perfect square"),
        ("hidden_act", "swish", r"vision_config.hidden_act 'swish' is not supported"),
        ("hidden_size", "12", r"vision_config.hidden_size: expected int, got '12'"),
    ],
)
def test_inconsistent_config_names_the_field(tmp_path, field, value, message):
    config = tiny_config("naflex")
    config["vision_config"][field] = value
    folder = write_checkpoint(tmp_path / "c", config, {})
    expect(ConfigError, message, folder)


def test_projection_must_match_vision_width(tmp_path):
    config = tiny_config("naflex")
    config["text_config"]["projection_size"] = 16
    expect(ConfigError, r"projection_size \(16\) must equal vision_config.hidden_size \(12\)", write_checkpoint(tmp_path / "c", config, {}))


def test_missing_config(tmp_path):
    folder, _ = make(tmp_path, "naflex")
    (folder / "config.json").unlink()
    expect(ConfigError, "config.json: not found", folder)


def test_unknown_hub_id_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"(?s)models--google--siglip2-nothing.*hf download google/siglip2-nothing"):
        s2.load_model("google/siglip2-nothing")


def test_hub_id_resolves_in_local_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "cache" / "models--google--siglip2-tiny"
    make(repo / "snapshots", "naflex", name="abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    assert s2.load_model("google/siglip2-tiny").path == repo / "snapshots" / "abc123"


@pytest.mark.parametrize("variant", ["naflex", "fixres"])
def test_synthetic_layout_and_expected_shapes_are_the_layout_transformers_wrote(variant):
    """Both key lists (the test helper's and the loader's) against the header of a checkpoint transformers saved."""
    from safetensors import safe_open

    from siglip2_ref.checkpoint.config import load_config
    from siglip2_ref.checkpoint.weights import expected_shapes

    from .synthetic import GOLDEN_MODEL

    folder = GOLDEN_MODEL / "checkpoints" / variant
    with safe_open(folder / "model.safetensors", "np") as f:
        written = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    config = json.loads((folder / "config.json").read_text())
    assert tiny_shapes(config) == written
    assert expected_shapes(load_config(folder)) == written
