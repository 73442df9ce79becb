"""BSA on a tiny random BigGAN-deep: identity adaptation is exact, only the adapter learns, reconstructions improve, resume is exact."""

from __future__ import annotations

import pytest
import torch
from torch.nn.functional import one_hot

from studio.methods.bsa import BSAAdapter, BSAConfig, BSATrainer, emd_loss, sample_latents
from studio.models.biggan import load_biggan
from studio.run import RunFolder
from studio.train import LoopConfig, resume, train


@pytest.fixture(scope="module")
def base():
    return load_biggan("tiny", seed=0)


def _data(base, n=8):
    g = torch.Generator().manual_seed(3)
    size = base.config.output_dim
    # Smooth colour fields: learnable targets, unlike per-pixel noise.
    images = torch.nn.functional.interpolate(torch.rand(n, 3, 4, 4, generator=g) * 2 - 1, size=size, mode="bilinear")
    return images, torch.tensor([i % 2 for i in range(n)])


@pytest.mark.parametrize("adapt", ["scale-shift", "hyper-bn"])
def test_identity_adaptation_reproduces_the_base_model_exactly(base, adapt):
    adapter = BSAAdapter(base, n_images=4, classes=["a", "b"], adapt=adapt, class_init=None)
    classes = torch.tensor([3, 7])
    adapter.class_embed.data = base.embeddings.weight.t()[classes].clone()
    z = torch.randn(2, base.config.z_dim)
    with torch.no_grad():
        expected = base(z, one_hot(classes, base.config.num_classes).float(), 1.0)
        got = adapter.generate(z, torch.tensor([0, 1]))
    adapter.detach_hooks()
    assert torch.equal(expected, got)


def test_scale_shift_is_small_and_hyper_bn_adapts_the_bn_generators(base):
    ss = BSAAdapter(base, n_images=4, classes=["a"], adapt="scale-shift")
    hb = BSAAdapter(base, n_images=4, classes=["a"], adapt="hyper-bn")
    n_bn = sum(1 for _ in ss.bn_scale)
    assert n_bn == 4 * sum(1 for _ in base.config.layers) + 1  # 4 per block + the final unconditional BN
    assert ss.trainable_count() < hb.trainable_count()


def _trainer(base, adapt="scale-shift", seed=0):
    images, labels = _data(base)
    cfg = BSAConfig(model="tiny", adapt=adapt, perceptual="none", batch=4, lr=0.05, seed=seed)
    return BSATrainer(cfg, base, images, labels, ["even", "odd"], perceptual=None)


@pytest.mark.parametrize("adapt", ["scale-shift", "hyper-bn"])
def test_training_improves_reconstructions_and_leaves_the_base_untouched(base, adapt):
    before = {k: v.clone() for k, v in base.state_dict().items()}
    trainer = _trainer(base, adapt)

    def recon_error():
        with torch.no_grad():
            return (trainer.adapter.generate(trainer.adapter.latents, trainer.labels) - trainer.images).abs().mean().item()

    start = recon_error()
    for step in range(120):
        trainer.train_step(step)
    # The tiny random model has little capacity; measured here: -4% (scale-shift) and -7% (hyper-bn) at 120 steps.
    assert recon_error() < 0.975 * start
    after = base.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    trainer.adapter.detach_hooks()


def test_checkpoint_holds_only_the_adapter_and_resume_is_exact(base, tmp_path):
    loop = LoopConfig(iters=12, sample_every=6, checkpoint_every=6)
    straight = _trainer(base)
    train(RunFolder(tmp_path / "a"), straight, loop)
    straight.adapter.detach_hooks()

    run = RunFolder(tmp_path / "b")
    first = _trainer(base)
    calls = iter(range(100))
    assert train(run, first, loop, should_stop=lambda: next(calls) >= 5) == "stopped"
    first.adapter.detach_hooks()
    ckpt = run.load_checkpoint()
    model_keys = [k for k in ckpt.tensors if not k.startswith(("optim/", "rng/"))]
    assert model_keys and all(k.startswith("adapter/") for k in model_keys)
    assert set(model_keys) == {f"adapter/{k}" for k in first.adapter.state_dict()}  # no base-model tensor

    second = _trainer(base, seed=99)
    second.cfg = straight.cfg  # same config as the run; every state comes from the checkpoint
    assert train(run, second, loop, start_step=resume(run, second)) == "finished"
    for (name, a), b in zip(straight.adapter.state_dict().items(), second.adapter.state_dict().values()):
        assert torch.equal(a, b), name
    second.adapter.detach_hooks()


