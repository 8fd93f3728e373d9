"""The Ray Data path on a real local cluster (`ray.init(num_cpus=2)`, started and shut down here).

Selected with `-m ray` only (the optional-extra phase of .ci/run installs `.[test,ray]` and runs them); skipped
otherwise, and when Ray is not installed. Expected values: the local path's `embed_images` on the same files.
"""

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from siglip2_ref import cli
from siglip2_ref.demo import DEMO_NAFLEX
from siglip2_ref.model.model import load_model
from siglip2_ref.preprocess.processor import load_processor
from siglip2_ref.tasks.readers import open_embeddings
from siglip2_ref.tasks.pipelines import embed_images
from tests.test_index import folder_of, images_in

pytestmark = [
    pytest.mark.ray,
    pytest.mark.skipif("'ray' not in config.getoption('markexpr')", reason="Ray tests run only when selected: -m ray"),
]
ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")
from siglip2_ref import embed_dataset  # noqa: E402 (the public name)
from siglip2_ref.tasks.ray_embed import embed_files_to_parquet  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def demo():
    return load_model(DEMO_NAFLEX), load_processor(DEMO_NAFLEX)


META = {"model": str(DEMO_NAFLEX), "dim": 48, "normalized": "true"}


def assert_same_as_local(parquet, files, demo):
    got = open_embeddings(parquet)
    assert sorted(got.paths) == sorted(str(f) for f in files) and len(set(got.paths)) == len(got.paths)  # once each
    expected = embed_images(*demo, [Path(p) for p in got.paths], batch_size=5)
    np.testing.assert_allclose(got.array(), expected, atol=1e-6, rtol=0)
    assert got.meta["rows"] == str(len(files)) and got.meta["storage"] == "float32"


def test_ray_embeddings_equal_the_local_path_and_search_reads_the_parquet(tmp_path, demo, capsys):
    folder = folder_of(tmp_path, 13)
    (folder / "broken.png").write_bytes(b"not an image")
    files = [str(f) for f in images_in(folder)]
    good = [f for f in files if not f.endswith("broken.png")]
    written = embed_files_to_parquet(files, str(tmp_path / "out.parquet"), DEMO_NAFLEX, META, batch_size=3, num_workers=2)
    assert written["rows"] == 13 and written["skipped_paths"] == [str(folder / "broken.png")]
    assert_same_as_local(tmp_path / "out.parquet", good, demo)

    assert cli.main(["embed", str(folder), "-o", str(tmp_path / "local.safetensors")]) == 0
    assert cli.main(["embed", str(folder), "-o", str(tmp_path / "cli.parquet"), "--engine", "ray"]) == 0
    out, err = capsys.readouterr()
    assert "embedded 13 images on Ray" in out and f"skipped unreadable image {folder / 'broken.png'}" in err
    answers = []
    for index in ("local.safetensors", "cli.parquet"):
        assert cli.main(["search", str(tmp_path / index), "a", "red", "star", "--top-k", "4"]) == 0
        answers.append(capsys.readouterr().out)
    assert answers[0] == answers[1]


def test_image_bytes_in_a_ray_dataset(tmp_path, demo):
    files = images_in(folder_of(tmp_path, 5))
    ds = ray.data.from_items([{"path": str(f), "bytes": f.read_bytes()} for f in files])
    rows = embed_dataset(ds, DEMO_NAFLEX, batch_size=2, num_workers=1).take_all()
    by_path = {r["path"]: np.asarray(r["embedding"], np.float32) for r in rows}
    expected = embed_images(*demo, files)
    np.testing.assert_allclose(np.stack([by_path[str(f)] for f in files]), expected, atol=1e-6, rtol=0)


def map_worker_pids():
    """Processes of Ray Data's actor pool (their title names MapWorker)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and b"MapWorker" in open(f"/proc/{entry}/cmdline", "rb").read():
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def test_a_worker_killed_mid_way_still_gives_every_row_exactly_once(tmp_path, demo):
    files, out = [str(f) for f in images_in(folder_of(tmp_path, 200))], tmp_path / "out.parquet"
    killed, finished, before = {}, {}, set(map_worker_pids())  # actors of earlier tests may still be exiting

    def killer():  # once this run's workers exist and have had half a second (or written a first file): kill one
        start, new, seen = time.monotonic(), [], None
        while not killed and not finished and time.monotonic() - start < 120:
            new = new or [p for p in map_worker_pids() if p not in before]
            seen = seen or (time.monotonic() if new else None)
            alive = [p for p in map_worker_pids() if p in new]
            if alive and (time.monotonic() - seen > 0.5 or (out.is_dir() and any(out.iterdir()))):
                os.kill(alive[0], signal.SIGKILL)
                killed.update(pid=alive[0], at=time.monotonic())
            time.sleep(0.02)

    thread = threading.Thread(target=killer)
    thread.start()
    written = embed_files_to_parquet(files, str(out), DEMO_NAFLEX, META, batch_size=1, num_workers=2)
    finished["at"] = time.monotonic()
    thread.join()
    assert killed and killed["at"] < finished["at"], "the worker was not killed while the run was going on"
    assert written["rows"] == len(files) and written["skipped_paths"] == []
    assert_same_as_local(out, files, demo)
