"""Demo paintings are painted once per machine: the cached ones are the same pixels, and a damaged cache repaints."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from studio.data import paintings
from studio.data.dataset import CropSettings, Dataset, create_demo_dataset
from studio.data.families import FamilyError, family_images
from studio.workspace import Workspace


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_CACHE", str(tmp_path / "cache"))
    paintings.painted.cache_clear()  # the in-memory copy too, so each call below goes to the folder
    yield tmp_path / "cache" / "paintings"
    paintings.painted.cache_clear()


def _pixels(images):
    return [(label, name, np.asarray(img)) for label, name, img, *_ in images]


def test_a_cached_painting_is_the_painting_and_gives_the_same_dataset(cache, tmp_path):
    fresh = list(family_images("horizons", per_class=2, seed=3, size=64, split="train"))
    first = paintings.painted("horizons", 2, 3, 64, "train")
    (folder,) = cache.iterdir()
    assert len(list(folder.glob("*.png"))) == 6
    paintings.painted.cache_clear()
    again = paintings.painted("horizons", 2, 3, 64, "train")  # from the folder now
    for a, b, c in zip(_pixels(fresh), _pixels(first), _pixels(again)):
        assert a[:2] == b[:2] == c[:2]
        assert np.array_equal(a[2], b[2]) and np.array_equal(a[2], c[2])
    one = create_demo_dataset(Workspace.resolve(tmp_path / "a"), "d", family="horizons", per_class=2, seed=3, size=64, split="train")
    two = create_demo_dataset(Workspace.resolve(tmp_path / "b"), "d", family="horizons", per_class=2, seed=3, size=64, split="train")
    # The cache's PNG files are stored as they are, not encoded again: the same files as encoding the fresh images.
    encoded = Dataset.open_or_create(Workspace.resolve(tmp_path / "c"), "d")
    encoded.manifest["crop"] = asdict(CropSettings(size=64))
    for label, name, img in fresh:
        encoded.add_image(img, f"horizons/{name}", label)
    assert [e["sha256"] for e in one.images] == [e["sha256"] for e in two.images] == [e["sha256"] for e in encoded.images]
    for a, b in zip(one.images, encoded.images):
        for key in ("original", "file"):
            assert (one.path / a[key]).read_bytes() == (encoded.path / b[key]).read_bytes()


def test_a_damaged_cache_is_painted_again_and_other_arguments_are_other_paintings(cache):
    paintings.painted("posters", 1, 0, 64, None)
    (folder,) = cache.iterdir()
    (folder / "0001.png").write_bytes(b"not a png")
    paintings.painted.cache_clear()
    images = paintings.painted("posters", 1, 0, 64, None)
    assert [np.asarray(img).tobytes() for _, _, img, _ in images] == \
        [np.asarray(img).tobytes() for _, _, img in family_images("posters", per_class=1, seed=0, size=64)]
    paintings.painted.cache_clear()
    assert len(paintings.painted("posters", 1, 0, 64, None)) == 3 and (folder / "0001.png").read_bytes().startswith(b"\x89PNG")  # healed
    paintings.painted("posters", 1, 1, 64, None)
    assert len(list(cache.iterdir())) == 2  # another seed: its own folder
    with pytest.raises(FamilyError):
        paintings.painted("../../no-such-family", 1, 0, 64, None)
    assert len(list(cache.iterdir())) == 2 and [p.name for p in cache.parent.iterdir()] == ["paintings"]  # nothing outside


@pytest.mark.parametrize("helper", [None, "/bin/false", "/no/such/python"])
def test_paintings_shared_among_helpers_are_the_same_files_and_a_failed_helper_loses_nothing(cache, monkeypatch, helper):
    """Painted on three cores (two helper processes); a helper that dies at once or cannot start leaves its share to
    the app, which paints it: the same images either way."""
    import torch

    from studio import devices
    from studio.data.decode import png_bytes

    monkeypatch.setattr(devices, "available_cores", lambda *a, **k: 3)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    if helper:
        monkeypatch.setattr(paintings.sys, "executable", helper)
    here, paint = [], paintings._paint_png
    monkeypatch.setattr(paintings, "_paint_png", lambda job: here.append(job) or paint(job))
    images = paintings.painted("ornaments", 2, 5, 48, None)
    assert len(here) == (len(images) if helper else len(images) // 3)  # the helpers painted the rest
    fresh = list(family_images("ornaments", per_class=2, seed=5, size=48))
    assert [(label, name) for label, name, *_ in images] == [(label, name) for label, name, _ in fresh]
    assert [png for *_, png in images] == [png_bytes(img) for _, _, img in fresh]
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for (_, _, a, _), (_, _, b) in zip(images, fresh))
