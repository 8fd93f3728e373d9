"""Queries (text, example image, weighted mixes), chunked top-k, contact sheets, and the preprocessing threads.

Expected values: a full stable argsort of all scores for top-k; the arithmetic of the mix written out with
`embed_texts` / `embed_images`; the model's forward logits for a text query's probability.
"""

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

import siglip2_ref as s2
from siglip2_ref import cli
from siglip2_ref.demo import DEMO_NAFLEX, shapes
from siglip2_ref.model.vision import InputError
from siglip2_ref.tasks.contact_sheet import COLUMNS, THUMB, write_html, write_png
from siglip2_ref.tasks.pipelines import embed_images, embed_texts
from siglip2_ref.tasks.query import as_embeddings, parse_query, query_vector, search_embeddings, top_k
from siglip2_ref.tasks.stream import prefetched


@pytest.fixture(scope="module")
def demo():
    return s2.load_model(DEMO_NAFLEX), s2.load_processor(DEMO_NAFLEX)


@pytest.fixture
def pictures(tmp_path):
    rng = np.random.default_rng(5)
    drawn = [(c, s) for c in ("red", "blue", "green") for s in ("circle", "square", "star")]
    for c, s in drawn:
        shapes.draw(c, s, "center", rng, size=(80, 64)).save(tmp_path / f"{c}_{s}.png")
    return tmp_path, [tmp_path / f"{c}_{s}.png" for c, s in drawn]


# ---------------------------------------------------------------- parsing


def test_parse_query_terms_weights_and_images(pictures, monkeypatch):
    folder, files = pictures
    monkeypatch.chdir(folder)
    assert parse_query(["a", "dog", "on", "a", "beach"]) == [(1.0, "a dog on a beach")]
    assert parse_query(["2:golden retriever", "+", "./red_star.png", "-", "fruit"]) == [
        (2.0, "golden retriever"), (1.0, Path("./red_star.png")), (-1.0, "fruit")]  # fmt: skip
    assert parse_query(["-", "0.5:night", "+", "day"]) == [(-0.5, "night"), (1.0, "day")]
    assert parse_query(["photo: a cat"]) == [(1.0, "photo: a cat")]  # not a number before the colon: text
    assert parse_query(["missing.jpg"]) == [(1.0, "missing.jpg")]  # no such file: text
    for words, message in [(["+"], "no terms"), (["  "], "empty term"), (["a", "red_star.png"], "inside the text term")]:
        with pytest.raises(InputError, match=message):
            parse_query(words)


# ---------------------------------------------------------------- the query vector and top-k


def test_a_mix_is_the_normalised_weighted_sum_of_normalised_embeddings(demo, pictures):
    _, files = pictures
    model, processor = demo
    q = query_vector(model, processor, [(2.0, "red"), (1.0, files[4]), (-1.0, "circle")])
    t = embed_texts(model, processor, ["red", "circle"])
    i = embed_images(model, processor, [files[4]])
    expected = 2 * t[0] + i[0] - t[1]
    np.testing.assert_allclose(q, expected / np.linalg.norm(expected), atol=1e-6)
    with pytest.raises(InputError, match="cancel out"):
        query_vector(model, processor, [(1.0, "red"), (-1.0, "red")])
    with pytest.raises(InputError, match=r"query\[0\]: expected a \(weight, text or image\) pair"):
        query_vector(model, processor, ["red"])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), k=st.integers(1, 12), chunk=st.integers(1, 17), seed=st.integers(0, 99))
