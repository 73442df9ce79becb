"""The one timing loop of the benchmarks: warm-up calls, then wall time per call, synchronised on CUDA."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_steps(step: Callable[[int], object], steps: int, device: str, warmup: int = 1,
               clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Seconds for each of `steps` calls of step(i) after `warmup` untimed ones (allocations, kernel choice).

    `clock`: wall time by default; time.process_time (CLOCKS["cpu"]) counts only the CPU time this process got, which on
    a machine busy with other work is the step's cost rather than its wait for a core (one thread only: with more,
    it sums their times)."""
    for i in range(warmup):
        step(i)
    times = []
    for i in range(warmup, warmup + steps):
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        t = clock()
        step(i)
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        times.append(clock() - t)
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


def matmul_tflops(device: str, dtype: torch.dtype, n: int, repeats: int, warmup: int = 3,
                  clock: Callable[[], float] = time.perf_counter) -> float:
    """TFLOP/s of an n×n by n×n matmul in `dtype` on `device` (median of `repeats`)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = statistics.median(time_steps(lambda _: a @ b, repeats, device, warmup=warmup, clock=clock))
    return 2 * n**3 / seconds / 1e12


def matmul_peak_tflops(device: str, n: int = 8192, repeats: int = 20) -> float | None:
    """What this GPU really reaches on a large bf16 matmul (the ceiling to compare a step with); None on CPU."""
    if not str(device).startswith("cuda"):
        return None
    return matmul_tflops(device, torch.bfloat16, n, repeats)


def matmul_peaks(device: str, clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """The ceilings a step's achieved FLOP/s compares with, measured now in this process on its threads: a large fp32
    and a large bf16 matmul (TFLOP/s). On a CPU, 4096² (one fp32 product is about a second on one core)."""
    n, repeats, warmup = (8192, 20, 3) if str(device).startswith("cuda") else (4096, 5, 1)
    return {name: round(matmul_tflops(device, dtype, n, repeats, warmup, clock), 3)
            for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}


def with_peaks(row: dict, flops: int, seconds: float, peaks: dict[str, float]) -> dict:
    """Add achieved GFLOP/s and its fractions of the measured peaks: of the row's own precision and of bf16's."""
    achieved = flops / seconds / 1e12
    row["gflop_per_s"] = round(achieved * 1e3, 1)
    row["fraction_of_own_peak"] = round(achieved / peaks[row.get("precision", "fp32")], 3)
    row["fraction_of_bf16_peak"] = round(achieved / peaks["bf16"], 3)
    return row


if __name__ == "__main__":  # python bench/timing.py [--device cpu] [--threads 1]: the peaks alone
    import argparse

    p = argparse.ArgumentParser(description="fp32 and bf16 matmul peaks of this machine, measured in one process")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--clock", choices=CLOCKS, default="wall", help="cpu: this process's CPU time (one thread)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    peaks = matmul_peaks(args.device, CLOCKS[args.clock])
    print(f"{args.device}, {torch.get_num_threads()} threads, {args.clock} clock, torch {torch.__version__}: "
          + ", ".join(f"{k} {v * 1e3:.0f} GFLOP/s" for k, v in peaks.items()))
