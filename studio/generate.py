"""Generate from a trained run or the pretrained BigGAN: class × seed grids, seed-to-seed GIFs, base vs fine-tuned.

A *source* is a string: `run:<name>` (a BSA or cGAN run with a checkpoint) or `biggan:<model>` (the pretrained
BigGAN-deep by ImageNet class). Results are tensors in [-1, 1], PIL images, and files written under the
workspace's exports/ folder with names that say what they hold (source, step, seed, settings) and end in a
short hash of everything else, so the same request rewrites the same file and different ones never collide.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

from studio.data.augment import image_grid, to_pil
from studio.errors import UserError
from studio.methods import Sampler
from studio.run import RunFolder
from studio.workspace import Workspace, write_bytes_atomic

RUN, BASE = "run:", "biggan:"
MAX_PER_CLASS = 64
MAX_IMAGES = 256  # one request; 256 images at 256 px is already minutes on a CPU
MAX_FRAMES = 64
DEFAULT_TRUNCATION = {"bsa": 0.5, "cgan": 1.0, "biggan": 0.5}


IMAGENET_CLASSES = Path(__file__).resolve().parents[1] / "assets" / "imagenet_classes.txt"


@functools.cache
def imagenet_classes() -> tuple[str, ...]:
    """BigGAN's 1000 class names, in index order: torchvision's list, copied to a text file because importing
    torchvision to read it cost the app's start 2.5 s on a 2-core CPU."""
    return tuple(IMAGENET_CLASSES.read_text(encoding="utf-8").splitlines())


def imagenet_index(name: str) -> int:
    try:
        return imagenet_classes().index(name)
    except ValueError:
        raise UserError(f"There is no ImageNet class called {name!r}: pick one from the list.") from None


# -- sources ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceInfo:
    """What a source offers, known without loading any weights."""

    source: str
    name: str                    # run name or BigGAN model name
    method: str                  # bsa | cgan | biggan
    classes: tuple[str, ...]
    step: int | None = None
    n_images: int = 0            # BSA: training images, each with a learned latent
    class_init: int | None = None  # BSA: the ImageNet class its embedding started from
    saved: float | None = None   # checkpoint time: part of every export's hash
    status: str = ""             # base BigGAN: where the weights come from
    run_truncation: float | None = None  # a cGAN run's own sampling truncation (its config's `truncation`)

    @property
    def tag(self) -> str:
        return self.name if self.step is None else f"{self.name}-step{self.step:06d}"

    @property
    def truncation(self) -> float:
        return DEFAULT_TRUNCATION[self.method] if self.run_truncation is None else self.run_truncation

    @property
    def can(self) -> frozenset[str]:
        """What its sampler does beyond the Sampler contract (studio.methods.CAPABILITIES); the base BigGAN: nothing."""
        from studio.methods import METHODS, method

        return method(self.method).can if self.method in METHODS else frozenset()


def checkpoint_meta(run: RunFolder) -> dict:
    """The newest checkpoint's metadata from its JSON sidecar (the tensors stay on disk)."""
    for name in ("latest", "previous"):
        path = run.checkpoints_dir / f"{name}.json"
        if path.exists() and (run.checkpoints_dir / f"{name}.safetensors").exists():
            try:
                return json.loads(path.read_text())
            except (OSError, ValueError):
                continue
    raise UserError(f"Run {run.name!r} has no checkpoint yet: let it train until one is saved, or stop it to save one.")


def _run_info(name: str, meta: dict) -> SourceInfo:
    return SourceInfo(f"{RUN}{name}", name, meta["method"], tuple(meta["classes"]), step=meta.get("step"),
                      n_images=meta.get("n_images", 0), class_init=meta.get("config", {}).get("class_init"),
                      saved=meta.get("saved"),
                      run_truncation=meta.get("config", {}).get("truncation"))


def _parse(source: str | None) -> tuple[str, str]:
    """("run" or "biggan", name) of a source string."""
    if not source or not source.startswith((RUN, BASE)):
        raise UserError("Pick a run or a base BigGAN to generate from first.")
    kind, name = source.split(":", 1)
    if kind == "biggan" and name not in base_models(dev=True):
        raise UserError(f"Unknown base model {name!r}: choose one of {', '.join(base_models())}.")
    return kind, name


