"""Class-conditional GAN networks for small art datasets (cArtGAN's idea, built for 32-128 px on a CPU).

Generator: z and the class embedding → 4×4 → (nearest ×2 and 3×3 conv, or a sub-pixel conv; pixel norm, 3×3 conv,
pixel norm, FiLM, leaky ReLU) per octave → RGB. No batch norm: samples do not depend on what else is in the
batch, and the EMA copy needs no running statistics. Class interpolation mixes label embeddings.

Discriminator: spectral-normalised strided convs, conditioned either by **projection**
(Miyato & Koyama 2018: ⟨embed(y), features⟩ added to the score) or by the seed's **concat**
(the label as an extra input channel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn.utils import spectral_norm

from studio.models.adaptable import AdaptableLayer

RESOLUTIONS = (32, 64, 128)
CONDITIONINGS = ("projection", "concat")
UPSAMPLINGS = ("nearest", "shuffle")


@dataclass(frozen=True)
class CGANArch:
    """Network shapes; the defaults live in the method's config (studio.methods.cgan.CGANConfig)."""

    resolution: int
    n_classes: int
    z_dim: int
    embed_dim: int
    g_ch: int                   # generator width at full resolution; doubles per octave down, capped at 8×
    d_ch: int                   # discriminator width at full resolution
    conditioning: str
    g_convs: int = 2            # 3×3 convolutions per generator block (runs made before it existed have 1)
    latent_film: int = 1        # finest generator blocks whose FiLM also reads the latent (runs made before it: 0)
    upsample: str = "nearest"   # how a generator block doubles its size, one of UPSAMPLINGS (runs made before it: nearest)
    d_dropout: float = 0.0      # dropout on the light discriminator's pooled features while it trains; no weights of its own

    @property
    def octaves(self) -> int:
        return int(math.log2(self.resolution // 4))

    def width(self, base: int, octave_from_top: int) -> int:
        return base * min(2 ** octave_from_top, 8)


class PixelNorm(nn.Module):
    """Normalise each pixel's feature vector to unit RMS (ProGAN): keeps scales in check without batch statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class Judgement(NamedTuple):
    """What a discriminator says when asked for more than its scores."""

    scores: torch.Tensor
    logits: torch.Tensor | None = None   # class logits of the auxiliary classifier (AC-GAN), with classify=True
    recon: Any = None                    # the self-supervised decoders' output (models/fastgan.py), with reconstruct=True


def upsample_conv(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """`conv` (3×3, padding 1) of `x` repeated ×2 (nearest), computed as one stride-2 transposed conv at the coarse size.

    Each fine pixel's 3×3 window covers only 2×2 coarse pixels, so the taps that land on one coarse pixel are summed
    first: 16 multiply-adds a pixel and channel pair instead of 36, the same sums up to float rounding. The 32 px
    training step on the 2-core EPYC: 132 ms instead of 143 (fp32, medians of ten alternating rounds)."""
    w = conv.weight  # [out, in, 3, 3]; a fine row 2m reads coarse rows m-1 (tap 0) and m (taps 1, 2), row 2m+1 reads
    # m (taps 0, 1) and m+1 (tap 2): the transposed conv's kernel rows 0-3 are taps 2, 1+2, 0+1, 0, and so are its columns
    def fold(w: torch.Tensor, dim: int) -> torch.Tensor:
        t0, t1, t2 = w.unbind(dim)
        return torch.stack([t2, t1 + t2, t0 + t1, t0], dim)

    kernel = fold(fold(w, 2), 3).transpose(0, 1)  # [in, out, 4, 4]: sums in the weights' own precision, before autocast
    return nn.functional.conv_transpose2d(x, kernel, conv.bias, stride=2, padding=1)


class GBlock(nn.Module):
    def __init__(self, cin: int, cout: int, embed_dim: int, convs: int = 2, upsample: str = "nearest"):
        super().__init__()
        # "shuffle" is a sub-pixel convolution (Shi et al. 2016): the first conv runs at the coarse size and writes
        # each of a coarse pixel's four fine pixels from its own weights, where nearest doubling repeats the pixel
        # before the conv. The FLOPs of that plain doubling (folded, as below, nearest costs 4/9 of them); an edge can
        # fall between two coarse pixels. Measured: more regular lattices and more recall on fine textures,
        # checkerboard traces on smooth gradients (docs/quality.md), so not the default.
        self.shuffle = upsample == "shuffle"
        self.conv = nn.Conv2d(cin, cout * 4 if self.shuffle else cout, 3, padding=1)
        # A second conv per octave costs a fifth more FLOPs at 32 px and is what lets fine patterns (weaves, waves)
        # and hard shapes form at all (bench/quality.py; docs/quality.md).
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1) if convs > 1 else None
        self.norm = PixelNorm()
        self.film = nn.Linear(embed_dim, 2 * cout)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)  # starts as the identity: classes separate as training needs

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if self.shuffle:
            x = self.norm(nn.functional.pixel_shuffle(self.conv(x), 2))
        else:
            x = self.norm(upsample_conv(x, self.conv))
        if self.conv2 is not None:
            x = self.norm(self.conv2(nn.functional.leaky_relu(x, 0.2)))
        gamma, beta = self.film(c)[:, :, None, None].chunk(2, dim=1)
        return nn.functional.leaky_relu(x * (1 + gamma) + beta, 0.2)


class Generator(nn.Module):
    def __init__(self, arch: CGANArch):
        super().__init__()
        self.arch = arch
        top = arch.width(arch.g_ch, arch.octaves)
        self.embed = nn.Embedding(arch.n_classes, arch.embed_dim)
        self.input = nn.Linear(arch.z_dim + arch.embed_dim, top * 16)
        widths = [arch.width(arch.g_ch, arch.octaves - i) for i in range(arch.octaves + 1)]
        # The finest blocks' FiLM reads the latent too, so colour and fine detail can vary within a class while the
        # coarse blocks keep the class's layout (in every block, the classes lost their structure: docs/quality.md).
        self.first_latent_block = arch.octaves - arch.latent_film
        self.blocks = nn.ModuleList(
            GBlock(widths[i], widths[i + 1], arch.embed_dim + (arch.z_dim if i >= self.first_latent_block else 0),
                   arch.g_convs, arch.upsample)
            for i in range(arch.octaves))
        self.to_rgb = nn.Conv2d(widths[-1], 3, 3, padding=1)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None, class_embedding: torch.Tensor | None = None,
                *, noise_rng: torch.Generator | None = None) -> torch.Tensor:
        """Images in [-1, 1]; condition on labels `y`, or directly on (mixed) class embeddings.

        `noise_rng` is part of the architectures' common call (models/fastgan.py injects noise); this one has none."""
        c = self.embed(y) if class_embedding is None else class_embedding
        x = self.input(torch.cat([z, c], dim=1)).view(len(z), -1, 4, 4)
        x = nn.functional.leaky_relu(PixelNorm()(x), 0.2)
        cz = torch.cat([c, z], dim=1)
        for i, block in enumerate(self.blocks):
            x = block(x, cz if i >= self.first_latent_block else c)
        return torch.tanh(self.to_rgb(x))

    def coarse_prefixes(self) -> tuple[str, ...]:
        """Parameter-name prefixes of the input layer and the first half of the blocks: composition, not texture."""
        return ("input.", *(f"blocks.{i}." for i in range((len(self.blocks) + 1) // 2)))

    def adaptable_layers(self) -> list[AdaptableLayer]:
        """What BSA adapts (models/adaptable.py): the input projection (viewed channel-major as [B, C, 4, 4]), then
        each block's FiLM, whose (γ, β) a scale and shift turn into those of the block's modulated features."""
        top = self.arch.width(self.arch.g_ch, self.arch.octaves)
        return [AdaptableLayer("input", self.input, top, "flat_first", first=True),
                *(AdaptableLayer(f"blocks.{i}.film", b.film, b.film.out_features // 2, "film")
                  for i, b in enumerate(self.blocks))]


class Discriminator(nn.Module):
    def __init__(self, arch: CGANArch):
        super().__init__()
        self.arch = arch
        in_ch = 3 + (1 if arch.conditioning == "concat" else 0)
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(in_ch, arch.d_ch, 3, padding=1)), nn.LeakyReLU(0.2)]
        cin = arch.d_ch
        for octave in range(1, arch.octaves + 1):
            cout = arch.width(arch.d_ch, octave)
            layers += [spectral_norm(nn.Conv2d(cin, cout, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            cin = cout
        self.features = nn.Sequential(*layers)
        # After the minibatch-std channel (ProGAN): D sees how varied the batch is, so a generator
        # that ignores z (the usual collapse on a few dozen images) is easy to tell apart.
        self.final = nn.Sequential(spectral_norm(nn.Conv2d(cin + 1, cin, 3, padding=1)), nn.LeakyReLU(0.2))
        self.score = spectral_norm(nn.Linear(cin, 1))
        self.classify = nn.Linear(cin, arch.n_classes)  # AC-GAN's auxiliary classifier, trained when class_loss > 0
        if arch.conditioning == "projection":
            self.embed = spectral_norm(nn.Embedding(arch.n_classes, cin))
        else:
            self.embed = nn.Embedding(arch.n_classes, arch.resolution ** 2)  # the seed's label channel

    def forward(self, x: torch.Tensor, y: torch.Tensor, *, classify: bool = False,
                generator: torch.Generator | None = None, condition: float = 1.0) -> torch.Tensor | Judgement:
        """Scores [N]; with `classify`, a Judgement that also holds the class logits.

        Training drops `arch.d_dropout` of the pooled features, the mask drawn from `generator` (a CPU generator, so a
        run's randomness stays in its own stream and a resume repeats it; default: torch's global generator).
        `condition` weighs the class's part of the score (transitional conditioning; 1 = full)."""
        if self.arch.conditioning == "concat":
            x = torch.cat([x, condition * self.embed(y).view(len(x), 1, *x.shape[2:])], dim=1)
        h = self.features(x)
        h = self.final(torch.cat([h, minibatch_std(h)], dim=1)).sum(dim=(2, 3))
        if self.training and self.arch.d_dropout > 0:
            keep = torch.rand(h.shape, generator=generator) >= self.arch.d_dropout
            h = h * keep.to(h.device, h.dtype) / (1 - self.arch.d_dropout)
        out = self.score(h).squeeze(1)
        if self.arch.conditioning == "projection":
            out = out + condition * (self.embed(y) * h).sum(dim=1)
        return Judgement(out, self.classify(h)) if classify else out


def minibatch_std(h: torch.Tensor, group: int = 4) -> torch.Tensor:
    """One channel holding the feature standard deviation across groups of `group` consecutive samples, averaged.

    Consecutive, so a batch split over devices in slices (studio.distributed) forms the same groups as one device."""
    n = h.shape[0]
    g = min(group, n)
    while n % g:
        g -= 1
    y = h.float().view(n // g, g, *h.shape[1:])
    y = y - y.mean(dim=1, keepdim=True)  # the variance written out: Tensor.var is ~4× slower here, forward and back
    std = (y.pow(2).mean(dim=1) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # [n // g]
    return std.repeat_interleave(g).view(n, 1, 1, 1).expand(n, 1, *h.shape[2:]).to(h.dtype)
