"""Import art-movement classes from an image dataset on the Hugging Face Hub (WikiArt, `huggan/wikiart`, by default)
or from a local folder in the same layout, reading only what is needed.

A collection is parquet shards (`data/<split>-*.parquet`, the Hub's layout: an image column of {bytes, path} and
class-label columns whose names are in the schema's Hugging Face metadata or the card's front matter) or an image
folder (`<split>/<class>/<file>`). An import asks for N images of some classes of one label column. It reads that
column first (one small chunk per row group, none where the row group's statistics say it holds a single class), then
fetches only the units that hold wanted rows (a parquet row group, read whole; or one image file), the unit holding
the most still-wanted rows first, and stops when every class has N. Each pick is a `Payload` into the dataset's one
import pipeline (decode checks, crop, duplicates, the report) carrying its provenance (repo, revision, file, row and
the row's other labels, such as the artist), kept in the manifest.

Resume: the dataset's folder keeps `.hub/`: the label index, the rows fetched but not yet imported (their bytes) and
the rows done. An import that is killed and run again fetches nothing twice; a finished one removes the rows and the
progress (the label index stays, so importing other classes later reads no labels again).

The Hub is read with its own clients (huggingface_hub's HfApi and HfFileSystem; pyarrow for parquet). A local folder
goes through the same code with fsspec's local filesystem.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import os
import random
import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Callable, Iterator

from studio.data import limits
from studio.data.dataset import MANIFEST, CropSettings, Dataset, ImportReport
from studio.data.decode import DEFAULT_MIN_SIDE
from studio.data.sources import Payload, size_text
from studio.errors import UserError
from studio.workspace import Workspace, write_json_atomic

WIKIART = "huggan/wikiart"
STATE = ".hub"  # in the dataset's folder: the label index, the progress and the rows fetched but not yet imported
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
SPLIT_NAMES = ("train", "test", "validation", "valid", "val", "dev")
# Rows staged beyond what a class still needs: a pick the import rejects (corrupt, a duplicate) is then replaced
# from the same fetch instead of fetching its row group again.
SPARE = 2
CHECKPOINT_ROWS = 10  # picks between saves of the manifest and the progress (each save is two fsyncs)
# An import gives up after this many picks in a row were turned away (full dataset, a collection of broken images),
# rather than fetch row group after row group for nothing.
GIVE_UP_AFTER = 50
# Bytes one import fetches at most, and the largest row group it reads (a row group is held in memory). WikiArt's
# row groups are ~40 MB; 100 Ukiyo-e prints scattered one per row group would be ~4 GB.
MAX_FETCH_BYTES = 16 * 1024**3
MAX_UNIT_BYTES = 2 * 1024**3
MAX_LISTED_FILES = 300_000  # files a local collection may hold (WikiArt as an image folder: 81,444)
LABEL_WORKERS = 8  # shards whose labels are read at once from the Hub (many small range requests, network-bound)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_PROGRESS_EVERY_S = 0.25

Progress = Callable[..., None]  # (text) for a caller; the engine's own throttle also takes force=


# -- what was read ---------------------------------------------------------------------------------------
@dataclass
class FetchStats:
    """What an import or a listing read from the collection, for the report and for tests that bound it."""

    label_chunks: int = 0  # label-column chunks read (one per row group its statistics do not settle)
    label_rows: int = 0  # label values those chunks held
    units: int = 0  # row groups (or image files) fetched for their images
    rows: int = 0  # rows those units hold: a row group is read whole
    bytes: int = 0  # bytes read from the collection: footers, labels and images
    seconds: float = 0.0
    fetched: list[str] = field(default_factory=list)  # the units fetched, in order
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:  # the label scan reads shards from several threads
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def to_json(self) -> dict:
        return {"label_chunks": self.label_chunks, "label_rows": self.label_rows, "units": self.units,
                "rows": self.rows, "bytes": self.bytes, "seconds": round(self.seconds, 3), "fetched": list(self.fetched)}


class _Counted(io.RawIOBase):
    """A file that counts the bytes read through it (pyarrow reads parquet through this)."""

    def __init__(self, f: BinaryIO, stats: FetchStats):
        self._f, self._stats = f, stats

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._stats.add(bytes=len(data))
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


# -- a collection: the Hub or a folder ---------------------------------------------------------------------
class Collection:
    """An image dataset in the Hub's layout: its files (paths relative to its root, with sizes), card and licence.

    On the Hub it is pinned to the commit it had when opened, so its rows cannot change under an import."""

    def __init__(self, repo: str, fs, root: str, files: dict[str, int], revision: str, card_text: str | None,
                 stats: FetchStats, *, on_hub: bool = False, open_options: dict | None = None):
        self.repo, self.fs, self.root, self.files, self.revision = repo, fs, root, files, revision
        self.stats, self.on_hub, self.open_options = stats, on_hub, open_options or {}
        self.card = _front_matter(card_text)

    def open(self, rel: str) -> BinaryIO:
        # On the Hub, the size the listing gave spares a metadata request per open (a shard is opened per fetch).
        sized = {"size": self.files[rel]} if self.on_hub and self.files.get(rel) else {}
        with _reading(self):
            return _Counted(self.fs.open(f"{self.root}/{rel}", "rb", **self.open_options, **sized), self.stats)

    @property
    def licence(self) -> str:
        """The collection's licence as its card states it; an unknown one leaves the works their authors'."""
        stated = self.card.get("license")
        stated = ", ".join(map(str, stated)) if isinstance(stated, list) else (str(stated) if stated else "")
        name = self.card.get("license_name")
        if stated.lower() in ("", "unknown", "other"):
            said = "unknown" if stated.lower() != "other" else f"other{f' ({name})' if name else ''}"
            return f"{said if stated else 'not stated on its card'}; © the original authors"
        return stated

    def glob(self, pattern: str) -> list[str]:
        """Files matching a Hub data_files pattern (`*` stays within a folder, `**` crosses folders)."""
        rx = re.compile("^" + re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
                        .replace(r"\*", "[^/]*").replace(r"\?", "[^/]") + "$")
        return sorted(f for f in self.files if rx.match(f))


def open_collection(repo: str | None, *, allow_local: bool = True) -> Collection:
    """The collection `repo` names: a local folder (when `allow_local`) or a Hub dataset id (owner/name).

    Offline, a missing repo, or a folder that is not there: UserError, one sentence."""
    repo = (repo or "").strip() or WIKIART
    stats = FetchStats()
    path = Path(repo).expanduser()
    if allow_local and path.is_dir():
        import fsspec

        files = {}
        root = path.resolve()
        for parent, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in names:
                full = Path(parent) / name
                if not name.startswith(".") and full.is_file() and not full.is_symlink():
                    files[full.relative_to(root).as_posix()] = full.stat().st_size
            if len(files) > MAX_LISTED_FILES:  # a home folder given by mistake: say so rather than walk it all
                raise UserError(f"{repo} holds more than {MAX_LISTED_FILES:,} files: give the collection's own folder "
                                "(the one with data/*.parquet and README.md).")
        signature = hashlib.sha1(json.dumps(sorted((f, s, int((root / f).stat().st_mtime)) for f, s in files.items()))
                                 .encode()).hexdigest()[:16]
        card = (root / "README.md").read_text(errors="replace") if "README.md" in files else None
        # Named by its resolved path, so "art/" and "./art" are one collection to the dataset's provenance.
        return Collection(root.as_posix(), fsspec.filesystem("file"), root.as_posix(), files, f"local-{signature}",
                          card, stats)
    if not _HUB_ID.match(repo):
        if allow_local:
            raise UserError(f"{repo!r} is neither a folder here nor a Hugging Face dataset id like {WIKIART}.")
        raise UserError(f"{repo!r} is not a Hugging Face dataset id like {WIKIART} (a shared studio reads "
                        "collections from the Hub only, not from the server's folders).")
    return _open_hub(repo, stats)


def _open_hub(repo: str, stats: FetchStats) -> Collection:
    from huggingface_hub import HfApi, HfFileSystem

    from studio.models import reach

    if not reach.can_download():
        raise UserError(f"Cannot read {repo} from the Hugging Face Hub: {reach.why_not()}; connect to the internet, "
                        "or give a local folder in the same layout (data/*.parquet and its README.md).")
    with _hub_errors(repo):
        info = HfApi().dataset_info(repo, files_metadata=True)
        files = {s.rfilename: int(s.size or 0) for s in info.siblings or []}
        fs = HfFileSystem()
        root = f"datasets/{repo}@{info.sha}"
        card = None
        if "README.md" in files:
            with fs.open(f"{root}/README.md", "rb") as f:
                card = f.read().decode(errors="replace")
                stats.add(bytes=len(card))
    # A range request per read: pyarrow asks for exactly the column chunks it needs, and fsspec's default 5 MB
    # read-ahead would turn each small label read into megabytes.
    return Collection(info.id or repo, fs, root, files, info.sha, card, stats, on_hub=True,
                      open_options={"cache_type": "none", "block_size": 2**20})


class _hub_errors:
    """Turn what the Hub's clients raise into one sentence for the user."""

    def __init__(self, repo: str):
        self.repo = repo

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, (UserError, KeyboardInterrupt, SystemExit)):
            return False
        from huggingface_hub import errors

        if isinstance(exc, errors.OfflineModeIsEnabled):
            raise UserError(f"Cannot read {self.repo} from the Hugging Face Hub: HF_HUB_OFFLINE is set; unset it, or "
                            "give a local folder in the same layout.") from None
        if isinstance(exc, errors.GatedRepoError):
            raise UserError(f"{self.repo} is gated on the Hugging Face Hub: accept its terms on its page and log in "
                            "with `hf auth login`.") from None
        if isinstance(exc, errors.RepositoryNotFoundError):
            raise UserError(f"There is no dataset {self.repo} on the Hugging Face Hub (or it is private: log in with "
                            "`hf auth login`).") from None
        network = isinstance(exc, (OSError, TimeoutError)) or type(exc).__module__.split(".")[0].startswith("httpx")
        if network or isinstance(exc, errors.HfHubHTTPError):
            raise UserError(f"Reading {self.repo} from the Hugging Face Hub failed ({_short(exc)}); run it again: "
                            "what was fetched is kept and not fetched twice.") from None
        return False


