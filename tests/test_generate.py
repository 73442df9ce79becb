"""Generate from real (tiny) runs: class × seed grids, exports, seed walks as GIFs, base vs fine-tuned, the tab's handlers."""

from __future__ import annotations

import os
import zipfile

import gradio as gr
import pytest
import torch
from PIL import Image

from studio.data.dataset import create_demo_dataset
from studio.errors import UserError
from studio.generate import (SamplerCache, compare_with_base, generate_grid, interpolate, list_sources, save_gif,
                             source_info)
from studio.methods.bsa import BSAConfig, sample_latents
from studio.methods.cgan import CGANConfig
from studio.models.biggan import one_hot_class
from studio.run import RunFolder
from studio.train import LoopConfig, run_training
from studio.jobs import JobManager
from studio.ui import generate_tab
from studio.ui.session import Sessions
from studio.workspace import Workspace

CLASSES = ["abstract", "geometric", "islamic"]
LOOP = LoopConfig(iters=3, sample_every=3, checkpoint_every=3)


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    ws = Workspace.resolve(tmp_path_factory.mktemp("gen") / "ws")
    create_demo_dataset(ws, "d", per_class=4, size=64)
    run_training(ws, method="cgan", run_name="c1", dataset="d", cfg=CGANConfig(g_ch=8, d_ch=8, batch=8), loop=LOOP,
                 device="cpu")
    run_training(ws, method="bsa", run_name="b1", dataset="d", cfg=BSAConfig(model="tiny", perceptual="none", batch=2),
                 loop=LOOP, device="cpu")
    RunFolder(ws.run_dir("empty")).write_config({"method": "cgan", "dataset": "d"})  # started, never checkpointed
    return ws


@pytest.fixture(scope="module")
def cache() -> SamplerCache:
    return SamplerCache("cpu")


def _one_sentence(exc: Exception) -> str:
    text = str(exc)
    assert "\n" not in text and text.endswith("."), text
    return text


@pytest.mark.parametrize("source", ["run:c1", "run:b1", "biggan:tiny"])
def test_grid_has_a_row_per_class_and_exports_a_png_and_a_zip(ws, cache, source):
    loaded = cache.get(ws, source)
    classes = list(loaded.info.classes[:2]) if source == "biggan:tiny" else CLASSES
    result = generate_grid(ws, loaded, classes, n=4, seed=3)
    size = result.images.shape[-1]
    assert result.images.shape == (4 * len(classes), 3, size, size)
    assert result.grid.size == (4 * (size + 2) + 2, len(classes) * (size + 2) + 2)
    assert Image.open(result.grid_path).size == result.grid.size
    assert result.grid_path.parent == ws.exports and result.zip_path.parent == ws.exports
    assert result.grid_path.name.startswith(loaded.info.tag + "-seed3-4x")
    with zipfile.ZipFile(result.zip_path) as zf:
        names = zf.namelist()
        assert len(names) == 4 * len(classes) and all(name.endswith(".png") for name in names)
        assert Image.open(zf.open(names[-1])).size == (size, size)
    # Every row holds the same latents: a row alone is what sampling that class from the seed gives.
    row = loaded.sampler.sample(4, label=classes[1], seed=3, truncation=loaded.info.truncation).float()
    torch.testing.assert_close(result.images[4:8], row, atol=1e-5, rtol=0)


def test_same_seed_same_bytes_and_another_seed_differs(ws, cache):
    loaded = cache.get(ws, "run:b1")
    first = generate_grid(ws, loaded, ["islamic", "abstract"], n=3, seed=5)
    grid_bytes, zip_bytes = first.grid_path.read_bytes(), first.zip_path.read_bytes()
    again = generate_grid(ws, loaded, ["islamic", "abstract"], n=3, seed=5)
    assert again.grid_path == first.grid_path
    assert again.grid_path.read_bytes() == grid_bytes and again.zip_path.read_bytes() == zip_bytes
    other = generate_grid(ws, loaded, ["islamic", "abstract"], n=3, seed=6)
    assert other.grid_path != first.grid_path and other.grid_path.read_bytes() != grid_bytes
    fewer = generate_grid(ws, loaded, ["islamic"], n=3, seed=5)
    assert fewer.grid_path != first.grid_path  # different settings never overwrite each other's files


