"""The `siglip2-ref` command line: each subcommand end to end, its pictures, and every bad input at the door.

Commands run in-process through `main(argv)`, which returns the exit code (0 ok, 1 run-time error, 2 usage).
Expected values come from the Python API (already checked against the model's forward in test_pipelines), from
Pillow (the resize the patches picture must show) and from the safetensors file itself (parameter counts).
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from pathlib import Path

from siglip2_ref.cli import app
from siglip2_ref.cli import app as cli
from siglip2_ref.cli import info as info_command
from siglip2_ref.demo import EXAMPLE_IMAGE, shapes
from siglip2_ref.model.model import load_model
from siglip2_ref.tasks.readers import load_embeddings
from siglip2_ref.tasks.pipelines import zero_shot
from siglip2_ref.preprocess.processor import load_processor
from siglip2_ref.tasks.pictures import model_view
from tests.test_pipelines import needs_demo, random_image, tiny_folders  # noqa: F401 (fixture)

COMMANDS = ["classify", "embed", "search", "info", "patches", "attention"]


def run(capsys, *argv):
    """(exit code, stdout, stderr) of `siglip2-ref argv...`."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def images(tmp_path):
    """A folder of 5 readable images of mixed sizes (one in a subfolder), one broken file and one text file."""
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    for i in range(4):
        random_image(i, (20 + 9 * i, 30)).save(folder / f"im{i}.png")
    random_image(9, (40, 12)).save(folder / "sub" / "deep.jpg")
    (folder / "broken.png").write_bytes(b"not an image at all")
    (folder / "notes.txt").write_text("not an image either")
    return folder


@pytest.fixture
def naflex(tiny_folders):  # noqa: F811
    return tiny_folders["naflex"]


# ---------------------------------------------------------------- help texts


def test_help_lists_every_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name in COMMANDS:
        assert f"\n    {name} " in out
    assert run(capsys)[0] == 2  # no command: help on stderr, usage error


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_with_model_and_examples(capsys, name):
    code, out, _ = run(capsys, name, "--help")
    assert code == 0 and "--model PATH_OR_ID" in out and "examples:" in out and "--debug" in out


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "siglip2_ref", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("siglip2-ref ")


# ---------------------------------------------------------------- classify


def test_classify_prints_the_zero_shot_ranking(capsys, naflex, images):
    labels = ["a cat", "a dog", "Red Circle"]
    code, out, _ = run(capsys, "classify", images / "im0.png", images / "im1.png", "--labels", *labels, "--model", naflex)
    assert code == 0
    model, processor = load_model(naflex), load_processor(naflex)
    for name in ("im0.png", "im1.png"):
        expected = zero_shot(model, processor, str(images / name), labels)
        block = out.split(str(images / name))[1].splitlines()[1:4]
        assert [line.split(None, 1)[1] for line in block] == [label for label, _ in expected]
        assert [float(line.split()[0]) for line in block] == pytest.approx([p for _, p in expected], abs=6e-5)


def test_classify_json_and_labels_file(capsys, naflex, images, tmp_path):
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("# candidate labels\na cat\n\na dog\nx\n")
    code, out, _ = run(capsys, "classify", images / "im2.png", "--labels-file", labels_file, "--json", "--top-k", "2", "--model", naflex)
    assert code == 0
    (row,) = json.loads(out)
    expected = zero_shot(load_model(naflex), load_processor(naflex), str(images / "im2.png"), ["a cat", "a dog", "x"], top_k=2)
    assert row["image"] == str(images / "im2.png")
    assert [(p["label"], round(p["score"], 6)) for p in row["predictions"]] == [(x, round(p, 6)) for x, p in expected]


def test_classify_without_arguments_runs_the_demo(capsys):
    needs_demo()
    code, out, err = run(capsys, "classify")
    assert code == 0 and "demo image" in err
    assert out.splitlines()[0] == EXAMPLE_IMAGE
    assert out.splitlines()[1].split(None, 1)[1] == "red circle"
    assert len([line for line in out.splitlines() if line.startswith("  ")]) == 5


def test_classify_reports_unreadable_images_and_still_answers(capsys, naflex, images):
    code, out, err = run(capsys, "classify", images / "im0.png", images / "broken.png", "--labels", "a", "b", "--model", naflex)
    assert code == 1
    assert "im0.png" in out and "broken.png: cannot read image" in err


# ---------------------------------------------------------------- embed and search


