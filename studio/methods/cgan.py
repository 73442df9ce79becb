"""Class-conditional GAN (cArtGAN) trained from a small labelled set, optionally transferred from an earlier run.

Small-data recipe: hinge loss, spectral norm in D, Adam(β1=0.5), DiffAugment on real and fake
in both D and G steps (always, or with an ADA-style adaptive probability), an exponential moving average of G
for sampling, optional R1 and LeCam regularisation. Two architectures (studio.models.CGAN_ARCHITECTURES):
`light` (models/cgan.py) and `fastgan` (models/fastgan.py), whose D also learns to reconstruct real images.
Transfer (the seed's cTransferArtGAN): G's layers (all, or only the coarse ones) and D come from the
parent run, the transferred G layers can stay frozen for the first N steps, label embeddings start afresh.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import sys
import types
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from studio.data.augment import diff_augment, parse_policy
from studio import distributed
from studio.devices import PRECISIONS, Adam, adam, autocast, resolve_precision
from studio.errors import UserError
from studio.methods import Method, class_indices, slerp
from studio.models import CGAN_ARCHITECTURES, cgan_architecture
from studio.models.cgan import UPSAMPLINGS, CGANArch
from studio.options import option
from studio.run import load_optimizer_tensors, optimizer_tensors

LAYOUTS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
ARCH_FIELDS = ("resolution", "z_dim", "embed_dim", "g_ch", "d_ch", "conditioning", "g_convs", "latent_film", "upsample")  # CGANArch's, from the config
# Fields added after runs were saved, with what those runs had: one conv a block, class-only FiLM, uncapped mode seeking,
# no anchors, no matching, no D dropout, no class smoothing.
SAVED_BEFORE = {"g_convs": 1, "latent_film": 0, "mode_seeking_cap": 0.0, "anchors": 0.0, "match": 0.0, "d_dropout": 0.0,
                "class_smoothing": 0.0}
RECON_LOSSES = ("auto", "vgg16", "pixels", "tiny")
ADA_ADJUST_EVERY = 4     # steps between adjustments of the augmentation probability
ADA_SPEED_STEPS = 500    # steps for the probability to go from 0 to 1 when D keeps overfitting
LECAM_DECAY = 0.99       # of the moving averages of D's outputs that LeCam anchors to
ANCHOR_IMAGES = 8        # training images a step that G redraws from their anchor latents
ANCHOR_LR = 1e-2         # the anchor latents' Adam rate (GLO's latents move faster than G's weights)
MATCH_MISMATCH = 1e9     # matching's cost of pairing a sample with an image of another class: never worth it


@dataclass
class CGANConfig:
    arch: str = option("light", label="Architecture", choices=lambda: tuple(CGAN_ARCHITECTURES),
                       help="light: small and fast on a CPU (32-128 px); fastgan: FastGAN-class, better structure, "
                            "slower a step (32-1024 px)")
    resolution: int = option(32, label="Resolution (px)", min=8, max=1024,
                             help="32 trains in minutes on a CPU; 128 and up want a GPU "
                                  "(FastGAN: about 6 GB at 256 px, 10 GB at 1024 px)")
    batch: int = option(32, label="Batch", min=2, max=1024, why_max="a larger batch does not fit in a GPU's memory")
    # G learns twice as fast as D on the CPU presets, where D sees each real image hundreds of times: measured, horizons'
    # precision 0.78 → 0.82 on average over three seeds, the other families level (docs/quality.md).
    lr_g: float = option(4e-4, label="Generator lr", min=0, max=1)
    lr_d: float = option(2e-4, label="Discriminator lr", min=0, max=1)
    beta1: float = option(0.5, label="Adam β1", min=0, max=1)
    # No colour augmentation on the CPU presets: with anchors and matching holding the colours it is no longer what keeps
    # textures from collapsing, and without it D sees a wrong hue (horizons' precision 0.73 → 0.80, docs/quality.md).
    augment: str = option("translation,cutout", label="DiffAugment",
                          help="keeps the discriminator from memorising a small dataset; color lets it overlook wrong "
                               "colours too (off by default; the GPU presets' long runs keep it)")
    # G_ema's decay; samples come from G_ema. 0.995 for the CPU presets' few thousand steps (higher recall than 0.999
    # in eight of ten paired runs, docs/quality.md); the GPU presets' tens of thousands of steps keep 0.999.
    ema: float = option(0.995, label="EMA decay", min=0, max=1)
    ema_start: int = option(100, label="EMA start", min=0)  # copy G straight into G_ema before this step: early weights are noise
    r1: float = option(0.0, label="R1 weight", min=0)  # R1 gradient penalty weight on real images (0 = off)
    lecam: float = option(0.0, label="LeCam weight", min=0)  # LeCam regularisation weight (Tseng et al. 2021; 0 = off)
    ada_target: float = option(0.0, label="ADA target", min=0, max=1)  # augment with a probability tuned so E[sign D(real)] stays here (0 = always augment)
    recon: str = option("auto", label="Reconstruction loss", choices=RECON_LOSSES)  # fastgan D's: auto (vgg16 when its weights are here, else pixels)
    recon_weight: float = option(1.0, label="Reconstruction weight", min=0)
    class_loss: float = option(0.5, label="Class loss", min=0, max=100,  # AC-GAN (Odena et al. 2017)
                               help="D also names each real image's class and G is rewarded when D names the class it "
                                    "was asked for: classes keep their own colours and shapes (0 = off)")
    # Label smoothing (Szegedy et al. 2016) on top of D's dropout, thirteen paired runs of seven families each time: 0.1
    # lifted the four lowest fidelities .896-.940 → .912-.956 (the thirty-third round); 0.2 lifts them to .933-.950, and
    # eight runs meet issue 18's bar against seven (docs/quality.md, the thirty-sixth round).
    class_smoothing: float = option(0.2, label="Class label smoothing", min=0, max=0.5,
                                    help="D's class head learns each real image's class as likely, not certain: this "
                                         "share of its target is spread over all the classes (0.2 of three: 0.87 for "
                                         "the image's own), so it cannot grow sure of a class from a few dozen images "
                                         "and G's class reward stays graded (0 = off)")
    mode_seeking: float = option(1.0, label="Mode seeking", min=0, max=100,  # MSGAN (Mao et al. 2019)
                                 help="rewards different images for different latents; guards against collapse")
    # On by default: the samples' brightness spread 1.9-2.4× the real images' without it, 1.2-1.7× with it, recall and
    # precision up or level on all five datasets (docs/quality.md: the cpu-32 table, "An eighth round").
    mode_seeking_cap: float = option(1.0, label="Mode seeking cap", min=0, max=10,
                                     help="push two samples of a class apart only until they differ as much as two of "
                                          "its training images do, times this (fewer near-black or washed-out "
                                          "samples; 0 = no cap)")
    # GLO (Bojanowski et al. 2018) beside the GAN: the demo's recall 0.71 against 0.43-0.61 (docs/quality.md).
    anchors: float = option(10.0, label="Anchor weight", min=0, max=1000,
                            help="each training image gets a latent of its own, learnt with G, from which G must "
                                 "redraw it (L1, 8 images a step): no training image is left without a latent that "
                                 "draws it, so samples cover more of each class (0 = off)")
    # Minibatch optimal transport (as in OT-GAN, Salimans et al. 2018, but in pixels and within a class): horizons'
    # precision 0.58 → 0.73 and textures' recall 0.32 → 0.42, means of three seeds (docs/quality.md, the table at the top).
    match: float = option(10.0, label="Matching weight", min=0, max=1000,
                          help="each step pairs the batch's samples one-to-one with its training images of the same "
                               "class (least total pixel distance) and pulls every sample towards its pair (L1): "
                               "samples land on the images' own colours and layouts, each on a different one (0 = off)")
    # A lattice a pixel or two out of phase with its pair pays a pixel L1 as a blur would, so on fine patterns the pull
    # rewards soft mean colours; within this many pixels the pair's nearest circular shift is the target instead. From
    # the start it bought recall with precision; once the classes are in, it kept both (docs/quality.md, round 41).
    match_shift: int = option(0, label="Matching shift (px)", min=0, max=4,
                              help="from the step the class condition is full (Class condition full at step), "
                                   "matching pulls each sample towards the shift of its pair, within this many pixels "
                                   "each way, that lies nearest: a fine lattice drawn out of phase is not pulled into a "
                                   "blur (0 = its pair as it is)")
    truncation: float = option(1.0, label="Sampling truncation", min=0.05, max=2.0,
                               help="the latent scale a run's samples are drawn at unless asked otherwise (z ~ N(0, t²); "
                                    "the Generate tab's Truncation starts here): above 1 more variety, below 1 safer "
                                    "samples; training is the same either way")
    z_dim: int = option(128, label="Latent size", min=1, max=4096)
    embed_dim: int = option(128, label="Class embedding size", min=1, max=4096)
    g_convs: int = option(2, label="Convolutions per block", min=1, max=2,
                          help="light architecture: 3×3 convolutions per generator octave (FastGAN's blocks are fixed)")
    latent_film: int = option(1, label="Blocks with latent FiLM", min=0, max=8,
                              help="light architecture: the finest generator blocks whose FiLM reads the latent as well "
                                   "as the class, so colours and fine detail vary within a class (0 = class only: "
                                   "samples stay nearer the paintings, less varied; better on smooth scenes, "
                                   "docs/quality.md)")
    upsample: str = option("nearest", label="Upsampling", choices=UPSAMPLINGS,
                           help="light architecture: how a generator block doubles its size: nearest (repeat each "
                                "pixel, then convolve) or shuffle (a sub-pixel convolution: each coarse pixel writes "
                                "its four fine ones, so an edge can fall between them; more regular fine lattices, "
                                "checkerboard traces on smooth skies, docs/quality.md; the cpu-32-patterns preset, which "
                                "fine repeating patterns pick by themselves)")
    g_ch: int = option(16, label="Generator width", min=4, max=1024,  # measured to fit the default run in 5 CPU minutes (bench/cgan_step.py)
                       why_max="wider networks do not fit in a GPU's memory")
    d_ch: int = option(16, label="Discriminator width", min=4, max=1024, why_max="wider networks do not fit in a GPU's memory")
    # Dropout (Srivastava et al. 2014) keeps D from leaning on a few features of a few dozen images: on six runs where
    # the default missed the bar or came nearest to it, fidelity 0.927 → 0.937 and recall 0.70 → 0.74, precision level
    # (docs/quality.md, the thirty-first round).
    d_dropout: float = option(0.3, label="Discriminator dropout", min=0, max=0.9,
                              help="light architecture: the share of the discriminator's last features dropped at "
                                   "random while it trains, so it cannot memorise a small dataset by a few of them "
                                   "(0 = off)")
    conditioning: str = option("projection", label="Conditioning")
    precision: str = option("auto", label="Precision", choices=PRECISIONS,
                            help="auto: bf16 autocast where the device has fast bf16 (AMX/AVX-512-BF16 CPUs, recent GPUs), else fp32")
    layout: str = option("channels_last", label="Memory layout", choices=tuple(LAYOUTS))  # channels_last measured 1.1-1.45× faster on CPU
    transfer_from: str | None = option(None, label="Transfer from run",  # parent run name
                                       help="start from an earlier cGAN run's generator (same resolution and widths)")
    transfer_keep: str = option("all", label="Transferred layers", choices=("all", "coarse"))  # all: every G layer but the labels (measured better); coarse: input + first half
    freeze_steps: int = option(0, label="Freeze steps", min=0)  # keep transferred G layers frozen this long
    # Transitional conditioning (Shahbazi et al. 2022, "Collapse by Conditioning"): a class-conditional GAN on a few
    # dozen images a class collapses sooner than an unconditional one on all of them, so G and D first learn what
    # every class shares, then the class's weight in G's input, D's projection and G's class loss rises to 1.
    cond_start: int = option(0, label="Class condition from step", min=0,
                             help="until this step G and D ignore the class and learn one model of all the images "
                                  "(with a later full-weight step)")
    cond_end: int = option(0, label="Class condition full at step", min=0,
                           help="the step where the class's weight, rising linearly from the step above, reaches 1; "
                                "a run shorter than twice this fades it in over the same share of its first half "
                                "(0 = conditioned from the start)")
    seed: int = option(0, label="Seed", min=0)

    def __post_init__(self) -> None:
        if self.arch not in CGAN_ARCHITECTURES:
            raise UserError(f"Unknown architecture {self.arch!r}: choose {' or '.join(CGAN_ARCHITECTURES)}.")
        nets = self.networks
        if self.resolution not in nets.RESOLUTIONS:
            others = [a for a in CGAN_ARCHITECTURES if self.resolution in cgan_architecture(a).RESOLUTIONS]
            raise UserError(f"Resolution {self.resolution} is not offered by the {self.arch} architecture: choose "
                            f"{', '.join(map(str, nets.RESOLUTIONS))}"
                            + (f", or the {' or '.join(others)} architecture." if others else "."))
        if self.conditioning not in nets.CONDITIONINGS:
            raise UserError(f"The {self.arch} architecture has no {self.conditioning!r} conditioning: choose "
                            f"{' or '.join(nets.CONDITIONINGS)}.")
        if self.recon not in RECON_LOSSES:
            raise UserError(f"Reconstruction loss is one of {', '.join(RECON_LOSSES)}, not {self.recon!r}.")
        if not 0 <= self.ada_target < 1 or self.lecam < 0:
            raise UserError("ada_target must be from 0 (off) to below 1, and lecam at least 0.")
        if self.transfer_keep not in ("coarse", "all"):
            raise UserError("--transfer-keep must be coarse or all.")
        if self.batch < 1 or self.lr_g <= 0 or self.lr_d <= 0:
            raise UserError("Batch size and learning rates must be positive.")
        parse_policy(self.augment)
        if self.upsample not in UPSAMPLINGS:
            raise UserError(f"Upsampling is one of {', '.join(UPSAMPLINGS)}, not {self.upsample!r}.")
        if self.layout not in LAYOUTS:
            raise UserError(f"Layout is one of {', '.join(LAYOUTS)}, not {self.layout!r}.")
        if self.cond_end and self.cond_end <= self.cond_start:
            raise UserError(f"Class condition full at step ({self.cond_end}) must come after Class condition from step "
                            f"({self.cond_start}), or be 0 (conditioned from the start).")

    def fit_loop(self, loop) -> "CGANConfig":
        """This config for a run of `loop.iters` steps: a run too short for the class condition to reach full weight
        by half way (a quick try of a preset) fades it in over the same share of its first half."""
        if 2 * self.cond_end <= loop.iters:
            return self
        scale = loop.iters / (2 * self.cond_end)
        start, end = int(self.cond_start * scale), int(self.cond_end * scale)
        return replace(self, cond_start=start, cond_end=end if end > start else 0)

    @property
    def networks(self):
        """The architecture's module: Generator, Discriminator, RESOLUTIONS, CONDITIONINGS."""
        return cgan_architecture(self.arch)

    @property
    def memory_format(self) -> torch.memory_format:
        return LAYOUTS[self.layout]

    @classmethod
    def from_dict(cls, d: dict) -> "CGANConfig":
        known = {f.name for f in fields(cls)}
        if "g_ch" in d:  # a cGAN run saved before a field existed gets the value it was trained with
            d = {**SAVED_BEFORE, **d}
        return cls(**{k: v for k, v in d.items() if k in known})

    def shapes(self, n_classes: int) -> CGANArch:
        return CGANArch(n_classes=n_classes, d_dropout=self.d_dropout, **{k: getattr(self, k) for k in ARCH_FIELDS})


