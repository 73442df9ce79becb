"""What BSA needs to know of a generator: which layers' outputs take a per-channel scale and shift.

A generator BSA can adapt declares its layers (`Generator.adaptable_layers()` in models/cgan.py and models/fastgan.py,
`models.biggan.adaptable_layers(model)` for BigGAN-deep): the first projection of the latent, then every normalisation
or FiLM output, each with how its output holds the channels. studio/methods/bsa.py hooks those outputs, whatever the
base; at scale 1 and shift 0 every form below returns its output exactly, so an adapter starts as the identity.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import torch
from torch import nn

# How a layer's output holds its C channels:
#   channels      [B, C, …]: feature maps (a norm's output)
#   flat_first    [B, C·k]: a linear layer whose output is viewed as [B, C, …] next (channel-major)
#   flat_last     [B, k·C]: a linear layer whose output is viewed as [B, …, C] next (BigGAN's gen_z)
#   film          [B, 2C]: FiLM parameters (γ, β) the block applies as x·(1 + γ) + β; a scale a and shift b make it
#                 a·(x·(1 + γ) + β) + b, i.e. γ' = a·γ + (a − 1), β' = a·β + b (exact at a = 1, b = 0)
FORMS = ("channels", "flat_first", "flat_last", "film")


class AdaptableLayer(NamedTuple):
    name: str            # the module's name in the generator (an adapter's key: dots become underscores)
    module: nn.Module    # whose forward output takes the scale and shift
    channels: int
    form: str            # one of FORMS
    first: bool = False  # the latent's first projection (BSA's "first affine"), not a normalisation


def scale_shift(out: torch.Tensor, form: str, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """`out` with a per-channel scale and shift, as `form` lays out its channels."""
    if form == "channels":
        view = (1, -1) + (1,) * (out.dim() - 2)
        return out * scale.view(view) + shift.view(view)
    if form == "flat_first":
        return (out.reshape(out.shape[0], scale.numel(), -1) * scale[:, None] + shift[:, None]).view_as(out)
    if form == "flat_last":
        return (out.reshape(out.shape[0], -1, scale.numel()) * scale + shift).view_as(out)
    if form == "film":
        gamma, beta = out.chunk(2, dim=1)
        return torch.cat([gamma * scale + (scale - 1), beta * scale + shift], dim=1)
    raise ValueError(f"unknown adaptable-layer form {form!r}")


def tensor_fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of names, shapes, dtypes and bytes, in name order: the same weights, the same string."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:32]
