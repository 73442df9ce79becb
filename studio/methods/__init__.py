"""Training methods: one module each (config + model + loss + step), driven by studio.train.

Each module provides a config dataclass `CONFIG`, `PRESETS`, `build_trainer(cfg, dataset, device=, meta=, ws=)`
and `load_sampler(tensors, meta, device=)` (an object with sample/reconstruct/interpolate).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from studio.errors import UserError

if TYPE_CHECKING:
    import torch

METHODS = {"bsa": "studio.methods.bsa", "cgan": "studio.methods.cgan"}


def method_module(name: str) -> ModuleType:
    if name not in METHODS:
        raise UserError(f"Unknown training method {name!r}: choose one of {', '.join(METHODS)}.")
    return importlib.import_module(METHODS[name])


def load_run_sampler(run, device, step: int | None = None):
    """The sampler of a run's newest checkpoint, or of its snapshot at `step` (`run` is a studio.run.RunFolder),
    with its config and checkpoint."""
    config = run.read_config()
    ckpt = run.load_checkpoint() if step is None else run.load_snapshot(step)
    return method_module(config["method"]).load_sampler(ckpt.tensors, ckpt.meta, device=device), config, ckpt


def class_indices(classes: list[str], label: str | None, n: int):
    """Class indices for n images: all `label`, or cycling through every class when None."""
    import torch

    if label is None:
        return torch.arange(n) % len(classes)
    if label not in classes:
        raise UserError(f"This run knows the classes {', '.join(classes)}; there is no class {label!r}.")
    return torch.full((n,), classes.index(label))


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Latents on the great circle from a to b ([d] or [1, d] each) at fractions t [F]: [F, d], exactly a at 0 and b at 1.

    A straight line between two Gaussian latents dips towards the origin, where samples turn dull and alike;
    the arc keeps every frame as typical as its ends.
    """
    import torch

    a, b = a.reshape(1, -1), b.reshape(1, -1)
    t = t.reshape(-1, 1).to(a)
    omega = torch.arccos((a / a.norm() * (b / b.norm())).sum().clamp(-1, 1))
    if omega < 1e-4:  # (nearly) the same direction: the arc is a line
        z = (1 - t) * a + t * b
    else:
        z = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
    return torch.where(t == 0, a, torch.where(t == 1, b, z))
