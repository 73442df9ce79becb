"""bf16 autocast against fp32 on every hot path, with tiny models: cGAN training (both architectures), BSA, the blend
(CLIP guidance) and the evaluation features. Outputs, losses and gradients agree within bf16's rounding, parameters
stay fp32, and `auto` is bf16 exactly where studio.devices.fast_bf16 says the hardware has bf16 units.

Tolerances. bf16 keeps 8 significant bits, so each rounding is off by at most 2^-9 (0.2%) of the value; through a
dozen layers these add up to about 1% of an activation's scale. Measured on these tiny models (one CPU core):
  - generated images in [-1, 1]: at most 0.021 apart (light cGAN G), 0.002 on average. Bound: 0.05 anywhere (about 6
    of 255 levels, invisible) and 0.005 on average;
  - losses: within 0.5% (D's mean score on fakes: 0.27%-0.44%). Bound: 2% relative, plus 2e-3 absolute for the terms
    that sit near 0;
  - gradients: cosine similarity with fp32's at least 0.9991 (FastGAN's G). Bound: 0.995, still a near-identical
    direction, where a wrong cast or a loss reduced in bf16 drops far below;
  - embeddings: cosine similarity at least 0.99997, relative error 0.3%. Bound: 0.999 and 1%;
  - CLIP similarities (cosines of unit vectors): 6e-4 apart. Bound: 2e-3.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.functional import cosine_similarity

from studio import devices
from studio.devices import autocast
from studio.evaluate import feature_precision
from studio.guide import BlendedAdapter, GuideConfig, PromptGuide, SamplerTarget, clip_precision, guide_precision
from studio.methods.bsa import BSAAdapter, BSAConfig, BSATrainer
from studio.methods.cgan import CGANConfig, CGANSampler, CGANTrainer
from studio.metrics import Classifier
from studio.models.biggan import load_biggan
from studio.models.clip import load_clip
from studio.models.features import tiny_features
from studio.models.vgg import load_vgg16

CPU = torch.device("cpu")
IMAGE_MAX, IMAGE_MEAN = 0.05, 0.005
LOSS_RTOL, LOSS_ATOL = 0.02, 2e-3
GRAD_COSINE = 0.995
EMBED_COSINE, EMBED_RELATIVE = 0.999, 0.01
SIMILARITY_ATOL = 2e-3


@pytest.fixture(scope="module")
def clip():
    return load_clip("tiny")


def _grads(params) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in params if p.grad is not None])


def _assert_images_close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert b.dtype == torch.float32 and not torch.equal(a, b)  # bf16 really ran: its rounding shows
    diff = (a - b).abs()
    assert diff.max() < IMAGE_MAX and diff.mean() < IMAGE_MEAN, (float(diff.max()), float(diff.mean()))


def _assert_losses_close(a: dict, b: dict, keys, atol: float = LOSS_ATOL) -> None:
    assert any(not torch.equal(a[key], b[key]) for key in keys)  # the step itself ran under bf16
    for key in keys:
        assert torch.allclose(a[key].float(), b[key].float(), rtol=LOSS_RTOL, atol=atol), (key, a[key], b[key])


def _assert_same_direction(a: torch.Tensor, b: torch.Tensor) -> None:
    assert cosine_similarity(a, b, dim=0) > GRAD_COSINE


def _smooth_images(n: int, size: int = 32) -> torch.Tensor:
    low = torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(3)) * 2 - 1
    return torch.nn.functional.interpolate(low, size=size, mode="bilinear")


@pytest.mark.parametrize("arch", ["light", "fastgan"])
def test_cgan_training_step_in_bf16_matches_fp32(arch):
    images = torch.rand(24, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    z, y = torch.randn(8, 128, generator=torch.Generator().manual_seed(5)), torch.arange(8) % 3
    runs = {}
    for precision in ("fp32", "bf16"):
        # No D dropout: its 1/0.7 rescaling magnifies bf16's rounding of d_fake's near-zero mean past the absolute
        # tolerance (0.004 against 0.002); the masks are the same in both, so it is not what this compares.
        trainer = CGANTrainer(CGANConfig(arch=arch, g_ch=8, d_ch=8, batch=8, precision=precision, d_dropout=0.0), images,
                              torch.arange(24) % 3, ["a", "b", "c"])
        with torch.no_grad(), autocast(CPU, precision):
            fake = trainer.g(z, y).float()
        losses = trainer.train_step(0)
        runs[precision] = fake, losses, _grads(trainer.g.parameters()), _grads(trainer.d.parameters()), trainer
    (fake32, loss32, g32, d32, _), (fake16, loss16, g16, d16, half) = runs["fp32"], runs["bf16"]
    _assert_images_close(fake32, fake16)
    # d_real and d_fake are means near zero of scores of either sign: no relative tolerance helps there, and the
    # generator's folded upsampling convs (models/cgan.upsample_conv) left d_fake 0.0035 from fp32 on an emulating EPYC.
    _assert_losses_close(loss32, loss16, ("d_loss", "d_real", "d_fake", "g_loss", "mode_seeking"), atol=5e-3)
    _assert_same_direction(g32, g16)
    _assert_same_direction(d32, d16)
    assert half.precision == "bf16"
    assert all(p.dtype == torch.float32 for m in (half.g, half.d, half.g_ema) for p in m.parameters())
    assert all(v.dtype == torch.float32 for v in half.opt_g.state_dict()["state"][0].values() if v.is_floating_point())


def test_cgan_sampling_stays_fp32_so_a_seed_is_the_same_image_in_any_batch():
    """bf16 would make a latent's image depend on its batch (by up to 2 of 255 levels, measured); sampling skips it."""
    images = torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    trainer = CGANTrainer(CGANConfig(g_ch=8, d_ch=8, batch=4, precision="bf16"), images, torch.arange(12) % 3, ["a", "b", "c"])
    trainer.train_step(0)
    sampler = CGANSampler(trainer.g_ema, trainer.classes)
    batch = sampler.sample(16, label="b", seed=4)
    alone = sampler.sample(1, label="b", seed=4)
    assert batch.dtype == torch.float32
    torch.testing.assert_close(batch[:1], alone, atol=1e-5, rtol=0)


