"""Live comparison of `siglip2_ref.zero_shot` with transformers' zero-shot-image-classification pipeline.

Both run on the shipped demo checkpoints with the same images and labels: the pipeline's default template,
padding to 64 and sigmoid scores must give the same order and the same probabilities. Probabilities are
compared on their own scale, 1 (as tests/oracle/test_live_model.py compares cosines), with the float32 pooled
tier: a float32 logit l carries an error of about 1e-7 |l| (|l| < 20 here), which moves p = sigmoid(l) by at
most p (1 - p) times that, under 5e-7. Measured against the largest probability of an image instead, an image
that fits no label (all p ~ 0.005) would turn a 2e-8 difference into 4e-6.
"""

import warnings

import numpy as np
import pytest

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import siglip2_ref as s2  # noqa: E402
from siglip2_ref.demo import DEMO_FIXRES, DEMO_NAFLEX, EXAMPLE_IMAGE, shapes  # noqa: E402
from siglip2_ref.porting.tolerances import TIERS  # noqa: E402

pytestmark = pytest.mark.oracle
transformers.logging.set_verbosity_error()
warnings.filterwarnings("ignore", module="transformers")

SEED = 77  # fresh shape images, not the training pool's (0) nor the demo test's (2024)
LABELS = ["red circle", "blue circle", "red square", "green triangle", "yellow star", "purple square"]


def images():
    from PIL import Image

    rng = np.random.default_rng(SEED)
    return [Image.open(EXAMPLE_IMAGE).convert("RGB")] + [shapes.sample(rng)[0] for _ in range(5)]


@pytest.mark.parametrize("path", [DEMO_NAFLEX, DEMO_FIXRES], ids=["naflex", "fixres"])
def test_zero_shot_matches_the_transformers_pipeline(path):
    classifier = transformers.pipeline("zero-shot-image-classification", model=str(path), device="cpu")
    backend = "pil" if type(classifier.image_processor).__name__.endswith("Pil") else "torchvision"  # as installed
    model, processor = s2.load_model(path), s2.load_processor(path, resize_backend=backend)
    for i, image in enumerate(images()):
        theirs = classifier(image, candidate_labels=LABELS)  # [{"score", "label"}], best first
        ours = s2.zero_shot(model, processor, image, LABELS)  # [(label, probability)], best first
        assert [label for label, _ in ours] == [row["label"] for row in theirs], (i, ours, theirs)
        error = np.abs(np.array([p for _, p in ours]) - [row["score"] for row in theirs]).max()
        assert error <= TIERS["float32_pooled"].rel, f"image {i}: probabilities differ by {error:.3g}: {ours} {theirs}"
