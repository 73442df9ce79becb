"""The studio in a real headless Chromium, as a first-time user meets it: on a machine with no network and without
HF_HUB_OFFLINE (the hub is a local port nobody answers), upload and curate, train and watch the curves draw, generate,
evaluate and blend. Assertions are about what a person sees: drawn strokes and coloured pixels, visible text."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import running_app
from studio import devices
from studio.jobs import LIVE
from studio.run import RunFolder

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
SHOTS = Path(os.environ.get("STUDIO_SCREENSHOTS", ROOT / "tests" / "screenshots"))


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs it (apt-get install chromium).")
        pytest.skip("Chromium is not installed (apt-get install chromium) — browser tests skipped.")
    workspace = tmp_path_factory.mktemp("ws")
    with socket.socket() as s:  # a port nobody listens on: the hub "cannot be reached", as on a machine without network
        s.bind(("127.0.0.1", 0))
        dead_hub = f"http://127.0.0.1:{s.getsockname()[1]}"
    with running_app(workspace, env={"HF_HUB_OFFLINE": "", "HF_ENDPOINT": dead_hub}) as (url, proc):
        yield url, workspace, proc.pid


FRAME_COUNTER = """(() => {  // before any script of the page: counts the frames the page asks the browser to draw
    const request = window.requestAnimationFrame.bind(window);
    window.__frames_asked = 0;
    window.requestAnimationFrame = (callback) => { window.__frames_asked++; return request(callback); };
})();"""


@pytest.fixture(scope="module")
def studio_page(app_url):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.add_init_script(FRAME_COUNTER)
        page.set_default_timeout(30_000)
        page.goto(app_url[0])
        page.get_by_role("tab", name="Dataset").wait_for()
        # The page's load has opened its dataset (the counts line is always filled then): a test that typed a dataset
        # name before would have raced it.
        expect(page.locator("#dataset-counts")).not_to_be_empty(timeout=120_000)
        yield page
        browser.close()


@pytest.fixture(autouse=True)
def no_job_outlives_its_test(request):
    """A test that fails midway leaves its job training, and every later test's job would queue behind it: stop what is
    live afterwards, as the Stop button does (the run's STOP file), and wait until no job of this workspace trains."""
    yield
    if "app_url" not in request.fixturenames:
        return
    runs = request.getfixturevalue("app_url")[1] / "runs"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        live = [run for run in map(RunFolder, runs.glob("*/")) if run.read_status().get("state") in LIVE]
        if not live:
            return
        for run in live:
            run.stop_file.touch()
        time.sleep(1)


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


def test_tabs_exist_and_the_page_says_where_to_start(studio_page):
    from playwright.sync_api import expect

    page = studio_page
    for tab in ("Dataset", "Train", "Generate", "Blend"):
        assert page.get_by_role("tab", name=tab).count() >= 1
    expect(page.locator("#studio-header")).to_contain_text("Start here")
    # A page nobody touches draws nothing new: once its first moments' transitions are over, it must not ask for frames
    # at the screen's rate (gradio's loader left a clock doing that, 60 a second, 7-8% of a core while the page is open).
    asked = []
    while len(asked) < 6 and min(asked, default=99) >= 20:
        page.evaluate("window.__frames_asked = 0")
        page.wait_for_timeout(2000)
        asked.append(page.evaluate("window.__frames_asked"))
    assert min(asked) < 20, f"an idle page keeps asking for frames: {asked} every 2 s"


def drawn_curves(page, plot: str) -> tuple[int, set[str]]:
    """(vertices of the stroked lines, their colours) in a LinePlot's SVG: what a person sees, not that it exists.
    A line with no stroke (the blank-curve bug) has a path but draws nothing, so it counts for nothing."""
    vertices, colours = page.evaluate("""(sel) => {
        const paths = Array.from(document.querySelectorAll(sel + ' .mark-line path'))
            .filter(p => p.getAttribute('stroke') && p.getAttribute('stroke') !== 'none' && p.getAttribute('stroke') !== 'transparent');
        return [paths.reduce((n, p) => n + ((p.getAttribute('d') || '').match(/[ML]/g) || []).length, 0),
                paths.map(p => p.getAttribute('stroke'))];
    }""", plot)
    return vertices, set(colours)


def scrolls_inside(page, selector: str) -> list[int]:
    """Heights of a component's elements that hide part of their content behind a scrollbar (a clipped strip)."""
    return page.evaluate("""(sel) => Array.from(document.querySelectorAll(sel + ' *'))
        .filter(e => e.scrollHeight > e.clientHeight + 2 && ['auto', 'scroll'].includes(getComputedStyle(e).overflowY))
        .map(e => e.clientHeight)""", selector)


def error_badges(page) -> int:
    """Components showing gradio's red "Error" state (what a gr.Error does to every output of its event)."""
    return page.locator("span.error:visible").count()


class SentEvents:
    """Counts the events a page sends the app from now on (each tick of the live panel is one; so is every click)."""

    def __init__(self, page):
        self.page, self.sent, self.since = page, 0, time.monotonic()
        page.on("request", self._count)

    def _count(self, request) -> None:
        if request.method == "POST" and urllib.parse.urlsplit(request.url).path.endswith("/queue/join"):
            self.sent += 1

    def stop(self, at_least_s: float = 0.0) -> tuple[int, float]:
        """(events, seconds) since counting began, waiting first until `at_least_s` have passed."""
        self.page.wait_for_timeout(max(0.0, at_least_s - (time.monotonic() - self.since)) * 1000)
        self.page.remove_listener("request", self._count)
        return self.sent, time.monotonic() - self.since


def coloured_pixels(page, selector: str, at_least: int = 1, timeout_s: float = 20.0) -> int:
    """Pixels of a component's screenshot that are clearly coloured (not white, grey or black text and grid), looked
    at until there are `at_least` or `timeout_s` has passed (an image is drawn a moment after its element appears)."""
    import io

    deadline = time.monotonic() + timeout_s
    while True:
        shot = np.asarray(Image.open(io.BytesIO(page.locator(selector).screenshot())).convert("RGB")).astype(int)
        count = int(((shot.max(axis=2) - shot.min(axis=2)) > 60).sum())
        if count >= at_least or time.monotonic() > deadline:
            return count
        page.wait_for_timeout(250)


def test_first_run_has_the_demo_dataset_and_a_demo_run_ready(studio_page, app_url):
    from playwright.sync_api import expect

    assert (app_url[1] / "datasets" / "demo" / "dataset.json").exists()
    page = studio_page
    page.get_by_role("tab", name="Train").click()
    expect(page.locator("#train-dataset input")).to_have_value("demo")
    expect(page.locator("#train-method input[value=cgan]")).to_be_checked()


def test_upload_shows_gallery_and_names_rejected_file(studio_page, app_url, tmp_path):
    page = studio_page
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Dataset").click()
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
    reason = page.locator("#dataset-report span.text:visible", has_text="Rejected: not an image").first
    expect(reason).to_be_visible()  # the reason itself, whole, inside the table's box: no scrolling sideways to read it
    box, table = reason.bounding_box(), page.locator("#dataset-report").bounding_box()
    assert box["x"] >= table["x"] and box["x"] + box["width"] <= table["x"] + table["width"], (box, table)
    assert reason.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), "the reason is clipped"
    expect(page.locator("#dataset-gallery img")).to_have_count(3)
    expect(page.locator("#dataset-counts")).to_contain_text("cubism")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "dataset_import.png"), full_page=True)
    manifest = (app_url[1] / "datasets" / "browser-set" / "dataset.json").read_text()
    assert manifest.count('"label": "cubism"') == 3


