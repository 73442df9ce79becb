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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from studio.data import demo, families
from studio.data.decode import png_bytes
from studio.workspace import cache_root

# (label, file name, image, png): what families.family_images yields, and the image as PIL saves a PNG (the cache's
# file), so a dataset stores it without encoding it again.
Painting = tuple[str, str, Image.Image, bytes]
Job = tuple[str, str, int, int]  # (family, label, image seed, size): one painting to make
ROOT = Path(__file__).resolve().parents[2]  # where `python -m studio...` finds the package, installed or not


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
    plan = families.family_plan(family, per_class, seed, split)
    painted_here = _paint_all([(family, label, image_seed, size) for label, _, image_seed in plan])
    images = tuple((label, name, img, png) for (label, name, _), (img, png) in zip(plan, painted_here))
    _write(folder, images)
    return images


def _paint_all(jobs: list[Job]) -> list[tuple[Image.Image, bytes]]:
    """Each (family, label, image seed, size) painted, as an image and its PNG bytes, on the cores this process may use:
    an app's first start on a new machine paints the demo before it answers (13 s on one core of a 2-core EPYC).
    Helpers are plain `python -m studio.data.paintings` processes (numpy and PIL, no torch: they start in a fraction of
    a second), each painting a share into files. What a helper did not paint (it could not start, died, or hung) is
    painted here. As many painters as this process has threads (a benchmark's --threads 1 paints alone)."""
    import torch  # kept out of the helpers' imports

    from studio.devices import available_cores

    workers = max(1, min(available_cores(), torch.get_num_threads(), len(jobs)))
    shares = [range(w, len(jobs), workers) for w in range(workers)]
    out: list[tuple[Image.Image, bytes] | None] = [None] * len(jobs)
    with tempfile.TemporaryDirectory(prefix="studio-paint-") as tmp:
        helpers = []
        for w, share in enumerate(shares[1:], 1):
            spec = Path(tmp) / f"share{w}.json"
            spec.write_text(json.dumps([[i, *jobs[i]] for i in share]))
            try:
                helpers.append(subprocess.Popen([sys.executable, "-m", "studio.data.paintings", str(spec), tmp], cwd=ROOT,
                                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            except OSError:
                pass
        started = time.monotonic()
        for i in shares[0]:
            out[i] = _from_png(_paint_png(jobs[i]))
        patience = max(30.0, 2 * (time.monotonic() - started))  # a helper's share is as large as this one
        for helper in helpers:
            try:
                helper.wait(timeout=patience)
            except subprocess.TimeoutExpired:
                helper.kill()
                helper.wait()
        for i, got in enumerate(out):
            if got is None:
                try:
                    out[i] = _from_png((Path(tmp) / f"{i:04d}.png").read_bytes())
                except OSError:  # not painted: its helper could not start, died or hung
                    out[i] = _from_png(_paint_png(jobs[i]))
    return out


def _paint_png(job: Job) -> bytes:
    return png_bytes(families.render_family_image(*job))


def _from_png(png: bytes) -> tuple[Image.Image, bytes]:
    with Image.open(io.BytesIO(png)) as img:
        return img.convert("RGB"), png


@functools.cache
def _painters_hash() -> str:
    digest = hashlib.sha256()
    for module in (demo, families):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def _read(folder: Path) -> tuple[Painting, ...]:
    index = json.loads((folder / "index.json").read_text())
    return tuple((label, name, *_from_png((folder / f"{i:04d}.png").read_bytes())) for i, (label, name) in enumerate(index))


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


if __name__ == "__main__":  # a helper of _paint_all: python -m studio.data.paintings SHARE.json FOLDER
    for index, *job in json.loads(Path(sys.argv[1]).read_text()):
        done = Path(sys.argv[2]) / f"{index:04d}.png"
        done.with_suffix(".part").write_bytes(_paint_png(tuple(job)))
        os.replace(done.with_suffix(".part"), done)  # whole or absent
