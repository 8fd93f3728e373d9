"""Pictures of what the vision tower sees: the NaFlex resize with its patch grid, and the MAP head's attention.

Pillow only (no plotting library). Both figures are built from the processor's real output, turned back into
pixels, so they show exactly what the model receives; nothing here re-implements preprocessing.

    figure, facts = patches_figure(processor, "photo.jpg", patch_size=16)
    figure, facts = attention_figure(model, processor, "photo.jpg")

Shapes: docs/shapes.md (C channels, H heads, h x w resized image in pixels, gh x gw patch grid, p patch side,
N patch slots (NaFlex max_num_patches; FixRes gh*gw), P patch vector (p*p*C)).
"""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..backend import to_numpy
from ..preprocess.images import to_rgb, unpatchify
from .pipelines import image_options
from ..errors import InputError

GRID_COLOUR = (255, 255, 0, 150)  # patch boundaries, semi-transparent yellow
REAL_COLOUR = (70, 130, 230)
PAD_COLOUR = (200, 200, 200)
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
# "inferno"-like ramp: black -> purple -> red -> orange -> pale yellow (8 equally spaced stops)
HEAT = np.array([(0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66), (245, 125, 21), (250, 193, 39),
                 (252, 255, 164)], dtype=np.float64)  # fmt: skip
DISPLAY = 384  # long side of the main panel in pixels
PANEL = 200  # long side of each attention panel


# ---------------------------------------------------------------- back from model inputs to pixels


