"""`python -m studio train bsa` and `sample` end to end with the tiny BigGAN: run folder, stop by signal, resume, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from studio.cli import main
from studio.run import RunFolder

TINY = ["--model", "tiny", "--perceptual", "tiny"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ws")
    assert main(["--workspace", str(root), "dataset", "demo", "demo16", "--per-class", "6", "--size", "64"]) == 0
    manifest = json.loads((root / "datasets" / "demo16" / "dataset.json").read_text())
    ids = [img["id"] for img in manifest["images"]][-2:]
    assert main(["--workspace", str(root), "dataset", "remove", "demo16", *ids]) == 0  # 16 images, 3 classes
    return root


def cli(ws: Path, *argv: str) -> int:
    return main(["--workspace", str(ws), *argv])


def test_train_writes_the_run_folder_and_the_loss_falls(ws):
    assert cli(ws, "train", "bsa", "--dataset", "demo16", "--run", "t1", *TINY, "--iters", "60",
               "--sample-every", "20", "--checkpoint-every", "30", "--batch", "8", "--adapt", "scale-shift") == 0
    run = RunFolder(ws / "runs" / "t1")
    config = run.read_config()
    assert config["method"] == "bsa" and config["dataset"] == "demo16" and config["config"]["model"] == "tiny"
    metrics = run.read_metrics()
    assert [m["step"] for m in metrics] == list(range(1, 61))
    l1 = [m["l1"] for m in metrics]
    assert sum(l1[-10:]) / 10 < sum(l1[:10]) / 10
    assert [p.name for p in run.sample_paths()] == [f"step_{s:06d}.png" for s in (0, 20, 40, 60)]
    assert run.read_status()["state"] == "finished"
    meta = json.loads((run.checkpoints_dir / "latest.json").read_text())
    assert meta["classes"] == ["abstract", "geometric", "islamic"] and meta["n_images"] == 16
    # Only what was trained (plus its Adam moments): far smaller than the frozen base model.
    adapter_bytes = 4 * meta["trainable_parameters"]
    assert (run.checkpoints_dir / "latest.safetensors").stat().st_size < 3 * adapter_bytes + 50_000
    assert 3 * adapter_bytes < 4 * 1_045_733 / 10


def test_sample_grid_folder_class_interpolation_and_reconstruction(ws, tmp_path, capsys):
    assert cli(ws, "sample", "--run", "t1", "--out", str(tmp_path / "grid.png"), "--n", "9", "--seed", "3") == 0
    grid = Image.open(tmp_path / "grid.png")
    assert grid.size == (3 * 32 + 4 * 2, 3 * 32 + 4 * 2)
    assert cli(ws, "sample", "--run", "t1", "--out", str(tmp_path / "grid2.png"), "--n", "9", "--seed", "3") == 0
    assert (tmp_path / "grid.png").read_bytes() == (tmp_path / "grid2.png").read_bytes()  # same seed, same images
    assert cli(ws, "sample", "--run", "t1", "--out", f"{tmp_path}/each/", "--n", "3", "--class", "islamic") == 0
    assert sorted(p.name for p in (tmp_path / "each").iterdir()) == ["000.png", "001.png", "002.png"]
    assert cli(ws, "sample", "--run", "t1", "--out", str(tmp_path / "lerp.png"), "--interpolate", "0", "15", "--frames", "5") == 0
    assert Image.open(tmp_path / "lerp.png").size[0] == 5 * 32 + 6 * 2
    assert cli(ws, "sample", "--run", "t1", "--out", str(tmp_path / "rec.png"), "--reconstruct", "--n", "4") == 0
    capsys.readouterr()
    assert cli(ws, "sample", "--run", "t1", "--out", str(tmp_path / "x.png"), "--class", "cubism") == 2
    assert "no class 'cubism'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "nope", "--run", "e1"], "There is no dataset named 'nope'"),
    (["--dataset", "demo16", "--run", "t1"], "Run 't1' already exists"),
    (["--dataset", "demo16", "--run", "e2", "--adapt", "sideways"], "What adapts (adapt) must be one of auto, hyper-bn, scale-shift, not 'sideways'."),
    (["--dataset", "demo16", "--run", "e3", "--device", "cuda"], "--device cuda"),
    (["--run", "t1", "--resume", "--lr", "0.1"], "run 't1' has --lr 0.05, not 0.1 (leave --lr out"),
    (["--run", "../x", "--dataset", "demo16"], "Run name '../x' is not allowed"),
])
def test_bad_input_is_one_sentence_and_exit_2(ws, capsys, argv, message):
    if "cuda" in argv and __import__("torch").cuda.is_available():
        pytest.skip("this machine has a GPU")
    capsys.readouterr()
    model = [] if "--resume" in argv else TINY
    assert cli(ws, "train", "bsa", *argv, *model, "--iters", "2") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_resume_repeating_the_runs_own_flags_is_accepted(ws, capsys):
    """The command that started a run, with --resume added, continues it: a value that is the run's own is no change."""
    first = ["--dataset", "demo16", "--run", "t1", *TINY, "--batch", "8", "--adapt", "scale-shift"]
    assert cli(ws, "train", "bsa", *first, "--resume", "--iters", "62") == 0
    assert RunFolder(ws / "runs" / "t1").read_status()["step"] == 62
    capsys.readouterr()
    assert cli(ws, "train", "bsa", *first, "--adapt", "hyper-bn", "--resume", "--iters", "64") == 2
    err = capsys.readouterr().err
    assert "run 't1' has --adapt 'scale-shift', not 'hyper-bn'" in err and "Traceback" not in err


