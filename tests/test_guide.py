"""CLIP prompt guidance and blending with tiny models: the score really rises, mixes stay in [0, 1], seeds repeat."""

from __future__ import annotations

import json

import pytest
import torch

from studio.cli import main
from studio.data.dataset import create_demo_dataset
from studio.errors import UserError
from studio.guide import (BlendedAdapter, GuideConfig, PromptGuide, blend_result, blend_results, load_target,
                          make_cutouts, mix_layers, parse_prompts, run_blend, run_mix_layers)
from studio.methods.bsa import BSAAdapter, BSAConfig
from studio.methods.cgan import CGANConfig
from studio.models.biggan import load_biggan
from studio.models.clip import load_clip
from studio.train import LoopConfig, run_training

TINY = {"clip": "tiny", "device": "cpu"}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    from studio.workspace import Workspace

    ws = Workspace.resolve(tmp_path_factory.mktemp("guide") / "ws")
    create_demo_dataset(ws, "art", per_class=3, size=64)
    loop = LoopConfig(iters=2, sample_every=2, checkpoint_every=2)
    for name, seed in (("bsa-a", 0), ("bsa-b", 1)):
        run_training(ws, method="bsa", run_name=name, dataset="art", loop=loop, device="cpu",
                     cfg=BSAConfig(model="tiny", perceptual="none", batch=2, seed=seed, lr=0.5))
    run_training(ws, method="cgan", run_name="cgan", dataset="art", loop=loop, device="cpu",
                 cfg=CGANConfig(g_ch=8, d_ch=8, batch=4))
    return ws


def test_prompts_parse_with_weights():
    assert parse_prompts("a stained glass city:1 | fog: 0.5 |  ") == [("a stained glass city", 1.0), ("fog", 0.5)]
    assert parse_prompts("time: 10:30 pm") == [("time: 10:30 pm", 1.0)]
    with pytest.raises(UserError, match="Write a prompt"):
        GuideConfig(prompt=" | ")
    for bad in ("1.5", "half", "0.2,x"):
        with pytest.raises(UserError, match="ix"):
            GuideConfig(prompt="x", mix=bad)


def test_cutouts_are_clip_sized_and_seeded():
    images = torch.rand(1, 3, 32, 32) * 2 - 1
    a = make_cutouts(images, 6, 64, torch.Generator().manual_seed(3))
    b = make_cutouts(images, 6, 64, torch.Generator().manual_seed(3))
    assert a.shape == (6, 3, 64, 64) and torch.equal(a, b)


def test_blend_of_two_adapters_is_each_at_its_ends_and_the_mix_gets_gradients():
    base = load_biggan("tiny")
    a = BSAAdapter(base, n_images=2, classes=["x"], adapt="hyper-bn")
    b = BSAAdapter(base, n_images=2, classes=["y"], adapt="hyper-bn")
    with torch.no_grad():
        for p in b.parameters():
            p.add_(0.05 * torch.randn_like(p))
    blend = BlendedAdapter(a, b)
    assert blend.mix_names == mix_layers(a.bn_scale) and blend.mix_names[0] == "first"
    z = torch.randn(2, base.config.z_dim, generator=torch.Generator().manual_seed(0)) * 0.5
    with torch.no_grad():
        expected_a = a.generate(z, torch.zeros(2, dtype=torch.long))
        expected_b = b.generate(z, torch.zeros(2, dtype=torch.long))
        blend.mix = torch.zeros(len(blend.mix_names))
        got_a = blend.generate(z, class_mix=torch.tensor([[1.0, 0.0]] * 2))
        blend.mix = torch.ones(len(blend.mix_names))
        got_b = blend.generate(z, class_mix=torch.tensor([[0.0, 1.0]] * 2))
    assert torch.allclose(got_a, expected_a, atol=1e-5) and torch.allclose(got_b, expected_b, atol=1e-5)
    assert not torch.allclose(expected_a, expected_b, atol=1e-3)
    mix = torch.full((len(blend.mix_names),), 0.5, requires_grad=True)
    blend.mix = mix
    blend.generate(z, class_mix=torch.tensor([[0.5, 0.5]] * 2)).mean().backward()
    assert mix.grad is not None and mix.grad.abs().sum() > 0


def test_the_clip_score_rises_and_the_mix_stays_in_range(ws):
    target = load_target(ws, "bsa-a", "bsa-b", torch.device("cpu"))
    guide = PromptGuide(GuideConfig(prompt="a red circle", steps=40, cutouts=8, lr=0.1), target, load_clip("tiny"),
                        device=torch.device("cpu"))
    for step in range(40):
        guide.train_step(step)
    first, last = sum(guide.scores[:5]) / 5, sum(guide.scores[-5:]) / 5
    assert last > first + 0.01, (first, last)
    result = guide.result()
    assert len(result["mix"]) == len(run_mix_layers(ws, "bsa-a")) == len(target.mix_names)
    assert all(0 <= m <= 1 for m in result["mix"]) and 0 < sum(result["classes"].values()) <= 1 + 1e-6


