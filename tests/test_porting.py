"""Porter tools: stage dumps, `compare` naming the first divergent stage, and the golden bundle.

The planted-fault tests make two dumps of the same inputs with this package's own code: a reference, and one with
exactly one fault injected (through a convention switch or a small monkeypatch, each a mistake ports have made).
`compare` must name exactly the stage where the fault enters as the first divergent one. The reference is a tiny
random checkpoint with real tokenizer files (write_tiny in tests/test_pipelines.py), run on the plain encoder so that
patched layer functions take effect.
"""

import json

import numpy as np
import pytest
from PIL import Image

from siglip2_ref.porting import conventions
from siglip2_ref.preprocess import images as images_module
from siglip2_ref.model import model as model_module
from siglip2_ref.porting import stages as stages_module
from siglip2_ref.model import text as text_module
from siglip2_ref.model import layers
from siglip2_ref.model import vision as vision_module
from siglip2_ref.demo import shapes
from siglip2_ref.model.model import load_model
from siglip2_ref.porting import (DumpError, check_bundle, compare_dumps, export_goldens, first_divergence,
                                 load_bundle, make_dump, read_dump, write_dump)  # fmt: skip
from siglip2_ref.preprocess.processor import load_processor
from siglip2_ref.porting.tolerances import TIERS
from siglip2_ref.porting.verify import load_case
from tests.synthetic import GOLDEN_MODEL
from tests.test_cli import run
from tests.test_pipelines import tiny_folders  # noqa: F401 (fixture)

TEXTS = ["This is a photo of a RED circle.", "ÉCOLE Zürich, 東京!", "", "x " * 80]


def rgba_image():
    """A drawn shape whose alpha falls off to the left: transparency handling matters for its pixels."""
    rgb = np.asarray(shapes.draw("blue", "star", "center", np.random.default_rng(3), size=(100, 30)))
    alpha = np.tile(np.linspace(40, 255, 100).astype(np.uint8), (30, 1))[..., None]
    return Image.fromarray(np.concatenate([rgb, alpha], axis=-1), "RGBA")


IMAGES = [rgba_image(), shapes.draw("red", "circle", "left", np.random.default_rng(1), size=(40, 61)),
          shapes.draw("green", "square", "top", np.random.default_rng(2), size=(57, 57))]  # fmt: skip


@pytest.fixture(scope="module")
def folder(tiny_folders):  # noqa: F811
    return tiny_folders["naflex"]


def dump(folder, images=IMAGES, texts=TEXTS, conv=None, model=None, **kwargs):
    model = model or load_model(folder, fast=False)
    return make_dump(model, load_processor(folder), images, texts, conventions=conv or conventions.DEFAULT, attentions=True, **kwargs)


@pytest.fixture(scope="module")
def reference(folder):
    return dump(folder)


def test_reference_batch_has_padding_and_non_square_grids(reference):
    stages, _ = reference
    mask, grids = stages["vision.pixel_attention_mask"], stages["vision.spatial_shapes"]
    assert (mask.sum(1) < mask.shape[1]).any(), "the fault tests need padded patches"
    assert (grids[:, 0] != grids[:, 1]).any()


def test_identical_dumps_pass_every_stage(folder, reference):
    results = compare_dumps(dump(folder), reference)
    assert first_divergence(results) is None
    assert all(r.verdict == "ok" for r in results)
    assert {r.tier for r in results} >= {"exact", "float32_pixels", "float32_stage", "float32_pooled"}


# ---------------------------------------------------------------- planted faults, one per stage


def head_without_bias(model):
    model.params["text_model"]["head"]["bias"] = np.zeros_like(model.params["text_model"]["head"]["bias"])


def patch_embedding_without_bias(model):
    emb = model.params["vision_model"]["embeddings"]["patch_embedding"]
    emb["bias"] = np.zeros_like(emb["bias"])


def mask_on_the_right(patches, n_max):  # left-aligned patches, but the mask marks the last slots
    padded, mask = PAD_PATCHES(patches, n_max)
    return padded, mask[::-1].copy()


PAD_PATCHES = conventions.pad_patches
PATCHIFY = conventions.patchify
BATCH_INPUTS = conventions.stack_steps
TOKENIZE = conventions.tokenize
TO_RGB = conventions.to_rgb
TEXT_EMBEDDINGS = text_module.text_embeddings
TEXT_LAYER_NORM = text_module.layer_norm
MAP_HEAD = vision_module.map_head


