"""A bounded loopback load test: several clients use Generate at once while a training job runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from studio.data.dataset import create_demo_dataset
from studio.workspace import Workspace

from conftest import running_app

CLASSES = ["abstract", "geometric", "islamic"]


def test_six_clients_generate_while_a_job_trains(tmp_path):
    """Every request answers with its own seed, first queued is first served (one GPU task at a time), the job
    keeps training, and the app's memory stays bounded."""
    from gradio_client import Client

    ws = Workspace.resolve(tmp_path / "ws")
    create_demo_dataset(ws, "demo", per_class=6, size=64)
    cli = [sys.executable, "-m", "studio", "--workspace", str(ws.root), "train", "cgan", "--dataset", "demo",
           "--g-ch", "8", "--d-ch", "8", "--batch", "8", "--device", "cpu"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    subprocess.run([*cli, "--run", "model", "--iters", "4"], check=True, env=env, capture_output=True)
    with running_app(ws.root) as (url, app):
        busy = subprocess.Popen([*cli, "--run", "busy", "--iters", "100000"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            client = Client(url, verbose=False, download_files=False)  # the server's work, not 1,152 downloads one by one
            client.predict("run:model", api_name="/on_source")  # as picking the run does: the classes to choose from
            client.predict("run:model", CLASSES, 0, 4, 1.0, api_name="/on_generate")  # loads the model once
            before = _rss_mb(app.pid)
            jobs = []
            for i in range(6):  # each one in the server's queue before the next is sent: a known arrival order
                jobs.append(client.submit("run:model", CLASSES, i, 64, 1.0, api_name="/on_generate"))
                while jobs[-1].status().code.name in ("STARTING", "JOINING_QUEUE"):
                    time.sleep(0.005)
            results = [job.result(timeout=120) for job in jobs]
            assert all(f"seed {i}" in r[-1] for i, r in enumerate(results))  # every request answered, with its own seed
            grids = sorted((ws.exports).glob("model-*-seed*-64x3-*.png"), key=lambda f: f.stat().st_mtime_ns)
            served = [int(f.name.split("-seed")[1].split("-")[0]) for f in grids]
            assert served == list(range(6)), served  # first queued, first served (written by the server, in order)
            assert _rss_mb(app.pid) - before < 300, (before, _rss_mb(app.pid))
            assert busy.poll() is None  # the job trained through it all
        finally:
            busy.terminate()
            busy.wait(timeout=60)


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("VmRSS")).split()[1]) / 1024
