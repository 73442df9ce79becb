"""A dataset is a folder: `dataset.json` (the manifest), `images/` (square PNGs) and `originals/` (as imported).

Every change goes through `Dataset`, which rewrites the manifest atomically, so the CLI, the
UI and training all see the same state. Originals are kept so a crop can be redone.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import time
import unicodedata
import zipfile
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Iterable

from PIL import Image

from studio.data import limits
from studio.data.decode import (
    CROP_MODES, DEFAULT_MIN_SIDE, PATCH_LAYOUTS, Rejected, decode_image, hamming, load_rgb, open_image,
    perceptual_hash, plan_crops, png_bytes, render_crop,
)
from studio.data.sources import Source, iter_payloads, size_text
from studio.errors import UserError
from studio.workspace import Workspace, validate_name, write_json_atomic

MANIFEST = "dataset.json"
REMOVED = ".removed"  # the last remove's files and entries, for undo_remove
UNLABELED = "unlabeled"
DEFAULT_NEAR_DUPLICATE_DISTANCE = 4  # pHash bits; re-encodes and resizes land at 0-2, distinct paintings at ~20+


@dataclass
class CropSettings:
    """How originals become training images; stored in the manifest and applied to every image."""

    size: int = 256
    crop: str = "center"
    patches: int = 4
    patch_layout: str = "tiled"

    def __post_init__(self) -> None:
        if self.crop not in CROP_MODES:
            raise UserError(f"Unknown crop mode {self.crop!r}: choose one of {', '.join(CROP_MODES)}.")
        if self.patch_layout not in PATCH_LAYOUTS:
            raise UserError(f"Unknown patch layout {self.patch_layout!r}: choose one of {', '.join(PATCH_LAYOUTS)}.")
        if not 16 <= self.size <= 1024:
            raise UserError(f"Image size {self.size} is out of range: choose 16 to 1024 pixels.")
        if not 1 <= self.patches <= 64:
            raise UserError(f"Patches per image must be between 1 and 64, not {self.patches}.")


@dataclass
class ImportReport:
    """What an import did, file by file; `to_json()` is the CLI's `--json` contract."""

    dataset: str
    imported: list[str] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    duplicates: list[dict[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    # One sentence for the user when files were left out by an import- or dataset-wide limit; "" otherwise.
    limit_notice: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class _ImportBounds:
    """What one import has used of the import-wide limits (studio/data/limits.py), and the dataset-wide one.

    Each check raises Rejected when a file would go past a bound, and remembers which bound turned it away,
    so the report can say in one sentence why files a user expected are missing.
    """

    def __init__(self, held_bytes: int = 0) -> None:
        self.files = self.bytes = self.pixels = 0
        self.held_bytes = held_bytes  # what the workspace's datasets already hold on disk
        self.turned_away: Counter[str] = Counter()

    def _refuse(self, bound: str, reason: str) -> None:
        self.turned_away[bound] += 1
        raise Rejected(reason)

    def room_in_dataset(self, held: int, adding: int) -> None:
        if held + adding > limits.MAX_DATASET_IMAGES:
            what = f"{held:,} images" if adding == 1 else f"{held:,} images, and this one would add {adding} crops"
            self._refuse("dataset", f"dataset full ({what}; the limit is {limits.MAX_DATASET_IMAGES:,} per dataset)")

    def take_file(self, size: int) -> None:
        """Before reading a file: the import's file count and bytes."""
        if self.files >= limits.MAX_IMPORT_FILES:
            self._refuse("files", f"import limit reached (this import already read {self.files:,} files; "
                                  f"the limit is {limits.MAX_IMPORT_FILES:,} per import)")
        if self.bytes + size > limits.MAX_IMPORT_BYTES:
            self._refuse("bytes", f"import limit reached ({size_text(size)} more would pass "
                                  f"{size_text(limits.MAX_IMPORT_BYTES)} read in one import)")
        quota = limits.MAX_WORKSPACE_BYTES
        if quota is not None and self.held_bytes + self.bytes + size > quota:
            self._refuse("workspace", f"workspace full ({size_text(size)} more would pass the {size_text(quota)} this "
                                      "shared studio keeps for each visitor's datasets; delete a dataset to make room)")
        self.files += 1
        self.bytes += size

    def take_pixels(self, width: int, height: int) -> None:
        """Before decoding an image: the import's decoded pixels."""
        if self.pixels + width * height > limits.MAX_IMPORT_PIXELS:
            self._refuse("pixels", f"import limit reached ({width}×{height} more pixels would pass "
                                   f"{limits.MAX_IMPORT_PIXELS:,} decoded in one import)")
        self.pixels += width * height

    def notice(self) -> str:
        if not self.turned_away:
            return ""
        bounds = {"files": f"{limits.MAX_IMPORT_FILES:,} files", "bytes": f"{size_text(limits.MAX_IMPORT_BYTES)}",
                  "pixels": f"{limits.MAX_IMPORT_PIXELS:,} pixels"}
        parts = [f"{bounds[b]} per import" for b in bounds if b in self.turned_away]
        if "dataset" in self.turned_away:
            parts.append(f"{limits.MAX_DATASET_IMAGES:,} images per dataset")
        if "workspace" in self.turned_away:
            parts.append(f"{size_text(limits.MAX_WORKSPACE_BYTES or 0)} of datasets per visitor")
        n = sum(self.turned_away.values())
        return (f"{n:,} {'file was' if n == 1 else 'files were'} left out to stay within the upload limits "
                f"(at most {'; '.join(parts)}); each is listed as rejected with its reason.")


class Dataset:
    """One dataset folder and its manifest."""

    def __init__(self, path: Path, manifest: dict):
        self.path = path
        self.manifest = manifest

    # -- opening and listing -------------------------------------------------------------
    @classmethod
    def open(cls, ws: Workspace, name: str) -> "Dataset":
        path = ws.dataset_dir(name)
        try:
            manifest = json.loads((path / MANIFEST).read_text())
            problem = _manifest_problem(manifest)
        except FileNotFoundError:
            raise UserError(f"There is no dataset named {name!r}; create it by importing images or with `dataset demo`.") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            problem = str(exc)
        if problem:
            raise UserError(f"The {MANIFEST} of dataset {name!r} is damaged ({problem}): restore it from a backup, "
                            f"or delete the folder {path} to start the dataset over.")
        return cls(path, manifest)

    @classmethod
    def open_or_create(cls, ws: Workspace, name: str, settings: CropSettings | None = None) -> "Dataset":
        path = ws.dataset_dir(name)
        if (path / MANIFEST).exists():
            ds = cls.open(ws, name)
            if settings is not None and not ds.images:
                ds.manifest["crop"] = asdict(settings)  # nothing stored yet: the new settings simply apply
            elif settings is not None and asdict(settings) != ds.manifest["crop"]:
                raise UserError(
                    f"Dataset {name!r} already stores {ds.settings.size} px images with crop {ds.settings.crop!r}; "
                    "import with its settings, or change them for all images with `dataset recrop`."
                )
            return ds
        now = time.time()
        ds = cls(path, {"name": name, "version": 1, "created": now, "updated": now,
                        "crop": asdict(settings or CropSettings()), "images": []})
        (path / "images").mkdir(parents=True, exist_ok=True)
        (path / "originals").mkdir(parents=True, exist_ok=True)
        ds.save()
        return ds

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def settings(self) -> CropSettings:
        return CropSettings(**self.manifest["crop"])

    @property
    def images(self) -> list[dict]:
        return self.manifest["images"]

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(img["label"] for img in self.images).items()))

    def image_path(self, entry: dict) -> Path:
        return self.path / entry["file"]

    def fingerprint(self) -> str:
        """Changes whenever the training data changes (images, labels or crop settings)."""
        h = hashlib.sha256(json.dumps(self.manifest["crop"], sort_keys=True).encode())
        for img in self.images:
            h.update(f"{img['id']}:{img['label']};".encode())
        return h.hexdigest()[:16]

    def summary(self) -> dict:
        return {"dataset": self.name, "images": len(self.images), "counts": self.counts(),
                "crop": self.manifest["crop"], "path": str(self.path), "fingerprint": self.fingerprint()}

    def load_tensors(self, resolution: int):
        """All images as one float tensor [N, 3, R, R] in [-1, 1], integer labels, and the sorted class names."""
        import numpy as np
        import torch

        if not self.images:
            raise UserError(f"Dataset {self.name!r} is empty: import images into it first.")
        global _last_loaded
        key, last = (str(self.path), self.fingerprint(), resolution), _last_loaded  # read once: other threads set it
        if last is None or last[0] != key:
            classes = sorted(self.counts())
            arrays = []
            for img in self.images:
                pic = Image.open(self.image_path(img)).convert("RGB")
                if pic.size != (resolution, resolution):
                    pic = pic.resize((resolution, resolution), Image.Resampling.LANCZOS)
                arrays.append(np.asarray(pic))
            images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
            labels = torch.tensor([classes.index(img["label"]) for img in self.images], dtype=torch.long)
            if images.numel() * images.element_size() > KEEP_LOADED_BYTES:
                return images, labels, classes
            last = _last_loaded = key, (images, labels, classes)
        images, labels, classes = last[1]
        return images.clone(), labels.clone(), list(classes)  # the caller's own: the kept copy stays as loaded

    def save(self) -> None:
        self.manifest["updated"] = time.time()
        write_json_atomic(self.path / MANIFEST, self.manifest)

    # -- adding ------------------------------------------------------------------------------
    def import_paths(self, paths: Iterable[Path | str | Source], *, label: str | None = None,
                     labels_from_folders: bool = False, min_side: int = DEFAULT_MIN_SIDE, max_pixels: int | None = None,
                     near_duplicate_distance: int = DEFAULT_NEAR_DUPLICATE_DISTANCE) -> ImportReport:
        """Import files, folders and zips, or any studio.data.sources.Source; every item ends up imported, rejected
        or a duplicate, by name. An item's label: `label` if given, else the source's own, else (with
        labels_from_folders) its folder's, else unlabeled.

        Each bound in studio/data/limits.py is checked before the work it bounds: a file past the import's
        file or byte budget, or bound for a full dataset, is refused unread; one past the pixel budget, undecoded.
        Files within the bounds still import. `max_pixels` defaults to limits.MAX_IMAGE_PIXELS.
        """
        if label is not None:
            label = validate_label(label)
        report = ImportReport(self.name)
        quota = limits.MAX_WORKSPACE_BYTES
        bounds = _ImportBounds(_folder_bytes(self.path.parent) if quota is not None else 0)
        by_sha = {img["sha256"]: img for img in self.images}
        phashes = {int(img["phash"], 16): img for img in self.images}
        for payload in iter_payloads(paths):
            if payload.rejected:
                report.rejected.append({"file": payload.name, "reason": payload.rejected})
                continue
            try:
                bounds.room_in_dataset(len(self.images), 1)
                bounds.take_file(payload.size)
                data = payload.read()
                sha = hashlib.sha256(data).hexdigest()
                if sha in by_sha:
                    report.duplicates.append({"file": payload.name, "duplicate_of": by_sha[sha]["source"], "kind": "exact"})
                    continue
                img = open_image(data, min_side=min_side, max_pixels=max_pixels)
                bounds.take_pixels(*img.size)
                img = load_rgb(img)
                ph = perceptual_hash(img)
                near = _nearest(ph, phashes, near_duplicate_distance)
                if near is not None:
                    report.duplicates.append({"file": payload.name, "duplicate_of": near["source"], "kind": "near"})
                    continue
                bounds.room_in_dataset(len(self.images), len(self._crops(img, sha)))  # patches: one file, several images
            except Rejected as exc:
                report.rejected.append({"file": payload.name, "reason": str(exc)})
                continue
            image_label = (label or (payload.label and _safe_label(payload.label))
                           or (labels_from_folders and payload.folder_label and _safe_label(payload.folder_label)) or UNLABELED)
            entries = self._add(img, data, payload.name, sha, ph, image_label, payload.provenance)
            by_sha[sha] = phashes[ph] = entries[0]
            report.imported.append(payload.name)
        self.save()
        report.counts = self.counts()
        report.limit_notice = bounds.notice()
        return report

    def add_image(self, img: Image.Image, source: str, label: str, png: bytes | None = None) -> list[dict]:
        """Add an in-memory RGB image (e.g. generated demo art); stored as PNG like any original. `png`, when given, is
        `img` as PIL saves a PNG (the painting cache's file), so it is not encoded again."""
        png = png_bytes(img) if png is None else png
        return self._add(img, png, source, hashlib.sha256(png).hexdigest(), perceptual_hash(img), validate_label(label),
                         data_is_img_png=True)

    def _add(self, img: Image.Image, data: bytes, source: str, sha: str, ph: int, label: str,
             provenance: dict | None = None, data_is_img_png: bool = False) -> list[dict]:
        original = f"originals/{sha[:16]}.{_extension(data)}"
        (self.path / original).write_bytes(data)
        entries = []
        for crop in self._crops(img, sha):
            entry = {"id": sha[:12] if crop.patch is None else f"{sha[:12]}-p{crop.patch}", "label": label,
                     "source": source, "original": original, "sha256": sha, "phash": f"{ph:016x}",
                     "box": list(crop.box), "patch": crop.patch, **({"provenance": provenance} if provenance else {})}
            entry["file"] = f"images/{entry['id']}.png"
            if data_is_img_png and crop.box == (0, 0, self.settings.size, self.settings.size) == (0, 0, *img.size):
                (self.path / entry["file"]).write_bytes(data)  # the whole image at its own size: the same PNG
            else:
                render_crop(img, crop, self.settings.size).save(self.path / entry["file"])
            entries.append(entry)
        self.images.extend(entries)
        return entries

    def _crops(self, img: Image.Image, sha: str):
        s = self.settings
        # Random patches are seeded by the file's hash: re-cropping gives the same patches.
        return plan_crops(img.width, img.height, size=s.size, crop=s.crop, patches=s.patches,
                          layout=s.patch_layout, seed=int(sha[:8], 16))

    # -- editing -------------------------------------------------------------------------------
    def relabel(self, ids: Iterable[str], label: str) -> int:
        label, wanted = validate_label(label), set(ids)
        changed = 0
        for img in self.images:
            if img["id"] in wanted:
                img["label"], changed = label, changed + 1
        self._check_found(wanted, changed)
        self.save()
        return changed

    def remove(self, ids: Iterable[str]) -> int:
        """Take images out of the dataset. Their files move to REMOVED, which holds the last remove only, so
        `undo_remove` can bring it back; the remove before it is gone for good."""
        wanted = set(ids)
        keep = [img for img in self.images if img["id"] not in wanted]
        removed = [(i, img) for i, img in enumerate(self.images) if img["id"] in wanted]
        self._check_found(wanted, len(removed))
        trash = self.path / REMOVED
        shutil.rmtree(trash, ignore_errors=True)
        trash.mkdir()
        self.manifest["images"] = keep
        self.save()
        still_used = {img["original"] for img in keep}
        files = {img["file"] for _, img in removed} | {img["original"] for _, img in removed if img["original"] not in still_used}
        for rel in files:
            if (self.path / rel).exists():
                (trash / rel).parent.mkdir(parents=True, exist_ok=True)
                (self.path / rel).replace(trash / rel)
        write_json_atomic(trash / "removed.json", {"images": [[i, img] for i, img in removed], "files": sorted(files)})
        return len(removed)

    def undo_remove(self) -> list[dict]:
        """Put back the images of the last remove, at their places; the entries restored."""
        trash = self.path / REMOVED
        try:
            record = json.loads((trash / "removed.json").read_text())
        except (OSError, ValueError):
            raise UserError(f"Nothing to undo in dataset {self.name!r}: no image was removed since it was last "
                            "changed this way.") from None
        for rel in record["files"]:
            if _STORED_FILE.fullmatch(rel) and (trash / rel).exists():  # the record names only files we moved
                (trash / rel).replace(self.path / rel)
        ids = {img["id"] for img in self.images}
        restored = [img for _, img in record["images"] if img["id"] not in ids]
        for i, img in record["images"]:
            if img in restored:
                self.images.insert(min(i, len(self.images)), img)
        self.save()
        shutil.rmtree(trash, ignore_errors=True)
        return restored

    def _check_found(self, wanted: set[str], found: int) -> None:
        if found == 0 and wanted:
            raise UserError(f"No image in dataset {self.name!r} has the id {sorted(wanted)[0]!r}.")

    def recrop(self, settings: CropSettings) -> int:
        """Redo every crop from the originals with new settings; each original keeps its (first) label."""
        firsts: dict[str, dict] = {}
        for img in self.images:
            firsts.setdefault(img["sha256"], img)
        self.manifest["crop"] = asdict(settings)
        new_images: list[dict] = []
        staging = self.path / "images.new"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for sha, first in firsts.items():
            img = decode_image((self.path / first["original"]).read_bytes(), min_side=1, max_pixels=10**12)
            for crop in self._crops(img, sha):
                entry = {**first, "box": list(crop.box), "patch": crop.patch,
                         "id": sha[:12] if crop.patch is None else f"{sha[:12]}-p{crop.patch}"}
                entry["file"] = f"images/{entry['id']}.png"
                render_crop(img, crop, settings.size).save(staging / Path(entry["file"]).name)
                new_images.append(entry)
        # Swap folders only after every crop succeeded, so a failure leaves the old dataset intact.
        old = self.path / "images.old"
        shutil.rmtree(old, ignore_errors=True)
        (self.path / "images").rename(old)
        staging.rename(self.path / "images")
        self.manifest["images"] = new_images
        self.save()
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(self.path / REMOVED, ignore_errors=True)  # crops of the old settings: nothing to undo into
        return len(new_images)

    def export_zip(self, out: Path) -> Path:
        """Write an ImageFolder zip (`label/<source file>.png`) with the manifest, importable with --labels-from-folders.

        Images are named by the file they came from (`export_name`), so people recognise them."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        taken: set[str] = set()
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:  # PNGs are already compressed
            zf.writestr(f"{self.name}/{MANIFEST}", json.dumps(self.manifest, indent=1))
            for img in self.images:
                name = f"{img['label']}/{export_name(img)}"
                if name in taken:  # two sources with one name (from different folders): the id tells them apart
                    name = f"{img['label']}/{export_name(img)[:-4]}-{img['id']}.png"
                taken.add(name)
                zf.write(self.image_path(img), f"{self.name}/{name}")
        tmp.replace(out)
        return out


# The last load_tensors result, when small: a job decodes its images for the preset's look at their detail (32 px) and
# again to train at 32 px, 0.45 s each on a 2-core EPYC; an Evaluate after another on the same dataset, the same.
KEEP_LOADED_BYTES = 64 << 20
_last_loaded = None

_KINDS = {str: "text", int: "a whole number", dict: "an object", list: "a list"}
_ENTRY_TEXT = ("id", "label", "source", "sha256", "phash", "file", "original")
_HEX = re.compile(r"[0-9a-f]{8,64}")
_STORED_FILE = re.compile(r"(images|originals)/\w[\w.-]*")  # what _add writes; never a path out of the folder


def display_name(entry: dict) -> str:
    """How people know an image: the name of the file it came from, and its patch if it is one of several."""
    name = Path(entry["source"]).name or entry["id"]
    return name if entry.get("patch") is None else f"{name} (patch {entry['patch'] + 1})"


def export_name(entry: dict) -> str:
    """A safe file name for an image in an export: its source file's stem (and patch), as .png."""
    stem = re.sub(r"[^\w.-]+", "_", Path(entry["source"]).stem).strip("._") or entry["id"]
    return f"{stem}.png" if entry.get("patch") is None else f"{stem}-p{entry['patch'] + 1}.png"


