"""Hugging Face Spaces and ZeroGPU: where the studio runs, and training in chunks of GPU time.

On ZeroGPU (SPACES_ZERO_GPU), CUDA exists only inside functions decorated with `spaces.GPU`, each call
runs in a forked worker with a time limit, and arguments and results are pickled. So a job cannot be a
subprocess there: the app's process trains the run itself, one chunk per GPU call, with a checkpoint
between chunks (studio.train.train's max_steps and deadline), and resumes it exactly in the next call.
Between chunks status.json says "running" with `between_chunks: true`, owned by the app's process.

`spaces` is optional: without ZeroGPU (or without the package) `gpu()` is the identity and these
functions run directly in the calling process, which is how the tests run them.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from studio.errors import UserError
from studio.run import RunFolder
from studio.workspace import Workspace

MAX_SECONDS_ENV = "STUDIO_ZEROGPU_MAX_S"
DEFAULT_MAX_SECONDS = 120   # one GPU call at most; ZeroGPU refuses (or cuts) longer ones, and long ones wait longer in line
LOAD_SECONDS = 20.0         # before the first step of a call: fork, model and dataset to the GPU, resume (until measured)
SAVE_SECONDS = 8.0          # after the last step: checkpoint, preview and status (kept free of steps within a call)
MARGIN = 1.25               # a chunk's steps are asked for at this many times their measured time
CHUNK_STEPS = 200           # steps a chunk asks for; fewer when they would not fit in the call
BLEND_SECONDS_PER_STEP = 0.25  # a BigGAN-deep-256 render + CLIP on 32 cutouts, forward and backward (estimate)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Environment:
    """Where the studio is running."""

    space_id: str | None  # "owner/name" on a Hugging Face Space (SPACE_ID), else None
    zero_gpu: bool        # SPACES_ZERO_GPU: CUDA only inside @spaces.GPU calls

    @property
    def on_space(self) -> bool:
        return self.space_id is not None


def detect(environ: dict[str, str] | None = None) -> Environment:
    """The environment from its variables (os.environ by default); truthy as the `spaces` package reads them."""
    env = os.environ if environ is None else environ
    return Environment(space_id=env.get("SPACE_ID") or None,
                       zero_gpu=(env.get("SPACES_ZERO_GPU") or "").strip().lower() in ("1", "t", "true"))


def call_limit_s() -> float:
    """The longest GPU call asked for, in seconds ($STUDIO_ZEROGPU_MAX_S, default 120)."""
    value = os.environ.get(MAX_SECONDS_ENV)
    try:
        seconds = float(value) if value else DEFAULT_MAX_SECONDS
    except ValueError:
        raise UserError(f"{MAX_SECONDS_ENV} must be a number of seconds, not {value!r}.") from None
    if seconds <= SAVE_SECONDS:
        raise UserError(f"{MAX_SECONDS_ENV} must be more than {SAVE_SECONDS:g} seconds, not {value}.")
    return seconds


def gpu(duration: int | float | Callable[..., int | float] = 60) -> Callable[[F], F]:
    """`spaces.GPU(duration=…)` on ZeroGPU when `spaces` imports; elsewhere the function itself.

    Apply it at import time (ZeroGPU registers decorated functions before the app launches). `duration` may be
    a callable taking the function's own arguments and returning seconds.
    """
    def decorate(fn: F) -> F:
        if not detect().zero_gpu:
            return fn
        try:
            import spaces
        except ImportError:
            print("zerogpu: SPACES_ZERO_GPU is set but the `spaces` package is missing; running without GPU calls",
                  file=sys.stderr)
            return fn
        return spaces.GPU(duration=duration)(fn)

    return decorate


# -- training, one chunk per GPU call --------------------------------------------------------------
def chunk_seconds(it_per_s: float | None, steps: int, load_s: float = LOAD_SECONDS) -> float:
    """GPU time to ask for `steps` steps at a measured speed (unknown: the most a call may take)."""
    limit = call_limit_s()
    if not it_per_s:
        return limit
    return min(limit, max(SAVE_SECONDS + 1, load_s + SAVE_SECONDS + MARGIN * steps / it_per_s))


def _chunk_duration(workspace_root: str, request: dict, steps: int, *, first: bool = True,
                    budget_s: float | None = None, owner_pid: int | None = None) -> int:
    """train_chunk's GPU time, from the same arguments (spaces.GPU calls it so)."""
    if budget_s is None:
        status = RunFolder(Workspace(Path(workspace_root)).run_dir(request["run"])).read_status()
        budget_s = chunk_seconds(status.get("it_per_s"), steps)
    return math.ceil(budget_s)