def source_info(ws: Workspace, source: str | None) -> SourceInfo:
    from studio.models.biggan import resolve_biggan

    kind, name = _parse(source)
    if kind == "biggan":
        return SourceInfo(source, name, "biggan", imagenet_classes(), status=resolve_biggan(name).status)
    run = RunFolder(ws.run_dir(name))
    if not run.exists():
        raise UserError(f"There is no run named {name!r}.")
    return _run_info(name, checkpoint_meta(run))


def base_models(*, dev: bool = False) -> list[str]:
    from studio.models.biggan import BIGGAN_NAMES

    return [*BIGGAN_NAMES, *(["tiny"] if dev else [])]


def list_sources(ws: Workspace, *, dev: bool = False) -> list[tuple[str, str]]:
    """(label, source) pairs: runs with a checkpoint, newest first, then the base BigGANs with where they come from."""
    from studio.models.biggan import resolve_biggan

    runs = []
    for path in ws.runs.iterdir() if ws.runs.exists() else ():
        run = RunFolder(path)
        try:
            info = _run_info(run.name, checkpoint_meta(run)) if run.exists() else None
        except (UserError, KeyError):
            continue
        if info is not None and info.method in ("bsa", "cgan"):  # not blends: they make images, not models
            runs.append((info.saved or 0, (f"{info.name} · {info.method.upper()} · step {info.step}", info.source)))
    bases = []
    for name in base_models(dev=dev):
        src = resolve_biggan(name)
        short = "ready" if src.kind in ("tiny", "local", "cache") else src.status if src.available else "not available offline"
        bases.append((f"base {name} · {short}", f"{BASE}{name}"))
    return [choice for _, choice in sorted(runs, key=lambda r: -r[0])] + bases


# -- loading ---------------------------------------------------------------------------------------

class BigGANSampler:
    """The pretrained BigGAN-deep alone, by ImageNet class name, with its own truncation trick: a studio.methods.Sampler.

    z = t · N(0, 1) cut to ±2 (pytorch-pretrained-biggan's `truncated_noise_sample`), and the batch-norm
    statistics stored for t, as BigGAN was meant to be sampled.
    """

    default_truncation = DEFAULT_TRUNCATION["biggan"]

    def __init__(self, model: torch.nn.Module):
        self.model, self.classes = model, list(imagenet_classes())
        self.z_dim = model.config.z_dim

    def latents(self, n: int, seed: int, truncation: float) -> torch.Tensor:
        from studio.methods.bsa import sample_latents

        if not 0 < truncation <= 1:
            raise UserError("The base BigGAN's truncation must be above 0 and at most 1.")
        gen = torch.Generator().manual_seed(seed)
        return truncation * sample_latents(n, self.model.config.z_dim, 2.0, gen, truncate=True)

    def _generate(self, z: torch.Tensor, label: str | None, truncation: float, batch: int = 16) -> torch.Tensor:
        from studio.models.biggan import one_hot_class

        index = imagenet_index(label or self.classes[0])
        device = next(self.model.parameters()).device
        y = one_hot_class([index] * len(z), self.model.config.num_classes).to(device)
        return torch.cat([self.model(z[k:k + batch].to(device), y[k:k + batch], truncation) for k in range(0, len(z), batch)])

    @torch.no_grad()
    def sample(self, n: int, *, label: str | None = None, seed: int = 0, truncation: float = 0.5) -> torch.Tensor:
        return self._generate(self.latents(n, seed, truncation), label, truncation)

    @torch.no_grad()
    def grid(self, per_class: int, *, seed: int = 0, truncation: float = 0.5, classes: Sequence[str] = ()) -> torch.Tensor:
        """Rows are the ImageNet `classes` named (a row for each of the 1000 would be too many), columns seeds."""
        if not classes:
            raise UserError("The base BigGAN knows 1000 classes: name the ones to put in the grid.")
        z = self.latents(per_class, seed, truncation)
        return torch.cat([self._generate(z, label, truncation) for label in classes])

    @torch.no_grad()
    def interpolate_seeds(self, a: int, b: int, frames: int = 8, *, label: str | None = None,
                          truncation: float = 0.5) -> torch.Tensor:
        from studio.methods import slerp

        z = slerp(self.latents(1, a, truncation), self.latents(1, b, truncation), torch.linspace(0, 1, frames))
        return self._generate(z, label, truncation)


