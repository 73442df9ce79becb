"""FastGAN (Liu et al. 2021), class-conditional, for 32-1024 px: a drop-in for studio.models.cgan's networks.

Same `CGANArch`, same calls: `Generator(arch)(z, y=None, class_embedding=None)` → images in [-1, 1],
`Discriminator(arch)(x, y, condition=1.0)` → scores [N], `Generator.embed`, `Generator.coarse_prefixes()`.

Generator: z and the class embedding → 4×4 (transposed conv, FastGAN's InitLayer) → one up-block per
octave (nearest ×2, 3×3 conv, noise, norm, GLU; every other block has two convs and noise, FastGAN's
UpBlockComp) → 3×3 conv → tanh. Skip-layer excitation (SLE) lets a 4-32 px map gate, channel by channel,
the map 16× larger (see `sle_pairs`).
Class conditioning is FiLM on pixel-normalised features, driven by the class embedding, in every block:
- no batch norm (FastGAN uses it): a sample must not depend on what else is in the batch, since the studio
  samples one image at a time from an EMA copy that has no useful running statistics;
- FiLM reads the embedding vector rather than a per-class table, so mixed embeddings (class
  interpolation, `class_embedding=`) mean something; it starts as the identity, like cgan.py's GBlock.
G has no spectral norm: its power-iteration buffers would go stale in the EMA copy, which averages
parameters only.

Discriminator: spectral-normalised FastGAN down-blocks (strided path averaged with a pooled 1×1 skip path),
minibatch-std, projection conditioning (Miyato & Koyama 2018), and FastGAN's self-supervised decoders:
one rebuilds the whole real image from the 8×8 features, one a random quadrant from the matching 8×8
corner of the 16×16 features. `forward(x, y, reconstruct=True)` returns the reconstructions with their
targets; the loss lives with the training method. Left out of FastGAN's D: batch norm, its own SLE, and
the second branch that scores a 128 px copy of the image.

How CGANArch's fields read here:
- g_ch, d_ch: FastGAN's ngf/ndf, multipliers of the width tables below (64 gives the paper's widths);
  no layer is narrower than MIN_WIDTH.
- embed_dim: G's class embedding, fed to the first layer and to every FiLM. D's projection embedding
  has the width of its last features.
- conditioning: "projection" only (CONDITIONINGS); the cGAN's "concat" label plane would cost
  resolution² parameters per class at 1024 px.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm

from studio.models.adaptable import AdaptableLayer
from studio.models.cgan import CGANArch, Judgement, PixelNorm, minibatch_std

RESOLUTIONS = (32, 64, 128, 256, 512, 1024)
CONDITIONINGS = ("projection",)
RECONSTRUCTS = True  # D has the self-supervised decoders: forward(x, y, reconstruct=True)

# Feature-map size → width multiplier (FastGAN's nfc_multi); width = multiplier × g_ch (G) or × d_ch (D).
G_WIDTHS = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}
D_WIDTHS = {8: 8, 16: 4, 32: 2, 64: 1, 128: 0.5, 256: 0.25, 512: 0.125, 1024: 0.125}
MIN_WIDTH = 8
# The decoders rebuild images of at most this size: FastGAN's 128 px at high resolution, half the
# resolution below 256 px so the quadrant target (resolution / 2) is never upsampled.
DECODER_MAX = 128


def g_width(arch: CGANArch, size: int) -> int:
    return max(MIN_WIDTH, int(G_WIDTHS[size] * arch.g_ch))


def d_width(arch: CGANArch, size: int) -> int:
    return max(MIN_WIDTH, int(D_WIDTHS[size] * arch.d_ch))


def sle_pairs(resolution: int) -> list[tuple[int, int]]:
    """(low, high) map sizes for skip-layer excitation: FastGAN's 4→64, 8→128, 16→256, 32→512 where they fit.

    Nets under 64 px have no 16× pair, so there the 4×4 map gates the last one (4→32).
    """
    pairs = [(low, 16 * low) for low in (4, 8, 16, 32) if 16 * low <= resolution]
    return pairs or [(4, resolution)]


def decoder_size(resolution: int) -> int:
    return min(DECODER_MAX, resolution // 2)


def check_arch(arch: CGANArch) -> None:
    if arch.resolution not in RESOLUTIONS:
        raise ValueError(f"FastGAN offers resolutions {', '.join(map(str, RESOLUTIONS))}, not {arch.resolution}.")
    if arch.conditioning not in CONDITIONINGS:
        raise ValueError(f"FastGAN's discriminator supports conditioning {' or '.join(CONDITIONINGS)}, "
                         f"not {arch.conditioning!r}.")


# ---------------------------------------------------------------------------------------------- generator


class ClassFiLM(nn.Module):
    """Pixel norm, then a scale and shift from the class embedding: a conditional norm without batch statistics."""

    def __init__(self, channels: int, embed_dim: int):
        super().__init__()
        self.norm = PixelNorm()
        self.film = nn.Linear(embed_dim, 2 * channels)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)  # starts as the identity: classes separate as training needs

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(c)[:, :, None, None].chunk(2, dim=1)
        return self.norm(x) * (1 + gamma) + beta


class NoiseInjection(nn.Module):
    """Adds one noise plane scaled per channel (weights start at 0, so the noise fades in as G finds use for it).

    Training draws fresh noise (from `rng` when given, so a run's randomness stays in its own generator);
    eval adds one fixed plane (StyleGAN's "const" noise) so a sample depends on its latent and class only.
    """

    def __init__(self, channels: int, size: int, seed: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, channels, 1, 1))
        # Not in the state dict: rebuilt from the seed, so checkpoints stay small at 1024 px.
        fixed = torch.randn(1, 1, size, size, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("fixed", fixed, persistent=False)

    def forward(self, x: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        if not self.training:
            return x + self.weight * self.fixed
        shape = (len(x), 1, *x.shape[2:])
        noise = torch.randn(shape, generator=rng, device=rng.device if rng is not None else x.device)
        return x + self.weight * noise.to(x.device, x.dtype)


class InitLayer(nn.Module):
    """z and class embedding → 4×4 map: transposed conv, conditional norm, GLU."""

    def __init__(self, arch: CGANArch):
        super().__init__()
        width = g_width(arch, 4)
        self.conv = nn.ConvTranspose2d(arch.z_dim + arch.embed_dim, 2 * width, 4, bias=False)
        self.norm = ClassFiLM(2 * width, arch.embed_dim)

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x = self.conv(torch.cat([z, c], dim=1)[:, :, None, None])
        return F.glu(self.norm(x, c), dim=1)


class UpBlock(nn.Module):
    """Nearest ×2, then (3×3 conv → [noise] → class FiLM → GLU); `comp` doubles it with noise (UpBlockComp)."""

    def __init__(self, cin: int, cout: int, size: int, embed_dim: int, *, comp: bool):
        super().__init__()
        n = 2 if comp else 1
        self.convs = nn.ModuleList(nn.Conv2d(cin if i == 0 else cout, 2 * cout, 3, padding=1, bias=False) for i in range(n))
        self.noises = nn.ModuleList(NoiseInjection(2 * cout, size, seed=size * 10 + i) for i in range(n if comp else 0))
        self.norms = nn.ModuleList(ClassFiLM(2 * cout, embed_dim) for _ in range(n))

    def forward(self, x: torch.Tensor, c: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = conv(x)
            if self.noises:
                x = self.noises[i](x, rng)
            x = F.glu(norm(x, c), dim=1)
        return x


class SkipExcitation(nn.Module):
    """FastGAN's SLE: a low-resolution map, pooled to 4×4, yields a per-channel gate for a high-resolution map."""

    def __init__(self, c_low: int, c_high: int):
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(4), nn.Conv2d(c_low, c_high, 4, bias=False), nn.LeakyReLU(0.1),
            nn.Conv2d(c_high, c_high, 1, bias=False), nn.Sigmoid())

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return high * self.gate(low)


class Generator(nn.Module):
    def __init__(self, arch: CGANArch):
        super().__init__()
        check_arch(arch)
        self.arch = arch
        self.sizes = [8 << i for i in range(arch.octaves)]  # output size of each block: 8 … resolution
        self.embed = nn.Embedding(arch.n_classes, arch.embed_dim)
        self.init = InitLayer(arch)
        # FastGAN alternates: two convs with noise into 8, 32, 128, 512 px; one plain conv into 16, 64, 256, 1024.
        self.blocks = nn.ModuleList(
            UpBlock(g_width(arch, size // 2), g_width(arch, size), size, arch.embed_dim, comp=size.bit_length() % 2 == 0)
            for size in self.sizes)
        self.sle = nn.ModuleDict({str(high): SkipExcitation(g_width(arch, low), g_width(arch, high))
                                  for low, high in sle_pairs(arch.resolution)})
        self.sle_source = {high: low for low, high in sle_pairs(arch.resolution)}
        self.to_rgb = nn.Conv2d(g_width(arch, arch.resolution), 3, 3, padding=1)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None, class_embedding: torch.Tensor | None = None,
                *, noise_rng: torch.Generator | None = None) -> torch.Tensor:
        """Images in [-1, 1]; condition on labels `y`, or directly on (mixed) class embeddings.

        `noise_rng` draws the training-mode noise (default: torch's global generator); eval uses fixed noise.
        """
        c = self.embed(y) if class_embedding is None else class_embedding
        x = self.init(z, c)
        maps = {4: x}
        for size, block in zip(self.sizes, self.blocks):
            x = block(x, c, noise_rng)
            if size in self.sle_source:
                x = self.sle[str(size)](maps[self.sle_source[size]], x)
            maps[size] = x
        return torch.tanh(self.to_rgb(x))

    def coarse_prefixes(self) -> tuple[str, ...]:
        """Parameter-name prefixes of the first layer, the first half of the blocks and the SLEs gating them."""
        half = (len(self.blocks) + 1) // 2
        top = self.sizes[half - 1]
        return ("init.", *(f"blocks.{i}." for i in range(half)),
                *(f"sle.{high}." for high in self.sle_source if high <= top))

    def adaptable_layers(self) -> list[AdaptableLayer]:
        """What BSA adapts (models/adaptable.py): the first transposed conv's output, then every class-FiLM norm's."""
        norms = [("init.norm", self.init.norm)] + [(f"blocks.{i}.norms.{j}", n) for i, b in enumerate(self.blocks)
                                                    for j, n in enumerate(b.norms)]
        return [AdaptableLayer("init.conv", self.init.conv, self.init.conv.out_channels, "channels", first=True),
                *(AdaptableLayer(name, n, n.film.out_features // 2, "channels") for name, n in norms)]


# ------------------------------------------------------------------------------------------ discriminator


class DownBlock(nn.Module):
    """FastGAN's DownBlockComp without batch norm: a strided 4×4 → 3×3 path averaged with an avg-pool → 1×1 path."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.main = nn.Sequential(
            spectral_norm(nn.Conv2d(cin, cout, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(cout, cout, 3, padding=1)), nn.LeakyReLU(0.2))
        self.skip = nn.Sequential(nn.AvgPool2d(2), spectral_norm(nn.Conv2d(cin, cout, 1)), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.skip(x)) / 2


class Decoder(nn.Module):
    """8×8 features → a small RGB image, by (nearest ×2, 3×3 conv, pixel norm, GLU) per octave.

    Plain convs: the decoders never feed the score, so they need no Lipschitz bound, and spectral norm
    would only make reaching the targets' full [-1, 1] range harder.
    """

    def __init__(self, arch: CGANArch, cin: int, out_size: int):
        super().__init__()
        layers: list[nn.Module] = []
        size = 8
        while size < out_size:
            size *= 2
            cout = d_width(arch, size)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, 2 * cout, 3, padding=1, bias=False),
                       PixelNorm(), nn.GLU(dim=1)]
            cin = cout
        layers += [nn.Conv2d(cin, 3, 3, padding=1), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.main(h)


@dataclass
class Reconstructions:
    """The decoders' images and what they should match (targets carry no gradient)."""

    whole: torch.Tensor          # [N, 3, S, S] from the 8×8 features
    whole_target: torch.Tensor   # the input image, area-downsampled to S
    part: torch.Tensor           # [N, 3, S, S] from one 8×8 quadrant of the 16×16 features
    part_target: torch.Tensor    # the same quadrant of the input image, at S
    quadrant: torch.Tensor       # [N] 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right


def crop_quadrants(t: torch.Tensor, quadrant: list[int]) -> torch.Tensor:
    """Per sample, the quadrant (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) of a [N, C, H, W] map."""
    h, w = t.shape[2] // 2, t.shape[3] // 2
    return torch.stack([t[i, :, (q // 2) * h:(q // 2 + 1) * h, (q % 2) * w:(q % 2 + 1) * w] for i, q in enumerate(quadrant)])


class Discriminator(nn.Module):
    def __init__(self, arch: CGANArch):
        super().__init__()
        check_arch(arch)
        self.arch = arch
        res = arch.resolution
        self.from_rgb = nn.Sequential(spectral_norm(nn.Conv2d(3, d_width(arch, res), 3, padding=1)), nn.LeakyReLU(0.2))
        sizes = [res >> i for i in range(arch.octaves - 1)]  # block inputs: resolution … 16, so the last gives 8×8
        self.blocks = nn.ModuleList(DownBlock(d_width(arch, s), d_width(arch, s // 2)) for s in sizes)
        top = d_width(arch, 8)
        # After the minibatch-std channel (ProGAN), as in cgan.py: a G that ignores z is easy to tell apart.
        self.final = nn.Sequential(spectral_norm(nn.Conv2d(top + 1, top, 3, padding=1)), nn.LeakyReLU(0.2))
        self.score = spectral_norm(nn.Linear(top, 1))
        self.embed = spectral_norm(nn.Embedding(arch.n_classes, top))
        self.classify = nn.Linear(top, arch.n_classes)  # AC-GAN's auxiliary classifier, trained when class_loss > 0
        self.decode_whole = Decoder(arch, top, decoder_size(res))
        self.decode_part = Decoder(arch, d_width(arch, 16), decoder_size(res))

    def forward(self, x: torch.Tensor, y: torch.Tensor, *, classify: bool = False, reconstruct: bool = False,
                generator: torch.Generator | None = None, condition: float = 1.0) -> torch.Tensor | Judgement:
        """Scores [N]; with `classify` or `reconstruct`, a Judgement that also holds the class logits or the decoders'
        output for this (real) batch.

        The quadrant each sample's part decoder rebuilds is drawn from `generator` (a CPU generator; default:
        torch's global one). `condition` weighs the class's part of the score (transitional conditioning; 1 = full)."""
        h = self.from_rgb(x)
        for block in self.blocks:
            h16, h = h, block(h)
        feats = self.final(torch.cat([h, minibatch_std(h)], dim=1)).sum(dim=(2, 3))
        scores = self.score(feats).squeeze(1) + condition * (self.embed(y) * feats).sum(dim=1)
        if not (classify or reconstruct):
            return scores
        return Judgement(scores, self.classify(feats) if classify else None,
                         self._reconstruct(x, h16, h, generator) if reconstruct else None)

    def _reconstruct(self, x: torch.Tensor, h16: torch.Tensor, h8: torch.Tensor,
                     generator: torch.Generator | None) -> Reconstructions:
        quadrant = torch.randint(4, (len(x),), generator=generator)
        q = quadrant.tolist()
        size = decoder_size(self.arch.resolution)
        x = x.detach()
        return Reconstructions(
            whole=self.decode_whole(h8), whole_target=F.interpolate(x, size=size, mode="area"),
            part=self.decode_part(crop_quadrants(h16, q)),
            part_target=F.interpolate(crop_quadrants(x, q), size=size, mode="area"),
            quadrant=quadrant)