@gpu(duration=_chunk_duration)
def train_chunk(workspace_root: str, request: dict, steps: int, *, first: bool = True, budget_s: float | None = None,
                owner_pid: int | None = None) -> dict:
    """Train one chunk of a job's run in this process (on ZeroGPU: in the GPU worker): at most `steps` steps.

    `request` is a studio.jobspec.JobRequest as a dict (method, run, dataset, resume, config, loop, device). The first
    chunk starts the run (or resumes it, for a Continue); later ones (first=False) resume it and keep a stop asked
    meanwhile. The chunk ends early, at a checkpoint, when its GPU time (budget_s) would run out. owner_pid goes into
    status.json as the run's owner (the app's process, which outlives the worker and holds the run's lock: see
    run_in_chunks); without it, this call takes the lock itself. Returns {"state", "step",
    "error", "load_s"}: state "running" means this chunk ended and the run goes on. Errors come back as a
    sentence, not raised: across ZeroGPU's process boundary only an exception's class name would survive.
    """
    from studio.jobspec import JobRequest, execute

    entered = time.monotonic()
    ws = Workspace.resolve(workspace_root)
    budget = budget_s if budget_s is not None else _chunk_duration(workspace_root, request, steps)
    run = RunFolder(ws.run_dir(request["run"]), pid=owner_pid)
    spec = JobRequest.from_json(request)
    if not first:  # later chunks resume what the first one started
        spec = replace(spec, resume=True, dataset=None, config={}, preset=None)
    loaded: dict[str, float] = {}

    def on_start(step: int) -> None:
        loaded["load_s"] = round(time.monotonic() - entered, 3)

    try:
        state = execute(ws, spec, on_start=on_start, max_steps=steps, deadline=entered + budget - SAVE_SECONDS,
                        owner_pid=owner_pid, continuing=not first)
    except Exception as exc:
        error = _record_failure(run, exc)
        return {"state": "failed", "step": int(run.read_status().get("step") or 0), "error": error, **loaded}
    status = run.read_status()
    return {"state": state, "step": int(status.get("step") or 0), "error": status.get("error"), **loaded}


def run_in_chunks(ws: Workspace, request: dict, *, chunk_steps: int = CHUNK_STEPS,
                  should_stop: Callable[[], bool] = lambda: False) -> str:
    """Train a job's run with train_chunk, one GPU call after another, until it finishes, fails or is stopped.

    Call it from the app's process (a job's thread), never from inside a GPU call. should_stop() and the run's
    STOP file end it: during a chunk, the chunk stops after its current step (with a checkpoint and a preview);
    between chunks, the run ends "stopped" at the checkpoint the last chunk saved. Returns the final state.
    """
    if chunk_steps < 1:
        raise ValueError("chunk_steps must be at least 1")
    run = RunFolder(ws.run_dir(request["run"]))
    load_s, first = LOAD_SECONDS, True
    with run.lock():  # this process owns the run for the whole job; the chunks (owner_pid) train under its lock
        while True:
            budget = chunk_seconds(run.read_status().get("it_per_s"), chunk_steps, load_s)
            with _stop_watch(run, should_stop):
                try:
                    result = train_chunk(str(ws.root), request, chunk_steps, first=first, budget_s=budget,
                                         owner_pid=os.getpid())
                except Exception as exc:  # the GPU call itself: no GPU free, quota used up, the worker cut off at its limit
                    _record_failure(run, exc, gpu_call=True)
                    return "failed"
            if result["state"] != "running":
                return result["state"]
            load_s, first = result.get("load_s") or load_s, False
            if should_stop() or run.stop_file.exists():
                run.log(f"stopped at step {result['step']}, between GPU chunks")
                run.write_status("stopped", step=result["step"], between_chunks=False, eta_s=None)
                return "stopped"


