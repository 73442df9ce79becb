"""Training methods: one module each (config + model + loss + step), driven by studio.train.

Each module provides a config dataclass `CONFIG`, `PRESETS`, `build_trainer(cfg, dataset, device=, meta=)`
and `load_sampler(tensors, meta, device=)` (an object with sample/reconstruct/interpolate).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from studio.errors import UserError

METHODS = {"bsa": "studio.methods.bsa"}


def method_module(name: str) -> ModuleType:
    if name not in METHODS:
        raise UserError(f"Unknown training method {name!r}: choose one of {', '.join(METHODS)}.")
    return importlib.import_module(METHODS[name])
