"""Shared fixtures: a throwaway workspace, and test images whose perceptual hashes differ from each other."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image, ImageFile

from studio.workspace import Workspace

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # `make test` runs workers side by side: each, and all it starts, gets its share
    os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


def noise_image(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """Random colour blobs plus grain.

    Flat colours all share one perceptual hash; pure per-pixel noise averages out to a grey
    thumbnail whose hash flips under re-encoding. Blobs (a 6×6 random grid upscaled) give
    every seed its own hash (16+ bits apart) that survives JPEG and resizing (≤2 bits).
    """
    rng = np.random.default_rng(seed)
    blobs = Image.fromarray((rng.random((6, 6, 3)) * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC)
    grain = rng.integers(-20, 21, (height, width, 3))
    img = Image.fromarray(np.clip(np.asarray(blobs, dtype=np.int16) + grain, 0, 255).astype(np.uint8))
    return img if mode == "RGB" else img.convert(mode)


def pytest_collection_modifyitems(items):
    """The browser files first: they are the longest, and `make test`'s workers (pytest-xdist, a file each) finish
    together when the longest work is handed out first."""
    def browser_file(item) -> bool:
        marks = getattr(item.module, "pytestmark", [])
        return any(mark.name == "browser" for mark in (marks if isinstance(marks, list) else [marks]))

    items.sort(key=lambda item: not browser_file(item))  # stable: each file's tests keep their order


@pytest.fixture(autouse=True, scope="session")
def patient_browser_checks():
    """A loaded CI machine answers a click in seconds, past the 5 s Playwright's expect() waits by default."""
    try:
        from playwright.sync_api import expect
    except ImportError:
        return
    expect.set_options(timeout=30_000)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace.resolve(tmp_path / "ws")


@pytest.fixture
def make_image(tmp_path: Path) -> Callable[..., Path]:
    """make_image("in/a.png", 96, 80, mode=..., fmt=..., **save_kwargs) writes a noise image and returns its path.

    Each call without an explicit seed uses a new one, so images never collide as duplicates.
    """
    seeds = itertools.count(1000)

    def make(rel: str, width: int = 96, height: int = 96, *, seed: int | None = None, mode: str = "RGB",
             fmt: str | None = None, **save_kwargs) -> Path:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        noise_image(width, height, next(seeds) if seed is None else seed, mode).save(path, format=fmt, **save_kwargs)
        return path

    return make


ROOT = Path(__file__).resolve().parents[1]


RUN_CACHE = "STUDIO_TEST_RUN_CACHE"  # the controller's cache folder, which `make test`'s workers inherit


def pytest_configure(config):
    """Under `make test` (pytest-xdist), the controller makes one cache folder for the whole run and paints the demo
    into it on every core before the workers start: each worker used to paint it at its start, both at once on a core
    each (13 s)."""
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None):
        return
    from studio.data.dataset import create_demo_dataset

    os.environ[RUN_CACHE] = os.environ["STUDIO_CACHE"] = tempfile.mkdtemp(prefix="studio-cache-")
    with tempfile.TemporaryDirectory() as scratch:  # a new workspace's demo, with whatever it is made of
        create_demo_dataset(Workspace.resolve(scratch), "demo")


def pytest_unconfigure(config):
    if not hasattr(config, "workerinput") and os.environ.get(RUN_CACHE):
        shutil.rmtree(os.environ.pop(RUN_CACHE), ignore_errors=True)


@pytest.fixture(autouse=True, scope="session")
def studio_cache(tmp_path_factory) -> Path:
    """One cache folder for the whole run, inherited by the apps and jobs it starts: the demo is painted once, and no
    test sees what the developer's own cache holds (downloaded weights)."""
    os.environ["STUDIO_CACHE"] = os.environ.get(RUN_CACHE) or str(tmp_path_factory.mktemp("studio-cache"))
    return Path(os.environ["STUDIO_CACHE"])


@pytest.fixture(autouse=True)
def hub_probe_says_reachable(monkeypatch):
    """Tests never touch the network, the hub probe included: it answers "reachable", so a test that unsets
    HF_HUB_OFFLINE means "online". tests/test_reach.py puts the real probe back to check it."""
    from studio.models import reach

    reach.forget()
    monkeypatch.setattr(reach, "_probe", lambda endpoint: True)


@contextmanager
def running_app(workspace: Path, *extra: str, env: dict[str, str] | None = None):
    """`python app.py --dev` on a free port over `workspace`, offline (HF_HUB_OFFLINE=1 unless `env` says otherwise);
    yields (url, process), then stops it (SIGTERM)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", **(env or {})}
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--workspace", str(workspace),
                             "--dev", *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
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
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def decoded(monkeypatch) -> list[tuple[int, int]]:
    """Sizes of the images PIL decodes, to prove an image past a bound is refused from its header alone."""
    sizes: list[tuple[int, int]] = []
    real = ImageFile.ImageFile.load

    def load(self):
        sizes.append(self.size)
        return real(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return sizes


@pytest.fixture
def quick_judge(monkeypatch):
    """A judge of 40 steps instead of 500, where a test checks what evaluate reports, not how good the judge is."""
    from studio import evaluate, metrics

    full = metrics.train_classifier

    def quick(*args, **kwargs):
        return full(*args, **{**kwargs, "steps": 40})

    monkeypatch.setattr(metrics, "train_classifier", quick)
    monkeypatch.setattr(evaluate, "train_classifier", quick)
    monkeypatch.setattr(evaluate, "_judges", type(evaluate._judges)())  # its quick judges are forgotten after it