def test_same_seed_same_blend_and_the_outputs_land_in_the_run_folder(ws):
    cfg = GuideConfig(prompt="a blue square | noise:0.3", negative="text", steps=4, cutouts=4, seed=7)
    one = run_blend(ws, run_name="same-1", a="bsa-a", b="bsa-b", cfg=cfg, **TINY)
    two = run_blend(ws, run_name="same-2", a="bsa-a", b="bsa-b", cfg=cfg, **TINY)
    assert one["scores"] == two["scores"] and one["mix"] == two["mix"]
    assert open(one["image"], "rb").read() == open(two["image"], "rb").read()
    folder = ws.run_dir("same-1") / "result"
    assert {p.name for p in folder.iterdir()} >= {"image.png", "frames.png", "result.json"}
    assert one["image"] == str(folder / "image.png") and not (ws.exports / "blends" / "same-1").exists()
    assert json.loads((folder / "result.json").read_text())["final_score"] == one["final_score"]
    other = run_blend(ws, run_name="seed-8", a="bsa-a", b="bsa-b", cfg=GuideConfig(**{**cfg.__dict__, "seed": 8}), **TINY)
    assert other["scores"] != one["scores"]
    fixed = run_blend(ws, run_name="fixed", a="bsa-a", b="bsa-b", cfg=GuideConfig(prompt="x", steps=2, cutouts=2, mix="0.25"), **TINY)
    assert set(fixed["mix"]) == {0.25}


def test_a_cgan_run_blends_its_classes_and_compare_needs_bsa(ws):
    result = run_blend(ws, run_name="cgan-blend", a="cgan", b=None, cfg=GuideConfig(prompt="stripes", steps=3, cutouts=4), **TINY)
    assert result["mix"] == [] and set(result["classes"]) == {"abstract", "geometric", "islamic"}
    with pytest.raises(UserError, match="two BSA runs"):
        run_blend(ws, run_name="bad", a="cgan", b="bsa-a", cfg=GuideConfig(prompt="x", steps=1), **TINY)
    with pytest.raises(UserError, match="Compare needs a BSA run"):
        run_blend(ws, run_name="bad-2", a="cgan", b=None, cfg=GuideConfig(prompt="x", steps=1), compare=True, **TINY)


def test_cli_contract_json(ws, tmp_path, capsys):
    out = tmp_path / "blend.png"
    code = main(["--workspace", str(ws.root), "blend", "--a", "bsa-a", "--b", "bsa-b", "--prompt", "a cat", "--out", str(out),
                 "--clip", "tiny", "--steps", "3", "--cutouts", "4", "--seed", "1", "--compare", "--device", "cpu", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["scores"]) == 3 and isinstance(report["final_score"], float)
    assert report["image"] == str(out) and out.exists() and len(report["mix"]) == len(report["mix_layers"])
    assert "final_score" in report["base"]
    assert main(["--workspace", str(ws.root), "blend", "--a", "nope", "--prompt", "x", "--out", str(out), "--clip", "tiny"]) == 2
    assert "no run named 'nope'" in capsys.readouterr().err


def test_a_blend_is_its_run_folder_deleting_it_takes_the_result_from_the_gallery(ws):
    made = run_blend(ws, run_name="gone", a="cgan", b=None, cfg=GuideConfig(prompt="dots", steps=2, cutouts=2), **TINY)
    made = json.loads(json.dumps(made))
    assert blend_result(ws, "gone") == made and blend_results(ws)[0] == made  # newest first
    assert main(["--workspace", str(ws.root), "run", "delete", "gone", "--yes"]) == 0
    assert blend_result(ws, "gone") is None and all(r["run"] != "gone" for r in blend_results(ws))


def test_a_blend_made_before_results_lived_in_the_run_is_still_read(ws):
    """Older blends kept their report in exports/blends/<name>/: read while the run exists, gone with it."""
    run_blend(ws, run_name="old", a="cgan", b=None, cfg=GuideConfig(prompt="old", steps=1, cutouts=2), **TINY)
    legacy = ws.exports / "blends" / "old"
    legacy.parent.mkdir(parents=True, exist_ok=True)
    (ws.run_dir("old") / "result").rename(legacy)  # where such a blend wrote it
    assert blend_result(ws, "old")["prompt"] == "old" and any(r["run"] == "old" for r in blend_results(ws))
    assert main(["--workspace", str(ws.root), "run", "delete", "old", "--yes"]) == 0
    assert blend_result(ws, "old") is None and all(r["run"] != "old" for r in blend_results(ws))