@dataclass
class Loaded:
    """A sampler ready to draw from, and what its source is."""

    info: SourceInfo
    sampler: Sampler  # BSAAdapter, CGANSampler or BigGANSampler


class SamplerCache:
    """The last few loaded samplers, since loading BigGAN's weights takes seconds; one per UI tab, not global.

    A run's entry is keyed by its checkpoint file's modification time, so a newer checkpoint is loaded afresh.
    """

    def __init__(self, device: str | torch.device | None = None, *, size: int = 2):
        from studio.train import resolve_device

        self.device = torch.device(device) if device is not None else resolve_device("auto")
        self.size = size
        self._entries: OrderedDict[tuple, Loaded] = OrderedDict()
        self._lock = threading.Lock()

    def _key(self, ws: Workspace, source: str) -> tuple:
        kind, name = _parse(source)
        if kind == "biggan":
            return (source,)
        ckpts = RunFolder(ws.run_dir(name)).checkpoints_dir
        stamps = [p.stat().st_mtime_ns for p in (ckpts / "latest.safetensors", ckpts / "previous.safetensors") if p.exists()]
        return (str(ws.run_dir(name)), stamps[0] if stamps else None)

    def get(self, ws: Workspace, source: str | None) -> Loaded:
        with self._lock:  # one load at a time: two threads loading the same weights would only waste memory
            key = self._key(ws, source)
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            loaded = self._load(ws, source)
            self._entries[key] = loaded
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
            return loaded

    def _load(self, ws: Workspace, source: str) -> Loaded:
        from studio.methods import load_run_sampler
        from studio.models.biggan import load_biggan

        kind, name = _parse(source)
        if kind == "biggan":
            return Loaded(SourceInfo(source, name, "biggan", imagenet_classes()),
                          BigGANSampler(load_biggan(name, device=self.device)))
        sampler, _, ckpt = load_run_sampler(RunFolder(ws.run_dir(name)), self.device)
        return Loaded(_run_info(name, ckpt.meta), sampler)


# -- results ---------------------------------------------------------------------------------------

def _check_range(value: int, low: int, high: int, what: str) -> int:
    if not low <= int(value) <= high:
        raise UserError(f"{what} must be between {low} and {high}, not {value}.")
    return int(value)


def _check_seed(seed: int) -> int:
    return _check_range(seed, 0, 2**31 - 1, "The seed")


def _check_truncation(info: SourceInfo, truncation: float | None) -> float:
    truncation = info.truncation if truncation is None else float(truncation)
    if not 0 < truncation <= 2:
        raise UserError(f"Truncation must be above 0 and at most 2, not {truncation}.")
    return truncation


def _check_label(info: SourceInfo, label: str | None) -> str:
    label = label or info.classes[0]
    if label not in info.classes:
        raise UserError(f"{info.name} knows the classes {', '.join(info.classes[:12])}"
                        f"{', …' if len(info.classes) > 12 else ''}; there is no class {label!r}.")
    return label


def _stem(info: SourceInfo, what: str, **settings: Any) -> str:
    digest = hashlib.sha1(json.dumps([info.source, info.saved, settings], sort_keys=True, default=str).encode()).hexdigest()
    return f"{info.tag}-{what}-{digest[:8]}"


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "class"


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class GridResult:
    images: torch.Tensor          # [len(classes) · n, 3, H, W] in [-1, 1], class by class
    classes: list[str]
    n: int
    grid: Image.Image             # rows are classes, columns seeds
    grid_path: Path
    zip_path: Path
    captions: list[str] = field(default_factory=list)