# Times on this project's 2-core Xeon (bf16, bench/cgan_step.py: 0.08 s a step at 32 px, 0.14 at 64 px); GPU memory is
# what one FastGAN step held on the CPU (bench/cgan_step.py --arch fastgan, peak resident set), FLOPs counted there.
# Tens of thousands of steps average over a longer window than the CPU presets' default, and give D that long to memorise
# a small set: colour augmentation and equal learning rates stay there (the changes were measured on the CPU presets).
_GPU = {"ema": 0.999, "augment": "color,translation,cutout", "lr_g": 2e-4}
_GPU_LOOP = {"sample_every": 1000, "checkpoint_every": 5000}  # a 1024 px checkpoint is ~0.5 GB: not every 500 steps
# Fine repeated detail (textiles, tilings, halftones): sub-pixel doubling and the latent in the finest two FiLM blocks
# draw lattices more evenly, a wider draw covers more of them, and half the batch buys 5000 steps in the time of
# 3500 (recall 0.42 → 0.62 on textures, 0.48 → 0.63 on the tiles family held out from tuning, docs/quality.md).
# Such images pick it themselves (preset_for_data); on smooth skies the sub-pixel doubling leaves checkerboard
# traces, so it is no one's default. The class fades in over steps 500-2000 (transitional conditioning): 5 of 8 pattern
# runs meet issue 18's bar against 3, means level, more palettes a class in the grids (docs/quality.md, round 39).
# Then matching forgives a lattice's phase by 2 px: recall 0.60 → 0.63 on the eight runs, precision level (round 41).
FINE_PATTERN_PRESET = "cpu-32-patterns"
FINE_PATTERNS = {"resolution": 32, "iters": 5000, "batch": 16, "upsample": "shuffle", "latent_film": 2, "truncation": 1.3,
                 "cond_start": 500, "cond_end": 2000, "match_shift": 2}
