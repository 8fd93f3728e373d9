"""Contact sheets of search results: an HTML page or one PNG grid of the top-k thumbnails with their scores.

    write_html("top.html", rows, "a red car")   # rows: [{"rank", "path", "score" (or None), "cosine"}]
    write_png("top.png", rows, "a red car")

People would rather look than read: each thumbnail carries its rank, score and file name. An image that cannot
be opened any more is drawn as a grey tile that says so, and the sheet is still written.
"""

import html
import os
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

THUMB, CAPTION, COLUMNS, PAD = 192, 34, 5, 8  # pixels per thumbnail side, caption height; tiles per row; margin


def caption(row):
    score = f"p={row['score']:.3g}" if row.get("score") is not None else f"cos={row['cosine']:+.3f}"
    return f"#{row['rank']} {score}", Path(row["path"]).name


def thumbnail(path):  # -> RGB image THUMB x THUMB
    """The image shrunk to fit the tile (aspect ratio kept, EXIF orientation applied), on white."""
    tile = Image.new("RGB", (THUMB, THUMB), "white")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            im.thumbnail((THUMB, THUMB))
            tile.paste(im, ((THUMB - im.width) // 2, (THUMB - im.height) // 2))
    except (OSError, ValueError) as e:
        tile.paste((200, 200, 200), (0, 0, THUMB, THUMB))
        ImageDraw.Draw(tile).text((6, THUMB // 2), f"cannot open:\n{type(e).__name__}", fill="black")
    return tile


def write_png(out, rows, title):
    """One PNG: a title line, then the thumbnails COLUMNS to a row, each captioned with rank, score, name."""
    font = ImageFont.load_default()
    cols = max(1, min(COLUMNS, len(rows)))
    lines = -(-len(rows) // cols) if rows else 0
    width, height = PAD + cols * (THUMB + PAD), 30 + lines * (THUMB + CAPTION + PAD)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD, 8), f"query: {title}", fill="black", font=font)
    for i, row in enumerate(rows):
        x, y = PAD + (i % cols) * (THUMB + PAD), 30 + (i // cols) * (THUMB + CAPTION + PAD)
        sheet.paste(thumbnail(row["path"]), (x, y))
        first, name = caption(row)
        draw.text((x, y + THUMB + 2), first, fill="black", font=font)
        draw.text((x, y + THUMB + 16), name[:30], fill=(90, 90, 90), font=font)
    sheet.save(out)


def write_html(out, rows, title):
    """An HTML page linking the images where they are (relative to the page), captioned like the PNG."""
    base = os.path.dirname(os.path.abspath(out))
    tiles = []
    for row in rows:
        src = html.escape(Path(os.path.relpath(os.path.abspath(row["path"]), base)).as_posix(), quote=True)
        first, name = caption(row)
        tiles.append(f'<figure><a href="{src}"><img src="{src}" loading="lazy"></a>'
                     f"<figcaption>{html.escape(first)}<br>{html.escape(name)}</figcaption></figure>")  # fmt: skip
    page = ("<!doctype html><meta charset=utf-8><title>" + html.escape(title) + "</title>"
            "<style>body{font-family:sans-serif}figure{display:inline-block;margin:6px;width:" + str(THUMB) + "px}"
            "img{max-width:" + str(THUMB) + "px;max-height:" + str(THUMB) + "px}figcaption{font-size:12px}</style>"
            "<h1>" + html.escape(title) + "</h1>\n" + "\n".join(tiles) + "\n")  # fmt: skip
    Path(out).write_text(page, encoding="utf-8")
