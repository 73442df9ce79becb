"""Threads per process (studio.devices): a training job and the app's own work share the cores, never oversubscribe."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from studio import cli, devices, jobs as jobs_module
from studio.data.dataset import create_demo_dataset
from studio.jobs import JobManager, JobRequest


@pytest.mark.parametrize(("cores", "job", "app"), [(1, 1, 1), (2, 1, 1), (4, 3, 1), (16, 15, 1)])
def test_a_job_gets_most_cores_and_the_app_the_rest(cores, job, app):
    assert devices.job_threads(cores) == job
    assert devices.app_threads(cores) == app
    assert devices.app_threads(cores, jobs_in_process=True) == cores  # ZeroGPU: jobs run on the app's own threads


@pytest.mark.parametrize(("text", "cores"), [("max 100000\n", None), ("150000 100000\n", 2), ("100000 100000", 1),
                                             ("50000 100000", 1), ("", None), ("lots 100000", None),
                                             ("100000", None), ("-1 100000", None), ("100000 0", None)])
def test_cgroup_cpu_max_is_whole_cores_rounded_up(text, cores):
    assert devices.parse_cpu_max(text) == cores


def test_available_cores_is_the_fewest_of_affinity_quota_and_omp(tmp_path, monkeypatch):
    monkeypatch.setattr(devices.os, "sched_getaffinity", lambda pid: set(range(16)))
    cpu_max = tmp_path / "cpu.max"
    assert devices.available_cores({}, cpu_max) == 16  # no cgroup file: the affinity mask
    cpu_max.write_text("max 100000\n")
    assert devices.available_cores({}, cpu_max) == 16
    cpu_max.write_text("150000 100000\n")
    assert devices.available_cores({}, cpu_max) == 2
    cpu_max.write_text("garbage\n")
    assert devices.available_cores({}, cpu_max) == 16  # malformed: fall back to the mask
    assert devices.available_cores({"OMP_NUM_THREADS": "3"}, cpu_max) == 3
    assert devices.available_cores({"OMP_NUM_THREADS": "0"}, cpu_max) == 16  # not a thread count: ignored
    assert devices.available_cores({"OMP_NUM_THREADS": "many"}, cpu_max) == 16


def test_a_job_process_is_started_with_the_jobs_share(workspace, monkeypatch):
    create_demo_dataset(workspace, "art", per_class=4, size=64)
    monkeypatch.setattr(devices, "available_cores", lambda environ=None, cpu_max=None: 4)
    started = []
    real_popen = subprocess.Popen

    def popen(argv, **kwargs):  # record what the job would get, run something harmless instead
        started.append((argv, kwargs["env"]))
        return real_popen([sys.executable, "-c", "pass"], stdin=subprocess.DEVNULL)

    monkeypatch.setattr(jobs_module.subprocess, "Popen", popen)
    manager = JobManager(workspace, background=False)
    try:
        manager.submit(JobRequest("cgan", "shared", dataset="art", config={"g_ch": 8, "d_ch": 8, "batch": 8},
                                  device="cpu", loop={"iters": 2}))
    finally:
        manager.close()
    (argv, env), = started
    assert argv[-2:] == ["job", "shared"]
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3"


def test_the_cli_run_as_a_program_uses_the_cores_it_has(workspace, monkeypatch, capsys):
    before = torch.get_num_threads()
    monkeypatch.setattr(devices, "available_cores", lambda environ=None, cpu_max=None: before + 1)
    monkeypatch.setattr(sys, "argv", ["studio", "--workspace", str(workspace.root), "dataset", "list"])
    try:
        assert cli.main() == 0
        assert torch.get_num_threads() == before + 1
    finally:
        torch.set_num_threads(before)
    assert cli.main(["--workspace", str(workspace.root), "dataset", "list"]) == 0
    assert torch.get_num_threads() == before  # a caller in this process keeps its own


KEPT_AFTER_FREE = """
import ctypes, sys, torch
from studio import devices
(devices.prepare_process if sys.argv[1] == "prepared" else devices.use_threads)(1)
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2
before = mallinfo2()
activation = torch.ones(5 << 20)  # 20 MB, as a step's activation at 64 px
mapped = mallinfo2().hblkhd - before.hblkhd  # a block of its own, handed back to the kernel when freed
del activation
print(mapped >> 20, (mallinfo2().fordblks - before.fordblks) >> 20)  # MB mapped apart, MB kept free for the next step
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_prepared_process_keeps_freed_memory_for_the_next_step():
    """A step frees and allocates the same activations; handed back to the kernel, their pages are zeroed again on the
    next touch (6,000 page faults a 32 px cGAN step before: docs/performance.md)."""
    mb = {how: [int(v) for v in subprocess.run([sys.executable, "-c", KEPT_AFTER_FREE, how], capture_output=True,
                                               text=True, check=True).stdout.split()] for how in ("plain", "prepared")}
    assert mb["plain"][0] >= 20 and mb["plain"][1] < 20, mb  # glibc's defaults: mapped apart, unmapped when freed
    assert mb["prepared"][0] == 0 and mb["prepared"][1] >= 20, mb


