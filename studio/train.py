"""The one training loop: step cadence, fixed-seed previews, checkpoints, resume, stop, and truthful status.

A method (studio/methods/*) owns model, loss and optimiser step; this loop owns everything
around it and writes the run folder (studio/run.py) that the CLI, the UI and tests watch.
`new_run_configs` is the one merge of given values over a preset over a method's defaults.
"""

from __future__ import annotations

import shutil
import time
from collections import deque
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Protocol

import torch

from studio import devices, distributed
from studio.data.augment import image_grid
from studio.errors import UserError
from studio.options import check_values, option
from studio.run import RunFolder
from studio.workspace import Workspace

STATUS_EVERY_S = 1.0  # status.json is for watchers; once a second is plenty and keeps the step loop lean
RATE_WINDOW_S = 60.0  # the speed an ETA is told from: steps over about the last minute


@dataclass
class LoopConfig:
    iters: int = option(1000, label="Steps", min=1, max=1_000_000, why_max="a million steps is weeks of training",
                        help="total steps of the run (a resumed run continues up to this)")
    sample_every: int = option(100, label="Preview every", min=1, max=1_000_000,
                               help="preview grid every N steps (step 0 always)")
    checkpoint_every: int = option(500, label="Checkpoint every", min=1, max=1_000_000,
                                   help="checkpoint every N steps (and on stop)")
    log_every: int = option(1, label="Log every", min=1, max=1_000_000,  # reading losses back from the device costs
                            help="a metrics line every N steps")


class TrainingMethod(Protocol):
    """What the loop needs from a method; see studio/methods/bsa.py for one."""

    def train_step(self, step: int) -> dict[str, torch.Tensor]: ...
    def preview(self) -> tuple[torch.Tensor, int]: ...               # images in [-1, 1], grid row length
    def state_tensors(self) -> dict[str, torch.Tensor]: ...          # everything a resume needs
    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None: ...
    def checkpoint_meta(self) -> dict[str, Any]: ...
    # Optional: `sampler_tensors()` → what load_sampler needs, saved as a snapshot at every checkpoint step;
    # `preview_rows()` → a label for each row of the preview grid, drawn beside it (class names, "real", …).


ProgressFn = Callable[[int, int, dict[str, float]], None]


class FollowerRun(RunFolder):
    """How a process other than the first sees a run trained on several devices (studio.distributed): it reads
    (a resume) but writes nothing; process 0 writes status, metrics, previews and checkpoints for all."""

    def _skip(self, *args: Any, **kwargs: Any) -> dict:
        return {}

    write_config = write_status = log = append_metrics = truncate_metrics = _skip
    save_checkpoint = save_snapshot = truncate_snapshots = remove_temp_files = _skip


def save_preview(run: RunFolder, method: TrainingMethod, step: int) -> None:
    if isinstance(run, FollowerRun):
        return
    images, nrow = method.preview()
    rows = method.preview_rows() if hasattr(method, "preview_rows") else None
    run.samples_dir.mkdir(parents=True, exist_ok=True)
    image_grid(images, nrow=nrow, row_labels=rows).save(run.sample_path(step))