def generate_grid(ws: Workspace, loaded: Loaded, classes: Sequence[str] | None, *, n: int, seed: int,
                  truncation: float | None = None) -> GridResult:
    """n images per class from one seed, the same n latents in every row, saved as a grid PNG and a zip of PNGs."""
    info = loaded.info
    classes = list(classes or [])
    if not classes:
        raise UserError("Pick at least one class to generate.")
    classes = [_check_label(info, c) for c in dict.fromkeys(classes)]
    n, seed = _check_range(n, 1, MAX_PER_CLASS, "Images per class"), _check_seed(seed)
    truncation = _check_truncation(info, truncation)
    if n * len(classes) > MAX_IMAGES:
        raise UserError(f"At most {MAX_IMAGES} images at once: pick fewer classes or fewer images per class.")
    images = torch.cat([loaded.sampler.sample(n, label=c, seed=seed, truncation=truncation).float().cpu()
                        for c in classes])
    grid = image_grid(images, nrow=n)
    stem = _stem(info, f"seed{seed}-{n}x{len(classes)}", classes=classes, truncation=truncation)
    grid_path, zip_path = ws.exports / f"{stem}.png", ws.exports / f"{stem}-images.zip"
    write_bytes_atomic(grid_path, _png_bytes(grid))
    captions, buf = [], io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:  # PNGs are compressed already
        for k, img in enumerate(images):
            label, i = classes[k // n], k % n
            captions.append(f"{label} · {i}")
            # A fixed date keeps the zip's bytes a function of the images alone.
            zf.writestr(zipfile.ZipInfo(f"{_safe(label)}_seed{seed}_{i:02d}.png", date_time=(2020, 1, 1, 0, 0, 0)),
                        _png_bytes(to_pil(img)))
    write_bytes_atomic(zip_path, buf.getvalue())
    return GridResult(images, classes, n, grid, grid_path, zip_path, captions)


def save_gif(frames: torch.Tensor, path: Path, *, fps: float = 12, pingpong: bool = True) -> Path:
    """An animated GIF that loops forever; ping-pong plays the frames forward then back, so the loop has no jump."""
    images = [to_pil(f) for f in frames.float().cpu()]
    if pingpong and len(images) > 2:
        images += images[-2:0:-1]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    write_bytes_atomic(path, buf.getvalue())
    return path


@dataclass(frozen=True)
class Interpolation:
    frames: torch.Tensor  # [frames, 3, H, W], the first at a, the last at b
    gif_path: Path


def interpolate(ws: Workspace, loaded: Loaded, *, between: str, a: int, b: int, frames: int = 16,
                label: str | None = None, truncation: float | None = None, fps: float = 12) -> Interpolation:
    """A GIF walking the latent space: between two seeds' latents (`between="seeds"`, in class `label`), or
    between two training images' learned latents and classes (`between="images"`, BSA runs only)."""
    info = loaded.info
    frames = _check_range(frames, 2, MAX_FRAMES, "The number of frames")
    truncation = _check_truncation(info, truncation)
    if between == "seeds":
        label = _check_label(info, label)
        a, b = _check_seed(a), _check_seed(b)
        images = loaded.sampler.interpolate_seeds(a, b, frames, label=label, truncation=truncation)
        stem = _stem(info, f"seeds{a}-{b}-{_safe(label)}", frames=frames, truncation=truncation)
    elif between == "images":
        if "reconstruct" not in info.can:
            raise UserError("Only BSA runs learn a latent per training image: interpolate between two seeds instead.")
        last = info.n_images - 1
        a, b = (_check_range(x, 0, last, "Training image numbers") for x in (a, b))
        images = loaded.sampler.interpolate_images(a, b, frames)
        stem = _stem(info, f"images{a}-{b}", frames=frames)
    else:
        raise UserError(f"Interpolate between seeds or images, not {between!r}.")
    return Interpolation(images.float().cpu(), save_gif(images, ws.exports / f"{stem}.gif", fps=fps))


def compare_with_base(loaded: Loaded, *, imagenet_class: str | None = None, label: str | None = None, n: int = 4,
                      seed: int = 0, truncation: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The base BigGAN and the fine-tuned BSA model from the same latents: (base, fine-tuned), each [n, 3, H, W].

    The base gets the one-hot ImageNet class `imagenet_class` (default: the class the run's embedding started
    from, else class 0), the fine-tuned model the run's class `label`.
    """
    info = loaded.info
    if "compare" not in info.can:
        raise UserError("Side by side compares a BSA run with the BigGAN it was fine-tuned from: pick a BSA run.")
    label, n, seed = _check_label(info, label), _check_range(n, 1, MAX_PER_CLASS, "Images"), _check_seed(seed)
    index = imagenet_index(imagenet_class) if imagenet_class else (info.class_init or 0)
    truncation = _check_truncation(info, truncation)
    tuned = loaded.sampler.sample(n, label=label, seed=seed, truncation=truncation)
    base = loaded.sampler.sample_base(n, imagenet_class=index, seed=seed, truncation=truncation)
    return base.float().cpu(), tuned.float().cpu()