def test_select_relabel_remove_and_undo(studio_page, app_url):
    page = studio_page
    from playwright.sync_api import expect

    page.locator("#dataset-remove").click()  # nothing selected: a harmless click, answered in words
    expect(page.locator("#dataset-selected")).to_contain_text("Nothing is selected")
    expect(page.locator("#dataset-gallery img")).to_have_count(3)
    expect(page.locator("#dataset-counts")).to_contain_text("cubism")
    assert page.locator("#dataset-gallery .error, #dataset-counts .error, #dataset-show .error").count() == 0
    page.screenshot(path=str(SHOTS / "dataset_remove_nothing.png"), full_page=True)

    thumbs = page.locator("#dataset-gallery button.thumbnail-item")
    thumbs.nth(0).click()
    expect(page.locator("#dataset-selected")).to_contain_text("Selected 1: painting_")
    thumbs.nth(1).click()
    expect(page.locator("#dataset-selected")).to_contain_text("Selected 2")
    page.locator("#dataset-new-label input").fill("baroque")
    page.locator("#dataset-new-label input").press("Enter")
    page.locator("#dataset-relabel").click()
    expect(page.locator("#dataset-selected")).to_contain_text("Relabelled 2 as baroque: painting_")
    expect(page.locator("#dataset-counts")).to_contain_text("baroque")
    page.locator("#dataset-select-all").click()
    expect(page.locator("#dataset-selected")).to_contain_text("Selected 3")
    page.locator("#dataset-remove").click()
    expect(page.locator("#dataset-gallery img")).to_have_count(0)
    expect(page.locator("#dataset-selected")).to_contain_text("Removed 3: painting_")
    page.locator("#dataset-undo").click()
    expect(page.locator("#dataset-gallery img")).to_have_count(3)
    expect(page.locator("#dataset-selected")).to_contain_text("Put back 3")
    thumbs.first.click()
    page.locator("#dataset-remove").click()
    expect(page.locator("#dataset-gallery img")).to_have_count(2)
    manifest = (app_url[1] / "datasets" / "browser-set" / "dataset.json").read_text()
    assert manifest.count('"id"') == 2 and manifest.count('"label": "baroque"') >= 1


