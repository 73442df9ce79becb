"""A run is a folder: the one interface between a trainer and everything that watches it.

    runs/<name>/config.json        what to reproduce or resume (method, dataset fingerprint, hyperparameters)
    runs/<name>/status.json        state, step, ETA, error
    runs/<name>/metrics.jsonl      one line per logged step
    runs/<name>/samples/step_000000.png …   preview grids from a fixed seed
    runs/<name>/checkpoints/latest.safetensors (+ latest.json), previous.safetensors (+ .json)
    runs/<name>/log.txt

Checkpoints are safetensors (never pickles): tensors under prefixes ("model/", "optim/<name>/",
"rng/") and the JSON metadata both in the file's header and, for people and the UI, beside it.
"""

from __future__ import annotations

import json
import os
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


@dataclass
class Checkpoint:
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]

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

    # -- config and status -------------------------------------------------------------
    def write_config(self, config: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path / "config.json", config)

    def read_config(self) -> dict:
        try:
            return json.loads((self.path / "config.json").read_text())
        except FileNotFoundError:
            raise UserError(f"There is no run named {self.name!r}.") from None

    def write_status(self, state: str, **fields: Any) -> dict:
        assert state in STATES, state
        status = {**self.read_status(), **fields, "state": state, "updated": time.time(), "pid": self.pid or os.getpid()}
        write_json_atomic(self.path / "status.json", status)
        return status

    def read_status(self) -> dict:
        try:
            return json.loads((self.path / "status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    # -- metrics and log ------------------------------------------------------------------
    def append_metrics(self, row: dict) -> None:
        with (self.path / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")

    def read_metrics(self) -> list[dict]:
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
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
        tmp = _write_safetensors(self.checkpoints_dir / ".latest.safetensors.tmp", tensors, meta)
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
        os.replace(_write_safetensors(self.snapshots_dir / f".{path.name}.tmp", tensors, {**meta, "step": step}), path)
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

    def has_checkpoint(self) -> bool:
        return any((self.checkpoints_dir / f"{n}.safetensors").exists() for n in ("latest", "previous"))

    def load_checkpoint(self) -> Checkpoint:
        """The newest readable checkpoint: `latest`, else `previous` when latest is damaged."""
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
                self.log(f"warning: {problems[0]}; resuming from {path.name}")
            return ckpt
        detail = f": {'; '.join(problems)}" if problems else ""
        raise UserError(f"Run {self.name!r} has no usable checkpoint{detail}; start it again without --resume.")


def _write_safetensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Tensors with `meta` as JSON in the header, synced to disk (callers rename it into place).

    A failed write (a full disk) removes its partial file and says so; what was saved before stays as it was."""
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path), metadata={"meta": json.dumps(meta)})
        with path.open("rb") as f:
            os.fsync(f.fileno())
    except (OSError, SafetensorError) as exc:
        path.unlink(missing_ok=True)
        raise UserError(f"Could not write {path.name.strip('.').removesuffix('.tmp')} ({exc}): free some disk space, "
                        "then Continue; the checkpoint saved before this one is intact.") from None
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
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "/"):
            index, key = name[len(prefix) + 1:].split("/", 1)
            state.setdefault(int(index), {})[key] = value
    state_dict["state"] = state
    opt.load_state_dict(state_dict)
