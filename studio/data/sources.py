"""Where images come from: sources, each yielding the same items (`Payload`s) into the one import pipeline.

A `Source` has a name and `payloads()`. The files, folders and zip archives a user hands us are sources
(`FileSource`, `FolderSource`, `ZipSource`; `source_for(path)` picks one), rejecting unsafe entries by name.
A payload is what an upload is: a display name (path relative to what was given), its bytes or an in-memory
image (`Payload.of`), an optional label of its own, the folder label hint used by `--labels-from-folders`
(the ImageFolder convention: first sub-folder = class), and an optional provenance dict kept in the manifest.
Bytes are read only when asked (`Payload.read`), so an import that has reached one of its bounds
(studio/data/limits.py) can refuse the rest by name without reading them.

A new kind of source (a Hub dataset, say) is one module in data/ with `open_source(spec) -> Source` and one line
in SOURCES; `python -m studio dataset import NAME SCHEME:SPEC` and `import_into` then take it like a path.
"""

from __future__ import annotations

import importlib
import io
import lzma
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Protocol, runtime_checkable

from studio.data import limits
from studio.data.decode import Rejected

ARCHIVE_SUFFIXES = {".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar"}
_ZIP_MAGIC = b"PK\x03\x04"
# Files operating systems leave behind; they are not the user's images, so we skip them without a word.
# Our own export's manifest rides along in its zip; it is not an image either.
_JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini", "dataset.json"}
# Sources by the scheme a user writes before their spec ("hub:owner/name"): scheme → module with open_source(spec).
SOURCES: dict[str, str] = {}


@dataclass(frozen=True)
class Payload:
    """One candidate file: its declared size and a way to read it, or the reason it was refused unread."""

    name: str
    folder_label: str | None
    size: int = 0  # bytes as declared (the file's size, a zip entry's header); reading never returns more than the limit
    rejected: str | None = None
    opener: Callable[[], BinaryIO] | None = field(default=None, repr=False, compare=False)
    label: str | None = None  # the source's own class for it (a dataset's label column); the import's --label wins
    provenance: dict[str, Any] | None = None  # where it came from (a dataset, a row, a licence), kept in the manifest

    @classmethod
    def of(cls, name: str, content: bytes | Any, *, label: str | None = None,
           provenance: dict[str, Any] | None = None) -> "Payload":
        """An item a source holds in memory: encoded bytes, or a PIL image (stored as a PNG original, encoded only
        when read; its declared size is its raw pixels')."""
        if isinstance(content, (bytes, bytearray)):
            data = bytes(content)
            return cls(name, None, len(data), opener=lambda: io.BytesIO(data), label=label, provenance=provenance)
        image = content

        def encode() -> BinaryIO:
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            buf.seek(0)
            return buf

        return cls(name, None, image.width * image.height * len(image.getbands()), opener=encode, label=label,
                   provenance=provenance)

    def read(self) -> bytes:
        """The file's bytes, or Rejected. Read a zip entry before taking the next payload: the archive closes after."""
        try:
            with self.opener() as f:
                # One byte past the limit: a file can grow after we looked, and a zip header's size can lie.
                data = f.read(limits.MAX_FILE_BYTES + 1)
        except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, NotImplementedError, RuntimeError) as exc:
            raise Rejected(f"damaged zip entry ({exc})") from None  # only zip members raise these
        except OSError as exc:
            raise Rejected(f"unreadable file ({exc})") from None
        if len(data) > limits.MAX_FILE_BYTES:
            raise Rejected(f"file too large (more than the {size_text(limits.MAX_FILE_BYTES)} limit when read)")
        if data[:4] == _ZIP_MAGIC:  # a zip member that is a zip by its bytes, whatever its name says
            raise Rejected("archive inside an archive (nested archives are not opened)")
        return data


def size_text(size: int) -> str:
    """Bytes as a person reads them: 512 bytes, 1.5 KB, 100 MB, 2 GB."""
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if size >= scale:
            value = size / scale
            return f"{value:.1f}".rstrip("0").rstrip(".") + f" {unit}" if value < 10 else f"{value:,.0f} {unit}"
    return f"{size} bytes"


def _too_large(name: str, label: str | None, size: int) -> Payload | None:
    if size > limits.MAX_FILE_BYTES:
        return Payload(name, label, size, rejected=f"file too large ({size_text(size)}; the limit is {size_text(limits.MAX_FILE_BYTES)})")
    return None


def _is_junk(parts: tuple[str, ...]) -> bool:
    return any(p == "__MACOSX" for p in parts) or (bool(parts) and (parts[-1] in _JUNK_NAMES or parts[-1].startswith("._")))


def _label_from(parts: tuple[str, ...]) -> str | None:
    """ImageFolder convention: the first folder under the given root names the class."""
    return parts[0] if len(parts) >= 2 else None


