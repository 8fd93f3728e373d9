"""Queries over embedded images: a text, an example image, or a weighted mix of both, and top-k in chunks.

    terms = parse_query(["2:golden retriever", "+", "./pool.jpg", "-", "fruit"])
    # [(2.0, "golden retriever"), (1.0, Path("pool.jpg")), (-1.0, "fruit")]
    q = query_vector(model, processor, terms)          # [D], L2-normalised
    rows, cosines = top_k(open_embeddings("photos.safetensors"), q, k=10)

A mix is the weighted sum of its terms' L2-normalised embeddings (texts through the text tower, images through
the vision tower), normalised again: the same arithmetic rclip uses. Rows are ranked by cosine with it; a query of
one text also gets SigLIP's calibrated probability, sigmoid(cos * exp(logit_scale) + logit_bias), as the model's
logits_per_text. Shapes: docs/shapes.md (I stored rows, D embedding width, k results kept; local: c rows in one chunk).
"""

import os
from pathlib import Path

import numpy as np

from ..model.head import sigmoid
from ..errors import InputError
from .embedfile import CHUNK_ROWS, Embeddings
from .pipelines import embed_images, embed_texts, match_logits

OPERATORS = {"+": 1.0, "-": -1.0}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jfif", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")  # as cli/options.py (tests check)


def looks_like_image_path(text):
    """A query word names an image when it is an existing file with an image suffix ("./cat.jpg", "~/a.png")."""
    path = Path(os.path.expanduser(text))
    return text.lower().endswith(IMAGE_SUFFIXES) and path.is_file()


def split_weight(word):  # "2:golden retriever" -> (2.0, "golden retriever")
    """A leading `W:` sets the term's weight (as rclip writes it); anything else is weight 1."""
    head, sep, rest = word.partition(":")
    if sep and rest.strip():
        try:
            return float(head), rest
        except ValueError:
            pass  # "photo: a cat" is text with a colon in it
    return 1.0, word


def parse_query(words):
    """[(weight, str text | Path image)] from command-line words: terms joined by "+" and "-" words.

    Words between operators form one term (`a dog on a beach` needs no quotes); a term that is one existing
    image file is that image. A leading `W:` weights the term: "2:golden retriever" + ./pool.jpg - fruit.
    """
    groups, signs = [[]], [1.0]
    for word in words:
        if word in OPERATORS:
            if groups[-1]:
                groups.append([])
                signs.append(1.0)
            signs[-1] = OPERATORS[word]
        else:
            groups[-1].append(word)
    terms = [query_term(sign, group) for sign, group in zip(signs, groups) if group]
    if not terms:
        raise InputError("query: no terms; give text such as 'a dog', an image path, or a mix: '2:a dog' + ./beach.jpg - night")
    return terms


def query_term(sign, group):  # (+1 | -1, words) -> (weight, text or Path)
    weight, body = split_weight(" ".join(group))
    if not body.strip():
        raise InputError("query: an empty term; give text such as 'a dog' or an image path such as ./dog.jpg")
    if looks_like_image_path(body):
        return sign * weight, Path(os.path.expanduser(body))
    named = [w for w in group if looks_like_image_path(split_weight(w)[1])]
    if named:
        raise InputError(f"query: the image {named[0]} is inside the text term {body!r}; join terms with + or -")
    return sign * weight, body


def as_terms(query):
    """A str (one text), a Path/PIL image/array (one image), or [(weight, item)] -> [(weight, item)]."""
    if isinstance(query, (list, tuple)):
        if not query:
            raise InputError("query: the list of terms is empty; give [(weight, text or image), ...]")
        for i, term in enumerate(query):
            if not (isinstance(term, tuple) and len(term) == 2 and isinstance(term[0], (int, float))):
                raise InputError(f"query[{i}]: expected a (weight, text or image) pair, got {term!r}")
            if not np.isfinite(term[0]):
                raise InputError(f"query[{i}]: the weight {term[0]} is not finite")
        return [(float(w), item) for w, item in query]
    return [(1.0, query)]


def is_single_text(terms):
    return len(terms) == 1 and isinstance(terms[0][1], str) and terms[0][0] > 0


