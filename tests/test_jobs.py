"""Training jobs as the server runs them: real `python -m studio train` processes, queued one at a time.

The state a UI shows must be true after a stop, a kill, a failure in the child, and an app restart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from studio.data.dataset import Dataset, create_demo_dataset
from studio.errors import UserError
from studio.jobs import JobManager, JobRequest
from studio.run import RunFolder

SMALL = {"g_ch": 8, "d_ch": 8, "batch": 8, "resolution": 32}


@pytest.fixture
def ws(workspace):
    create_demo_dataset(workspace, "art", per_class=4, size=64)
    return workspace


def _request(run: str, iters: int, **loop) -> JobRequest:
    return JobRequest("cgan", run, dataset="art", config=SMALL, device="cpu",
                      loop={"iters": iters, "sample_every": 50, "checkpoint_every": 1000, **loop})


def _wait(jobs: JobManager, name: str, until, timeout: float = 90.0):
    deadline = time.time() + timeout
    while True:
        jobs.tick()
        view = jobs.view(name)
        if until(view):
            return view
        assert time.time() < deadline, f"{name}: still {view} after {timeout} s; log:\n{jobs.log_tail(name)}"
        time.sleep(0.2)


def test_queue_stop_restart_kill_and_continue_keep_the_truth(ws):
    jobs = JobManager(ws, background=False)
    a = jobs.submit(_request("long", 100_000))
    b = jobs.submit(_request("short", 4))
    assert a.state == "starting" and b.state == "queued" and b.position == 1
    assert "next in line" in b.sentence()
    running = _wait(jobs, "long", lambda v: v.state == "running" and v.step >= 3)
    assert RunFolder(ws.run_dir("long")).sample_path(0).exists()  # the step-0 preview comes first

    # The app restarts: a new manager finds the running job and the queue as they were.
    jobs = JobManager(ws, background=False)
    assert jobs.view("long").state == "running" and jobs.view("short").position == 1
    with pytest.raises(UserError, match="already running"):
        jobs.submit(_request("long", 10))

    assert jobs.stop("long").state == "stopping"
    stopped = _wait(jobs, "long", lambda v: v.state == "stopped")
    assert stopped.has_checkpoint and stopped.step >= running.step and stopped.can_continue
    _wait(jobs, "short", lambda v: v.state == "finished")  # the slot freed, the queued job ran

    # Continue, then the process is killed outright: shown as failed with the reason, and Continue works again.
    jobs.resume("long", iters=stopped.step + 100_000)
    resumed = _wait(jobs, "long", lambda v: v.state == "running" and v.step > stopped.step + 2)
    os.kill(RunFolder(ws.run_dir("long")).read_status()["pid"], signal.SIGKILL)
    failed = _wait(jobs, "long", lambda v: v.state == "failed")
    assert "killed" in failed.error and failed.can_continue
    assert RunFolder(ws.run_dir("long")).read_status()["state"] == "failed"  # written down, not only derived
    assert "process output" in jobs.log_tail("long") or "resumed from step" in jobs.log_tail("long")

    final = jobs.resume("long", iters=resumed.step + 5)
    final = _wait(jobs, "long", lambda v: v.state == "finished")
    steps = [row["step"] for row in RunFolder(ws.run_dir("long")).read_metrics()]
    assert steps == list(range(1, final.step + 1))  # nothing repeated or missing across two resumes
    with pytest.raises(UserError, match="set Steps above"):
        jobs.resume("long")


def test_mistakes_are_one_sentence_before_any_process(ws):
    jobs = JobManager(ws, background=False)
    Dataset.open_or_create(ws, "empty")
    with pytest.raises(UserError, match="is empty"):
        jobs.submit(JobRequest("cgan", "r1", dataset="empty"))
    with pytest.raises(UserError, match="Choose a dataset"):
        jobs.submit(JobRequest("cgan", "r1"))
    with pytest.raises(UserError, match="not allowed"):
        jobs.submit(JobRequest("cgan", "../escape", dataset="art"))
    with pytest.raises(UserError, match="biggan-deep-256"):  # tests run offline, with no weights here
        jobs.submit(JobRequest("bsa", "r1", dataset="art", config={"model": "biggan-deep-256"}))
    assert jobs.runs() == []


def test_a_failure_inside_the_process_is_its_sentence(ws):
    jobs = JobManager(ws, background=False)
    jobs.submit(JobRequest("cgan", "child", dataset="art", config={**SMALL, "transfer_from": "no-such-run"},
                           loop={"iters": 3}, device="cpu"))
    failed = _wait(jobs, "child", lambda v: v.state == "failed")
    assert "no-such-run" in failed.error and not failed.can_continue
    # The name is free again: a run that never began is started over.
    assert jobs.submit(_request("child", 2)).state == "starting"
    _wait(jobs, "child", lambda v: v.state == "finished")


def test_stall_watchdog_and_delete(ws):
    run = RunFolder(ws.run_dir("stuck"))
    run.write_config({"method": "cgan", "dataset": "art", "loop": {"iters": 10}})
    # A live process that looks like a trainer but makes no progress.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "studio", "train"])
    try:
        run.write_status("running", step=2, total=10, it_per_s=5.0)
        status = run.read_status()
        (run.path / "status.json").write_text(__import__("json").dumps({**status, "pid": proc.pid, "updated": time.time() - 300}))
        jobs = JobManager(ws, background=False, stall_after_s=60)
        view = jobs.view("stuck")
        assert view.state == "running" and view.stalled_s >= 299 and "No step for 5 min" in view.sentence()
        with pytest.raises(UserError, match="stop it first"):
            jobs.delete("stuck")
    finally:
        proc.kill()
        proc.wait()
    jobs.tick()
    assert jobs.view("stuck").state == "failed"
    jobs.delete("stuck")
    assert not run.path.exists()


def test_cancelling_a_queued_new_run_leaves_nothing(ws):
    jobs = JobManager(ws, background=False)
    jobs.submit(_request("first", 100_000))
    jobs.submit(_request("second", 3))
    assert jobs.stop("second").error == "cancelled before it started"
    assert not ws.run_dir("second").exists()
    _wait(jobs, "first", lambda v: v.state == "running")
    jobs.stop("first")
    jobs._slot.procs[ws.run_dir("first")].wait(60)  # ended, but not yet reaped by a tick when Continue is pressed
    assert jobs.resume("first").state == "starting"
    assert "failed" not in RunFolder(ws.run_dir("first")).log_tail(50)[-1]
    jobs.stop("first")
    _wait(jobs, "first", lambda v: v.state == "stopped")
    assert not any("failed" in line for line in RunFolder(ws.run_dir("first")).log_tail(50))


def _ending_job(jobs: JobManager, name: str) -> None:
    """Make `name` look as a job does that has written its end and still holds the run for half a second."""
    import threading

    lock = RunFolder(jobs.ws.run_dir(name)).lock()
    letting_go = threading.Timer(0.5, lock.release)

    class Ending:  # answers as Popen and InProcessJob do
        pid = os.getpid()

        def poll(self):
            return None if letting_go.is_alive() else 0

        def wait(self, timeout=None):
            letting_go.join(timeout)
            return self.poll()

    jobs._slot.procs[jobs.ws.run_dir(name)] = Ending()
    letting_go.start()


def test_continue_right_after_a_stop_waits_for_the_job_to_let_go_of_its_run(ws):
    """A job writes "stopped" and exits a moment later, holding the run until then: Continue pressed in that moment
    (the ZeroGPU thread's case, where the holder named would be the app itself) waits for it instead of refusing."""
    jobs = JobManager(ws, background=False)
    jobs.submit(_request("r", 3))
    _wait(jobs, "r", lambda v: v.state == "finished")
    _ending_job(jobs, "r")
    assert jobs.resume("r", iters=5).state in ("queued", "starting")
    assert _wait(jobs, "r", lambda v: v.state == "finished").step == 5
    _ending_job(jobs, "r")  # Delete in that moment waits too
    jobs.delete("r")
    assert not ws.run_dir("r").exists()


def test_in_process_jobs_train_in_chunks_queue_stop_and_continue(ws, monkeypatch):
    """ZeroGPU's way: the app's own process trains, one (GPU) call per chunk; the queue, Stop and Continue still hold."""
    import studio.zerogpu as zerogpu

    monkeypatch.setattr(zerogpu, "CHUNK_STEPS", 3)
    jobs = JobManager(ws, background=False, in_process=True)
    jobs.submit(_request("first", 7))
    jobs.submit(_request("second", 100000, sample_every=5))
    assert jobs.view("second").state == "queued"  # one slot, as with processes
    view = _wait(jobs, "first", lambda v: v.state == "finished")
    assert view.step == 7 and [r["step"] for r in RunFolder(ws.run_dir("first")).read_metrics()] == list(range(1, 8))
    log = (ws.run_dir("first") / "log.txt").read_text()
    assert log.count("end of this chunk") == 2 and "--workspace" not in log

    _wait(jobs, "second", lambda v: v.state == "running" and v.step >= 4)
    assert jobs.stop("second").state in ("stopping", "stopped")  # asks the thread; never a signal to this process
    stopped = _wait(jobs, "second", lambda v: not v.live)
    assert stopped.state == "stopped" and stopped.has_checkpoint, stopped
    jobs.resume("second", iters=stopped.step + 4)
    done = _wait(jobs, "second", lambda v: v.state == "finished")
    assert [r["step"] for r in RunFolder(ws.run_dir("second")).read_metrics()] == list(range(1, done.step + 1))
    jobs.close()
