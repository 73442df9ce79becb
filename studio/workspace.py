"""Where user data lives: one workspace folder with datasets/, runs/ and exports/; safe names; atomic writes."""

from __future__ import annotations

import json
import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from studio.errors import UserError

DEFAULT_WORKSPACE = "workspace"
WORKSPACE_ENV = "STUDIO_WORKSPACE"
USERS = "users"  # on a shared deployment: <root>/users/<key>/ is one person's whole workspace
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def cache_root() -> Path:
    """$STUDIO_CACHE, else ~/.cache/artgan-studio: what the studio keeps across workspaces (weights, demo paintings)."""
    root = os.environ.get("STUDIO_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "artgan-studio"


def validate_name(name: str, kind: str = "dataset") -> str:
    """Return `name` if it is safe as a single folder name, else raise UserError.

    Names become folder names under the workspace, so path separators, `..` and hidden
    names would let a request reach outside it.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise UserError(
            f"{kind.capitalize()} name {name!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no slashes, no '..')."
        )
    return name


def free_name(base: str, taken: Callable[[str], bool]) -> str:
    """`base` as a safe folder name (other characters become '-'), then -2, -3, … until `taken(name)` is false."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.")[:56] or "untitled"
    name, n = base, 1
    while taken(name):
        n += 1
        name = f"{base}-{n}"
    return name


@dataclass(frozen=True)
class Workspace:
    """The folder that holds everything a user makes."""

    root: Path

    @classmethod
    def resolve(cls, path: str | os.PathLike[str] | None = None) -> "Workspace":
        """The workspace at `path`, else $STUDIO_WORKSPACE, else ./workspace; its folders are created."""
        root = Path(path or os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE).expanduser().resolve()
        ws = cls(root)
        for sub in (ws.datasets, ws.runs, ws.exports):
            sub.mkdir(parents=True, exist_ok=True)
        return ws

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    def dataset_dir(self, name: str) -> Path:
        return self.datasets / validate_name(name, "dataset")

    def run_dir(self, name: str) -> Path:
        return self.runs / validate_name(name, "run")

    def user(self, key: str) -> "Workspace":
        """The workspace of one user of a shared deployment (created on first use)."""
        return Workspace.resolve(self.root / USERS / validate_name(key, "user"))

    def users(self) -> list["Workspace"]:
        """Every user's workspace under this one, in a stable order."""
        folder = self.root / USERS
        return [Workspace(p) for p in sorted(folder.iterdir()) if p.is_dir()] if folder.is_dir() else []


@contextmanager
def atomic_writer(path: Path, suffix: str = ".tmp") -> Iterator[BinaryIO]:
    """Write, fsync, then rename, so a crash or a full disk never leaves a half-written file at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_writer(path) as f:
        f.write(data)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode())
