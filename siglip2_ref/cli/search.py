"""`siglip2-ref search`: the embedded images that best match a text query."""

import json
from pathlib import Path

from .options import EXIT_OK, CommandError, UsageError, checkpoint_folder, load, positive_int, score_text, warn

NAME = "search"
SUMMARY = "find the embedded images that best match a text query"
IMAGES = True  # takes --resize-backend and --max-num-patches
EXAMPLES = """examples:
  siglip2-ref search photos.safetensors "a dog on a beach" --top-k 10
the model recorded in EMBEDDINGS is used unless --model is given"""


def configure(p):
    p.add_argument("embeddings", metavar="EMBEDDINGS", help="a file written by `siglip2-ref embed`")
    p.add_argument("query", metavar="QUERY", help='what to look for, e.g. "a red circle"')
    p.add_argument("--top-k", type=positive_int, default=5, metavar="K", help="results shown (default: 5)")
    p.add_argument("--json", action="store_true", help="print JSON: [{rank, path, score, cosine}]")


def search_model_folder(args, meta):
    """--model, else the model recorded in the embeddings file (it must be the one that made them)."""
    if args.model is not None:
        folder = checkpoint_folder(args)
        if meta.get("model") and meta["model"] != str(folder):
            warn(f"{args.embeddings} was made with {meta['model']}; searching it with {folder}")
        return folder
    recorded = meta.get("model", "")
    if recorded and (Path(recorded) / "config.json").is_file():
        return Path(recorded)
    raise CommandError(f"{args.embeddings} was made with {recorded or 'an unknown model'}, which is not found here; "
                       "pass --model with that checkpoint")  # fmt: skip


def run(args):
    import numpy as np

    from ..tasks.pipelines import embed_texts, load_embeddings, search

    if not args.query.strip():
        raise UsageError("QUERY is empty")
    embeddings, paths, meta = load_embeddings(args.embeddings)
    model, processor = load(args, search_model_folder(args, meta))
    hits = search(model, processor, args.query, embeddings, args.top_k)
    query = embed_texts(model, processor, [args.query])[0]  # [D]
    rows = [dict(rank=r + 1, path=paths[i], score=p, cosine=float(np.dot(embeddings[i], query))) for r, (i, p) in enumerate(hits)]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    print(f"{'rank':>4}  {'score':>7}  {'cosine':>7}  path")
    for row in rows:
        print(f"{row['rank']:>4}  {score_text(row['score'])}  {row['cosine']:+.4f}  {row['path']}")
    print(f"(score = sigmoid probability that the image matches {args.query!r}; {len(paths)} images searched)")
    return EXIT_OK
