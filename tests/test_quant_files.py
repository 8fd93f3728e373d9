"""Quantized checkpoint folders (checkpoint/quantized.py): written, read back, refused when damaged; the CLI; porting.

Each damaged folder is the demo model written by `quantize_checkpoint`, with one thing changed; each must give
one CheckpointError naming the file and what is wrong, never a deep traceback.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from siglip2_ref.checkpoint.weights import CheckpointError
from siglip2_ref.cli import app as cli
from siglip2_ref.demo import DEMO_NAFLEX, EXAMPLE_IMAGE
from siglip2_ref.model.model import load_model
from siglip2_ref.model.quant import QuantizedWeight
from siglip2_ref.model.quantized_weights import quantize_checkpoint
from siglip2_ref.porting.compare import compare_dumps, first_divergence
from siglip2_ref.porting.dump import make_dump
from siglip2_ref.porting.stages import run_stages
from siglip2_ref.preprocess.processor import load_processor

FC1 = "vision_model.encoder.layers.0.mlp.fc1.weight"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("quantized")
    return {bits: quantize_checkpoint(DEMO_NAFLEX, root / f"int{bits}", bits)[0] for bits in (8, 4)}


def leaves(tree, prefix=""):
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in leaves(value, f"{prefix}{key}.").items()}
    if isinstance(tree, list):
        return {k: v for i, value in enumerate(tree) for k, v in leaves(value, f"{prefix}{i}.").items()}
    return {prefix[:-1]: tree}


@pytest.mark.parametrize("bits", [8, 4])
def test_stored_folder_loads_as_quantizing_at_load(folders, bits):
    stored, at_load = load_model(folders[bits]), load_model(DEMO_NAFLEX, quantize=f"int{bits}")
    a, b = leaves(stored.params), leaves(at_load.params)
    assert a.keys() == b.keys()
    quantized = [k for k, v in a.items() if isinstance(v, QuantizedWeight)]
    assert len(quantized) == 30 and FC1 in quantized and "vision_model.embeddings.position_embedding.weight" not in quantized
    for k in a:
        if k in quantized:
            assert np.array_equal(a[k].codes, b[k].codes) and np.array_equal(a[k].scales, b[k].scales), k
        else:
            assert np.array_equal(a[k], b[k]), k
    assert stored.quantization == {"bits": bits, "group_size": 64 if bits == 4 else None, "stored": True}
    config = json.loads((folders[bits] / "config.json").read_text())["quantization"]
    assert config["bits"] == bits and config["layout_version"] == 1 and FC1 in config["quantized"]
    assert (folders[bits] / "tokenizer.model").is_file()  # loading never needs the float folder


def test_files_are_smaller(folders):
    size = lambda f: (Path(f) / "model.safetensors").stat().st_size  # noqa: E731
    assert size(folders[4]) < size(folders[8]) < 0.5 * size(DEMO_NAFLEX)


def test_stored_kind_cannot_be_loaded_as_another(folders):
    assert load_model(folders[8], quantize="int8").quantization["stored"]
    with pytest.raises(CheckpointError, match="stored as int8; it cannot be loaded as int4"):
        load_model(folders[8], quantize="int4")
    with pytest.raises(CheckpointError, match="already a quantized checkpoint"):
        quantize_checkpoint(folders[8], folders[8].parent / "again", 4)
    with pytest.raises(CheckpointError, match="already holds a checkpoint"):
        quantize_checkpoint(DEMO_NAFLEX, folders[4], 4)


def damaged(folders, tmp_path, bits=8, tensors=None, block=None):
    """A copy of the int`bits` folder with `tensors(dict)` and `block(dict)` applied to its contents."""
    folder = tmp_path / "damaged"
    shutil.copytree(folders[bits], folder)
    if tensors:
        stored = load_file(folder / "model.safetensors")
        tensors(stored)
        save_file(stored, folder / "model.safetensors")
    if block:
        config = json.loads((folder / "config.json").read_text())
        block(config["quantization"])
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def set_key(key, value):
    return lambda d: d.__setitem__(key, value)


DAMAGE = {
    "scales missing": (8, lambda t: t.pop(FC1 + "_scales"), None, f"{FC1}_scales is missing"),
    "codes missing": (8, lambda t: t.pop(FC1), None, f"{FC1} is missing"),
    "codes as float": (8, lambda t: t.__setitem__(FC1, t[FC1].astype(np.float32)), None, "expected I8 \\(192, 48\\).*got F32"),
    "codes of the wrong shape": (8, lambda t: t.__setitem__(FC1, t[FC1][:, :40].copy()), None, "expected I8 \\(192, 48\\)"),
    "int4 codes unpacked": (4, lambda t: t.__setitem__(FC1, np.zeros((192, 48), np.uint8)), None, "expected U8 \\(192, 24\\)"),
    "int8 scales per group": (8, lambda t: t.__setitem__(FC1 + "_scales", np.ones((192, 2), np.float32)), None, "expected F32 \\[192, 1\\]"),
    "int4 odd group": (4, lambda t: t.__setitem__(FC1 + "_scales", np.ones((192, 16), np.float32)), None, "even group size"),
    "scales in float16": (8, lambda t: t.__setitem__(FC1 + "_scales", t[FC1 + "_scales"].astype(np.float16)), None, "got F16"),
    "negative scales": (8, lambda t: t.__setitem__(FC1 + "_scales", -t[FC1 + "_scales"]), None, "finite and >= 0"),
    "NaN scales": (8, lambda t: t[FC1 + "_scales"].__setitem__((0, 0), np.nan), None, "finite and >= 0"),
    "float layer norm missing": (8, lambda t: t.pop("vision_model.post_layernorm.weight"), None, "missing keys"),
    "int4 groups other than the block's": (4, lambda t: t.__setitem__(FC1 + "_scales", np.ones((192, 6), np.float32)), None,
                                           "groups of 8 inputs, but quantization.group_size 64 gives 16"),
    "int4 group size odd": (4, None, set_key("group_size", 63), "group_size: int4 needs a positive even number"),
    "layout version 2": (8, None, set_key("layout_version", 2), "layout_version: this version reads layout 1, got 2"),
    "bits 3": (8, None, set_key("bits", 3), "bits: expected 8 or 4, got 3"),
    "bits disagree with the file": (8, None, lambda b: b.update(bits=4, group_size=64), "expected U8 \\(.*int4 codes"),
    "int4 without a group size": (8, None, set_key("bits", 4), "group_size: int4 needs a positive even number.*got None"),
    "another format": (8, None, set_key("format", "bitsandbytes"), "format: expected 'siglip2-ref-weight-only'"),
    "empty list": (8, None, set_key("quantized", []), "quantized: expected a non-empty list"),
    "a LayerNorm listed": (8, None, lambda b: b["quantized"].append("vision_model.post_layernorm.weight"), "no quantizable Linear weight"),
    "an unknown key listed": (8, None, lambda b: b["quantized"].append("vision_model.extra.weight"), "vision_model.extra.weight"),
    "a quantized weight not listed": (8, None, lambda b: b["quantized"].remove(FC1), "non-float tensors"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_folders_give_one_clear_error(folders, tmp_path, case):
    bits, tensors, block, message = DAMAGE[case]
    folder = damaged(folders, tmp_path, bits, tensors, block)
    with pytest.raises(CheckpointError, match=message) as error:
        load_model(folder)
    assert str(folder) in str(error.value)


def test_block_that_is_not_an_object(folders, tmp_path):
    folder = damaged(folders, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["quantization"] = "int8"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="quantization: expected a JSON object, got str"):
        load_model(folder)


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_quantize_then_every_command_reads_it(tmp_path, capsys):
    out = tmp_path / "int4"
    code, stdout, _ = run(capsys, "quantize", DEMO_NAFLEX, "-o", out, "--bits", "4")
    assert code == 0 and "30 Linear weights as int4, group size 64" in stdout and (out / "config.json").is_file()
    code, stdout, _ = run(capsys, "classify", EXAMPLE_IMAGE, "--labels", "red circle", "blue star", "--model", out)
    assert code == 0 and stdout.splitlines()[1].endswith("red circle")
    code, stdout, _ = run(capsys, "info", "--model", out)
    assert code == 0 and "quantized     Linear weights int4, groups of 64 inputs, as stored" in stdout
    code, stdout, _ = run(capsys, "classify", "--quantize", "int8")
    assert code == 0 and "red circle" in stdout.splitlines()[1]
    code, _, err = run(capsys, "quantize", DEMO_NAFLEX, "-o", out, "--bits", "8")
    assert code == 1 and "already holds a checkpoint" in err
    code, _, err = run(capsys, "quantize", DEMO_NAFLEX, "-o", tmp_path / "x", "--bits", "4", "--group-size", "33")
    assert code == 2 and "must be even" in err
    code, _, err = run(capsys, "classify", EXAMPLE_IMAGE, "--labels", "a", "--model", out, "--quantize", "int8")
    assert code == 1 and "stored as int4" in err
    code, _, err = run(capsys, "dump", "--text", "a", "--quantize", "int8", "--emulate", "bfloat16", "-o", tmp_path / "d.safetensors")
    assert code == 2 and "cannot be combined with --quantize" in err


def test_dump_of_a_quantized_run_compares_against_a_float_one():
    """compare picks the int8/int4 tier when exactly one side is quantized, the float tiers when both hold the same codes."""
    processor = load_processor(DEMO_NAFLEX)
    texts, images = ["a red circle", "a blue star"], [EXAMPLE_IMAGE]
    dumps = {kind: make_dump(load_model(DEMO_NAFLEX, dtype="float32", quantize=kind), processor, images, texts)
             for kind in (None, "int8", "int4")}  # fmt: skip
    assert dumps["int8"][1]["precision"]["quantization"]["bits"] == 8 and "quantization" not in dumps[None][1]["precision"]
    for kind in ("int8", "int4"):
        results = {r.stage: r for r in compare_dumps(dumps[kind], dumps[None])}
        assert first_divergence(list(results.values())) is None
        assert results["vision.pooler_output"].tier == kind and results["vision.pooler_output"].max_rel > 1e-3  # really moved
        assert results["text.input_ids"].tier == "exact"
    same = compare_dumps(dumps["int8"], make_dump(load_model(DEMO_NAFLEX, dtype="float32", quantize="int8", fast=False),
                                                  processor, images, texts))  # fmt: skip
    assert {r.tier for r in same if r.stage == "vision.pooler_output"} == {"float32_pooled"} and first_divergence(same) is None
    # a quantized run is far outside the float tiers: comparing it as float would report a divergence
    stages = run_stages(load_model(DEMO_NAFLEX, quantize="int8"), **processor(text=texts, images=images, padding="max_length", max_length=64))
    assert np.abs(stages["vision.pooler_output"] - dumps[None][0]["vision.pooler_output"]).max() > 1e-4


def test_cli_dump_quantize_then_compare(tmp_path, capsys):
    q, f = tmp_path / "int4.safetensors", tmp_path / "f32.safetensors"
    assert run(capsys, "dump", EXAMPLE_IMAGE, "--text", "a red circle", "--dtype", "float32", "--quantize", "int4", "-o", q)[0] == 0
    assert run(capsys, "dump", EXAMPLE_IMAGE, "--text", "a red circle", "--dtype", "float32", "-o", f)[0] == 0
    code, out, _ = run(capsys, "compare", q, f)
    assert code == 0 and "int4 (0.5)" in out and "no divergence" in out
    from siglip2_ref.porting.dump import read_dump

    assert "--quantize int4" in read_dump(q)[1]["command"]  # the dump says how to reproduce it
