"""Pretrained networks and their loaders (BigGAN-deep, VGG16, CLIP), and the studio's own GAN architectures."""

from __future__ import annotations

import importlib
from types import ModuleType

# cGAN architectures by name: a module with Generator, Discriminator (both built from a models.cgan.CGANArch),
# RESOLUTIONS and CONDITIONINGS. A new architecture is one module and one line here.
CGAN_ARCHITECTURES = {"light": "studio.models.cgan", "fastgan": "studio.models.fastgan"}


def cgan_architecture(name: str) -> ModuleType:
    if name not in CGAN_ARCHITECTURES:
        raise KeyError(name)
    return importlib.import_module(CGAN_ARCHITECTURES[name])