def test_demo_dataset_one_click(studio_page, app_url):
    page = studio_page
    from playwright.sync_api import expect

    page.locator("#dataset-demo").click()  # the first visit made "demo": it is opened, not copied to demo-2
    expect(page.locator("#dataset-status")).to_contain_text("demo is already here", timeout=120_000)
    assert not (app_url[1] / "datasets" / "demo-2").exists()
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


def test_train_preview_reload_stop_continue(studio_page, app_url):
    """Start the demo cGAN, see the step-0 preview, reload and find it still there, stop it, continue it to the end."""
    from playwright.sync_api import expect

    page = studio_page
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-run-name").get_by_role("textbox").fill("browser-run")
    page.locator("#train-iters input").fill("100000")
    page.locator("#train-sample-every input").fill("20")
    page.locator("#train-sample-every input").press("Tab")
    started = time.time()
    page.locator("#train-start").click()
    expect(page.locator("#train-preview img")).to_be_visible(timeout=60_000)
    first_preview_s = time.time() - started
    expect(page.locator("#train-status")).to_contain_text("Running", timeout=60_000)
    # The curves draw during the live run, without a reload, in the run's own terms (this page first showed no run).
    running = SentEvents(page)  # nothing is clicked until Stop: what it counts are the live panel's ticks
    deadline, first = time.time() + 60, (0, set())
    while time.time() < deadline and first[0] == 0:
        time.sleep(1)
        first = drawn_curves(page, "#train-plot")
    assert first[0] > 0 and len(first[1]) >= 2, f"no stroked curve is drawn: {first}"
    deadline, later = time.time() + 60, first
    while time.time() < deadline and later[0] <= first[0]:
        time.sleep(1)
        later = drawn_curves(page, "#train-plot")
    assert later[0] > first[0], f"the curves stopped growing: {first[0]} then {later[0]} vertices"
    assert coloured_pixels(page, "#train-plot", 201) > 200  # the strokes are on screen, in colour
    legend = page.locator("#train-plot .role-legend").text_content()
    assert "d_loss" in legend and "emd" not in legend, legend
    page.screenshot(path=str(SHOTS / "train_running.png"), full_page=True)
    page.locator("#train-plot").screenshot(path=str(SHOTS / "train_curves_live.png"))
    print(f"curves while training: {first[0]} then {later[0]} vertices")
    # This page's browser runs here: its ticks tell the job to keep to its share of the cores (studio.devices).
    assert time.time() - devices.watched_file(app_url[1] / ".app-busy").stat().st_mtime < 5
    ticks, seconds = running.stop(at_least_s=6)
    assert ticks >= seconds / 2, f"{ticks} ticks in {seconds:.0f} s"  # every second while a job runs, not every five

    page.reload()  # the job belongs to the server: the page reattaches, and the form comes back from the browser
    page.get_by_role("tab", name="Train").click()
    expect(page.locator("#train-status")).to_contain_text("browser-run")
    expect(page.locator("#train-status")).to_contain_text("Running")
    expect(page.locator("#train-iters input")).to_have_value("100000")

    page.locator("#train-stop").click()
    expect(page.locator("#train-status")).to_contain_text("Stopped at step", timeout=60_000)
    stopped_at = json.loads((app_url[1] / "runs" / "browser-run" / "status.json").read_text())["step"]
    page.locator("#train-iters input").fill(str(stopped_at + 40))  # Continue trains up to the form's Steps
    page.locator("#train-iters input").press("Tab")
    page.locator("#train-continue").click()
    expect(page.locator("#train-status")).to_contain_text(f"Finished: step {stopped_at + 40}/{stopped_at + 40}", timeout=120_000)
    expect(page.locator("#train-history img").first).to_be_visible()
    finished = SentEvents(page)
    page.screenshot(path=str(SHOTS / "train_finished.png"), full_page=True)
    # Earlier previews: whole rows, nothing hidden behind an inner scroll; each grid names its rows (the classes).
    assert page.locator("#train-history img").count() >= 3
    assert scrolls_inside(page, "#train-history") == [], "the earlier-previews strip is clipped"
    page.locator("#train-history").screenshot(path=str(SHOTS / "train_history.png"))
    grid = np.asarray(Image.open(app_url[1] / "runs" / "browser-run" / "samples" / "step_000000.png").convert("L"))
    margin = grid[:, :12]  # white with dark letters where the rows are named; generated pixels otherwise
    assert (margin == 255).mean() > 0.6 and (margin < 128).sum() > 20, "no row labels beside the preview grid"
    log = (app_url[1] / "runs" / "browser-run" / "log.txt").read_text()
    assert f"resumed from step {stopped_at}" in log and "failed" not in log
    ticks, seconds = finished.stop(at_least_s=6)
    assert ticks <= seconds / 5 + 1, f"{ticks} ticks in {seconds:.0f} s"  # nothing runs: every 5 s, sparing the renderer
    print(f"Start → first preview in the browser: {first_preview_s:.1f} s")


