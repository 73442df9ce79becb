"""One writer per run, one app per workspace, and no run a user is locked out of (issue 14, items 2, 3 and 6).

Real processes where the issue saw the fault: two `python -m studio train … --resume` at once, two apps on one
workspace. The rest runs in this process: a lock is an OS file lock, so another open of it conflicts here too.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from studio.cli import main
from studio.data.dataset import create_demo_dataset
from studio.errors import UserError
from studio.jobs import JobManager, JobRequest
from studio.methods.cgan import CGANConfig
from studio.run import RunFolder
from studio.train import LoopConfig, run_training

from conftest import ROOT, running_app

SMALL = ["--g-ch", "8", "--d-ch", "8", "--batch", "8", "--device", "cpu"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}


@pytest.fixture
def ws(workspace):
    create_demo_dataset(workspace, "art", per_class=4, size=64)
    return workspace


def cli(ws, *argv: str) -> int:
    return main(["--workspace", str(ws.root), *argv])


def _steps(run: RunFolder) -> list[int]:
    return [row["step"] for row in run.read_metrics()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_second_trainer_of_a_running_run_is_refused_and_the_curve_has_each_step_once(ws, capsys):
    train = [sys.executable, "-m", "studio", "--workspace", str(ws.root), "train", "cgan", "--run", "r"]
    first = subprocess.Popen([*train, "--dataset", "art", *SMALL, "--iters", "100000", "--checkpoint-every", "4"],
                             cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = RunFolder(ws.run_dir("r"))
    try:
        deadline = time.time() + 90
        while run.read_status().get("step", 0) < 5:  # past its first checkpoint: a resume would have one to start from
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.2)
        second = subprocess.run([*train, "--resume", "--iters", str(run.read_status()["step"] + 3)], cwd=ROOT, env=ENV,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert f"Run 'r' is in use by process {first.pid} (python -m studio train cgan --run r" in second.stderr
        assert str(ws.root) not in second.stderr and "Traceback" not in second.stderr
        # Nor may anything else take the run from it: a delete, a restart, or an app's job.
        capsys.readouterr()
        assert cli(ws, "run", "delete", "r", "--yes") == 2
        assert cli(ws, "train", "cgan", "--run", "r", "--dataset", "art", "--restart", *SMALL) == 2
        assert capsys.readouterr().err.count(f"in use by process {first.pid}") == 2
        with pytest.raises(UserError, match="already running"):
            JobManager(ws, background=False).submit(JobRequest("cgan", "r", resume=True))
    finally:
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    steps = _steps(run)
    assert steps == list(range(1, steps[-1] + 1)) and run.read_status()["state"] == "stopped"
    assert not list(run.checkpoints_dir.glob(".*.tmp")) and not list(run.snapshots_dir.glob(".*.tmp"))
    assert cli(ws, "train", "cgan", "--run", "r", "--resume", "--iters", str(steps[-1] + 2)) == 0  # free again
    assert _steps(run) == list(range(1, steps[-1] + 3))


def test_a_second_app_on_a_workspace_is_refused_and_damaged_run_files_do_not_stop_the_first(ws):
    for name, files in {"bad-status": {"status.json": "[1, 2]"}, "bad-config": {"config.json": '{"method": 5}'},
                        "bad-types": {"status.json": '{"state": "running", "step": "abc"}', "job.json": "[]"}}.items():
        for file, text in files.items():
            (ws.run_dir(name) / file).parent.mkdir(parents=True, exist_ok=True)
            (ws.run_dir(name) / file).write_text(text)
    with running_app(ws.root) as (url, app):
        second = subprocess.run([sys.executable, str(ROOT / "app.py"), "--port", str(_free_port()), "--workspace", str(ws.root)],
                                cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=90)
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"is already served by process {app.pid} (python app.py --port" in second.stderr
        assert "another --workspace" in second.stderr and "Traceback" not in second.stderr
        assert app.poll() is None


def test_the_run_lock_keeps_a_queued_job_from_launching_over_its_owner(ws):
    """Whatever the queue believes, a job whose run another process owns does not train it, nor write over it."""
    jobs = JobManager(ws, background=False, in_process=True)
    request = JobRequest("cgan", "mine", dataset="art", config={"g_ch": 8, "d_ch": 8, "batch": 8}, device="cpu",
                         loop={"iters": 100000, "checkpoint_every": 1000})
    jobs.submit(request)
    jobs.submit(JobRequest(**{**request.__dict__, "run": "held", "loop": {"iters": 3}}))
    run = RunFolder(ws.run_dir("held"))
    with run.lock():  # another trainer took it while it waited (here: this test)
        jobs.stop("mine")
        deadline = time.time() + 60
        while (view := jobs.view("held")).live:
            assert time.time() < deadline, view
            jobs.tick()
            time.sleep(0.1)
        assert f"is in use by process {os.getpid()}" in view.error and _steps(run) == []
        assert run.read_status()["state"] == "queued"  # the owner's status, not written over
        with pytest.raises(UserError, match="in use by process"):
            jobs.submit(JobRequest(**{**request.__dict__, "run": "held", "resume": False}))
    jobs.close()


def _killed_before_its_first_checkpoint(ws, name: str) -> RunFolder:
    def killed(step, total, losses):
        if step == 2:
            raise KeyboardInterrupt  # as SIGKILL would leave it: no checkpoint, status "running"
    with pytest.raises(KeyboardInterrupt):
        run_training(ws, method="cgan", run_name=name, dataset="art", cfg=CGANConfig(g_ch=8, d_ch=8, batch=4),
                     loop=LoopConfig(iters=100, checkpoint_every=1000), device="cpu", on_progress=killed)
    run = RunFolder(ws.run_dir(name))
    status = json.loads((run.path / "status.json").read_text())
    (run.path / "status.json").write_text(json.dumps({**status, "pid": _dead_pid()}))
    assert not run.has_checkpoint() and status["state"] == "running"
    return run


def test_a_run_killed_before_its_first_checkpoint_can_be_restarted_or_deleted(ws, capsys, monkeypatch):
    run = _killed_before_its_first_checkpoint(ws, "k")
    capsys.readouterr()
    assert cli(ws, "train", "cgan", "--run", "k", "--resume") == 2
    err = capsys.readouterr().err
    assert "no usable checkpoint" in err and "--restart" in err and "python -m studio run delete k" in err
    assert cli(ws, "train", "cgan", "--run", "k", "--dataset", "art", *SMALL) == 2
    assert "--restart" in capsys.readouterr().err

    assert cli(ws, "train", "cgan", "--run", "k", "--dataset", "art", "--restart", *SMALL, "--iters", "3",
               "--checkpoint-every", "2") == 0
    assert _steps(run) == [1, 2, 3] and run.read_status()["state"] == "finished"

    # Both checkpoints damaged: the same way out, and the resume says which files and why.
    for name in ("latest", "previous"):
        (run.checkpoints_dir / f"{name}.safetensors").write_bytes(b"\0" * 10)
    capsys.readouterr()
    assert cli(ws, "train", "cgan", "--run", "k", "--resume", "--iters", "5") == 2
    err = capsys.readouterr().err
    assert "previous.safetensors is damaged" in err and "--restart" in err

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no terminal to ask on
    assert cli(ws, "run", "delete", "k") == 2
    assert "add --yes" in capsys.readouterr().err and run.path.exists()
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert cli(ws, "run", "delete", "k") == 1 and run.path.exists()
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert cli(ws, "run", "delete", "k") == 0 and not run.path.exists()
    assert cli(ws, "run", "delete", "k", "--yes") == 2
    assert "There is no run named 'k'" in capsys.readouterr().err

    # The Train tab's Delete (JobManager.delete) takes such a run too.
    _killed_before_its_first_checkpoint(ws, "k2")
    jobs = JobManager(ws, background=False)
    assert jobs.view("k2").state == "failed" and not jobs.view("k2").can_continue
    jobs.delete("k2")
    assert "k2" not in jobs.names()


def test_damaged_run_files_show_that_run_as_damaged_and_everything_else_works(ws):
    run_training(ws, method="cgan", run_name="good", dataset="art", cfg=CGANConfig(g_ch=8, d_ch=8, batch=4),
                 loop=LoopConfig(iters=2, checkpoint_every=1000), device="cpu")
    bad = {"list-status": {"status.json": "[1, 2]"},
           "typed-status": {"status.json": '{"state": "running", "step": "abc", "pid": "x"}'},
           "odd-state": {"status.json": '{"state": "dancing"}'},
           "list-config": {"config.json": "[]", "status.json": '{"state": "stopped", "step": 3}'},
           "typed-config": {"config.json": '{"method": "cgan", "dataset": "art", "config": 5, "loop": {}}'},
           "list-job": {"job.json": '["cgan"]', "status.json": '{"state": "queued"}'},
           "typed-job": {"job.json": '{"method": "cgan", "run": "typed-job", "queued_at": "soon"}',
                         "status.json": '{"state": "queued"}'}}
    for name, files in bad.items():
        ws.run_dir(name).mkdir()
        for file, text in files.items():
            (ws.run_dir(name) / file).write_text(text)
    with (ws.run_dir("good") / "metrics.jsonl").open("a") as f:
        f.write('[1]\n{"step": "x"}\n')

    jobs = JobManager(ws, background=False)  # as the app starts: it queues the two "queued" ones again
    jobs.tick()  # each tick tries the next: a job.json it cannot read fails that run, in words
    views = {v.run: v for v in jobs.runs()}
    assert set(views) == {"good", *bad}
    assert views["good"].state == "finished" and views["good"].can_continue
    for name in bad:
        assert views[name].state == "failed" and not views[name].can_continue, views[name]
        assert "delete it" in views[name].sentence(), views[name].sentence()
    assert "config.json is not a JSON object" in views["list-config"].sentence()
    assert "'config' of the wrong type" in views["typed-config"].sentence()
    assert "status.json has 'step' of the wrong type" in views["typed-status"].sentence()
    with pytest.raises(UserError, match="damaged.*delete it"):
        RunFolder(ws.run_dir("list-config")).read_config()
    assert _steps(RunFolder(ws.run_dir("good"))) == [1, 2]
    for name in bad:
        jobs.delete(name)
    assert [v.run for v in jobs.runs()] == ["good"]


def test_a_fallback_to_the_previous_checkpoint_is_said_on_stderr_and_on_the_status_line(ws, capsys):
    run_training(ws, method="cgan", run_name="f", dataset="art", cfg=CGANConfig(g_ch=8, d_ch=8, batch=4),
                 loop=LoopConfig(iters=4, checkpoint_every=2), device="cpu")
    run = RunFolder(ws.run_dir("f"))
    latest = run.checkpoints_dir / "latest.safetensors"
    latest.write_bytes(latest.read_bytes()[:100])
    capsys.readouterr()
    assert cli(ws, "train", "cgan", "--run", "f", "--resume", "--iters", "6") == 0
    err = capsys.readouterr().err
    assert "warning: run 'f': latest.safetensors is damaged" in err and "step 2" in err
    view = JobManager(ws, background=False).view("f")
    assert "Warning: latest.safetensors is damaged" in view.sentence() and view.state == "finished"
    assert _steps(run) == list(range(1, 7))
    assert cli(ws, "train", "cgan", "--run", "f", "--resume", "--iters", "7") == 0  # a clean resume: nothing to say
    assert JobManager(ws, background=False).view("f").warning is None


def test_checkpoint_temp_files_are_each_writers_own(tmp_path, monkeypatch):
    """Two writers saving the same file at once (the issue: a shared `.step_000108.safetensors.tmp`) both finish."""
    import studio.run

    real_save, nested = studio.run.save_file, []

    def save_while_another_writer_saves(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        if not nested:  # in the middle of this write, another writer saves the same step
            nested.append(filename)
            RunFolder(tmp_path / "run").save_snapshot(8, {"w": torch.zeros(2)}, {})

    monkeypatch.setattr(studio.run, "save_file", save_while_another_writer_saves)
    path = RunFolder(tmp_path / "run").save_snapshot(8, {"w": torch.ones(2)}, {})
    assert studio.run._read_safetensors(path).tensors["w"].tolist() == [1.0, 1.0]
    assert not list(path.parent.glob(".*tmp"))
