"""The pieces of siglip2_ref/bench/collections.py (the benchmark itself prints tables and is not timed here)."""

import numpy as np
from PIL import Image

from siglip2_ref.bench.collections import float16_recall_on, query_child, recall_at_10, synthetic_index, write_jpegs
from siglip2_ref.tasks.readers import open_embeddings


def test_generated_jpegs_have_mixed_sizes(tmp_path):
    files = write_jpegs(tmp_path, 4)
    sizes = {Image.open(f).size for f in files}
    assert len(files) == 4 and len(sizes) == 4 and all(Image.open(f).format == "JPEG" for f in files)


def test_synthetic_index_and_the_query_child_agree_with_a_full_sort(tmp_path):
    path = tmp_path / "s.safetensors"
    synthetic_index(path, 300, 16, "float32")
    e = open_embeddings(path)
    result = query_child(path, seed=3, repeats=1)
    q = np.random.default_rng(3).standard_normal(16).astype(np.float32)
    q /= np.linalg.norm(q)
    assert result["rows"] == list(np.argsort(-(e.array() @ q), kind="stable")[:10]) and result["peak_rss_mib"] > 0


def test_recall_measures_top_10_overlap():
    assert recall_at_10(range(10), range(5, 15)) == 0.5
    rows = np.eye(20, 8, dtype=np.float32) + 0.01
    assert float16_recall_on(rows / np.linalg.norm(rows, axis=1, keepdims=True), queries=5) == 1.0