def test_generate_a_class_grid_while_a_job_trains_and_download_it(studio_page, app_url, tmp_path):
    import re

    from playwright.sync_api import expect

    page = studio_page
    page.get_by_role("tab", name="Train").click()  # keep a job training while we generate
    page.locator("#train-run-name").get_by_role("textbox").fill("busy")
    page.locator("#train-iters input").fill("100000")
    page.locator("#train-iters input").press("Tab")
    page.locator("#train-start").click()
    expect(page.locator("#train-status")).to_contain_text("Running", timeout=60_000)

    page.get_by_role("tab", name="Generate").click()
    page.locator("#generate-refresh").click()
    page.locator("#generate-source input").click()
    page.get_by_role("option", name=re.compile("browser-run")).click()
    expect(page.locator("#generate-source-info")).to_contain_text("3 classes")
    for attempt in range(2):  # the first click loads the model; the second is what a user feels afterwards
        page.locator("#generate-seed input").fill(str(attempt + 1))
        page.locator("#generate-seed input").press("Tab")
        clicked = time.time()
        page.locator("#generate-button").click()
        expect(page.locator("#generate-status")).to_contain_text(f"seed {attempt + 1}", timeout=60_000)
        answered = time.time() - clicked
    print(f"Generate answered in {answered:.2f} s while a job trained")
    expect(page.locator("#generate-gallery img")).to_have_count(12)  # 4 per class × 3 classes
    with page.expect_download() as download:
        page.locator("#generate-download-zip").click()
    saved = tmp_path / "images.zip"
    download.value.save_as(saved)
    import zipfile

    assert len(zipfile.ZipFile(saved).namelist()) == 12
    page.screenshot(path=str(SHOTS / "generate.png"), full_page=True)

    page.get_by_role("tab", name="Train").click()
    page.locator("#train-stop").click()
    expect(page.locator("#train-status")).to_contain_text("Stopped at step", timeout=60_000)
    page.locator("#train-delete").click()  # asks first
    expect(page.locator("#train-delete-confirm")).to_be_visible()
    assert (app_url[1] / "runs" / "busy").exists()
    page.locator("#train-delete-confirm").click()
    expect(page.locator("#train-status")).to_contain_text("No run selected")
    assert not (app_url[1] / "runs" / "busy").exists() and (app_url[1] / "runs" / "browser-run").exists()

    # Evaluate needs no job beside it (Generate above did): the report card of the run picked above.
    page.get_by_role("tab", name="Generate").click()
    page.get_by_text("Evaluate: is it art").click()
    expect(page.locator("#evaluate-features input")).to_have_value(re.compile("Judge"))  # offline: the one that is here
    clicked = time.time()
    page.locator("#evaluate-button").click()
    expect(page.locator("#evaluate-card")).to_contain_text("KID ×10³", timeout=120_000)
    expect(page.locator("#evaluate-card")).to_contain_text("judge:")
    print(f"Evaluate answered offline in {time.time() - clicked:.1f} s")
    expect(page.locator("#evaluate-card")).to_contain_text("Memorised")
    expect(page.locator("#evaluate-card")).to_contain_text(re.compile(r"real images the judge did not learn from: \d\.\d\d"))
    expect(page.locator("#evaluate-gallery img")).to_have_count(8)
    page.locator("#evaluate-history-button").click()
    expect(page.locator("#evaluate-history")).to_contain_text("step", timeout=120_000)
    assert json.loads((app_url[1] / "runs" / "browser-run" / "eval_history.json").read_text())["rows"]
    page.screenshot(path=str(SHOTS / "evaluate.png"), full_page=True)