class StepRate:
    """Steps per second over the last `window_s` of wall time, counted from the end of the first step.

    The first step after a start or a Continue pays for warm-up (memory, kernel choice, caches), and an average
    seeded with it told an ETA of 1.6 h that fell to 66 min over the next minutes. Wall time between steps, not
    the step alone, so the time previews and checkpoints take is in the ETA as the run will spend it."""

    def __init__(self, start_step: int = 0, *, window_s: float = RATE_WINDOW_S, now: float | None = None):
        self.window_s, self.marks = window_s, deque()  # (time, step) from the end of the first step on, oldest first
        self.start = (time.perf_counter() if now is None else now, start_step)

    def mark(self, step: int, now: float | None = None) -> None:
        """Say that `step` steps are done at `now` (time.perf_counter())."""
        now = time.perf_counter() if now is None else now
        self.marks.append((now, step))
        while len(self.marks) > 2 and self.marks[1][0] <= now - self.window_s:
            self.marks.popleft()

    @property
    def steady(self) -> float | None:
        """Steps per second after the first step, or None until two steps after it have been timed apart."""
        if len(self.marks) < 2 or self.marks[-1][0] <= self.marks[0][0]:
            return None
        (t0, s0), (t1, s1) = self.marks[0], self.marks[-1]
        return (s1 - s0) / (t1 - t0)

    @property
    def per_s(self) -> float | None:
        """The steady rate; after one step only, that step's (warm-up included: a chunk's budget wants some rate)."""
        if (steady := self.steady) is not None or not self.marks:
            return steady
        (t0, s0), (t1, s1) = self.start, self.marks[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else None

    def eta_s(self, remaining: int) -> float | None:
        """Seconds left at the steady rate; None (no ETA said) rather than one told from the warm-up step."""
        rate = self.steady
        return round(remaining / rate, 1) if rate else None


def save_checkpoint(run: RunFolder, method: TrainingMethod, step: int, *, snapshot: bool = True) -> None:
    meta = {**method.checkpoint_meta(), "step": step}
    run.save_checkpoint(method.state_tensors(), meta)
    if snapshot and hasattr(method, "sampler_tensors"):  # small: lets evaluation look back at every checkpoint step
        run.save_snapshot(step, method.sampler_tensors(), meta)


def resume(run: RunFolder, method: TrainingMethod) -> int:
    """Load the newest checkpoint into `method`; returns its step and trims later metrics."""
    ckpt = run.load_checkpoint()
    method.load_state_tensors(ckpt.tensors)
    step = int(ckpt.meta["step"])
    run.truncate_metrics(step)
    run.truncate_snapshots(step)
    run.log(f"resumed from step {step}")
    if ckpt.warning:  # said on the run's status line too, for the rest of this job
        run.write_status(run.read_status().get("state") or "stopped", warning=ckpt.warning)
    return step


def train(run: RunFolder, method: TrainingMethod, loop: LoopConfig, *, start_step: int = 0,
          should_stop: Callable[[], bool] = lambda: False, on_progress: ProgressFn | None = None,
          max_steps: int | None = None, deadline: float | None = None) -> str:
    """Run steps start_step..loop.iters; returns the state it leaves in status.json: finished, stopped or failed.

    With max_steps or deadline, this call trains one chunk of the run (ZeroGPU: one GPU call, see studio/zerogpu.py)
    and may end first: after max_steps steps, or once time.monotonic() passes `deadline` (after at least one step).
    Then it saves a checkpoint as a stop does, but the run is not over: status.json stays "running" with
    `between_chunks: true`, and it returns "running"; the next chunk resumes from the checkpoint exactly.
    """
    started = time.time()
    end = loop.iters if max_steps is None else min(loop.iters, start_step + max_steps)
    run.write_status("running", step=start_step, total=loop.iters, started=started, error=None, loop=asdict(loop),
                     between_chunks=False)
    run.log(f"training from step {start_step} to {loop.iters}" + (f" (this chunk: to step {end})" if end < loop.iters else ""))
    if start_step == 0 and not run.sample_path(0).exists():
        save_preview(run, method, 0)
    step, last_status, rate, saved, chunk_over = start_step, 0.0, StepRate(start_step), None, False
    cores = devices.CoreShare()  # a job the app started: every core while the app is idle
    try:
        while step < loop.iters and not should_stop():
            if step >= end or (deadline is not None and step > start_step and time.monotonic() > deadline):
                chunk_over = True
                break
            cores.follow()
            losses = method.train_step(step)
            step += 1
            if step % loop.log_every == 0 or step == loop.iters:
                values = {k: float(v) for k, v in losses.items()}
                run.append_metrics({"step": step, "time": round(time.time() - started, 3), **values})
                if on_progress:
                    on_progress(step, loop.iters, values)
            if step % loop.sample_every == 0 or step == loop.iters:
                save_preview(run, method, step)
            if step % loop.checkpoint_every == 0 and step < loop.iters:
                save_checkpoint(run, method, step)
                saved = step
            rate.mark(step)  # after the preview and checkpoint: the ETA counts the time they take
            if time.time() - last_status > STATUS_EVERY_S:
                last_status = time.time()
                run.write_status("running", step=step, it_per_s=round(rate.per_s or 0.0, 3),
                                 eta_s=rate.eta_s(loop.iters - step))
    except torch.OutOfMemoryError:
        # Parameters only change inside optimizer.step(), so what we hold is the last complete step.
        save_checkpoint(run, method, step)
        message = (f"Out of memory at step {step}: try a smaller batch or resolution (progress up to here is saved; "
                   "Continue resumes from it).")
        run.log(message)
        run.write_status("failed", step=step, error=message)
        return "failed"
    except Exception as exc:
        error = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"  # a user's sentence stays one
        run.log(f"failed at step {step}: {error}")
        run.write_status("failed", step=step, error=error)
        raise
    state = "finished" if step >= loop.iters else "running" if chunk_over else "stopped"
    speed = {"it_per_s": round(rate.per_s or 0.0, 3)}
    if state == "running":
        if saved != step:  # no snapshot: a chunk's end is where the host cut, not a step anyone chose to keep
            save_checkpoint(run, method, step, snapshot=False)
        run.log(f"end of this chunk at step {step}; the next one resumes from its checkpoint")
        run.write_status("running", step=step, between_chunks=True, **speed, eta_s=rate.eta_s(loop.iters - step))
        return state
    if state == "stopped" and not run.sample_path(step).exists():
        save_preview(run, method, step)  # the user stopped to look: show where it got to
    if saved != step:
        save_checkpoint(run, method, step)
    run.log(f"{state} at step {step}")
    run.write_status(state, step=step, **speed, eta_s=0 if state == "finished" else None)
    return state


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"Unknown device {name!r}: use auto, cpu or cuda.")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but PyTorch sees no CUDA GPU here; use --device cpu or auto.")
    return torch.device(name)