@pytest.mark.parametrize("source", ["run:c1", "run:b1", "biggan:tiny"])
def test_seed_walk_is_a_looping_gif_from_one_seed_to_the_other(ws, cache, source):
    loaded = cache.get(ws, source)
    label = loaded.info.classes[1]
    walk = interpolate(ws, loaded, between="seeds", a=2, b=9, frames=6, label=label)
    gif = Image.open(walk.gif_path)
    assert gif.n_frames == 2 * 6 - 2 and gif.info["loop"] == 0  # forward, then back without repeating the ends
    t = loaded.info.truncation
    for seed, frame in ((2, walk.frames[0]), (9, walk.frames[-1])):
        alone = loaded.sampler.sample(1, label=label, seed=seed, truncation=t)[0].float()
        torch.testing.assert_close(frame, alone, atol=1e-5, rtol=0)


def test_walk_between_training_images_is_for_bsa_runs(ws, cache):
    bsa = cache.get(ws, "run:b1")
    walk = interpolate(ws, bsa, between="images", a=0, b=11, frames=5)
    torch.testing.assert_close(walk.frames, bsa.sampler.interpolate_images(0, 11, 5).float(), atol=1e-5, rtol=0)
    with pytest.raises(UserError, match="between 0 and 11"):
        interpolate(ws, bsa, between="images", a=0, b=12, frames=5)
    with pytest.raises(UserError, match="Only BSA runs") as err:
        interpolate(ws, cache.get(ws, "run:c1"), between="images", a=0, b=1)
    _one_sentence(err.value)


def test_save_gif_plays_forward_then_back(tmp_path):
    frames = torch.linspace(-1, 1, 4)[:, None, None, None].expand(4, 3, 8, 8)
    assert Image.open(save_gif(frames, tmp_path / "a.gif")).n_frames == 6
    assert Image.open(save_gif(frames, tmp_path / "b.gif", pingpong=False)).n_frames == 4


def test_base_and_fine_tuned_from_the_same_latents(ws, cache):
    loaded = cache.get(ws, "run:b1")
    adapter = loaded.sampler
    before = adapter.sample(3, label="geometric", seed=4)
    base, tuned = compare_with_base(loaded, label="geometric", n=3, seed=4)
    assert base.shape == tuned.shape == (3, 3, 32, 32)
    torch.testing.assert_close(tuned, before)
    assert (base - tuned).abs().max() > 1e-3  # the adapter learned something: the two models differ
    # The base is BigGAN's own forward (no hooks), ImageNet class 0 since the run started from the mean embedding.
    z = sample_latents(3, 128, 0.5, torch.Generator().manual_seed(4))
    with torch.no_grad():
        adapter.detach_hooks()
        expected = adapter.model(z, one_hot_class([0, 0, 0]), adapter.truncation)
    torch.testing.assert_close(base, expected)
    torch.testing.assert_close(adapter.sample(3, label="geometric", seed=4), before)  # hooks are back on
    other, _ = compare_with_base(loaded, imagenet_class="goldfish", label="geometric", n=3, seed=4)
    assert not torch.equal(other, base)
    with pytest.raises(UserError, match="needs a BSA run|pick a BSA run") as err:
        compare_with_base(cache.get(ws, "run:c1"))
    _one_sentence(err.value)


@pytest.mark.parametrize("call, message", [
    (lambda ws, c: generate_grid(ws, c.get(ws, "run:c1"), ["cubism"], n=2, seed=0), "no class 'cubism'"),
    (lambda ws, c: generate_grid(ws, c.get(ws, "run:c1"), [], n=2, seed=0), "at least one class"),
    (lambda ws, c: generate_grid(ws, c.get(ws, "run:c1"), ["abstract"], n=0, seed=0), "between 1 and 64"),
    (lambda ws, c: generate_grid(ws, c.get(ws, "run:c1"), ["abstract"], n=65, seed=0), "between 1 and 64"),
    (lambda ws, c: generate_grid(ws, c.get(ws, "run:c1"), ["abstract"], n=2, seed=-1), "seed"),
    (lambda ws, c: generate_grid(ws, c.get(ws, "biggan:tiny"), ["tench"], n=2, seed=0, truncation=1.5), "at most 1"),
    (lambda ws, c: compare_with_base(c.get(ws, "run:b1"), imagenet_class="unicorn"), "no ImageNet class"),
    (lambda ws, c: c.get(ws, "run:empty"), "has no checkpoint yet"),
    (lambda ws, c: c.get(ws, "run:nope"), "no run named 'nope'"),
    (lambda ws, c: c.get(ws, None), "Pick a run"),
    (lambda ws, c: c.get(ws, "run:../x"), "not allowed"),
    (lambda ws, c: c.get(ws, "biggan:/tmp/weights"), "Unknown base model"),
])
def test_bad_requests_are_one_sentence(ws, cache, call, message):
    with pytest.raises(UserError) as err:
        call(ws, cache)
    assert message in _one_sentence(err.value)


