"""Training methods: one module each (config + model + loss + step), driven by studio.train.

Each module provides a config dataclass `CONFIG`, `PRESETS`, `build_trainer(cfg, dataset, device=, meta=, ws=)`
and `load_sampler(tensors, meta, device=)` (an object with sample/reconstruct/interpolate).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from studio.errors import UserError

METHODS = {"bsa": "studio.methods.bsa", "cgan": "studio.methods.cgan"}


def method_module(name: str) -> ModuleType:
    if name not in METHODS:
        raise UserError(f"Unknown training method {name!r}: choose one of {', '.join(METHODS)}.")
    return importlib.import_module(METHODS[name])


def load_run_sampler(run, device):
    """The sampler of a run's newest checkpoint (`run` is a studio.run.RunFolder), with its config and checkpoint."""
    config = run.read_config()
    ckpt = run.load_checkpoint()
    return method_module(config["method"]).load_sampler(ckpt.tensors, ckpt.meta, device=device), config, ckpt


def class_indices(classes: list[str], label: str | None, n: int):
    """Class indices for n images: all `label`, or cycling through every class when None."""
    import torch

    if label is None:
        return torch.arange(n) % len(classes)
    if label not in classes:
        raise UserError(f"This run knows the classes {', '.join(classes)}; there is no class {label!r}.")
    return torch.full((n,), classes.index(label))
