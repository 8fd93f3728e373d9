"""Every stage of every golden case against transformers 5.24 (golden/README.md), end to end and layer by layer."""

import numpy as np
import pytest

from siglip2_ref.model.layers import encoder_layer, key_padding_bias, layer_norm
from siglip2_ref.model.model import load_model
from siglip2_ref.porting.tolerances import TIERS, assert_close
from siglip2_ref.model.vision import map_head
from siglip2_ref.porting.verify import case_names, load_case, run_case
from tests.synthetic import GOLDEN_MODEL

CASES = case_names(GOLDEN_MODEL)


@pytest.mark.parametrize("case", CASES)
def test_every_stage_end_to_end(case):
    meta, rows, got, expected = run_case(case, GOLDEN_MODEL)
    problems = [f"{stage}: missing or wrong shape {getattr(got.get(stage), 'shape', None)} vs {expected[stage].shape}"
                for stage, diff, _ in rows if diff is None]  # fmt: skip
    problems += [f"{stage}: stage-relative error {d.max_rel:.3g} > {TIERS[t].rel:g} ({t}); worst index {d.worst_index}, "
                 f"(ours, transformers) {d.pairs}" for stage, d, t in rows if d is not None and d.max_rel > TIERS[t].rel]  # fmt: skip
    problems += [f"{stage}: dtype {got[stage].dtype}" for stage, d, _ in rows if d is not None and got[stage].dtype != np.dtype(meta["dtype"])]
    assert not problems, f"{case}:\n  " + "\n  ".join(problems)


def hidden_states(expected, tower):
    keys = sorted((k for k in expected if k.startswith(f"{tower}.hidden_states.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    return [expected[k] for k in keys]


def with_layer_states(case):
    stages = load_case(case, GOLDEN_MODEL)[0]["stages"]
    return any(stages.get(tower) in ("hidden", "all") for tower in ("vision", "text"))


@pytest.mark.parametrize("case", [c for c in CASES if c.endswith("f64") and with_layer_states(c)])
def test_each_layer_from_golden_input_float64(case):
    """Teacher forcing: each layer is fed transformers' own input, so no float32 step upstream
    (NaFlex position resize) can hide an error here: every layer must match to 1e-12."""
    meta, inputs, expected, folder = load_case(case, GOLDEN_MODEL)
    if meta["attn_implementation"] == "eager":
        pytest.skip("eager float64 goldens round softmax through float32")
    model = load_model(folder, dtype="float64")
    checked = 0
    for tower, cfg in (("vision", model.config.vision), ("text", model.config.text)):
        hidden = hidden_states(expected, tower)
        mask = inputs.get("pixel_attention_mask") if tower == "vision" else inputs.get("attention_mask")
        bias = None if mask is None else key_padding_bias(mask, np.float64)
        for i in range(len(hidden) - 1):
            layer = model.params[f"{tower}_model"]["encoder"]["layers"][i]
            out, _ = encoder_layer(hidden[i], bias, layer, cfg)
            diff = np.abs(out - hidden[i + 1]).max() / np.abs(hidden[i + 1]).max()
            assert diff <= TIERS["float64"].rel, f"{case} {tower} layer {i}: stage-relative error {diff:.3g}"
            checked += 1
    assert checked, f"{case}: no layer pairs stored"
    vision = model.params["vision_model"]
    post = layer_norm(hidden_states(expected, "vision")[-1], **vision["post_layernorm"], eps=model.config.vision.layer_norm_eps)
    assert_close(post, expected["vision.last_hidden_state"], "float64", f"{case} post_layernorm from golden input")
    if "vision.pooler_output" in expected:
        head = vision["head"]
        pooled, _ = map_head(expected["vision.last_hidden_state"], inputs.get("pixel_attention_mask"), model.config.vision,
                             head["probe"], head["attention"], head["layernorm"], head["mlp"])  # fmt: skip
        assert_close(pooled, expected["vision.pooler_output"], "float64", f"{case} MAP head from golden input")
