"""Decode image bytes into RGB, refuse what is not a usable image, crop to squares, and hash for duplicates."""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from studio.data import limits

SUPPORTED_FORMATS = {"PNG", "JPEG", "MPO", "WEBP", "BMP", "GIF", "TIFF"}
DEFAULT_MIN_SIDE = 64
CropMode = Literal["center", "pad", "patches"]
CROP_MODES: tuple[str, ...] = ("center", "pad", "patches")
PATCH_LAYOUTS: tuple[str, ...] = ("tiled", "random")


class Rejected(Exception):
    """The file is not a usable image; the message is the reason shown next to its name."""


@dataclass(frozen=True)
class Crop:
    """One square region of a source image, in source pixels (left, top, right, bottom)."""

    box: tuple[int, int, int, int]
    patch: int | None = None


def open_image(data: bytes, *, min_side: int = DEFAULT_MIN_SIDE, max_pixels: int | None = None) -> Image.Image:
    """Read only the header: the image, its size known and no pixel decoded yet, or Rejected with the reason."""
    limit = limits.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    if not data:
        raise Rejected("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # The size check below is the bound that counts, and its reason names the size; PIL's own warning
            # would only refuse less clearly (or refuse what a deployer chose to allow).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise Rejected(_bomb_reason(exc, limit)) from None
    except UnidentifiedImageError:
        raise Rejected("not an image (format not recognised)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise Rejected(f"corrupt image ({exc})") from None
    if img.format not in SUPPORTED_FORMATS:
        raise Rejected(f"unsupported image format {img.format} (use PNG, JPEG, WebP, BMP, GIF or TIFF)")
    width, height = img.size
    if width * height > limit:
        raise Rejected(f"too many pixels ({width}×{height}; the limit is {limit:,}; possible decompression bomb)")
    if min(width, height) < min_side:
        raise Rejected(f"too small ({width}×{height} px; the minimum side is {min_side} px)")
    return img


def load_rgb(img: Image.Image) -> Image.Image:
    """Decode an image from `open_image` as upright 8-bit RGB, or raise Rejected with the reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size was checked in open_image
            img.seek(0)  # GIF/TIFF: the first frame
            img.load()
            img = ImageOps.exif_transpose(img)
    except Image.DecompressionBombError as exc:  # e.g. a TIFF tile far larger than the image it belongs to
        raise Rejected(_bomb_reason(exc, limits.MAX_IMAGE_PIXELS)) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise Rejected(f"truncated or corrupt image data ({exc})") from None
    return to_rgb(img)


def decode_image(data: bytes, *, min_side: int = DEFAULT_MIN_SIDE, max_pixels: int | None = None) -> Image.Image:
    """Return the image as upright 8-bit RGB, or raise Rejected with the reason (max_pixels: limits.MAX_IMAGE_PIXELS)."""
    return load_rgb(open_image(data, min_side=min_side, max_pixels=max_pixels))


def _bomb_reason(exc: Image.DecompressionBombError, limit: int) -> str:
    """PIL refuses past 2 × Image.MAX_IMAGE_PIXELS before we see the size; its message carries the pixel count."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    pil_limit = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else limit
    count = f"{int(found.group(1)):,} pixels" if found else f"over {pil_limit:,} pixels"
    return f"too many pixels ({count}; the limit is {min(limit, pil_limit):,}; possible decompression bomb)"


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB: alpha composited on white, 16/32-bit rescaled to 8-bit, CMYK/palette converted."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # convert("L") clips these to 0-255, which turns most 16-bit scans white; rescale instead.
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        white = Image.new("RGB", img.size, (255, 255, 255))
        white.paste(img, mask=img.getchannel("A"))
        return white
    return img.convert("RGB") if img.mode != "RGB" else img


def plan_crops(width: int, height: int, *, size: int, crop: CropMode, patches: int = 4,
               layout: str = "tiled", seed: int = 0) -> list[Crop]:
    """Where to cut square crops from a width×height image.

    `patches` cuts K squares from a large painting at a scale that keeps its brushwork (side
    max(size, short side / 2)) instead of shrinking the whole canvas to noise; images too
    small for that get one center crop.
    """
    short = min(width, height)
    if crop == "pad":
        return [Crop((0, 0, width, height))]
    if crop == "center" or short < int(1.5 * size):
        return [_square(width, height, short, (width - short) // 2, (height - short) // 2)]
    side = max(size, short // 2)
    if layout == "random":
        rng = np.random.default_rng(seed)
        xs = rng.integers(0, width - side + 1, patches)
        ys = rng.integers(0, height - side + 1, patches)
        return [_square(width, height, side, int(x), int(y), i) for i, (x, y) in enumerate(zip(xs, ys))]
    cols = max(1, round((patches * width / height) ** 0.5))
    rows = -(-patches // cols)
    grid = [(c, r) for r in range(rows) for c in range(cols)]
    picks = [grid[round(i * (len(grid) - 1) / max(patches - 1, 1))] for i in range(patches)] if patches < len(grid) else grid
    return [
        _square(width, height, side, _spread(c, cols, width - side), _spread(r, rows, height - side), i)
        for i, (c, r) in enumerate(picks)
    ]


def _spread(index: int, count: int, span: int) -> int:
    return round(index * span / (count - 1)) if count > 1 else span // 2


def _square(width: int, height: int, side: int, x: int, y: int, patch: int | None = None) -> Crop:
    x, y = min(max(x, 0), width - side), min(max(y, 0), height - side)
    return Crop((x, y, x + side, y + side), patch)


def png_bytes(img: Image.Image) -> bytes:
    """`img` as PIL saves a PNG by default: the same pixels give the same bytes, so the same sha256 (an image's id)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def render_crop(img: Image.Image, crop: Crop, size: int) -> Image.Image:
    """Cut `crop` from `img` and return it as a size×size RGB image (letterboxed when the box is not square)."""
    region = img.crop(crop.box)
    w, h = region.size
    if w == h:
        return region.resize((size, size), Image.Resampling.LANCZOS) if w != size else region
    scale = size / max(w, h)
    fitted = region.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), _border_colour(region))
    canvas.paste(fitted, ((size - fitted.width) // 2, (size - fitted.height) // 2))
    return canvas


def _border_colour(img: Image.Image) -> tuple[int, int, int]:
    """The mean colour of the image's edge: letterbox bars that match the painting draw less attention."""
    arr = np.asarray(img)
    edge = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    return tuple(int(v) for v in edge.mean(axis=0))  # type: ignore[return-value]


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)
    m = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))
    m[0] *= 1 / np.sqrt(2)
    return m * np.sqrt(2 / n)


_DCT32 = _dct_matrix(32)


def perceptual_hash(img: Image.Image) -> int:
    """64-bit pHash: signs of the low-frequency DCT of a 32×32 grey thumbnail, robust to resizing and re-encoding."""
    grey = np.asarray(img.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    low = (_DCT32 @ grey @ _DCT32.T)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()