PRESETS: dict[str, dict[str, Any]] = {
    "cpu-32": {"resolution": 32, "iters": 3500, "batch": 32},
    FINE_PATTERN_PRESET: FINE_PATTERNS,
    # Its 2,500 steps leave many kinds of a class undrawn at t = 1: samples drawn at 1.15 meet the bar in 4 of 10 runs
    # instead of 3 (recall 0.63 → 0.68, precision 0.89 → 0.87; 1.3 costs more precision; docs/quality.md).
    "cpu-64": {"resolution": 64, "iters": 2500, "batch": 16, "truncation": 1.15},
    "gpu-64": {"resolution": 64, "iters": 20000, "batch": 64, "g_ch": 32, "d_ch": 32, **_GPU},
    "gpu-128": {"resolution": 128, "iters": 40000, "batch": 32, "g_ch": 32, "d_ch": 32, **_GPU},
    "gpu-256": {"arch": "fastgan", "resolution": 256, "iters": 40000, "batch": 16, "g_ch": 64, "d_ch": 64, **_GPU, **_GPU_LOOP},
    "gpu-1024": {"arch": "fastgan", "resolution": 1024, "iters": 50000, "batch": 8, "g_ch": 64, "d_ch": 64, **_GPU, **_GPU_LOOP},
}
# The times are the default run's from the Train tab, this page open beside it, on the two 2-core machines measured
# (docs/performance.md): 6.3 minutes on a Xeon with bf16 units (AMX), 12.0 on an AVX2-only EPYC that trains in fp32
# (3:35 and 6:49 from the command line). The other CPU presets' steps take about as long in all (patterns) and 1.5×.
PRESET_TITLES = {"cpu-32": "32 px, 6-12 minutes on 2 CPU cores",
                 FINE_PATTERN_PRESET: "32 px for fine repeating patterns (textiles, tiles), 6-12 minutes on 2 CPU cores; "
                                    "picked by itself for such images",
                 "cpu-64": "64 px, 9-18 minutes on 2 CPU cores: straighter edges on large shapes (facets, shards, "
                           "zigzags); skies and fine patterns come out weaker than at 32 px",
                 "gpu-64": "64 px on a GPU", "gpu-128": "128 px on a GPU",
                 "gpu-256": "256 px FastGAN on a GPU: about 6 GB, 2.2 TFLOP a step (hours)",
                 "gpu-1024": "1024 px FastGAN on a GPU: about 10 GB at batch 8, 1.6 TFLOP a step (hours; --gpus N splits it)"}