def _manifest_problem(manifest: object) -> str | None:
    """What makes a parsed manifest unusable, as a phrase ("images is not a list"), or None if its shape is right.

    Checks everything the code reads from a manifest, so a damaged one fails here, as one sentence, not later.
    """
    def kind(value: object, want: type, what: str) -> str | None:
        ok = isinstance(value, want) and not isinstance(value, bool)
        return None if ok else f"{what} is {'missing' if value is None else 'not ' + _KINDS[want]}"

    if not isinstance(manifest, dict):
        return "it is not a JSON object"
    problem = (kind(manifest.get("name"), str, "name") or kind(manifest.get("crop"), dict, "crop")
               or kind(manifest.get("images"), list, "images"))
    if problem:
        return problem
    crop = manifest["crop"]
    for f in fields(CropSettings):
        if problem := kind(crop.get(f.name), type(f.default), f"crop.{f.name}"):
            return problem
    if unknown := set(crop) - {f.name for f in fields(CropSettings)}:
        return f"crop has an unknown setting {sorted(unknown)[0]!r}"
    try:
        CropSettings(**crop)
    except UserError as exc:
        return str(exc).rstrip(".")
    for i, img in enumerate(manifest["images"]):
        if not isinstance(img, dict):
            return f"images[{i}] is not an object"
        for key in _ENTRY_TEXT:
            if problem := kind(img.get(key), str, f"images[{i}].{key}"):
                return problem
        if not (_HEX.fullmatch(img["sha256"]) and _HEX.fullmatch(img["phash"])):
            return f"images[{i}] has a sha256 or phash that is not a hex digest"
        if not (_STORED_FILE.fullmatch(img["file"]) and _STORED_FILE.fullmatch(img["original"])):
            return f"images[{i}] names a file outside images/ and originals/"
    return None