def test_embed_a_folder_skips_unreadable_files_and_search_finds_them(capsys, naflex, images, tmp_path):
    output = tmp_path / "e.safetensors"
    code, out, err = run(capsys, "embed", images, "-o", output, "--model", naflex, "--batch-size", "2", "--progress")
    assert code == 0
    assert "skipped unreadable image" in err and "broken.png" in err and "skipped 1 unreadable image " in err
    assert "6/6 images (100%)" in err  # the progress line, forced on although stderr is not a terminal
    assert "holds 5 embeddings" in out and "ignored 1 file without an image extension" in out
    embeddings, paths, meta = load_embeddings(output)
    assert sorted(paths) == sorted(str(p) for p in images.rglob("*") if p.name.startswith(("im", "deep")))
    assert meta["model"] == str(naflex) and embeddings.shape == (5, load_model(naflex).config.vision.hidden_size)

    code, out, _ = run(capsys, "search", output, "a cat", "--top-k", "3", "--json")
    assert code == 0
    rows = json.loads(out)
    model, processor = load_model(naflex), load_processor(naflex)
    expected = zero_shot(model, processor, paths, ["a cat"], template="{}")  # one sigmoid score per image
    order = sorted(range(5), key=lambda i: -expected[i][0][1])[:3]
    assert [r["path"] for r in rows] == [paths[i] for i in order] and [r["rank"] for r in rows] == [1, 2, 3]


def test_embed_updates_an_existing_index_and_overwrite_rebuilds(capsys, naflex, images, tmp_path):
    # A rerun adds what is new (tests/test_index.py covers changed, removed, corrupt and killed runs).
    output = tmp_path / "e.npz"
    assert run(capsys, "embed", images / "im0.png", images / "im1.png", "-o", output, "--model", naflex)[0] == 0
    code, out, _ = run(capsys, "embed", images, "-o", output, "--model", naflex)
    assert code == 0 and "embedded 3 images (3 new, 0 changed)" in out and "kept 2 unchanged" in out and "holds 5 embeddings" in out
    first, paths, _ = load_embeddings(output)
    assert paths[:2] == [str(images / "im0.png"), str(images / "im1.png")] and len(set(paths)) == 5
    assert run(capsys, "embed", images / "im3.png", "-o", output, "--model", naflex, "--overwrite")[0] == 0
    assert load_embeddings(output)[1] == [str(images / "im3.png")]


def test_search_uses_the_recorded_model_and_demo_search_is_right(capsys, tmp_path):
    needs_demo()
    rng = np.random.default_rng(3)
    for colour, shape in [("red", "circle"), ("blue", "star"), ("green", "square"), ("yellow", "triangle")]:
        shapes.draw(colour, shape, "center", rng, size=(90, 70)).save(tmp_path / f"{colour}_{shape}.png")
    output = tmp_path / "shapes.safetensors"
    assert run(capsys, "embed", tmp_path, "-o", output)[0] == 0
    code, out, _ = run(capsys, "search", output, "a blue star", "--top-k", "2")
    assert code == 0
    assert out.splitlines()[1].split()[-1].endswith("blue_star.png")


# ---------------------------------------------------------------- info


def test_info_counts_what_the_file_holds(capsys, naflex):
    code, out, _ = run(capsys, "info", "--model", naflex, "--json")
    assert code == 0
    facts = json.loads(out)
    with safe_open(str(naflex / "model.safetensors"), "np") as f:
        sizes = {key: int(np.prod(f.get_slice(key).get_shape())) for key in f.keys()}
    assert facts["parameters"]["total"] == sum(sizes.values())
    assert facts["parameters"]["vision_model"] == sum(n for k, n in sizes.items() if k.startswith("vision_model."))
    assert facts["weights"]["stored_as"] == {"F32": len(sizes)}
    assert facts["variant"] == "naflex" and facts["image_processor"]["max_num_patches"] == 16
    assert facts["tokenizer"]["lowercase"] is True and facts["tokenizer"]["eos_token_id"] == 1
    code, out, _ = run(capsys, "info", "--model", naflex)
    assert code == 0 and f"parameters    {sum(sizes.values()):,} = vision" in out and "NaFlex" in out


# ---------------------------------------------------------------- pictures


