"""Live: the published-values check of `selfcheck` against transformers itself, run as its integration test runs.

transformers' SigLIP 2 integration test calls `Siglip2Processor.from_pretrained(name)(text=..., images=...)` and
the model on the drawn circle pictures. Here the same call runs on the NaFlex demo checkpoint; its logits become
a "published" record (rtol = atol = 1e-5, a hundred times tighter than the test's 1e-3) that this package must
meet. A second test checks that the committed transformers reference of the demo models is what transformers
computes now (golden/make_selfcheck.py --check does the same, bit for bit).

Found on the way: transformers 5.24's `Siglip2Processor.__call__` resizes NaFlex images to its own default of 256
patches even when preprocessor_config.json says otherwise (the demo: 64); its image processor alone, and this
package's processor, use the folder's value. The tests below pass the folder's budget explicitly.
"""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from siglip2_ref.demo import DEMO_NAFLEX  # noqa: E402
from siglip2_ref.model.model import load_model  # noqa: E402
from siglip2_ref.porting import published as pub  # noqa: E402
from siglip2_ref.porting.dump import read_dump  # noqa: E402
from siglip2_ref.porting.selfcheck import record_check  # noqa: E402

pytestmark = pytest.mark.oracle
transformers.logging.set_verbosity_error()
warnings.filterwarnings("ignore", module="transformers")


def transformers_logits_per_text(folder):
    processor = transformers.Siglip2Processor.from_pretrained(folder)
    model = transformers.Siglip2Model.from_pretrained(folder).eval()
    # Siglip2Processor's own images_kwargs default (max_num_patches 256) overrides preprocessor_config.json's 64
    # of the demo model; official checkpoints have 256 in both places. Pass the folder's budget explicitly.
    budget = processor.image_processor.max_num_patches
    inputs = processor(text=list(pub.CIRCLE_TEXTS), images=pub.circle_images(), max_num_patches=budget, return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits_per_text.numpy(), type(processor.image_processor).__name__


def test_selfcheck_reproduces_transformers_logits_as_a_published_record():
    logits, image_processor = transformers_logits_per_text(DEMO_NAFLEX)
    backend = "pil" if image_processor.endswith("Pil") else "torchvision"
    record = pub.Record(name="demo-naflex (live)", kind="published", source=f"transformers {transformers.__version__}",
                        images="circles", texts=pub.CIRCLE_TEXTS, rtol=1e-5, atol=1e-5, resize_backend=backend,
                        expected={"logits_per_text": logits.tolist()}, config={"variant": "naflex"})  # fmt: skip
    model = load_model(DEMO_NAFLEX)
    check = record_check(record, DEMO_NAFLEX, model.config, model)
    assert check.status == "pass", check
    assert check.stage == "logits_per_text"


def test_the_committed_demo_reference_is_what_transformers_computes():
    logits, _ = transformers_logits_per_text(DEMO_NAFLEX)
    stages, manifest = read_dump(pub.EXPECTED_DIR / "naflex.safetensors")
    assert manifest["versions"]["transformers"] == transformers.__version__
    np.testing.assert_allclose(stages["logits_per_text"], logits, rtol=1e-6, atol=1e-6)
