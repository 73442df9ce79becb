"""A toy cGAN architecture, to show what a new one takes: this module and one line in studio.models.CGAN_ARCHITECTURES.

The contract (what studio.methods.cgan calls): Generator(arch) and Discriminator(arch), built from a
models.cgan.CGANArch; G(z, y, noise_rng=) or G(z, class_embedding=) → images in [-1, 1], G.embed (the label
embeddings, which class mixing reads), G.coarse_prefixes() (what a coarse transfer keeps); D(x, y, generator=) → one
score per image, or with classify=True a models.cgan.Judgement that also holds class logits (the class loss), any
randomness drawn from `generator`, and with condition= (0-1, while a run fades the class in) the class's part of the
score weighed by it;
RESOLUTIONS and CONDITIONINGS. Here: one linear layer each.
"""

from __future__ import annotations

import torch
from torch import nn

from studio.models.cgan import Judgement

RESOLUTIONS = (16,)
CONDITIONINGS = ("projection",)


class Generator(nn.Module):
    def __init__(self, arch):
        super().__init__()
        self.arch = arch
        self.embed = nn.Embedding(arch.n_classes, arch.embed_dim)
        self.input = nn.Linear(arch.z_dim + arch.embed_dim, 3 * arch.resolution ** 2)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None, class_embedding: torch.Tensor | None = None,
                *, noise_rng: torch.Generator | None = None) -> torch.Tensor:
        c = self.embed(y) if class_embedding is None else class_embedding
        return torch.tanh(self.input(torch.cat([z, c], dim=1))).view(len(z), 3, self.arch.resolution, self.arch.resolution)

    def coarse_prefixes(self) -> tuple[str, ...]:
        return ("input.",)


class Discriminator(nn.Module):
    def __init__(self, arch):
        super().__init__()
        self.arch = arch
        self.features = nn.Linear(3 * arch.resolution ** 2, arch.d_ch)
        self.score = nn.Linear(arch.d_ch, 1)
        self.embed = nn.Embedding(arch.n_classes, arch.d_ch)
        self.classify = nn.Linear(arch.d_ch, arch.n_classes)

    def forward(self, x: torch.Tensor, y: torch.Tensor, *, classify: bool = False,
                generator: torch.Generator | None = None, condition: float = 1.0) -> torch.Tensor | Judgement:
        h = nn.functional.leaky_relu(self.features(x.reshape(len(x), -1)), 0.2)
        scores = self.score(h).squeeze(1) + condition * (self.embed(y) * h).sum(dim=1)  # projection conditioning
        return Judgement(scores, self.classify(h)) if classify else scores