def test_blend_tab_guides_a_run_with_a_prompt(studio_page, app_url):
    """Guide the cGAN trained above with a prompt (tiny CLIP): a job like training, with its score curve and result."""
    from playwright.sync_api import expect

    page = studio_page
    page.get_by_role("tab", name="Blend").click()
    page.locator("#blend-a input").click()  # focusing refreshes the list of trained runs
    option = page.get_by_role("option", name="browser-run", exact=True)
    expect(option).to_be_visible()
    option.click()
    expect(page.locator("#blend-a input")).to_have_value("browser-run")
    page.locator("#blend-prompt").get_by_role("textbox").fill("a red circle")
    page.locator("#blend-steps input").fill("20")
    page.locator("#blend-steps input").press("Tab")
    page.locator("#blend-start").click()
    expect(page.locator("#blend-status")).to_contain_text("Finished: step 20/20", timeout=90_000)
    expect(page.locator("#blend-result")).to_contain_text("final CLIP score", timeout=30_000)
    expect(page.locator("#blend-mix-table")).to_contain_text("geometric")  # the class mix the prompt chose
    result = json.loads((app_url[1] / "runs" / "blend-a-red-circle" / "result" / "result.json").read_text())
    assert (app_url[1] / "exports" / "blends" / "blend-a-red-circle.png").exists()  # exports/ gets a copy
    assert len(result["scores"]) == 20 and result["a"] == "browser-run"
    page.screenshot(path=str(SHOTS / "blend.png"), full_page=True)
    # One result is one thumbnail, whole: not a full-width square cropped by the gallery's height.
    gallery, thumb = (page.locator(sel).bounding_box() for sel in ("#blend-gallery", "#blend-gallery img"))
    assert thumb["width"] < gallery["width"] / 2, (thumb, gallery)
    assert thumb["y"] >= gallery["y"] and thumb["y"] + thumb["height"] <= gallery["y"] + gallery["height"], (thumb, gallery)
    assert scrolls_inside(page, "#blend-gallery") == []
    assert page.locator("#blend-history img").count() >= 7 and scrolls_inside(page, "#blend-history") == []  # 3 rows
    page.locator("#blend-gallery").screenshot(path=str(SHOTS / "blend_gallery.png"))


