"""The FastGAN networks: shapes at every resolution, batch-independent samples, class FiLM from identity,
a full G/D training step (hinge + decoder reconstruction) at 256 and 1024 px, decoders' targets."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from studio.models.cgan import CGANArch, PixelNorm
from studio.models.fastgan import (RESOLUTIONS, ClassFiLM, Discriminator, Generator, crop_quadrants, decoder_size,
                                   sle_pairs)


def _arch(resolution: int, **overrides) -> CGANArch:
    return CGANArch(**{**dict(resolution=resolution, n_classes=3, z_dim=16, embed_dim=8, g_ch=4, d_ch=4,
                              conditioning="projection"), **overrides})


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_generator_and_discriminator_shapes_at_every_resolution(resolution):
    torch.manual_seed(0)
    n = 2 if resolution <= 256 else 1
    g, d = Generator(_arch(resolution)).eval(), Discriminator(_arch(resolution))
    y = torch.tensor([0, 2])[:n]
    with torch.no_grad():
        x = g(torch.randn(n, 16), y)
        scores = d(x, y)
    assert x.shape == (n, 3, resolution, resolution) and x.abs().max() <= 1 and x.std() > 0
    assert scores.shape == (n,) and torch.isfinite(scores).all()
    assert len(g.sle) >= 1 and sorted(map(int, g.sle)) == [high for _, high in sle_pairs(resolution)]


def test_sle_follows_the_paper_at_1024_and_reaches_small_nets():
    assert sle_pairs(1024) == [(4, 64), (8, 128), (16, 256), (32, 512)]
    assert sle_pairs(64) == [(4, 64)] and sle_pairs(32) == [(4, 32)]


def test_unsupported_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="projection"):
        Discriminator(_arch(64, conditioning="concat"))
    with pytest.raises(ValueError, match="resolutions"):
        Generator(_arch(48))


def test_a_sample_does_not_depend_on_the_rest_of_the_batch():
    torch.manual_seed(0)
    g = Generator(_arch(64)).eval()
    with torch.no_grad():
        for p in g.parameters():  # move FiLM and noise weights off their zero start so they count
            p.add_(0.05 * torch.randn_like(p))
        z, y = torch.randn(4, 16), torch.tensor([0, 1, 2, 1])
        batch = g(z, y)
        for i in range(4):
            assert torch.allclose(g(z[i:i + 1], y[i:i + 1])[0], batch[i], atol=1e-5)
        assert torch.equal(batch, g(z, y))  # eval noise is fixed: same inputs, same images


def test_training_noise_follows_the_given_generator():
    torch.manual_seed(0)
    g = Generator(_arch(32)).train()
    with torch.no_grad():
        for block in g.blocks:
            for noise in block.noises:
                noise.weight.fill_(0.5)
        z, y = torch.randn(2, 16), torch.tensor([0, 1])
        a = g(z, y, noise_rng=torch.Generator().manual_seed(3))
        assert torch.equal(a, g(z, y, noise_rng=torch.Generator().manual_seed(3)))
        assert not torch.allclose(a, g(z, y, noise_rng=torch.Generator().manual_seed(4)))


def test_class_film_starts_as_identity_and_then_changes_the_output():
    torch.manual_seed(0)
    arch = _arch(64)
    g = Generator(arch).eval()
    films = [m for m in g.modules() if isinstance(m, ClassFiLM)]
    c = torch.randn(2, arch.embed_dim)
    for f in films:
        x = torch.randn(2, f.film.out_features // 2, 4, 4)
        assert torch.equal(f(x, c), PixelNorm()(x))
    assert films
    z, y0, y1 = torch.randn(2, 16), torch.tensor([0, 0]), torch.tensor([1, 1])
    with torch.no_grad():
        g.init.conv.weight[arch.z_dim:] = 0  # the class now reaches the image through FiLM alone
        assert torch.equal(g(z, y0), g(z, y1))
        for f in films:
            f.film.weight.normal_(0, 0.3)
        assert (g(z, y0) - g(z, y1)).abs().max() > 1e-3


def test_class_embedding_path_equals_label_path():
    torch.manual_seed(0)
    g = Generator(_arch(32)).eval()
    with torch.no_grad():
        for f in (m for m in g.modules() if isinstance(m, ClassFiLM)):
            f.film.weight.normal_(0, 0.3)
        z, y = torch.randn(3, 16), torch.tensor([2, 0, 1])
        assert torch.equal(g(z, y), g(z, class_embedding=g.embed(y)))


@pytest.mark.parametrize("resolution", [32, 128, 512])
def test_decoders_rebuild_images_shaped_like_their_targets(resolution):
    torch.manual_seed(0)
    d = Discriminator(_arch(resolution)).eval()  # eval: spectral norm's power iteration stays put between calls
    x, y = torch.rand(2, 3, resolution, resolution) * 2 - 1, torch.tensor([0, 1])
    scores, _, rec = d(x, y, reconstruct=True, generator=torch.Generator().manual_seed(1))
    size = decoder_size(resolution)
    assert size == min(128, resolution // 2)
    for out, target in ((rec.whole, rec.whole_target), (rec.part, rec.part_target)):
        assert out.shape == target.shape == (2, 3, size, size) and out.abs().max() <= 1
    assert torch.allclose(rec.whole_target, F.interpolate(x, size=size, mode="area"))
    assert torch.allclose(rec.part_target, F.interpolate(crop_quadrants(x, rec.quadrant.tolist()), size=size, mode="area"))
    assert torch.allclose(scores, d(x, y), atol=1e-5)  # reconstructing does not change the score
    again = d(x, y, reconstruct=True, generator=torch.Generator().manual_seed(1)).recon
    assert torch.equal(again.quadrant, rec.quadrant)


def test_crop_quadrants_picks_each_corner():
    t = torch.arange(16.0).view(1, 1, 4, 4).repeat(4, 1, 1, 1)
    crops = crop_quadrants(t, [0, 1, 2, 3])
    assert crops[:, 0, 0, 0].tolist() == [0.0, 2.0, 8.0, 10.0]


@pytest.mark.parametrize("resolution,batch", [(256, 2), (1024, 1)])
def test_one_training_step_of_g_and_d_runs_on_the_cpu(resolution, batch):
    torch.manual_seed(0)
    arch = _arch(resolution)
    g, d = Generator(arch), Discriminator(arch)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g0 = {n: p.detach().clone() for n, p in g.named_parameters()}
    d0 = {n: p.detach().clone() for n, p in d.named_parameters()}
    real = torch.rand(batch, 3, resolution, resolution) * 2 - 1
    y, z = torch.arange(batch) % 3, torch.randn(batch, arch.z_dim)
    rng = torch.Generator().manual_seed(0)

    with torch.no_grad():
        fake = g(z, y, noise_rng=rng)
    d_real, logits, rec = d(real, y, classify=True, reconstruct=True, generator=rng)
    loss_rec = F.l1_loss(rec.whole, rec.whole_target) + F.l1_loss(rec.part, rec.part_target) + F.cross_entropy(logits, y)
    loss_d = F.relu(1 - d_real).mean() + F.relu(1 + d(fake, y)).mean() + loss_rec
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()

    loss_g = -d(g(z, y, noise_rng=rng), y).mean()
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()

    assert torch.isfinite(loss_d) and torch.isfinite(loss_g) and loss_rec > 0
    # Every G parameter learns from one step (FiLM, noise weights and SLE included); so does every D parameter,
    # the decoders through the reconstruction loss alone.
    assert [n for n, p in g.named_parameters() if torch.equal(p, g0[n])] == []
    assert [n for n, p in d.named_parameters() if torch.equal(p, d0[n])] == []
    assert all(torch.isfinite(p).all() for p in [*g.parameters(), *d.parameters()])
