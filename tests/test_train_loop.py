"""The shared training loop on a toy method: cadence, run folder, exact resume, stop, damaged checkpoints, out of memory."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from studio.errors import UserError
from studio.run import RunFolder, load_optimizer_tensors, optimizer_tensors
from studio.train import LoopConfig, resume, train


class ToyMethod:
    """Fits a 4×4 'image' to a target with Adam and per-step noise from its own generator."""

    def __init__(self, seed: int = 0, oom_at: int | None = None):
        self.gen = torch.Generator().manual_seed(seed)
        self.param = torch.nn.Parameter(torch.zeros(1, 3, 4, 4))
        self.target = torch.linspace(-1, 1, 48).reshape(1, 3, 4, 4)
        self.opt = torch.optim.Adam([self.param], lr=0.05)
        self.oom_at = oom_at

    def train_step(self, step):
        if step == self.oom_at:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        noise = 0.01 * torch.randn(self.param.shape, generator=self.gen)
        loss = (self.param + noise - self.target).abs().mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach()}

    def preview(self):
        return self.param.detach().clamp(-1, 1).repeat(2, 1, 1, 1), 2

    def state_tensors(self):
        return {"model/param": self.param.detach(), **optimizer_tensors(self.opt, "optim/adam"),
                "rng/gen": self.gen.get_state()}

    def load_state_tensors(self, tensors):
        with torch.no_grad():
            self.param.copy_(tensors["model/param"])
        load_optimizer_tensors(self.opt, tensors, "optim/adam")
        self.gen.set_state(tensors["rng/gen"])

    def checkpoint_meta(self):
        return {"method": "toy"}


LOOP = LoopConfig(iters=20, sample_every=5, checkpoint_every=5)


def _run(tmp_path, name="run"):
    run = RunFolder(tmp_path / name)
    run.write_config({"method": "toy"})
    return run


def test_full_run_writes_the_run_folder(tmp_path):
    run = _run(tmp_path)
    assert train(run, ToyMethod(), LOOP) == "finished"
    metrics = run.read_metrics()
    assert [m["step"] for m in metrics] == list(range(1, 21))
    assert metrics[-1]["loss"] < metrics[0]["loss"] / 2
    assert [p.name for p in run.sample_paths()] == [f"step_{s:06d}.png" for s in (0, 5, 10, 15, 20)]
    assert Image.open(run.sample_paths()[0]).size[0] > 8
    status = run.read_status()
    assert status["state"] == "finished" and status["step"] == 20 and status["error"] is None
    meta = json.loads((run.checkpoints_dir / "latest.json").read_text())
    assert meta["step"] == 20 and meta["method"] == "toy"
    assert (run.checkpoints_dir / "previous.safetensors").exists()


def test_stop_then_resume_continues_exactly(tmp_path):
    straight = ToyMethod()
    train(_run(tmp_path, "a"), straight, LOOP)

    run = _run(tmp_path, "b")
    first = ToyMethod()
    steps = iter(range(100))
    assert train(run, first, LOOP, should_stop=lambda: next(steps) >= 7) == "stopped"
    assert run.read_status()["step"] == 7 and run.sample_path(7).exists()

    second = ToyMethod(seed=123)  # a fresh process: all state must come from the checkpoint
    start = resume(run, second)
    assert start == 7
    assert train(run, second, LOOP, start_step=start) == "finished"
    assert torch.equal(second.param, straight.param)
    a = [m["loss"] for m in RunFolder(tmp_path / "a").read_metrics()]
    b = [m["loss"] for m in run.read_metrics()]
    assert a == b


def test_resume_after_a_crash_drops_metrics_past_the_checkpoint(tmp_path):
    run = _run(tmp_path)
    method = ToyMethod()
    with pytest.raises(RuntimeError):
        train(run, method, LOOP, on_progress=lambda step, total, losses: _crash_at(step, 8))
    assert run.read_status()["state"] == "failed" and "crash" in run.read_status()["error"]
    assert max(m["step"] for m in run.read_metrics()) == 8
    method2 = ToyMethod()
    start = resume(run, method2)
    assert start == 5
    train(run, method2, LOOP, start_step=start)
    assert [m["step"] for m in run.read_metrics()] == list(range(1, 21))


def _crash_at(step, at):
    if step == at:
        raise RuntimeError("crash")


def test_damaged_latest_checkpoint_falls_back_to_previous(tmp_path):
    run = _run(tmp_path)
    train(run, ToyMethod(), LOOP)
    latest = run.checkpoints_dir / "latest.safetensors"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])
    assert resume(run, ToyMethod()) == 15
    assert "latest.safetensors is damaged" in "\n".join(run.log_tail())


def test_no_usable_checkpoint_is_one_sentence(tmp_path):
    run = _run(tmp_path)
    with pytest.raises(UserError, match="has no usable checkpoint"):
        resume(run, ToyMethod())


def test_out_of_memory_saves_progress_and_says_what_to_do(tmp_path):
    run = _run(tmp_path)
    assert train(run, ToyMethod(oom_at=12), LOOP) == "failed"
    status = run.read_status()
    assert status["state"] == "failed" and "smaller batch" in status["error"]
    assert json.loads((run.checkpoints_dir / "latest.json").read_text())["step"] == 12


def test_every_checkpoint_step_keeps_a_sampler_snapshot_and_resume_drops_later_ones(workspace):
    from studio.data.dataset import create_demo_dataset
    from studio.methods import load_run_sampler
    from studio.methods.cgan import CGANConfig
    from studio.run import RunFolder
    from studio.train import LoopConfig, run_training

    create_demo_dataset(workspace, "d", per_class=2, size=64)
    run_training(workspace, method="cgan", run_name="snap", dataset="d", cfg=CGANConfig(g_ch=8, d_ch=8, batch=4),
                 loop=LoopConfig(iters=6, sample_every=3, checkpoint_every=2), device="cpu")
    run = RunFolder(workspace.run_dir("snap"))
    assert run.snapshot_steps() == [2, 4, 6]
    snap = run.load_snapshot(4)
    assert snap.meta["step"] == 4 and all(k.startswith("g_ema/") for k in snap.tensors)
    early, _, _ = load_run_sampler(run, "cpu", step=2)
    late, _, _ = load_run_sampler(run, "cpu")
    assert not torch.equal(early.sample(2, seed=0), late.sample(2, seed=0))
    run.truncate_snapshots(3)
    assert run.snapshot_steps() == [2]


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    import studio.run

    run = RunFolder(tmp_path / "run")
    run.save_checkpoint({"w": torch.ones(3)}, {"step": 10})
    real_save = studio.run.save_file

    def disk_full(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        with open(filename, "r+b") as f:  # half the file got out before the disk filled
            f.truncate(f.seek(0, 2) // 2)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(studio.run, "save_file", disk_full)
    with pytest.raises(UserError, match="free some disk space.*intact"):
        run.save_checkpoint({"w": torch.zeros(3)}, {"step": 20})
    assert not list(run.checkpoints_dir.glob(".*tmp"))  # the partial file is gone
    ckpt = run.load_checkpoint()
    assert ckpt.meta["step"] == 10 and torch.equal(ckpt.tensors["w"], torch.ones(3))


def test_the_speed_behind_the_eta_leaves_out_the_slow_first_step():
    """After a Continue the first step warms up (here 30 s); the ETA must come from the steps after it, at once,
    not from an average that starts at the slow step and drifts for minutes (1.6 h falling to 66 min)."""
    from studio.train import StepRate

    rate = StepRate(0, window_s=60, now=0.0)
    rate.mark(1, now=30.0)  # the end of the slow first step: where timing starts
    assert rate.eta_s(100) is None  # nothing timed after it yet: no ETA rather than a wild one
    assert rate.per_s == pytest.approx(1 / 30)  # a speed, though, for what must have one (a ZeroGPU chunk's budget)
    for step in range(2, 12):
        rate.mark(step, now=30.0 + 0.5 * (step - 1))
    assert rate.per_s == pytest.approx(2.0) and rate.eta_s(100) == pytest.approx(50.0)
    for step in range(12, 200):  # slower now: the window follows within a minute
        rate.mark(step, now=35.0 + (step - 11))
    assert rate.per_s == pytest.approx(1.0)


class LabelledToy(ToyMethod):
    def preview_rows(self):
        return ["first row"]


def test_preview_rows_are_named_in_the_png(tmp_path):
    """A method that names its preview rows gets them drawn beside the grid: a margin of dark text on white."""
    plain, named = _run(tmp_path, "plain"), _run(tmp_path, "named")
    train(plain, ToyMethod(), LoopConfig(iters=1, sample_every=1, checkpoint_every=1))
    train(named, LabelledToy(), LoopConfig(iters=1, sample_every=1, checkpoint_every=1))
    a, b = Image.open(plain.sample_path(0)), Image.open(named.sample_path(0))
    margin = b.width - a.width
    assert margin > 10 and a.height == b.height
    text = np.asarray(b.convert("L"))[:, :margin]
    assert (text < 128).sum() > 10  # the label's strokes
    assert np.array_equal(np.asarray(b)[:, margin:], np.asarray(a))  # the images themselves are untouched
