"""Demo paintings, painted once per machine: ~14 s of CPU (the demo on a 2-core EPYC) that every new workspace (each
first start, each visitor of a shared studio) would otherwise spend again on the same pixels. Kept in memory and in the
studio's cache folder, keyed by the arguments and the painters' own source, so a change to a painter paints afresh."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

from PIL import Image

from studio.data import demo, families
from studio.data.decode import png_bytes
from studio.workspace import cache_root

# (label, file name, image, png): what families.family_images yields, and the image as PIL saves a PNG (the cache's
# file), so a dataset stores it without encoding it again.
Painting = tuple[str, str, Image.Image, bytes]


@functools.lru_cache(maxsize=2)
def painted(family: str, per_class: int, seed: int, size: int, split: str | None) -> tuple[Painting, ...]:
    """What `families.family_images` paints for these arguments (a bad family or split raises its error)."""
    # The folder is named by a digest, never by the arguments themselves: a family name is no path.
    key = hashlib.sha256(json.dumps([family, per_class, seed, size, split, _painters_hash()]).encode()).hexdigest()[:32]
    folder = cache_root() / "paintings" / key
    try:
        return _read(folder)
    except (OSError, ValueError, TypeError):  # not there yet, or damaged: paint (and replace it)
        shutil.rmtree(folder, ignore_errors=True)
    images = tuple((label, name, img, png_bytes(img))
                   for label, name, img in families.family_images(family, per_class=per_class, seed=seed, size=size,
                                                                  split=split))
    _write(folder, images)
    return images


@functools.cache
def _painters_hash() -> str:
    digest = hashlib.sha256()
    for module in (demo, families):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def _read(folder: Path) -> tuple[Painting, ...]:
    index = json.loads((folder / "index.json").read_text())
    out = []
    for i, (label, name) in enumerate(index):
        png = (folder / f"{i:04d}.png").read_bytes()
        with Image.open(io.BytesIO(png)) as img:
            out.append((label, name, img.convert("RGB"), png))
    return tuple(out)


def _write(folder: Path, images: tuple[Painting, ...]) -> None:
    """Best effort (a read-only home only costs the next start the painting); whole or absent, by one rename."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".painting-"))
    except OSError:
        return
    try:
        for i, (_, _, _, png) in enumerate(images):
            (tmp / f"{i:04d}.png").write_bytes(png)
        (tmp / "index.json").write_text(json.dumps([[label, name] for label, name, _, _ in images]))
        os.rename(tmp, folder)
    except OSError:  # no room, or another process got there first: theirs is the same
        shutil.rmtree(tmp, ignore_errors=True)
