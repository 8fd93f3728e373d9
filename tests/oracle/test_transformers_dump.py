"""Live oracle: dumps written by transformers (golden/transformers_dump.py) against siglip2-ref's own dumps.

Every golden case (model input arrays, every golden checkpoint, float32 eager with attention maps and float64
SDPA) and full checkpoints with tokenizer and processor files (tiny ones built here, and the demo checkpoints
when present) from raw images and texts, through both of transformers' image back-ends: `compare` must find no
divergent stage. Also: the bicubic position resize against PyTorch's F.interpolate, and `compare` catching a
timm-style port (bicubic positions) in a real transformers dump.
"""

import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "golden"))

import make_golden  # noqa: E402
from transformers_dump import dump_transformers  # noqa: E402

from siglip2_ref.demo import DEMO_FIXRES, DEMO_NAFLEX, shapes  # noqa: E402
from siglip2_ref.model.model import load_model  # noqa: E402
from siglip2_ref.porting import compare_dumps, first_divergence, format_table, make_dump  # noqa: E402
from siglip2_ref.preprocess.processor import load_processor  # noqa: E402
from siglip2_ref.model.vision import naflex_position_embeddings  # noqa: E402
from siglip2_ref.porting.verify import case_names, load_case  # noqa: E402
from tests.synthetic import GOLDEN_MODEL  # noqa: E402

pytestmark = pytest.mark.oracle
transformers.logging.set_verbosity_error()
warnings.filterwarnings("ignore", module="transformers")

TEXTS = ["This is a photo of a RED circle.", "ÉCOLE Zürich, 東京! ΟΔΟΣ", "", "x " * 80]
SIZES = dict(hidden_size=32, num_attention_heads=4, intermediate_size=37, num_hidden_layers=2)
COMMON = {"resample": 2, "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
          "image_mean": [0.5] * 3, "image_std": [0.5] * 3}  # fmt: skip


def assert_no_divergence(ours, theirs, what):
    results = compare_dumps(ours, theirs)
    first = first_divergence(results)
    assert first is None, f"{what}: first divergent stage {first.stage}\n{format_table(results)}"
    assert not [r.stage for r in results if r.verdict != "ok"], f"{what}: stages in one dump only"
    return results


@pytest.mark.parametrize("case", case_names(GOLDEN_MODEL))
def test_adapter_dump_equals_ours_on_every_golden_case(case):
    meta, inputs, _, folder = load_case(case, GOLDEN_MODEL)
    call = {k: v for k, v in meta["call"].items() if k in ("interpolate_pos_encoding", "return_loss")}
    attentions = meta["dtype"] == "float32"
    theirs = dump_transformers(folder, arrays=inputs, dtype=meta["dtype"], attentions=attentions, **call)
    ours = make_dump(load_model(folder, dtype=meta["dtype"]), arrays=inputs, attentions=attentions, **call)
    results = assert_no_divergence(ours, theirs, case)
    assert {"vision.pooler_output", "text.pooler_output"} & {r.stage for r in results}


