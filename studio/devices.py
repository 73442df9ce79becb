"""What the hardware offers: whether bf16 is fast on a device, and so which precision a hot loop runs in.

bf16 autocast keeps fp32 master weights and fp32 loss reductions; only matmuls and convolutions run in bf16.
It pays where the hardware has bf16 units: CUDA GPUs from Ampere on, and CPUs with AMX or AVX-512-BF16
(measured 1.46× for the light cGAN step and 1.8× for FastGAN's at 32 px on this project's 2-core Xeon).
Elsewhere bf16 is emulated and slower, so "auto" means fp32 there. Sampling stays fp32: a seed's image must not
depend on the batch it is drawn in, and bf16 kernels round differently for different batch sizes.

Threads: this is the one place that decides how many threads each process uses, so that a training job and the
app's interactive work (Generate, Evaluate, a blend preview) never oversubscribe the cores (two torch processes
with all cores each ran 11x slower than one alone on a 2-core machine). The cores available are the fewest of the
CPU affinity mask and the cgroup quota (/sys/fs/cgroup/cpu.max, rounded up). Of those, a training job's process
gets all but one (`job_threads`; on 2 cores one thread each ran at 76 and 87 ms a cGAN step against 78 ms alone); the app's own process gets the rest, at least 1
(`app_threads`), or all of them when its jobs run on its own threads (ZeroGPU). While the app is idle the job may
use every core: the app names a file (STUDIO_APP_BUSY) that exists only while it does interactive work (`app_work`),
and the job's loop steps down to its share while the file exists and back to every core once it has been gone two
seconds (`CoreShare`, two stats a step; the demo cGAN on a 2-core EPYC: 1.15x its one-thread pace beside the idle app,
bench/contention.py). A page open in a browser on this machine takes cores too (its renderer redraws the live panel,
half a core), so each tick of such a page touches a second file (`page_watching`) and the job keeps to its share while
ticks come: beside the open Train tab on a 2-core EPYC two OpenMP threads, each waiting for the slower at every op,
ran 3.58 and 4.07 steps/s, one thread 4.20 and 4.48 (bench/train_tab_open.py, alternating). A page on another
machine (a Space's visitors') leaves the cores be.
An OMP_NUM_THREADS the user set caps the cores counted as available; the app sets it for each job process, and the
CLI uses all the cores available to it. Benchmarks take a --threads flag of their own.
"""

from __future__ import annotations

import contextlib
import ctypes
import inspect
import math
import os
import sys
import threading
import time
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import torch

from studio.errors import UserError

CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "QUOTA PERIOD" or "max PERIOD"
BUSY_FILE = "STUDIO_APP_BUSY"        # env: the file that exists while the app's process does interactive work
BUSY_THREADS = "STUDIO_BUSY_THREADS"  # env: a job's threads while that file exists
WATCHED = ".watched"  # beside the busy file: touched by each tick of a page open on this machine

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


class Adam(torch.optim.Adam):
    """torch.optim.Adam, the same arithmetic, without importing torch._dynamo: 2.3 s of every training process's start
    and of the app's first Evaluate on a 2-core EPYC, spent so that torch.compile (which the studio never runs) sees
    graph breaks around `step` and never traces `zero_grad` and the rest. Each method is torch's own, unwrapped."""

    add_param_group = inspect.unwrap(torch.optim.Optimizer.add_param_group)
    zero_grad = inspect.unwrap(torch.optim.Optimizer.zero_grad)
    state_dict = inspect.unwrap(torch.optim.Optimizer.state_dict)
    load_state_dict = inspect.unwrap(torch.optim.Optimizer.load_state_dict)
    _adam_step = inspect.unwrap(torch.optim.Adam.step)

    @torch.no_grad()  # what the unwrapped decorator did for a non-differentiable optimizer
    def step(self, closure=None):
        return self._adam_step(closure)


def adam(params, device: torch.device, **kwargs) -> Adam:
    """Adam as the hot loops use it: fused (one kernel for all parameters) where torch has that kernel.

    On the 2-core CPU the cGAN's two optimiser steps took 2.2-4.3 ms a training step unfused, 0.5 ms fused."""
    return Adam(params, fused=torch.device(device).type in ("cpu", "cuda"), **kwargs)