def test_patches_picture_shows_the_pillow_resize(capsys, naflex, images, tmp_path):
    image = images / "im3.png"  # 47 x 30 px
    output = tmp_path / "p.png"
    code, out, _ = run(capsys, "patches", image, "-o", output, "--model", naflex, "--max-num-patches", "12")
    assert code == 0
    processor = load_processor(naflex)
    batch = processor(images=[str(image)], max_num_patches=12)
    gh, gw = (int(v) for v in batch["spatial_shapes"][0])
    assert f"spatial_shapes = [{gh}, {gw}]" in out and f"{12 - gh * gw} padding patches" in out
    assert f"resized {2 * gw}x{2 * gh}" in out
    figure = Image.open(output)
    assert figure.format == "PNG" and figure.width > 100
    # what the picture shows is exactly Pillow's bilinear resize of the file to the NaFlex target size
    _, _, pixels, facts = model_view(processor, str(image), 2, max_num_patches=12)
    expected = np.asarray(Image.open(image).convert("RGB").resize(facts["resized_size"], Image.BILINEAR))
    np.testing.assert_array_equal(pixels, expected)


def test_attention_picture_and_summary(capsys, naflex, images, tmp_path):
    output = tmp_path / "a.png"
    code, out, _ = run(capsys, "attention", images / "im1.png", "-o", output, "--model", naflex)
    assert code == 0 and Image.open(output).format == "PNG"
    heads = load_model(naflex).config.vision.num_attention_heads
    assert f"{heads} heads" in out and all(f"head {h}:" in out for h in range(heads)) and "mean:" in out


def test_demo_attention_peaks_on_the_shape(capsys, tmp_path):
    """The trained demo's pooling attends to the drawn shape: the mean map peaks inside its bounding box."""
    needs_demo()
    rng = np.random.default_rng(5)
    shapes.draw("red", "square", "left", rng, size=(128, 64)).save(tmp_path / "left.png")
    code, out, _ = run(capsys, "attention", tmp_path / "left.png", "-o", tmp_path / "a.png")
    assert code == 0
    columns = int(out.split(" = ")[0].rsplit("x", 1)[1])  # "... attention over 5x10 = 50 patches ..."
    mean_line = next(line for line in out.splitlines() if "mean:" in line)
    column = int(mean_line.rsplit("column", 1)[1])
    assert column < columns / 2, (columns, mean_line)  # the square sits in the left half


# ---------------------------------------------------------------- bad input at the door


def test_missing_image_file(capsys, naflex, tmp_path):
    code, _, err = run(capsys, "classify", tmp_path / "nope.png", "--labels", "a", "--model", naflex)
    assert code == 1 and err.strip() == f"siglip2-ref: error: no such file: {tmp_path / 'nope.png'}"


@pytest.mark.parametrize(
    "argv, message",
    [(["--labels", ""], "label 1 is empty"), (["--labels"], "expected at least one argument"),
     (["--labels", "a", "--labels-file", "x.txt"], "not allowed with argument"),
     (["--labels", "a", "--template", "no slot"], "exactly one"), ([], "--labels is required"),
     (["--labels", "a", "--top-k", "0"], "must be at least 1")],
)  # fmt: skip
def test_classify_usage_errors(capsys, naflex, images, argv, message):
    code, _, err = run(capsys, "classify", images / "im0.png", *argv, "--model", naflex)
    assert code == 2 and message in err and "Traceback" not in err


def test_label_list_that_swallowed_the_image(capsys, naflex, images):
    code, _, err = run(capsys, "classify", "--model", naflex, "--labels", "cat", images / "im0.png")
    assert code == 2 and "put IMAGE arguments before --labels" in err


def test_unknown_model_says_where_it_looked(capsys, monkeypatch, tmp_path, images):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path))
    code, _, err = run(capsys, "classify", images / "im0.png", "--labels", "a", "--model", "google/siglip2-nonexistent")
    assert code == 1 and err.startswith("siglip2-ref: error: checkpoint 'google/siglip2-nonexistent' not found")
    assert str(tmp_path / "cache") in err and "download" in err and "Traceback" not in err


def test_folder_that_is_not_a_checkpoint(capsys, tmp_path, images, naflex):
    code, _, err = run(capsys, "info", "--model", images)
    assert code == 1 and "is not a checkpoint folder (no config.json)" in err
    code, _, err = run(capsys, "info", "--model", naflex / "model.safetensors")
    assert code == 1 and "is a file; pass the checkpoint folder" in err


