"""ZeroGPU: detection, the optional `spaces.GPU` decorator, and training in chunks that equals one uninterrupted run.

No GPU and no `spaces` here: a stand-in `spaces` module records what ZeroGPU would be asked for.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys
import types

import pytest
import torch

import studio.zerogpu as zerogpu
from studio.data.dataset import create_demo_dataset
from studio.run import RunFolder
from studio.train import run_training, training_configs

SMALL = {"g_ch": 8, "d_ch": 8, "batch": 8, "resolution": 32}


@pytest.fixture
def ws(workspace):
    create_demo_dataset(workspace, "art", per_class=4, size=64)
    return workspace


def _request(run: str, iters: int = 10, **extra) -> dict:
    return {"method": "cgan", "run": run, "dataset": "art", "resume": False, "config": dict(SMALL), "device": "cpu",
            "loop": {"iters": iters, "sample_every": 4, "checkpoint_every": 4}, **extra}


def _straight(ws, request: dict) -> RunFolder:
    """The same request as one uninterrupted run, as the CLI would train it."""
    cfg, loop = training_configs(ws, "cgan", request["run"], config=request["config"], loop=request["loop"])
    assert run_training(ws, method="cgan", run_name=request["run"], dataset="art", cfg=cfg, loop=loop, device="cpu") == "finished"
    return RunFolder(ws.run_dir(request["run"]))


def _losses(run: RunFolder) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time"} for row in run.read_metrics()]


def _latest_step(run: RunFolder) -> int:
    return json.loads((run.checkpoints_dir / "latest.json").read_text())["step"]


class FakeSpaces(types.ModuleType):
    """Stands in for the `spaces` package on ZeroGPU: GPU(duration=…) records each call and the seconds asked for."""

    def __init__(self):
        super().__init__("spaces")
        self.calls: list[tuple[str, float]] = []
        self.wrappers: list = []

    def GPU(self, task=None, *, duration=None, size=None):  # noqa: N802 (the package's name)
        def decorate(fn):
            @functools.wraps(fn)  # as spaces does: gradio still sees the handler's own parameters
            def on_gpu(*args, **kwargs):
                seconds = duration(*args, **kwargs) if callable(duration) else duration
                self.calls.append((fn.__name__, seconds))
                return fn(*args, **kwargs)
            self.wrappers.append(on_gpu)
            return on_gpu
        return decorate


@pytest.fixture
def zero_gpu(monkeypatch):
    """ZeroGPU as far as the studio can tell: the variable set, `spaces` importable, zerogpu re-imported under both."""
    fake = FakeSpaces()
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    importlib.reload(zerogpu)
    yield fake
    monkeypatch.undo()
    importlib.reload(zerogpu)  # later tests get the plain functions again


def test_detect_reads_the_space_and_zero_gpu_variables(monkeypatch):
    assert zerogpu.detect({}) == zerogpu.Environment(space_id=None, zero_gpu=False)
    env = zerogpu.detect({"SPACE_ID": "someone/artgan-studio", "SPACES_ZERO_GPU": "true"})
    assert env.on_space and env.zero_gpu and env.space_id == "someone/artgan-studio"
    for value, on in (("1", True), ("True", True), ("t", True), ("0", False), ("false", False), ("", False)):
        assert zerogpu.detect({"SPACES_ZERO_GPU": value}).zero_gpu is on, value
    assert not zerogpu.detect({"SPACES_ZERO_GPU": "true"}).on_space  # ZeroGPU's variable alone is not a Space
    monkeypatch.setenv("SPACE_ID", "a/b")
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert zerogpu.detect() == zerogpu.Environment(space_id="a/b", zero_gpu=False)


def test_gpu_is_the_function_itself_off_zero_gpu(monkeypatch):
    def f(x):
        return x + 1

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    monkeypatch.setitem(sys.modules, "spaces", FakeSpaces())  # installed, but not on ZeroGPU
    assert zerogpu.gpu(duration=5)(f) is f
    monkeypatch.setenv("SPACES_ZERO_GPU", "1")
    monkeypatch.setitem(sys.modules, "spaces", None)  # on ZeroGPU without the package: `import spaces` fails
    assert zerogpu.gpu(duration=5)(f) is f
    assert zerogpu.train_chunk.__module__ == "studio.zerogpu" and zerogpu.train_chunk.__name__ == "train_chunk"


def test_on_zero_gpu_the_decorated_function_is_called_with_its_duration(zero_gpu):
    wrapped = zerogpu.gpu(duration=lambda x, *, y=1: 10 * x + y)(lambda x, *, y=1: x * y)
    assert wrapped(3, y=2) == 6
    assert zero_gpu.calls == [("<lambda>", 32)]
    assert zerogpu.train_chunk in zero_gpu.wrappers and zerogpu.blend in zero_gpu.wrappers  # made at import


def test_on_zero_gpu_generate_and_evaluate_run_inside_gpu_calls(zero_gpu, workspace):
    import gradio as gr

    from studio.jobs import JobManager
    from studio.ui import generate_tab
    from studio.ui.session import Sessions

    sessions = Sessions(workspace, JobManager(workspace, background=False))
    with gr.Blocks() as demo:
        sessions.render(demo)
        generate_tab.render(sessions, dev=True)
    gpu = [fn.fn for fn in demo.fns.values() if fn.concurrency_id == "gpu"]
    assert len(gpu) == 5 and all(fn in zero_gpu.wrappers for fn in gpu)  # generate, GIF, compare, evaluate ×2


def test_chunk_seconds_are_clamped_and_overridable(monkeypatch):
    monkeypatch.delenv(zerogpu.MAX_SECONDS_ENV, raising=False)
    assert zerogpu.chunk_seconds(None, 200) == 120  # unknown speed: the most a call may take
    assert zerogpu.chunk_seconds(1000.0, 10, load_s=0) == zerogpu.SAVE_SECONDS + 1  # never less than saving needs
    assert zerogpu.chunk_seconds(0.5, 10_000) == 120
    fast = zerogpu.chunk_seconds(10.0, 100, load_s=5)
    assert fast == pytest.approx(5 + zerogpu.SAVE_SECONDS + zerogpu.MARGIN * 10)
    monkeypatch.setenv(zerogpu.MAX_SECONDS_ENV, "300")
    assert zerogpu.chunk_seconds(None, 200) == 300
    monkeypatch.setenv(zerogpu.MAX_SECONDS_ENV, "soon")
    with pytest.raises(Exception, match="STUDIO_ZEROGPU_MAX_S must be a number"):
        zerogpu.call_limit_s()


def test_chunks_of_three_equal_one_uninterrupted_run(ws, zero_gpu, monkeypatch):
    straight = _straight(ws, _request("straight"))
    real_chunk, seen = zerogpu.train_chunk, []
    # Chunks here must end on their step counts: at the shipped 1.25× margin a busy machine that slows a chunk's steps
    # ends it a step early (as designed; test_a_chunk_ends_early_when_its_gpu_time_runs_out covers that).
    monkeypatch.setattr(zerogpu, "MARGIN", 20.0)

    def recording_chunk(*args, **kwargs):
        result = real_chunk(*args, **kwargs)
        run = RunFolder(ws.run_dir("chunked"))
        seen.append((result["state"], result["step"], _latest_step(run), run.read_status()))
        return result

    monkeypatch.setattr(zerogpu, "train_chunk", recording_chunk)
    assert zerogpu.run_in_chunks(ws, _request("chunked"), chunk_steps=3) == "finished"

    assert [(state, step, ckpt) for state, step, ckpt, _ in seen] == [
        ("running", 3, 3), ("running", 6, 6), ("running", 9, 9), ("finished", 10, 10)]
    for state, _, _, status in seen[:3]:  # between chunks: still under way, owned by this (the app's) process
        assert status["state"] == "running" and status["between_chunks"] is True and status["pid"] == os.getpid()
    run = RunFolder(ws.run_dir("chunked"))
    final = run.read_status()
    assert final["state"] == "finished" and final["step"] == 10 and final["between_chunks"] is False
    assert [row["step"] for row in run.read_metrics()] == list(range(1, 11))
    assert _losses(run) == _losses(straight)  # bit-exact: the loop's resume restores every state and RNG
    assert [p.name for p in run.sample_paths()] == [p.name for p in straight.sample_paths()]
    assert run.snapshot_steps() == straight.snapshot_steps() == [4, 8, 10]  # none at a chunk's end
    a, b = straight.load_checkpoint().section("g_ema"), run.load_checkpoint().section("g_ema")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    durations = [seconds for name, seconds in zero_gpu.calls if name == "train_chunk"]
    assert len(durations) == 4
    assert durations[0] == 120  # nothing measured yet: the most a call may take
    assert all(zerogpu.SAVE_SECONDS < d <= 120 for d in durations[1:]) and durations[-1] < 120  # then what the steps need


@pytest.mark.parametrize("how", ["should_stop", "stop_file"])
def test_a_stop_between_chunks_keeps_the_checkpoint_and_continue_finishes_the_same_run(ws, monkeypatch, how):
    straight = _straight(ws, _request("straight"))
    real_chunk, chunks = zerogpu.train_chunk, []

    def recording_chunk(*args, **kwargs):
        result = real_chunk(*args, **kwargs)
        chunks.append(kwargs.get("first"))
        if how == "stop_file":
            RunFolder(ws.run_dir("r")).stop_file.touch()  # as JobManager.stop asks, right after the chunk ended
        return result

    monkeypatch.setattr(zerogpu, "train_chunk", recording_chunk)
    should_stop = (lambda: len(chunks) >= 1) if how == "should_stop" else (lambda: False)
    assert zerogpu.run_in_chunks(ws, _request("r"), chunk_steps=3, should_stop=should_stop) == "stopped"
    run = RunFolder(ws.run_dir("r"))
    status = run.read_status()
    assert chunks == [True]
    assert status["state"] == "stopped" and status["step"] == 3 and status["between_chunks"] is False
    assert _latest_step(run) == 3 and "between GPU chunks" in run.log_tail(1)[0]

    monkeypatch.setattr(zerogpu, "train_chunk", real_chunk)
    continued = _request("r", resume=True, config={})
    assert zerogpu.run_in_chunks(ws, continued, chunk_steps=4) == "finished"  # a new job: an old STOP does not end it
    assert [row["step"] for row in run.read_metrics()] == list(range(1, 11))
    assert _losses(run) == _losses(straight)


def test_a_chunk_ends_early_when_its_gpu_time_runs_out(ws):
    result = zerogpu.train_chunk(str(ws.root), _request("r", iters=50), 40, budget_s=zerogpu.SAVE_SECONDS + 0.001)
    run = RunFolder(ws.run_dir("r"))
    assert result["state"] == "running" and result["step"] == 1  # at least one step, then the checkpoint
    assert result["load_s"] >= 0 and _latest_step(run) == 1
    status = run.read_status()
    assert status["state"] == "running" and status["between_chunks"] and status["it_per_s"] > 0


def test_failures_are_one_sentence_in_the_result_and_in_status(ws, monkeypatch):
    bad = _request("bad", config={**SMALL, "transfer_from": "no-such-run"})
    ws.run_dir("bad").mkdir()  # as JobManager.submit makes it
    assert zerogpu.run_in_chunks(ws, bad, chunk_steps=3) == "failed"
    status = RunFolder(ws.run_dir("bad")).read_status()
    assert status["state"] == "failed" and "no-such-run" in status["error"]

    class GradioError(Exception):  # what spaces raises when the GPU call itself fails
        def __init__(self, message):
            super().__init__(message)
            self.message = message

    real_chunk, calls = zerogpu.train_chunk, []

    def aborted_second_time(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise GradioError("GPU task aborted")
        return real_chunk(*args, **kwargs)

    monkeypatch.setattr(zerogpu, "train_chunk", aborted_second_time)
    assert zerogpu.run_in_chunks(ws, _request("cut"), chunk_steps=3) == "failed"
    run = RunFolder(ws.run_dir("cut"))
    status = run.read_status()
    assert status["state"] == "failed" and status["error"] == (
        "The GPU call ended at step 3: GPU task aborted; Continue resumes from the last checkpoint.")
    assert _latest_step(run) == 3


def test_a_blend_runs_in_one_gpu_call_within_its_time(ws, zero_gpu, tmp_path):
    run_training(ws, method="cgan", run_name="src", dataset="art", device="cpu",
                 cfg=training_configs(ws, "cgan", "src", config=SMALL)[0],
                 loop=training_configs(ws, "cgan", "src", loop={"iters": 2, "checkpoint_every": 2})[1])
    out = tmp_path / "blend.png"
    request = {"method": "blend", "run": "b1", "device": "cpu",
               "config": {"a": "src", "prompt": "a red circle", "clip": "tiny", "steps": 3, "cutouts": 4, "seed": 0,
                          "compare": False, "out": str(out)}}
    report = zerogpu.run_blend_job(ws, request)
    assert report["state"] == "finished" and len(report["scores"]) == 3 and out.exists()
    assert RunFolder(ws.run_dir("b1")).read_status()["state"] == "finished"
    [(name, seconds)] = zero_gpu.calls
    assert name == "blend" and zerogpu.SAVE_SECONDS < seconds <= 120
    assert seconds < zerogpu.blend_seconds({**request["config"], "steps": 300})  # more steps, more time

    ws.run_dir("b2").mkdir()  # as JobManager.submit makes it
    failed = zerogpu.run_blend_job(ws, {**request, "run": "b2", "config": {**request["config"], "a": "missing"}})
    assert failed["state"] == "failed" and "missing" in failed["error"]
    assert RunFolder(ws.run_dir("b2")).read_status()["state"] == "failed"


def test_should_stop_during_a_chunk_stops_it_after_the_current_step(ws):
    request = _request("long", iters=100_000)
    request["loop"]["sample_every"] = 100_000
    run = RunFolder(ws.run_dir("long"))
    # Asked once steps are logged: a stop asked before the first step (a slow start on a busy machine) rightly ends at 0.
    training = lambda: (run.path / "metrics.jsonl").exists()  # noqa: E731
    assert zerogpu.run_in_chunks(ws, request, chunk_steps=100_000, should_stop=training) == "stopped"
    status = run.read_status()
    assert status["state"] == "stopped" and 0 < status["step"] < 100_000 and not status["between_chunks"]
    assert _latest_step(run) == status["step"] and run.sample_path(status["step"]).exists()