def new_run_configs(method: str, *, preset: str | None = None, config: dict[str, Any] | None = None,
                    loop: dict[str, Any] | None = None) -> tuple[Any, LoopConfig]:
    """The one preset merge: given values (checked, each error naming its field) over the preset over the method's
    defaults; None means not given. The CLI, the jobs and the Train tab's preset fill all come through here."""
    from studio.methods import method as described

    m = described(method)
    if preset and preset not in m.presets:
        raise UserError(f"{m.name} has no preset {preset!r}: choose one of {', '.join(m.presets)}.")
    chosen = m.presets.get(preset, {}) if preset else {}
    loop_fields = {f.name for f in fields(LoopConfig)}
    given = check_values(m.config, {k: v for k, v in (config or {}).items() if v is not None})
    loop_given = check_values(LoopConfig, {k: v for k, v in (loop or {}).items() if v is not None})
    loop_config = LoopConfig(**{**m.loop, **{k: v for k, v in chosen.items() if k in loop_fields}, **loop_given})
    cfg = m.config(**{**{k: v for k, v in chosen.items() if k not in loop_fields}, **given})
    if hasattr(cfg, "fit_loop"):  # settings counted in steps that a shorter run scales down
        cfg = cfg.fit_loop(loop_config)
    return cfg, loop_config


def training_configs(ws: Workspace, method: str, run_name: str, *, resume_run: bool = False, preset: str | None = None,
                     config: dict[str, Any] | None = None, loop: dict[str, Any] | None = None) -> tuple[Any | None, LoopConfig]:
    """The method config and loop a train command asks for (the CLI's flags, or a job's spec; None = not given).

    A new run: see new_run_configs. A resume keeps its hyperparameters (the config is then None: run_training reads
    it from the run) and its saved loop, with given loop values on top.
    """
    if not resume_run:
        return new_run_configs(method, preset=preset, config=config, loop=loop)
    from studio.methods import method as described

    saved = RunFolder(ws.run_dir(run_name)).read_config()
    given = check_values(described(method).config, {k: v for k, v in (config or {}).items() if v is not None})
    for name, value in given.items():  # the run's own command repeated is fine; a changed value is not
        if name not in saved["config"] or value != saved["config"][name]:
            flag = f"--{name.replace('_', '-')}"
            raise UserError(f"A resumed run keeps its hyperparameters: run {run_name!r} has {flag} "
                            f"{saved['config'].get(name)!r}, not {value!r} (leave {flag} out, or start a new run). Only "
                            "--iters, --sample-every, --checkpoint-every and --device can change.")
    loop_given = check_values(LoopConfig, {k: v for k, v in (loop or {}).items() if v is not None})
    return None, LoopConfig(**{**saved["loop"], **loop_given})


