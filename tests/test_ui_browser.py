"""The Dataset tab in a real headless Chromium: upload through the page, see the gallery, see a rejected file named."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
SHOTS = Path(os.environ.get("STUDIO_SCREENSHOTS", ROOT / "tests" / "screenshots"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs it (apt-get install chromium).")
        pytest.skip("Chromium is not installed (apt-get install chromium) — browser tests skipped.")
    workspace = tmp_path_factory.mktemp("ws")
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--workspace", str(workspace)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/config", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"app did not start:\n{proc.stdout.read().decode() if proc.poll() is not None else ''}")
                time.sleep(0.5)
        yield url, workspace
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def studio_page(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(30_000)
        page.goto(app_url[0])
        page.get_by_role("tab", name="Dataset").wait_for()
        yield page
        browser.close()


def _upload_files(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(1)
    files = []
    for i in range(3):
        path = tmp_path / f"painting_{i}.png"
        Image.fromarray(rng.integers(0, 255, (96 + 8 * i, 128, 3), dtype=np.uint8)).save(path)
        files.append(path)
    bad = tmp_path / "not_a_picture.png"
    bad.write_text("this is text, not pixels")
    return [*files, bad]


def test_tabs_exist(studio_page):
    page = studio_page
    for tab in ("Dataset", "Train", "Generate", "Blend"):
        assert page.get_by_role("tab", name=tab).count() >= 1


def test_upload_shows_gallery_and_names_rejected_file(studio_page, app_url, tmp_path):
    page = studio_page
    from playwright.sync_api import expect

    page.locator("#dataset-name input").fill("browser-set")
    page.locator("#dataset-name input").press("Enter")
    page.locator("#dataset-upload input[type=file]").set_input_files([str(p) for p in _upload_files(tmp_path)])
    # Wait for the upload to finish (each file is listed) before importing.
    expect(page.locator("#dataset-upload")).to_contain_text("not_a_picture")
    page.locator("#dataset-label input").fill("cubism")
    page.locator("#dataset-label input").press("Enter")
    page.locator("#dataset-import").click()
    expect(page.locator("#dataset-status")).to_contain_text("Imported 3 of 4 files", timeout=60_000)
    expect(page.locator("#dataset-report")).to_contain_text("not_a_picture.png")
    expect(page.locator("#dataset-report")).to_contain_text("not an image")
    expect(page.locator("#dataset-gallery img")).to_have_count(3)
    expect(page.locator("#dataset-counts")).to_contain_text("cubism")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "dataset_import.png"), full_page=True)
    manifest = (app_url[1] / "datasets" / "browser-set" / "dataset.json").read_text()
    assert manifest.count('"label": "cubism"') == 3


def test_select_relabel_and_remove(studio_page, app_url):
    page = studio_page
    from playwright.sync_api import expect

    page.locator("#dataset-gallery button.thumbnail-item").first.click()
    expect(page.locator("#dataset-selected")).to_contain_text("Selected")
    page.locator("#dataset-new-label input").fill("baroque")
    page.locator("#dataset-new-label input").press("Enter")
    page.locator("#dataset-relabel").click()
    expect(page.locator("#dataset-counts")).to_contain_text("baroque")
    page.locator("#dataset-gallery button.thumbnail-item").first.click()
    page.locator("#dataset-remove").click()
    expect(page.locator("#dataset-gallery img")).to_have_count(2)
    manifest = (app_url[1] / "datasets" / "browser-set" / "dataset.json").read_text()
    assert manifest.count('"id"') == 2


def test_demo_dataset_one_click(studio_page, app_url):
    page = studio_page
    from playwright.sync_api import expect

    page.locator("#dataset-demo").click()
    expect(page.locator("#dataset-status")).to_contain_text("generated paintings", timeout=120_000)
    expect(page.locator("#dataset-counts")).to_contain_text("islamic")
    expect(page.locator("#dataset-gallery img")).to_have_count(120, timeout=60_000)
    page.screenshot(path=str(SHOTS / "dataset_demo.png"), full_page=True)


def test_a_typed_dataset_name_cannot_reach_outside_the_workspace(tmp_path):
    from studio.ui.dataset_tab import _existing
    from studio.workspace import Workspace

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "dataset.json").write_text('{"name": "x", "images": []}')
    ws = Workspace.resolve(tmp_path / "ws")
    assert _existing(ws, "../../outside") is None and _existing(ws, "") is None and _existing(ws, "new-one") is None
