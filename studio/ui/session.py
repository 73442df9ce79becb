"""Whose workspace a request works in.

A studio on your own machine has one workspace, and every request works in it. A shared deployment
(a public Space, `--multi-user`) gives every browser a workspace of its own — every logged-in user,
when the app has a login — under <workspace>/users/, with one job queue for all of them. A browser's
key is a random secret kept in its localStorage, so a reload or a second tab finds the same workspace;
its folder is named by a keyed hash of that key, so no path tells anyone the key or another's folder.

A shared studio bounds what strangers can make it do (studio/data/limits.py): new workspaces per minute from one
address, all visitors' disk together, and a browser's workspace no page has opened for a while is deleted.
The server's own files (the secret behind the folder names, when each browser was last seen) live in
<workspace>/.studio-private/, which the app never serves (`launch` passes it as a blocked path).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import gradio as gr

from studio.data import limits
from studio.errors import UserError
from studio.jobs import JobManager
from studio.ui.common import user_errors
from studio.workspace import USERS, Workspace, validate_name

SESSION_STORAGE_KEY = "artgan-studio-session"
PRIVATE = ".studio-private"  # <workspace>/.studio-private/: the server's own files, never served
CLEAN_EVERY_S = 3600


def private_dir(ws: Workspace) -> Path:
    return ws.root / PRIVATE


class Sessions:
    """Maps each request to its workspace and job manager; `render` adds the page-load step that binds a page."""

    def __init__(self, ws: Workspace, jobs: JobManager, *, multi_user: bool = False,
                 on_new_workspace: Callable[[Workspace], None] | None = None, trust_forwarded: bool = False):
        self.root, self.multi_user = ws, multi_user
        self._jobs, self._on_new = jobs, on_new_workspace
        self._bound: dict[str, Workspace] = {}  # page (gradio session hash) → workspace
        self._lock = threading.Lock()
        self._setting_up: dict[str, threading.Lock] = {}  # a lock per user folder
        self._secret = _server_secret(ws) if multi_user else b""
        self._seen = private_dir(ws) / "seen"  # one empty file per browser workspace; its mtime: when a page last opened it
        self._trust_forwarded = trust_forwarded  # behind a proxy that sets X-Forwarded-For (a Space)
        self._opened: dict[str, list[float]] = {}  # client address → when it opened new workspaces (last minute)
        self._users_bytes = (float("-inf"), 0)  # (when measured, bytes): all workspaces' disk, measured at most once a minute
        # What the page is built with: a shared studio's is an empty workspace, so no one's names are in anyone's page.
        # A TemporaryDirectory, so it goes when the studio stops (it finalises at exit) instead of one left per start.
        self._empty = tempfile.TemporaryDirectory(prefix="studio-empty-") if multi_user else None
        self._built_from = Workspace.resolve(self._empty.name) if self._empty else ws
        self.loaded: gr.events.Dependency | None = None

    def render(self, demo: gr.Blocks) -> None:
        """The first page-load event: find (or make) this browser's workspace. Tabs chain their loads on it."""
        key = gr.BrowserState("", storage_key=SESSION_STORAGE_KEY, secret=self._secret.hex()[:32] or None)
        self.loaded = demo.load(user_errors(self._bind), [key], [key], show_progress="hidden", api_name="open_session")
        demo.unload(self._unbind)

    def at_build(self) -> JobManager:
        """The runs (and `.ws`) whose names the page is built with; API clients' choices are checked against them."""
        return self._jobs.for_workspace(self._built_from)

    def on_load(self, fn: Callable, inputs=None, outputs=None, **kwargs) -> gr.events.Dependency:
        """Run `fn` when a page opens, once it is bound to its workspace."""
        return self.loaded.then(fn, inputs, outputs, **kwargs)

    def browser_here(self, request: gr.Request | None) -> bool:
        """Whether the page's browser runs on this machine, its renderer on the cores a training job uses."""
        return client_address(request, self._trust_forwarded) in LOOPBACK

    def ready(self, request: gr.Request) -> bool:
        """False until the page's load has bound it (a timer may tick before that)."""
        return not self.multi_user or bool(request.username) or request.session_hash in self._bound

    def workspace(self, request: gr.Request) -> Workspace:
        if not self.multi_user:
            return self.root
        if request.username:
            return self._user("user", request.username, request)
        ws = self._bound.get(request.session_hash)
        if ws is None:
            raise UserError("This page is not connected to your workspace (the studio restarted?): reload the page; "
                            "your datasets and runs are kept.")
        return ws

    def jobs(self, request: gr.Request) -> JobManager:
        return self._jobs.for_workspace(self.workspace(request))

    def _bind(self, key: str | None, request: gr.Request) -> str:
        if not self.multi_user:
            return key or ""
        if request.username:
            ws = self._user("user", request.username, request)
        else:
            if not (isinstance(key, str) and len(key) >= 32):
                key = secrets.token_urlsafe(32)
            ws = self._user("browser", key, request)
        with self._lock:
            self._bound[request.session_hash] = ws
        return key or ""

    def _unbind(self, request: gr.Request) -> None:
        with self._lock:
            ws = self._bound.pop(request.session_hash, None)
        if ws is not None and (self._seen / ws.root.name).exists():
            (self._seen / ws.root.name).touch()  # the page closed: last seen now

    def _folder_lock(self, folder: str) -> threading.Lock:
        with self._lock:
            return self._setting_up.setdefault(folder, threading.Lock())

    def _user(self, kind: str, identity: str, request: gr.Request | None = None) -> Workspace:
        folder = hmac.new(self._secret, f"{kind}:{identity}".encode(), hashlib.sha256).hexdigest()[:32]
        with self._folder_lock(folder):  # two tabs of one browser must not both set it up; other people's pages need not wait
            new = not (self.root.root / USERS / folder).exists()
            if new:
                self._admit(kind, request)
            ws = self.root.user(folder)
            if kind == "browser":  # a logged-in user's workspace is never cleaned up, so it is never marked
                self._seen.mkdir(parents=True, exist_ok=True)
                (self._seen / folder).touch()
            if new and self._on_new:
                self._on_new(ws)
        return ws

    # -- bounds on strangers ---------------------------------------------------------------
    def _admit(self, kind: str, request: gr.Request | None) -> None:
        """A new workspace is about to be made: refuse it past the bounds a shared studio sets (studio/data/limits.py)."""
        per_minute, budget = limits.MAX_NEW_SESSIONS_PER_MINUTE, limits.MAX_USERS_BYTES
        if kind == "browser" and per_minute is not None:
            client, now = client_address(request, self._trust_forwarded), time.monotonic()
            with self._lock:
                self._opened = {c: kept for c, times in self._opened.items() if (kept := [t for t in times if now - t < 60])}
                if len(self._opened.get(client, [])) >= per_minute:
                    raise UserError(f"Too many new workspaces were opened from your address in the last minute (at most "
                                    f"{per_minute} a minute on this shared studio): wait a minute, then reload the page.")
                self._opened.setdefault(client, []).append(now)
        if budget is not None:
            measured, used = self._users_bytes
            if time.monotonic() - measured > 60:
                measured, used = time.monotonic(), limits.folder_bytes(self.root.root / USERS)
            if used >= budget:
                raise UserError(f"This shared studio is full: its visitors' workspaces hold {used / 1024**3:.1f} GB of the "
                                f"{budget / 1024**3:.1f} GB it keeps for everyone, so it cannot make one for you now. "
                                "Try again later: workspaces no one opens for a while are cleaned up.")
            # Counted at once, so that a burst of newcomers within the minute is counted before the next measure.
            self._users_bytes = (measured, used + limits.demo_bytes(120, 256))

    def clean_up(self) -> list[str]:
        """Delete the browser workspaces no page has opened for limits.FORGET_AFTER_S, unless a page has one open now
        or one of its runs is queued or running; a logged-in user's workspace is never deleted. Returns their folders."""
        forget = limits.FORGET_AFTER_S
        if not self.multi_user or not forget or not self._seen.is_dir():
            return []
        removed = []
        for marker in sorted(self._seen.iterdir()):
            folder = marker.name
            with self._folder_lock(folder):  # a page opening it now waits, then finds a new workspace
                try:
                    if time.time() - marker.stat().st_mtime < forget:
                        continue
                    ws = Workspace(self.root.root / USERS / validate_name(folder, "user"))
                    with self._lock:
                        if ws in self._bound.values():
                            continue
                    if ws.root.is_dir() and any(v.live for v in self._jobs.for_workspace(ws).runs()):
                        continue
                except Exception:  # unreadable, damaged or not ours: keep it
                    continue
                shutil.rmtree(ws.root, ignore_errors=True)
                if not ws.root.exists():
                    marker.unlink(missing_ok=True)
                    removed.append(folder)
        return removed

    def keep_clean(self, every_s: float = CLEAN_EVERY_S) -> None:
        """Clean up now and then every `every_s` seconds, on a background thread, for as long as the app runs."""
        def loop() -> None:
            while True:
                try:
                    removed = self.clean_up()
                except Exception as exc:  # never let a disk error end the loop
                    print(f"Cleaning up visitors' workspaces failed: {exc}", flush=True)
                else:
                    if removed:
                        print(f"Deleted {len(removed)} visitor workspace(s) no page opened for "
                              f"{limits.FORGET_AFTER_S / 86400:g} days.", flush=True)
                time.sleep(every_s)

        if self.multi_user and limits.FORGET_AFTER_S:
            threading.Thread(target=loop, name="studio-cleanup", daemon=True).start()


LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


def client_address(request: gr.Request | None, trust_forwarded: bool) -> str:
    """Who opens a page: the first X-Forwarded-For hop behind a trusted proxy (a Space's), else the connection's address."""
    if request is None:
        return "?"
    if trust_forwarded:
        forwarded = dict(getattr(request, "headers", None) or {}).get("x-forwarded-for", "")
        if forwarded.split(",")[0].strip():
            return forwarded.split(",")[0].strip()
    client = getattr(request, "client", None)
    return getattr(client, "host", None) or "?"


def _server_secret(ws: Workspace) -> bytes:
    """A random secret made once per deployment, kept in the private folder (readable by the app only)."""
    path = private_dir(ws) / "secret"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    old = ws.root / USERS / ".secret"  # where it was kept before: beside the users' folders, and served with them
    if old.exists():
        try:
            if not path.exists():
                os.replace(old, path)  # the same secret: every visitor keeps their folder
            old.unlink(missing_ok=True)
        except FileNotFoundError:  # another app moved it first
            pass
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())