@runtime_checkable
class Source(Protocol):
    """Where an import's images come from."""

    name: str  # what the user gave, for people: "art.zip", "paintings", "hub:owner/name"

    def payloads(self) -> Iterator[Payload]:
        """Every item, rejected ones included (with their reason), in a stable order."""


@dataclass(frozen=True)
class FileSource:
    """One image file."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def payloads(self) -> Iterator[Payload]:
        yield _read_file(self.path, self.name, None)


@dataclass(frozen=True)
class FolderSource:
    """A folder, walked recursively; the first sub-folder under it names the class (ImageFolder)."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def payloads(self) -> Iterator[Payload]:
        yield from _iter_folder(self.path)


@dataclass(frozen=True)
class ZipSource:
    """A zip archive, never extracted to disk: entries are read one at a time, unsafe ones refused."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def payloads(self) -> Iterator[Payload]:
        yield from _iter_zip(self.path, self.name)


@dataclass(frozen=True)
class Refused:
    """Something given that is no source at all (a missing file, a link): one rejected item saying why."""

    name: str
    reason: str

    def payloads(self) -> Iterator[Payload]:
        yield Payload(self.name, None, rejected=self.reason)


def source_for(given: str | Path) -> Source:
    """The source a user's argument names: SCHEME:SPEC for a source in SOURCES, else a file, folder or zip path."""
    scheme, _, spec = str(given).partition(":")
    if spec and scheme in SOURCES:
        return importlib.import_module(SOURCES[scheme]).open_source(spec)
    path = Path(given)
    if path.is_symlink():
        return Refused(path.name, "symbolic link (not followed, for safety)")
    if path.is_dir():
        return FolderSource(path)
    if not path.exists():
        return Refused(path.name, "file not found")
    return ZipSource(path) if _looks_like_zip(path) else FileSource(path)


def iter_payloads(given: Iterable[Source | str | Path]) -> Iterator[Payload]:
    """Every item of every source given (sources, or paths and SCHEME:SPEC strings, see `source_for`)."""
    for item in given:
        yield from (item if isinstance(item, Source) else source_for(item)).payloads()


def _looks_like_zip(path: Path) -> bool:
    if path.suffix.lower() == ".zip":
        return True
    with path.open("rb") as f:
        return f.read(4) == _ZIP_MAGIC


def _read_file(path: Path, name: str, label: str | None) -> Payload:
    size = path.stat().st_size
    if path.suffix.lower() in ARCHIVE_SUFFIXES and path.suffix.lower() != ".zip":
        return Payload(name, label, size, rejected="unsupported archive type (use .zip)")
    return _too_large(name, label, size) or Payload(name, label, size, opener=lambda: path.open("rb"))


def _iter_folder(root: Path) -> Iterator[Payload]:
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if _is_junk(parts) or any(p.startswith(".") for p in parts[:-1]):
            continue
        name = f"{root.name}/{'/'.join(parts)}"
        label = _label_from(parts)
        if path.is_symlink():
            yield Payload(name, label, rejected="symbolic link (not followed, for safety)")
        elif path.is_dir():
            continue
        elif _looks_like_zip(path):
            yield Payload(name, label, rejected="archive inside a folder (unzip it, or add the zip on its own)")
        else:
            yield _read_file(path, name, label)


def _zip_entry_parts(filename: str) -> tuple[str, ...] | None:
    """The entry's path parts, or None when it would land outside the extraction folder (zip-slip)."""
    normalized = filename.replace("\\", "/")
    pure = PurePosixPath(normalized)
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":") or ".." in pure.parts:
        return None
    return tuple(p for p in pure.parts if p not in ("", "."))


def _iter_zip(path: Path, display: str) -> Iterator[Payload]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        yield Payload(display, None, rejected=f"damaged zip archive ({exc})")
        return
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        entries = [(i, _zip_entry_parts(i.filename)) for i in infos]
        # A zip of one folder ("art/abstract/x.png") labels by the folder under that wrapper.
        tops = {parts[0] for _, parts in entries if parts and len(parts) > 1 and not _is_junk(parts)}
        loose = [parts for _, parts in entries if parts and len(parts) == 1 and not _is_junk(parts)]
        strip = 1 if len(tops) == 1 and not loose and any(parts and len(parts) > 2 for _, parts in entries) else 0
        for info, parts in entries:
            name = f"{display}:{info.filename}"
            if parts is None:
                yield Payload(name, None, rejected="unsafe path in zip (would be written outside the dataset folder)")
                continue
            if _is_junk(parts):
                continue
            label = _label_from(parts[strip:])
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                yield Payload(name, label, rejected="symbolic link inside zip (not followed, for safety)")
            elif PurePosixPath(parts[-1]).suffix.lower() in ARCHIVE_SUFFIXES:
                yield Payload(name, label, rejected="archive inside an archive (nested archives are not opened)")
            else:
                # The declared size refuses a zip bomb before a byte is inflated; Payload.read bounds what it unpacks to.
                yield _too_large(name, label, info.file_size) or Payload(
                    name, label, info.file_size, opener=lambda info=info: archive.open(info))
