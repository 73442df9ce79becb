"""A shared studio (`python app.py --multi-user`, the default on a Space) in two real browsers: Alice and Bob.

Each gets a workspace of their own; neither sees, downloads, stops or deletes what the other made;
a reload finds your own work again; the files a page shows are served as copies, never by workspace path.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import running_app
from test_shared_studio import outside_workspace

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("STUDIO_SCREENSHOTS", Path(__file__).resolve().parents[1] / "tests" / "screenshots"))


def test_two_browsers_have_their_own_workspaces():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs it (apt-get install chromium).")
        pytest.skip("Chromium is not installed (apt-get install chromium) — browser tests skipped.")
    with outside_workspace() as workspace:  # where a Space keeps it (/data/workspace): not under the working or temp dir
        _two_browsers(workspace)


def _two_browsers(workspace: Path) -> None:
    from gradio_client import Client
    from playwright.sync_api import expect, sync_playwright

    with running_app(workspace, "--multi-user") as (url, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        alice = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()  # contexts: separate localStorage
        bob = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        for page in (alice, bob):
            page.set_default_timeout(60_000)

        alice.goto(url)
        expect(alice.locator("#dataset-counts")).to_contain_text("120 images", timeout=60_000)  # a new workspace starts with the demo
        alice.locator("#dataset-name input").fill("alice-art")
        alice.locator("#dataset-name input").press("Enter")
        alice.locator("#dataset-demo").click()
        expect(alice.locator("#dataset-status")).to_contain_text("Created alice-art", timeout=60_000)
        alice.get_by_role("tab", name="Train").click()
        alice.locator("#train-run-name").get_by_role("textbox").fill("alice-run")
        alice.locator("#train-iters input").fill("100000")
        alice.locator("#train-iters input").press("Tab")
        alice.locator("#train-start").click()
        expect(alice.locator("#train-status")).to_contain_text("Running", timeout=90_000)

        alice.reload()  # her key is in her browser: the same workspace, her run still training
        alice.get_by_role("tab", name="Train").click()
        expect(alice.locator("#train-status")).to_contain_text("alice-run", timeout=30_000)  # a start takes seconds on a busy machine
        expect(alice.locator("#train-status")).to_contain_text("Running")
        src = alice.locator("#train-preview img").get_attribute("src")
        assert "/users/" not in src and str(workspace) not in src  # served from gradio's cache, not by workspace path
        preview = next((workspace / "users").glob("*/runs/alice-run/samples/*.png"))
        with pytest.raises(urllib.error.HTTPError, match="403"):  # not even with the real path in hand
            urllib.request.urlopen(f"{url}/gradio_api/file={urllib.parse.quote(str(preview))}", timeout=10)
        alice.screenshot(path=str(SHOTS / "multi_user_alice.png"), full_page=True)
        alice.locator("#train-stop").click()  # Bob's part needs no job running: on 2 cores it only slows his pages
        expect(alice.locator("#train-status")).to_contain_text("Stopped at step", timeout=90_000)

        bob.goto(url)
        expect(bob.locator("#dataset-counts")).to_contain_text("120 images", timeout=60_000)
        bob.locator("#dataset-name input").click()
        expect(bob.get_by_role("option", name="demo", exact=True)).to_be_visible()
        expect(bob.get_by_role("option", name="alice-art")).to_have_count(0)
        bob.keyboard.press("Escape")
        bob.get_by_role("tab", name="Train").click()
        expect(bob.locator("#train-status")).to_contain_text("No run selected")
        bob.locator("#train-run input").click()
        expect(bob.get_by_role("option")).to_have_count(0)
        bob.keyboard.press("Escape")
        bob.get_by_role("tab", name="Generate").click()
        bob.locator("#generate-source input").click()
        expect(bob.get_by_role("option", name="alice-run")).to_have_count(0)
        bob.keyboard.press("Escape")
        bob.screenshot(path=str(SHOTS / "multi_user_bob.png"), full_page=True)

        # Bob through the API, naming Alice's things: his session resolves to his workspace, where they do not exist
        # (a run picker only takes the runs it offered this session; a typed dataset name reaches the handler).
        client = Client(url, verbose=False)
        client.predict("", api_name="/open_session")
        for api_name in ("/on_stop", "/on_delete"):
            with pytest.raises(Exception, match="no run named 'alice-run'|not in the list of choices"):
                client.predict("alice-run", api_name=api_name)
        file, status = client.predict("alice-art", api_name="/on_export")  # refused in the status line
        assert "alice-art" in status and not isinstance(file, str)  # no file: the download stays as it was
        # A client that never opened a session gets nothing at all.
        file, status = Client(url, verbose=False).predict("alice-art", api_name="/on_export")
        assert "reload the page" in status and not isinstance(file, str)

        browser.close()

    users = sorted(p for p in (workspace / "users").iterdir() if p.is_dir())
    assert len(users) == 3  # Alice, Bob and Bob's API session
    assert [u.name for u in users if (u / "datasets" / "alice-art").exists()] == [u.name for u in users if (u / "runs" / "alice-run").exists()]
    assert sum((u / "runs" / "alice-run").exists() for u in users) == 1
    assert not (workspace / "datasets" / "demo").exists()  # nothing is made in the shared root
