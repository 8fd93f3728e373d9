"""`siglip2-ref search`: the embedded images that best match a text, an example image, or a weighted mix."""

import json
import sys
from pathlib import Path

from .options import EXIT_OK, CommandError, UsageError, checkpoint_folder, load, positive_int, score_text

NAME = "search"
SUMMARY = "find the embedded images that best match a text, an example image, or a weighted mix"
IMAGES = True  # takes --resize-backend and --max-num-patches
EXAMPLES = """examples:
  siglip2-ref search photos.safetensors a dog on a beach --top-k 10
  siglip2-ref search photos.safetensors ./cat.jpg                        # images like this one
  siglip2-ref search photos.safetensors "2:golden retriever" + ./pool.jpg - fruit
  siglip2-ref search photos.safetensors "a red car" --html top.html --sheet top.png
query terms are joined by + and -; "W:" in front weights a term; a term that is an existing image file is that
image. EMBEDDINGS: a .safetensors/.npz index from `embed`, or the Parquet folder of `embed --engine ray`.
the model recorded in EMBEDDINGS is used unless --model is given (it must be the same model)"""


def configure(p):
    p.add_argument("embeddings", metavar="EMBEDDINGS", help="an index written by `siglip2-ref embed`")
    p.add_argument("query", nargs="+", metavar="QUERY", help='what to look for: "a red circle", ./cat.jpg, or a mix')
    p.add_argument("--top-k", type=positive_int, default=5, metavar="K", help="results shown (default: 5)")
    p.add_argument("--json", action="store_true", help="print JSON: [{rank, path, score, cosine}] (score null for mixes and images)")
    p.add_argument("--html", metavar="FILE.html", help="also write a contact sheet: an HTML page of the thumbnails and scores")
    p.add_argument("--sheet", metavar="FILE.png", help="also write a contact sheet as one PNG grid of thumbnails and scores")
    p.add_argument("--chunk-rows", type=positive_int, default=16384, metavar="N",
                   help="rows scored at a time; memory stays at a few times N x width x 4 bytes (default: 16384)")  # fmt: skip


def search_model_folder(args, meta):
    """--model (checked to be the model that made EMBEDDINGS), else the model recorded in the file."""
    from ..tasks.index import model_fingerprint

    recorded = meta.get("model", "")
    folder = checkpoint_folder(args) if args.model is not None else Path(recorded) if recorded else None
    if folder is None or not (folder / "config.json").is_file():
        raise CommandError(f"{args.embeddings} was made with {recorded or 'an unknown model'}, which is not found here; "
                           "pass --model with that checkpoint")  # fmt: skip
    if meta.get("model_fingerprint") and model_fingerprint(folder) != meta["model_fingerprint"]:
        raise CommandError(f"{args.embeddings} was made with another model ({recorded}, fingerprint {meta['model_fingerprint']}) "
                           f"than {folder}; its embeddings do not compare with this model's: pass --model with that checkpoint")  # fmt: skip
    return folder


def check_outputs(args):
    if args.html and not args.html.lower().endswith((".html", ".htm")):
        raise UsageError(f"--html {args.html}: use a .html file name")
    if args.sheet and not args.sheet.lower().endswith(".png"):
        raise UsageError(f"--sheet {args.sheet}: the contact sheet is a PNG; use a .png file name")


def run(args):
    from ..tasks.readers import open_embeddings
    from ..tasks.query import parse_query, search_embeddings

    check_outputs(args)
    terms = parse_query(args.query)
    embeddings = open_embeddings(args.embeddings)
    model, processor = load(args, search_model_folder(args, embeddings.meta))
    patches = args.max_num_patches or (int(embeddings.meta["max_num_patches"]) if embeddings.meta.get("max_num_patches") else None)
    hits = search_embeddings(model, processor, terms, embeddings, args.top_k, patches, args.chunk_rows)
    rows = [dict(rank=r + 1, path=embeddings.paths[i], score=p, cosine=c) for r, (i, c, p) in enumerate(hits)]
    write_sheets(args, rows, query_text(terms))
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    print(f"{'rank':>4}  {'score':>7}  {'cosine':>7}  path")
    for row in rows:
        score = score_text(row["score"]) if row["score"] is not None else f"{'-':>7}"
        print(f"{row['rank']:>4}  {score}  {row['cosine']:+.4f}  {row['path']}")
    what = f"sigmoid probability that the image matches {terms[0][1]!r}" if rows and rows[0]["score"] is not None else "- for image and mixed queries; ranked by cosine"
    print(f"(score = {what}; {len(embeddings)} images searched)")
    return EXIT_OK


def query_text(terms):
    """The query as one line, for the contact sheet's title: 2 x golden retriever + pool.jpg - fruit."""
    parts = [("- " if w < 0 else "+ ") + (f"{abs(w):g} x " if abs(w) != 1 else "") + str(t) for w, t in terms]
    return " ".join(parts).removeprefix("+ ")


def write_sheets(args, rows, title):
    from ..tasks.contact_sheet import write_html, write_png

    if args.html:
        write_html(args.html, rows, title)
        print(f"wrote {args.html}", file=sys.stderr)
    if args.sheet:
        write_png(args.sheet, rows, title)
        print(f"wrote {args.sheet}", file=sys.stderr)
