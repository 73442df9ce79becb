"""BSA on the studio's own generators: a cGAN run of either architecture (`--model run:NAME`) and the shipped studio
base (`--model studio-base`). Identity at the start, a frozen base, adapter-only checkpoints that name their base (and
refuse when it is gone or changed), exact resume, sampling and blending as on a BigGAN."""

from __future__ import annotations

import shutil

import pytest
import torch

from studio.data.dataset import create_demo_dataset
from studio.errors import UserError
from studio.methods import load_run_sampler
from studio.methods.bsa import BSAAdapter, BSAConfig, load_base, load_studio_base
from studio.methods.cgan import CGANConfig
from studio.models.adaptable import tensor_fingerprint
from studio.models.biggan import CHECKPOINTS_DIR
from studio.run import RunFolder
from studio.train import LoopConfig, run_training
from studio.workspace import Workspace

ARCHS = ("light", "fastgan")


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    """A workspace with a 48 px demo dataset (not the bases' 32 px) and a finished two-step cGAN run per architecture."""
    ws = Workspace.resolve(tmp_path_factory.mktemp("bsa-studio") / "ws")
    create_demo_dataset(ws, "demo", per_class=3, size=48)
    for arch in ARCHS:
        cfg = CGANConfig(arch=arch, g_ch=8, d_ch=8, batch=4, z_dim=16, embed_dim=8, recon="pixels")
        run_training(ws, method="cgan", run_name=f"base-{arch}", dataset="demo", cfg=cfg, device="cpu",
                     loop=LoopConfig(iters=2, sample_every=2, checkpoint_every=2))
    return ws


def _bsa(ws, run, model, iters=4, **config):
    cfg = BSAConfig(model=model, perceptual="none", batch=4, **config)
    return run_training(ws, method="bsa", run_name=run, dataset="demo", cfg=cfg, device="cpu",
                        loop=LoopConfig(iters=iters, sample_every=iters, checkpoint_every=2))


