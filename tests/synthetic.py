"""Synthetic checkpoints written without torch: tiny configs, random weights, any storage dtype, sharding.

The key list comes from the real transformers layout recorded in the golden checkpoints
(golden/model/checkpoints/*/model.safetensors), not from the code under test.
"""

import json
import struct
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
GOLDEN_MODEL = GOLDEN / "model"  # the model goldens (golden/README.md)

TINY_TEXT = dict(vocab_size=40, hidden_size=12, intermediate_size=7, num_hidden_layers=2, num_attention_heads=3)
TINY_VISION = dict(hidden_size=12, intermediate_size=7, num_hidden_layers=2, num_attention_heads=2, patch_size=2)


def tiny_config(variant="naflex", **vision_overrides):
    vision = TINY_VISION | ({"num_patches": 9} if variant == "naflex" else {"image_size": 6}) | vision_overrides
    model_type = "siglip2" if variant == "naflex" else "siglip"
    arch = "Siglip2Model" if variant == "naflex" else "SiglipModel"
    return {"model_type": model_type, "architectures": [arch], "text_config": dict(TINY_TEXT), "vision_config": vision}


def tiny_shapes(config):
    """The official key layout for a tiny config (the layout of siglip2_ref/checkpoint/weights.py, written out independently)."""
    v, t = config["vision_config"], config["text_config"]
    D, F, P = v["hidden_size"], v["intermediate_size"], v["patch_size"]
    Dt, Ft = t["hidden_size"], t["intermediate_size"]
    naflex = config["model_type"] == "siglip2"
    G2 = v["num_patches"] if naflex else (v["image_size"] // P) ** 2
    s = {"logit_scale": (1,), "logit_bias": (1,)}
    s["vision_model.embeddings.patch_embedding.weight"] = (D, 3 * P * P) if naflex else (D, 3, P, P)
    s["vision_model.embeddings.patch_embedding.bias"] = (D,)
    s["vision_model.embeddings.position_embedding.weight"] = (G2, D)
    for tower, width, mlp, n in [("vision_model", D, F, v["num_hidden_layers"]), ("text_model", Dt, Ft, t["num_hidden_layers"])]:
        for i in range(n):
            p = f"{tower}.encoder.layers.{i}"
            for name in ["layer_norm1", "layer_norm2"]:
                s[f"{p}.{name}.weight"] = s[f"{p}.{name}.bias"] = (width,)
            for name in ["q_proj", "k_proj", "v_proj", "out_proj"]:
                s[f"{p}.self_attn.{name}.weight"], s[f"{p}.self_attn.{name}.bias"] = (width, width), (width,)
            s[f"{p}.mlp.fc1.weight"], s[f"{p}.mlp.fc1.bias"] = (mlp, width), (mlp,)
            s[f"{p}.mlp.fc2.weight"], s[f"{p}.mlp.fc2.bias"] = (width, mlp), (width,)
    s["vision_model.post_layernorm.weight"] = s["vision_model.post_layernorm.bias"] = (D,)
    h = "vision_model.head"
    s |= {f"{h}.probe": (1, 1, D), f"{h}.attention.in_proj_weight": (3 * D, D), f"{h}.attention.in_proj_bias": (3 * D,),
          f"{h}.attention.out_proj.weight": (D, D), f"{h}.attention.out_proj.bias": (D,),
          f"{h}.layernorm.weight": (D,), f"{h}.layernorm.bias": (D,), f"{h}.mlp.fc1.weight": (F, D),
          f"{h}.mlp.fc1.bias": (F,), f"{h}.mlp.fc2.weight": (D, F), f"{h}.mlp.fc2.bias": (D,)}  # fmt: skip
    s["text_model.embeddings.token_embedding.weight"] = (t["vocab_size"], Dt)
    s["text_model.embeddings.position_embedding.weight"] = (t.get("max_position_embeddings", 64), Dt)
    s["text_model.final_layer_norm.weight"] = s["text_model.final_layer_norm.bias"] = (Dt,)
    s["text_model.head.weight"], s["text_model.head.bias"] = (t.get("projection_size", Dt), Dt), (t.get("projection_size", Dt),)
    return s


def random_weights(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return {k: (rng.standard_normal(shape) * 0.3).astype(np.float32) for k, shape in shapes.items()}


def bf16_bits(x):
    """float32 -> bfloat16 bit patterns by truncation (so the values round-trip exactly)."""
    return (np.ascontiguousarray(x, np.float32).view(np.uint32) >> 16).astype(np.uint16)


def write_safetensors(path, tensors):
    """Minimal safetensors writer: {name: (array, dtype tag)} with tags F32/F16/F64/BF16/I64..."""
    header, blobs, offset = {}, [], 0
    for name, (array, tag) in tensors.items():
        data = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": tag, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


TAGS = {np.float32: "F32", np.float16: "F16", np.float64: "F64"}


def write_checkpoint(folder, config, weights, storage="F32", shards=1):
    """A checkpoint folder: config.json + weights stored as `storage`, optionally sharded with an index."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    stored = {}
    for k, w in weights.items():
        if storage == "BF16":
            stored[k] = (bf16_bits(w), "BF16")
        else:
            dtype = {"F32": np.float32, "F16": np.float16, "F64": np.float64}[storage]
            stored[k] = (w.astype(dtype), storage)
    if shards == 1:
        write_safetensors(folder / "model.safetensors", stored)
        return folder
    names = sorted(stored)
    weight_map = {}
    for i in range(shards):
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = names[i::shards]
        write_safetensors(folder / fname, {k: stored[k] for k in part})
        weight_map |= {k: fname for k in part}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder
