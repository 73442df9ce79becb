"""What the hardware offers: whether bf16 is fast on a device, and so which precision a hot loop runs in.

bf16 autocast keeps fp32 master weights and fp32 loss reductions; only matmuls and convolutions run in bf16.
It pays where the hardware has bf16 units: CUDA GPUs from Ampere on, and CPUs with AMX or AVX-512-BF16
(measured 1.46× for the light cGAN step and 1.8× for FastGAN's at 32 px on this project's 2-core Xeon).
Elsewhere bf16 is emulated and slower, so "auto" means fp32 there. Sampling stays fp32: a seed's image must not
depend on the batch it is drawn in, and bf16 kernels round differently for different batch sizes.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from studio.errors import UserError

PRECISIONS = ("auto", "fp32", "bf16")


@lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def fast_bf16(device: torch.device) -> bool:
    """True where bf16 matmuls run on bf16 units, not emulated."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def resolve_precision(name: str, device: torch.device) -> str:
    """fp32 or bf16 for `name` (auto: bf16 where fast_bf16, else fp32)."""
    if name not in PRECISIONS:
        raise UserError(f"Precision is one of {', '.join(PRECISIONS)}, not {name!r}.")
    if name == "auto":
        return "bf16" if fast_bf16(device) else "fp32"
    return name


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The autocast context for a resolved precision (a no-op for fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