def test_offline_the_page_promises_no_download_and_refuses_a_bsa_start_at_once(studio_page, app_url):
    """No network and no HF_HUB_OFFLINE: pickers say where to put the files, a BSA start is refused in a sentence before
    anything is queued, and advice with '<folder>' in it shows that word (it is text, not an HTML tag)."""
    import re

    from playwright.sync_api import expect

    page = studio_page
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-method input[value=bsa]").check()
    page.locator("#train-model input").click()
    expect(page.get_by_role("option").first).to_be_visible()
    texts = page.get_by_role("option").all_inner_texts()
    assert not any("will download" in t for t in texts) and any("not available offline: put" in t for t in texts), texts
    page.screenshot(path=str(SHOTS / "offline_model_picker.png"), full_page=True)
    page.get_by_role("option", name=re.compile("biggan-deep-128")).click()
    page.locator("#train-run-name").get_by_role("textbox").fill("bsa-offline")
    clicked = time.time()
    page.locator("#train-start").click()
    toast = page.get_by_test_id("toast-body").last
    expect(toast).to_contain_text("not available offline: put config.json and pytorch_model.bin in", timeout=20_000)
    print(f"BSA start refused after {time.time() - clicked:.1f} s")
    assert not (app_url[1] / "runs" / "bsa-offline").exists()
    expect(page.locator("#train-start-note")).to_contain_text("Not started: BigGAN 'biggan-deep-128' is not available")
    assert error_badges(page) == 0  # a refusal is a sentence, not an error state on the panel
    page.screenshot(path=str(SHOTS / "offline_bsa_refused.png"), full_page=True)
    page.locator("#train-method input[value=cgan]").check()

    page.get_by_role("tab", name="Generate").click()
    page.locator("#generate-source input").click()
    texts = page.get_by_role("option").all_inner_texts()
    assert texts and not any("will download" in t for t in texts), texts
    page.keyboard.press("Escape")

    page.get_by_role("tab", name="Blend").click()
    page.locator("#blend-clip input").click()
    page.get_by_role("option", name=re.compile("ViT-B-32.*not available offline")).click()
    page.locator("#blend-start").click()
    expect(page.get_by_test_id("toast-body").last).to_contain_text("local-dir:<folder>", timeout=20_000)
    expect(page.locator("#blend-start-note")).to_contain_text("local-dir:<folder>")
    assert error_badges(page) == 0, "a refused blend turned the panel's boxes into Error badges"
    page.screenshot(path=str(SHOTS / "offline_blend_refused.png"), full_page=True)


