"""Whose workspace a request works in.

A studio on your own machine has one workspace, and every request works in it. A shared deployment
(a public Space, `--multi-user`) gives every browser a workspace of its own — every logged-in user,
when the app has a login — under <workspace>/users/, with one job queue for all of them. A browser's
key is a random secret kept in its localStorage, so a reload or a second tab finds the same workspace;
its folder is named by a keyed hash of that key, so no path tells anyone the key or another's folder.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
import threading
from typing import Callable

import gradio as gr

from studio.errors import UserError
from studio.jobs import JobManager
from studio.workspace import USERS, Workspace

SESSION_STORAGE_KEY = "artgan-studio-session"


class Sessions:
    """Maps each request to its workspace and job manager; `render` adds the page-load step that binds a page."""

    def __init__(self, ws: Workspace, jobs: JobManager, *, multi_user: bool = False,
                 on_new_workspace: Callable[[Workspace], None] | None = None):
        self.root, self.multi_user = ws, multi_user
        self._jobs, self._on_new = jobs, on_new_workspace
        self._bound: dict[str, Workspace] = {}  # page (gradio session hash) → workspace
        self._lock = threading.Lock()
        self._setting_up: dict[str, threading.Lock] = {}  # a lock per user folder
        self._secret = _server_secret(ws) if multi_user else b""
        # What the page is built with: a shared studio's is an empty workspace, so no one's names are in anyone's page.
        self._built_from = Workspace.resolve(tempfile.mkdtemp(prefix="studio-empty-")) if multi_user else ws
        self.loaded: gr.events.Dependency | None = None

    def render(self, demo: gr.Blocks) -> None:
        """The first page-load event: find (or make) this browser's workspace. Tabs chain their loads on it."""
        key = gr.BrowserState("", storage_key=SESSION_STORAGE_KEY, secret=self._secret.hex()[:32] or None)
        self.loaded = demo.load(self._bind, [key], [key], show_progress="hidden", api_name="open_session")
        demo.unload(self._unbind)

    def at_build(self) -> JobManager:
        """The runs (and `.ws`) whose names the page is built with; API clients' choices are checked against them."""
        return self._jobs.for_workspace(self._built_from)

    def on_load(self, fn: Callable, inputs=None, outputs=None, **kwargs) -> gr.events.Dependency:
        """Run `fn` when a page opens, once it is bound to its workspace."""
        return self.loaded.then(fn, inputs, outputs, **kwargs)

    def ready(self, request: gr.Request) -> bool:
        """False until the page's load has bound it (a timer may tick before that)."""
        return not self.multi_user or bool(request.username) or request.session_hash in self._bound

    def workspace(self, request: gr.Request) -> Workspace:
        if not self.multi_user:
            return self.root
        if request.username:
            return self._user("user", request.username)
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
            ws = self._user("user", request.username)
        else:
            if not (isinstance(key, str) and len(key) >= 32):
                key = secrets.token_urlsafe(32)
            ws = self._user("browser", key)
        with self._lock:
            self._bound[request.session_hash] = ws
        return key or ""

    def _unbind(self, request: gr.Request) -> None:
        with self._lock:
            self._bound.pop(request.session_hash, None)

    def _user(self, kind: str, identity: str) -> Workspace:
        folder = hmac.new(self._secret, f"{kind}:{identity}".encode(), hashlib.sha256).hexdigest()[:32]
        with self._lock:
            setting_up = self._setting_up.setdefault(folder, threading.Lock())
        with setting_up:  # two tabs of one browser must not both set it up; other people's pages need not wait
            new = not (self.root.root / USERS / folder).exists()
            ws = self.root.user(folder)
            if new and self._on_new:
                self._on_new(ws)
        return ws


def _server_secret(ws: Workspace) -> bytes:
    """A random secret made once per deployment and kept beside the users' folders (readable by the app only)."""
    path = ws.root / USERS / ".secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())
