"""A shared studio over HTTP, with its workspace where a Space keeps it (`STUDIO_WORKSPACE=/data/workspace`): outside
the working and temp directories, which gradio treats specially. Nothing private is served by its path; what a page
shows is served as gradio's copy."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from conftest import ROOT, running_app


@contextmanager
def outside_workspace():
    """A fresh folder at an absolute path under neither the working nor the temp directory, removed afterwards."""
    tmp = Path(tempfile.gettempdir()).resolve()
    for parent in (Path("/var/tmp"), Path.home(), Path("/srv")):
        try:
            folder = (parent / f"studio-test-{secrets.token_hex(4)}").resolve()
            if folder.is_relative_to(tmp) or folder.is_relative_to(ROOT) or folder.is_relative_to(Path.cwd()):
                continue
            folder.mkdir(parents=True)
        except OSError:
            continue
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    raise RuntimeError("no writable folder outside the working and temp directories for the test workspace")


def _status(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_nothing_private_is_served_by_its_path():
    from gradio_client import Client

    secret = secrets.token_hex(32)
    with outside_workspace() as workspace:
        (workspace / "users").mkdir()
        (workspace / "users" / ".secret").write_text(secret)  # where an older studio kept it
        with running_app(workspace, "--multi-user") as (url, _):
            alice = Client(url, verbose=False, download_files=False)
            key = alice.predict("", api_name="/open_session")
            folder = workspace / "users" / hmac.new(bytes.fromhex(secret), f"browser:{key}".encode(), hashlib.sha256).hexdigest()[:32]
            assert (folder / "datasets" / "demo" / "dataset.json").exists()  # the old secret still names her folder

            # What her page shows loads, from gradio's cache, by a name that says nothing of the workspace.
            gallery = alice.predict("demo", "(all)", api_name="/on_show")[0]
            image_url = gallery[0]["image"]["url"]
            assert str(workspace) not in image_url and "/users/" not in image_url
            status, body = _status(image_url)
            assert status == 200 and body.startswith(b"\x89PNG")

            # Anyone asking by path gets nothing: the secret (moved, and where it was), her manifest, images, originals.
            private = [workspace / ".studio-private" / "secret", workspace / "users" / ".secret",
                       folder / "datasets" / "demo" / "dataset.json",
                       next((folder / "datasets" / "demo" / "images").iterdir()),
                       next(p for p in (folder / "datasets" / "demo" / "originals").rglob("*") if p.is_file())]
            for path in private:
                for route in ("/gradio_api/file=", "/file="):
                    status, body = _status(f"{url}{route}{urllib.parse.quote(str(path))}")
                    assert status in (403, 404), (path, status)
                    assert secret.encode() not in body
        assert (workspace / ".studio-private" / "secret").read_text().strip() == secret
