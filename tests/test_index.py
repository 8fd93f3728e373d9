"""Incremental indexing (`embed` on a folder indexed before) and the checks on embedding files.

Expected values come from the plain path: `embed_images` on the same files, one call, no index. After every run,
whatever happened before it (files added, changed, removed, corrupted; a run killed at a random moment), the
index must hold exactly the readable images, once each, with those embeddings.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from siglip2_ref import cli
from siglip2_ref.demo import DEMO_FIXRES, DEMO_NAFLEX, shapes
from siglip2_ref.model.model import load_model
from siglip2_ref.preprocess.processor import load_processor
from siglip2_ref.tasks.embedfile import FORMAT, EmbeddingsFileError, partial_path, save_embeddings, write_safetensors
from siglip2_ref.tasks.readers import load_embeddings, open_embeddings
from siglip2_ref.tasks.pipelines import embed_images

ROOT = Path(__file__).resolve().parent.parent
COLOURS, SHAPES = ("red", "blue", "green", "yellow"), ("circle", "square", "star")


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def demo():
    return load_model(DEMO_NAFLEX), load_processor(DEMO_NAFLEX)


def draw(path, i, size=(90, 70)):
    rng = np.random.default_rng(i)
    shapes.draw(COLOURS[i % 4], SHAPES[i % 3], "center", rng, size=size).save(path)


def folder_of(tmp_path, n, name="photos"):
    folder = tmp_path / name
    (folder / "sub").mkdir(parents=True)
    for i in range(n):
        draw(folder / ("sub" if i % 3 == 0 else "") / f"im{i:03d}.png", i, (60 + 7 * (i % 5), 50 + 5 * (i % 4)))
    return folder


def assert_index_is(index, files, demo):
    """The index holds exactly `files` (absolute), once each, with the embeddings of the plain path."""
    embeddings, paths, _ = load_embeddings(index)
    assert sorted(paths) == sorted(str(f) for f in files) and len(set(paths)) == len(paths)
    expected = embed_images(*demo, [Path(p) for p in paths], batch_size=4)
    np.testing.assert_allclose(embeddings, expected, atol=1e-6, rtol=0)


def images_in(folder):
    return [p for p in folder.rglob("*.png")]


# ---------------------------------------------------------------- incremental runs


def test_add_change_remove_and_corrupt_between_runs(capsys, tmp_path, demo):
    folder, index = folder_of(tmp_path, 7), tmp_path / "photos.safetensors"
    code, out, _ = run(capsys, "embed", folder, "-o", index)
    assert code == 0 and "embedded 7 images (7 new, 0 changed)" in out
    assert_index_is(index, images_in(folder), demo)

    draw(folder / "new1.png", 20)
    draw(folder / "sub" / "new2.png", 21)
    draw(folder / "im001.png", 22, (80, 80))  # changed content (and size, and mtime)
    os.remove(folder / "im002.png")
    (folder / "im004.png").write_bytes(b"\x89PNG damaged")  # was good, now corrupt
    code, out, err = run(capsys, "embed", folder, "-o", index)
    assert code == 0 and f"skipped unreadable image {folder / 'im004.png'}" in err
    assert "embedded 3 images (2 new, 1 changed)" in out and "kept 4 unchanged" in out and "removed 1 gone" in out
    assert_index_is(index, [p for p in images_in(folder) if p.name != "im004.png"], demo)

    code, out, _ = run(capsys, "embed", folder, "-o", index)  # nothing to do: the file is not rewritten
    assert code == 0 and "embedded 0 images" in out and "kept 7 unchanged" in out


def test_other_folders_rows_are_kept_and_paths_are_absolute(capsys, tmp_path, demo, monkeypatch):
    a, b = folder_of(tmp_path, 3, "a"), folder_of(tmp_path, 2, "b")
    index = tmp_path / "all.npz"
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "embed", "a", "-o", index)[0] == 0
    code, out, _ = run(capsys, "embed", "b", "-o", index)  # a relative path, from the same place
    assert code == 0 and "kept 3 unchanged" in out and "removed 0 gone" in out
    assert_index_is(index, images_in(a) + images_in(b), demo)


def test_hash_mode_keeps_touched_files_and_catches_same_size_edits(capsys, tmp_path):
    folder, index = folder_of(tmp_path, 3), tmp_path / "i.safetensors"
    assert run(capsys, "embed", folder, "-o", index, "--hash")[0] == 0
    target = folder / "im001.png"
    os.utime(target, ns=(1, 1))  # touched: mtime changes, content does not
    code, out, _ = run(capsys, "embed", folder, "-o", index, "--hash")
    assert code == 0 and "embedded 0 images" in out
    st = os.stat(target)
    data = bytearray(target.read_bytes())
    data[-13] ^= 0xFF  # inside the IEND chunk's CRC: same size, same mtime below, other content
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    code, out, _ = run(capsys, "embed", folder, "-o", index)  # size + mtime cannot see it ...
    assert code == 0 and "embedded 0 images" in out
    code, out, err = run(capsys, "embed", folder, "-o", index, "--hash")  # ... the content hash does
    assert code == 0 and ("1 changed" in out or "im001.png" in err)
    assert open_embeddings(index).records["sha256"].shape == (2 if "im001.png" in err else 3, 32)


@pytest.mark.parametrize("option, key", [(("--storage", "float16"), "storage"), (("--max-num-patches", "32"), "preprocessing"),
                                         (("--dtype", "float64"), "dtype"), (("--model", DEMO_FIXRES), "model_fingerprint")])  # fmt: skip
def test_an_index_refuses_to_mix_models_settings_and_dtypes(capsys, tmp_path, option, key):
    folder, index = folder_of(tmp_path, 2), tmp_path / "i.safetensors"
    assert run(capsys, "embed", folder, "-o", index)[0] == 0
    before = index.read_bytes()
    code, _, err = run(capsys, "embed", folder, "-o", index, *option)
    assert code == 1 and f"{key}: index" in err and "--overwrite" in err and "not mixed" in err
    assert index.read_bytes() == before
    code, _, _ = run(capsys, "embed", folder, "-o", index, *option, "--overwrite")
    assert code == 0 and open_embeddings(index).meta[key] != json.loads("null") and index.read_bytes() != before


def test_overlapped_and_serial_pipelines_write_the_same_index(capsys, tmp_path):
    folder = folder_of(tmp_path, 9)
    assert run(capsys, "embed", folder, "-o", tmp_path / "serial.npz", "--workers", "0", "--batch-size", "2")[0] == 0
    assert run(capsys, "embed", folder, "-o", tmp_path / "threads.npz", "--workers", "3", "--batch-size", "4")[0] == 0
    serial, threads = load_embeddings(tmp_path / "serial.npz"), load_embeddings(tmp_path / "threads.npz")
    assert serial[1] == threads[1]
    np.testing.assert_allclose(serial[0], threads[0], atol=1e-6, rtol=0)


def test_float16_storage_halves_the_rows_and_keeps_the_ranking(capsys, tmp_path, demo):
    folder = folder_of(tmp_path, 12)
    for storage in ("float32", "float16"):
        assert run(capsys, "embed", folder, "-o", tmp_path / f"{storage}.safetensors", "--storage", storage)[0] == 0
    f32, f16 = open_embeddings(tmp_path / "float32.safetensors"), open_embeddings(tmp_path / "float16.safetensors")
    assert f16.storage == "float16" and np.abs(f16.array() - f32.array()).max() < 1e-3
    ranks = [json.loads(run(capsys, "search", tmp_path / f"{s}.safetensors", "a red star", "--json", "--top-k", "5")[1])
             for s in ("float32", "float16")]  # fmt: skip
    assert [r["path"] for r in ranks[0]] == [r["path"] for r in ranks[1]]


# ---------------------------------------------------------------- killed runs


def embed_process(folder, index):
    argv = [sys.executable, "-m", "siglip2_ref", "embed", str(folder), "-o", str(index), "--batch-size", "1", "--save-every", "3"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)


def test_a_killed_run_leaves_a_consistent_index_and_a_rerun_completes_it(tmp_path, demo):
    folder, index = folder_of(tmp_path, 90), tmp_path / "i.safetensors"
    files, cut_short = images_in(folder), []
    for attempt in range(2):  # kill while the index is being built, then once more during the next run
        proc = embed_process(folder, index)
        start = time.monotonic()
        while not (index.exists() and len(open_embeddings(index)) > 3 * attempt) and proc.poll() is None:
            assert time.monotonic() - start < 120, "the run never saved"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        held = open_embeddings(index)  # whole and checked, whatever moment the kill hit
        assert set(held.paths) <= {str(f) for f in files}
        expected = embed_images(*demo, [Path(p) for p in held.paths], batch_size=4)
        np.testing.assert_allclose(held.array(), expected, atol=1e-6, rtol=0)
        cut_short.append(len(held) < len(files))
    assert any(cut_short), "both runs finished before the kill: the machine was too fast for this test's timing"
    proc = embed_process(folder, index)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    assert_index_is(index, files, demo)
    assert not os.path.exists(partial_path(str(index)))


def test_an_index_replaced_while_it_is_being_opened_is_read_from_one_version(tmp_path, monkeypatch):
    """`embed` renames a new index over the old one at any moment, also while a query is opening it (the killed-run
    test above polls it exactly so). Header, metadata and rows must all come from the file that was opened."""
    from siglip2_ref.tasks import embedfile

    path, newer = tmp_path / "i.safetensors", tmp_path / "newer.safetensors"
    raw_index(path, unit_rows(3), paths=["/a", "/b", "/c"])
    raw_index(newer, unit_rows(40, seed=1))  # another row count: every offset differs
    read_metadata = embedfile.read_metadata

    def replaced_first(f):
        if newer.exists():
            os.replace(newer, path)  # the rename lands between the header and the metadata
        return read_metadata(f)

    monkeypatch.setattr(embedfile, "read_metadata", replaced_first)
    index = open_embeddings(path)
    assert index.paths == ["/a", "/b", "/c"]
    np.testing.assert_array_equal(index.array(), unit_rows(3))
    assert len(open_embeddings(path)) == 40  # the next opening sees the new file


# ---------------------------------------------------------------- bad embedding files (issue: never a silent answer)


def unit_rows(n, d=48, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def raw_index(path, embeddings, paths=None, meta=None, drop=(), extra=None):
    """A .safetensors file laid out as `embed` writes it, with any part replaced."""
    n = len(embeddings)
    paths = [f"/p/{i}.png" for i in range(n)] if paths is None else paths
    arrays = {"embeddings": embeddings, "sizes": np.zeros(n, np.int64), "mtimes": np.zeros(n, np.int64),
              "paths": np.frombuffer(json.dumps(paths).encode(), np.uint8)}  # fmt: skip
    arrays = {**{k: v for k, v in arrays.items() if k not in drop}, **(extra or {})}
    base = {"format": FORMAT, "storage": "float32", "rows": str(n), "dim": str(embeddings.shape[-1]), "model": "/m"}
    write_safetensors(path, arrays, {**base, **(meta or {})})
    return path


BAD_FILES = {
    "float64 rows": (dict(embeddings=unit_rows(3).astype(np.float64)), "embeddings are F64 but the metadata says storage 'float32'"),
    "int32 rows": (dict(embeddings=np.ones((3, 4), np.int32)), "embeddings are I32"),
    "storage says float16": (dict(embeddings=unit_rows(3), meta={"storage": "float16"}), "embeddings are F32 but the metadata says storage 'float16'"),
    "unknown storage": (dict(embeddings=unit_rows(3), meta={"storage": "bfloat16"}), "expected F32 (float32) or F16"),
    "row count": (dict(embeddings=unit_rows(3), meta={"rows": "5"}), "metadata rows='5' but the embeddings are 3 x 48"),
    "width": (dict(embeddings=unit_rows(3), meta={"dim": "64"}), "metadata dim='64'"),
    "too few paths": (dict(embeddings=unit_rows(3), paths=["/a", "/b"]), "2 paths for 3 embedding rows"),
    "repeated path": (dict(embeddings=unit_rows(3), paths=["/a", "/b", "/a"]), "the path /a appears more than once"),
    "paths not strings": (dict(embeddings=unit_rows(2), paths=[1, 2]), "not a JSON list of strings"),
    "no sizes": (dict(embeddings=unit_rows(2), drop=("sizes",)), "no sizes tensor"),
    "sizes not int64": (dict(embeddings=unit_rows(2), drop=("sizes",), extra={"sizes": np.zeros(2, np.float32)}), "tensor 'sizes' is F32, expected I64"),
    "too many mtimes": (dict(embeddings=unit_rows(2), drop=("mtimes",), extra={"mtimes": np.zeros(3, np.int64)}), "3 mtimes for 2 embedding rows"),
    "sha256 shape": (dict(embeddings=unit_rows(2), extra={"sha256": np.zeros(2 * 16, np.uint8)}), "32 sha256 for 2 embedding rows"),
    "older format": (dict(embeddings=unit_rows(2), meta={"format": "siglip2-ref-embeddings/1"}), "written by an older siglip2-ref"),
    "other format": (dict(embeddings=unit_rows(2), meta={"format": "clip-retrieval"}), "format 'clip-retrieval', expected"),
    "3-d rows": (dict(embeddings=unit_rows(4).reshape(2, 2, 48)), "embeddings have shape (2, 2, 48), expected [rows, width]"),
    "1-d rows": (dict(embeddings=np.ones(4, np.float32), paths=["/a", "/b", "/c", "/d"]), "embeddings have shape (4,), expected [rows, width]"),
    "zero width": (dict(embeddings=np.zeros((2, 0), np.float32)), "shape (2, 0), expected [rows, width] with width at least 1"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_search_refuses_a_damaged_index_naming_what_is_wrong(case, tmp_path, capsys):
    kwargs, message = BAD_FILES[case]
    path = raw_index(tmp_path / "bad.safetensors", **kwargs)
    with pytest.raises(EmbeddingsFileError) as e:
        load_embeddings(path)
    assert str(path) in str(e.value) and message in str(e.value), str(e.value)
    code, _, err = run(capsys, "search", path, "a red circle", "--model", DEMO_NAFLEX)
    assert code == 1 and message in err and "Traceback" not in err


@pytest.mark.parametrize("value, message", [(np.nan, "holds NaN or inf"), (np.inf, "holds NaN or inf"), (3.0, "has length")])
@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_rows_that_are_not_finite_unit_vectors_are_refused_naming_row_and_path(tmp_path, capsys, value, message, suffix):
    rows = unit_rows(70)
    rows[66, 5] = value
    path = tmp_path / f"e{suffix}"
    save_embeddings(path, rows, [f"/photos/{i}.jpg" for i in range(70)], {"model": str(DEMO_NAFLEX)})
    e = open_embeddings(path)  # opening reads no rows; the rows are checked as they are read
    with pytest.raises(EmbeddingsFileError, match=rf"row 66 \(/photos/66.jpg\) {message}"):
        list(e.chunks(32))
    code, _, err = run(capsys, "search", path, "a red circle", "--chunk-rows", "8")
    assert code == 1 and "row 66 (/photos/66.jpg)" in err and message in err


def test_npz_of_the_wrong_dtype_and_junk_files_are_refused(tmp_path):
    np.savez(tmp_path / "f64.npz", embeddings=unit_rows(2).astype(np.float64), paths=np.frombuffer(b'["/a","/b"]', np.uint8),
             sizes=np.zeros(2, np.int64), mtimes=np.zeros(2, np.int64),
             metadata=np.array(json.dumps({"format": FORMAT, "storage": "float32", "rows": "2", "dim": "48"})))  # fmt: skip
    with pytest.raises(EmbeddingsFileError, match="embeddings are F64 but the metadata says storage 'float32'"):
        open_embeddings(tmp_path / "f64.npz")
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(EmbeddingsFileError, match="not an embeddings file"):
        open_embeddings(tmp_path / "junk.safetensors")


def test_search_refuses_another_model_than_the_one_that_made_the_index(capsys, tmp_path):
    folder, index = folder_of(tmp_path, 2), tmp_path / "i.safetensors"
    assert run(capsys, "embed", folder, "-o", index)[0] == 0
    code, _, err = run(capsys, "search", index, "a red circle", "--model", DEMO_FIXRES)
    assert code == 1 and "made with another model" in err and "fingerprint" in err


def test_the_ray_engine_without_ray_says_how_to_install_it(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails as if it were not installed
    folder = folder_of(tmp_path, 1)
    code, _, err = run(capsys, "embed", folder, "-o", tmp_path / "out.parquet", "--engine", "ray")
    assert code == 1 and 'pip install "siglip2-ref[ray]"' in err and "Traceback" not in err
    code, _, err = run(capsys, "embed", folder, "-o", tmp_path / "out.parquet")
    assert code == 2 and "a Parquet folder needs --engine ray" in err
    code, _, err = run(capsys, "embed", folder, "--engine", "ray")  # the default -o is the local index's name
    assert code == 2 and "writes a Parquet folder" in err


def test_when_every_file_turns_unreadable_the_index_empties_instead_of_keeping_stale_rows(capsys, tmp_path):
    folder, index = folder_of(tmp_path, 2), tmp_path / "i.safetensors"
    assert run(capsys, "embed", folder, "-o", index)[0] == 0
    for f in images_in(folder):
        f.write_bytes(b"junk")
    code, out, err = run(capsys, "embed", folder, "-o", index)
    assert code == 1 and "holds 0 embeddings" in out and "skipped 2 unreadable images" in err
    assert len(open_embeddings(index)) == 0
