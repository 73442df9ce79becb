"""Turn what a user hands us (files, folders, zip archives) into named file payloads, rejecting unsafe entries.

Each payload keeps a display name (path relative to what was given) and the folder label
hint used by `--labels-from-folders` (the ImageFolder convention: first sub-folder = class).
"""

from __future__ import annotations

import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

MAX_FILE_BYTES = 100 * 1024 * 1024  # one image file; larger is almost surely not a painting scan we want
ARCHIVE_SUFFIXES = {".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar"}
_ZIP_MAGIC = b"PK\x03\x04"
# Files operating systems leave behind; they are not the user's images, so we skip them without a word.
# Our own export's manifest rides along in its zip; it is not an image either.
_JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini", "dataset.json"}


@dataclass(frozen=True)
class Payload:
    """One candidate file: its bytes, or the reason it was refused before decoding."""

    name: str
    folder_label: str | None
    data: bytes = b""
    rejected: str | None = None


def _is_junk(parts: tuple[str, ...]) -> bool:
    return any(p == "__MACOSX" for p in parts) or (bool(parts) and (parts[-1] in _JUNK_NAMES or parts[-1].startswith("._")))


def _label_from(parts: tuple[str, ...]) -> str | None:
    """ImageFolder convention: the first folder under the given root names the class."""
    return parts[0] if len(parts) >= 2 else None


def iter_payloads(paths: list[Path]) -> Iterator[Payload]:
    """Yield a Payload for every file in `paths` (files, folders walked recursively, zip archives)."""
    for path in paths:
        path = Path(path)
        if path.is_symlink():
            yield Payload(path.name, None, rejected="symbolic link (not followed, for safety)")
        elif path.is_dir():
            yield from _iter_folder(path)
        elif not path.exists():
            yield Payload(path.name, None, rejected="file not found")
        elif _looks_like_zip(path):
            yield from _iter_zip(path, path.name)
        else:
            yield _read_file(path, path.name, None)


def _looks_like_zip(path: Path) -> bool:
    if path.suffix.lower() == ".zip":
        return True
    with path.open("rb") as f:
        return f.read(4) == _ZIP_MAGIC


def _read_file(path: Path, name: str, label: str | None) -> Payload:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        return Payload(name, label, rejected=f"file too large ({size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB)")
    if path.suffix.lower() in ARCHIVE_SUFFIXES and path.suffix.lower() != ".zip":
        return Payload(name, label, rejected="unsupported archive type (use .zip)")
    return Payload(name, label, data=path.read_bytes())


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
            elif info.file_size > MAX_FILE_BYTES:
                yield Payload(name, label, rejected=f"file too large ({info.file_size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB)")
            else:
                yield _read_zip_entry(archive, info, name, label)


def _read_zip_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, label: str | None) -> Payload:
    try:
        with archive.open(info) as f:
            # Read one byte past the limit: the header's size can lie (a zip bomb).
            data = f.read(MAX_FILE_BYTES + 1)
    except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as exc:
        return Payload(name, label, rejected=f"damaged zip entry ({exc})")
    if len(data) > MAX_FILE_BYTES:
        return Payload(name, label, rejected=f"file too large (over {MAX_FILE_BYTES // 2**20} MB when unpacked)")
    if data[:4] == _ZIP_MAGIC:
        return Payload(name, label, rejected="archive inside an archive (nested archives are not opened)")
    return Payload(name, label, data=data)