def font(size=14):
    """Pillow's bundled font at `size` (a fixed bitmap font on Pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def denormalize(pixels, config):  # [C, h, w] float -> [h, w, C] uint8
    """Undo rescale and normalise: x * std + mean, divided by the rescale factor, rounded to uint8."""
    mean = np.asarray(config["image_mean"], np.float64).reshape(-1, 1, 1) if config["do_normalize"] else 0.0
    std = np.asarray(config["image_std"], np.float64).reshape(-1, 1, 1) if config["do_normalize"] else 1.0
    x = pixels.astype(np.float64) * std + mean
    x = x / config["rescale_factor"] if config["do_rescale"] else x
    return np.clip(np.round(x), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def model_view(processor, image, patch_size, max_num_patches=None):
    """(rgb [3, H, W] as loaded, the processor's batch for it, resized image [h, w, 3] uint8, facts)."""
    rgb = to_rgb(image)  # [3, h0, w0]; a path is opened as the processor opens it (EXIF applied)
    batch = processor.require_image_processor()(rgb, **image_options(max_num_patches))
    pixels = batch["pixel_values"][0]
    config = processor.image_processor.config
    if "spatial_shapes" in batch:  # NaFlex: [N, P] patches back to [C, gh p, gw p]
        gh, gw = (int(s) for s in batch["spatial_shapes"][0])
        p, slots = config["patch_size"], pixels.shape[0]
        pixels = unpatchify(pixels, (gh, gw), p, rgb.shape[0])
    else:  # FixRes: [C, S, S] already; the conv sees (S // p)^2 patches
        p = patch_size
        gh, gw = pixels.shape[1] // p, pixels.shape[2] // p
        slots = gh * gw
    facts = dict(original_size=(rgb.shape[2], rgb.shape[1]), resized_size=(pixels.shape[2], pixels.shape[1]),
                 patch_size=p, spatial_shape=(gh, gw), real_patches=gh * gw, patch_slots=slots,
                 padding_patches=slots - gh * gw, variant="naflex" if "spatial_shapes" in batch else "fixres")  # fmt: skip
    return rgb, batch, denormalize(pixels, config), facts


# ---------------------------------------------------------------- drawing helpers


def upscale(pixels, factor):  # [h, w, 3] uint8 -> PIL image (h*factor, w*factor)
    """Nearest-neighbour enlargement, so every model pixel stays a crisp square."""
    return Image.fromarray(pixels).resize((pixels.shape[1] * factor, pixels.shape[0] * factor), Image.NEAREST)


def display_factor(h, w, target):
    return max(1, target // max(h, w))


def draw_grid(image, gh, gw, cell):
    """Patch boundaries every `cell` pixels over an RGB image (returns a new image)."""
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    pen = ImageDraw.Draw(overlay)
    for r in range(gh + 1):
        pen.line([(0, min(r * cell, image.height - 1)), (image.width, min(r * cell, image.height - 1))], fill=GRID_COLOUR)
    for c in range(gw + 1):
        pen.line([(min(c * cell, image.width - 1), 0), (min(c * cell, image.width - 1), image.height)], fill=GRID_COLOUR)
    return Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")


def sequence_strip(patch_colours, slots, width):  # [n, 3] -> PIL image
    """The token sequence as the encoder gets it: one square per slot, row-major, padding slots grey and crossed."""
    cols = min(slots, 32)
    cell = max(6, min(24, width // cols))
    rows = -(-slots // cols)
    strip = Image.new("RGB", (cols * cell + 1, rows * cell + 1), BACKGROUND)
    pen = ImageDraw.Draw(strip)
    for i in range(slots):
        x, y = (i % cols) * cell, (i // cols) * cell
        box = [x, y, x + cell, y + cell]
        if i < len(patch_colours):
            pen.rectangle(box, fill=tuple(int(v) for v in patch_colours[i]), outline=REAL_COLOUR)
        else:
            pen.rectangle(box, fill=PAD_COLOUR, outline=(150, 150, 150))
            pen.line([(x, y), (x + cell, y + cell)], fill=(150, 150, 150))
    return strip


def stack_vertically(parts, margin=10):
    """Images and text lines (str) one under another on a white page."""
    face = font(14)
    sizes = [(p.width, p.height) if isinstance(p, Image.Image) else (int(face.getlength(p)) + 1, 18) for p in parts]
    page = Image.new("RGB", (max(w for w, _ in sizes) + 2 * margin, sum(h for _, h in sizes) + margin * (len(parts) + 1)),
                     BACKGROUND)  # fmt: skip
    pen, y = ImageDraw.Draw(page), margin
    for part, (_, h) in zip(parts, sizes):
        if isinstance(part, Image.Image):
            page.paste(part, (margin, y))
        else:
            pen.text((margin, y), part, fill=INK, font=face)
        y += h + margin
    return page


def side_by_side(images, gap=16):
    """Images left to right, top-aligned, on a white background."""
    page = Image.new("RGB", (sum(i.width for i in images) + gap * (len(images) - 1), max(i.height for i in images)), BACKGROUND)
    x = 0
    for image in images:
        page.paste(image, (x, 0))
        x += image.width + gap
    return page


# ---------------------------------------------------------------- the patches figure


def patch_mean_colours(pixels, gh, gw, p):  # [gh p, gw p, 3] -> [gh gw, 3]
    """Average colour of each patch, in the row-major order the patches enter the encoder."""
    return pixels[: gh * p, : gw * p].reshape(gh, p, gw, p, 3).mean(axis=(1, 3)).reshape(gh * gw, 3)


def patches_lines(facts):
    """The numbers the patches figure shows, as text lines (also printed by the command line)."""
    (W, H), (w, h), (gh, gw), p = facts["original_size"], facts["resized_size"], facts["spatial_shape"], facts["patch_size"]
    kind = "NaFlex: aspect ratio kept" if facts["variant"] == "naflex" else "FixRes: squashed to the fixed size"
    lines = [f"input {W}x{H} (width x height) -> resized {w}x{h} ({kind})",
             f"patch {p} px: grid {gh} rows x {gw} columns = {gh * gw} patches"]  # fmt: skip
    if facts["variant"] == "naflex":
        lines += [f"spatial_shapes = [{gh}, {gw}]",
                  f"max_num_patches = {facts['patch_slots']}: {facts['padding_patches']} padding patches (masked out of attention)"]  # fmt: skip
    return lines


def patches_figure(processor, image, patch_size, max_num_patches=None):
    """(PIL figure, facts): original | resized image with its patch grid, the token sequence, and the numbers."""
    rgb, _, pixels, facts = model_view(processor, image, patch_size, max_num_patches)
    (gh, gw), p = facts["spatial_shape"], facts["patch_size"]
    k = display_factor(*pixels.shape[:2], DISPLAY)
    resized = draw_grid(upscale(pixels, k), gh, gw, p * k)
    original = Image.fromarray(rgb.transpose(1, 2, 0))
    width = max(1, round(original.width * resized.height / original.height))  # same height as the resized panel
    original = original.resize((min(width, 2 * DISPLAY), resized.height), Image.NEAREST if width > original.width else Image.LANCZOS)
    strip = sequence_strip(patch_mean_colours(pixels, gh, gw, p), facts["patch_slots"], resized.width + original.width + 16)
    title = "original (left) and what the model sees (right): resized, cut into patches"
    parts = [title, side_by_side([original, resized]), "patch sequence, row-major (grey = padding):", strip]
    return stack_vertically(parts + patches_lines(facts)), facts


# ---------------------------------------------------------------- the attention figure


def heat_colours(values):  # [...] in [0, 1] -> [..., 3] uint8
    stops = np.linspace(0, 1, len(HEAT))
    return np.stack([np.interp(values, stops, HEAT[:, c]) for c in range(3)], axis=-1).astype(np.uint8)


def overlay(pixels, heat_map, k):  # [h, w, 3], [gh, gw] in [0, 1] -> PIL (h k, w k)
    """The image dimmed and tinted by a per-patch heat map (each patch one flat colour)."""
    h, w = pixels.shape[:2]
    gh, gw = heat_map.shape
    cells = heat_colours(heat_map).repeat(h // gh, axis=0).repeat(w // gw, axis=1)  # [h, w, 3]
    gray = pixels[: cells.shape[0], : cells.shape[1]].astype(np.float64).mean(axis=-1, keepdims=True)  # [h, w, 1]
    blend = 0.35 * gray + 0.65 * cells  # a grey underlay, so image colours are not mistaken for heat
    return upscale(blend.astype(np.uint8), k)


def head_attention_maps(model, batch, facts):  # -> [H, gh, gw]
    """The MAP head's attention of its probe query over the real patches, one map per head."""
    out = model.vision_forward(**batch)
    if out.get("head_attention") is None:
        raise InputError("this checkpoint has no MAP head (vision_use_head=False): there is no pooling attention to show")
    gh, gw = facts["spatial_shape"]
    weights = to_numpy(out["head_attention"])[0, :, 0, : gh * gw]  # [H, gh gw]; padded slots hold exact zeros
    return weights.reshape(-1, gh, gw).astype(np.float64)


def attention_summary(maps):
    """Per map (mean first, then each head): (name, min weight, max weight, (row, col) of the peak)."""
    named = [("mean", maps.mean(axis=0))] + [(f"head {i}", m) for i, m in enumerate(maps)]
    return [(name, float(m.min()), float(m.max()), tuple(int(v) for v in np.unravel_index(np.argmax(m), m.shape)))
            for name, m in named]  # fmt: skip


def stretch(m):  # [gh, gw] -> [gh, gw] in [0, 1]
    """Min-max contrast stretch (a flat map stays dark)."""
    span = m.max() - m.min()
    return (m - m.min()) / span if span > 0 else np.zeros_like(m)


def colour_bar(width, height=12):
    ramp = heat_colours(np.linspace(0, 1, width))[None].repeat(height, axis=0)  # [height, width, 3]
    return Image.fromarray(ramp)


def attention_figure(model, processor, image, max_num_patches=None, columns=6):
    """(PIL figure, facts): the model's view of the image, then the MAP head's attention over its patches:
    the mean over heads, then each head.

    Each panel's colours span its own weight range (printed above it): a nearly flat head still shows
    contrast, so read the numbers too.
    """
    _, batch, pixels, facts = model_view(processor, image, model.config.vision.patch_size, max_num_patches)
    maps = head_attention_maps(model, batch, facts)  # [H, gh, gw]
    k = display_factor(*pixels.shape[:2], PANEL)
    face = font(13)
    picture = upscale(pixels, k)
    panels = [Image.new("RGB", (picture.width, picture.height + 20), BACKGROUND)]
    panels[0].paste(picture, (0, 20))
    ImageDraw.Draw(panels[0]).text((0, 2), "what the model sees", fill=INK, font=face)
    for (name, low, high, _), m in zip(attention_summary(maps), [maps.mean(axis=0), *maps]):
        picture = overlay(pixels, stretch(m), k)
        panel = Image.new("RGB", (picture.width, picture.height + 20), BACKGROUND)
        panel.paste(picture, (0, 20))
        ImageDraw.Draw(panel).text((0, 2), f"{name}: {low:.3f} to {high:.3f}", fill=INK, font=face)
        panels.append(panel)
    rows = [side_by_side(panels[i : i + columns], gap=8) for i in range(0, len(panels), columns)]
    facts = dict(facts, heads=maps.shape[0], summary=attention_summary(maps))
    title = f"MAP head: attention of the probe query over {facts['real_patches']} patches ({maps.shape[0]} heads)"
    legend = "colour: each panel's lowest -> highest weight (printed above it); uniform attention would be 1/{}".format(
        facts["real_patches"])
    return stack_vertically([title, *rows, legend, colour_bar(min(rows[0].width, 300))]), facts