def test_only_the_workspace_is_served_over_http(app_url, tmp_path):
    """The app serves files from the workspace (previews, exports) and nothing else: no traversal, no absolute paths."""
    import urllib.error
    import urllib.parse

    url, workspace, _ = app_url
    secret = workspace.parent / "outside-secret.txt"
    secret.write_text("not for the browser")
    inside = next((workspace / "datasets" / "demo").rglob("*.png"))

    def status(path: str) -> int:
        try:
            with urllib.request.urlopen(f"{url}/gradio_api/file={urllib.parse.quote(path)}", timeout=10) as r:
                body = r.read()
                return 200 if b"not for the browser" not in body and b"root:" not in body else 599
        except urllib.error.HTTPError as exc:
            return exc.code

    assert status(str(inside)) == 200
    for path in (str(secret), "/etc/passwd", f"{workspace}/../{secret.name}", f"{workspace}/datasets/../../{secret.name}"):
        assert status(path) in (403, 404), path



def test_fine_patterns_train_with_their_preset_and_the_page_says_so(studio_page, app_url):
    """Textile swatches picked on the first-run form: the note under Dataset says which preset the images picked and
    the Preset shows it; the run trains with it, and Generate's Truncation starts where that run samples."""
    import re

    from playwright.sync_api import expect

    from studio.data.dataset import create_demo_dataset
    from studio.workspace import Workspace

    create_demo_dataset(Workspace.resolve(app_url[1]), "swatches", family="textures", per_class=4, seed=0, size=32)
    page = studio_page
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-method input[value=cgan]").check()
    page.locator("#train-dataset input").click()  # the focus lists the datasets made since the page loaded
    page.get_by_role("option", name="swatches").click()
    note = page.locator("#train-data-note")
    expect(note).to_contain_text("These images are fine repeating patterns", timeout=30_000)
    expect(note).to_contain_text("cpu-32-patterns preset")
    expect(page.locator("#train-preset input")).to_have_value(re.compile("fine repeating patterns"))
    expect(page.locator("#train-iters input")).to_have_value("5000")  # the preset's steps fill the form
    page.locator("#train-run-name").get_by_role("textbox").fill("swatch-run")
    page.locator("#train-iters input").fill("10")
    page.locator("#train-iters input").press("Tab")
    page.locator("#train-start").click()
    expect(page.locator("#train-status")).to_contain_text("Finished", timeout=120_000)
    config = json.loads((app_url[1] / "runs" / "swatch-run" / "config.json").read_text())["config"]
    assert (config["upsample"], config["truncation"], config["batch"]) == ("shuffle", 1.3, 16)
    page.screenshot(path=str(SHOTS / "train_fine_patterns.png"), full_page=True)
    page.get_by_role("tab", name="Generate").click()
    page.locator("#generate-refresh").click()
    page.locator("#generate-source input").click()
    page.get_by_role("option", name=re.compile("swatch-run")).click()
    expect(page.locator("#generate-truncation input[type=number]")).to_have_value("1.3")


def test_a_gpu_preset_picks_fastgan_and_offers_its_resolutions(studio_page):
    """Last: it leaves the form on a GPU preset. The resolutions on offer follow the architecture, with no error."""
    from playwright.sync_api import expect

    page = studio_page
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-method input[value=cgan]").check()
    page.locator("#train-preset input").click()
    page.get_by_role("option", name="1024 px FastGAN").click()
    expect(page.locator("#train-arch input")).to_have_value("fastgan")
    expect(page.locator("#train-resolution input")).to_have_value("1024")
    page.screenshot(path=str(SHOTS / "train_gpu_preset.png"))
    assert page.get_by_text("is not in the list of choices").count() == 0
    page.locator("#train-arch input").click()
    page.get_by_role("option", name="light").click()
    expect(page.locator("#train-resolution input")).to_have_value("32")  # 1024 is not the light net's: its first
