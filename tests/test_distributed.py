"""Data-parallel training (studio.distributed) on the CPU: two gloo processes train as one process does."""

from __future__ import annotations

import functools
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from studio.methods.cgan import CGANConfig, CGANTrainer

STEPS = 4
CONFIG = dict(g_ch=8, d_ch=8, z_dim=16, embed_dim=8, batch=8, mode_seeking=0.0, augment="none", precision="fp32",
              lecam=0.1, ema_start=0, match=0.0,  # matching, like mode seeking, pairs within each process's slice
              d_dropout=0.0,  # D's dropout masks, like augmentation, are drawn per image from each process's stream
              lr_g=2e-4)  # Adam turns a near-zero gradient's summation-order sign into a ±lr step: G's default 4e-4
                          # doubles that drift, past the tolerance by step 3; the step's arithmetic is what is compared


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.rand(24, 3, 32, 32, generator=g) * 2 - 1, torch.arange(24) % 3


def _train(arch: str) -> tuple[list[dict[str, float]], dict[str, torch.Tensor]]:
    images, labels = _data()
    trainer = CGANTrainer(CGANConfig(arch=arch, **CONFIG), images, labels, ["a", "b", "c"])
    losses = [{k: float(v) for k, v in trainer.train_step(step).items()} for step in range(STEPS)]
    return losses, trainer.g_ema.state_dict()


def _worker(rank: int, port: int, arch: str, out: dict) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        losses, state = _train(arch)
        out[rank] = (losses, {k: v.clone() for k, v in state.items()})
    finally:
        dist.destroy_process_group()


@functools.cache  # the light run serves two tests: two processes cost the suite 15-30 s a spawn
def _two_processes(arch: str) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(port, arch, out), nprocs=2, join=True)
        return dict(out)


@pytest.mark.parametrize("arch", ["light", "fastgan"])
def test_two_processes_hold_the_same_weights_after_every_step(arch):
    out = _two_processes(arch)
    (losses0, state0), (losses1, state1) = out[0], out[1]
    assert losses0 == losses1  # the logged losses are the global batch's, in every process
    assert all(torch.isfinite(torch.tensor(list(row.values()))).all() for row in losses0)
    for name, value in state0.items():
        assert torch.equal(value, state1[name]), name


def test_two_processes_train_as_one_process_on_the_global_batch():
    """The light net has no per-image randomness left with augmentation off: the same step, up to summation order.
    (FastGAN's noise and reconstruction crops are drawn per process, so there only the statistics agree.)"""
    two_losses, two_state = _two_processes("light")[0]
    one_losses, one_state = _train("light")
    for step, (a, b) in enumerate(zip(one_losses, two_losses)):
        assert a.keys() == b.keys()
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-4), (step, key)
    for name, value in one_state.items():
        assert torch.allclose(value, two_state[name], atol=1e-4), name


def test_a_batch_that_does_not_split_over_the_devices_is_one_sentence(monkeypatch):
    from studio import distributed
    from studio.errors import UserError

    monkeypatch.setattr(distributed, "world", lambda: distributed.World(rank=0, size=3))
    images, labels = _data()
    with pytest.raises(UserError, match="multiple of 3"):
        CGANTrainer(CGANConfig(**CONFIG), images, labels, ["a", "b", "c"])


def test_train_gpus_2_runs_two_processes_that_write_one_run(tmp_path):
    """`train … --gpus 2` on the CPU: torchrun, two gloo processes; one run folder, each step logged once, the
    losses one process logs on the same global batch, one checkpoint, and --resume under two processes goes on."""
    import json
    import subprocess
    import sys

    from studio.run import RunFolder

    ws = str(tmp_path / "ws")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}

    def cli(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "studio", "--workspace", ws, *argv], env=env,
                              capture_output=True, text=True, timeout=300)

    assert cli("dataset", "demo", "d", "--per-class", "4", "--size", "32").returncode == 0
    flags = ["--dataset", "d", "--iters", "4", "--sample-every", "2", "--checkpoint-every", "2", "--device", "cpu",
             "--batch", "8", "--g-ch", "8", "--d-ch", "8", "--z-dim", "16", "--embed-dim", "8",
             "--mode-seeking", "0", "--match", "0", "--augment", "none", "--d-dropout", "0", "--precision", "fp32"]
    two = cli("train", "cgan", "--run", "two", "--gpus", "2", *flags)
    assert two.returncode == 0, two.stderr[-2000:]
    one = cli("train", "cgan", "--run", "one", *flags)
    assert one.returncode == 0, one.stderr[-2000:]
    rows2, rows1 = (RunFolder(tmp_path / "ws" / "runs" / n).read_metrics() for n in ("two", "one"))
    assert [r["step"] for r in rows2] == [1, 2, 3, 4]
    for a, b in zip(rows1, rows2):
        for key in ("d_loss", "g_loss", "d_real", "d_fake"):
            assert b[key] == pytest.approx(a[key], rel=3e-3, abs=1e-4), (a["step"], key)  # float rounding of split sums, amplified
    run = RunFolder(tmp_path / "ws" / "runs" / "two")
    assert run.read_status()["state"] == "finished" and sorted(p.name for p in run.checkpoints_dir.glob("*.safetensors")) \
        == ["latest.safetensors", "previous.safetensors"]
    assert [p.name for p in run.sample_paths()] == ["step_000000.png", "step_000002.png", "step_000004.png"]
    again = cli("train", "cgan", "--run", "two", "--resume", "--iters", "6", "--device", "cpu", "--gpus", "2")
    assert again.returncode == 0, again.stderr[-2000:]
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3, 4, 5, 6]
    assert json.loads((run.checkpoints_dir / "latest.json").read_text())["step"] == 6