def test_bsa_training_step_in_bf16_matches_fp32():
    images = _smooth_images(6)
    z = 0.5 * torch.randn(4, 128, generator=torch.Generator().manual_seed(1))
    runs = {}
    for precision in ("fp32", "bf16"):
        trainer = BSATrainer(BSAConfig(model="tiny", perceptual="tiny", batch=3, precision=precision), load_biggan("tiny"),
                             images, torch.zeros(6, dtype=torch.long), ["all"], perceptual=load_vgg16("tiny"))
        with torch.no_grad(), autocast(CPU, precision):
            out = trainer.adapter.generate(z, torch.zeros(4, dtype=torch.long)).float()
        losses = trainer.train_step(0)
        runs[precision] = out, losses, _grads(trainer.adapter.parameters()), trainer
        trainer.adapter.detach_hooks()
    (out32, loss32, grad32, _), (out16, loss16, grad16, half) = runs["fp32"], runs["bf16"]
    _assert_images_close(out32, out16)
    _assert_losses_close(loss32, loss16, ("loss", "l1", "perceptual", "emd", "class"))
    _assert_same_direction(grad32, grad16)
    assert half.precision == half.meta["precision"] == "bf16"
    assert all(p.dtype == torch.float32 for p in half.adapter.parameters())
    assert all(b.dtype == torch.float32 for b in half.adapter.model.buffers() if b.is_floating_point())  # base untouched


@pytest.mark.parametrize("clip_in", ["fp32", "bf16"])
def test_blend_step_in_bf16_matches_fp32(clip, clip_in):
    """The generator under autocast; CLIP as on a CPU (fp32, studio.guide.clip_precision) or as on a GPU (bf16)."""
    runs = {}
    for precision in ("fp32", "bf16"):
        base = load_biggan("tiny", seed=0)
        a = BSAAdapter(base, n_images=2, classes=["x"], adapt="hyper-bn")
        b = BSAAdapter(base, n_images=2, classes=["y"], adapt="hyper-bn")
        with torch.no_grad():
            for p in b.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(2)))
        guide = PromptGuide(GuideConfig(prompt="a red circle", cutouts=4, precision=precision),
                            SamplerTarget(BlendedAdapter(a, b)), clip, device=CPU)
        if precision == "bf16":
            guide.clip_precision = clip_in
        with torch.no_grad(), autocast(CPU, precision):
            image = guide.render().float()
        losses = guide.train_step(0)
        runs[precision] = image, losses, _grads(guide.params.values()), guide
        a.detach_hooks()
    (img32, loss32, grad32, _), (img16, loss16, grad16, half) = runs["fp32"], runs["bf16"]
    _assert_images_close(img32, img16)
    assert not torch.equal(loss32["similarity"], loss16["similarity"])  # the step itself ran under bf16
    for key in ("similarity", "score"):
        assert abs(float(loss32[key]) - float(loss16[key])) < SIMILARITY_ATOL, key
    assert torch.equal(loss32["latent_energy"], loss16["latent_energy"])  # z's penalty: fp32 in both
    _assert_same_direction(grad32, grad16)
    assert half.meta["precision"] == "bf16" and half.meta["clip_precision"] == "fp32"  # what the guide chose on a CPU
    assert all(p.dtype == torch.float32 for p in half.params.values())
    assert all(v.dtype == torch.float32 for v in half.ema.values())


