"""zero_shot, batched embedding and search.

Two kinds of expected values: (1) the model's own two-tower forward on the processor's arrays, which these tools
must reproduce (template, padding to 64, sigmoid, best-first order); this module checks the composition, the
forward itself is checked against transformers by the golden tests; (2) the drawing code of the demo images
(which colour and shape were drawn), for answers that only a working model gets right.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from siglip2_ref.demo import DEMO_FIXRES, DEMO_NAFLEX, EXAMPLE_IMAGE, shapes
from siglip2_ref.preprocess.images import ImageFileError
from siglip2_ref.model.model import load_model
from siglip2_ref.tasks.pipelines import (
    DEFAULT_TEMPLATE,
    classify_embeddings,
    embed_images,
    embed_texts,
    image_batches,
    rank_images,
    rank_texts,
    zero_shot,
)
from siglip2_ref.preprocess.processor import load_processor
from siglip2_ref.tasks.embedfile import save_embeddings
from siglip2_ref.tasks.readers import load_embeddings
from siglip2_ref.tasks.query import search
from siglip2_ref.porting.tolerances import assert_close
from siglip2_ref.model.vision import InputError
from tests.synthetic import random_weights, tiny_config, tiny_shapes, write_checkpoint

ROOT = Path(__file__).resolve().parent.parent
TOKENIZER_FILES = ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json")
DEMOS = {"naflex": DEMO_NAFLEX, "fixres": DEMO_FIXRES}


def tokenizer_source():
    """A folder with Gemma-style tokenizer files: the demo checkpoint's, else the preprocessing goldens'."""
    for folder in (Path(DEMO_NAFLEX), ROOT / "golden" / "preprocess" / "tokenizer"):
        if all((folder / name).is_file() for name in TOKENIZER_FILES):
            return folder
    pytest.skip("no tokenizer files yet (neither the demo checkpoint nor golden/preprocess/tokenizer)")


def needs_demo(variant="naflex"):
    if not os.path.isfile(os.path.join(DEMOS[variant], "model.safetensors")):
        pytest.skip(f"the {variant} demo checkpoint is not trained into siglip2_ref/demo/ yet")
    return DEMOS[variant]


def write_tiny(folder, variant):
    """A tiny random checkpoint with real tokenizer files and a small processor config (patch 2 px)."""
    config = tiny_config(variant)
    config["text_config"]["vocab_size"] = 1024  # >= any toy tokenizer's pieces
    write_checkpoint(folder, config, random_weights(tiny_shapes(config), seed=1))
    for name in TOKENIZER_FILES:
        shutil.copy(tokenizer_source() / name, Path(folder) / name)
    pre = ({"image_processor_type": "Siglip2ImageProcessor", "patch_size": 2, "max_num_patches": 16} if variant == "naflex"
           else {"image_processor_type": "SiglipImageProcessor", "size": {"height": 6, "width": 6}, "resample": 2})  # fmt: skip
    (Path(folder) / "preprocessor_config.json").write_text(json.dumps(pre))
    return Path(folder)


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {variant: write_tiny(root / variant, variant) for variant in ("naflex", "fixres")}


@pytest.fixture(scope="session", params=["naflex", "fixres"])
def tiny(request, tiny_folders):
    folder = tiny_folders[request.param]
    return load_model(folder), load_processor(folder)


@pytest.fixture(scope="session")
def demo():
    folder = needs_demo("naflex")
    return load_model(folder), load_processor(folder)


def random_image(seed, size=(50, 30)):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def forward_probabilities(model, processor, texts, images):  # -> [I, T] from the model's own two-tower forward
    batch = processor(text=texts, images=images, padding="max_length", max_length=64, truncation=True)
    logits = np.asarray(model(**batch).logits_per_image)
    return 1 / (1 + np.exp(-logits.astype(np.float64)))


# ---------------------------------------------------------------- zero_shot


LABELS = ["a cat", "a dog", "Red Circle", "blue star on the left", "x"]


def test_zero_shot_is_the_forward_pass_of_the_templated_labels(tiny):
    model, processor = tiny
    image = random_image(0)
    ranked = zero_shot(model, processor, image, LABELS)
    probs = forward_probabilities(model, processor, [DEFAULT_TEMPLATE.format(x) for x in LABELS], [image])[0]  # [T]
    expected = sorted(zip(LABELS, probs), key=lambda pair: -pair[1])
    assert [label for label, _ in ranked] == [label for label, _ in expected]
    assert_close(np.array([p for _, p in ranked]), np.array([p for _, p in expected]), "float32_pooled", "zero-shot probabilities")


def test_zero_shot_uses_the_given_template_and_top_k(tiny):
    model, processor = tiny
    image = random_image(1)
    ranked = zero_shot(model, processor, image, LABELS, template="a drawing of {}, maybe", top_k=2)
    probs = forward_probabilities(model, processor, [f"a drawing of {x}, maybe" for x in LABELS], [image])[0]
    assert len(ranked) == 2
    assert [label for label, _ in ranked] == [LABELS[i] for i in np.argsort(-probs, kind="stable")[:2]]


def test_zero_shot_on_a_list_gives_one_ranking_per_image(tiny):
    model, processor = tiny
    images = [random_image(2), random_image(3, (20, 60))]
    many = zero_shot(model, processor, images, LABELS)
    assert len(many) == 2
    for image, ranked in zip(images, many):
        single = zero_shot(model, processor, image, LABELS)
        assert [label for label, _ in ranked] == [label for label, _ in single]
        assert_close(np.array([p for _, p in ranked]), np.array([p for _, p in single]), "float32_pooled", "per image")


def test_probabilities_are_sigmoids_not_a_softmax(tiny):
    model, processor = tiny
    ranked = zero_shot(model, processor, random_image(4), LABELS)
    assert all(0.0 < p < 1.0 for _, p in ranked)
    assert abs(sum(p for _, p in ranked) - 1.0) > 1e-3  # five independent sigmoids near 0.45 here


def test_ties_keep_the_label_order(tiny):
    model, _ = tiny
    D = model.config.vision.hidden_size
    embed = np.eye(D, dtype=np.float32)[:1]  # [1, D]
    labels_embeds = np.stack([np.eye(D)[1], np.eye(D)[0], np.eye(D)[1]]).astype(np.float32)  # two equal scores
    (ranked,) = classify_embeddings(model, labels_embeds, embed, ["first tie", "best", "second tie"])
    assert [label for label, _ in ranked] == ["best", "first tie", "second tie"]


@pytest.mark.parametrize(
    "labels, template, message",
    [([], DEFAULT_TEMPLATE, "empty"), (["cat", " "], DEFAULT_TEMPLATE, r"labels\[1\]"), ("cat", DEFAULT_TEMPLATE, "single string"),
     (["cat"], "no slot", "exactly one"), (["cat"], "{} and {}", "exactly one"), (["cat"], "{0} x", "exactly one")],
)  # fmt: skip
def test_zero_shot_rejects_bad_labels_and_templates(tiny, labels, template, message):
    model, processor = tiny
    with pytest.raises(InputError, match=message):
        zero_shot(model, processor, random_image(0), labels, template=template)


def test_demo_model_names_the_demo_image(demo):
    model, processor = demo
    (label, p), (_, second) = zero_shot(model, processor, EXAMPLE_IMAGE, shapes.labels())[:2]
    assert label == "red circle" and p > second


# ---------------------------------------------------------------- batched embeddings


def test_mixed_aspect_ratios_share_a_batch(tiny):
    """NaFlex: each image keeps its own grid, padded and masked, so batch neighbours change nothing."""
    model, processor = tiny
    images = [random_image(5, (60, 12)), random_image(6, (12, 60)), random_image(7, (33, 33))]
    together = embed_images(model, processor, images, batch_size=3)
    alone = np.concatenate([embed_images(model, processor, [image], batch_size=1) for image in images])
    assert_close(together, alone, "float32_pooled", "batched vs single image embeddings")


def test_embeddings_are_normalised_image_features(tiny):
    model, processor = tiny
    images = [random_image(8), random_image(9, (20, 20))]
    raw = embed_images(model, processor, images, normalize=False)
    features = np.asarray(model.get_image_features(**processor(images=images)))
    assert_close(raw, features, "float32_pooled", "unnormalised embeddings")
    unit = embed_images(model, processor, images)
    assert_close(np.linalg.norm(unit, axis=1), np.ones(2, np.float32), "float32_pooled", "norms")
    texts = embed_texts(model, processor, ["a cat", "a dog", "x"], batch_size=2)
    ids = processor(text=["a cat", "a dog", "x"])["input_ids"]
    features = np.asarray(model.get_text_features(input_ids=ids))
    assert_close(texts, features / np.linalg.norm(features, axis=1, keepdims=True), "float32_pooled", "text embeddings")


def test_image_batches_pull_images_lazily(tiny):
    _, processor = tiny
    pulled = []

    def images():
        for i in range(10):
            pulled.append(i)
            yield random_image(i, (8 + i, 10))

    batches = image_batches(processor, images(), batch_size=4)
    first_indices, first = next(batches)
    assert first_indices == [0, 1, 2, 3] and len(pulled) == 4 and len(first["pixel_values"]) == 4
    assert [indices for indices, _ in batches] == [[4, 5, 6, 7], [8, 9]]


def test_unreadable_files_are_skipped_or_raise(tiny, tmp_path):
    model, processor = tiny
    good = tmp_path / "good.png"
    random_image(10).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not a PNG")
    errors = []
    batches = list(image_batches(processor, [str(good), str(bad), str(tmp_path / "missing.jpg"), str(good)], batch_size=8,
                                 on_error=lambda i, image, e: errors.append((i, type(e).__name__))))  # fmt: skip
    assert [indices for indices, _ in batches] == [[0, 3]]
    assert errors == [(1, "ImageFileError"), (2, "ImageFileError")]
    with pytest.raises(ImageFileError, match="bad.png"):
        embed_images(model, processor, [str(good), str(bad)])


# ---------------------------------------------------------------- ranking and search


def test_search_and_rank_follow_the_forward_logits(tiny):
    model, processor = tiny
    images = [random_image(11 + i, (20 + 7 * i, 30)) for i in range(4)]
    expected = forward_probabilities(model, processor, ["a cat"], images)[:, 0]  # [I]
    hits = search(model, processor, "a cat", embed_images(model, processor, images), top_k=3)
    assert [i for i, _ in hits] == list(np.argsort(-expected, kind="stable")[:3])
    assert_close(np.array([p for _, p in hits]), expected[[i for i, _ in hits]], "float32_pooled", "search scores")
    assert [i for i, _ in rank_images(model, processor, "a cat", images)] == list(np.argsort(-expected, kind="stable"))
    texts = ["a cat", "a dog", "Red Circle"]
    probs = forward_probabilities(model, processor, texts, images[:1])[0]
    assert [t for t, _ in rank_texts(model, processor, images[0], texts)] == [texts[i] for i in np.argsort(-probs, kind="stable")]


def test_demo_search_finds_the_drawn_shapes(demo):
    model, processor = demo
    rng = np.random.default_rng(7)
    drawn = [(c, s) for c in ("red", "blue", "green") for s in ("circle", "square", "star")]
    images = [shapes.draw(c, s, "center", rng, size=(96, 80)) for c, s in drawn]
    embeds = embed_images(model, processor, images, batch_size=4)
    for query in ("red circle", "blue square", "green star"):
        (best, p), *_ = search(model, processor, query, embeds, top_k=1)
        assert " ".join(drawn[best]) == query, f"{query!r} found a {' '.join(drawn[best])} ({p:.3f})"
    best_caption = rank_texts(model, processor, images[0], ["a blue star", "a red circle", "a green square"])[0][0]
    assert best_caption == "a red circle"


def test_search_rejects_embeddings_of_another_width(tiny):
    model, processor = tiny
    with pytest.raises(InputError, match="widths differ"):
        search(model, processor, "a cat", np.ones((3, model.config.vision.hidden_size + 1), np.float32))


# ---------------------------------------------------------------- embedding files


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_embedding_files_round_trip(tmp_path, suffix):
    path = tmp_path / f"e{suffix}"
    embeddings = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)  # stored rows are L2-normalised, and checked
    paths = ["a.png", "dir/b é.jpg", "c.webp"]
    save_embeddings(str(path), embeddings, paths, {"model": "/x/y", "dim": 5})
    loaded, loaded_paths, meta = load_embeddings(path)
    np.testing.assert_array_equal(loaded, embeddings)
    assert loaded_paths == paths and meta["model"] == "/x/y" and meta["dim"] == "5"
    assert sorted(os.listdir(tmp_path)) == [path.name]  # the temporary file was renamed into place


def test_load_embeddings_rejects_other_files(tmp_path, tiny_folders):
    with pytest.raises(InputError, match="no such embeddings file"):
        load_embeddings(tmp_path / "missing.safetensors")
    with pytest.raises(InputError, match="not an embeddings file"):
        load_embeddings(tiny_folders["naflex"] / "model.safetensors")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(InputError, match="not an embeddings file"):
        load_embeddings(tmp_path / "junk.npz")