def _reading(col: Collection):
    if col.on_hub:
        return _hub_errors(col.repo)
    return _local_errors(col.repo)


class _local_errors(_hub_errors):
    def __exit__(self, kind, exc, tb):
        if isinstance(exc, OSError):
            raise UserError(f"Cannot read {self.repo}: {_short(exc)}.") from None
        return False


def _short(exc: BaseException, width: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= width else text[: width - 1] + "…"


def _front_matter(text: str | None) -> dict:
    """The YAML front matter of a dataset card, or {} (no card, no front matter, or YAML that does not parse)."""
    if not text:
        return {}
    found = re.match(r"^\s*---\s*\n(.*?)\n---\s*(\n|$)", text, re.S)
    if not found:
        return {}
    import yaml

    try:
        data = yaml.safe_load(found.group(1))
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


# -- layouts: how rows are found, labelled and fetched ---------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    """What is fetched in one read: a parquet row group (all its rows), or one image file."""

    id: str  # "data/train-00000-of-00072.parquet@3", or the image file's path
    file: str
    group: int | None
    first_row: int  # the row number, in its file, of the unit's first row
    size: int  # bytes a fetch reads (compressed column chunks, or the file)
    labels: tuple[int, ...]  # per row: an index into the index's class names; -1 for a row without one

    def key(self, offset: int) -> str:
        return self.file if self.group is None else f"{self.file}#{self.first_row + offset}"


@dataclass
class LabelIndex:
    """Every row's class in one label column: what an import plans its reads from."""

    column: str
    classes: list[str]
    units: list[Unit]

    def counts(self) -> dict[str, int]:
        tally = [0] * len(self.classes)
        for unit in self.units:
            for label in unit.labels:
                if label >= 0:
                    tally[label] += 1
        return dict(zip(self.classes, tally))


@dataclass
class Row:
    """One fetched pick: its bytes (or why it has none), where it came from, and its class."""

    key: str
    label: str
    name: str
    data: bytes | None
    reason: str | None
    provenance: dict


class ParquetShards:
    """Parquet files as the Hub's `datasets` library writes them: an image column and class-label columns."""

    kind = "parquet"

    def __init__(self, col: Collection, files: list[str]):
        self.col, self.files = col, files
        self._schema = None
        self._footers: dict[str, Any] = {}  # each shard's footer, read once per import: a shard is opened per fetch

    @contextmanager
    def _opened(self, rel: str) -> Iterator:
        """The shard as a pyarrow ParquetFile, its reads counted; a damaged one is one sentence."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        f = self.col.open(rel)
        try:
            with _reading(self.col):
                try:
                    pf = pq.ParquetFile(f, metadata=self._footers.get(rel))
                    self._footers[rel] = pf.metadata
                    yield pf
                except pa.ArrowException as exc:
                    raise UserError(f"{rel} in {self.col.repo} is not a readable parquet file ({_short(exc)}).") from None
        finally:
            f.close()

    @property
    def schema(self):
        if self._schema is None:
            with self._opened(self.files[0]) as pf:
                self._schema = pf.schema_arrow
        return self._schema

    def features(self) -> dict[str, dict]:
        """The Hugging Face features of the columns: from the parquet schema's metadata, else the card's."""
        meta = (self.schema.metadata or {}).get(b"huggingface")
        if meta:
            try:
                features = json.loads(meta).get("info", {}).get("features", {})
                if isinstance(features, dict) and features:
                    return features
            except (ValueError, AttributeError):
                pass
        return _card_features(self.col.card)

    def image_column(self) -> str:
        import pyarrow as pa

        features = self.features()
        for name in self.schema.names:
            if isinstance(features.get(name), dict) and features[name].get("_type") == "Image":
                return name
        for name in self.schema.names:
            kind = self.schema.field(name).type
            if pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0:
                return name
        for name in ("image", "img"):
            if name in self.schema.names and pa.types.is_binary(self.schema.field(name).type):
                return name
        raise UserError(f"{self.col.repo} has no image column (one of Hugging Face's Image type, or a struct of "
                        "{bytes, path}): its columns are " + ", ".join(self.schema.names) + ".")

    def label_columns(self) -> dict[str, list[str] | None]:
        """Columns that can label images: class-label columns (with their names) and text columns (names found by
        reading them)."""
        import pyarrow as pa

        features, image = self.features(), self.image_column()
        out: dict[str, list[str] | None] = {}
        for name in self.schema.names:
            kind, feature = self.schema.field(name).type, features.get(name)
            if name == image:
                continue
            if isinstance(feature, dict) and feature.get("_type") == "ClassLabel" and pa.types.is_integer(kind):
                out[name] = [str(n) for n in feature.get("names") or []]
            elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
                out[name] = None
        return out

    def scan(self, column: str, on_progress: Progress | None, workers: int) -> LabelIndex:
        names = self.label_columns()[column]
        done = [0]

        def one(rel: str) -> list[tuple[int, int, int, list]]:
            with self._opened(rel) as pf:
                meta, groups, row = pf.metadata, [], 0
                leaf = next((i for i in range(meta.num_columns) if meta.schema.column(i).path == column), None)
                if leaf is None:
                    raise UserError(f"{rel} in {self.col.repo} has no column {column!r}, unlike its first shard.")
                for g in range(meta.num_row_groups):
                    group = meta.row_group(g)
                    n, st = group.num_rows, group.column(leaf).statistics
                    size = sum(group.column(i).total_compressed_size for i in range(group.num_columns))
                    if st is not None and st.has_min_max and st.has_null_count and st.null_count == 0 and st.min == st.max:
                        values = [st.min] * n  # one class in the whole row group: its statistics say so, no read
                    else:
                        values = pf.read_row_group(g, columns=[column]).column(0).to_pylist()
                        self.col.stats.add(label_chunks=1, label_rows=n)
                    groups.append((g, row, size, values))
                    row += n
            done[0] += 1
            if on_progress:
                on_progress(f"Reading the {column} labels: {done[0]} of {len(self.files)} files "
                            f"({size_text(self.col.stats.bytes)} read).", force=done[0] == len(self.files))
            return groups

        with ThreadPoolExecutor(max(1, workers)) as pool:
            per_file = list(pool.map(one, self.files))
        classes = list(names or [])
        position = {c: i for i, c in enumerate(classes)}
        units = []
        for rel, groups in zip(self.files, per_file):
            for g, first, size, values in groups:
                if names is None:  # a text column: its values are the class names
                    labels = tuple(-1 if v is None or v == "" else position.setdefault(str(v), len(position)) for v in values)
                else:
                    labels = tuple(v if v is not None and 0 <= v < len(classes) else -1 for v in values)
                units.append(Unit(f"{rel}@{g}", rel, g, first, size, labels))
        if names is None:
            classes = sorted(position, key=position.get)
        return LabelIndex(column, classes, units)

    def fetch(self, unit: Unit, offsets: list[int], index: LabelIndex) -> list[Row]:
        if unit.size > MAX_UNIT_BYTES:
            reason = f"its row group is too large to read ({size_text(unit.size)}; the limit is {size_text(MAX_UNIT_BYTES)})"
            return [self._row(unit, i, index, None, reason, {}) for i in offsets]
        image, features = self.image_column(), self.features()
        extra = [n for n in self.schema.names if n != image and _is_scalar(self.schema.field(n).type)]
        with self._opened(unit.file) as pf:
            table = pf.read_row_group(unit.group, columns=[image, *extra])
        self.col.stats.add(units=1, rows=table.num_rows)
        self.col.stats.fetched.append(unit.id)
        rows = []
        for i in offsets:
            cell = table.column(image)[i].as_py()
            data = cell.get("bytes") if isinstance(cell, dict) else cell
            path = cell.get("path") if isinstance(cell, dict) else None
            info = {n: _named(table.column(n)[i].as_py(), features.get(n)) for n in extra}
            if path:
                info["image_path"] = str(path)[:300]
            reason = None if data else "missing image (the row holds no image bytes)"
            rows.append(self._row(unit, i, index, data or None, reason, info))
        return rows

    def _row(self, unit: Unit, offset: int, index: LabelIndex, data, reason, info) -> Row:
        label = index.classes[unit.labels[offset]]
        provenance = {"dataset": self.col.repo, "revision": self.col.revision, "file": unit.file,
                      "row": unit.first_row + offset, "column": index.column, "class": label, **info,
                      "licence": self.col.licence}
        return Row(unit.key(offset), label, f"{self.col.repo}/{unit.key(offset)}", data, reason, provenance)


class ImageFolder:
    """Image files in class folders (`<split>/<class>/<file>`, the `imagefolder` convention): one unit per file."""

    kind = "folder"

    def __init__(self, col: Collection, files: list[str], prefix: str):
        self.col, self.files, self.prefix = col, files, prefix

    def label_columns(self) -> dict[str, list[str] | None]:
        return {"label": sorted({self._class(f) for f in self.files})}

    def _class(self, rel: str) -> str:
        return rel[len(self.prefix):].split("/")[0]

    def scan(self, column: str, on_progress: Progress | None, workers: int) -> LabelIndex:
        classes = self.label_columns()["label"]
        position = {c: i for i, c in enumerate(classes)}
        units = [Unit(f, f, None, 0, self.col.files[f], (position[self._class(f)],)) for f in self.files]
        return LabelIndex(column, classes, units)  # the listing names every class: nothing to read

    def fetch(self, unit: Unit, offsets: list[int], index: LabelIndex) -> list[Row]:
        provenance = {"dataset": self.col.repo, "revision": self.col.revision, "file": unit.file, "row": None,
                      "column": index.column, "class": index.classes[unit.labels[0]], "licence": self.col.licence}
        name = f"{self.col.repo}/{unit.file}"
        if unit.size > limits.MAX_FILE_BYTES:
            reason = f"file too large ({size_text(unit.size)}; the limit is {size_text(limits.MAX_FILE_BYTES)})"
            return [Row(unit.key(0), provenance["class"], name, None, reason, provenance)]
        with self.col.open(unit.file) as f, _reading(self.col):
            data = f.read()
        self.col.stats.add(units=1, rows=1)
        self.col.stats.fetched.append(unit.id)
        return [Row(unit.key(0), provenance["class"], name, data, None if data else "empty file (0 bytes)", provenance)]


def _is_scalar(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def _named(value: Any, feature: Any) -> Any:
    """A row's value for people: a class label's name rather than its number; long text cut."""
    if isinstance(feature, dict) and feature.get("_type") == "ClassLabel" and isinstance(value, int):
        names = feature.get("names") or []
        return names[value] if 0 <= value < len(names) else value
    return value[:300] if isinstance(value, str) else value


def _card_features(card: dict) -> dict[str, dict]:
    """Features as the card's `dataset_info` states them, in the parquet metadata's shape."""
    info = card.get("dataset_info")
    info = info[0] if isinstance(info, list) and info else info
    out: dict[str, dict] = {}
    for feature in (info or {}).get("features", []) if isinstance(info, dict) else []:
        if not isinstance(feature, dict) or "name" not in feature:
            continue
        dtype = feature.get("dtype")
        if isinstance(dtype, dict) and isinstance(dtype.get("class_label"), dict):
            names = dtype["class_label"].get("names") or {}
            listed = [names[k] for k in sorted(names, key=lambda k: int(k))] if isinstance(names, dict) else list(names)
            out[feature["name"]] = {"_type": "ClassLabel", "names": listed}
        elif dtype == "image":
            out[feature["name"]] = {"_type": "Image"}
    return out


def open_layout(col: Collection, split: str = "train") -> ParquetShards | ImageFolder:
    """The split's files: parquet shards (as the card's `configs` name them, else the Hub's usual paths), else an
    image folder. None found: UserError, naming the splits there are."""
    parquet = [f for f in _split_files(col, split) if f.endswith(".parquet")]
    if parquet:
        return ParquetShards(col, parquet)
    for prefix in (f"{split}/", f"data/{split}/", ""):
        if prefix == "" and (split != "train" or any(f.split("/")[0] in SPLIT_NAMES for f in col.files)):
            continue
        images = [f for f in sorted(col.files) if f.startswith(prefix) and f[len(prefix):].count("/") >= 1
                  and PurePosixPath(f).suffix.lower() in IMAGE_SUFFIXES and not f.startswith(".")]
        if images:
            return ImageFolder(col, images, prefix)
    splits = sorted({m.group(1) for f in col.files if (m := re.match(r"(?:data/)?([a-z]+)[-/]", f))
                     and m.group(1) in SPLIT_NAMES})
    there = f" (it has {', '.join(splits)})" if splits else ""
    raise UserError(f"{col.repo} has no {split!r} split{there}: no parquet files (data/{split}-*.parquet) and no "
                    f"image folders ({split}/<class>/<image>).")


def _split_files(col: Collection, split: str) -> list[str]:
    configs = col.card.get("configs")
    if isinstance(configs, list):
        default = next((c for c in configs if isinstance(c, dict) and c.get("config_name", "default") == "default"),
                       configs[0] if configs and isinstance(configs[0], dict) else None)
        patterns = _data_files(default.get("data_files") if default else None, split)
        found = sorted({f for p in patterns for f in col.glob(p)})
        if found:
            return found
    for pattern in (f"data/{split}-*", f"data/{split}/**", f"{split}/**", f"{split}-*", f"data/{split}.parquet",
                    f"{split}.parquet"):
        if found := col.glob(pattern):
            return found
    loose = col.glob("data/*.parquet") or col.glob("*.parquet")
    named = any(PurePosixPath(f).name.split("-")[0].split(".")[0] in SPLIT_NAMES for f in loose)
    return loose if split == "train" and not named else []  # one unnamed split is the train split


def _data_files(spec: Any, split: str) -> list[str]:
    if isinstance(spec, str):
        return [spec] if split == "train" else []
    if isinstance(spec, dict):
        value = spec.get(split)
        return [value] if isinstance(value, str) else list(value or [])
    out: list[str] = []
    for item in spec or []:
        if isinstance(item, dict) and item.get("split", "train") == split:
            value = item.get("path")
            out += [value] if isinstance(value, str) else list(value or [])
        elif isinstance(item, str) and split == "train":
            out.append(item)
    return out


# -- asking for classes -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HubRequest:
    """N images of each of some classes of one label column of a collection."""

    repo: str = WIKIART
    column: str | None = None  # None: style if there is one (WikiArt's art movements), else label, else the only one
    classes: tuple[str, ...] = ()
    per_class: int = 100
    split: str = "train"
    # Which of the row groups that hold equally many wanted rows go first, and which rows of them: another seed,
    # other paintings, never more reads. None: in the collection's order.
    seed: int | None = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(c.strip() for c in self.classes if c and c.strip()))


@dataclass
class ClassListing:
    repo: str
    split: str
    column: str
    columns: list[str]
    classes: list[str]
    counts: dict[str, int] | None
    licence: str
    layout: str
    stats: FetchStats

    def to_json(self) -> dict:
        return {"repo": self.repo, "split": self.split, "column": self.column, "columns": self.columns,
                "classes": self.classes, "counts": self.counts, "licence": self.licence, "layout": self.layout,
                "fetched": self.stats.to_json()}


def pick_column(columns: dict[str, list[str] | None], column: str | None, repo: str) -> str:
    if not columns:
        raise UserError(f"{repo} has no label column (a class-label or text column) to pick classes by.")
    if column is None:
        for preferred in ("style", "label"):
            if preferred in columns:
                return preferred
        if len(columns) == 1:
            return next(iter(columns))
        raise UserError(f"{repo} has several label columns ({', '.join(columns)}): choose one with --column.")
    if column not in columns:
        raise UserError(f"{repo} has no label column {column!r}: choose one of {', '.join(columns)}.")
    return column


def list_classes(repo: str | None = None, column: str | None = None, split: str = "train", *, counts: bool = False,
                 state_dir: Path | None = None, allow_local: bool = True,
                 on_progress: Progress | None = None) -> ClassListing:
    """The class names of a label column, from the metadata alone; with `counts`, how many rows each has (the label
    column is read, and the index kept in `state_dir` for the import that follows)."""
    col = open_collection(repo, allow_local=allow_local)
    layout = open_layout(col, split)
    columns = layout.label_columns()
    chosen = pick_column(columns, column, col.repo)
    names, tally = columns[chosen], None
    if counts or names is None:
        index = _label_index(col, layout, chosen, split, state_dir, on_progress)
        names, tally = index.classes, index.counts() if counts else None
    return ClassListing(col.repo, split, chosen, list(columns), list(names), tally, col.licence, layout.kind, col.stats)


def _label_index(col: Collection, layout, column: str, split: str, state_dir: Path | None,
                 on_progress: Progress | None) -> LabelIndex:
    """The label index, from `state_dir` when it was read from this revision before, else read (and kept there)."""
    path = state_dir / f"index-{_slug(split)}-{_slug(column)}.json" if state_dir else None
    if path is not None and path.exists():
        try:
            saved = json.loads(path.read_text())
            if saved["repo"] == col.repo and saved["revision"] == col.revision:
                return LabelIndex(column, saved["classes"], [Unit(*u[:5], tuple(u[5])) for u in saved["units"]])
        except (ValueError, KeyError, TypeError):
            pass  # a damaged or older index: read the labels again
    say = on_progress if isinstance(on_progress, _Throttled) else _Throttled(on_progress)
    index = layout.scan(column, say, LABEL_WORKERS if col.on_hub else 1)
    if path is not None:
        write_json_atomic(path, {"repo": col.repo, "revision": col.revision, "split": split, "column": column,
                                 "classes": index.classes,
                                 "units": [[u.id, u.file, u.group, u.first_row, u.size, list(u.labels)] for u in index.units]})
    return index


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:40] or "_"


def _match_classes(wanted: tuple[str, ...], classes: list[str], repo: str, column: str) -> list[str]:
    """The class names asked for, as the collection spells them ("ukiyo-e" finds Ukiyo_e); an unknown one: UserError."""
    def norm(s: str) -> str:
        return re.sub(r"[\s_-]+", "_", s.strip().lower())

    by_norm = {norm(c): c for c in classes}
    out = []
    for name in wanted:
        found = name if name in classes else by_norm.get(norm(name))
        if found is None:
            near = difflib.get_close_matches(name, classes, n=3, cutoff=0.6)
            hint = f"did you mean {' or '.join(near)}?" if near else f"its classes: {_few(classes)}"
            raise UserError(f"{repo}'s {column} column has no class {name!r} ({hint}).")
        if found not in out:
            out.append(found)
    return out


def _few(names: list[str], n: int = 12) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more (--list-classes lists them)" if len(names) > n else "")


# -- the import ------------------------------------------------------------------------------------------------
@dataclass
class ClassTally:
    asked: int
    found: int  # rows of this class in the collection (its split)
    imported: int  # imported by this run
    held: int  # images from this collection's class in the dataset now, earlier runs included

    @property
    def note(self) -> str:
        if self.held >= self.asked:
            return ""
        if self.found < self.asked:
            return f"only {self.found} in the collection"
        return f"only {self.held} of its {self.found} could be imported (see the rejected and duplicate files)"


@dataclass
class HubReport:
    """An import's report (the same as an upload's) plus, per class, how many were asked, found and imported."""

    report: ImportReport
    repo: str
    revision: str
    split: str
    column: str
    licence: str
    classes: dict[str, ClassTally]
    stats: FetchStats
    layout: str = "parquet"  # "parquet" (units are row groups) or "folder" (units are image files)
    notes: list[str] = field(default_factory=list)
    resumed: int = 0  # picks served from rows an earlier, interrupted import had already fetched

    @property
    def complete(self) -> bool:
        return all(t.held >= t.asked for t in self.classes.values())

    def to_json(self) -> dict:
        return {**self.report.to_json(),
                "source": {"repo": self.repo, "revision": self.revision, "split": self.split, "column": self.column,
                           "licence": self.licence},
                "classes": {c: {"asked": t.asked, "found": t.found, "imported": t.imported, "held": t.held,
                                **({"note": t.note} if t.note else {})} for c, t in self.classes.items()},
                "fetched": {**self.stats.to_json(), "layout": self.layout}, "resumed": self.resumed, "notes": self.notes}

    def summary(self) -> str:
        """One paragraph for people: per class what was asked and got, what was read, the licence."""
        per_class = "; ".join(f"{c} {t.held} of {t.asked}" + (f" ({t.note})" if t.note else "")
                              for c, t in self.classes.items())
        return f"{per_class}. {self.reads()} Licence: {self.licence}."

    def reads(self) -> str:
        """What was read from the collection, in one sentence."""
        s = self.stats
        if self.layout == "parquet":
            read = (f"{s.label_chunks} label {'chunk' if s.label_chunks == 1 else 'chunks'} and "
                    f"{s.units} {'row group' if s.units == 1 else 'row groups'} ({s.rows} rows)")
        else:
            read = f"{s.units} image {'file' if s.units == 1 else 'files'}"
        before = (f" ({self.resumed} {'pick was' if self.resumed == 1 else 'picks were'} fetched before, by a preview "
                  "or an interrupted import)") if self.resumed else ""
        return f"Read {size_text(s.bytes)} in {s.seconds:.1f} s: {read}{before}."


class _Progress:
    """`.hub/progress.json`: which units were fetched, the rows staged (bytes in `.hub/rows/`) and the rows done."""

    def __init__(self, folder: Path, identity: dict):
        self.folder, self.identity = folder, identity
        self.path, self.rows_dir = folder / "progress.json", folder / "rows"
        self.staged: dict[str, dict] = {}
        self.done: dict[str, str] = {}  # key → "imported" or "refused"
        saved = None
        try:
            saved = json.loads(self.path.read_text())
        except (OSError, ValueError):
            pass
        if isinstance(saved, dict) and saved.get("identity") == identity:
            self.staged = {k: v for k, v in saved.get("staged", {}).items()
                           if v.get("blob") is None or (self.rows_dir / v["blob"]).exists()}
            self.done = dict(saved.get("done", {}))
        elif saved is not None:
            self.clear()  # another collection, revision, split or column: its rows are of no use

    def stage(self, row: Row) -> None:
        blob = None
        if row.data is not None:
            blob = hashlib.sha1(row.key.encode()).hexdigest()[:24] + ".bin"
            self.rows_dir.mkdir(parents=True, exist_ok=True)
            (self.rows_dir / blob).write_bytes(row.data)
        self.staged[row.key] = {"label": row.label, "name": row.name, "blob": blob, "reason": row.reason,
                                "provenance": row.provenance}

    def payload(self, key: str) -> Payload:
        item = self.staged[key]
        if item["blob"] is None:
            return Payload(item["name"], None, rejected=item["reason"] or "missing image")
        path = self.rows_dir / item["blob"]
        return Payload(item["name"], None, path.stat().st_size, opener=lambda: path.open("rb"), label=item["label"],
                       provenance=item["provenance"])

    def save(self) -> None:
        write_json_atomic(self.path, {"identity": self.identity, "staged": self.staged, "done": self.done})
        if self.rows_dir.is_dir():  # rows done no longer need their bytes (the dataset holds its own copy)
            keep = {v["blob"] for v in self.staged.values() if v["blob"]}
            for blob in self.rows_dir.iterdir():
                if blob.name not in keep:
                    blob.unlink(missing_ok=True)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        shutil.rmtree(self.rows_dir, ignore_errors=True)
        self.staged, self.done = {}, {}


class HubImport:
    """One import's plan and state: the collection, the label index, the dataset it fills and what it needs."""

    def __init__(self, ws: Workspace, name: str, request: HubRequest, *, allow_local: bool = True,
                 on_progress: Progress | None = None):
        if not request.classes:
            raise UserError("Choose the classes to import (e.g. --classes Impressionism,Ukiyo_e).")
        if not 1 <= request.per_class <= limits.MAX_IMPORT_FILES:
            raise UserError(f"Images per class must be between 1 and {limits.MAX_IMPORT_FILES}, not {request.per_class}.")
        if request.per_class * len(request.classes) > limits.MAX_IMPORT_FILES:
            raise UserError(f"{len(request.classes)} classes × {request.per_class} is more than the "
                            f"{limits.MAX_IMPORT_FILES} images one import takes: ask fewer per class, or import the "
                            "classes in two runs.")
        self.ws, self.name, self.request = ws, name, request
        self.folder = ws.dataset_dir(name)
        self._say = _Throttled(on_progress)
        self.started = time.perf_counter()
        self.col = open_collection(request.repo, allow_local=allow_local)
        self.layout = open_layout(self.col, request.split)
        columns = self.layout.label_columns()
        self.column = pick_column(columns, request.column, self.col.repo)
        if columns[self.column] is not None:  # class names known from the metadata: a typo is said before any read
            _match_classes(request.classes, columns[self.column], self.col.repo, self.column)
        self.index = _label_index(self.col, self.layout, self.column, request.split, self.folder / STATE, self._say)
        self.classes = _match_classes(request.classes, self.index.classes, self.col.repo, self.column)
        self.found = {c: n for c, n in self.index.counts().items() if c in self.classes}
        wanted = {self.index.classes.index(c): c for c in self.classes}
        order = self.index.units
        if request.seed is not None:  # the seed orders units that hold equally many wanted rows
            order = list(order)
            random.Random(request.seed).shuffle(order)
        # Per unit, in planning order: its rows of each wanted class (offsets), computed once.
        self._wanted_rows: list[tuple[Unit, dict[str, list[int]]]] = []
        for unit in order:
            rows: dict[str, list[int]] = {}
            for offset, label in enumerate(unit.labels):
                if label in wanted:
                    rows.setdefault(wanted[label], []).append(offset)
            if rows:
                self._wanted_rows.append((unit, rows))
        self.hit_fetch_limit = False
        identity = {"repo": self.col.repo, "revision": self.col.revision, "split": request.split, "column": self.column}
        self.progress = _Progress(self.folder / STATE, identity)
        self.resumed = 0
        self.notes: list[str] = []

    # -- what the dataset holds, what it needs -----------------------------------------------------------------
    def held(self, ds: Dataset | None) -> dict[str, set[str]]:
        """Rows of each wanted class this collection already gave the dataset (by key: patches count once)."""
        out: dict[str, set[str]] = {c: set() for c in self.classes}
        for img in ds.images if ds is not None else []:
            p = img.get("provenance") or {}
            if p.get("dataset") == self.col.repo and p.get("column") == self.column and p.get("class") in out:
                out[p["class"]].add(p["file"] if p.get("row") is None else f"{p['file']}#{p['row']}")
        return out

    def _next_unit(self, need: dict[str, int], taken: set[str]) -> tuple[Unit, dict[str, list[int]]] | None:
        """The unit holding the most rows still needed (not done, not staged), earliest in planning order on a tie:
        the fewest reads, greedily. With its offsets per class."""
        best, best_score = None, 0
        for unit, rows in self._wanted_rows:
            free = {c: [o for o in offsets if unit.key(o) not in taken] for c, offsets in rows.items() if need[c] > 0}
            score = sum(min(len(r), need[c]) for c, r in free.items())
            if score > best_score:
                best, best_score = (unit, {c: r for c, r in free.items() if r}), score
        return best

    def _stage_next(self, need: dict[str, int], taken: set[str]) -> list[str] | None:
        """Fetch the next unit and stage its picks (what each class needs and a few spare); the keys, in order."""
        chosen = self._next_unit(need, taken)
        if chosen is None:
            return None
        unit, rows = chosen
        if self.col.stats.bytes + unit.size > MAX_FETCH_BYTES:
            self.hit_fetch_limit = True
            self.notes.append(f"Stopped after fetching {size_text(self.col.stats.bytes)}, the most one import fetches "
                              f"({size_text(MAX_FETCH_BYTES)}); run it again to go on.")
            return None
        offsets = []
        for c, picks in rows.items():
            if self.request.seed is not None:
                random.Random(f"{self.request.seed}:{unit.id}:{c}").shuffle(picks)
            offsets += picks[: need[c] + SPARE]
        fetched = self.layout.fetch(unit, offsets, self.index)  # in pick order: a seed's shuffle is kept
        for row in fetched:
            self.progress.stage(row)
        self.progress.save()
        return [row.key for row in fetched]

    # -- preview ----------------------------------------------------------------------------------------------
    def preview(self, per_class: int = 4, side: int = 192) -> list[tuple[Any, str]]:
        """A few picks of each class as thumbnails (PIL image, caption), fetched as the import would fetch them first
        and staged for it: the import that follows uses them without fetching them again. A pick that does not
        decode is left for the import to reject by name."""
        ds = _open_if_there(self.ws, self.name)
        held = self.held(ds)
        done = set(self.progress.done) | set().union(*held.values())
        shown: dict[str, list[tuple[Any, str]]] = {c: [] for c in self.classes}
        wanted = {c: min(per_class, self.request.per_class - len(held[c])) for c in self.classes}
        looked: set[str] = set()

        def look() -> None:
            for c, keys in self._staged_by_class(done).items():
                for key in keys:
                    if key not in looked and len(shown[c]) < wanted[c]:
                        looked.add(key)
                        if (thumb := self._thumbnail(key, side)) is not None:
                            shown[c].append(thumb)

        look()
        taken = done | set(self.progress.staged)
        usable: dict[str, bool] = {}
        while any(len(shown[c]) < wanted[c] for c in self.classes):
            # Plan as the import will (for all N, the staged picks counted), so the rows staged here are the ones
            # it fetches first; stop as soon as there is enough to show.
            staged = self._staged_by_class(done)
            for key in (k for keys in staged.values() for k in keys if k not in usable):
                usable[key] = self._opens(key)
            need = {c: self.request.per_class - len(held[c]) - sum(usable[k] for k in staged[c]) for c in self.classes}
            keys = self._stage_next(need, taken) if any(n > 0 for n in need.values()) else None
            if keys is None:
                break
            taken |= set(keys)
            look()
        self.col.stats.seconds = time.perf_counter() - self.started
        return [thumb for c in self.classes for thumb in shown[c]]

    def _opens(self, key: str) -> bool:
        """Whether a staged pick's bytes are an image, by its header (the import will check it whole)."""
        from studio.data.decode import Rejected, open_image

        blob = self.progress.staged[key]["blob"]
        try:
            return bool(blob) and open_image((self.progress.rows_dir / blob).read_bytes(), min_side=1) is not None
        except Rejected:
            return False

    def _thumbnail(self, key: str, side: int) -> tuple[Any, str] | None:
        from studio.data.decode import Rejected, decode_image

        item = self.progress.staged[key]
        if not item["blob"]:
            return None
        try:
            image = decode_image((self.progress.rows_dir / item["blob"]).read_bytes(), min_side=1)
        except Rejected:
            return None
        image.thumbnail((side, side))
        artist = item["provenance"].get("artist")
        return image, item["label"] + (f" · {artist}" if isinstance(artist, str) else "")

    def _staged_by_class(self, done: set[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {c: [] for c in self.classes}
        for key, item in self.progress.staged.items():
            if key not in done and item["label"] in out:
                out[item["label"]].append(key)
        return out

    # -- the import -------------------------------------------------------------------------------------------
    def run(self, settings: CropSettings | None = None, *, min_side: int = DEFAULT_MIN_SIDE) -> tuple[Dataset, HubReport]:
        is_new = not (self.folder / MANIFEST).exists()
        ds = Dataset.open_or_create(self.ws, self.name, settings)
        before = {c: len(keys) for c, keys in self.held(ds).items()}
        adding = sum(max(0, self.request.per_class - n) for n in before.values())
        adding *= ds.settings.patches if ds.settings.crop == "patches" else 1
        if len(ds.images) + adding > limits.MAX_DATASET_IMAGES:  # said now, not as row after row turned away
            if is_new:
                shutil.rmtree(ds.path, ignore_errors=True)
            raise UserError(f"Dataset {self.name!r} holds {len(ds.images):,} images and this import would add up to "
                            f"{adding:,}, past the {limits.MAX_DATASET_IMAGES:,} a dataset holds: ask fewer per class.")
        source = _Picks(self, ds)
        report = ds.import_paths([source], min_side=min_side)
        self.col.stats.seconds = time.perf_counter() - self.started
        held = self.held(ds)
        tallies = {c: ClassTally(self.request.per_class, self.found[c], len(held[c]) - before[c], len(held[c]))
                   for c in self.classes}
        hub_report = HubReport(report, self.col.repo, self.col.revision, self.request.split, self.column,
                               self.col.licence, tallies, self.col.stats, self.layout.kind, self.notes, self.resumed)
        if not source.stopped_early:  # every class has N, or all there are: nothing left to resume
            self.progress.clear()
        if is_new and not ds.images and not source.stopped_early:
            shutil.rmtree(ds.path, ignore_errors=True)
        return ds, hub_report


class _Picks:
    """The rows an import picks, as a source of payloads (studio.data.sources.Source) for the dataset's import.

    After each payload it looks at the dataset it fills: grown means imported; otherwise (rejected, a duplicate)
    its class needs another row. Staged rows go first, then unit by unit, the densest first."""

    def __init__(self, job: HubImport, ds: Dataset):
        self.job, self.ds = job, ds
        self.name = f"hub:{job.col.repo}"
        self.stopped_early = False

    def payloads(self) -> Iterator[Payload]:
        job, progress = self.job, self.job.progress
        held = job.held(self.ds)
        need = {c: job.request.per_class - len(held[c]) for c in job.classes}
        done = set(progress.done) | set().union(*held.values())
        taken = done | set(progress.staged)
        self.yielded = self.refused_in_a_row = self.since_save = 0
        queue = [k for ks in job._staged_by_class(done).values() for k in ks]
        earlier = set(queue)  # fetched before: by a preview, or an import that was interrupted
        while True:
            for key in queue:
                item = progress.staged.get(key)
                if item is None or need[item["label"]] <= 0:
                    continue
                if self.yielded >= limits.MAX_IMPORT_FILES or self.refused_in_a_row >= GIVE_UP_AFTER:
                    self._stop()
                    return
                grew_from = len(self.ds.images)
                yield progress.payload(key)
                self.yielded += 1
                job.resumed += key in earlier
                imported = len(self.ds.images) > grew_from
                progress.done[key] = "imported" if imported else "refused"
                del progress.staged[key]
                need[item["label"]] -= imported
                self.refused_in_a_row = 0 if imported else self.refused_in_a_row + 1
                self.since_save += 1
                if self.since_save >= CHECKPOINT_ROWS:
                    self._save()
                job._say(self._status(need))
            if all(n <= 0 for n in need.values()):
                break
            self._save()  # staging saves the progress: the manifest it counts on must be on disk first
            keys = job._stage_next(need, taken)
            if keys is None:  # every row of the classes still needed was tried, or the fetch limit was hit
                self.stopped_early = job.hit_fetch_limit
                break
            taken |= set(keys)
            queue = keys
            job._say(self._status(need), force=True)  # once per row group: seconds apart on the Hub
        self._save()

    def _stop(self) -> None:
        self.stopped_early = True
        if self.refused_in_a_row >= GIVE_UP_AFTER:
            self.job.notes.append(f"Stopped: the last {GIVE_UP_AFTER} picks were all turned away (see why in the "
                                  "rejected files).")
        else:
            self.job.notes.append(f"Stopped at {limits.MAX_IMPORT_FILES} files, the most one import reads; run it "
                                  "again to go on.")
        self._save()

    def _save(self) -> None:
        # The manifest first: a row counted done in the progress is then always in the dataset, or truly refused.
        self.ds.save()
        self.job.progress.save()
        self.since_save = 0

    def _status(self, need: dict[str, int]) -> str:
        s, n = self.job.col.stats, self.job.request.per_class
        what = f"{s.units} {'row groups' if isinstance(self.job.layout, ParquetShards) else 'files'}"
        return (f"Fetched {what} ({size_text(s.bytes)}): "
                + ", ".join(f"{c} {n - max(0, k)}/{n}" for c, k in need.items()) + ".")


class _Throttled:
    """Progress lines at most every _PROGRESS_EVERY_S (a line per row would flood a terminal and a page)."""

    def __init__(self, sink: Progress | None):
        self.sink, self.last, self.lock = sink, 0.0, threading.Lock()

    def __call__(self, text: str, force: bool = False) -> None:
        if self.sink is None:
            return
        with self.lock:
            now = time.monotonic()
            if not force and now - self.last < _PROGRESS_EVERY_S:
                return
            self.last = now
        self.sink(text)


def _open_if_there(ws: Workspace, name: str) -> Dataset | None:
    return Dataset.open(ws, name) if (ws.dataset_dir(name) / MANIFEST).exists() else None


def import_from_hub(ws: Workspace, name: str, request: HubRequest, *, settings: CropSettings | None = None,
                    min_side: int = DEFAULT_MIN_SIDE, allow_local: bool = True,
                    on_progress: Progress | None = None) -> tuple[Dataset, HubReport]:
    """Import `request.per_class` images of each class into dataset `name` (created if new), reading only the row
    groups that hold them; run again after an interruption to finish without fetching anything twice."""
    return HubImport(ws, name, request, allow_local=allow_local, on_progress=on_progress).run(settings, min_side=min_side)


def preview_picks(ws: Workspace, name: str, request: HubRequest, *, per_class: int = 4, allow_local: bool = True,
                  on_progress: Progress | None = None) -> tuple[list[tuple[Any, str]], FetchStats]:
    """Thumbnails of the first picks of each class (PIL image, caption), staged for the import into `name`."""
    job = HubImport(ws, name, request, allow_local=allow_local, on_progress=on_progress)
    return job.preview(per_class), job.col.stats