def test_emd_is_zero_only_for_matching_sets_and_latents_sampling():
    z = torch.randn(4, 8)
    assert emd_loss(z, torch.Generator().manual_seed(0)) > 0
    g = torch.Generator().manual_seed(0)
    t = sample_latents(1000, 16, 0.5, g, truncate=True)
    assert t.abs().max() <= 0.5
    assert 0.4 < sample_latents(4000, 16, 0.5, g).std() < 0.6


def test_cached_real_features_give_the_same_loss_curve_as_recomputing_them():
    """The fast path (real images' VGG features computed once) against the plain one, 50 steps in fp32."""
    from studio.methods.bsa import BSAConfig, BSATrainer
    from studio.models.biggan import load_biggan
    from studio.models.vgg import load_vgg16

    images = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    curves = {}
    for mode in ("recompute", "cache"):
        cfg = BSAConfig(model="tiny", perceptual="tiny", batch=3, real_features=mode)
        trainer = BSATrainer(cfg, load_biggan("tiny"), images, torch.zeros(6, dtype=torch.long), ["all"],
                             perceptual=load_vgg16("tiny"), device="cpu")
        assert (trainer.real_features is not None) == (mode == "cache")
        curves[mode] = torch.stack([trainer.train_step(step)["loss"] for step in range(50)])
        trainer.adapter.detach_hooks()
    assert torch.allclose(curves["cache"], curves["recompute"], rtol=1e-5, atol=1e-6)


def test_channels_last_gives_the_same_loss_curve_as_contiguous():
    """The fast memory layout against the plain one over 50 steps in fp32 (BSA is not adversarial: no drift)."""
    from studio.methods.bsa import LAYOUTS, BSAConfig, BSATrainer
    from studio.models.biggan import load_biggan
    from studio.models.vgg import load_vgg16

    images = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    curves = {}
    for layout, fmt in LAYOUTS.items():
        base, vgg = load_biggan("tiny").to(memory_format=fmt), load_vgg16("tiny").to(memory_format=fmt)
        trainer = BSATrainer(BSAConfig(model="tiny", perceptual="tiny", batch=3, layout=layout), base,
                             images.contiguous(memory_format=fmt), torch.zeros(6, dtype=torch.long), ["all"],
                             perceptual=vgg, device="cpu")
        curves[layout] = torch.stack([trainer.train_step(step)["loss"] for step in range(50)])
        trainer.adapter.detach_hooks()
    assert torch.allclose(curves["channels_last"], curves["contiguous"], rtol=1 / 128)  # within bf16 tolerance


def test_bf16_autocast_follows_the_fp32_loss_curve():
    """The GPU fast path (bf16 autocast, fp32 master parameters) run on the CPU: 50 steps within bf16 tolerance."""
    from studio.methods.bsa import BSAConfig, BSATrainer
    from studio.models.biggan import load_biggan
    from studio.models.vgg import load_vgg16

    images = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    curves = {}
    for precision in ("fp32", "bf16"):
        trainer = BSATrainer(BSAConfig(model="tiny", perceptual="tiny", batch=3, precision=precision), load_biggan("tiny"),
                             images, torch.zeros(6, dtype=torch.long), ["all"], perceptual=load_vgg16("tiny"), device="cpu")
        curves[precision] = torch.stack([trainer.train_step(step)["loss"] for step in range(50)])
        assert all(p.dtype == torch.float32 for p in trainer.adapter.parameters())
        trainer.adapter.detach_hooks()
    assert torch.allclose(curves["bf16"], curves["fp32"], rtol=2 / 128), (curves["bf16"] - curves["fp32"]).abs().max()