def test_json_into_a_pipe_closed_early_ends_quietly(ws):
    """`… --json | head`: the reader goes away; no BrokenPipeError traceback (nor 'Exception ignored') follows."""
    cmd = [sys.executable, "-m", "studio", "--workspace", str(ws), "dataset", "show", "demo16", "--json"]
    proc = subprocess.Popen(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the command has printed anything: every write meets a closed pipe
    err = proc.communicate(timeout=120)[1].decode()
    assert "BrokenPipeError" not in err and "Traceback" not in err and "Exception ignored" not in err, err
    assert proc.returncode == 1


def test_missing_weights_offline_names_the_files_and_leaves_no_run(ws, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    capsys.readouterr()
    assert cli(ws, "train", "bsa", "--dataset", "demo16", "--run", "needs-weights", "--model", "biggan-deep-256",
               "--perceptual", "none") == 2
    err = capsys.readouterr().err
    assert "config.json" in err and "pytorch_model.bin" in err and "checkpoints/biggan-deep-256" in err
    assert not (ws / "runs" / "needs-weights").exists()


def test_too_few_images(ws, tmp_path, capsys):
    from conftest import noise_image

    noise_image(80, 80, seed=1).save(tmp_path / "one.png")
    assert cli(ws, "dataset", "import", "single", str(tmp_path / "one.png")) == 0
    capsys.readouterr()
    assert cli(ws, "train", "bsa", "--dataset", "single", "--run", "few", *TINY) == 2
    assert "at least 2 images" in capsys.readouterr().err


def test_sigterm_stops_with_a_checkpoint_and_resume_continues_the_same_curve(ws):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "studio", "--workspace", str(ws), "train", "bsa", "--dataset", "demo16", "--run", "sig",
           *TINY, "--iters", "100000", "--checkpoint-every", "1000"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = RunFolder(ws / "runs" / "sig")
    deadline = time.time() + 120
    while run.read_status().get("step", 0) < 5:
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    status = run.read_status()
    assert status["state"] == "stopped" and "stopped at step" in out
    stopped_at = status["step"]
    assert json.loads((run.checkpoints_dir / "latest.json").read_text())["step"] == stopped_at
    assert run.sample_path(stopped_at).exists()

    assert cli(ws, "train", "bsa", "--run", "sig", "--resume", "--iters", str(stopped_at + 5)) == 0
    assert [m["step"] for m in run.read_metrics()] == list(range(1, stopped_at + 6))
    assert run.read_status()["state"] == "finished"