@pytest.mark.parametrize("arch", ARCHS)
def test_identity_adapter_reproduces_the_base_generator_exactly(ws, arch):
    base, info = load_base(f"run:base-{arch}", device="cpu", ws=ws)
    assert info["arch"] == arch and info["resolution"] == 32
    adapter = BSAAdapter(base, n_images=2, classes=["x", "y"], adapt="auto")
    assert adapter.adapt == "scale-shift"
    classes = torch.tensor([2, 0])
    adapter.class_embed.data = base.embed.weight[classes].clone()
    z = torch.randn(2, base.arch.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = base(z, classes)
        got = adapter.generate(z, torch.tensor([0, 1]))
    adapter.detach_hooks()
    assert torch.equal(expected, got)
    # Every declared layer is hooked, and a scale on any of them changes the image.
    n_layers = len(base.adaptable_layers())
    assert len(adapter.bn_scale) == n_layers - 1 and adapter.first_scale.numel() == base.adaptable_layers()[0].channels
    with torch.no_grad():
        next(iter(adapter.bn_scale.values())).mul_(1.5)
        assert not torch.equal(adapter.generate(z, torch.tensor([0, 1])), expected)
    adapter.detach_hooks()


@pytest.mark.parametrize("arch", ARCHS)
def test_bsa_on_a_cgan_run_trains_the_adapter_only_and_names_its_base(ws, arch):
    base_run = RunFolder(ws.run_dir(f"base-{arch}"))
    before = tensor_fingerprint(base_run.load_checkpoint().section("g_ema"))
    assert _bsa(ws, f"bsa-{arch}", f"run:base-{arch}") == "finished"
    run = RunFolder(ws.run_dir(f"bsa-{arch}"))
    ckpt = run.load_checkpoint()
    model_keys = [k for k in ckpt.tensors if not k.startswith(("optim/", "rng/"))]
    assert model_keys and all(k.startswith("adapter/") for k in model_keys)  # no base weight in the checkpoint
    assert ckpt.meta["base"]["run"] == f"base-{arch}" and ckpt.meta["base"]["fingerprint"] == before
    assert ckpt.meta["resolution"] == 32 and ckpt.meta["perceptual"] == "none"
    assert tensor_fingerprint(base_run.load_checkpoint().section("g_ema")) == before  # the base run is untouched
    losses = run.read_metrics()
    assert len(losses) == 4 and {"l1", "emd", "class"} <= set(losses[0])
    # The sampler rebuilds on the same base; every Sampler call works at the base's resolution.
    sampler, config, _ = load_run_sampler(run, torch.device("cpu"))
    assert sampler.sample(3, seed=1).shape == (3, 3, 32, 32)
    assert torch.equal(sampler.sample(2, seed=5), sampler.sample(2, seed=5))
    assert sampler.grid(2).shape[0] == 2 * len(sampler.classes)
    assert sampler.interpolate_seeds(1, 2, frames=3).shape[0] == 3
    assert sampler.reconstruct([0, 1]).shape == (2, 3, 32, 32)
    assert sampler.interpolate_images(0, 1, frames=3).shape[0] == 3
    assert sampler.interpolate_classes(sampler.classes[0], sampler.classes[1], frames=3).shape[0] == 3
    with pytest.raises(UserError, match="no ImageNet classes"):
        sampler.sample_base(1, imagenet_class=0)
    sampler.detach_hooks()


def test_training_moves_reconstructions_towards_the_images_and_leaves_the_base_frozen(ws):
    from studio.data.dataset import Dataset
    from studio.methods.bsa import BSATrainer

    base, _ = load_base("run:base-light", device="cpu", ws=ws)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    images, labels, classes = Dataset.open(ws, "demo").load_tensors(32)
    trainer = BSATrainer(BSAConfig(model="run:base-light", perceptual="none", batch=9, lr=0.05), base, images, labels,
                         classes, perceptual=None)

    def error():
        with torch.no_grad():
            return (trainer.adapter.reconstruct() - images).abs().mean().item()

    start = error()
    for step in range(40):
        trainer.train_step(step)
    assert error() < 0.9 * start  # measured: about 0.7 of the start on this two-step base
    assert all(torch.equal(state[k], v) for k, v in base.state_dict().items())
    assert all(not p.requires_grad for p in base.parameters())
    trainer.adapter.detach_hooks()


def test_resume_continues_exactly(ws):
    assert _bsa(ws, "straight", "run:base-light", iters=6) == "finished"
    calls = iter(range(100))
    cfg = BSAConfig(model="run:base-light", perceptual="none", batch=4)
    loop = LoopConfig(iters=6, sample_every=6, checkpoint_every=2)
    assert run_training(ws, method="bsa", run_name="halves", dataset="demo", cfg=cfg, device="cpu", loop=loop,
                        should_stop=lambda: next(calls) >= 3) == "stopped"
    assert run_training(ws, method="bsa", run_name="halves", dataset=None, cfg=None, device="cpu", loop=loop,
                        resume_run=True) == "finished"
    a = RunFolder(ws.run_dir("straight")).load_checkpoint().section("adapter")
    b = RunFolder(ws.run_dir("halves")).load_checkpoint().section("adapter")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_gone_or_changed_base_run_is_refused_by_name(ws):
    create = CGANConfig(g_ch=8, d_ch=8, batch=4, z_dim=16, embed_dim=8)
    run_training(ws, method="cgan", run_name="doomed", dataset="demo", cfg=create, device="cpu",
                 loop=LoopConfig(iters=2, sample_every=2, checkpoint_every=2))
    assert _bsa(ws, "orphan", "run:doomed", iters=2) == "finished"
    orphan = RunFolder(ws.run_dir("orphan"))
    # Retrained under the same name (--restart): other weights at the step the adapter knew.
    run_training(ws, method="cgan", run_name="doomed", dataset="demo", cfg=CGANConfig(**{**create.__dict__, "seed": 5}),
                 device="cpu", loop=LoopConfig(iters=2, sample_every=2, checkpoint_every=2), restart=True)
    with pytest.raises(UserError, match="'run:doomed' has changed since this BSA run was trained"):
        load_run_sampler(orphan, torch.device("cpu"))
    shutil.rmtree(ws.run_dir("doomed"))
    with pytest.raises(UserError, match="Run 'doomed', the cGAN this BSA run adapts, is gone"):
        load_run_sampler(orphan, torch.device("cpu"))


def test_a_base_run_trained_further_still_serves_its_adapters(ws):
    """The adapter knows the base at one step; the base run's snapshot of that step is what it loads."""
    cfg = CGANConfig(g_ch=8, d_ch=8, batch=4, z_dim=16, embed_dim=8)
    run_training(ws, method="cgan", run_name="growing", dataset="demo", cfg=cfg, device="cpu",
                 loop=LoopConfig(iters=2, sample_every=2, checkpoint_every=2))
    assert _bsa(ws, "on-growing", "run:growing", iters=2) == "finished"
    before = load_run_sampler(RunFolder(ws.run_dir("on-growing")), torch.device("cpu"))[0].sample(2, seed=3)
    run_training(ws, method="cgan", run_name="growing", dataset=None, cfg=None, device="cpu", resume_run=True,
                 loop=LoopConfig(iters=4, sample_every=2, checkpoint_every=2))
    after = load_run_sampler(RunFolder(ws.run_dir("on-growing")), torch.device("cpu"))[0].sample(2, seed=3)
    assert torch.equal(before, after)


def test_bad_base_runs_are_refused_before_a_run_folder_is_made(ws):
    assert _bsa(ws, "a-bsa-run", "run:base-light", iters=2) == "finished"
    for model, message in (("run:nothing", "There is no run 'nothing' to adapt"),
                           ("run:a-bsa-run", "is a bsa run: BSA adapts the generator of a cGAN run")):
        with pytest.raises(UserError, match=message):
            _bsa(ws, "refused", model)
        assert not RunFolder(ws.run_dir("refused")).exists()


def test_hyper_bn_is_refused_on_a_studio_base(ws):
    with pytest.raises(UserError, match="hyper-bn adapts the batch-norm generators of a BigGAN"):
        _bsa(ws, "hyper", "run:base-light", adapt="hyper-bn")
    assert not RunFolder(ws.run_dir("hyper")).exists()


def test_two_bsa_runs_of_one_cgan_base_blend(ws):
    from studio.guide import BlendedAdapter, load_target

    assert _bsa(ws, "blend-a", "run:base-light", iters=2) == "finished"
    assert _bsa(ws, "blend-b", "run:base-light", iters=2, seed=3) == "finished"
    target = load_target(ws, "blend-a", "blend-b", torch.device("cpu"))
    assert isinstance(target.sampler, BlendedAdapter) and target.mix_names[0] == "first"
    z = torch.randn(1, target.z_dim)
    weights = torch.zeros(1, len(target.class_names))
    weights[0, 0] = 1
    a_only = target.render(z, weights, torch.zeros(len(target.mix_names)))
    a_alone, _, _ = load_run_sampler(RunFolder(ws.run_dir("blend-a")), torch.device("cpu"))
    with torch.no_grad():
        assert torch.allclose(a_only, a_alone.mix_classes(z, weights[:, :len(a_alone.classes)]), atol=1e-6)
        b_mixed = target.render(z, weights, torch.ones(len(target.mix_names)))
    assert not torch.equal(a_only, b_mixed)  # B's adaptation (on A's class) changes the image
    a_alone.detach_hooks()


def test_without_emd_new_images_are_drawn_around_each_class_s_learned_latents(ws):
    """Latents no EMD ties to N(0, I) wander from it (norms near 35 on the studio base, N(0, I)'s near 11), and N(0, I)
    draws made blobs at chance fidelity: new images come from each class's own learned latents instead."""
    assert _bsa(ws, "free", "run:base-light", iters=4) == "finished"
    free, _, _ = load_run_sampler(RunFolder(ws.run_dir("free")), torch.device("cpu"))
    assert free.free_latents  # a studio base's default EMD weight is 0
    latents, labels = free.latents.detach(), free.train_labels
    mean, std = free.latent_stats()
    assert torch.allclose(mean[1], latents[labels == 1].mean(0)) and torch.allclose(std[2], latents[labels == 2].std(0, unbiased=False))
    with torch.no_grad():
        at_the_mean = free.generate(mean[1].repeat(2, 1), torch.tensor([1, 1]))
        assert torch.allclose(free.sample(2, label=free.classes[1], truncation=0.0), at_the_mean, atol=1e-6)
        z = torch.randn(1, free.z_dim)
        assert torch.allclose(free.new_latents(z, torch.tensor([2])), mean[2] + std[2] * z)
    free.detach_hooks()
    assert _bsa(ws, "tied", "run:base-light", iters=2, emd_weight=0.1) == "finished"
    tied, _, _ = load_run_sampler(RunFolder(ws.run_dir("tied")), torch.device("cpu"))
    assert not tied.free_latents and torch.equal(tied.new_latents(z, torch.tensor([2])), z)  # the reference's N(0, I)
    tied.detach_hooks()


studio_base = pytest.mark.skipif(not (CHECKPOINTS_DIR / "studio-base" / "model.safetensors").is_file(),
                                 reason="checkpoints/studio-base/ is not here (scripts/train_studio_base.py makes it)")


@studio_base
def test_the_shipped_studio_base_is_small_named_and_adapts_offline(ws):
    import json

    folder = CHECKPOINTS_DIR / "studio-base"
    assert (folder / "model.safetensors").stat().st_size <= 20e6
    card, config = (folder / "README.md").read_text(), json.loads((folder / "config.json").read_text())
    assert config["command"] in card and len(config["classes"]) >= 8
    assert not set(config["classes"]) & {"abstract", "geometric", "islamic"}  # none of the demo's styles
    base, info = load_studio_base("studio-base")
    assert info["fingerprint"] == config["fingerprint"] and info["resolution"] == 32
    assert _bsa(ws, "from-studio-base", "studio-base", iters=2) == "finished"  # a 48 px dataset, resized to 32
    sampler, _, ckpt = load_run_sampler(RunFolder(ws.run_dir("from-studio-base")), torch.device("cpu"))
    assert ckpt.meta["base"]["kind"] == "folder" and sampler.sample(2).shape == (2, 3, 32, 32)
    sampler.detach_hooks()


def test_train_tab_offers_finished_cgan_runs_and_the_studio_base(ws):
    from studio.ui.train_tab import form_request, model_choices

    choices = dict((value, label) for label, value in model_choices(False, runs=["base-light"]))
    assert choices["run:base-light"] == "run: base-light"
    shipped = (CHECKPOINTS_DIR / "studio-base" / "model.safetensors").is_file()
    assert choices["studio-base"].startswith("studio base, offline" if shipped else "studio base: not found")
    job = form_request({"method": "bsa", "dataset": "demo", "model": "run:base-light", "adapt": "auto",
                        "perceptual": "auto", "bsa_batch": 4, "bsa_lr": 0.05}, [])
    assert job.config["model"] == "run:base-light"


@studio_base
@pytest.mark.browser
def test_train_tab_adapts_the_studio_base_and_offers_cgan_runs(ws):
    """In the browser: the BSA picker lists the studio base and the finished cGAN runs; the studio base is the first-run
    choice offline, and Start trains it to the end with a preview of real images and their reconstructions."""
    import re
    from pathlib import Path

    from playwright.sync_api import expect, sync_playwright

    from conftest import running_app
    from test_ui_browser import CHROMIUM, SHOTS, coloured_pixels, error_badges

    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium) — browser tests skipped.")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with running_app(ws.root) as (url, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(30_000)
            page.goto(url)
            page.get_by_role("tab", name="Train").click()
            page.locator("#train-method input[value=bsa]").check()
            expect(page.locator("#train-model input")).to_have_value(re.compile("studio base, offline"))
            page.locator("#train-model input").click()
            texts = page.get_by_role("option").all_inner_texts()
            assert "run: base-light" in texts and "run: base-fastgan" in texts, texts
            assert not any("bsa-light" in t for t in texts), texts  # only cGAN runs are bases
            page.screenshot(path=str(SHOTS / "bsa_studio_base_picker.png"), full_page=True)
            page.get_by_role("option", name=re.compile("studio base, offline")).click()
            page.locator("#train-run-name").get_by_role("textbox").fill("tab-studio-base")
            page.locator("#train-iters input").fill("30")
            page.locator("#train-sample-every input").fill("30")
            page.locator("#train-sample-every input").press("Tab")
            page.locator("#train-start").click()
            expect(page.locator("#train-status")).to_contain_text("Finished: step 30/30", timeout=90_000)
            expect(page.locator("#train-preview img")).to_be_visible()
            assert coloured_pixels(page, "#train-preview", 501) > 500  # the demo's art and its reconstructions, drawn
            assert error_badges(page) == 0
            page.screenshot(path=str(SHOTS / "bsa_studio_base_trained.png"), full_page=True)
        finally:
            browser.close()
    ckpt = RunFolder(ws.run_dir("tab-studio-base")).load_checkpoint()
    assert ckpt.meta["base"]["kind"] == "folder" and ckpt.meta["config"]["model"] == "studio-base"


def test_sharing_a_bsa_run_of_a_studio_generator_is_refused_in_a_sentence(ws):
    from studio.hub_share import share_facts

    _bsa(ws, "bsa-share", "run:base-light", iters=2)
    with pytest.raises(UserError, match="adapts a studio generator .*not supported yet"):
        share_facts(ws, "bsa-share")
