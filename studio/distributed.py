"""Training on several devices: `train … --gpus N` runs N processes under torchrun, one per device.

Data parallel, kept simple: every process holds the whole model and the same shared random stream, so each
draws the same global batch and trains on its own slice of it; after each backward pass the gradients are
averaged across processes (one all-reduce of a flat buffer per network), so the step equals one process's step
on the global batch. Process 0 alone writes the run folder (status, metrics, previews, checkpoints); a stop
asked of it is passed to the others at the next step. Backend: NCCL on GPUs, gloo on the CPU (the tests).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from studio.errors import UserError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def writer(self) -> bool:
        """The one process that writes the run folder."""
        return self.rank == 0


def world() -> World:
    """This process's place: from torchrun's RANK/WORLD_SIZE once the process group is up, else a world of one."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def launched_by_torchrun() -> bool:
    """Whether torchrun started this process as one of several (`train --gpus N`)."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str) -> tuple[World, str]:
    """Join the process group torchrun describes (if any); returns the world and this process's device."""
    if not launched_by_torchrun():
        return World(), device
    cuda = device != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    here = world()
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", here.rank))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    return here, device


def launch(argv: list[str], gpus: int) -> int:
    """Run `python -m studio ARGV` as `gpus` processes on this machine (torchrun's launcher); returns an exit code.

    Through torch's launcher API, not the torchrun command: its argument parser would take the studio's own flags
    (`--run` is an abbreviation of its `--run-path`) for its own."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if torch.cuda.is_available() and torch.cuda.device_count() < gpus:
        raise UserError(f"--gpus {gpus} asks for {gpus} GPUs, but PyTorch sees {torch.cuda.device_count()} here.")
    from studio.devices import available_cores, thread_env

    for key, value in thread_env(max(1, available_cores() // gpus)).items():  # the processes share the cores
        os.environ.setdefault(key, value)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=gpus, run_id=f"studio-{os.getpid()}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0)
    try:
        elastic_launch(config, sys.executable)("-m", "studio", *argv)
    except ChildFailedError as exc:
        first = next(iter(exc.failures.values()))
        print(f"error: a training process failed (exit code {first.exitcode}); its output is above.", file=sys.stderr)
        return first.exitcode if first.exitcode > 0 else 1
    return 0


def average_gradients(module: torch.nn.Module) -> None:
    """Mean of the gradients across processes, in place (no-op in a world of one)."""
    here = world()
    if here.size < 2:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= here.size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_across(t: torch.Tensor) -> torch.Tensor:
    """The mean of `t` over processes (a copy; `t` itself in a world of one)."""
    here = world()
    if here.size < 2:
        return t
    out = t.detach().clone()
    dist.all_reduce(out)
    return out / here.size


def any_across(flag: bool) -> bool:
    """True if any process says True: a stop asked of one process ends all of them at the same step."""
    if world().size < 2:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

