"""The shipped demo checkpoints: official folder layout, and correct zero-shot answers on fresh shape images.

The expected answers come from the drawing code (the colour and shape that were drawn), not from any model;
the accuracy is measured through the public API (`load_model`, `load_processor`, `zero_shot`), so a wrong
preprocessing, tokenizer or forward pass shows up here as wrong answers.
"""

import json
import os

import numpy as np
import pytest

import siglip2_ref as s2
from siglip2_ref.demo import DEMO_FIXRES, DEMO_NAFLEX, EXAMPLE_IMAGE, demo_path, shapes

VARIANTS = {"naflex": (DEMO_NAFLEX, "siglip2"), "fixres": (DEMO_FIXRES, "siglip")}
FILES = [
    "config.json",
    "model.safetensors",
    "tokenizer.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "preprocessor_config.json",
]
N_IMAGES = 100  # fresh images per variant (runtime: ~3 s per variant on 2 cores)
SEED = 2024  # neither the training pool's seed (0) nor train_demo.py's evaluation seed (12345)
MIN_TOP1 = 0.90


def needs_api():
    """Skip (with the reason) while the loading/zero-shot API this test drives is not in the package."""
    missing = [name for name in ("load_model", "load_processor", "zero_shot") if not hasattr(s2, name)]
    if missing:
        pytest.skip(f"siglip2_ref does not provide {missing} yet")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_demo_folder_has_the_official_layout(variant):
    path, model_type = VARIANTS[variant]
    assert demo_path(variant) == path
    for name in FILES:
        assert os.path.isfile(os.path.join(path, name)), f"{variant}: {name} missing in {path}"
    with open(os.path.join(path, "config.json")) as f:
        assert json.load(f)["model_type"] == model_type
    with open(os.path.join(path, "tokenizer_config.json")) as f:
        tok = json.load(f)
    assert (tok["add_bos_token"], tok["add_eos_token"], tok["padding_side"]) == (False, True, "right")


def test_demo_path_rejects_unknown_variant():
    with pytest.raises(ValueError, match="unknown demo variant"):
        demo_path("so400m")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_demo_model_answers_zero_shot_colour_and_shape(variant):
    needs_api()
    model = s2.load_model(VARIANTS[variant][0])
    processor = s2.load_processor(VARIANTS[variant][0])
    labels = shapes.labels()
    rng = np.random.default_rng(SEED)
    drawn = [shapes.sample(rng) for _ in range(N_IMAGES)]
    answers = s2.zero_shot(model, processor, [image for image, _, _ in drawn], labels)  # one list per image
    wrong = []
    for (_, _, (colour, shape, _)), ranked in zip(drawn, answers):
        assert len(ranked) == len(labels) and all(0.0 <= p <= 1.0 for _, p in ranked)
        if ranked[0][0] != f"{colour} {shape}":
            wrong.append((f"{colour} {shape}", ranked[0][0]))
    top1 = 1 - len(wrong) / N_IMAGES
    assert top1 >= MIN_TOP1, f"{variant}: top-1 {top1:.2f} < {MIN_TOP1}; (truth, answer) for misses: {wrong[:10]}"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_demo_example_image_is_a_red_circle(variant):
    needs_api()
    from PIL import Image

    model = s2.load_model(VARIANTS[variant][0])
    processor = s2.load_processor(VARIANTS[variant][0])
    ranked = s2.zero_shot(model, processor, Image.open(EXAMPLE_IMAGE), ["red circle", "blue circle", "red square"])
    assert ranked[0][0] == "red circle" and ranked[0][1] > 0.5, ranked