def run_training(ws: Workspace, *, method: str, run_name: str, dataset: str | None, cfg: Any | None, loop: LoopConfig,
                 device: str = "auto", resume_run: bool = False, should_stop: Callable[[], bool] = lambda: False,
                 on_progress: ProgressFn | None = None, on_start: Callable[[int], None] | None = None,
                 max_steps: int | None = None, deadline: float | None = None, owner_pid: int | None = None,
                 continuing: bool = False, restart: bool = False) -> str:
    """Start a new run (or resume one) of `method` on a dataset; the same path for the CLI, the UI's jobs and tests.

    The run is owned (RunFolder.lock) for the whole call, so a second trainer of it is refused; with owner_pid, the
    process recorded in status.json as the run's owner when it is not this one, that owner holds the lock instead (a
    ZeroGPU job, see studio/zerogpu.py). max_steps / deadline make this call one chunk of the run (see train());
    `continuing` marks a later chunk of one job, where a stop asked since the job began must still end it (a fresh start
    clears an old STOP file instead). `restart` starts a new run under the name of one that exists, deleting it first.
    """
    here, device = distributed.init_from_env(device)  # under torchrun (train --gpus N): one process of several
    run = (RunFolder if here.writer else FollowerRun)(ws.run_dir(run_name), pid=owner_pid)
    if not here.writer:
        on_progress = on_start = None
    try:
        with nullcontext() if owner_pid is not None or not here.writer else run.lock():
            return _run_training(ws, run, method=method, dataset=dataset, cfg=cfg, loop=loop, device=device,
                                 resume_run=resume_run, should_stop=should_stop, on_progress=on_progress,
                                 on_start=on_start, max_steps=max_steps, deadline=deadline, continuing=continuing,
                                 restart=restart)
    finally:
        distributed.cleanup()


def _run_training(ws: Workspace, run: RunFolder, *, method: str, dataset: str | None, cfg: Any | None, loop: LoopConfig,
                  device: str, resume_run: bool, should_stop: Callable[[], bool], on_progress: ProgressFn | None,
                  on_start: Callable[[int], None] | None, max_steps: int | None, deadline: float | None,
                  continuing: bool, restart: bool) -> str:
    from studio.data.dataset import Dataset
    from studio.methods import method as described
    from studio.methods import training_methods

    m = described(method)
    if not m.trains:
        raise UserError(f"{method} is not a training method: choose one of {', '.join(t.name for t in training_methods())}.")
    run_name = run.name
    if resume_run:
        saved = run.read_config()
        if saved["method"] != method:
            raise UserError(f"Run {run_name!r} was trained with {saved['method']}, not {method}.")
        if dataset not in (None, saved["dataset"]):
            raise UserError(f"Run {run_name!r} trains on dataset {saved['dataset']!r}; leave out --dataset to resume it.")
        cfg = m.config.from_dict(saved["config"])
        dataset = saved["dataset"]
    elif run.exists() and not restart:
        if not run.has_checkpoint():
            raise UserError(f"Run {run_name!r} already exists but has no checkpoint to resume from: start it over with "
                            f"--restart, delete it (python -m studio run delete {run_name}), or choose another run name.")
        raise UserError(f"Run {run_name!r} already exists: use --resume to continue it, --restart to start it over "
                        "(deleting what it made), or choose another run name.")
    ds = Dataset.open(ws, dataset)
    if resume_run and ds.fingerprint() != saved.get("dataset_fingerprint"):
        raise UserError(f"Dataset {dataset!r} changed since run {run_name!r} started (images or labels differ); "
                        "start a new run to train on it.")
    dev = resolve_device(device)
    config = {"method": method, "dataset": ds.name, "dataset_fingerprint": ds.fingerprint(), "config": asdict(cfg),
              "loop": asdict(loop), "device": str(dev), "created": saved.get("created") if resume_run else time.time()}
    # Build before writing anything: missing weights or too few images must not leave a half-made run behind.
    trainer = m.build_trainer(cfg, ds, device=dev, ws=ws, meta={"run": run_name, "dataset": ds.name,
                                                                     "dataset_fingerprint": ds.fingerprint()})
    if restart and run.path.exists() and not isinstance(run, FollowerRun):
        shutil.rmtree(run.path)
    run.remove_temp_files()
    run.write_config(config)
    if not continuing:
        if run.stop_file.exists():
            run.stop_file.unlink()  # a stop asked of an earlier process must not end this one
        if run.read_status().get("warning"):  # about an earlier job's resume
            run.write_status(run.read_status().get("state") or "stopped", warning=None)
    start = resume(run, trainer) if resume_run else 0
    if on_start:
        on_start(start)
    return train(run, trainer, loop, start_step=start, on_progress=on_progress, max_steps=max_steps,
                 deadline=deadline, should_stop=lambda: distributed.any_across(should_stop() or run.stop_file.exists()))