@contextmanager
def _stop_watch(run: RunFolder, should_stop: Callable[[], bool], poll_s: float = 0.25) -> Iterator[None]:
    """While a GPU call runs, turn should_stop() into the run's STOP file, which the call's loop checks every step."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(poll_s):
            try:
                if should_stop() and run.path.exists() and not run.stop_file.exists():
                    run.stop_file.touch()  # again if a starting chunk cleared it: the stop was asked of this job
            except Exception as exc:  # a broken should_stop must not end the training
                print(f"zerogpu: should_stop failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                return

    thread = threading.Thread(target=watch, name=f"stop-watch-{run.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _record_failure(run: RunFolder, exc: BaseException, *, gpu_call: bool = False) -> str:
    """The failure's sentence, written into status.json and the log unless the training loop already wrote it."""
    if isinstance(exc, UserError):
        error = str(exc)
    elif gpu_call:  # spaces raises gradio.Error: its message says what happened (quota, no GPU, task aborted)
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        error = (f"The GPU call ended at step {int(run.read_status().get('step') or 0)}: {message}"
                 + ("; Continue resumes from the last checkpoint." if run.has_checkpoint() else "."))
    else:
        error = f"{type(exc).__name__}: {exc}"  # as train() words it
        traceback.print_exception(exc, file=sys.stderr)
    status = run.read_status()
    if run.path.exists() and not (status.get("state") == "failed" and status.get("error") == error):
        run.log(f"failed: {error}")
        run.write_status("failed", error=error, between_chunks=False)
    return error


# -- blending: one GPU call ------------------------------------------------------------------------
def blend_seconds(options: dict[str, Any]) -> float:
    """GPU time to ask for a blend: its steps (twice with compare) at an estimated speed, within the call limit."""
    from studio.guide import GuideConfig

    steps = int(options.get("steps") or GuideConfig.steps)
    cutouts = int(options.get("cutouts") or GuideConfig.cutouts)
    work = steps * (2 if options.get("compare") else 1) * BLEND_SECONDS_PER_STEP * max(cutouts, 8) / 32
    return min(call_limit_s(), LOAD_SECONDS + SAVE_SECONDS + MARGIN * work)


def _blend_duration(workspace_root: str, request: dict, *, budget_s: float | None = None) -> int:
    return math.ceil(budget_s if budget_s is not None else blend_seconds(request.get("config") or {}))


@gpu(duration=_blend_duration)
def blend(workspace_root: str, request: dict, *, budget_s: float | None = None) -> dict:
    """Run a blend job (studio.jobspec.JobRequest as a dict, method "blend") in one GPU call; returns its report.

    A blend that would outlast its GPU time stops early and keeps its result so far (report["state"] "stopped");
    a failure comes back as {"state": "failed", "error": sentence}, also written into status.json.
    """
    from studio.guide import blend_result
    from studio.jobspec import JobRequest, execute

    entered = time.monotonic()
    ws = Workspace.resolve(workspace_root)
    budget = budget_s if budget_s is not None else blend_seconds(request.get("config") or {})
    run = RunFolder(ws.run_dir(request["run"]))

    def out_of_time() -> bool:
        return time.monotonic() - entered > budget - SAVE_SECONDS

    try:
        state = execute(ws, JobRequest.from_json(request), should_stop=out_of_time)
    except Exception as exc:
        return {"state": "failed", "error": _record_failure(run, exc)}
    report = {**(blend_result(ws, request["run"]) or {}), "state": state}
    if state == "stopped" and out_of_time():
        run.log(f"stopped early: its GPU time ({budget:.0f} s) ran out; the result so far is kept")
    return report


def run_blend_job(ws: Workspace, request: dict, *, should_stop: Callable[[], bool] = lambda: False) -> dict:
    """A blend job from the app's process: one GPU call of `blend`, stoppable by should_stop() or its STOP file."""
    run = RunFolder(ws.run_dir(request["run"]))
    with run.lock(), _stop_watch(run, should_stop):
        try:
            return blend(str(ws.root), request, budget_s=blend_seconds(request.get("config") or {}))
        except Exception as exc:  # the GPU call itself failed
            return {"state": "failed", "error": _record_failure(run, exc, gpu_call=True)}