def query_vector(model, processor, query, max_num_patches=None):  # -> [D]
    """The L2-normalised weighted sum of the terms' normalised embeddings (texts: text tower; images: vision)."""
    terms = as_terms(query)
    texts = [(w, t) for w, t in terms if isinstance(t, str)]
    images = [(w, im) for w, im in terms if not isinstance(im, str)]
    parts = []
    if texts:
        parts.append(np.array([w for w, _ in texts], np.float32) @ embed_texts(model, processor, [t for _, t in texts]))
    if images:
        embeds = embed_images(model, processor, [im for _, im in images], max_num_patches=max_num_patches)  # [n, D]
        parts.append(np.array([w for w, _ in images], np.float32) @ embeds)
    q = np.sum(parts, axis=0)  # [D]
    norm = float(np.linalg.norm(q))
    if not norm > 1e-6:
        raise InputError("query: the weighted terms cancel out (their sum has length 0); change the weights")
    return (q / norm).astype(np.float32)


def as_embeddings(image_embeds):
    """An `Embeddings` for an opened file or an in-memory [I, D] array (rows named by their index)."""
    if isinstance(image_embeds, Embeddings):
        return image_embeds
    a = np.asarray(image_embeds)
    if a.ndim != 2 or not len(a) or a.dtype.kind != "f":
        raise InputError(f"image_embeds: expected a non-empty [I, D] float array, got shape {a.shape} of {a.dtype}")
    meta = {"dim": str(a.shape[1]), "storage": "float16" if a.dtype == np.float16 else "float32"}
    return Embeddings("image_embeds", [f"row {i}" for i in range(len(a))], meta, {}, lambda start, stop: a[start:stop])


def merge_best(scores, rows, k):  # [n], [n] -> the k best, best first, ties by row
    order = np.lexsort((rows, -scores))[:k]
    return scores[order], rows[order]


def top_k(embeddings, q, k, chunk_rows=CHUNK_ROWS):  # [I, D] in chunks, [D] -> rows [k], cosines [k]
    """The k rows with the largest cosine with q, best first (ties: lower row first), reading C rows at a time."""
    if embeddings.dim != q.shape[-1]:
        raise InputError(f"embedding widths differ: the query {q.shape[-1]}, {embeddings.path} {embeddings.dim}; "
                         "were the image embeddings made with another model?")  # fmt: skip
    best_scores, best_rows = np.zeros(0, np.float32), np.zeros(0, np.int64)
    for start, chunk in embeddings.chunks(chunk_rows):  # [C, D]
        cos = chunk @ q  # [C]
        keep = np.argpartition(-cos, k - 1)[:k] if len(cos) > k else np.arange(len(cos))
        scores = np.concatenate([best_scores, cos[keep]])
        best_scores, best_rows = merge_best(scores, np.concatenate([best_rows, start + keep]), k)
    return best_rows, best_scores


def search_embeddings(model, processor, query, image_embeds, k=5, max_num_patches=None, chunk_rows=CHUNK_ROWS):
    """[(row, cosine, probability or None)] best first; the probability only for a query of one text."""
    terms, embeddings = as_terms(query), as_embeddings(image_embeds)
    q = query_vector(model, processor, terms, max_num_patches)  # [D]
    rows, cosines = top_k(embeddings, q, max(int(k), 1), chunk_rows)
    probs = [None] * len(rows)
    if is_single_text(terms) and len(rows):
        logits = match_logits(model, q[None], embeddings.rows(rows))[0]  # [k], as logits_per_text
        probs = [float(p) for p in sigmoid(logits)]
    return [(int(r), float(c), p) for r, c, p in zip(rows, cosines, probs)]


def search(model, processor, query, image_embeds, top_k=5, max_num_patches=None):
    """[(row, score)] best first over `image_embeds` (an [I, D] array of L2-normalised rows, or an opened file).

    `query`: a text (score: sigmoid probability, as logits_per_text), or an image (a path as pathlib.Path, a PIL
    image, an array) or a mix [(weight, text or image), ...] (score: cosine with the normalised mix).
    """
    hits = search_embeddings(model, processor, query, image_embeds, top_k, max_num_patches)
    return [(row, cosine if prob is None else prob) for row, cosine, prob in hits]