class CGANSampler:
    """Sampling from G_ema: by class, class × seed grids, and interpolation of latents or of class embeddings.

    A run's studio.methods.Sampler, with the class_mix capability (its label embeddings mix)."""

    def __init__(self, g: nn.Module, classes: list[str], truncation: float = 1.0):
        # fp32 even where training runs in bf16: a seed's image must not depend on the batch it is drawn in, and
        # bf16 kernels round differently for different batch sizes. Measured on the trained demo cGAN (32 px, one
        # AMX core): bf16 draws 64 samples in 10 ms instead of 19, a Generate grid of 3×8 in 7.6 ms instead of 10, and
        # looks the same (at most 4 uint8 levels off fp32); but the same latent then came out up to 2 levels apart in
        # a batch of 64 and alone, so a seed walk would no longer end on the image that seed samples. 2-9 ms a request
        # is not worth that contract.
        self.g, self.classes = g.eval(), list(classes)
        self.resolution, self.z_dim = g.arch.resolution, g.arch.z_dim
        self.default_truncation = truncation  # a run's is its config's `truncation`; None below means this

    def _device(self) -> torch.device:
        return next(self.g.parameters()).device

    def latents(self, n: int, seed: int, truncation: float | None = None) -> torch.Tensor:
        truncation = self.default_truncation if truncation is None else truncation
        return truncation * torch.randn(n, self.g.arch.z_dim, generator=torch.Generator().manual_seed(seed))

    def class_index(self, label: str | None, n: int) -> torch.Tensor:
        return class_indices(self.classes, label, n)

    @torch.no_grad()
    def sample(self, n: int, *, label: str | None = None, seed: int = 0, truncation: float | None = None) -> torch.Tensor:
        z, y = self.latents(n, seed, truncation), self.class_index(label, n)
        return self.g(z.to(self._device()), y.to(self._device()))

    @torch.no_grad()
    def grid(self, per_class: int, *, seed: int = 0, truncation: float | None = None) -> torch.Tensor:
        """Rows are classes, columns seeds: the same latent in every row shows what the class alone changes."""
        z = self.latents(per_class, seed, truncation).repeat(len(self.classes), 1)
        y = torch.arange(len(self.classes)).repeat_interleave(per_class)
        return self.g(z.to(self._device()), y.to(self._device()))

    @torch.no_grad()
    def interpolate_seeds(self, a: int, b: int, frames: int = 8, *, label: str | None = None,
                          truncation: float | None = None) -> torch.Tensor:
        """Along the arc from the latent `sample(1, seed=a)` draws to that of seed b, in one class (default: the first)."""
        z = slerp(self.latents(1, a, truncation), self.latents(1, b, truncation), torch.linspace(0, 1, frames))
        return self.g(z.to(self._device()), self.class_index(label or self.classes[0], frames).to(self._device()))

    def mix_classes(self, z: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
        """Images from latents z [B, z_dim] and class weights [B, n_classes]; differentiable (guidance steers it)."""
        return self.g(z, class_embedding=class_weights @ self.g.embed.weight)

    @torch.no_grad()
    def interpolate_classes(self, a: str, b: str, frames: int = 8, *, seed: int = 0,
                            truncation: float | None = None) -> torch.Tensor:
        """One latent, class embedding mixed from class a to class b."""
        emb = self.g.embed.weight
        ea, eb = emb[self.class_index(a, 1)[0]], emb[self.class_index(b, 1)[0]]
        t = torch.linspace(0, 1, frames, device=emb.device)[:, None]
        z = self.latents(1, seed, truncation).repeat(frames, 1).to(self._device())
        return self.g(z, class_embedding=(1 - t) * ea + t * eb)


class CGANTrainer:
    """The cGAN as a TrainingMethod for studio.train."""

    def __init__(self, cfg: CGANConfig, images: torch.Tensor, labels: torch.Tensor, classes: list[str], *,
                 device: torch.device | str = "cpu", meta: dict | None = None, parent: tuple[dict, dict] | None = None,
                 recon_net: nn.Module | None = None):
        self.cfg, self.device, self.meta, self.classes = cfg, torch.device(device), meta or {}, list(classes)
        self.precision = self.meta["precision"] = resolve_precision(cfg.precision, self.device)
        torch.manual_seed(cfg.seed)
        arch, nets = cfg.shapes(len(classes)), cfg.networks
        self.g, self.d = nets.Generator(arch).to(self.device), nets.Discriminator(arch).to(self.device)
        # FastGAN's D also rebuilds real images from its features; recon_net (VGG) makes that loss perceptual.
        self.reconstructs = getattr(nets, "RECONSTRUCTS", False)
        self.recon_net = recon_net
        if self.reconstructs:
            self.meta["recon_loss"] = "vgg16 perceptual" if recon_net is not None else "pixels (L1, full and 4x4 means)"
        self.frozen: list[nn.Parameter] = []
        if parent is not None:
            self._transfer(*parent)
        self.g_ema = copy.deepcopy(self.g).requires_grad_(False).eval()
        for module in (self.g, self.d, self.g_ema):
            module.to(memory_format=cfg.memory_format)
        self.images = images.to(self.device).contiguous(memory_format=cfg.memory_format)
        self.labels = labels.to(self.device)
        self.opt_g = adam(self.g.parameters(), self.device, lr=cfg.lr_g, betas=(cfg.beta1, 0.999))
        self.opt_d = adam(self.d.parameters(), self.device, lr=cfg.lr_d, betas=(cfg.beta1, 0.999))
        # One latent per training image (an embedding table: its gradients average across processes as G's do).
        self.anchors = None
        if cfg.anchors > 0:
            self.anchors = nn.Embedding.from_pretrained(torch.randn(
                len(images), arch.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 11)), freeze=False).to(self.device)
            self.opt_anchors = Adam(self.anchors.parameters(), lr=ANCHOR_LR, betas=(cfg.beta1, 0.999))
        self.policy = parse_policy(cfg.augment)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        # Several processes (studio.distributed): `gen` stays identical in all of them, so they draw the same global
        # batch and each trains on its slice; what is drawn per image of a slice comes from a stream of its own.
        self.world = distributed.world()
        if cfg.batch % self.world.size:
            raise UserError(f"Batch {cfg.batch} does not split evenly over {self.world.size} devices: use a multiple of "
                            f"{self.world.size}.")
        self.local_gen = self.gen if self.world.size == 1 else \
            torch.Generator().manual_seed(cfg.seed + 7919 * (self.world.rank + 1))
        # Regularisers' running state, saved with the checkpoint so a resume continues exactly.
        self.ada_p = torch.tensor(0.0 if cfg.ada_target > 0 else 1.0)  # probability that an image is augmented
        self.ada_signs = torch.tensor(0.0)                              # sum of sign(D(real)) since the last adjustment
        self.lecam_ema = torch.zeros(2)                                 # moving means of D(real), D(fake)
        # Mode seeking rewards pixel difference without end, and the cheapest difference is global brightness: capped,
        # the push stops where two training images of the class differ (per latent distance, E|z1 - z2| = 2/√π).
        self.ms_cap = cfg.mode_seeking_cap * class_pixel_spread(self.images, self.labels, len(classes)) * math.pi ** 0.5 / 2 \
            if cfg.mode_seeking_cap > 0 else None
        per_class = max(2, min(8, 48 // len(classes)))  # columns of the preview grid: enough seeds to see variety
        self.preview_z = torch.randn(per_class, arch.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 1))

    def _transfer(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """Copy the parent's layers that carry over; label embeddings are new because the classes are."""
        g_state = {k[len("g_ema/"):]: v for k, v in tensors.items() if k.startswith("g_ema/")}  # the parent's best G
        coarse = self.g.coarse_prefixes() if self.cfg.transfer_keep == "coarse" else None
        own = dict(self.g.named_parameters())
        load = {n: g_state[n] for n, p in own.items()
                if not n.startswith("embed.") and (coarse is None or n.startswith(coarse))
                and n in g_state and g_state[n].shape == p.shape}
        self.g.load_state_dict(load, strict=False)
        d_state = {k[2:]: v for k, v in tensors.items()  # D's class-specific layers start afresh too
                   if k.startswith("d/") and not k.startswith(("d/embed.", "d/classify."))}
        self.d.load_state_dict(d_state, strict=False)
        self.frozen = [own[n] for n in load]
        self.meta["transfer"] = {"parent_run": meta.get("run"), "parent_classes": meta.get("classes"),
                                 "kept": sorted(load), "freeze_steps": self.cfg.freeze_steps}

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        if not self.policy or self.ada_p <= 0:
            return x
        augmented = diff_augment(x, self.policy, generator=self.local_gen)
        if self.ada_p >= 1:
            return augmented
        keep = torch.rand(len(x), generator=self.local_gen) >= self.ada_p  # per image, as ADA does
        return torch.where(keep.to(x.device)[:, None, None, None], x, augmented)

    def _adapt_augmentation(self, d_real: torch.Tensor, step: int) -> None:
        """ADA's heuristic: D sure of every real image (mean sign above target) means it overfits: augment more."""
        self.ada_signs += distributed.mean_across(torch.sign(d_real.detach()).mean()).cpu()
        if (step + 1) % ADA_ADJUST_EVERY == 0:
            r_t = float(self.ada_signs) / ADA_ADJUST_EVERY
            delta = ADA_ADJUST_EVERY / ADA_SPEED_STEPS * (1 if r_t > self.cfg.ada_target else -1)
            self.ada_p = (self.ada_p + delta).clamp(0, 1)
            self.ada_signs.zero_()

    def _lecam(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        """LeCam (Tseng et al. 2021): keep D's outputs near the other side's moving mean, so D cannot run away."""
        means = distributed.mean_across(torch.stack([d_real.detach().mean(), d_fake.detach().mean()])).float().cpu()
        self.lecam_ema.lerp_(means, 1 - LECAM_DECAY)
        ema_real, ema_fake = self.lecam_ema.tolist()
        return nn.functional.relu(d_real - ema_fake).pow(2).mean() + nn.functional.relu(ema_real - d_fake).pow(2).mean()

    def _recon_loss(self, recon) -> torch.Tensor:
        loss = 0.0
        for out, target in ((recon.whole.float(), recon.whole_target), (recon.part.float(), recon.part_target)):
            if self.recon_net is not None:
                loss = loss + sum((a - b).abs().mean() for a, b in zip(self.recon_net(out), self.recon_net(target)))
            else:  # weight-free: the pixels, and the 4×4 colour layout that pixels alone weigh too little
                loss = loss + (out - target).abs().mean() + (nn.functional.adaptive_avg_pool2d(out - target, 4)).abs().mean()
        return loss

    def _condition(self, step: int) -> float:
        """The class condition's weight at this step: 0 until cond_start, then linearly to 1 at cond_end."""
        cfg = self.cfg
        if step >= cfg.cond_end:
            return 1.0
        return max(0.0, (step - cfg.cond_start) / (cfg.cond_end - cfg.cond_start))

    def _draw(self, z: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
        """G's samples for latents z of classes y, with the class embedding weighted by the condition's weight."""
        if lam >= 1:
            return self.g(z, y, noise_rng=self.local_gen)
        return self.g(z, class_embedding=lam * self.g.embed(y), noise_rng=self.local_gen)

    def train_step(self, step: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        lam = self._condition(step)
        faded = {"condition": lam} if lam < 1 else {}  # D's class weight while the class fades in
        for p in self.frozen:
            p.requires_grad_(step >= cfg.freeze_steps)
        idx = torch.randint(len(self.images), (cfg.batch,), generator=self.gen)
        z = torch.randn(cfg.batch, cfg.z_dim, generator=self.gen)
        # The global batch's first images, split like it (at least one a process: every process averages gradients).
        anchored = self._mine(idx[:max(ANCHOR_IMAGES, self.world.size)]).to(self.device)
        idx, z = self._mine(idx).to(self.device), self._mine(z).to(self.device)
        real, y = self.images[idx], self.labels[idx]

        # G draws once a step (DCGAN's order): D learns from these samples detached, then G from D's verdict on them.
        # Pairs of latents share a label for mode seeking; the anchors' redraws ride in the same call.
        half = len(z) // 2 if cfg.mode_seeking > 0 else 0  # mode seeking pairs latents within this process's slice
        y_g = torch.cat([y[:half], y[:half], y[2 * half:]])
        with autocast(self.device, self.precision):
            if self.anchors is not None:
                both = self._draw(torch.cat([z, self.anchors(anchored)]), torch.cat([y_g, self.labels[anchored]]), lam)
                fake, drawn = both[:len(z)], both[len(z):]
            else:
                fake = self._draw(z, y_g, lam)

        # 1. Discriminator: hinge loss on augmented real and fake (networks under autocast, losses in fp32).
        with autocast(self.device, self.precision):
            real_aug = self._augment(real).requires_grad_(cfg.r1 > 0)
            if self.reconstructs or cfg.class_loss > 0:
                real_out = self.d(real_aug, y, classify=cfg.class_loss > 0, generator=self.local_gen, **faded,
                                  **({"reconstruct": True} if self.reconstructs else {}))
                d_real = real_out.scores
            else:
                d_real = self.d(real_aug, y, generator=self.local_gen, **faded)
            d_fake = self.d(self._augment(fake.detach()), y_g, generator=self.local_gen, **faded)
        d_real, d_fake = d_real.float(), d_fake.float()
        loss_d = nn.functional.relu(1 - d_real).mean() + nn.functional.relu(1 + d_fake).mean()
        losses = {"d_loss": loss_d.detach(), "d_real": d_real.mean().detach(), "d_fake": d_fake.mean().detach()}
        if cfg.class_loss > 0:  # on real images only: a classifier also taught on fakes would learn G's mistakes
            ce_real = nn.functional.cross_entropy(real_out.logits.float(), y, label_smoothing=cfg.class_smoothing)
            loss_d = loss_d + cfg.class_loss * ce_real
            losses["class_real"] = ce_real.detach()
        if self.reconstructs:
            loss_recon = self._recon_loss(real_out.recon)
            loss_d = loss_d + cfg.recon_weight * loss_recon
            losses["recon"] = loss_recon.detach()
        if cfg.lecam > 0:
            lecam = self._lecam(d_real, d_fake)
            loss_d = loss_d + cfg.lecam * lecam
            losses["lecam"] = lecam.detach()
        if cfg.ada_target > 0:
            self._adapt_augmentation(d_real, step)
            losses["ada_p"] = self.ada_p.clone()
        if cfg.r1 > 0:
            (grad,) = torch.autograd.grad(d_real.sum(), real_aug, create_graph=True)
            r1 = grad.pow(2).flatten(1).sum(1).mean()
            loss_d = loss_d + cfg.r1 / 2 * r1
            losses["r1"] = r1.detach()
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        distributed.average_gradients(self.d)
        self.opt_d.step()

        # 2. Generator: fool the updated D through the same augmentation.
        self.d.requires_grad_(False)  # G's backward passes through D; D's own gradients would be thrown away
        with autocast(self.device, self.precision):
            judged = self.d(self._augment(fake), y_g, classify=cfg.class_loss > 0, generator=self.local_gen, **faded)
        score = judged.scores if cfg.class_loss > 0 else judged
        fake, loss_g = fake.float(), -score.float().mean()
        if cfg.class_loss > 0:
            ce_fake = nn.functional.cross_entropy(judged.logits.float(), y_g)
            loss_g = loss_g + lam * cfg.class_loss * ce_fake
            losses["class_fake"] = ce_fake.detach()
        if cfg.mode_seeking > 0 and half > 0:
            spread = (fake[:half] - fake[half:2 * half]).abs().mean(dim=(1, 2, 3)) / (z[:half] - z[half:2 * half]).abs().mean(dim=1)
            if self.ms_cap is not None:
                spread = torch.minimum(spread, self.ms_cap[y[:half]])
            loss_ms = 1 / (spread.mean() + 1e-5)
            loss_g = loss_g + cfg.mode_seeking * loss_ms
            losses["mode_seeking"] = loss_ms.detach()
        if self.anchors is not None:
            anchor = (drawn.float() - self.images[anchored]).abs().mean()
            loss_g = loss_g + cfg.anchors * anchor
            losses["anchor"] = anchor.detach()
            self.opt_anchors.zero_grad(set_to_none=True)
        if cfg.match > 0:  # pairs within this process's slice, as mode seeking does
            classes = (y_g, y) if lam > 0 else (torch.zeros_like(y_g), torch.zeros_like(y))  # G knows no class yet
            match = self._match_loss(fake, classes[0], real, classes[1], cfg.match_shift if lam >= 1 else 0)
            loss_g = loss_g + cfg.match * match
            losses["match"] = match.detach()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.d.requires_grad_(True)
        distributed.average_gradients(self.g)
        self.opt_g.step()
        if self.anchors is not None:
            distributed.average_gradients(self.anchors)
            self.opt_anchors.step()
            with torch.no_grad():  # back onto N(0, I)'s shell, where G's random latents lie
                w = self.anchors.weight
                w.mul_(cfg.z_dim ** 0.5 / w.norm(dim=1, keepdim=True))
        losses["g_loss"] = loss_g.detach()

        # 3. EMA of G's weights.
        decay = 0.0 if step < cfg.ema_start else cfg.ema
        with torch.no_grad():
            for pe, p in zip(self.g_ema.parameters(), self.g.parameters()):
                pe.lerp_(p, 1 - decay)
        if self.world.size > 1:  # what the global batch scored, as one process would log it
            losses = dict(zip(losses, distributed.mean_across(torch.stack([v.float() for v in losses.values()]))))
        return losses

    @staticmethod
    def _match_loss(fake: torch.Tensor, y_fake: torch.Tensor, real: torch.Tensor, y_real: torch.Tensor,
                    shift: int = 0) -> torch.Tensor:
        """Mean L1 between each sample and the real image of its class it is paired with; the pairing is one-to-one and
        has the least total distance (Hungarian; no measurable time a step, docs/quality.md). Unlike a pull towards
        the nearest image, it never sends two samples of a step to one image, so it does not draw a class together.
        With `shift`, each sample's target is the circular shift of its pair, up to `shift` pixels each way, nearest
        to it."""
        cost = torch.cdist(fake.detach().flatten(1), real.flatten(1), p=1)  # the pairing is chosen, not learnt
        cost[y_fake[:, None] != y_real[None, :]] = MATCH_MISMATCH
        rows, cols = (torch.as_tensor(i, device=fake.device) for i in _linear_sum_assignment()(cost.cpu().numpy()))
        same = y_fake[rows] == y_real[cols]
        if not same.any():  # no sample has a real image of its class in this batch
            return fake.sum() * 0
        fake, real = fake[rows[same]], real[cols[same]]
        if shift:
            real = _nearest_shift(fake.detach(), real, shift)
        return (fake - real).abs().mean()

    def _mine(self, t: torch.Tensor) -> torch.Tensor:
        """This process's slice of a tensor drawn for the global batch."""
        n, world = len(t), self.world
        return t[world.rank * n // world.size:(world.rank + 1) * n // world.size]

    @torch.no_grad()
    def preview(self) -> tuple[torch.Tensor, int]:
        """A class × seed grid from G_ema: one row per class, the same latents in every row."""
        sampler = CGANSampler(self.g_ema, self.classes, truncation=self.cfg.truncation)  # as Generate will draw
        images = sampler.grid(len(self.preview_z), seed=self.cfg.seed + 1)
        return images.float().cpu(), len(self.preview_z)

    def preview_rows(self) -> list[str]:
        return list(self.classes)  # preview's rows, one per class

    def state_tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for prefix, module in (("g", self.g), ("d", self.d), ("g_ema", self.g_ema)):
            out.update({f"{prefix}/{k}": v for k, v in module.state_dict().items()})
        if self.anchors is not None:
            out.update({"anchors/z": self.anchors.weight.detach().clone(), **optimizer_tensors(self.opt_anchors, "optim/anchors")})
        return {**out, **optimizer_tensors(self.opt_g, "optim/g"), **optimizer_tensors(self.opt_d, "optim/d"),
                "rng/train": self.gen.get_state(), **{f"reg/{k}": v.clone() for k, v in self._regulariser_state().items()}}

    def _regulariser_state(self) -> dict[str, torch.Tensor]:
        return {"ada_p": self.ada_p, "ada_signs": self.ada_signs, "lecam_ema": self.lecam_ema}

    def sampler_tensors(self) -> dict[str, torch.Tensor]:
        return {f"g_ema/{k}": v for k, v in self.g_ema.state_dict().items()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        for prefix, module in (("g", self.g), ("d", self.d), ("g_ema", self.g_ema)):
            missing, unexpected = module.load_state_dict(
                {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + "/")}, strict=False)
            # A run saved before D had its auxiliary classifier resumes with a fresh one; anything else is an error.
            if unexpected or [k for k in missing if not (prefix == "d" and k.startswith("classify."))]:
                raise RuntimeError(f"Checkpoint does not fit the {prefix} network: missing {missing}, unexpected {unexpected}")
        load_optimizer_tensors(self.opt_g, tensors, "optim/g")
        load_optimizer_tensors(self.opt_d, tensors, "optim/d")
        if self.anchors is not None:
            with torch.no_grad():
                self.anchors.weight.copy_(tensors["anchors/z"])
            load_optimizer_tensors(self.opt_anchors, tensors, "optim/anchors")
        self.gen.set_state(tensors["rng/train"])
        for name, value in self._regulariser_state().items():
            if f"reg/{name}" in tensors:  # checkpoints from before the regularisers have none: their defaults hold
                value.copy_(tensors[f"reg/{name}"])

    def checkpoint_meta(self) -> dict[str, Any]:
        return {**self.meta, "method": "cgan", "config": asdict(self.cfg), "classes": self.classes,
                "resolution": self.cfg.resolution, "n_images": len(self.images)}


def class_pixel_spread(images: torch.Tensor, labels: torch.Tensor, n_classes: int, most: int = 64) -> torch.Tensor:
    """Per class, the mean per-pixel L1 distance between two different training images (of the first `most`);
    infinite for a class with fewer than two images (nothing to measure, so no cap)."""
    out = torch.full((n_classes,), math.inf, device=images.device)
    for c in range(n_classes):
        x = images[labels == c][:most].float().flatten(1)
        if len(x) > 1:
            out[c] = torch.pdist(x, p=1).mean() / x.shape[1]
    return out


def build_trainer(cfg: CGANConfig, dataset, *, device: str | torch.device, meta: dict, ws) -> CGANTrainer:
    images, labels, classes = dataset.load_tensors(cfg.resolution)
    parent = _load_parent(ws, cfg) if cfg.transfer_from else None
    if parent is not None:
        meta = {**meta, "parent_run": cfg.transfer_from}
    recon_net = _recon_network(cfg, device) if getattr(cfg.networks, "RECONSTRUCTS", False) else None
    return CGANTrainer(cfg, images, labels, classes, device=device, meta=meta, parent=parent, recon_net=recon_net)


def _recon_network(cfg: CGANConfig, device) -> nn.Module | None:
    """VGG16 features for the reconstruction loss: asked for by name, or under auto only when already on this machine."""
    from studio.models.vgg import load_vgg16

    if cfg.recon == "pixels":
        return None
    if cfg.recon == "auto":
        try:
            return load_vgg16("vgg16", device=device, download=False)
        except UserError:
            return None
    return load_vgg16(cfg.recon, device=device, seed=cfg.seed)


def preset_for_data(ds, given: dict[str, Any]) -> tuple[str, str] | None:
    """The preset a new run with no preset named should take for dataset `ds`, and why, in a sentence; None: the
    defaults. `given` holds the values asked for: the fine-pattern recipe was measured on the light network at 32 px."""
    from studio.data.fine_detail import FINE_MEDIAN, SIDE, dataset_fine_detail

    if given.get("arch", CGANConfig.arch) != "light" or given.get("resolution", CGANConfig.resolution) != SIDE:
        return None
    share = dataset_fine_detail(ds)
    if share < FINE_MEDIAN:
        return None
    return FINE_PATTERN_PRESET, (f"These images are fine repeating patterns ({share:.0%} of the median image's contrast "
                                 f"is detail under 10 px), so the run uses the {FINE_PATTERN_PRESET} preset: sub-pixel "
                                 f"upsampling, {FINE_PATTERNS['iters']} steps of {FINE_PATTERNS['batch']} images with the "
                                 f"classes faded in by step {FINE_PATTERNS['cond_end']} (matching then forgives a "
                                 f"lattice's phase by {FINE_PATTERNS['match_shift']} px), and samples drawn at truncation "
                                 f"{FINE_PATTERNS['truncation']:g}.")


_LSAP = "_studio_scipy_optimize"  # scipy.optimize's folder under a name of our own: its __init__ never runs


def _linear_sum_assignment():
    """scipy.optimize.linear_sum_assignment (scipy is a dependency of ours already: pytorch-pretrained-biggan's). It is
    a compiled module of its own, `_lsap`, loaded here without the package, whose __init__ (0.8 s of each cGAN job's
    start on a 2-core EPYC, most of it parsing scipy.special's docstrings) it needs nothing of. Once scipy.optimize is
    loaded, or where the file is not where scipy keeps it, the package's own."""
    if "scipy.optimize" not in sys.modules:
        try:
            if _LSAP not in sys.modules:
                scipy = importlib.util.find_spec("scipy")
                package = types.ModuleType(_LSAP)
                package.__path__ = [str(Path(scipy.origin).parent / "optimize")]
                sys.modules[_LSAP] = package
            return importlib.import_module(f"{_LSAP}._lsap").linear_sum_assignment
        except (ImportError, AttributeError, TypeError):
            pass
    from scipy.optimize import linear_sum_assignment

    return linear_sum_assignment


def _nearest_shift(fake: torch.Tensor, real: torch.Tensor, shift: int) -> torch.Tensor:
    """Each real image circularly shifted by up to `shift` pixels each way, whichever shift lies nearest (L1) to its
    sample: each shift is a window of the image padded circularly."""
    h, w = real.shape[2:]
    padded = nn.functional.pad(real, (shift, shift, shift, shift), mode="circular")
    windows = [(dy, dx) for dy in range(2 * shift + 1) for dx in range(2 * shift + 1)]
    distance = torch.stack([(fake - padded[:, :, dy:dy + h, dx:dx + w]).abs().mean(dim=(1, 2, 3)) for dy, dx in windows])
    picks = (windows[j] for j in distance.argmin(0).tolist())
    out = torch.empty_like(fake)  # in the sample's memory layout: L1 between two layouts cost 13 ms a step, alike ~0
    for i, (dy, dx) in enumerate(picks):
        out[i] = padded[i, :, dy:dy + h, dx:dx + w]
    return out


def _load_parent(ws, cfg: CGANConfig) -> tuple[dict, dict]:
    from studio.run import RunFolder

    ckpt = RunFolder(ws.run_dir(cfg.transfer_from)).load_checkpoint()
    if ckpt.meta.get("method") != "cgan":
        raise UserError(f"Run {cfg.transfer_from!r} is not a cGAN run; transfer needs a cGAN checkpoint.")
    parent_cfg = CGANConfig.from_dict(ckpt.meta["config"])
    differ = [f for f in ("arch", *ARCH_FIELDS) if getattr(parent_cfg, f) != getattr(cfg, f)]
    if differ:
        raise UserError(f"Run {cfg.transfer_from!r} has a different architecture ({', '.join(differ)}); "
                        f"use its settings: " + ", ".join(f"{f}={getattr(parent_cfg, f)}" for f in differ) + ".")
    return ckpt.tensors, ckpt.meta


def load_sampler(tensors: dict[str, torch.Tensor], meta: dict, *, device: str | torch.device) -> CGANSampler:
    cfg = CGANConfig.from_dict(meta["config"])
    g = cfg.networks.Generator(cfg.shapes(len(meta["classes"])))
    g.load_state_dict({k[len("g_ema/"):]: v for k, v in tensors.items() if k.startswith("g_ema/")})
    return CGANSampler(g.to(device, memory_format=cfg.memory_format).requires_grad_(False), meta["classes"],
                       truncation=cfg.truncation)


METHOD = Method("cgan", title="cGAN: train a class-conditional GAN on your images",
                help="a class-conditional GAN trained from the small labelled set (cArtGAN), optionally transferred",
                config=CGANConfig, presets=PRESETS, preset_titles=PRESET_TITLES,
                loop={"iters": 3500, "sample_every": 250, "checkpoint_every": 500},
                build_trainer=build_trainer, load_sampler=load_sampler, can=frozenset({"class_mix"}),
                preset_for_data=preset_for_data)
