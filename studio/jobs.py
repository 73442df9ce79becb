"""Jobs the server owns: one process per job (`python -m studio job RUN`), one at a time, a queue behind it.

The run folder stays the truth (status.json is written by the training process). This module adds
what a folder cannot know by itself: whether the process behind "running" is still alive, and which
queued jobs wait for the slot. Its own records live in the run folder too (job.json: the spec, see
studio/jobspec.py, then the process id; process.log: the process's output), so a restarted app finds
everything again. The process and ZeroGPU's in-process thread both run the spec with jobspec.execute.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from studio import devices
from studio.errors import UserError
from studio.jobspec import JOB_SHAPE, JobRequest, check_before_queueing, write_spec
from studio.run import CONFIG_SHAPE, STATUS_SHAPE, FileLock, RunFolder, read_json_file
from studio.workspace import Workspace, validate_name, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
LIVE = ("queued", "starting", "running", "stopping")  # states with a process behind them, or waiting for one
STALL_AFTER_S = 120.0  # no step for this long (or 10 steps' time, if longer) → the UI warns
WORKSPACE_LOCK = ".jobs.lock"
_workspace_locks: dict[Path, FileLock] = {}  # held for this process's life; its managers of one workspace share it
_workspace_locks_guard = threading.Lock()


@dataclass
class JobView:
    """What the UI shows for one run: its true state and what can be done with it."""

    run: str
    state: str               # queued | starting | running | stopping | stopped | finished | failed
    method: str | None = None
    dataset: str | None = None
    step: int = 0
    total: int | None = None
    it_per_s: float | None = None
    eta_s: float | None = None
    error: str | None = None
    position: int | None = None      # place in the queue (1 = next)
    stalled_s: float | None = None   # seconds since the last step, when that is too long
    has_checkpoint: bool = False
    warning: str | None = None       # something the user should know that did not stop it (a checkpoint fallback)

    @property
    def live(self) -> bool:
        return self.state in LIVE

    @property
    def can_continue(self) -> bool:  # a blend's result is final; a new prompt is a new blend
        return self.state in ("stopped", "failed", "finished") and self.has_checkpoint and self.method != "blend"

    def sentence(self) -> str:
        """One line for people: the state, progress and, when something is wrong, what to do."""
        line = self._state_sentence()
        return f"{line} Warning: {self.warning}" if self.warning and self.state != "queued" else line

    def _state_sentence(self) -> str:
        progress = f"step {self.step}/{self.total}" if self.total else f"step {self.step}"
        if self.state == "queued":
            return f"Queued ({_ordinal(self.position)} in line): it starts when the job before it ends."
        if self.state == "starting":
            return "Starting: loading the dataset and the model" + (" (a first BigGAN download can take minutes)." if self.method == "bsa" else ".")
        if self.state == "running":
            speed = f" · {self.it_per_s:.2f} it/s" if self.it_per_s else ""
            eta = f" · about {_duration(self.eta_s)} left" if self.eta_s else ""
            line = f"Running: {progress}{speed}{eta}."
            if self.stalled_s:
                line += (f" No step for {_duration(self.stalled_s)}: the process may be stuck (look at the log), "
                         "or a very slow step is running; Stop saves what it has.")
            return line
        if self.state == "stopping":
            return f"Stopping at {progress}: finishing the current step and saving a checkpoint."
        if self.state == "stopped":
            return f"Stopped at {progress}; Continue resumes from the last checkpoint."
        if self.state == "finished":
            if self.method == "blend":
                return f"Finished: {progress}."
            return f"Finished: {progress}. Generate from it in the Generate tab, or raise Steps and Continue."
        tail = " Continue resumes from the last checkpoint." if self.can_continue else ""
        return f"Failed at {progress}: {self.error or 'no reason was recorded'}{tail}"


def _ordinal(n: int | None) -> str:
    return {1: "next", 2: "2nd", 3: "3rd"}.get(n or 0, f"{n}th")


def _duration(seconds: float | None) -> str:
    s = int(seconds or 0)
    return f"{s} s" if s < 90 else f"{s // 60} min" if s < 5400 else f"{s / 3600:.1f} h"


def _own_workspace(ws: Workspace) -> None:
    """Hold the workspace's job lock for this process's life: a second app on it would launch the same queued runs."""
    with _workspace_locks_guard:
        if ws.root not in _workspace_locks:
            _workspace_locks[ws.root] = FileLock(ws.root / WORKSPACE_LOCK).acquire(
                f"The workspace {ws.root} is already served by {{holder}}, and two apps on one workspace would both "
                "start its queued jobs: stop that app first, or give this one another --workspace.")


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")  # a recycled pid belongs to some other program
    if cmdline.exists():
        try:
            text = cmdline.read_bytes()
        except OSError:
            return False
        return b"studio" in text and any(word in text for word in (b"job", b"train", b"blend"))
    return True


class InProcessJob:
    """A job this process runs on a thread, for ZeroGPU: CUDA exists there only inside `@spaces.GPU` calls of the
    app's own process, so training goes one GPU call per chunk (studio/zerogpu.py). Answers as a Popen would."""

    def __init__(self, ws: Workspace, request: JobRequest):
        self.pid, self.returncode = os.getpid(), None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ws, request), name=f"job-{request.run}", daemon=True)
        self._thread.start()

    def _run(self, ws: Workspace, request: JobRequest) -> None:
        from studio import zerogpu
        from studio.methods import method

        try:
            if method(request.method).trains:
                zerogpu.run_in_chunks(ws, asdict(request), chunk_steps=zerogpu.CHUNK_STEPS, should_stop=self._stop.is_set)
            else:
                zerogpu.run_blend_job(ws, asdict(request), should_stop=self._stop.is_set)
            self.returncode = 0
        except Exception as exc:  # what the chunk runner did not turn into a sentence: the log says it as the CLI would
            with (ws.run_dir(request.run) / "process.log").open("a") as log:
                log.write(f"error: {type(exc).__name__}: {exc}\n")
            self.returncode = 1

    def poll(self) -> int | None:
        return None if self._thread.is_alive() else self.returncode

    def terminate(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> int | None:
        self._thread.join(timeout)
        return self.poll()


@dataclass
class _Slot:
    """What the managers of every workspace share: one job runs at a time, for everyone, and one queue."""

    workspaces: Callable[[], list[Workspace]]  # where to look for runs
    stall_after_s: float
    max_live: int | None                       # queued + started jobs one workspace may have (None: no bound)
    in_process: bool                           # jobs run on threads of this process (ZeroGPU), not as processes
    lock: threading.RLock = field(default_factory=threading.RLock)
    procs: dict[Path, subprocess.Popen | InProcessJob] = field(default_factory=dict)  # by run folder
    queue: list[Path] = field(default_factory=list)                    # run folders waiting, in order
    closed: threading.Event = field(default_factory=threading.Event)


class JobManager:
    """Queue, start, stop, continue and delete the training jobs of one workspace.

    On a shared deployment every user has a workspace of their own and `for_workspace` gives each a
    manager that sees only their runs, while the slot (one job at a time) and the queue are shared.
    A background thread reaps ended processes and starts the next queued job; `tick()` does one round
    (tests call it directly with `background=False`).
    """

    def __init__(self, ws: Workspace, *, background: bool = True, poll_s: float = 1.0, stall_after_s: float = STALL_AFTER_S,
                 workspaces: Callable[[], list[Workspace]] | None = None, max_live: int | None = None,
                 in_process: bool = False):
        _own_workspace(ws)
        self.ws = ws
        self._slot = _Slot(workspaces or (lambda: [ws]), stall_after_s, max_live, in_process)
        # Queued jobs survive an app restart: restore them in the order they were queued.
        waiting = [(m._job(name).get("queued_at", 0), m.ws.run_dir(name)) for m in self._managers() for name in m.names()
                   if RunFolder(m.ws.run_dir(name)).read_status().get("state") == "queued"
                   and not _pid_alive(m._job(name).get("pid"))]
        self._slot.queue.extend(path for _, path in sorted(waiting))
        self.tick()
        if background:
            threading.Thread(target=self._loop, args=(poll_s,), name="studio-jobs", daemon=True).start()

    def for_workspace(self, ws: Workspace) -> "JobManager":
        """A manager of `ws`'s runs that shares this one's slot and queue."""
        manager = object.__new__(JobManager)
        manager.ws, manager._slot = ws, self._slot
        return manager

    def _managers(self) -> list["JobManager"]:
        return [self.for_workspace(ws) for ws in self._slot.workspaces()]

    def _owner(self, path: Path) -> "JobManager":
        return self.for_workspace(Workspace(path.parent.parent))

    @property
    def _lock(self) -> threading.RLock:
        return self._slot.lock

    # -- what the UI asks ------------------------------------------------------------------
    def submit(self, request: JobRequest) -> JobView:
        """Queue a new run (or a resume, with `request.resume`); checks what can be checked before any process starts."""
        validate_name(request.run, "run")
        run = RunFolder(self.ws.run_dir(request.run))
        self._let_its_last_job_end(run)
        with self._lock:
            current = self.view(request.run) if request.run in self.names() else None
            if current and current.live:
                raise UserError(f"Run {request.run!r} is already {current.state}.")
            holder = run.held_by()
            if holder:  # trained from the command line, say
                raise UserError(f"Run {request.run!r} is in use by {holder}: wait for it to end, or stop it, then try again.")
            live = [v.run for v in self.runs() if v.live] if self._slot.max_live is not None else []
            if live and len(live) >= self._slot.max_live:
                raise UserError(f"You already have {', '.join(live)} waiting or running, and this studio is shared: "
                                "wait for it to end, or stop it, then start this one.")
            if request.resume:
                if not (current and current.can_continue):
                    raise UserError(f"Run {request.run!r} has no checkpoint to continue from; start it again as a new run.")
            else:
                if run.exists():
                    raise UserError(f"Run {request.run!r} already exists: choose another run name, or Continue it.")
                request = check_before_queueing(self.ws, request)  # checked, preset merged: the whole config
                if run.path.exists():
                    shutil.rmtree(run.path)  # a run that never began (no config.json): start it over cleanly
            write_spec(run, request)
            run.write_status("queued", error=None, method=request.method,
                             dataset=request.dataset if not request.resume else run.read_config()["dataset"])
            self._slot.queue.append(run.path)
            self.tick()
            return self.view(request.run)

    def _let_its_last_job_end(self, run: RunFolder, timeout_s: float = 10.0) -> None:
        """A job that has written its end holds the run until its process (or thread) exits a moment later: Continue or
        Delete pressed in that moment waits for it, rather than being told the run is in use by the app itself."""
        proc = self._slot.procs.get(run.path)
        if proc is None or run.read_status().get("state") in LIVE:
            return
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:  # still holding it after that: submit says who holds the run
            pass

    def resume(self, name: str, *, iters: int | None = None, device: str | None = None) -> JobView:
        """Continue a stopped, failed or finished run from its latest checkpoint (to `iters` steps, if given)."""
        view = self.view(name)
        if not view.can_continue:
            raise UserError(f"Run {name!r} is {view.state} and has no checkpoint to continue from; start it again as a new run."
                            if not view.live else f"Run {name!r} is already {view.state}.")
        config = RunFolder(self.ws.run_dir(name)).read_config()
        total = iters or view.total or config["loop"].get("iters") or view.step
        if view.state == "finished" and total <= view.step:
            raise UserError(f"Run {name!r} finished its {view.step} steps; set Steps above {view.step} to train it further.")
        loop = {"iters": total} if iters else {}
        return self.submit(JobRequest(config["method"], name, resume=True, loop=loop, device=device or config.get("device", "auto")))

    def stop(self, name: str) -> JobView:
        """A queued job leaves the queue; a started one is asked to stop (it saves a checkpoint first)."""
        run = RunFolder(self.ws.run_dir(name))
        with self._lock:
            view = self.view(name)
            if view.state == "queued":
                self._slot.queue.remove(run.path)
                if run.exists():  # a queued Continue: back to where it was
                    run.write_status("stopped", error=None)
                else:             # a new run that never began: nothing was made, so nothing is kept
                    shutil.rmtree(run.path)
                    return JobView(name, "stopped", error="cancelled before it started")
            elif view.state in ("starting", "running"):
                job = self._job(name)
                write_json_atomic(run.path / "job.json", {**job, "stop_requested": time.time()})
                run.stop_file.touch()
                proc = self._slot.procs.get(run.path)
                pid = run.read_status().get("pid") if view.state == "running" else job.get("pid")
                if proc is not None and proc.poll() is None:
                    proc.terminate()  # the CLI's SIGTERM handler (or the in-process job) stops after this step
                elif _pid_alive(pid) and pid != os.getpid():  # a job this app reattached to after a restart
                    os.kill(pid, signal.SIGTERM)
            return self.view(name)

    def delete(self, name: str) -> None:
        validate_name(name, "run")
        self._let_its_last_job_end(RunFolder(self.ws.run_dir(name)))
        with self._lock:
            view = self.view(name)
            if view.state == "queued":
                self.stop(name)
            elif view.live:
                raise UserError(f"Run {name!r} is {view.state}: stop it first, then delete it.")
            run = RunFolder(self.ws.run_dir(name))
            with run.lock():  # refused while any process (the command line, a job) still owns it
                if run.path.exists():
                    shutil.rmtree(run.path)

    def stop_all(self) -> list[str]:
        """Ask every started job of every workspace to stop (the app is shutting down); returns their names."""
        with self._lock:
            started = [(m, name) for m in self._managers() for name in m.names() if m.view(name).state in ("starting", "running")]
            for manager, name in started:
                manager.stop(name)
            return [name for _, name in started]

    def close(self, timeout: float = 60.0) -> None:
        """End the background round; in-process jobs (asked to stop by stop_all) get `timeout` s to save a checkpoint."""
        self._slot.closed.set()
        deadline = time.time() + timeout
        for proc in list(self._slot.procs.values()):
            if isinstance(proc, InProcessJob):
                proc.wait(max(0.0, deadline - time.time()))

    def runs(self) -> list[JobView]:
        """Every run in the workspace, newest first."""
        def started(name: str) -> float:  # not the folder's mtime: a running job touches it every second
            return self._job(name).get("queued_at") or RunFolder(self.ws.run_dir(name)).read_status().get("started") or 0

        return [self.view(n) for n in sorted(self.names(), key=started, reverse=True)]

    def view(self, name: str) -> JobView:
        """The run's true state: status.json, corrected by whether its process is alive."""
        run = RunFolder(self.ws.run_dir(name))
        (status, status_problem), job = read_json_file(run.path / "status.json", STATUS_SHAPE), self._job(name)
        config, config_problem = read_json_file(run.path / "config.json", CONFIG_SHAPE)
        state = status.get("state") or ("failed" if run.path.exists() else "missing")
        if state == "missing":
            raise UserError(f"There is no run named {name!r}.")
        if not (status.get("method") or job.get("method")):  # started from the command line: only config.json says
            status = {**config, **status}
        view = JobView(name, state, method=status.get("method") or job.get("method"), dataset=status.get("dataset") or job.get("dataset"),
                       step=int(status.get("step") or 0), total=status.get("total"), it_per_s=status.get("it_per_s"),
                       eta_s=status.get("eta_s"), error=status.get("error"), has_checkpoint=run.has_checkpoint(),
                       warning=status.get("warning"))
        if config_problem:  # nothing can resume it: say so, and what to do
            view.state, view.has_checkpoint = "failed", False
            view.error = f"this run is damaged ({config_problem}): delete it."
            return view
        if status_problem:  # the next job rewrites status.json: a checkpoint can still be continued
            view.error = f"this run's {status_problem}" + ("." if view.can_continue else ": delete it.")
            return view
        if state == "queued":
            if run.path in self._slot.queue:
                view.position = self._slot.queue.index(run.path) + 1
            elif self._alive(name, job.get("pid")):
                view.state = "stopping" if job.get("stop_requested") else "starting"
            elif job.get("stop_requested"):  # stopped before training began, as asked (tick writes it down)
                view.state = "stopped"
            else:
                view.state, view.error = "failed", self._death_sentence(run, "before it began training")
        elif state in ("running", "stopping"):
            if not self._alive(name, status.get("pid")):
                view.state, view.error = "failed", self._death_sentence(run, f"at step {view.step}")
            elif job.get("stop_requested", 0) > job.get("launched", 0):
                view.state = "stopping"
            elif not status.get("between_chunks"):  # waiting for a GPU call is not a stall
                quiet = time.time() - status.get("updated", time.time())
                if quiet > max(self._slot.stall_after_s, 10 / (view.it_per_s or 1.0)):
                    view.stalled_s = quiet
        return view

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The run's log, and the process's own output when that says more (a traceback, an error line)."""
        run = RunFolder(self.ws.run_dir(name))
        text = "\n".join(run.log_tail(lines))
        output = self._output_tail(run, lines)
        return f"{text}\n--- process output ---\n{output}".strip() if output else text

    # -- the background round ----------------------------------------------------------------
    def tick(self) -> None:
        """Record processes that ended, mark dead ones failed, and start the next queued job when the slot is free."""
        with self._lock:
            for path, proc in list(self._slot.procs.items()):
                if proc.poll() is not None:
                    del self._slot.procs[path]
                    owner = self._owner(path)
                    if owner._job(path.name).get("pid") == proc.pid:  # else a newer job of this run is already queued
                        owner._settle(path.name, proc.returncode)
            busy = False
            for manager in self._managers():
                busy |= manager._reconcile()
            if self._slot.queue and not busy:
                path = self._slot.queue.pop(0)
                self._owner(path)._launch(path.name)

    def _reconcile(self) -> bool:
        """Settle this workspace's jobs that died unwatched; True when one of them holds the slot."""
        busy = False
        for name in self.names():
            if self.ws.run_dir(name) in self._slot.queue:
                continue
            state = self.view(name).state
            if state in ("starting", "running", "stopping"):
                busy = True
            elif state == "failed" and RunFolder(self.ws.run_dir(name)).read_status().get("state") in LIVE:
                self._settle(name, None)  # it died while nobody watched (app restarted, process killed)
        return busy

    def _loop(self, poll_s: float) -> None:
        while not self._slot.closed.wait(poll_s):
            try:
                self.tick()
            except Exception as exc:  # a bad folder must not end the watcher; the next round tries again
                print(f"jobs: {type(exc).__name__}: {exc}", file=sys.stderr)

    def _launch(self, name: str) -> None:
        run = RunFolder(self.ws.run_dir(name))
        job = self._job(name)
        if not job.get("method"):  # deleted from the command line while it waited, or its job.json is damaged
            if run.path.exists():
                run.write_status("failed", error="its job.json is missing or damaged, so it could not start: delete it.")
            return
        run.log(f"job started: python -m studio job {name}" + (" (continue)" if job.get("resume") else ""))
        if self._slot.in_process:
            proc: subprocess.Popen | InProcessJob = InProcessJob(self.ws, JobRequest.from_json(job))
        else:
            env = child_env(os.environ)
            argv = [sys.executable, "-m", "studio", "--workspace", str(self.ws.root), "job", name]
            with (run.path / "process.log").open("ab") as out:
                proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)  # survives an app restart
        self._slot.procs[run.path] = proc
        write_json_atomic(run.path / "job.json", {**job, "pid": proc.pid, "launched": time.time()})

    def _settle(self, name: str, returncode: int | None) -> None:
        """A job's process is gone; if it did not record an end itself, record that it failed and why."""
        run = RunFolder(self.ws.run_dir(name))
        status = run.read_status()
        if status.get("state") not in LIVE or not run.path.exists() or run.held_by():  # a holder writes its own end
            return
        if status.get("state") == "queued" and self._job(name).get("stop_requested"):  # stopped before its handler was installed: what the user asked for
            run.log("stopped before training began")
            run.write_status("stopped", error=None)
            return
        began = "before it began training" if status.get("state") == "queued" else f"at step {status.get('step', 0)}"
        error = self._death_sentence(run, began, returncode)
        run.log(f"failed: {error}")
        run.write_status("failed", error=error, exit_code=returncode)

    def _death_sentence(self, run: RunFolder, when: str, returncode: int | None = None) -> str:
        for line in reversed(self._output_tail(run, 40).splitlines()):
            if line.startswith("error: "):  # the CLI's one-sentence reason
                return line[len("error: "):]
        code = f" (exit code {returncode})" if returncode not in (None, 0) else ""
        if returncode == -signal.SIGKILL:
            code = " (killed: often the system running out of memory)"
        return f"the training process ended {when}{code} without saying why; the log below shows its last lines."

    def _alive(self, name: str, pid: int | None) -> bool:
        proc = self._slot.procs.get(self.ws.run_dir(name))
        if proc is not None and (proc.pid == pid or isinstance(proc, InProcessJob)):  # a GPU worker may write the pid
            return proc.poll() is None
        return _pid_alive(pid)

    def names(self) -> list[str]:
        """Folders under runs/ that a job or the CLI has written a status or config into."""
        if not self.ws.runs.exists():
            return []
        return [p.name for p in self.ws.runs.iterdir() if (p / "status.json").exists() or (p / "config.json").exists()]

    def _job(self, name: str) -> dict:
        """job.json, or {} when it is missing or of the wrong shape."""
        return read_json_file(self.ws.run_dir(name) / "job.json", JOB_SHAPE)[0]

    @staticmethod
    def _output_tail(run: RunFolder, lines: int) -> str:
        path = run.path / "process.log"
        if not path.exists():
            return ""
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - 16384))
            return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])


def child_env(environ: Mapping[str, str]) -> dict[str, str]:
    """A job process's environment: this one's, with the job's threads (studio.devices decides them). Where the app
    names its busy file the job may use every core and steps down to its share while that file exists."""
    env = {**environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
    cores = devices.available_cores(environ)
    share = devices.job_threads(cores)
    if environ.get(devices.BUSY_FILE):
        return {**env, **devices.thread_env(cores), devices.BUSY_THREADS: str(share)}
    return {**env, **devices.thread_env(share)}
