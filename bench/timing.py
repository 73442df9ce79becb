"""The one timing loop of the benchmarks: warm-up calls, then wall time per call, synchronised on CUDA."""

from __future__ import annotations

import time
from typing import Callable

import torch


def time_steps(step: Callable[[int], object], steps: int, device: str, warmup: int = 1) -> list[float]:
    """Seconds for each of `steps` calls of step(i) after `warmup` untimed ones (allocations, kernel choice)."""
    for i in range(warmup):
        step(i)
    times = []
    for i in range(warmup, warmup + steps):
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        step(i)
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return times