def parse_cpu_max(text: str) -> int | None:
    """The whole cores a cgroup v2 cpu.max grants ("150000 100000" -> 2, rounded up), or None when unbounded or unreadable."""
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def available_cores(environ: Mapping[str, str] = os.environ, cpu_max: Path = CPU_MAX) -> int:
    """The cores this process may use: its affinity mask, capped by its cgroup's CPU quota and by an
    OMP_NUM_THREADS set in `environ` (the user's, or the share the app gave a job process)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    try:
        cores = min(cores, parse_cpu_max(cpu_max.read_text()) or cores)
    except OSError:  # cgroup v1, or no cgroup file system
        pass
    asked = environ.get("OMP_NUM_THREADS", "").strip()
    if asked.isdigit() and int(asked) > 0:
        cores = min(cores, int(asked))
    return max(1, cores)


def job_threads(cores: int) -> int:
    """Threads for a training job's process: all cores but the one the app keeps (2 cores: 1 each, which kept both
    at full pace where 2 + 1 threads did not)."""
    return max(1, cores - 1)


def app_threads(cores: int, *, jobs_in_process: bool = False) -> int:
    """Threads for the app's own work: the cores a job leaves, at least 1; all of them when jobs run on its threads."""
    return max(1, cores) if jobs_in_process else max(1, cores - job_threads(cores))


def thread_env(threads: int) -> dict[str, str]:
    """The environment that makes a child process (torch, OpenMP, MKL) use `threads` threads."""
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def use_threads(threads: int) -> None:
    """Make this process's torch use `threads` intra-op threads."""
    torch.set_num_threads(max(1, threads))


def prepare_process(threads: int) -> None:
    """What each process of ours (the app, a job, a benchmark) does first: `threads` torch threads, and an allocator
    that keeps freed memory for the next step.

    glibc hands freed memory back to the kernel once the free space at the top of its heap passes a trim threshold
    (twice the largest block freed so far), and the kernel zeroes each page again on its next touch. A training step
    frees and allocates the same activations every time: the 32 px cGAN step took about 6,000 page faults; with the
    limits below, about 50, and the whole default run took 6:49 instead of 8:39 on a 2-core EPYC (docs/performance.md),
    peak memory the same."""
    use_threads(threads)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # not glibc: its allocator keeps its own counsel
            mallopt = ctypes.CDLL(None).mallopt
            mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: blocks up to 32 MB (glibc's most) from the heap, not fresh maps
            mallopt(-1, 1 << 30)   # M_TRIM_THRESHOLD: keep up to 1 GB free at the heap's top


_busy_lock = threading.Lock()
_busy_count = 0


@contextlib.contextmanager
def app_work():
    """Around the app's interactive work (Generate, Evaluate): the busy file exists while any such call runs, so a
    training job steps down to its share of the cores. Nothing happens where the app named no file (ZeroGPU, tests)."""
    global _busy_count
    path = os.environ.get(BUSY_FILE)
    if not path:
        yield
        return
    with _busy_lock:
        _busy_count += 1
        if _busy_count == 1:
            Path(path).touch()
    try:
        yield
    finally:
        with _busy_lock:
            _busy_count -= 1
            if _busy_count == 0:
                Path(path).unlink(missing_ok=True)


def watched_file(busy_file: str | Path) -> Path:
    return Path(f"{busy_file}{WATCHED}")


def page_watching() -> None:
    """Called on each tick of a page whose browser runs on this machine: its renderer takes cores the job would use."""
    path = os.environ.get(BUSY_FILE)
    if path:
        watched_file(path).touch()


class CoreShare:
    """In a job process the app started: all cores while the app is idle, the job's share while it is busy. Idle means
    quiet for `settle_s`: a person clicking Generate again and again leaves gaps of a moment between requests, and a
    step on every core in such a gap would contend with the next request."""

    def __init__(self, environ: Mapping[str, str] = os.environ, settle_s: float = 2.0):
        path, busy = environ.get(BUSY_FILE), environ.get(BUSY_THREADS, "")
        self.path = Path(path) if path and busy.isdigit() else None
        self.watched = watched_file(path) if self.path else None
        self.idle, self.busy = available_cores(environ), int(busy) if self.path else 0
        self.threads, self.settle_s, self.seen = torch.get_num_threads(), settle_s, -math.inf

    def follow(self) -> None:
        """Call once a step: switches torch's threads when the app's state changed since the last call."""
        if self.path is None:
            return
        now = time.monotonic()
        if self.path.exists() or self._watched():
            self.seen = now
        threads = self.busy if now - self.seen < self.settle_s else self.idle
        if threads != self.threads:
            use_threads(threads)
            self.threads = threads

    def _watched(self) -> bool:
        """A page on this machine ticked within the settle time."""
        try:
            return time.time() - self.watched.stat().st_mtime < self.settle_s
        except OSError:  # no page has watched yet
            return False
