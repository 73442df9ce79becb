"""More procedural datasets to tune and test on: families of three classes, unlike each other.

A recipe tuned on the demo set alone (demo.py) can fail on the next dataset, so each family here
stresses something different that a generator must learn:

    demo       the demo set itself (abstract, geometric, islamic), painted by demo.py
    horizons   smooth gradients with a few hard shapes: sunset (a sun disc over a warm sky),
               moonlit (a crescent and stars over a cool sky), dunes (layered smooth ridges, no disc)
    textures   fine periodic structure: waves, weave, dots (halftone). Every class draws its
               colours from one shared pool, so only the structure tells the classes apart
    posters    hard-edged layouts: constructivist (diagonal bars and circles), bauhaus (a grid of
               blocks with circles, halves and quarters), stripes (parallel bands)
    ornaments  symmetric ornaments: mandala (n-fold petal rings on a plain ground), kaleidoscope
               (mirrored straight-edged shards, full bleed), frieze (stacked borders of
               motifs repeated along a line)
    tiles      held out from tuning: fine repeated tilings, judged on but never tuned on, to see whether
               what was tuned on textures holds for other periodic patterns: bricks (running bond, a
               shade per brick), tartan (crossing bands whose colours mix), harlequin (diamonds in two
               colours). Its colours come from its own pool, shared by its three classes
    brushwork  painted after every recipe choice, to test on only: the marks of a hand rather than
               shapes: impressionist (short broken strokes that follow a sky and a field), pointillist
               (dots of a few pure colours whose mixture paints a soft scene), cubist (a picture plane
               broken into flat facets, each shaded across, with dark contours on some edges)

Like the demo, every image is a pure function of (family, label, seed, size), painted at 2x and
downsampled, and no global RNG is touched. `family_images(..., split=...)` gives disjoint train and
held-out halves of each class, so a benchmark can score a model on images it never saw.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import numpy as np
from PIL import Image, ImageDraw

from studio.data.demo import (
    _MASK64,
    _SUPERSAMPLE,
    DEMO_CLASSES,
    Colour,
    _hex_local,
    _image_seed,
    _jitter,
    _stain_ground,
    render_demo_image,
)
from studio.errors import UserError

# Append only: a family's position seeds its random stream, so reordering would repaint it.
FAMILIES: dict[str, tuple[str, ...]] = {
    "demo": DEMO_CLASSES,
    "horizons": ("sunset", "moonlit", "dunes"),
    "textures": ("waves", "weave", "dots"),
    "posters": ("constructivist", "bauhaus", "stripes"),
    "ornaments": ("mandala", "kaleidoscope", "frieze"),
    "tiles": ("bricks", "tartan", "harlequin"),
    "brushwork": ("impressionist", "pointillist", "cubist"),
}

SPLITS: tuple[str, ...] = ("train", "heldout")
MIN_SIZE = 16  # as the demo: below this the structures are a pixel or two


class FamilyError(UserError, ValueError):
    """A family, class, split or size that this module does not paint."""


Painter = Callable[[np.random.Generator, int], Image.Image]
T = TypeVar("T")


def render_family_image(family: str, label: str, seed: int, size: int = 256) -> Image.Image:
    """Paint one ``size`` x ``size`` RGB image of class ``label`` of ``family``; same seed, same pixels."""
    classes = family_classes(family)
    if label not in classes:
        raise FamilyError(f"Family {family!r} has no class {label!r}; its classes are {', '.join(classes)}.")
    if size < MIN_SIZE:
        raise FamilyError(f"Family images must be at least {MIN_SIZE} px, got {size}.")
    if family == "demo":
        return render_demo_image(label, seed, size)
    # Integer stream keys (not hash(), salted per process): seed, class, family.
    rng = np.random.default_rng([seed & _MASK64, classes.index(label), list(FAMILIES).index(family)])
    canvas = _PAINTERS[family][label](rng, size * _SUPERSAMPLE)
    return canvas.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)


def family_images(
    family: str, per_class: int, seed: int = 0, size: int = 256, split: str | None = None
) -> Iterator[tuple[str, str, Image.Image]]:
    """Yield ``(label, name, image)`` for ``per_class`` images of every class of ``family``.

    Image ``i`` of a class is painted from ``demo._image_seed(seed, i)``, as `demo.demo_images`
    does (so family "demo" without a split yields exactly the demo set). ``split="train"`` takes the
    even indices 0, 2, 4, ... and ``split="heldout"`` the odd ones, ``per_class`` of each: the two
    halves take different indices of one stream, and grow without changing the images already drawn. Names
    carry the index, e.g. ``sunset_004.png``, so the halves' names are disjoint too.
    """
    for label, name, image_seed in family_plan(family, per_class, seed, split):
        yield label, name, render_family_image(family, label, image_seed, size)


def family_plan(family: str, per_class: int, seed: int = 0, split: str | None = None) -> list[tuple[str, str, int]]:
    """``(label, name, image seed)`` of each image `family_images` paints, in its order, painting nothing."""
    classes = family_classes(family)
    if per_class < 0:
        raise FamilyError(f"per_class must be non-negative, got {per_class}.")
    if split is not None and split not in SPLITS:
        raise FamilyError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}, or none for every image.")
    first, stride = (0, 1) if split is None else (SPLITS.index(split), 2)
    indices = range(first, first + stride * per_class, stride)
    digits = max(3, len(str(first + stride * (per_class - 1))))
    return [(label, f"{label}_{index:0{digits}d}.png", _image_seed(seed, index)) for label in classes for index in indices]


def family_classes(family: str) -> tuple[str, ...]:
    """The class names of ``family``, or a FamilyError naming the families there are."""
    if family not in FAMILIES:
        raise FamilyError(f"Unknown image family {family!r}; the families are {', '.join(FAMILIES)}.")
    return FAMILIES[family]


# ------------------------------------------------------------------- painting helpers
# Painters work on a float [side, side, 3] array in 0..255 and on coordinates in canvas units
# (0..1 across, y downwards). Shapes are signed distances (negative inside), so each edge is
# antialiased over one canvas pixel before the 2x downsample smooths it further.


def _grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    centres = (np.arange(side, dtype=np.float32) + 0.5) / side
    x, y = np.meshgrid(centres, centres)
    return x, y


def _cover(distance: np.ndarray, side: int) -> np.ndarray:
    return np.clip(0.5 - distance * side, 0.0, 1.0)


def _paint(pixels: np.ndarray, coverage: np.ndarray, colour: Sequence[float]) -> None:
    pixels += coverage[..., None] * (np.asarray(colour, np.float32) - pixels)


def _ramp(t: np.ndarray, stops: Sequence[tuple[float, Sequence[float]]]) -> np.ndarray:
    # Piecewise-linear colour along t: the smooth skies and tone curves.
    where = [p for p, _ in stops]
    colours = np.asarray([c for _, c in stops], np.float32)
    return np.stack([np.interp(t, where, colours[:, k]) for k in range(3)], -1).astype(np.float32)


def _sky(side: int, y: np.ndarray, stops: Sequence[tuple[float, Sequence[float]]]) -> np.ndarray:
    column = _ramp(y[:, 0], stops)  # a vertical gradient is one column, broadcast
    return np.repeat(column[:, None, :], side, axis=1)


def _mix(a: Sequence[float], b: Sequence[float], t: float) -> Colour:
    return tuple(int(round(p + (q - p) * t)) for p, q in zip(a, b))  # type: ignore[return-value]


def _rotate(x: np.ndarray, y: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(angle), math.sin(angle)
    return x * c + y * s, -x * s + y * c


def _box(u: np.ndarray, v: np.ndarray, half_u: float, half_v: float) -> np.ndarray:
    # Signed distance to an axis-aligned box centred at the origin (outside part Euclidean).
    du, dv = np.abs(u) - half_u, np.abs(v) - half_v
    outside = np.hypot(np.maximum(du, 0), np.maximum(dv, 0))
    return outside + np.minimum(np.maximum(du, dv), 0)


def _pick(rng: np.random.Generator, options: Sequence[T]) -> T:
    return options[rng.integers(len(options))]


def _finish(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


# ---------------------------------------------------------------------------- horizons

# (zenith, middle sky, horizon glow, sun)
_SUNSET_SKIES: tuple[tuple[Colour, ...], ...] = (
    ((38, 28, 78), (196, 72, 96), (252, 176, 84), (255, 236, 176)),
    ((24, 36, 92), (224, 110, 70), (255, 208, 120), (255, 246, 210)),
    ((62, 30, 70), (232, 96, 64), (250, 196, 96), (255, 226, 150)),
    ((92, 62, 124), (238, 138, 118), (255, 212, 156), (255, 248, 222)),
    ((20, 20, 40), (150, 40, 50), (240, 120, 40), (255, 200, 90)),
)
# (zenith, horizon, moon, land)
_NIGHT_SKIES: tuple[tuple[Colour, ...], ...] = (
    ((6, 10, 32), (38, 66, 112), (236, 234, 212), (10, 14, 26)),
    ((14, 16, 44), (64, 80, 140), (228, 232, 240), (16, 18, 36)),
    ((4, 22, 38), (30, 96, 118), (240, 236, 200), (6, 24, 30)),
    ((20, 12, 46), (84, 66, 130), (242, 228, 196), (18, 12, 34)),
)
# (sky top, sky at the horizon, far dune, near dune, shadow): day sand, dusk, night, gypsum.
# The night and dusk schemes share hues with the other two classes on purpose.
_DUNE_SCHEMES: tuple[tuple[Colour, ...], ...] = (
    ((120, 170, 214), (236, 226, 206), (228, 190, 140), (206, 126, 60), (118, 62, 34)),
    ((110, 92, 146), (246, 188, 150), (226, 156, 132), (186, 92, 70), (84, 38, 50)),
    ((12, 20, 48), (70, 86, 132), (92, 104, 146), (44, 54, 96), (12, 16, 38)),
    ((104, 156, 208), (222, 232, 240), (238, 234, 226), (216, 206, 192), (140, 136, 146)),
)


def _paint_sunset(rng: np.random.Generator, side: int) -> Image.Image:
    x, y = _grid(side)
    zenith, middle, glow, sun = (_jitter(rng, c, 12) for c in _pick(rng, _SUNSET_SKIES))
    horizon = rng.uniform(0.55, 0.8)
    pixels = _sky(side, y, [(0.0, zenith), (horizon * rng.uniform(0.4, 0.75), middle), (horizon, glow)])
    radius = rng.uniform(0.06, 0.15)
    cx, cy = rng.uniform(0.15, 0.85), horizon - radius * rng.uniform(-0.4, 3.0)  # setting to high
    dist = np.hypot(x - cx, y - cy)
    _paint(pixels, 0.45 * np.exp(-((dist / (radius * 3.5)) ** 2)), glow)  # the glow round the sun
    _paint(pixels, _cover(dist - radius, side), sun)
    below = y > horizon
    if rng.random() < 0.6:  # sea: darker water with the sun's broken path on it
        water = _sky(side, y, [(horizon, _mix(middle, zenith, 0.55)), (1.0, _mix(zenith, (0, 0, 0), 0.4))])
        pixels[below] = water[below]
        spacing = rng.uniform(0.025, 0.05)
        depth = (y - horizon) / (1 - horizon)
        half_width = radius * (1.3 - 0.7 * depth) * (0.6 + 0.5 * np.sin(y * 97.0 + cx * 31.0) ** 2)
        streak = below & (np.mod(y - horizon, spacing) < spacing * 0.45) & (np.abs(x - cx) < half_width)
        pixels[streak] = _mix(sun, glow, 0.4)
    else:  # a dark shore, gently rolling
        shore = horizon + rng.uniform(0.005, 0.03) * np.sin(x * rng.uniform(3, 9) + rng.uniform(0, 6.3))
        _paint(pixels, _cover(shore - y, side), _mix(zenith, (0, 0, 0), 0.5))
    return _finish(pixels)


def _paint_moonlit(rng: np.random.Generator, side: int) -> Image.Image:
    x, y = _grid(side)
    zenith, low, moon, land = (_jitter(rng, c, 10) for c in _pick(rng, _NIGHT_SKIES))
    horizon = rng.uniform(0.6, 0.9)
    pixels = _sky(side, y, [(0.0, zenith), (horizon, low)])
    radius = rng.uniform(0.04, 0.11)
    cx, cy = rng.uniform(0.15, 0.85), rng.uniform(0.12, horizon - 0.22)
    dist = np.hypot(x - cx, y - cy)
    _paint(pixels, 0.3 * np.exp(-((dist / (radius * 3)) ** 2)), low)  # moonlight haze
    # A crescent: the disc minus a slightly larger disc shifted towards the dark side.
    turn = rng.uniform(0, 2 * math.pi)
    shift = radius * rng.uniform(0.35, 0.75)
    bite = np.hypot(x - cx - shift * math.cos(turn), y - cy - shift * math.sin(turn)) - radius * 1.02
    _paint(pixels, _cover(np.maximum(dist - radius, -bite), side), moon)
    # Dark hills cut the sky: a silhouette or two, flat and dark, never the dunes' lit layers.
    ranges = int(rng.integers(1, 3))
    for k in range(ranges):
        rise = horizon - 0.06 * (ranges - 1 - k)
        hills = rise + rng.uniform(0.0, 0.07) * np.sin(x * rng.uniform(2, 7) + rng.uniform(0, 6.3))
        _paint(pixels, _cover(hills - y, side), _mix(land, low, 0.35 * (ranges - 1 - k)))
    image = _finish(pixels)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(25, 80))):  # stars: tiny, of varied brightness
        sx, sy = rng.uniform(0, 1) * side, rng.uniform(0, horizon - 0.08) * side
        r = side * rng.uniform(0.0015, 0.005)
        draw.ellipse((sx - r, sy - r, sx + r, sy + r), fill=_mix(low, moon, rng.uniform(0.5, 1.0)))
    return image


def _paint_dunes(rng: np.random.Generator, side: int) -> Image.Image:
    x, y = _grid(side)
    top, low, far, near, shadow = (_jitter(rng, c, 10) for c in _pick(rng, _DUNE_SCHEMES))
    first = rng.uniform(0.3, 0.55)
    pixels = _sky(side, y, [(0.0, top), (first + 0.1, low)])
    layers = int(rng.integers(3, 7))
    xs = x[0]
    for i, base in enumerate(np.linspace(first, rng.uniform(0.8, 0.95), layers)):
        # A ridge is a few long sines; its slope decides which face the low sun lights.
        freq = rng.uniform(1.5, 6.0, 3) * np.array([1.0, 1.7, 2.9])
        amp = rng.uniform(0.015, 0.07) * np.array([1.0, 0.4, 0.15])
        phase = rng.uniform(0, 2 * math.pi, 3)
        ridge = base + (amp[:, None] * np.sin(freq[:, None] * xs + phase[:, None])).sum(0)
        slope = (amp[:, None] * freq[:, None] * np.cos(freq[:, None] * xs + phase[:, None])).sum(0)
        colour = np.asarray(_mix(far, near, i / max(1, layers - 1)), np.float32)
        lit = 0.5 + 0.5 * np.tanh(slope * rng.choice([-1.0, 1.0]) * 6.0)
        shaded = colour + (1 - lit)[:, None] * 0.7 * (np.asarray(shadow, np.float32) - colour)
        depth = np.clip((y - ridge[None, :]) / 0.25, 0, 1)[..., None]  # darker down the face
        body = shaded[None, :, :] * (1 - 0.18 * depth)
        mask = _cover(ridge[None, :] - y, side)[..., None]
        pixels += mask * (body - pixels)
    return _finish(pixels)


# ---------------------------------------------------------------------------- textures

# (ground, ink, accent) shared by every texture class, and each image may swap ground and ink:
# mean colour overlaps between classes, so a judge must look at the structure.
_TEXTILE_PALETTES: tuple[tuple[Colour, ...], ...] = (
    ((236, 228, 210), (34, 52, 110), (176, 60, 50)),
    ((244, 234, 214), (170, 48, 40), (40, 40, 46)),
    ((222, 214, 180), (40, 90, 70), (200, 150, 60)),
    ((214, 170, 80), (30, 28, 30), (240, 232, 210)),
    ((30, 110, 120), (240, 130, 100), (248, 236, 210)),
    ((60, 66, 80), (220, 206, 170), (150, 170, 190)),
    ((92, 40, 80), (238, 196, 120), (200, 100, 120)),
)


def _textile_colours(rng: np.random.Generator) -> tuple[Colour, Colour, Colour]:
    ground, ink, accent = (_jitter(rng, c, 12) for c in _pick(rng, _TEXTILE_PALETTES))
    return (ink, ground, accent) if rng.random() < 0.5 else (ground, ink, accent)


def _paint_waves(rng: np.random.Generator, side: int) -> Image.Image:
    x, y = _grid(side)
    ground, ink, accent = _textile_colours(rng)
    period = 1 / rng.uniform(4, 7.5)  # at 32 px a period is still 4-8 px
    u, v = _rotate(x, y, rng.uniform(0, math.pi))
    sway = period * rng.uniform(0.2, 0.55) * np.sin(2 * math.pi * v / (period * rng.uniform(1.5, 4)) + rng.uniform(0, 6.3))
    offset = np.mod((u + sway) / period, 1.0) - 0.5  # -0.5..0.5 across one wave band
    duty = rng.uniform(0.3, 0.6)
    pixels = np.empty((side, side, 3), np.float32)
    pixels[:] = ground
    # The crest is lit on one side, so a band reads as a rolling wave, not a flat stripe.
    crest = np.asarray(ink, np.float32) + (offset / duty)[..., None] * 0.35 * (np.asarray(ground, np.float32) - ink)
    band = _cover((np.abs(offset) - duty / 2) * period, side)[..., None]
    pixels += band * (crest - pixels)
    if rng.random() < 0.5:  # a thin accent line in the trough
        trough = np.abs(np.abs(offset) - 0.5) * period - period * (1 - duty) * 0.12
        _paint(pixels, _cover(trough, side), accent)
    return _finish(pixels)


def _paint_weave(rng: np.random.Generator, side: int) -> Image.Image:
    x, y = _grid(side)
    weft, warp, _ = _textile_colours(rng)
    pitch = 1 / rng.uniform(5, 9)
    u, v = _rotate(x, y, rng.uniform(0, math.pi / 2))
    col, row = np.floor(u / pitch), np.floor(v / pitch)
    fu, fv = u / pitch - col, v / pitch - row
    block = int(rng.choice([1, 1, 2]))  # plain weave, or basket weave in pairs
    warp_over = (np.floor(col / block) + np.floor(row / block)) % 2 == 0
    fill = rng.uniform(0.72, 0.92)  # thread width over pitch: the rest is the gap
    in_warp, in_weft = np.abs(fu - 0.5) < fill / 2, np.abs(fv - 0.5) < fill / 2
    show_warp = in_warp & (warp_over | ~in_weft)
    show_weft = in_weft & ~show_warp
    # Round threads: bright along their middle, darker where they dive under a crossing thread.
    across_u = np.sqrt(np.clip(1 - ((fu - 0.5) / (fill / 2)) ** 2, 0, 1))
    across_v = np.sqrt(np.clip(1 - ((fv - 0.5) / (fill / 2)) ** 2, 0, 1))
    warp_light = (0.75 + 0.35 * across_u) * (0.9 + 0.15 * np.sin(math.pi * fv))  # about 1 on average:
    weft_light = (0.75 + 0.35 * across_v) * (0.9 + 0.15 * np.sin(math.pi * fu))  # shading, not darkening
    pixels = np.empty((side, side, 3), np.float32)
    pixels[:] = _mix(_mix(weft, warp, 0.5), (0, 0, 0), 0.35)  # the gaps between threads
    pixels[show_warp] = np.asarray(warp, np.float32) * warp_light[show_warp][:, None]
    pixels[show_weft] = np.asarray(weft, np.float32) * weft_light[show_weft][:, None]
    return _finish(pixels)


def _paint_dots(rng: np.random.Generator, side: int) -> Image.Image:
    x, y = _grid(side)
    ground, ink, accent = _textile_colours(rng)
    pixels = np.empty((side, side, 3), np.float32)
    pixels[:] = ground
    screens = [ink] if rng.random() < 0.7 else [ink, accent]  # sometimes a second ink, another angle
    angle = rng.uniform(0, math.pi / 3)
    spacing = 1 / rng.uniform(5, 9)
    for colour in screens:
        _halftone(rng, pixels, x, y, side, spacing, angle, colour)
        angle += math.pi / 12  # 15 degrees between screens, as in print
    return _finish(pixels)


def _halftone(
    rng: np.random.Generator,
    pixels: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    side: int,
    spacing: float,
    angle: float,
    colour: Colour,
) -> None:
    # Dots on a triangular lattice; each dot's area follows a smooth tone field sampled at
    # its own centre, so dots stay round while their size drifts across the image.
    u, v = _rotate(x, y, angle)
    du, dv = _hex_local(u / spacing, v / spacing)
    cu, cv = u - du * spacing, v - dv * spacing
    direction = rng.uniform(0, 2 * math.pi)
    tone = math.cos(direction) * cu + math.sin(direction) * cv
    bx, by = rng.uniform(-0.3, 1.3, 2)
    tone = tone + rng.uniform(-1, 1) * np.exp(-((cu - bx) ** 2 + (cv - by) ** 2) / rng.uniform(0.05, 0.3))
    low, high = rng.uniform(0.04, 0.3), rng.uniform(0.55, 0.95)
    tone = low + (high - low) * (tone - tone.min()) / max(float(np.ptp(tone)), 1e-6)
    radius = spacing * 0.53 * np.sqrt(tone)
    _paint(pixels, _cover(np.hypot(du, dv) * spacing - radius, side), colour)


# ----------------------------------------------------------------------------- posters

_PAPERS: tuple[Colour, ...] = ((238, 230, 210), (245, 242, 235), (222, 218, 206), (214, 196, 160))
_RED, _BLACK, _BLUE, _YELLOW = (204, 42, 36), (26, 24, 24), (30, 62, 150), (242, 192, 40)


def _poster(rng: np.random.Generator, side: int) -> tuple[np.ndarray, Colour]:
    # Printed paper with demo's faint wash, not a flat digital fill; returns (pixels, paper colour).
    colour = _jitter(rng, _pick(rng, _PAPERS), 6)
    paper = Image.new("RGB", (side, side), colour)
    _stain_ground(paper, rng)
    return np.asarray(paper, np.float32).copy(), colour


def _paint_constructivist(rng: np.random.Generator, side: int) -> Image.Image:
    x, y = _grid(side)
    pixels, _ = _poster(rng, side)
    inks = [_jitter(rng, _RED, 10), _jitter(rng, _BLACK, 4)]
    if rng.random() < 0.3:
        inks.append(_jitter(rng, _pick(rng, (_BLUE, (120, 118, 112))), 10))
    # Everything leans one way (or at right angles to it): the dynamic diagonal of the style.
    slant = rng.choice([-1.0, 1.0]) * rng.uniform(math.radians(25), math.radians(60))
    widths = [*rng.uniform(0.03, 0.14, int(rng.integers(2, 6))), *rng.uniform(0.005, 0.012, int(rng.integers(0, 4)))]
    shapes: list[np.ndarray] = []
    for width in widths:  # heavy bars, then hairlines
        cx, cy = rng.uniform(0.15, 0.85, 2)
        u, v = _rotate(x - cx, y - cy, slant + (math.pi / 2 if rng.random() < 0.25 else 0.0))
        shapes.append(_box(u, v, rng.uniform(0.35, 1.2) / 2, width / 2))
    for _ in range(int(rng.integers(1, 3))):
        cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.08, 0.24)
        dist = np.hypot(x - cx, y - cy) - r
        shapes.append(np.abs(dist + r * 0.15) - r * 0.15 if rng.random() < 0.3 else dist)  # disc or ring
    for index in rng.permutation(len(shapes)):  # any shape may overlap any other
        _paint(pixels, _cover(shapes[index], side), _pick(rng, inks))
    return _finish(pixels)


def _paint_bauhaus(rng: np.random.Generator, side: int) -> Image.Image:
    pixels, paper = _poster(rng, side)
    colours = [paper, _jitter(rng, _RED, 10), _jitter(rng, _BLUE, 10), _jitter(rng, _YELLOW, 10), _jitter(rng, _BLACK, 4)]
    cols, rows = int(rng.integers(2, 5)), int(rng.integers(2, 5))
    xs = np.round(np.linspace(0, side, cols + 1)).astype(int)
    ys = np.round(np.linspace(0, side, rows + 1)).astype(int)
    for i in range(cols):
        for j in range(rows):
            _bauhaus_cell(rng, pixels[ys[j]:ys[j + 1], xs[i]:xs[i + 1]], colours, side)
    return _finish(pixels)


def _bauhaus_cell(rng: np.random.Generator, cell: np.ndarray, colours: list[Colour], side: int) -> None:
    # One grid cell: a ground (colours[0], the paper, is left as printed) and one figure on it.
    h, w = cell.shape[:2]
    y, x = (np.mgrid[0:h, 0:w].astype(np.float32) + 0.5) / side  # canvas units, cell-local
    ground, figure = rng.choice(len(colours), 2, replace=False, p=[0.4, 0.15, 0.15, 0.15, 0.15])
    if ground:
        cell[:] = colours[ground]
    width, height, short = w / side, h / side, min(w, h) / side
    kind = rng.choice(["circle", "half", "quarter", "quarter", "bar", "none"])
    if kind == "circle":
        dist = np.hypot(x - width / 2, y - height / 2) - 0.42 * short
    elif kind == "half":  # a half disc on one edge of the cell
        cx, cy = _pick(rng, [(width / 2, 0.0), (width, height / 2), (width / 2, height), (0.0, height / 2)])
        dist = np.hypot(x - cx, y - cy) - 0.5 * short
    elif kind == "quarter":  # a quarter disc filling from one corner
        dist = np.hypot(x - rng.choice([0.0, width]), y - rng.choice([0.0, height])) - short
    elif kind == "bar":
        across = rng.uniform(0.2, 0.4)
        vertical = rng.random() < 0.5
        dist = np.abs(x - width / 2) - width * across / 2 if vertical else np.abs(y - height / 2) - height * across / 2
    else:
        return
    _paint(cell, _cover(dist, side), colours[figure])


def _paint_stripes(rng: np.random.Generator, side: int) -> Image.Image:
    pixels, paper = _poster(rng, side)
    black = _jitter(rng, _BLACK, 4)
    pool = [paper, _jitter(rng, _RED, 10), _jitter(rng, _BLUE, 10), _jitter(rng, _YELLOW, 10), black]
    palette = [pool[i] for i in rng.choice(len(pool), int(rng.integers(2, 5)), replace=False)]
    bands = int(rng.integers(5, 15))
    # Even bands (Buren) or uneven ones (Stella); the edges are the image's only structure.
    widths = np.ones(bands) if rng.random() < 0.35 else rng.dirichlet(np.full(bands, 1.5))
    edges = np.round(np.concatenate([[0], np.cumsum(widths) / widths.sum()]) * side).astype(int)
    previous = -1
    for k in range(bands):
        choice = (previous + 1 + rng.integers(len(palette) - 1)) % len(palette)  # never twice in a row
        if palette[choice] != paper:  # paper bands keep the printed paper
            pixels[:, edges[k]:edges[k + 1]] = palette[choice]
        previous = choice
    if rng.random() < 0.4:  # pinstripes on the band edges
        line = max(1, round(side * 0.006))
        for edge in edges[1:-1]:
            pixels[:, max(0, edge - line):edge + line] = paper if paper not in palette else black
    if rng.random() < 0.5:
        pixels = pixels.transpose(1, 0, 2).copy()
    return _finish(pixels)


# --------------------------------------------------------------------------- ornaments

# (ground, three inks), shared by the three ornament classes.
_ORNAMENT_PALETTES: tuple[tuple[Colour, ...], ...] = (
    ((18, 24, 48), (220, 170, 70), (200, 70, 60), (70, 150, 170)),
    ((244, 236, 218), (30, 60, 130), (190, 60, 50), (220, 170, 60)),
    ((60, 20, 40), (240, 200, 120), (210, 110, 90), (120, 170, 150)),
    ((20, 60, 60), (240, 230, 200), (220, 140, 60), (150, 60, 80)),
    ((236, 220, 190), (120, 40, 60), (40, 100, 90), (210, 150, 60)),
)


def _ornament_colours(rng: np.random.Generator) -> list[Colour]:
    ground, *inks = (_jitter(rng, c, 12) for c in _pick(rng, _ORNAMENT_PALETTES))
    return [ground, *(inks[i] for i in rng.permutation(3))]


def _polar(rng: np.random.Generator, side: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = _grid(side)
    cx, cy = 0.5 + rng.uniform(-0.03, 0.03, 2)
    return np.hypot(x - cx, y - cy), np.arctan2(y - cy, x - cx)


def _paint_mandala(rng: np.random.Generator, side: int) -> Image.Image:
    r, theta = _polar(rng, side)
    ground, *inks = _ornament_colours(rng)
    pixels = np.empty((side, side, 3), np.float32)
    pixels[:] = ground
    folds = int(rng.choice([6, 8, 10, 12, 16]))
    rings = int(rng.integers(3, 7))
    radii = np.sort(rng.uniform(0.07, 1.0, rings))[::-1] * rng.uniform(0.36, 0.47)
    radii[0] = max(radii[0], 0.3)
    turn = rng.uniform(0, 2 * math.pi)
    for i, radius in enumerate(radii):
        # Petals: the ring's edge swells n times round; odd rings sit between the even ones' petals.
        depth, sharp = rng.uniform(0.12, 0.4), rng.uniform(0.5, 3.0)
        wave = np.abs(np.cos(folds * (theta - turn) / 2 + (i % 2) * math.pi / 2)) ** sharp
        edge = radius * (1 - depth * (1 - wave))
        _paint(pixels, _cover(r - edge, side), inks[i % len(inks)])
        if rng.random() < 0.4:  # a ring of beads just inside the petals
            wedge = 2 * math.pi / folds
            folded = np.mod(theta - turn + wedge / 2, wedge) - wedge / 2
            bead = np.hypot(r * np.cos(folded) - radius * 0.8, r * np.sin(folded)) - radius * 0.06
            _paint(pixels, _cover(bead, side), ground)
    _paint(pixels, _cover(r - radii[-1] * 0.45, side), ground if rng.random() < 0.5 else inks[0])
    return _finish(pixels)


def _paint_kaleidoscope(rng: np.random.Generator, side: int) -> Image.Image:
    r, theta = _polar(rng, side)
    ground, *inks = _ornament_colours(rng)
    mirrors = int(rng.choice([3, 4, 5, 6]))
    wedge = 2 * math.pi / mirrors
    # Fold the plane into one mirror wedge [0, wedge/2]: whatever is painted there repeats
    # 2 * mirrors times, mirrored, out to the corners.
    folded = np.mod(theta + rng.uniform(0, wedge), wedge)
    folded = np.minimum(folded, wedge - folded)
    fx, fy = r * np.cos(folded), r * np.sin(folded)
    pixels = np.empty((side, side, 3), np.float32)
    pixels[:] = _ramp(r, [(0.0, _mix(ground, inks[0], 0.3)), (0.75, ground)])
    lead = _mix(ground, (0, 0, 0), 0.6)
    for _ in range(int(rng.integers(10, 20))):
        # Shards anywhere in the wedge (a little past its mirrors, so they meet their images).
        radius, angle = rng.uniform(0, 0.75, 3), rng.uniform(-0.15, wedge / 2 + 0.15, 3)
        corners = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1)
        if rng.random() < 0.75:
            dist = _triangle(fx, fy, corners)
        else:
            dist = np.hypot(fx - corners[0, 0], fy - corners[0, 1]) - rng.uniform(0.03, 0.12)
        _paint(pixels, _cover(dist, side), inks[rng.integers(len(inks))])
        _paint(pixels, _cover(np.abs(dist) - 0.003, side), lead)  # leading round each shard
    return _finish(pixels)


def _triangle(x: np.ndarray, y: np.ndarray, corners: np.ndarray) -> np.ndarray:
    # Signed distance (exact inside, close enough outside for a one-pixel edge) to a triangle.
    a, b, c = corners
    if (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]) < 0:
        b, c = c, b  # counter-clockwise, so every edge's inside is on its left
    dist = None
    for (px, py), (qx, qy) in ((a, b), (b, c), (c, a)):
        nx, ny = qy - py, px - qx  # outward normal of a counter-clockwise edge
        norm = math.hypot(nx, ny) or 1.0
        edge = ((x - px) * nx + (y - py) * ny) / norm
        dist = edge if dist is None else np.maximum(dist, edge)
    return dist  # type: ignore[return-value]


def _paint_frieze(rng: np.random.Generator, side: int) -> Image.Image:
    x, y = _grid(side)
    ground, *inks = _ornament_colours(rng)
    colours = [ground, *inks]
    pixels = np.empty((side, side, 3), np.float32)
    rule = _mix(ground, (0, 0, 0), 0.6) if sum(ground) > 300 else _mix(ground, (255, 255, 255), 0.6)
    # Stacked borders, as on a kilim or a tiled dado: each band repeats one motif along x
    # (translation), and every motif is mirror-symmetric within its period.
    edges = np.concatenate([[0.0], np.cumsum(rng.dirichlet(np.full(int(rng.integers(4, 8)), 6.0)))])
    for top, bottom in zip(edges[:-1], edges[1:]):
        height = bottom - top
        rows = slice(int(round(top * side)), int(round(bottom * side)))
        band, u, v = pixels[rows], x[rows], (y[rows] - top) / height
        back, fore = rng.choice(len(colours), 2, replace=False)
        band[:] = colours[back]
        period = height * rng.uniform(0.8, 1.6)
        fu = np.mod(u / period + rng.uniform(0, 1), 1.0) - 0.5  # -0.5..0.5 across one motif
        motif = _pick(rng, ("triangles", "diamonds", "dots", "chevrons", "scallops"))
        scale = min(height, period)
        if motif == "triangles":
            dist = (2 * np.abs(fu) - (v if rng.random() < 0.5 else 1 - v)) * scale / 2
        elif motif == "diamonds":
            dist = (np.abs(fu) + np.abs(v - 0.5) - 0.45) * scale
        elif motif == "dots":
            dist = np.hypot(fu * period, (v - 0.5) * height) - 0.3 * scale
        elif motif == "chevrons":
            dist = (np.abs(v - 0.5 - 0.6 * (np.abs(fu) - 0.25)) - 0.14) * height
        else:
            dist = np.hypot(fu * period, v * height) - 0.5 * scale
        _paint(band, _cover(dist, side), colours[fore])
    for edge in edges[1:-1]:  # a thin rule between borders
        _paint(pixels, _cover(np.abs(y - edge) - 0.006, side), rule)
    return _finish(pixels)


# ------------------------------------------------------------------------------- tiles

# (ground or mortar, first colour, second colour), shared by every tiles class; not textures' pool.
_TILE_PALETTES: tuple[tuple[Colour, ...], ...] = (
    ((226, 220, 206), (150, 64, 44), (188, 98, 66)),
    ((40, 44, 52), (206, 170, 96), (120, 150, 164)),
    ((238, 236, 228), (36, 96, 132), (96, 160, 150)),
    ((58, 36, 40), (226, 120, 90), (244, 206, 150)),
    ((206, 214, 190), (84, 110, 60), (170, 60, 70)),
    ((30, 52, 48), (232, 222, 190), (214, 148, 60)),
)


def _tile_colours(rng: np.random.Generator) -> tuple[Colour, Colour, Colour]:
    ground, first, second = (_jitter(rng, c, 14) for c in _pick(rng, _TILE_PALETTES))
    return (ground, second, first) if rng.random() < 0.5 else (ground, first, second)


def _paint_bricks(rng: np.random.Generator, side: int) -> Image.Image:
    x, y = _grid(side)
    mortar, brick, other = _tile_colours(rng)
    height = 1 / rng.uniform(5, 8.5)  # at 32 px a course is 4-6 px
    length = height * rng.uniform(1.8, 2.6)
    u, v = _rotate(x, y, rng.uniform(-0.25, 0.25) + (math.pi / 2 if rng.random() < 0.25 else 0))
    row = np.floor(v / height)
    shift = np.mod(row, 2) * 0.5  # running bond: each course starts half a brick along
    col = np.floor(u / length + shift)
    fu, fv = (u / length + shift - col) * length, (v / height - row) * height  # position within the brick
    joint = height * rng.uniform(0.12, 0.22)
    inside = np.minimum(np.minimum(fu, length - fu), np.minimum(fv, height - fv)) - joint / 2
    # A shade per brick, drawn from its row and column, between the palette's two colours.
    shade = np.mod(np.sin(col * 12.9898 + row * 78.233 + rng.uniform(0, 100)) * 43758.5453, 1.0)
    shade = np.clip(shade * rng.uniform(0.3, 0.8), 0, 1)[..., None]
    face = np.asarray(brick, np.float32) + shade * (np.asarray(other, np.float32) - brick)
    pixels = np.empty((side, side, 3), np.float32)
    pixels[:] = mortar
    pixels += _cover(-inside, side)[..., None] * (face - pixels)
    return _finish(pixels)


def _paint_tartan(rng: np.random.Generator, side: int) -> Image.Image:
    x, y = _grid(side)
    ground, first, second = _tile_colours(rng)
    sett = 1 / rng.uniform(2.5, 4.5)  # one repeat of the band pattern: 7-13 px at 32 px
    u, v = _rotate(x, y, rng.uniform(-0.2, 0.2) + (math.pi / 4 if rng.random() < 0.3 else 0))
    # Bands within a sett: a wide one in the first colour, a narrow one in the second, the rest ground.
    wide, narrow = rng.uniform(0.3, 0.45), rng.uniform(0.08, 0.15)
    offset = rng.uniform(0.55, 0.8)

    def threads(t: np.ndarray) -> np.ndarray:
        f = np.mod(t / sett, 1.0)
        band = np.empty((*t.shape, 3), np.float32)
        band[:] = ground
        _paint(band, _cover((np.abs(f - wide / 2) - wide / 2) * sett, side), first)
        _paint(band, _cover((np.abs(f - offset) - narrow / 2) * sett, side), second)
        return band

    # Warp and weft cross: where they meet the colours mix, as threads of both show in a twill.
    pixels = 0.5 * (threads(u) + threads(v))
    twill = np.mod(np.floor((u + v) * side / 6), 2)[..., None]  # faint diagonal ribs of the twill
    pixels *= 0.94 + 0.08 * twill
    return _finish(pixels)


def _paint_harlequin(rng: np.random.Generator, side: int) -> Image.Image:
    x, y = _grid(side)
    ground, first, second = _tile_colours(rng)
    size = 1 / rng.uniform(3, 6)  # a diamond's width: 5-11 px at 32 px
    aspect = rng.uniform(1.0, 1.6)  # diamonds taller than wide, as on a costume
    u, v = _rotate(x, y, rng.uniform(-0.3, 0.3))
    # Diamonds are squares in coordinates turned by 45 degrees; their colours alternate like a chessboard.
    a, b = (u / size + v / (size * aspect)), (u / size - v / (size * aspect))
    ia, ib = np.floor(a), np.floor(b)
    pixels = np.empty((side, side, 3), np.float32)
    pixels[:] = first
    _paint(pixels, (np.mod(ia + ib, 2) == 1).astype(np.float32), second)
    if rng.random() < 0.6:  # lead lines between the diamonds
        edge = np.minimum(np.minimum(a - ia, 1 - (a - ia)), np.minimum(b - ib, 1 - (b - ib))) * size * 0.7
        _paint(pixels, _cover(edge - size * rng.uniform(0.03, 0.06), side), ground)
    return _finish(pixels)


# --------------------------------------------------------------------------- brushwork

# (sky, sky near the horizon, field, field near the horizon): day, evening, overcast, autumn.
_LANDSCAPES: tuple[tuple[Colour, ...], ...] = (
    ((104, 150, 214), (206, 220, 232), (70, 128, 58), (176, 180, 84)),
    ((122, 96, 168), (244, 170, 120), (60, 84, 70), (150, 120, 70)),
    ((150, 160, 170), (214, 212, 200), (96, 118, 80), (160, 160, 120)),
    ((96, 140, 190), (236, 214, 170), (168, 90, 40), (214, 168, 70)),
)


def _landscape(rng: np.random.Generator, side: int) -> tuple[np.ndarray, float]:
    # The scene under the marks: a sky over a field, each a gradient, split at a horizon.
    sky, haze, field, near = (_jitter(rng, c, 16) for c in _pick(rng, _LANDSCAPES))
    horizon = rng.uniform(0.35, 0.65)
    _, y = _grid(side)
    pixels = _sky(side, y, [(0.0, sky), (horizon, haze), (horizon + 1e-3, near), (1.0, field)])
    return pixels, horizon


def _colour_at(scene: np.ndarray, cx: float, cy: float) -> np.ndarray:
    side = scene.shape[0]
    return scene[min(int(cy * side), side - 1), min(int(cx * side), side - 1)]


def _paint_impressionist(rng: np.random.Generator, side: int) -> Image.Image:
    scene, horizon = _landscape(rng, side)
    canvas = _finish(scene)
    draw = ImageDraw.Draw(canvas)
    length, width = side * rng.uniform(0.05, 0.09), side * rng.uniform(0.015, 0.03)
    for _ in range(int(rng.integers(500, 800))):
        cx, cy = rng.uniform(0, 1, 2)
        # Sky strokes lie nearly flat; the field's lean up, as grass and crops are painted.
        angle = rng.normal(0, 0.25) + (0 if cy < horizon else rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.3))
        colour = tuple(int(v) for v in np.clip(_colour_at(scene, cx, cy) + rng.normal(0, 22, 3) + rng.uniform(-18, 18), 0, 255))
        du, dv = np.array([math.cos(angle), math.sin(angle)]), np.array([-math.sin(angle), math.cos(angle)])
        centre = np.array([cx, cy]) * side
        corners = [centre + su * length / 2 * du + sv * width / 2 * dv
                   for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
        draw.polygon([tuple(c) for c in corners], fill=colour)
    return canvas


# Pure colours a pointillist lays side by side for the eye to mix.
_POINTILLIST_INKS: tuple[Colour, ...] = ((232, 64, 48), (246, 196, 40), (60, 140, 70), (48, 92, 196),
                                          (244, 240, 226), (150, 60, 150), (250, 140, 60))


def _paint_pointillist(rng: np.random.Generator, side: int) -> Image.Image:
    scene, _ = _landscape(rng, side)
    if rng.random() < 0.6:  # a sun or a tree crown: a soft round shape for the dots to gather into
        x, y = _grid(side)
        centre, radius = rng.uniform(0.2, 0.8, 2), rng.uniform(0.1, 0.22)
        _paint(scene, np.clip(1.5 - np.hypot(x - centre[0], y - centre[1]) / radius, 0, 1),
               _jitter(rng, _pick(rng, ((250, 210, 90), (40, 90, 50), (230, 110, 70))), 16))
    inks = np.asarray(_POINTILLIST_INKS, np.float32)
    canvas = Image.new("RGB", (side, side), _jitter(rng, (238, 232, 216), 10))
    draw = ImageDraw.Draw(canvas)
    radius = side * rng.uniform(0.008, 0.014)
    count = int(0.9 / (radius / side) ** 2)  # enough dots to cover the canvas about twice
    points = rng.uniform(0, 1, (count, 2))
    for cx, cy in points:
        # The ink nearest the scene's colour, often, or a neighbour of it: the mixture reads as the scene.
        near = np.argsort(np.abs(inks - _colour_at(scene, cx, cy)).sum(1))
        ink = inks[near[0] if rng.random() < 0.65 else near[int(rng.integers(1, 3))]]
        px, py, r = cx * side, cy * side, radius * rng.uniform(0.8, 1.2)
        draw.ellipse([px - r, py - r, px + r, py + r], fill=tuple(int(v) for v in ink))
    return canvas


# Muted ochres, browns, greys and greens of analytic and early synthetic cubism.
_CUBIST_PALETTES: tuple[tuple[Colour, ...], ...] = (
    ((186, 150, 96), (120, 92, 60), (200, 190, 160), (90, 96, 84), (150, 120, 80)),
    ((160, 160, 150), (100, 104, 108), (206, 196, 170), (70, 74, 80), (170, 140, 100)),
    ((120, 130, 100), (180, 170, 130), (90, 70, 56), (210, 200, 176), (140, 100, 70)),
)


def _paint_cubist(rng: np.random.Generator, side: int) -> Image.Image:
    x, y = _grid(side)
    palette = [_jitter(rng, c, 14) for c in _pick(rng, _CUBIST_PALETTES)]
    # Facets: the cells of a few seeds, crowded towards a centre of interest as in a cubist still life.
    count = int(rng.integers(12, 26))
    focus = rng.uniform(0.35, 0.65, 2)
    seeds = np.clip(focus + rng.normal(0, 0.28, (count, 2)), 0, 1)
    # The nearest seed and the second nearest, one seed at a time (a [side, side, count] array is 2 GB at 1024 px).
    nearest, second = np.full(x.shape, np.inf), np.full(x.shape, np.inf)
    cell, neighbour = np.zeros(x.shape, int), np.zeros(x.shape, int)
    for k, (sx, sy) in enumerate(seeds):
        d = np.hypot(x - sx, y - sy)
        closer, between = d < nearest, (d >= nearest) & (d < second)
        second = np.where(closer, nearest, np.where(between, d, second))
        neighbour = np.where(closer, cell, np.where(between, k, neighbour))
        nearest, cell = np.where(closer, d, nearest), np.where(closer, k, cell)
    # Each facet: a flat colour shaded along its own direction, lit on one side, dark on the other.
    colours = np.asarray([_pick(rng, palette) for _ in range(count)], np.float32)
    angles = rng.uniform(0, 2 * math.pi, count)
    along = (x - seeds[cell, 0]) * np.cos(angles[cell]) + (y - seeds[cell, 1]) * np.sin(angles[cell])
    shade = np.clip(1 + along * rng.uniform(1.5, 3.0), 0.55, 1.45)[..., None]
    pixels = colours[cell] * shade
    # Dark contours on about half the edges (the planes of one object), a pair of cells at a time.
    drawn = rng.random((count, count)) < 0.5
    edge = drawn[cell, neighbour] | drawn[neighbour, cell]
    _paint(pixels, _cover((second - nearest) / 2 - 0.004, side) * edge, _mix(palette[1], (20, 16, 12), 0.6))
    return _finish(pixels)


_PAINTERS: dict[str, dict[str, Painter]] = {
    "horizons": {"sunset": _paint_sunset, "moonlit": _paint_moonlit, "dunes": _paint_dunes},
    "textures": {"waves": _paint_waves, "weave": _paint_weave, "dots": _paint_dots},
    "posters": {"constructivist": _paint_constructivist, "bauhaus": _paint_bauhaus, "stripes": _paint_stripes},
    "ornaments": {"mandala": _paint_mandala, "kaleidoscope": _paint_kaleidoscope, "frieze": _paint_frieze},
    "tiles": {"bricks": _paint_bricks, "tartan": _paint_tartan, "harlequin": _paint_harlequin},
    "brushwork": {"impressionist": _paint_impressionist, "pointillist": _paint_pointillist, "cubist": _paint_cubist},
}