def test_conflicting_and_wrong_options(capsys, tiny_folders, naflex, images, tmp_path):  # noqa: F811
    code, _, err = run(capsys, "patches", images / "im0.png", "--model", tiny_folders["fixres"], "--max-num-patches", "8")
    assert code == 2 and "NaFlex checkpoints only" in err
    code, _, err = run(capsys, "embed", images, "--resume", "--overwrite", "--model", naflex)
    assert code == 2 and "not allowed with argument" in err
    code, _, err = run(capsys, "embed", images, "-o", tmp_path / "e.csv", "--model", naflex)
    assert code == 2 and ".safetensors or .npz" in err


def test_embed_and_search_runtime_errors(capsys, naflex, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "embed", tmp_path / "empty", "-o", tmp_path / "e.npz", "--model", naflex)
    assert code == 1 and "no image files found" in err
    code, _, err = run(capsys, "embed", tmp_path / "missing", "--model", naflex)
    assert code == 1 and "no such file or folder" in err
    code, _, err = run(capsys, "search", tmp_path / "missing.safetensors", "a cat", "--model", naflex)
    assert code == 1 and "no such embeddings file" in err
    code, _, err = run(capsys, "search", naflex / "model.safetensors", "a cat", "--model", naflex)
    assert code == 1 and "not an embeddings file" in err


def test_debug_shows_the_traceback(capsys, naflex, tmp_path):
    code, _, err = run(capsys, "classify", tmp_path / "nope.png", "--labels", "a", "--model", naflex, "--debug")
    assert code == 1 and "Traceback" in err and err.rstrip().endswith(f"no such file: {tmp_path / 'nope.png'}")


def test_a_bug_is_one_line_without_debug(capsys, monkeypatch):
    def broken(args):
        raise KeyError("oops")

    monkeypatch.setattr(info_command, "run", broken)
    code, _, err = run(capsys, "info")
    assert code == 1 and "internal error, KeyError" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- the command modules


def test_every_command_module_in_the_cli_package_is_registered():
    """One module per subcommand, all listed in app.COMMANDS (no hidden registration, no imports from elsewhere)."""
    folder = Path(app.__file__).parent
    modules = {p.stem for p in folder.glob("*.py")} - {"__init__", "app", "options"}
    assert {m.__name__.rsplit(".", 1)[1] for m in app.COMMANDS} == modules
    assert [m.NAME for m in app.COMMANDS] == COMMANDS + ["dump", "compare", "export-goldens", "selfcheck", "quantize"]


# ---------------------------------------------------------------- the front door's small promises


def test_a_closed_pipe_ends_quietly():
    """`siglip2-ref info --json | head -0`: the reader is gone before anything is written; no Broken pipe noise."""
    import os

    read, write = os.pipe()
    os.close(read)
    result = subprocess.run([sys.executable, "-m", "siglip2_ref", "info", "--json"], stdout=write, stderr=subprocess.PIPE,
                            text=True, timeout=120)  # fmt: skip
    os.close(write)
    assert result.returncode == 141 and result.stderr == ""


def test_debug_shows_the_traceback_of_an_internal_error(capsys, monkeypatch):
    def broken(args):
        raise KeyError("oops")

    monkeypatch.setattr(info_command, "run", broken)
    code, _, err = run(capsys, "info", "--debug")
    assert code == 1 and "Traceback" in err and "in broken" in err and "KeyError: 'oops'" in err
    assert err.rstrip().endswith("internal error, KeyError: 'oops'")


def test_compare_without_b_reruns_on_the_checkpoint_a_names(capsys, tmp_path):
    a = tmp_path / "a.safetensors"
    assert run(capsys, "dump", "--text", "a red circle", "-o", a)[0] == 0
    code, out, err = run(capsys, "compare", a)
    assert code == 0 and "no divergence" in out


def test_compare_without_b_or_a_usable_checkpoint_says_what_to_give(capsys, tmp_path):
    from siglip2_ref.porting.dump import read_dump, write_dump

    a = tmp_path / "a.safetensors"
    assert run(capsys, "dump", "--text", "a red circle", "-o", a)[0] == 0
    stages, manifest = read_dump(a)
    manifest["model"]["path"] = str(tmp_path / "gone")
    write_dump(a, stages, manifest)
    code, _, err = run(capsys, "compare", a)
    assert code == 2 and "not here" in err and "--model" in err


def test_embed_skip_warnings_name_the_file(capsys, images, naflex, tmp_path):
    code, _, err = run(capsys, "embed", images, "-o", tmp_path / "e.safetensors", "--model", naflex)
    assert code == 0 and f"skipped unreadable image {images / 'broken.png'}" in err