def build_checkpoint(folder, variant):
    """A tiny transformers checkpoint with real tokenizer files and a processor config (perturbed weights)."""
    if variant == "naflex":
        config = transformers.Siglip2Config(text_config=SIZES | {"vocab_size": 1000},
                                            vision_config=SIZES | {"patch_size": 16, "num_patches": 16})  # fmt: skip
        model = transformers.Siglip2Model(config)
        pre = {"image_processor_type": "Siglip2ImageProcessor", "patch_size": 16, "max_num_patches": 24, **COMMON}
    else:
        config = transformers.SiglipConfig(text_config=SIZES | {"vocab_size": 1000},
                                           vision_config=SIZES | {"patch_size": 8, "image_size": 32})  # fmt: skip
        model = transformers.SiglipModel(config)
        pre = {"image_processor_type": "SiglipImageProcessor", "size": {"height": 32, "width": 32}, **COMMON}
    make_golden.perturb_(model, torch.Generator().manual_seed(7))
    model.save_pretrained(folder)
    for f in (ROOT / "golden" / "preprocess" / "tokenizer").iterdir():
        shutil.copy(f, folder / f.name)
    (folder / "preprocessor_config.json").write_text(json.dumps(pre))
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {v: build_checkpoint(root / v, v) for v in ("naflex", "fixres")}


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    paths = []
    for k, size in enumerate([(100, 30), (40, 60), (200, 200), (7, 90), (1, 1)]):
        paths.append(root / f"im{k}.png")
        small = min(size) < 5  # too small to draw a shape on: one flat colour
        image = Image.new("RGB", size, (200, 30, 10)) if small else shapes.draw("red", "circle", "left", np.random.default_rng(k), size=size)
        image.save(paths[-1])
    return paths


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", ["pil", "torchvision"])
@pytest.mark.parametrize("variant", ["naflex", "fixres"])
def test_adapter_dump_equals_ours_from_raw_inputs(checkpoints, image_files, variant, backend, dtype):
    if backend == "torchvision":
        pytest.importorskip("torchvision")
    folder = checkpoints[variant]
    attentions = dtype == "float32"
    theirs = dump_transformers(folder, image_files, TEXTS, dtype=dtype, attentions=attentions, image_backend=backend)
    ours = make_dump(load_model(folder, dtype=dtype), load_processor(folder), image_files, TEXTS,
                     conventions={"image_resize": backend}, attentions=attentions)  # fmt: skip
    results = assert_no_divergence(ours, theirs, f"{variant} {backend} {dtype}")
    tiers = {r.tier for r in results}
    assert "exact" in tiers and "float32_pixels" in tiers
    assert ("float64" in tiers) == (dtype == "float64")


@pytest.mark.parametrize("variant, folder", [("naflex", DEMO_NAFLEX), ("fixres", DEMO_FIXRES)])
def test_adapter_dump_equals_ours_on_the_demo_checkpoints(image_files, variant, folder):
    if not (Path(folder) / "model.safetensors").is_file():
        pytest.skip(f"the {variant} demo checkpoint is not trained yet")
    theirs = dump_transformers(folder, image_files, TEXTS, dtype="float64")
    ours = make_dump(load_model(folder, dtype="float64"), load_processor(folder), image_files, TEXTS)
    assert_no_divergence(ours, theirs, f"demo {variant}")


def test_compare_catches_a_timm_style_port_in_a_transformers_dump(checkpoints, image_files):
    folder = checkpoints["naflex"]
    theirs = dump_transformers(folder, image_files, TEXTS)
    bicubic = make_dump(load_model(folder), load_processor(folder), image_files, TEXTS, conventions="position_resize=bicubic")
    assert first_divergence(compare_dumps(bicubic, theirs)).stage == "vision.position_embeddings"


@pytest.mark.parametrize("shape", [(16, 16), (8, 32), (32, 8), (3, 5), (20, 12), (7, 16), (25, 10), (64, 4), (2, 128)])
def test_bicubic_position_resize_matches_torch_interpolate(shape):
    """timm's NaFlexViT: F.interpolate(pos, size, mode="bicubic", align_corners=False, antialias=True) in float32,
    skipped when the grid is unchanged. (Width-1 outputs are left out: torch's CPU antialiased kernel mishandles
    them, docs/parity.md "Deliberate choices"; the closed form here gives the separable result.)"""
    G, D = 16, 6
    table = np.random.default_rng(0).standard_normal((G * G, D)).astype(np.float32)
    h, w = shape
    ours = naflex_position_embeddings(table, np.array([shape]), h * w, method="bicubic")[0]
    grid = torch.from_numpy(table).reshape(G, G, D).permute(2, 0, 1)[None]
    if shape == (G, G):
        expected = table
    else:
        expected = torch.nn.functional.interpolate(grid, size=shape, mode="bicubic", align_corners=False, antialias=True)
        expected = expected[0].permute(1, 2, 0).reshape(h * w, D).numpy()
    err = np.abs(ours - expected).max() / np.abs(expected).max()
    assert err <= 1e-6, f"{shape}: stage-relative error {err:.2e}"
