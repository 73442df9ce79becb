"""Built-in demo dataset: procedurally painted images of three art movements.

So the studio works offline on first run, it can paint its own small dataset in the spirit
of the cArtGAN paper: ``abstract`` (Pollock-like drips and splatter), ``geometric``
(Mondrian-like grids) and ``islamic`` (star-and-rosette tessellations). Every image is a
pure function of (label, seed, size); nothing is downloaded and no global RNG is touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image, ImageDraw

DEMO_CLASSES: tuple[str, ...] = ("abstract", "geometric", "islamic")

_SUPERSAMPLE = 2  # paint at 2x and downsample with LANCZOS: cheap antialiasing
_MASK64 = (1 << 64) - 1  # lets negative seeds feed numpy's SeedSequence

Colour = tuple[int, int, int]


def render_demo_image(label: str, seed: int, size: int = 256) -> Image.Image:
    """Paint one ``size`` x ``size`` RGB image of movement ``label``; same seed, same pixels."""
    if label not in DEMO_CLASSES:
        known = ", ".join(DEMO_CLASSES)
        raise ValueError(f"Unknown demo class {label!r}; expected one of {known}.")
    if size < 16:
        raise ValueError(f"Demo images must be at least 16 px, got {size}.")
    # The class index (not hash(), which is salted per process) separates the streams.
    rng = np.random.default_rng([seed & _MASK64, DEMO_CLASSES.index(label)])
    painter = _PAINTERS[label]
    canvas = painter(rng, size * _SUPERSAMPLE)
    return canvas.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)


def demo_images(
    per_class: int = 40, seed: int = 0, size: int = 256
) -> Iterator[tuple[str, str, Image.Image]]:
    """Yield ``(label, name, image)`` for ``per_class`` images of every demo class.

    Names look like ``abstract_007.png``. A smaller ``per_class`` yields a prefix of a larger
    one, so growing the demo set never changes the images already on disk.
    """
    if per_class < 0:
        raise ValueError(f"per_class must be non-negative, got {per_class}.")
    digits = max(3, len(str(per_class - 1)))
    for label in DEMO_CLASSES:
        for index in range(per_class):
            yield label, f"{label}_{index:0{digits}d}.png", render_demo_image(
                label, _image_seed(seed, index), size
            )


def _image_seed(seed: int, index: int) -> int:
    # Mix (seed, index) so neighbouring dataset seeds don't share images at shifted indices.
    state = np.random.SeedSequence([seed & _MASK64, index]).generate_state(2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


def _jitter(rng: np.random.Generator, colour: Colour, amount: float = 12.0) -> Colour:
    # Bounded noise: a palette colour may drift, but cream must never turn pink.
    shifted = np.clip(np.asarray(colour, float) + rng.uniform(-amount, amount, 3), 0, 255)
    return tuple(int(v) for v in shifted)  # type: ignore[return-value]


# --------------------------------------------------------------------------- abstract

# (canvas, paints) loosely after Autumn Rhythm, Lavender Mist, Convergence, a black ground,
# and Blue Poles; each image takes 3-6 of the paints.
_POLLOCK_SCHEMES: tuple[tuple[Colour, tuple[Colour, ...]], ...] = (
    ((200, 181, 146),
     ((22, 19, 17), (238, 233, 218), (118, 76, 42), (82, 98, 96), (171, 138, 88))),
    ((206, 196, 198),
     ((28, 24, 26), (242, 238, 236), (198, 138, 148), (122, 122, 134), (176, 164, 120))),
    ((238, 232, 216),
     ((16, 16, 16), (214, 42, 32), (244, 198, 44), (34, 72, 160), (236, 124, 42), (250, 250, 244))),
    ((34, 32, 36),
     ((240, 236, 224), (212, 168, 62), (188, 52, 40), (150, 160, 172), (72, 112, 152))),
    ((170, 150, 122),
     ((26, 40, 92), (240, 232, 210), (226, 150, 38), (20, 18, 18), (198, 70, 50), (122, 162, 176))),
)


def _paint_abstract(rng: np.random.Generator, side: int) -> Image.Image:
    ground, paints = _POLLOCK_SCHEMES[rng.integers(len(_POLLOCK_SCHEMES))]
    count = int(rng.integers(3, min(6, len(paints)) + 1))
    chosen = [_jitter(rng, paints[i], 10) for i in rng.choice(len(paints), count, replace=False)]
    image = Image.new("RGB", (side, side), _jitter(rng, ground, 8))
    _stain_ground(image, rng)
    draw = ImageDraw.Draw(image)
    density = rng.uniform(0.8, 2.0)  # some canvases are open webs, others dense mats
    for layer, colour in enumerate(chosen):
        # Early layers are heavier pours; later ones thin flicked skeins on top.
        heaviness = 2.2 - 1.4 * layer / max(1, count - 1)
        for _ in range(int(rng.integers(12, 28) * density)):
            path = _drip_path(rng, side)
            _draw_drip(draw, rng, path, colour, side * 0.004 * heaviness * rng.lognormal(0, 0.7))
        for _ in range(int(rng.integers(2, 7) * density)):
            centre = rng.uniform(0, side, 2)
            _splatter(draw, rng, centre, colour, side * rng.uniform(0.02, 0.12), side)
    return image


def _stain_ground(image: Image.Image, rng: np.random.Generator) -> None:
    # A faint low-frequency wash so the raw canvas isn't a flat digital fill.
    side = image.size[0]
    wash = rng.normal(0.0, 1.0, (4, 4, 1)) * 4.0
    wash_img = Image.fromarray(np.uint8(np.clip(wash + 128, 0, 255)).repeat(3, 2))
    wash_arr = np.asarray(wash_img.resize((side, side), Image.Resampling.BICUBIC), float) - 128
    mixed = np.clip(np.asarray(image, float) + wash_arr, 0, 255).astype(np.uint8)
    image.paste(Image.fromarray(mixed))


def _drip_path(rng: np.random.Generator, side: int) -> np.ndarray:
    steps = int(rng.integers(80, 320))
    step = side * rng.uniform(0.004, 0.01)
    # Curvature is smoothed noise: low variance gives sweeping arcs, high gives loops.
    wiggle = rng.choice([0.03, 0.08, 0.18], p=[0.45, 0.4, 0.15])
    kernel = np.hanning(15)
    curvature = np.convolve(rng.normal(0, wiggle, steps + 14), kernel / kernel.sum(), "valid")
    curvature += rng.normal(0, 0.008)  # a steady bias curls the whole stroke
    heading = rng.uniform(0, 2 * math.pi) + np.cumsum(curvature)
    start = rng.uniform(-0.1, 1.1, 2) * side
    moves = np.stack([np.cos(heading), np.sin(heading)], 1) * step
    return start + np.cumsum(moves, 0)


def _draw_drip(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    path: np.ndarray,
    colour: Colour,
    width: float,
) -> None:
    # Width swells and thins along the stroke like paint poured from a moving stick.
    n = len(path)
    swell = np.convolve(rng.uniform(0.2, 1.8, n + 20), np.ones(21) / 21, "valid")
    taper = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / 12 + 0.3)
    widths = np.maximum(1.0, width * swell * taper).tolist()
    points = [tuple(p) for p in path.tolist()]  # once, not per piece: 60,000 pieces paint the demo
    chunk = 4
    for i in range(0, n - 1, chunk):
        piece = points[i : i + chunk + 1]
        w = widths[i]
        if len(piece) > 1:
            draw.line(piece, fill=colour, width=max(1, round(w)), joint="curve")
        if w > 3:
            x, y = piece[0]
            draw.ellipse((x - w / 2, y - w / 2, x + w / 2, y + w / 2), fill=colour)
    # Heavy pours leave pools and a few flung drops beside them.
    if width > 4:
        for idx in rng.integers(0, n, int(rng.integers(1, 4))):
            _splatter(draw, rng, path[idx], colour, width * 4, width * 40, pool=width * 1.3)


def _splatter(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    centre: np.ndarray,
    colour: Colour,
    spread: float,
    side: float,
    pool: float = 0.0,
) -> None:
    if pool:
        x, y = centre
        draw.ellipse((x - pool, y - pool, x + pool, y + pool), fill=colour)
    count = int(rng.integers(10, 60))
    offsets = rng.normal(0, spread, (count, 2))
    # Heavy-tailed radii: mostly specks, a few fat drops.
    radii = np.minimum(side * 0.012, side * 0.0012 * (1 + rng.pareto(2.2, count)))
    for (x, y), r in zip(centre + offsets, radii):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)


# -------------------------------------------------------------------------- geometric

_MONDRIAN_WHITES: tuple[Colour, ...] = ((242, 240, 232), (236, 233, 222), (246, 245, 240))
_MONDRIAN_PRIMARIES: tuple[Colour, ...] = ((206, 32, 36), (24, 56, 148), (245, 204, 34))


def _paint_geometric(rng: np.random.Generator, side: int) -> Image.Image:
    black = _jitter(rng, (18, 18, 20), 3)
    whites = [_jitter(rng, c, 3) for c in _MONDRIAN_WHITES]
    primaries = [_jitter(rng, c, 8) for c in _MONDRIAN_PRIMARIES]
    line = side * rng.uniform(0.012, 0.03)
    leaves: list[tuple[float, float, float, float]] = []
    lines: list[tuple[float, float, float, float, float]] = []
    depth = int(rng.integers(4, 8))
    _subdivide(rng, (0.0, 0.0, float(side), float(side)), depth, side, line, leaves, lines)

    image = Image.new("RGB", (side, side), whites[0])
    draw = ImageDraw.Draw(image)
    # Colour a few cells, favouring large ones, so each canvas has a dominant plane.
    areas = np.array([(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in leaves])
    n_coloured = min(max(1, len(leaves) // 3), int(rng.integers(1, 6)))
    weights = areas ** rng.uniform(0.3, 1.2)
    coloured = set(rng.choice(len(leaves), n_coloured, replace=False, p=weights / weights.sum()))
    first = min(coloured)  # at least one primary, or it is not a Mondrian
    for i, cell in enumerate(leaves):
        if i in coloured:
            fill = primaries[rng.integers(3)] if i == first or rng.random() > 0.15 else black
        else:
            fill = whites[rng.integers(len(whites))]
        draw.rectangle(cell, fill=fill)
    for x0, y0, x1, y1, w in lines:
        draw.rectangle((x0 - w / 2, y0 - w / 2, x1 + w / 2, y1 + w / 2), fill=black)
    return image


def _subdivide(
    rng: np.random.Generator,
    rect: tuple[float, float, float, float],
    depth: int,
    side: int,
    line: float,
    leaves: list[tuple[float, float, float, float]],
    lines: list[tuple[float, float, float, float, float]],
) -> None:
    x0, y0, x1, y1 = rect
    w, h = x1 - x0, y1 - y0
    too_small = min(w, h) < side * 0.14
    if depth == 0 or too_small or (depth < 3 and rng.random() < 0.35):
        leaves.append(rect)
        return
    vertical = rng.random() < w / (w + h)  # split the longer side more often
    t = rng.choice([rng.uniform(0.2, 0.8), 0.382, 0.618])  # golden cuts recur in Mondrian
    span = w if vertical else h
    t = min(max(t, side * 0.05 / span), 1 - side * 0.05 / span)  # no slivers under a line
    width = line * rng.choice([1.0, 1.0, 0.6, 1.5])
    if vertical:
        cut = x0 + w * t
        lines.append((cut, y0, cut, y1, width))
        halves = ((x0, y0, cut, y1), (cut, y0, x1, y1))
    else:
        cut = y0 + h * t
        lines.append((x0, cut, x1, cut, width))
        halves = ((x0, y0, x1, cut), (x0, cut, x1, y1))
    for half in halves:
        _subdivide(rng, half, depth - 1, side, line, leaves, lines)


# ---------------------------------------------------------------------------- islamic

# (ground, star, petal, band, outline) schemes after zellige and Iznik tile palettes.
_ISLAMIC_SCHEMES: tuple[tuple[Colour, ...], ...] = (
    ((22, 44, 110), (212, 168, 64), (44, 150, 160), (244, 238, 222), (12, 22, 60)),
    ((190, 88, 52), (28, 54, 120), (242, 232, 208), (214, 172, 72), (70, 30, 20)),
    ((238, 232, 214), (30, 70, 150), (52, 160, 168), (196, 98, 58), (40, 36, 40)),
    ((18, 82, 96), (236, 228, 204), (206, 160, 58), (250, 246, 236), (10, 34, 42)),
    ((40, 30, 70), (58, 170, 178), (200, 84, 56), (226, 188, 96), (18, 12, 30)),
)


# (star points, hexagonal?): the cell-wall mirrors need an even fold on the square lattice
# and a multiple of 6 on the hexagonal one, or the strapwork breaks at cell walls.
_LATTICES: tuple[tuple[int, bool], ...] = (
    (8, False), (10, False), (12, False), (6, True), (12, True)
)


def _paint_islamic(rng: np.random.Generator, side: int) -> Image.Image:
    folds, hexagonal = _LATTICES[rng.integers(len(_LATTICES))]
    cell = side / rng.uniform(1.6, 4.5)
    angle = rng.uniform(0, math.pi)
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float32) - side / 2
    px = (xs * math.cos(angle) - ys * math.sin(angle)) / cell
    py = (xs * math.sin(angle) + ys * math.cos(angle)) / cell
    lx, ly = (_hex_local if hexagonal else _square_local)(px, py)

    # Strapwork: `folds` lines tangent to a circle round each lattice point. The
    # arrangement is mirror-symmetric across every cell wall, so lines continue into the
    # neighbouring cell and the whole plane becomes one continuous star pattern.
    offset = rng.choice([0.0, math.pi / folds])
    tangent = rng.uniform(0.1, 0.26)
    normals = offset + 2 * math.pi * np.arange(folds) / folds
    reach = np.stack([lx * math.cos(a) + ly * math.sin(a) for a in normals]) - tangent
    level = (reach > 0).sum(0)  # how many lines lie between the pixel and its star's centre
    nearest = np.abs(reach).min(0)

    scheme = [_jitter(rng, c, 10) for c in _ISLAMIC_SCHEMES[rng.integers(len(_ISLAMIC_SCHEMES))]]
    ground, star, petal, band, outline = scheme
    ring_colours = np.array(_ring_palette(rng, star, petal, ground, int(level.max()) + 1), np.uint8)
    pixels = ring_colours[level]
    band_half = rng.uniform(0.012, 0.03)
    edge = band_half + rng.uniform(0.006, 0.012)
    pixels[nearest < edge] = outline
    pixels[nearest < band_half] = band
    if rng.random() < 0.6:  # a thin inlaid line down the middle of each band
        pixels[nearest < band_half * 0.25] = outline
    # A sharp star inlaid in each central polygon turns plain discs into rosettes.
    corner = offset + math.pi / folds  # the central polygon's vertices point this way
    sharpness = 2 + (folds - 2) * rng.uniform(0.15, 0.45)
    radius = 0.85 * tangent / math.cos(math.pi / folds)
    inlay = _star_distance(lx, ly, folds, radius, sharpness, corner)
    centre = level == 0
    pixels[centre & (inlay < band_half * 0.6)] = outline
    pixels[centre & (inlay < 0)] = band if rng.random() < 0.5 else ground
    return Image.fromarray(pixels, "RGB")


def _star_distance(
    x: np.ndarray, y: np.ndarray, points: int, radius: float, sharpness: float, turn: float
) -> np.ndarray:
    # Signed distance to a regular star (after Inigo Quilez's sdStar); tips point at `turn`.
    half = math.pi / points
    tip_x, tip_y = radius * math.cos(half), radius * math.sin(half)
    ex, ey = math.cos(math.pi / sharpness), math.sin(math.pi / sharpness)
    folded = np.mod(np.arctan2(y, x) - turn, 2 * half) - half
    r = np.hypot(x, y)
    qx, qy = r * np.cos(folded) - tip_x, r * np.abs(np.sin(folded)) - tip_y
    t = np.clip(-(qx * ex + qy * ey), 0.0, tip_y / ey)
    qx, qy = qx + ex * t, qy + ey * t
    return np.hypot(qx, qy) * np.sign(qx)


def _ring_palette(
    rng: np.random.Generator, star: Colour, petal: Colour, ground: Colour, rings: int
) -> list[Colour]:
    # Centre star, then petals, then the ground; outer rings alternate so neighbouring
    # regions always contrast, and the order varies per image.
    inner = [star, petal] if rng.random() < 0.7 else [petal, star]
    cycle = [ground, petal, ground, star] if rng.random() < 0.5 else [ground, star]
    return (inner + cycle * rings)[:rings]


def _square_local(px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return px - np.round(px), py - np.round(py)


def _hex_local(px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Offset from the nearest point of a unit triangular lattice (basis (1,0), (1/2, r3/2)).
    b = py / (math.sqrt(3) / 2)
    a = px - b / 2
    a0, b0 = np.floor(a), np.floor(b)
    best_x = best_y = best_d = None
    for da, db in ((0, 0), (1, 0), (0, 1), (1, 1)):
        cx = (a0 + da) + (b0 + db) / 2
        cy = (b0 + db) * (math.sqrt(3) / 2)
        dx, dy = px - cx, py - cy
        d = dx * dx + dy * dy
        if best_d is None:
            best_x, best_y, best_d = dx, dy, d
        else:
            closer = d < best_d
            best_x = np.where(closer, dx, best_x)
            best_y = np.where(closer, dy, best_y)
            best_d = np.minimum(d, best_d)
    return best_x, best_y  # type: ignore[return-value]


_PAINTERS: dict[str, Callable[[np.random.Generator, int], Image.Image]] = {
    "abstract": _paint_abstract,
    "geometric": _paint_geometric,
    "islamic": _paint_islamic,
}
