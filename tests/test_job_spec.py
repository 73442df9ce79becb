"""One job spec, one executor, one method registry: a job runs the same in a process and in-process, a value of 0
survives the trip, a blend that cannot compare says so before training, and a new method is a module and a line."""

from __future__ import annotations

import signal
import time

import pytest
import torch

from studio.cli import main
from studio.data.dataset import create_demo_dataset
from studio.errors import UserError
from studio.guide import GuideConfig, run_blend
from studio.jobs import JobManager, JobRequest
from studio.jobspec import read_spec
from studio.methods import METHODS
from studio.run import RunFolder

SMALL = {"g_ch": 8, "d_ch": 8, "batch": 4, "resolution": 32}


@pytest.fixture
def ws(workspace):
    create_demo_dataset(workspace, "art", per_class=4, size=64)
    return workspace


def _finish(jobs: JobManager, name: str, timeout: float = 120) -> str:
    deadline = time.time() + timeout
    while jobs.view(name).live and time.time() < deadline:
        jobs.tick()
        time.sleep(0.2)
    return jobs.view(name).state


def test_a_spec_run_as_a_process_and_in_process_gives_identical_checkpoints_and_keeps_zeros(ws, monkeypatch):
    # A mode-seeking weight of 0 used to become the default 1.0 on its way through the command line (0 == False).
    # Bit-identical needs the same thread count on both sides (float sums split differently otherwise): one thread,
    # in the job process (its share of an OMP_NUM_THREADS=1 machine) and here.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _same_spec_two_ways(ws)
    finally:
        torch.set_num_threads(threads)


def _same_spec_two_ways(ws):
    spec = dict(method="cgan", dataset="art", config={**SMALL, "mode_seeking": 0, "lecam": 0.0}, device="cpu",
                loop={"iters": 3, "sample_every": 3, "checkpoint_every": 3})
    by_process = JobManager(ws, background=False)
    by_process.submit(JobRequest(run="proc", **spec))
    assert read_spec(RunFolder(ws.run_dir("proc"))).config["mode_seeking"] == 0  # job.json: the whole config, as given
    assert _finish(by_process, "proc") == "finished", by_process.log_tail("proc")
    in_process = JobManager(ws, background=False, in_process=True)
    in_process.submit(JobRequest(run="thread", **spec))
    assert _finish(in_process, "thread") == "finished", in_process.log_tail("thread")

    runs = [RunFolder(ws.run_dir(name)) for name in ("proc", "thread")]
    assert [r.read_config()["config"]["mode_seeking"] for r in runs] == [0, 0]
    a, b = (r.load_checkpoint().tensors for r in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert "python -m studio job proc" in "\n".join(runs[0].log_tail(20))


def test_a_job_spec_is_checked_when_queued_naming_the_field(ws):
    jobs = JobManager(ws, background=False)
    with pytest.raises(UserError, match=r"Steps \(iters\) must be a whole number from 1 to 1000000, not 2.5\."):
        jobs.submit(JobRequest("cgan", "r", dataset="art", config=SMALL, loop={"iters": 2.5}))
    with pytest.raises(UserError, match=r"Generator width \(g_ch\) must be a whole number from 4 to 1024, not 9999: wider"):
        jobs.submit(JobRequest("cgan", "r", dataset="art", config={**SMALL, "g_ch": 9999}))
    with pytest.raises(UserError, match="no setting 'colour'"):
        jobs.submit(JobRequest("cgan", "r", dataset="art", config={"colour": "red"}))
    assert not ws.run_dir("r").exists()


def test_compare_on_a_cgan_blend_is_refused_before_any_step(ws):
    assert main(["--workspace", str(ws.root), "train", "cgan", "--dataset", "art", "--run", "c", "--iters", "1",
                 "--g-ch", "8", "--d-ch", "8", "--batch", "4", "--device", "cpu"]) == 0
    with pytest.raises(UserError, match="Compare needs a BSA run"):
        run_blend(ws, run_name="cmp", a="c", b=None, cfg=GuideConfig(prompt="x", steps=2, cutouts=2), clip="tiny",
                  device="cpu", compare=True)
    assert not RunFolder(ws.run_dir("cmp")).exists()  # it used to train all its steps, then refuse
    blend = {"a": "c", "prompt": "x", "steps": 2, "cutouts": 2, "clip": "tiny", "compare": True}
    with pytest.raises(UserError, match="Compare needs a BSA run: 'c' is a cgan run"):
        JobManager(ws, background=False).submit(JobRequest("blend", "cmp", config=blend, device="cpu"))


def test_main_puts_back_the_signal_handlers_it_found(ws, capsys):
    def mine(signum, frame):
        pass

    previous = {s: signal.signal(s, mine) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        # training installs its stop handlers, then fails on the missing dataset
        assert main(["--workspace", str(ws.root), "train", "cgan", "--dataset", "nope", "--run", "x"]) == 2
        assert "no dataset named 'nope'" in capsys.readouterr().err
        assert signal.getsignal(signal.SIGINT) is mine and signal.getsignal(signal.SIGTERM) is mine
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def test_a_new_method_is_one_module_and_one_registration_line(ws, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(METHODS, "toy", "toy_method")  # the one line (tests/toy_method.py is the module)

    cli = ["--workspace", str(ws.root)]
    assert main([*cli, "train", "toy", "--dataset", "art", "--run", "t", "--preset", "quick", "--lr", "0.5",
                 "--device", "cpu"]) == 0
    config = RunFolder(ws.run_dir("t")).read_config()
    assert config["method"] == "toy" and config["config"]["lr"] == 0.5 and config["loop"]["iters"] == 3  # flag > preset
    assert RunFolder(ws.run_dir("t")).read_metrics()[-1]["step"] == 3
    assert main([*cli, "sample", "--run", "t", "--out", str(tmp_path / "grid.png"), "--n", "3"]) == 0
    assert (tmp_path / "grid.png").exists()
    assert main([*cli, "train", "toy", "--dataset", "art", "--run", "t2", "--resolution", "7"]) == 2
    assert "Resolution (resolution) must be a whole number from 8 to 64, not 7." in capsys.readouterr().err

    from studio.ui import train_tab

    assert ("Toy: one flat colour per class", "toy") in train_tab.method_choices()
    jobs = JobManager(ws, background=False, in_process=True)
    jobs.submit(JobRequest("toy", "t3", dataset="art", preset="quick", device="cpu"))
    assert _finish(jobs, "t3") == "finished" and jobs.view("t3").step == 3