def _assert_embeddings_close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert b.dtype == torch.float32 and not torch.equal(a, b)  # bf16 really ran
    assert cosine_similarity(a, b).min() > EMBED_COSINE
    assert ((a - b).norm(dim=1) / a.norm(dim=1)).max() < EMBED_RELATIVE


def test_evaluation_features_in_bf16_match_fp32(clip):
    images = torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    net = tiny_features()
    with autocast(CPU, "bf16"):
        half = net(images)
    _assert_embeddings_close(net(images), half)
    judge = Classifier(3, precision="fp32")
    full = judge.embed(images)
    judge.precision = "bf16"
    assert judge.inference_precision() == "bf16"
    _assert_embeddings_close(full, judge.embed(images))
    assert judge.predict(images).dtype == torch.int64  # class indices are not cast to float
    resized = torch.nn.functional.interpolate(images, size=(clip.image_size,) * 2, mode="bilinear")
    with autocast(CPU, "bf16"):
        half = clip.embed_images(resized)
    _assert_embeddings_close(clip.embed_images(resized), half)


@pytest.mark.parametrize("fast", [True, False])
def test_auto_is_bf16_exactly_where_the_hardware_has_fast_bf16(monkeypatch, clip, fast):
    monkeypatch.setattr(devices, "fast_bf16", lambda device: fast)
    want = "bf16" if fast else "fp32"
    images = _smooth_images(4)
    assert CGANTrainer(CGANConfig(g_ch=8, d_ch=8, batch=4), images, torch.arange(4) % 2, ["a", "b"]).precision == want
    bsa = BSATrainer(BSAConfig(model="tiny", perceptual="none", batch=2), load_biggan("tiny"), images,
                     torch.zeros(4, dtype=torch.long), ["all"], perceptual=None)
    bsa.adapter.detach_hooks()
    assert BSAConfig().precision == GuideConfig(prompt="x").precision == "auto"
    assert bsa.precision == bsa.meta["precision"] == want
    assert feature_precision(tiny_features(), "auto") == want
    assert guide_precision("auto", torch.device("cuda")) == want  # a blend on a GPU
    # Where auto measured no gain it stays fp32, whatever the hardware: a blend on a CPU (its generator and CLIP),
    # CLIP's features on a CPU, and the judge's features.
    adapter = BSAAdapter(load_biggan("tiny"), n_images=2, classes=["x"], adapt="hyper-bn")
    guide = PromptGuide(GuideConfig(prompt="x"), SamplerTarget(adapter), clip, device=CPU)
    adapter.detach_hooks()
    assert guide.precision == guide.meta["precision"] == guide.clip_precision == "fp32"
    assert clip_precision("bf16", torch.device("cuda")) == "bf16" and clip_precision("bf16", CPU) == "fp32"
    assert Classifier(2).inference_precision() == "fp32"
    # A precision asked for by name holds on any hardware.
    assert Classifier(2, precision="bf16").inference_precision() == "bf16"
    assert feature_precision(tiny_features(), "bf16") == "bf16" and feature_precision(tiny_features(), "fp32") == "fp32"
    assert guide_precision("bf16", CPU) == "bf16" and guide_precision("fp32", torch.device("cuda")) == "fp32"
    asked = BSATrainer(BSAConfig(model="tiny", perceptual="none", batch=2, precision="bf16"), load_biggan("tiny"), images,
                       torch.zeros(4, dtype=torch.long), ["all"], perceptual=None)
    asked.adapter.detach_hooks()
    assert asked.precision == "bf16"