def import_into(ws: Workspace, name: str, paths: Iterable[Path | str | Source], *, settings: CropSettings | None = None,
                label: str | None = None, **options) -> tuple[Dataset, ImportReport]:
    """Import paths or sources (studio.data.sources) into dataset `name`, creating it if needed; a new dataset that
    received nothing is not left behind."""
    if label is not None:
        validate_label(label)
    is_new = not (ws.dataset_dir(name) / MANIFEST).exists()
    ds = Dataset.open_or_create(ws, name, settings)
    report = ds.import_paths(paths, label=label, **options)
    if is_new and not ds.images:
        shutil.rmtree(ds.path, ignore_errors=True)
    return ds, report


def _extension(data: bytes) -> str:
    fmt = Image.open(io.BytesIO(data)).format or "bin"
    return {"JPEG": "jpg", "MPO": "jpg"}.get(fmt, fmt.lower())


def _nearest(ph: int, known: dict[int, dict], max_distance: int) -> dict | None:
    if max_distance <= 0:
        return None
    best = min(known, key=lambda k: hamming(ph, k), default=None)
    return known[best] if best is not None and hamming(ph, best) <= max_distance else None


def _safe_label(label: str) -> str:
    """A folder name as a label: "Pop Art" becomes "Pop_Art", so classes with spaces are not all merged into unlabeled."""
    ascii_name = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_name).replace("..", "_").strip("._-")[:64]
    try:
        return validate_label(safe)
    except UserError:
        return UNLABELED


