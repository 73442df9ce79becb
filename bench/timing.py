"""The one timing loop of the benchmarks: warm-up calls, then wall time per call, synchronised on CUDA."""

from __future__ import annotations

import statistics
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


def flops_per_call(step: Callable[[int], object], i: int = 10**6) -> int:
    """Model FLOPs of one call, counted by torch.utils.flop_counter (matmuls and convolutions, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step(i)
    return counter.get_total_flops()


def peak_memory_mb(device: str) -> float:
    """CUDA: the most memory tensors held since the last reset; CPU: the process's peak resident size."""
    if str(device).startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def matmul_peak_tflops(device: str, n: int = 8192, repeats: int = 20) -> float | None:
    """What this GPU really reaches on a large bf16 matmul (the ceiling to compare a step with); None on CPU."""
    if not str(device).startswith("cuda"):
        return None
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    seconds = statistics.median(time_steps(lambda _: a @ b, repeats, device, warmup=3))
    return 2 * n**3 / seconds / 1e12
