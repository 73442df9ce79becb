"""The built-in demo dataset: deterministic, well-formed, three recognisably different styles."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.data.demo import DEMO_CLASSES, demo_images, render_demo_image

REPO = Path(__file__).resolve().parents[1]


def _digest(images: list[Image.Image]) -> str:
    sha = hashlib.sha256()
    for image in images:
        sha.update(image.tobytes())
    return sha.hexdigest()


def _by_class(per_class: int, size: int, seed: int = 0) -> dict[str, list[Image.Image]]:
    grouped: dict[str, list[Image.Image]] = {label: [] for label in DEMO_CLASSES}
    for label, _, image in demo_images(per_class=per_class, seed=seed, size=size):
        grouped[label].append(image)
    return grouped


def _axis_aligned_edge_fraction(image: Image.Image) -> float:
    # Of the strong edges, how many are purely horizontal or vertical (Mondrian: nearly all).
    grey = np.asarray(image.convert("L"), float)
    gx = np.abs(np.diff(grey, axis=1))[:-1, :] > 30
    gy = np.abs(np.diff(grey, axis=0))[:, :-1] > 30
    strong = gx | gy
    return float((gx ^ gy)[strong].mean())


def _periodicity(image: Image.Image) -> float:
    # Peak normalised autocorrelation away from zero lag: a tiling repeats itself, drips don't.
    grey = np.asarray(image.convert("L"), float)
    grey -= grey.mean()
    n = grey.shape[0]
    shape = (2 * n, 2 * n)
    spectrum = np.fft.rfft2(grey, s=shape)
    ones = np.fft.rfft2(np.ones_like(grey), s=shape)
    corr = np.fft.irfft2(spectrum * np.conj(spectrum), s=shape)
    overlap = np.fft.irfft2(ones * np.conj(ones), s=shape)
    corr = np.fft.fftshift(corr / np.maximum(overlap, 1.0) / (grey.var() + 1e-9))
    ys, xs = np.mgrid[-n:n, -n:n]
    radius = np.hypot(xs, ys)
    return float(corr[(radius > 0.12 * n) & (radius < 0.75 * n)].max())


def test_class_names() -> None:
    assert DEMO_CLASSES == ("abstract", "geometric", "islamic")


def test_demo_images_count_names_and_format() -> None:
    items = list(demo_images(per_class=3, seed=5, size=32))
    assert len(items) == 3 * len(DEMO_CLASSES)
    assert [label for label, _, _ in items] == [c for c in DEMO_CLASSES for _ in range(3)]
    names = [name for _, name, _ in items]
    assert names[:3] == ["abstract_000.png", "abstract_001.png", "abstract_002.png"]
    assert len(set(names)) == len(items)
    for label, name, image in items:
        assert name.startswith(label + "_") and name.endswith(".png")
        assert image.mode == "RGB" and image.size == (32, 32)


@pytest.mark.parametrize("label", DEMO_CLASSES)
@pytest.mark.parametrize("size", [16, 100])
def test_render_size_and_mode(label: str, size: int) -> None:
    image = render_demo_image(label, seed=1, size=size)
    assert image.mode == "RGB" and image.size == (size, size)


@pytest.mark.parametrize("label", DEMO_CLASSES)
def test_render_is_deterministic(label: str) -> None:
    first = render_demo_image(label, seed=42, size=64)
    assert first.tobytes() == render_demo_image(label, seed=42, size=64).tobytes()
    assert first.tobytes() != render_demo_image(label, seed=43, size=64).tobytes()
    assert render_demo_image(label, seed=-3, size=32).size == (32, 32)


def test_dataset_seed_changes_images_and_smaller_set_is_prefix() -> None:
    small = [image.tobytes() for _, _, image in demo_images(per_class=2, seed=0, size=32)]
    large = [image.tobytes() for _, _, image in demo_images(per_class=3, seed=0, size=32)]
    assert small == large[0:2] + large[3:5] + large[6:8]
    other = [image.tobytes() for _, _, image in demo_images(per_class=2, seed=1, size=32)]
    assert all(a != b for a, b in zip(small, other))


def test_same_images_in_a_fresh_process_with_other_hash_seed() -> None:
    # Guards against anything salted per process (str hash) leaking into the seeding.
    here = _digest([image for _, _, image in demo_images(per_class=2, seed=9, size=32)])
    script = (
        "import hashlib; from studio.data.demo import demo_images\n"
        "sha = hashlib.sha256()\n"
        "for _, _, im in demo_images(per_class=2, seed=9, size=32): sha.update(im.tobytes())\n"
        "print(sha.hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == here


def test_unknown_class_and_tiny_size_are_rejected() -> None:
    with pytest.raises(ValueError, match="Unknown demo class"):
        render_demo_image("cubism", seed=0)
    with pytest.raises(ValueError, match="at least 16 px"):
        render_demo_image("abstract", seed=0, size=8)


def test_images_within_a_class_are_not_near_duplicates() -> None:
    for label, images in _by_class(per_class=8, size=64).items():
        arrays = [np.asarray(image, float) for image in images]
        for a, b in itertools.combinations(arrays, 2):
            assert np.abs(a - b).mean() > 12, f"two {label} images are nearly identical"


def test_classes_differ_statistically() -> None:
    grouped = _by_class(per_class=8, size=96, seed=3)
    axis = {label: [_axis_aligned_edge_fraction(im) for im in grouped[label]] for label in grouped}
    period = {label: [_periodicity(im) for im in grouped[label]] for label in grouped}
    # Mondrian grids have (almost) only horizontal and vertical edges; drips and stars don't.
    assert min(axis["geometric"]) > 0.85
    assert max(axis["abstract"] + axis["islamic"]) < 0.75
    # Tessellations repeat; drip paintings don't.
    assert min(period["islamic"]) > 0.6
    assert max(period["abstract"]) < 0.45


def test_demo_command_builds_a_labelled_deterministic_dataset(tmp_path):
    from studio.cli import main
    from studio.data.dataset import Dataset
    from studio.workspace import Workspace

    for name in ("one", "two"):
        assert main(["--workspace", str(tmp_path), "dataset", "demo", name, "--per-class", "3", "--seed", "5", "--size", "64"]) == 0
    ws = Workspace.resolve(tmp_path)
    one, two = Dataset.open(ws, "one"), Dataset.open(ws, "two")
    assert one.counts() == {"abstract": 3, "geometric": 3, "islamic": 3}
    assert [img["sha256"] for img in one.images] == [img["sha256"] for img in two.images]
    assert all(Image.open(one.image_path(img)).size == (64, 64) for img in one.images)
    # A second demo into a non-empty dataset is refused, and leaves the first intact.
    assert main(["--workspace", str(tmp_path), "dataset", "demo", "one", "--per-class", "3"]) == 2
    assert len(Dataset.open(ws, "one").images) == 9
