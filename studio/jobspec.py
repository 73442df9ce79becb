"""A job as data, and the one way to run it.

A job is `runs/<name>/job.json`: the method, run, dataset, preset, config and loop values, device. It is
written once when the job is queued (`JobManager.submit`), after `resolved()` has checked every value against the
method's config (studio.options) and merged the preset, so the file holds the whole config the run will use.
`execute(ws, spec)` runs a spec, and every path goes through it: `python -m studio train|blend …` (the CLI builds
the spec from its flags), `python -m studio job RUN` (the process a server's job runs: the spec is read from the
run's job.json), and a thread of the app's own process on ZeroGPU (studio/zerogpu.py, one chunk per GPU call).
Options never travel as command-line text.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from studio.errors import UserError
from studio.run import RunFolder, read_json_file
from studio.workspace import Workspace, write_json_atomic

_OPTIONAL_NUMBER = (int, float, type(None))
# job.json: the spec (written once), then what the job manager records about its process.
JOB_SHAPE = {"method": str, "run": str, "dataset": (str, type(None)), "resume": bool, "config": dict, "loop": dict,
             "device": str, "preset": (str, type(None)), "queued_at": _OPTIONAL_NUMBER, "pid": (int, type(None)),
             "launched": _OPTIONAL_NUMBER, "stop_requested": _OPTIONAL_NUMBER}


@dataclass
class JobRequest:
    """One job: what `python -m studio train METHOD …` (or `blend …`) asks for, as data."""

    method: str
    run: str
    dataset: str | None = None
    resume: bool = False
    config: dict[str, Any] = field(default_factory=dict)  # the method's config fields (None or absent = default)
    loop: dict[str, Any] = field(default_factory=dict)    # iters, sample_every, checkpoint_every
    device: str = "auto"
    preset: str | None = None                              # merged into config and loop by resolved()

    def resolved(self) -> "JobRequest":
        """This spec with every value checked and the preset merged (a resume keeps only its loop values)."""
        from studio.methods import method
        from studio.options import check_values
        from studio.train import new_run_configs

        m = method(self.method)
        if not m.trains:
            return dataclasses.replace(self, config=check_values(m.config, self.config), preset=None)
        if self.resume:
            return self
        cfg, loop = new_run_configs(self.method, preset=self.preset, config=self.config, loop=self.loop)
        return dataclasses.replace(self, config=asdict(cfg), loop=asdict(loop), preset=None)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "JobRequest":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def write_spec(run: RunFolder, spec: JobRequest) -> None:
    run.path.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run.path / "job.json", {**asdict(spec), "queued_at": time.time()})


def read_spec(run: RunFolder) -> JobRequest:
    data, problem = read_json_file(run.path / "job.json", JOB_SHAPE)
    if problem or not data.get("method"):
        raise UserError(f"Run {run.name!r} has no job to run: its job.json is "
                        f"{'damaged (' + problem + ')' if problem else 'missing'}.")
    return JobRequest.from_json(data)


def with_data_preset(ws: Workspace, spec: JobRequest) -> tuple[JobRequest, str]:
    """A new training run that names no preset takes the one its method picks for its dataset's images, if any
    (studio.methods.Method.preset_for_data); returns the spec and why, in a sentence ("" when nothing was picked)."""
    from studio.data.dataset import Dataset
    from studio.methods import method

    m = method(spec.method)
    if spec.resume or spec.preset or not spec.dataset or m.preset_for_data is None:
        return spec, ""
    given = {k: v for k, v in spec.config.items() if v is not None}
    picked = m.preset_for_data(Dataset.open(ws, spec.dataset), given)
    return (dataclasses.replace(spec, preset=picked[0]), picked[1]) if picked else (spec, "")


def check_before_queueing(ws: Workspace, spec: JobRequest) -> JobRequest:
    """The resolved spec of a new job, or a UserError now rather than minutes later in a process: bad values, an
    empty dataset, missing weights (the method's own check)."""
    from studio.data.dataset import Dataset
    from studio.methods import method

    m = method(spec.method)
    if m.trains:
        if not spec.dataset:
            raise UserError("Choose a dataset to train on (make one in the Dataset tab).")
        if not Dataset.open(ws, spec.dataset).images:
            raise UserError(f"Dataset {spec.dataset!r} is empty: add images in the Dataset tab first.")
    spec = spec.resolved()
    if not m.trains:
        m.config(**spec.config)  # the config's own checks (a prompt, a run A) in their own words
    if m.check:
        m.check(ws, spec)
    return spec


def execute(ws: Workspace, spec: JobRequest, *, should_stop: Callable[[], bool] = lambda: False,
            on_progress: Callable | None = None, on_start: Callable[[int], None] | None = None,
            max_steps: int | None = None, deadline: float | None = None, owner_pid: int | None = None,
            continuing: bool = False, restart: bool = False) -> str:
    """Run a job's spec in this process; returns the state its run ends in (finished, stopped, failed; "running"
    when a chunk ended and the run goes on). The hooks and chunk bounds are studio.train.run_training's."""
    from studio.methods import method
    from studio.train import run_training, training_configs

    m = method(spec.method)
    if not m.trains:
        return m.run(ws, spec, should_stop=should_stop, on_progress=on_progress)
    cfg, loop = training_configs(ws, spec.method, spec.run, resume_run=spec.resume, preset=spec.preset,
                                 config=spec.config, loop=spec.loop)
    return run_training(ws, method=spec.method, run_name=spec.run, dataset=spec.dataset,
                        cfg=cfg, loop=loop, device=spec.device, resume_run=spec.resume, should_stop=should_stop,
                        on_progress=on_progress, on_start=on_start, max_steps=max_steps, deadline=deadline,
                        owner_pid=owner_pid, continuing=continuing, restart=restart)
