"""One sampler contract for every generator (studio.methods.Sampler), one run loader, capabilities from the registry,
and a new cGAN architecture as one module and one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from studio.cli import main
from studio.data.dataset import create_demo_dataset
from studio.errors import UserError
from studio.generate import BigGANSampler
from studio.methods import CAPABILITIES, Sampler, load_run_sampler, method
from studio.methods.bsa import BSAConfig
from studio.methods.cgan import CGANConfig
from studio.models import CGAN_ARCHITECTURES
from studio.models.biggan import load_biggan
from studio.run import RunFolder
from studio.train import LoopConfig, run_training
from studio.workspace import Workspace

LOOP = LoopConfig(iters=2, sample_every=2, checkpoint_every=2)


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    ws = Workspace.resolve(tmp_path_factory.mktemp("samplers") / "ws")
    create_demo_dataset(ws, "art", per_class=2, size=32)
    run_training(ws, method="cgan", run_name="c", dataset="art", loop=LOOP, device="cpu",
                 cfg=CGANConfig(g_ch=4, d_ch=4, z_dim=16, embed_dim=8, batch=4))
    for name, seed in (("b", 0), ("b2", 1)):
        run_training(ws, method="bsa", run_name=name, dataset="art", loop=LOOP, device="cpu",
                     cfg=BSAConfig(model="tiny", perceptual="none", batch=2, seed=seed))
    RunFolder(ws.run_dir("empty")).write_config({"method": "cgan", "dataset": "art"})  # started, never checkpointed
    return ws


def _png(path) -> torch.Tensor:
    """A saved image as the [-1, 1] tensor it was written from (within rounding)."""
    return torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1).float() / 127.5 - 1


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a.float(), b.float(), atol=3e-5, rtol=0)  # a walk's end is its seed's image within float rounding


@pytest.mark.parametrize("run", ["c", "b"])
def test_a_runs_sampler_keeps_the_contract_and_does_what_its_method_says_it_can(ws, run):
    sampler, config, _ = load_run_sampler(RunFolder(ws.run_dir(run)), "cpu")
    can = method(config["method"]).can
    assert isinstance(sampler, Sampler) and set(can) <= set(CAPABILITIES)
    for capability, calls in CAPABILITIES.items():  # what the registry says, and only that, is there to call
        assert all(callable(getattr(sampler, c, None)) for c in calls) == (capability in can), capability
    assert not hasattr(sampler, "interpolate")  # seeds or training images: the name says which
    label, t = sampler.classes[1], sampler.default_truncation
    walk = sampler.interpolate_seeds(2, 9, 4, label=label, truncation=t)
    _close(walk[0], sampler.sample(1, label=label, seed=2, truncation=t)[0])
    _close(walk[-1], sampler.sample(1, label=label, seed=9, truncation=t)[0])
    grid = sampler.grid(2, seed=3, truncation=t)
    assert len(grid) == 2 * len(sampler.classes)
    _close(grid[2:4], sampler.sample(2, label=label, seed=3, truncation=t))
    # What guidance steers: a one-hot class mix is the class itself.
    z = t * torch.randn(2, sampler.z_dim, generator=torch.Generator().manual_seed(0))
    one_hot = torch.nn.functional.one_hot(torch.tensor([1, 1]), len(sampler.classes)).float()
    with torch.no_grad():
        reference = sampler.generate(z, torch.tensor([1, 1])) if run == "b" else sampler.g(z, torch.tensor([1, 1]))
        _close(sampler.mix_classes(z, one_hot), reference)


def test_the_base_biggan_keeps_the_contract():
    sampler = BigGANSampler(load_biggan("tiny"))
    assert isinstance(sampler, Sampler)
    names = sampler.classes[3:5]
    grid = sampler.grid(2, seed=1, classes=names)
    _close(grid[2:], sampler.sample(2, label=names[1], seed=1))
    with pytest.raises(UserError, match="1000 classes"):
        sampler.grid(2)


def test_one_loader_says_what_is_missing_and_shares_a_base(ws):
    with pytest.raises(UserError, match="has no checkpoint yet"):
        load_run_sampler(RunFolder(ws.run_dir("empty")), "cpu")
    with pytest.raises(UserError, match="no run named 'nope'"):
        load_run_sampler(RunFolder(ws.run_dir("nope")), "cpu")
    a, _, _ = load_run_sampler(RunFolder(ws.run_dir("b")), "cpu")
    b, _, _ = load_run_sampler(RunFolder(ws.run_dir("b2")), "cpu", base=a.model)
    assert b.model is a.model and not torch.equal(a.latents, b.latents)


def test_sample_interpolates_seeds_for_a_cgan_and_training_images_for_bsa(ws, tmp_path):
    cli = ["--workspace", str(ws.root), "sample", "--frames", "3"]
    assert main([*cli, "--run", "c", "--interpolate", "2", "9", "--out", f"{tmp_path}/c/"]) == 0
    cgan, _, _ = load_run_sampler(RunFolder(ws.run_dir("c")), "cpu")
    first = cgan.sample(1, label=cgan.classes[0], seed=2)[0]
    assert (_png(tmp_path / "c" / "000.png") - first).abs().max() <= 1.5 / 127.5  # the PNG of seed 2's image, within rounding
    assert main([*cli, "--run", "b", "--interpolate", "0", "5", "--out", f"{tmp_path}/b/"]) == 0
    bsa, _, _ = load_run_sampler(RunFolder(ws.run_dir("b")), "cpu")
    reconstructed = bsa.reconstruct([5])[0]
    assert (_png(tmp_path / "b" / "002.png") - reconstructed).abs().max() <= 1.5 / 127.5  # the walk ends on training image 5 as learned
    # Capabilities come from the registry: a cGAN has no latent per training image; its classes mix at any truncation.
    assert main([*cli, "--run", "c", "--reconstruct", "--out", str(tmp_path / "r.png")]) == 2
    assert main([*cli, "--run", "c", "--between-classes", "abstract", "islamic", "--truncation", "0.7",
                 "--out", str(tmp_path / "mix.png")]) == 0


def test_a_new_architecture_is_a_module_and_a_line(ws, tmp_path, monkeypatch):
    monkeypatch.setitem(CGAN_ARCHITECTURES, "toy", "toy_arch")  # the one line (tests/toy_arch.py is the module)
    cli = ["--workspace", str(ws.root)]
    assert main([*cli, "train", "cgan", "--arch", "toy", "--dataset", "art", "--run", "toy", "--resolution", "16",
                 "--iters", "1", "--batch", "4", "--z-dim", "8", "--embed-dim", "4", "--device", "cpu"]) == 0
    run = RunFolder(ws.run_dir("toy"))
    assert run.read_config()["config"]["arch"] == "toy" and run.read_status()["step"] == 1
    assert main([*cli, "sample", "--run", "toy", "--grid", "--n", "2", "--out", str(tmp_path / "toy.png")]) == 0
    assert Image.open(tmp_path / "toy.png").size == (2 * (16 + 2) + 2, 3 * (16 + 2) + 2)  # a row per class
    assert main([*cli, "train", "cgan", "--arch", "toy", "--dataset", "art", "--run", "toy-32", "--resolution", "32",
                 "--iters", "1"]) == 2  # the module's RESOLUTIONS are what it offers