def channels_first_patches(image, p):  # (c, py, px) flattening, as a Conv2d weight reshape would give
    C, h, w = image.shape
    x = image.reshape(C, h // p, p, w // p, p).transpose(1, 3, 0, 2, 4)
    return x.reshape((h // p) * (w // p), C * p * p)


def swapped_shapes(steps, *dtype):
    out = BATCH_INPUTS(steps, *dtype)
    return out | {"spatial_shapes": out["spatial_shapes"][:, ::-1].copy()}


def with_bos(tokenizer, texts, convention="hf", length=64):
    normalized, ids = TOKENIZE(tokenizer, texts, convention, length)
    return normalized, np.concatenate([np.full((len(ids), 1), 2), ids[:, :-1]], axis=1)


def alpha_dropped(image, backend="pil"):  # transformers 4.x: convert("RGB") drops alpha
    return TO_RGB(image.convert("RGB") if isinstance(image, Image.Image) else image, backend)


def gemma_scaled_embeddings(params, input_ids, position_ids=None):
    tokens = params["token_embedding"]["weight"][input_ids] * np.sqrt(params["token_embedding"]["weight"].shape[1])
    return tokens + params["position_embedding"]["weight"][: input_ids.shape[1]]


def final_norm_without_bias(x, weight, bias, eps):
    return TEXT_LAYER_NORM(x, weight, np.zeros_like(bias), eps)


def unmasked_head(x, mask, *args):
    return MAP_HEAD(x, None, *args)


def mean_pooling(x, mask, *args):  # a port without the MAP head: masked mean, no attention weights
    m = mask.astype(x.dtype)[..., None]
    return (x * m).sum(1) / m.sum(1), None


def softmax_probabilities(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def unexponentiated_scale(text_embeds, image_embeds, logit_scale, logit_bias):
    return (text_embeds @ image_embeds.T) * logit_scale + logit_bias


def identity(x):
    return x


def plain_bilinear(image, size, *args):  # the classic port: cv2/TF-style bilinear, no antialiasing
    return conventions.big_vision_fixres_resize(image, size)


# (stage where the fault enters, description, how to plant it)
FAULTS = [
    ("text.normalized", "ASCII-only lowercase (big_vision) on a NaFlex checkpoint", dict(conv="text=big_vision")),
    ("text.input_ids", "BOS prepended", dict(patch=[(conventions, "tokenize", with_bos)])),
    ("text.embeddings", "Gemma's sqrt(D) embedding scale", dict(patch=[(text_module, "text_embeddings", gemma_scaled_embeddings)])),
    ("text.attentions.0", "text attention mask passed", dict(text_mask=True)),
    ("text.hidden_states.1", "erf GELU instead of tanh", dict(patch=[(layers.ACTIVATIONS, "gelu_pytorch_tanh", layers.gelu_erf)])),
    ("text.last_hidden_state", "final norm without its bias", dict(patch=[(text_module, "layer_norm", final_norm_without_bias)])),
    ("text.pooled_token", "pooling the first position", dict(pool_first=True)),
    ("text.pooler_output", "text head without bias", dict(params=head_without_bias)),
    ("image.rgb.0", "alpha dropped instead of composited onto white", dict(patch=[(images_module, "to_rgb", alpha_dropped)])),
    ("image.resized.0", "bilinear resize without antialiasing", dict(patch=[(images_module, "resize_any", plain_bilinear)])),
    ("image.normalized.0", "ImageNet mean/std instead of 0.5/0.5", dict(imagenet=True)),
    ("vision.pixel_values", "patches flattened (c, py, px)", dict(patch=[(images_module, "patchify", channels_first_patches)])),
    ("vision.pixel_attention_mask", "mask marks the wrong slots", dict(patch=[(images_module, "pad_patches", mask_on_the_right)])),
    ("vision.spatial_shapes", "(w, h) instead of (h, w)", dict(patch=[(conventions, "stack_steps", swapped_shapes)])),
    ("vision.patch_embeds", "patch embedding without bias", dict(params=patch_embedding_without_bias)),
    ("vision.position_embeddings", "bicubic position resize (timm)", dict(conv="position_resize=bicubic")),
    ("vision.attentions.0", "padding mask not applied", dict(image_mask=False)),
    ("vision.hidden_states.1", "erf GELU (images only)", dict(texts=None, patch=[(layers.ACTIVATIONS, "gelu_pytorch_tanh", layers.gelu_erf)])),
    ("vision.last_hidden_state", "post-norm skipped", dict(patch=[(vision_module, "layer_norm", lambda x, weight, bias, eps: x)])),
    ("vision.head_attention", "MAP head attends to padding", dict(patch=[(vision_module, "map_head", unmasked_head)])),
    ("vision.pooler_output", "mean pooling instead of the MAP head", dict(patch=[(vision_module, "map_head", mean_pooling)])),
    ("image_embeds", "no L2 normalisation", dict(patch=[(model_module, "l2_normalize", identity)])),
    ("logits_per_image", "logit_scale used without exp", dict(patch=[(model_module, "similarity_logits", unexponentiated_scale)])),
    ("probabilities", "softmax over texts instead of a sigmoid", dict(patch=[(stages_module, "sigmoid", softmax_probabilities)])),
]  # fmt: skip


def planted_dump(folder, monkeypatch, plant):
    """A dump of the reference inputs with one fault injected."""
    for owner, name, value in plant.get("patch", []):
        if isinstance(owner, dict):
            monkeypatch.setitem(owner, name, value)
        else:
            monkeypatch.setattr(owner, name, value)
    model = load_model(folder, fast=False)
    if "params" in plant:
        plant["params"](model)
    if plant.get("text_mask"):
        plain = model.text_forward
        monkeypatch.setattr(model, "text_forward", lambda ids, mask=None, *a, **k: plain(ids, (np.asarray(ids) != 0).astype(np.int64), *a, **k))
    if plant.get("image_mask") is False:
        plain_vision = model.vision_forward
        monkeypatch.setattr(model, "vision_forward", lambda pixels, mask=None, *a, **k: plain_vision(pixels, None, *a, **k))
    processor = load_processor(folder)
    if plant.get("imagenet"):
        processor.image_processor.config |= {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
    texts = plant.get("texts", TEXTS)
    stages, manifest = make_dump(model, processor, IMAGES, texts, conventions=plant.get("conv"), attentions=True)
    if plant.get("pool_first"):  # what a port that reads position 0 writes as its pooled token
        stages["text.pooled_token"] = stages["text.last_hidden_state"][:, 0]
    return stages, manifest


@pytest.mark.parametrize("stage, description, plant", FAULTS, ids=[f[0] for f in FAULTS])
def test_compare_names_the_stage_where_a_planted_fault_enters(folder, reference, monkeypatch, stage, description, plant):
    candidate = planted_dump(folder, monkeypatch, plant)
    results = compare_dumps(candidate, reference)
    first = first_divergence(results)
    assert first is not None, f"{description}: no divergence found"
    assert first.stage == stage, f"{description}: first divergent stage {first.stage}, expected {stage}"


def test_faults_cover_each_kind_of_stage():
    planted = {f[0].split(".")[0] for f in FAULTS}
    assert planted >= {"text", "image", "vision", "image_embeds", "logits_per_image", "probabilities"}


# ---------------------------------------------------------------- what compare measures


def test_padded_rows_are_ignored_in_token_stages(folder, reference):
    stages, manifest = dump(folder)
    mask = stages["vision.pixel_attention_mask"]
    b, n = map(int, np.argwhere(mask == 0)[0])
    for name in ("vision.last_hidden_state", "vision.hidden_states.1"):
        stages[name] = stages[name].copy()
        stages[name][b, n] += 100.0  # a port that masks padded queries (big_vision) writes other padded rows
    assert first_divergence(compare_dumps((stages, manifest), reference)) is None


def test_float64_reference_against_float32_candidate_uses_float32_tiers(folder, reference):
    results = {r.stage: r for r in compare_dumps(reference, dump(folder, model=load_model(folder, dtype="float64")))}
    assert first_divergence(results.values()) is None
    assert results["vision.hidden_states.1"].tier == "float32_stage"
    assert results["logits_per_image"].tier == "float32_pooled"
    assert 0 < results["vision.pooler_output"].max_rel < TIERS["float32_pooled"].rel


def test_metrics_of_a_known_difference():
    ref = {"logits_per_image": np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]])}
    cand = {"logits_per_image": np.array([[3.0, 1.0, 0.5], [0.0, 0.5, 1.0]])}
    manifest = {"precision": {"dtype": "float32"}}
    (r,) = compare_dumps((cand, manifest), (ref, manifest))
    assert r.max_abs == 1.5 and r.max_rel == 0.5  # worst |diff| over max |reference|
    assert r.nmse == pytest.approx((0.25 + 2.25) / 15)
    assert r.cosine == pytest.approx(float((cand["logits_per_image"] * ref["logits_per_image"]).sum()) / np.sqrt(11.5 * 15))
    assert (r.top1, r.ranking) == (0.5, 0.5)  # row 2's best text changed; row 1 keeps its order
    assert r.diverged


def test_stages_in_one_dump_only_are_listed_not_failed(reference):
    stages, manifest = reference
    partial = {k: v for k, v in stages.items() if not k.startswith("text.")}
    results = compare_dumps((partial, manifest), reference)
    assert first_divergence(results) is None
    assert {r.verdict for r in results if r.stage.startswith("text.")} == {"only in B"}


# ---------------------------------------------------------------- the file format


def test_dump_round_trip_and_manifest(folder, reference, tmp_path):
    stages, manifest = reference
    write_dump(tmp_path / "d.safetensors", stages, manifest)
    again, m = read_dump(tmp_path / "d.safetensors")
    assert again.keys() == stages.keys() and all(np.array_equal(again[k], stages[k]) for k in stages)
    assert m["format"] == "siglip2-ref-dump" and m["format_version"] == 1
    assert m["stages"][:3] == ["text.normalized", "text.input_ids", "text.embeddings"]
    assert m["model"]["config"]["model_type"] == "siglip2" and len(m["model"]["sha256"]["model.safetensors"]) == 64
    assert m["inputs"]["texts"] == TEXTS and m["inputs"]["images"][0]["width"] == 100
    assert m["conventions"] == {"image_resize": "pil", "text": "hf", "position_resize": "antialiased-bilinear"}
    assert {"numpy", "pillow", "siglip2_ref"} <= set(m["versions"])
    assert conventions.decode_strings(again["text.normalized"])[1] == "école zürich, 東京!"  # NaFlex lowercases


def test_read_dump_errors(tmp_path):
    with pytest.raises(DumpError, match="no such dump"):
        read_dump(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(DumpError, match="not a safetensors file"):
        read_dump(tmp_path / "junk.safetensors")
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(DumpError, match="without a dump manifest"):
        read_dump(tmp_path / "plain.safetensors")


# ---------------------------------------------------------------- command line


@pytest.fixture
def image_files(tmp_path):
    paths = []
    for k, image in enumerate(IMAGES[1:]):
        paths.append(tmp_path / f"im{k}.png")
        image.save(paths[-1])
    return paths


def test_cli_dump_then_compare(folder, image_files, tmp_path, capsys):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    code, out, err = run(capsys, "dump", *image_files, "--text", "a red circle", "--model", folder, "-o", a)
    assert (code, err) == (0, "") and "float64" in out
    run(capsys, "dump", *image_files, "--text", "a red circle", "--model", folder, "--position-resize", "bicubic", "-o", b)
    code, out, _ = run(capsys, "compare", a, a)
    assert code == 0 and "no divergence" in out
    code, out, _ = run(capsys, "compare", b, a)
    assert code == 1
    assert "first divergent stage: vision.position_embeddings" in out
    assert f"B was made with: siglip2-ref dump {image_files[0]} {image_files[1]} --text 'a red circle' --model {folder}" in out
    assert "--position-resize bicubic" in out  # A's command
    stages, manifest = read_dump(b)
    assert manifest["command"].startswith("siglip2-ref dump") and manifest["precision"]["dtype"] == "float64"


def test_cli_compare_reruns_the_candidates_inputs(folder, image_files, tmp_path, capsys):
    a = tmp_path / "a.safetensors"
    run(capsys, "dump", *image_files, "--text", "Zürich", "--model", folder, "--dtype", "float32", "-o", a)
    code, out, _ = run(capsys, "compare", a, "--model", folder)
    assert code == 0 and "no divergence" in out and "text.normalized" in out


def test_cli_dump_from_golden_case_arrays(tmp_path, capsys):
    meta, inputs, _, ckpt = load_case("naflex_f64", GOLDEN_MODEL)
    out_file = tmp_path / "case.safetensors"
    code, _, _ = run(capsys, "dump", "--inputs", ckpt.parent.parent / "cases" / "naflex_f64.safetensors", "--model", ckpt, "-o", out_file)
    assert code == 0
    stages, _ = read_dump(out_file)
    assert np.array_equal(stages["vision.spatial_shapes"], inputs["spatial_shapes"])
    assert "vision.pooler_output" in stages and "text.pooler_output" in stages


def test_cli_errors(folder, image_files, tmp_path, capsys):
    code, _, err = run(capsys, "dump", "--model", folder, "-o", tmp_path / "x.safetensors")
    assert code == 2 and "nothing to dump" in err
    code, _, err = run(capsys, "dump", *image_files, "--model", folder, "-o", tmp_path / "x.npz")
    assert code == 2 and ".safetensors" in err
    code, _, err = run(capsys, "compare", tmp_path / "nope.safetensors", tmp_path / "nope.safetensors")
    assert code == 1 and "no such dump file" in err
    (tmp_path / "a.txt").write_text("x")
    code, _, err = run(capsys, "dump", image_files[0], "--model", folder, "--emulate", "int8", "-o", tmp_path / "y.safetensors")
    assert code == 2 and "--emulate" in err


# ---------------------------------------------------------------- golden bundle


@pytest.fixture(scope="module")
def bundle(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle")
    model, processor = load_model(folder, dtype="float64"), load_processor(folder)
    return out, export_goldens(folder, out, model=model, processor=processor, command="test"), model, processor


def test_bundle_inputs_are_the_standard_set(bundle):
    out, manifest, _, processor = bundle
    tokens = {t["name"]: t["bpe_tokens"] for t in manifest["texts"]}
    assert [tokens[f"tokens_{n}"] for n in (0, 63, 64, 100)] == [0, 63, 64, 100]
    text = " ".join(t["text"] for t in manifest["texts"])
    assert any(c.isupper() for c in text) and any(c in "東京" for c in text) and "ü" in text and "," in text
    sizes = {name: Image.open(out / entry["file"]).size for name, entry in manifest["images"].items()}
    assert sizes["wide_1600x400"] == (1600, 400) and sizes["tall_400x1600"] == (400, 1600) and sizes["pixel_1x1"] == (1, 1)
    budget = processor.image_processor.max_num_patches
    cases = {c["case"]: c for c in manifest["cases"]}
    grids = np.asarray(cases["mixed_batch"]["spatial_shapes"])
    assert budget in grids.prod(1)  # exactly max_num_patches
    side = 3  # the tiny checkpoint's position grid (num_patches 9)
    assert (grids < side).any() and (grids > side).any()
    assert cases["one_patch"]["spatial_shapes"] == [[1, 1]]
    ids = read_dump(out / cases["mixed_batch"]["file"])[0]["text.input_ids"]
    assert [int((row != 0).sum()) for row in ids] == [len(processor.tokenizer.bpe_ids(t["text"])) + 1 if t["bpe_tokens"] < 64 else 64 for t in manifest["texts"]]


def test_bundle_reimported_and_checked(bundle):
    out, _, model, processor = bundle
    assert (out / "README.md").read_text().startswith("# SigLIP 2 golden bundle")
    results = check_bundle(out, model, processor)
    assert set(results) == {"mixed_batch", "one_patch"}
    for case, rows in results.items():
        assert first_divergence(rows) is None, case
        assert {r.tier for r in rows if r.verdict == "ok"} >= {"exact", "float64"}


def test_bundle_detects_tampering(bundle, tmp_path):
    import shutil

    out, _, _, _ = bundle
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "images" / "pixel_1x1.png").write_bytes(b"changed")
    with pytest.raises(DumpError, match="pixel_1x1.png does not match its sha256"):
        load_bundle(copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(DumpError, match="not a golden bundle"):
        load_bundle(copy)


def test_cli_export_goldens_refuses_a_non_empty_folder(folder, tmp_path, capsys):
    (tmp_path / "x").write_text("x")
    code, _, err = run(capsys, "export-goldens", "--model", folder, "-o", tmp_path)
    assert code == 2 and "not empty" in err


def test_bundle_manifest_is_json_with_tiers(bundle):
    out, manifest, _, _ = bundle
    on_disk = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk["tiers"]["float32_stage"]["rel"] == TIERS["float32_stage"].rel
    assert on_disk["variant"] == "naflex" and on_disk["dtype"] == "float64"


def test_cli_emulated_dump_and_json_report(folder, image_files, tmp_path, capsys):
    a, b = tmp_path / "bf16.safetensors", tmp_path / "f64.safetensors"
    assert run(capsys, "dump", image_files[0], "--text", "a cat", "--model", folder, "--emulate", "bfloat16", "-o", a)[0] == 0
    run(capsys, "dump", image_files[0], "--text", "a cat", "--model", folder, "-o", b)
    _, manifest = read_dump(a)
    assert manifest["precision"] == {"dtype": "float32", "emulation": "bfloat16:weights,activations,scores", "float32_rounded": []}
    code, out, _ = run(capsys, "compare", a, b, "--json")
    report = json.loads(out)
    rows = {r["stage"]: r for r in report["stages"]}
    assert rows["vision.pooler_output"]["tier"] == "bfloat16" and rows["text.input_ids"]["tier"] == "exact"
    assert (code == 0) == (report["first_divergent_stage"] is None)
    assert 0 < rows["vision.pooler_output"]["max_rel"] < TIERS["bfloat16"].rel
