"""Synthetic captioned images: coloured shapes at named positions, drawn with Pillow and NumPy only.

The demo checkpoints were trained on these images, and the tests and the command line draw fresh ones
to check that the demo models answer correctly. Everything is seeded through a `numpy.random.Generator`,
so a seed gives the same images again (for the same NumPy and Pillow versions).

    rng = numpy.random.default_rng(0)
    image, text, (colour, shape, position) = sample(rng)
    image = draw("red", "circle", "left", rng, size=(128, 96))
"""

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (35, 70, 225),
    "yellow": (245, 220, 35),
    "purple": (135, 45, 175),
    "orange": (250, 135, 15),
    "white": (250, 250, 250),
    "black": (10, 10, 10),
}
SHAPES = ("circle", "square", "triangle", "star", "cross")
POSITIONS = ("left", "right", "top", "bottom", "center")

# How each position reads in a caption.
POSITION_PHRASES = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "center": "in the center",
}

# Caption templates; {a} article ("a" or "an"), {c} colour, {s} shape, {p} position phrase. The zero-shot template
# "This is a photo of {}." with a bare "colour shape" label is among them (also capitalised, because
# the FixRes tokenizer does not lowercase).
TEMPLATES = (
    "{a} {c} {s} {p}",
    "{a} {c} {s} {p}.",
    "a photo of {a} {c} {s} {p}.",
    "this is a photo of {a} {c} {s} {p}.",
    "a picture of {a} {c} {s} {p}",
    "there is {a} {c} {s} {p}",
    "{c} {s} {p}",
    "{a} {c} {s}",
    "{c} {s}",
    "a photo of {a} {c} {s}.",
    "this is a photo of {a} {c} {s}.",
    "this is a photo of {c} {s}.",
    "This is a photo of {c} {s}.",
    "This is a photo of {a} {c} {s}.",
)

IMAGE_SIDES = (80, 160)  # random image width and height are drawn from this range (inclusive)
SHAPE_FRACTION = (0.5, 0.7)  # shape diameter as a fraction of the shorter image side
MAX_TILT = 0.2  # radians; polygons are tilted by up to this much either way
OUTLINE = 0.12  # dark outline width / shape radius: a colour-independent edge that tiny models learn shape from
OUTLINE_COLOUR = (20, 20, 20)


def caption(colour, shape, position=None, template="{a} {c} {s} {p}"):
    """The caption of one image; templates without {p} ignore the position."""
    phrase = POSITION_PHRASES[position] if position is not None else ""
    article = "an" if colour[0] in "aeiou" else "a"
    return template.format(a=article, c=colour, s=shape, p=phrase).replace("  ", " ").strip()


def labels():
    """All colour x shape labels, e.g. "red circle", in a fixed order."""
    return [f"{c} {s}" for c in COLOURS for s in SHAPES]


# Where a shape's centre may fall, as fractions of the free range along x and y, per position.
_PLACES = {
    "left": ((0.0, 0.1), (0.25, 0.75)),
    "right": ((0.9, 1.0), (0.25, 0.75)),
    "top": ((0.25, 0.75), (0.0, 0.1)),
    "bottom": ((0.25, 0.75), (0.9, 1.0)),
    "center": ((0.4, 0.6), (0.4, 0.6)),
}


def _centre(position, w, h, r, rng):
    """Pixel centre of a shape of radius r at a named position, with a little jitter."""
    (x0, x1), (y0, y1) = _PLACES[position]
    cx = (r + 1) + rng.uniform(x0, x1) * (w - 2 * r - 2)
    cy = (r + 1) + rng.uniform(y0, y1) * (h - 2 * r - 2)
    return cx, cy


def _geometry(shape, cx, cy, r, angle):
    """Polygon points (or ellipse box for a circle) of a shape of radius r centred at (cx, cy)."""
    if shape == "circle":
        return [cx - r, cy - r, cx + r, cy + r]
    if shape == "square":
        corners = [np.pi / 4 + k * np.pi / 2 for k in range(4)]
        radii = [r] * 4
    elif shape == "triangle":
        corners = [-np.pi / 2 + k * 2 * np.pi / 3 for k in range(3)]
        radii = [r] * 3
        cy += 0.2 * r  # the centroid sits below the middle of the bounding box
    elif shape == "star":
        corners = [-np.pi / 2 + k * np.pi / 5 for k in range(10)]
        radii = [r if k % 2 == 0 else 0.45 * r for k in range(10)]
    elif shape == "cross":
        a, b = 0.32 * r, r  # half arm width, arm length
        pts = [(a, b), (a, a), (b, a), (b, -a), (a, -a), (a, -b),
               (-a, -b), (-a, -a), (-b, -a), (-b, a), (-a, a), (-a, b)]  # fmt: skip
        corners = [np.arctan2(y, x) for x, y in pts]
        radii = [np.hypot(x, y) for x, y in pts]
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    return [(cx + q * np.cos(t + angle), cy + q * np.sin(t + angle)) for t, q in zip(corners, radii)]


def _background(w, h, rng):
    """A grey background (level 80-175) with mild noise and a faint gradient, as uint8 [h, w, 3]."""
    level = rng.uniform(80, 175)
    tint = rng.uniform(-8, 8, size=3)
    ramp = np.linspace(-1, 1, w)[None, :, None] * rng.uniform(-12, 12)
    noise = rng.normal(0, rng.uniform(0, 8), size=(h, w, 3))
    return np.clip(level + tint + ramp + noise, 0, 255).astype(np.uint8)


def draw(colour, shape, position, rng, size=(128, 128)):
    """One RGB image of a `colour` `shape` at `position` on a grey background; size = (width, height)."""
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; expected one of {tuple(COLOURS)}")
    if position not in POSITIONS:
        raise ValueError(f"unknown position {position!r}; expected one of {POSITIONS}")
    w, h = int(size[0]), int(size[1])
    r = 0.5 * rng.uniform(*SHAPE_FRACTION) * min(w, h)
    cx, cy = _centre(position, w, h, r, rng)
    angle = rng.uniform(-MAX_TILT, MAX_TILT) if shape in ("square", "triangle", "star", "cross") else 0.0
    fill = tuple(int(np.clip(v + rng.integers(-15, 16), 0, 255)) for v in COLOURS[colour])
    scale = 4  # draw 4x larger and downsample, for smooth edges
    big = Image.fromarray(_background(w, h, rng)).resize((w * scale, h * scale), Image.NEAREST)
    geometry = _geometry(shape, cx * scale, cy * scale, r * scale, angle)
    pen = ImageDraw.Draw(big)
    edge = dict(outline=OUTLINE_COLOUR, width=max(1, round(OUTLINE * r * scale)))
    if shape == "circle":
        pen.ellipse(geometry, fill=fill, **edge)
    else:
        pen.polygon(geometry, fill=fill, **edge)
    return big.resize((w, h), Image.BOX)


def random_size(rng, sides=IMAGE_SIDES):
    """A random (width, height) with both sides in `sides`, so aspect ratios vary from 1:2 to 2:1."""
    return int(rng.integers(sides[0], sides[1] + 1)), int(rng.integers(sides[0], sides[1] + 1))


def sample(rng, template=None, size=None):
    """A random image with its caption: (PIL image, caption, (colour, shape, position))."""
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    shape = SHAPES[rng.integers(len(SHAPES))]
    position = POSITIONS[rng.integers(len(POSITIONS))]
    template = template if template is not None else TEMPLATES[rng.integers(len(TEMPLATES))]
    image = draw(colour, shape, position, rng, size=size or random_size(rng))
    return image, caption(colour, shape, position, template), (colour, shape, position)