def test_chunked_top_k_equals_a_full_stable_sort(n, k, chunk, seed):
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, 8), np.float32)  # four entries of +-0.5: unit rows whose dot products are exact in float32,
    for row in rows:  # so chunked and full products agree bit for bit and ties are real ties
        row[rng.choice(8, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    q = rows[rng.integers(0, n)]
    got_rows, got_scores = top_k(as_embeddings(rows), q, k, chunk)
    scores = rows @ q
    expected = np.argsort(-scores, kind="stable")[:k]
    assert list(got_rows) == list(expected)
    np.testing.assert_array_equal(got_scores, scores[expected])


def test_text_search_scores_are_the_forward_probabilities(demo, pictures):
    _, files = pictures
    model, processor = demo
    embeds = embed_images(model, processor, files)
    hits = search_embeddings(model, processor, "a blue star", embeds, 3, chunk_rows=2)
    logits = model(**processor(text=["a blue star"], images=[Image.open(f) for f in files], padding="max_length", max_length=64,
                               truncation=True)).logits_per_text[0]  # fmt: skip
    probs = 1 / (1 + np.exp(-logits))
    assert [r for r, _, _ in hits] == list(np.argsort(-probs, kind="stable")[:3]) and files[hits[0][0]].name == "blue_star.png"
    np.testing.assert_allclose([p for _, _, p in hits], probs[[r for r, _, _ in hits]], atol=2e-6)
    # an image query: the image itself first, cosine 1, and no probability
    (row, cosine, prob), *_ = search_embeddings(model, processor, files[2], embeds, 2)
    assert row == 2 and abs(cosine - 1) < 1e-5 and prob is None
    assert s2.search(model, processor, [(1.0, files[2])], embeds, top_k=1)[0][0] == 2


def test_search_command_forms_and_json(capsys, demo, pictures, monkeypatch):
    folder, files = pictures
    monkeypatch.chdir(folder)
    assert cli.main(["embed", ".", "-o", "i.safetensors"]) == 0
    capsys.readouterr()
    assert cli.main(["search", "i.safetensors", "./green_square.png", "--json", "--top-k", "2"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert Path(rows[0]["path"]).name == "green_square.png" and rows[0]["score"] is None and rows[0]["cosine"] > 0.999
    assert cli.main(["search", "i.safetensors", "a", "green", "star", "--top-k", "1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].endswith("green_star.png") and "sigmoid probability" in out
    assert cli.main(["search", "i.safetensors", "2:red star", "+", "./red_star.png", "-", "blue", "--top-k", "1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[1] == "-" and out.splitlines()[1].endswith("red_star.png")


# ---------------------------------------------------------------- contact sheets


def test_contact_sheets_show_every_hit_with_its_score(tmp_path, pictures):
    folder, files = pictures
    rows = [dict(rank=i + 1, path=str(f), score=0.5 / (i + 1), cosine=0.9 - i / 10) for i, f in enumerate(files[:7])]
    rows.append(dict(rank=8, path=str(tmp_path / "gone.png"), score=None, cosine=0.1))  # drawn grey, not a crash
    write_png(tmp_path / "s.png", rows, "a test")
    with Image.open(tmp_path / "s.png") as im:
        assert im.width == 8 + COLUMNS * (THUMB + 8) and im.height > 2 * THUMB
        tile = np.asarray(im.convert("RGB"))[30 + THUMB + 34 + 8 + THUMB // 4, 8 + 2 * (THUMB + 8) + 4]
        assert tuple(tile) == (200, 200, 200)  # the 8th tile (row 2, column 3) is the missing image's grey
    (tmp_path / "out").mkdir()
    write_html(tmp_path / "out" / "s.html", rows, "a <test>")
    page = (tmp_path / "out" / "s.html").read_text()
    assert page.count("<figure>") == 8 and "a &lt;test&gt;" in page and "p=0.5<" in page and "cos=+0.100" in page
    assert f'src="../{files[0].name}"' in page


# ---------------------------------------------------------------- the preprocessing threads


def test_prefetched_keeps_order_bounds_the_work_in_flight_and_returns_errors():
    started, lock = [], threading.Lock()

    def work(i):
        with lock:
            started.append(i)
        if i == 3:
            raise ValueError("bad 3")
        return i * i

    stream = prefetched(work, range(100), workers=3, depth=5, catch=(ValueError,))
    first = next(stream)
    assert first == (0, 0, None) and len(started) <= 6  # at most depth items submitted before the first result
    rest = list(stream)
    assert [r[1] for r in rest if r[2] is None] == [i * i for i in range(1, 100) if i != 3]
    assert [(r[0], str(r[2])) for r in rest if r[2] is not None] == [(3, "bad 3")]
    with pytest.raises(KeyError):
        list(prefetched(lambda i: {}[i], range(3), catch=(ValueError,)))  # other errors reach the consumer


def test_query_image_suffixes_are_the_ones_embed_looks_for():
    from siglip2_ref.cli.options import IMAGE_SUFFIXES
    from siglip2_ref.tasks import query

    assert query.IMAGE_SUFFIXES == IMAGE_SUFFIXES