def validate_label(label: str) -> str:
    """Labels become folder names on export, so they follow the same rules as dataset names."""
    return validate_name(label.strip(), "label")


def list_datasets(ws: Workspace) -> list[dict]:
    """Summaries of every dataset in the workspace, by name; damaged manifests are listed with their error."""
    out = []
    for path in sorted(p for p in ws.datasets.iterdir() if (p / MANIFEST).exists()):
        try:
            out.append(Dataset.open(ws, path.name).summary())
        except UserError as exc:
            out.append({"dataset": path.name, "error": str(exc)})
    return out


def create_demo_dataset(ws: Workspace, name: str, *, per_class: int = 40, seed: int = 0, size: int = 256,
                        family: str = "demo", split: str | None = None) -> Dataset:
    """A dataset of art generated by our own code (studio.data.families; the demo by default), so the studio works
    offline. `split` ("train" or "heldout") takes one of two disjoint halves, to judge a model on images it never saw."""
    from studio.data.paintings import painted

    if not 1 <= per_class <= 500:
        raise UserError(f"Images per class must be between 1 and 500, not {per_class}.")
    images = painted(family, per_class, seed, size, split)  # a bad name: nothing made
    ds = Dataset.open_or_create(ws, name)
    if ds.images:
        raise UserError(f"Dataset {name!r} already exists and is not empty; choose another name for the demo.")
    ds.manifest["crop"] = asdict(CropSettings(size=size))
    for label, filename, img, png in images:
        ds.add_image(img, f"{family}/{filename}", label, png)
    ds.manifest["demo"] = {"per_class": per_class, "seed": seed, "family": family, "split": split}
    ds.save()
    return ds