def test_sources_and_the_cache(ws):
    values = [value for _, value in list_sources(ws, dev=False)]
    assert values[:2] == ["run:b1", "run:c1"]  # newest checkpoint first; runs without one are left out
    assert "run:empty" not in values and "biggan:biggan-deep-256" in values and "biggan:tiny" not in values
    assert "biggan:tiny" in [value for _, value in list_sources(ws, dev=True)]
    info = source_info(ws, "run:b1")
    assert (info.method, info.classes, info.step, info.n_images) == ("bsa", tuple(CLASSES), 3, 12)
    cache = SamplerCache("cpu", size=1)
    first = cache.get(ws, "run:c1")
    assert cache.get(ws, "run:c1") is first
    latest = ws.run_dir("c1") / "checkpoints" / "latest.safetensors"
    os.utime(latest, ns=(latest.stat().st_atime_ns, latest.stat().st_mtime_ns + 10**9))  # a newer checkpoint
    assert cache.get(ws, "run:c1") is not first
    assert len(cache._entries) == 1


def test_tab_handlers_return_what_the_page_shows(ws, cache):
    tab = generate_tab.GenerateTab(Sessions(ws, JobManager(ws, background=False)), dev=True, cache=cache)
    assert tab.sources()["value"] == "run:b1"
    md, classes, truncation, interp_class, compare_class, imagenet, note, compare = tab.on_source("run:c1")
    assert "step 3" in md and classes["value"] == CLASSES and truncation["value"] == 1.0 and "BSA run" in note
    assert compare["interactive"] is False and tab.on_source("run:b1")[-1]["interactive"] is True
    assert interp_class["value"] == compare_class["value"] == "abstract" and interp_class is not compare_class
    assert tab.on_source("biggan:tiny")[1]["value"] == ["tench"] and len(tab.on_source("biggan:tiny")[1]["choices"]) == 1000
    assert "no checkpoint" in tab.on_source("run:empty")[0]

    grid, gallery, dl_grid, dl_zip, status = tab.on_generate("run:b1", ["abstract", "islamic"], 1, 4, 0.5)
    assert Image.open(grid).size == (4 * 34 + 2, 2 * 34 + 2) and len(gallery) == 8 and gallery[4][1] == "islamic · 0"
    assert dl_grid["value"] == grid and dl_grid["visible"] and dl_zip["value"].endswith(".zip")
    assert "8 images" in status

    # A refusal is a sentence in the status line; the grid and gallery shown stay as they are (no Error state).
    refused = tab.on_generate("run:c1", ["abstract"], None, 2, 1.0)
    assert "Type a number for the seed" in refused[-1] and refused[0] == refused[1] == gr.update()
    gif, dl_gif, status = tab.on_interpolate("run:b1", "Two seeds", 0, 1, "abstract", 4, 0.5)
    assert Image.open(gif).n_frames == 6 and dl_gif["value"] == gif
    gif, _, _ = tab.on_interpolate("run:b1", "Two training images (BSA)", 0, 3, None, 4, 0.5)
    assert "images0-3" in gif

    base, tuned, status = tab.on_compare("run:b1", "tench", "abstract", 0, 3, 0.5)
    assert base.size == tuned.size == (3 * 34 + 2, 34 + 2) and "tench" in status
    assert "pick a BSA run" in tab.on_compare("run:c1", "tench", "abstract", 0, 3, 1.0)[-1]
    assert "no class 'cubism'" in tab.on_generate("run:c1", ["cubism"], 0, 2, 1.0)[-1]


def test_the_tab_builds_and_wires(ws):
    sessions = Sessions(ws, JobManager(ws, background=False))
    with gr.Blocks() as demo:
        sessions.render(demo)
        generate_tab.render(sessions, dev=True)
    ids = {block.elem_id for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    for name in ("source", "refresh", "classes", "seed", "n", "truncation", "button", "grid", "gallery",
                 "download-grid", "download-zip", "status", "interp-gif", "interp-button", "compare-base",
                 "compare-tuned", "compare-button"):
        assert f"generate-{name}" in ids
    gpu = [fn for fn in demo.fns.values() if fn.concurrency_id == "gpu"]
    assert len(gpu) == 5 and all(fn.concurrency_limit == 1 for fn in gpu)  # generate, GIF, compare, evaluate ×2


def test_the_imagenet_class_file_is_torchvisions_list_in_index_order():
    from torchvision.models import ResNet50_Weights

    from studio.generate import imagenet_classes

    assert list(imagenet_classes()) == ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    assert imagenet_classes()[1] == "goldfish"  # BigGAN's class 1