def test_where_the_app_names_its_busy_file_a_job_may_use_every_core(monkeypatch, tmp_path):
    monkeypatch.setattr(devices, "available_cores", lambda environ=None, cpu_max=None: 4)
    env = jobs_module.child_env({devices.BUSY_FILE: str(tmp_path / ".app-busy")})
    assert env["OMP_NUM_THREADS"] == "4" and env[devices.BUSY_THREADS] == "3"
    assert jobs_module.child_env({})["OMP_NUM_THREADS"] == "3" and devices.BUSY_THREADS not in jobs_module.child_env({})


@pytest.fixture
def job_beside_app(monkeypatch, tmp_path):
    """(the app's busy file, a 2-core job's CoreShare that follows it); the test's thread count is put back after."""
    busy = tmp_path / ".app-busy"
    monkeypatch.setenv(devices.BUSY_FILE, str(busy))
    monkeypatch.setattr(devices, "available_cores", lambda environ=None, cpu_max=None: 2)
    before = torch.get_num_threads()
    yield busy, devices.CoreShare({devices.BUSY_FILE: str(busy), devices.BUSY_THREADS: "1"}, settle_s=0.2)
    torch.set_num_threads(before)


def test_a_job_steps_down_to_its_share_while_the_app_works(job_beside_app):
    """The app's Generate/Evaluate handlers (ui.common.on_gpu) hold the busy file; the job's loop follows it."""
    from studio.ui.common import on_gpu

    busy, share = job_beside_app
    seen = []

    def generate(n):  # a handler: while it runs the job's next step uses one thread
        share.follow()
        seen.append((busy.exists(), torch.get_num_threads()))
        return n

    share.follow()
    assert torch.get_num_threads() == 2  # the app idle: every core
    assert on_gpu(generate)(3) == 3 and seen == [(True, 1)]
    assert not busy.exists()
    share.follow()
    assert torch.get_num_threads() == 1  # a moment after a request: the next may come
    time.sleep(0.3)
    share.follow()
    assert torch.get_num_threads() == 2  # quiet: every core again
    with devices.app_work(), devices.app_work():  # two requests at once: the file goes when both are done
        pass
    assert not busy.exists()
    assert devices.CoreShare({}).path is None  # a job the app did not start (the CLI): threads left alone


def test_a_job_keeps_to_its_share_while_a_page_on_this_machine_watches(job_beside_app, tmp_path):
    """Each tick of a page whose browser runs here touches the watched file: its renderer shares the job's cores."""
    from types import SimpleNamespace

    from studio.jobs import JobManager
    from studio.ui.session import Sessions
    from studio.workspace import Workspace

    busy, share = job_beside_app
    share.follow()
    assert torch.get_num_threads() == 2  # no page: every core
    devices.page_watching()
    share.follow()
    assert torch.get_num_threads() == 1 and not busy.exists()  # watched, not busy: the share all the same
    time.sleep(0.5)  # no tick since: the page was closed
    share.follow()
    assert torch.get_num_threads() == 2

    ws = Workspace.resolve(tmp_path / "ws")
    here, proxied = (Sessions(ws, JobManager(ws, background=False), trust_forwarded=trust) for trust in (False, True))
    page = lambda host, forwarded="": SimpleNamespace(client=SimpleNamespace(host=host),  # noqa: E731
                                                      headers={"x-forwarded-for": forwarded} if forwarded else {})
    assert here.browser_here(page("127.0.0.1")) and here.browser_here(page("::1"))
    assert not here.browser_here(page("192.168.1.20"))  # a browser elsewhere on the network renders on its own cores
    assert not proxied.browser_here(page("127.0.0.1", "203.0.113.9"))  # a Space's proxy on loopback, its visitor afar
