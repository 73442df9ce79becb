"""A run is a folder: the one interface between a trainer and everything that watches it.

    runs/<name>/config.json        what to reproduce or resume (method, dataset fingerprint, hyperparameters)
    runs/<name>/status.json        state, step, ETA, error
    runs/<name>/metrics.jsonl      one line per logged step
    runs/<name>/samples/step_000000.png …   preview grids from a fixed seed
    runs/<name>/checkpoints/latest.safetensors (+ latest.json), previous.safetensors (+ .json)
    runs/<name>/log.txt
    runs/<name>/job.json, process.log, STOP     the job's spec, its process's output, a stop request
    runs/<name>/snapshots/step_000000.safetensors …   what sampling needs, at every checkpoint step
    runs/<name>/eval.json, eval/                    evaluation reports and their galleries
    runs/<name>/result/result.json, image.png, frames.png …   what a blend made (exports/ gets copies only)

Deleting the folder deletes everything the run made. Checkpoints are safetensors (never pickles): tensors under prefixes ("model/", "optim/<name>/",
"rng/") and the JSON metadata both in the file's header and, for people and the UI, beside it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from studio.errors import UserError
from studio.workspace import write_bytes_atomic, write_json_atomic

STATES = ("queued", "running", "stopping", "stopped", "finished", "failed")
CHECKPOINT_VERSION = 1
_NUMBER, _OPTIONAL_NUMBER = (int, float), (int, float, type(None))
# What readers rely on in each run file (other fields may exist); a file of another shape marks the run damaged.
CONFIG_SHAPE = {"method": str, "dataset": str, "config": dict, "loop": dict}
STATUS_SHAPE = {"state": str, "step": int, "total": (int, type(None)), "it_per_s": _OPTIONAL_NUMBER,
                "eta_s": _OPTIONAL_NUMBER, "error": (str, type(None)), "warning": (str, type(None)),
                "pid": (int, type(None)), "updated": _NUMBER, "started": _OPTIONAL_NUMBER,
                "method": (str, type(None)), "dataset": (str, type(None)), "between_chunks": bool}
RESULT_SHAPE = {"final_score": _NUMBER, "scores": list, "image": str, "frames": str, "prompt": str}


def shape_problem(data: Any, shape: dict[str, Any], file: str) -> str | None:
    """Why `data` (a run file's parsed JSON) is not of `shape`, in words; None when it is."""
    if not isinstance(data, dict):
        return f"{file} is not a JSON object"
    for key, types in shape.items():
        types = types if isinstance(types, tuple) else (types,)
        value = data.get(key)
        if key in data and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            return f"{file} has {key!r} of the wrong type ({type(value).__name__})"
    if file == "status.json" and data.get("state", "failed") not in STATES:
        return f"status.json has an unknown state {data['state']!r}"
    return None


def read_json_file(path: Path, shape: dict[str, Any]) -> tuple[dict, str | None]:
    """A run file's contents and None, or ({}, what is wrong with it); a missing file is ({}, None)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return {}, f"{path.name} is unreadable ({type(exc).__name__})"
    problem = shape_problem(data, shape, path.name)
    return ({}, problem) if problem else (data, None)


class FileLock:
    """An OS lock (flock) on one file, held from acquire() to release() or the process's end, whichever is first.

    The holder writes its pid, host and command into the file, so whoever is refused can be told who holds it.
    Another open of the same file conflicts even within this process, and the lock is not passed to programs
    this process starts (Python opens files non-inheritable)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, refusal: str) -> "FileLock":
        """Take the lock now or raise UserError(refusal with '{holder}' filled in); never waits."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(refusal.format(holder=self.holder_text())) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "cmd": _command()}).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)  # also for copies of this descriptor a fork made (a ZeroGPU worker)
            os.close(fd)

    def __enter__(self) -> "FileLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def held_by(self) -> str | None:
        """Who holds the lock (in words), or None when nobody does right now."""
        if not self.path.exists():
            return None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return self.holder_text()
        finally:
            os.close(fd)  # closing drops the probe's own lock
        return None

    def holder_text(self) -> str:
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        info = info if isinstance(info, dict) else {}
        who = f"process {info['pid']}" if isinstance(info.get("pid"), int) else "another process"
        if info.get("host") and info["host"] != socket.gethostname():
            who += f" on {info['host']}"
        return f"{who} ({info['cmd']})" if isinstance(info.get("cmd"), str) and info["cmd"] else who


def _command() -> str:
    """This process's command line for people: `python -m studio train …`, without the workspace's path."""
    argv = list(sys.argv) or ["python"]
    first = Path(argv[0])
    words = [f"python -m {first.parent.name}" if first.name == "__main__.py" else f"python {first.name}"]
    skip = False
    for arg in argv[1:]:
        if skip or arg.startswith("--workspace="):
            skip = False
            continue
        skip = arg == "--workspace"  # a shared studio's folders stay private
        if not skip:
            words.append(arg)
    text = " ".join(words)
    return text if len(text) <= 160 else text[:157] + "…"


@dataclass
class Checkpoint:
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]
    warning: str | None = None  # set when `latest` was damaged and this is `previous`

    def section(self, prefix: str) -> dict[str, torch.Tensor]:
        """The tensors saved under `prefix/`, with the prefix removed."""
        p = prefix.rstrip("/") + "/"
        return {k[len(p):]: v for k, v in self.tensors.items() if k.startswith(p)}


class RunFolder:
    """Reads and writes one run's folder; every write is atomic so a watcher never sees half a file."""

    def __init__(self, path: Path, *, pid: int | None = None):
        self.path = Path(path)
        # The process that owns the run, written into status.json; not always this one: a ZeroGPU worker
        # trains a chunk for the app's process, which goes on owning the run between chunks.
        self.pid = pid

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def samples_dir(self) -> Path:
        return self.path / "samples"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def stop_file(self) -> Path:
        return self.path / "STOP"

    def exists(self) -> bool:
        return (self.path / "config.json").exists()

    # -- one writer at a time ------------------------------------------------------------
    @property
    def lock_file(self) -> Path:
        """Beside the folder, not in it: deleting or restarting the run keeps the lock that guards it."""
        return self.path.parent / f".{self.name}.lock"

    def lock(self) -> FileLock:
        """Own the run (train, blend, restart or delete it) until release(); refused while another process does."""
        return FileLock(self.lock_file).acquire(
            f"Run {self.name!r} is in use by {{holder}}: wait for it to end, or stop it, then try again.")

    def held_by(self) -> str | None:
        """Who owns the run right now (in words), or None."""
        return FileLock(self.lock_file).held_by()

    # -- config and status -------------------------------------------------------------
    def write_config(self, config: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path / "config.json", config)

    def read_config(self) -> dict:
        config, problem = read_json_file(self.path / "config.json", CONFIG_SHAPE)
        if problem:
            raise UserError(f"Run {self.name!r} is damaged ({problem}): delete it (python -m studio run delete "
                            f"{self.name}, or Delete in the Train tab) or start it over with --restart.")
        if not config:
            raise UserError(f"There is no run named {self.name!r}.")
        return config

    def write_status(self, state: str, **fields: Any) -> dict:
        assert state in STATES, state
        status = {**self.read_status(), **fields, "state": state, "updated": time.time(), "pid": self.pid or os.getpid()}
        write_json_atomic(self.path / "status.json", status)
        return status

    def read_status(self) -> dict:
        """status.json, or {} when it is missing or damaged (JobManager.view says what is wrong with it)."""
        return read_json_file(self.path / "status.json", STATUS_SHAPE)[0]

    # -- metrics and log ------------------------------------------------------------------
    def append_metrics(self, row: dict) -> None:
        with (self.path / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")

    def read_metrics(self) -> list[dict]:
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        rows = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            if isinstance(row, dict) and isinstance(row.get("step"), int):
                rows.append(row)
        return rows

    def truncate_metrics(self, after_step: int) -> None:
        """On resume, drop what was logged after the checkpoint, so the curve has no repeated steps."""
        rows = [r for r in self.read_metrics() if r.get("step", -1) <= after_step]
        write_bytes_atomic(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())

    def log(self, message: str) -> None:
        with (self.path / "log.txt").open("a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def log_tail(self, lines: int = 20) -> list[str]:
        path = self.path / "log.txt"
        return path.read_text().splitlines()[-lines:] if path.exists() else []

    # -- samples ---------------------------------------------------------------------------
    def sample_path(self, step: int) -> Path:
        return self.samples_dir / f"step_{step:06d}.png"

    def sample_paths(self) -> list[Path]:
        return sorted(self.samples_dir.glob("step_*.png")) if self.samples_dir.exists() else []

    # -- checkpoints -----------------------------------------------------------------------
    def save_checkpoint(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
        """Write `latest`, keeping the one before as `previous`; the old file stays valid until the new one is complete."""
        self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        meta = {**meta, "version": CHECKPOINT_VERSION, "saved": time.time()}
        latest = self.checkpoints_dir / "latest.safetensors"
        tmp = _write_safetensors(latest, tensors, meta)
        if latest.exists():
            os.replace(latest, self.checkpoints_dir / "previous.safetensors")
            if (self.checkpoints_dir / "latest.json").exists():
                os.replace(self.checkpoints_dir / "latest.json", self.checkpoints_dir / "previous.json")
        os.replace(tmp, latest)
        write_json_atomic(self.checkpoints_dir / "latest.json", meta)
        return latest

    # -- snapshots: what sampling needs, kept at every checkpoint step, to evaluate the run over time ----
    @property
    def snapshots_dir(self) -> Path:
        return self.path / "snapshots"

    def save_snapshot(self, step: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
        self.snapshots_dir.mkdir(parents=True, exist_ok=True)
        path = self.snapshots_dir / f"step_{step:06d}.safetensors"
        os.replace(_write_safetensors(path, tensors, {**meta, "step": step}), path)
        return path

    def snapshot_steps(self) -> list[int]:
        return sorted(int(p.stem.split("_")[1]) for p in self.snapshots_dir.glob("step_*.safetensors")) \
            if self.snapshots_dir.exists() else []

    def load_snapshot(self, step: int) -> Checkpoint:
        path = self.snapshots_dir / f"step_{step:06d}.safetensors"
        try:
            return _read_safetensors(path)
        except (SafetensorError, OSError, ValueError, KeyError) as exc:
            raise UserError(f"Run {self.name!r} has no readable snapshot at step {step} ({exc}).") from None

    def truncate_snapshots(self, after_step: int) -> None:
        for step in self.snapshot_steps():
            if step > after_step:
                (self.snapshots_dir / f"step_{step:06d}.safetensors").unlink()

    def remove_temp_files(self) -> None:
        """What a writer killed mid-save left behind (call it only while owning the run)."""
        for folder in (self.checkpoints_dir, self.snapshots_dir):
            for tmp in folder.glob(".*.tmp") if folder.exists() else []:
                tmp.unlink(missing_ok=True)

    # -- a result (a blend's): made once at the end, kept with the run so deleting the run deletes it ----------
    @property
    def result_dir(self) -> Path:
        return self.path / "result"

    @property
    def result_path(self) -> Path:
        return self.result_dir / "result.json"

    def save_result_image(self, name: str, image) -> Path:
        """`image` (a PIL image) as result/<name>.png; returns its path."""
        import io

        self.result_dir.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        path = self.result_dir / f"{name}.png"
        write_bytes_atomic(path, buf.getvalue())
        return path

    def save_result(self, report: dict[str, Any]) -> None:
        """result.json, written last: once it is there, the result's images are too."""
        self.result_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.result_path, report)

    def read_result(self) -> dict[str, Any] | None:
        """result.json, or None before the run has a result."""
        result, problem = read_json_file(self.result_path, RESULT_SHAPE)
        if problem:
            raise UserError(f"Run {self.name!r} has a damaged result ({problem}): delete the run and make it again.")
        return result or None

    def has_checkpoint(self) -> bool:
        return any((self.checkpoints_dir / f"{n}.safetensors").exists() for n in ("latest", "previous"))

    def load_checkpoint(self) -> Checkpoint:
        """The newest readable checkpoint: `latest`, else `previous` when latest is damaged.

        A fallback is said in log.txt, on stderr and in the checkpoint's `warning` (train.resume puts it in status.json)."""
        problems = []
        for name in ("latest", "previous"):
            path = self.checkpoints_dir / f"{name}.safetensors"
            if not path.exists():
                continue
            try:
                ckpt = _read_safetensors(path)
            except (SafetensorError, OSError, ValueError, KeyError) as exc:
                problems.append(f"{path.name} is damaged ({exc})")
                continue
            if problems:
                ckpt.warning = (f"{problems[0]}, so it went on from the one before (step {ckpt.meta.get('step', '?')}); "
                                "the steps after that are trained again.")
                self.log(f"warning: {ckpt.warning}")
                print(f"warning: run {self.name!r}: {ckpt.warning}", file=sys.stderr, flush=True)
            return ckpt
        detail = f" ({'; '.join(problems)})" if problems else ""
        raise UserError(f"Run {self.name!r} has no usable checkpoint{detail}: start it over under its name with --restart, "
                        f"or delete it (python -m studio run delete {self.name}, or Delete in the Train tab).")


def _write_safetensors(final: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Tensors with `meta` as JSON in the header, synced to disk in a temporary file of this writer's own beside
    `final`; returns the temporary file (callers rename it into place).

    A failed write (a full disk) removes its partial file and says so; what was saved before stays as it was."""
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    os.close(fd)
    path = Path(name)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path), metadata={"meta": json.dumps(meta)})
        with path.open("rb") as f:
            os.fsync(f.fileno())
    except (OSError, SafetensorError) as exc:
        path.unlink(missing_ok=True)
        raise UserError(f"Could not write {final.name} ({exc}): free some disk space, "
                        "then Continue; the checkpoint saved before this one is intact.") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _read_safetensors(path: Path) -> Checkpoint:
    tensors = load_file(str(path))
    with open(path, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    return Checkpoint(tensors, json.loads(header["__metadata__"]["meta"]))


def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    """Flatten an optimiser's per-parameter state into named tensors (safetensors holds no nested dicts)."""
    out = {}
    for index, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            out[f"{prefix}/{index}/{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return out


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    state_dict = opt.state_dict()
    params = [p for group in opt.param_groups for p in group["params"]]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "/"):
            index, key = name[len(prefix) + 1:].split("/", 1)
            param = params[int(index)]
            if value.dim() > 0 and value.shape == param.shape:  # in its parameter's memory layout: a fused step needs it
                value = torch.empty_like(param, dtype=value.dtype).copy_(value)
            state.setdefault(int(index), {})[key] = value
    state_dict["state"] = state
    opt.load_state_dict(state_dict)
