"""Benchmark: does a training job keep its pace while the app answers Generate and Evaluate?

    python bench/contention.py [--window-s 30] [--requests 20] [--per-class 4] [--evaluate-every 4] [--out docs/contention.json]

Builds a demo workspace, trains a short demo cGAN run for the app to serve, starts `python app.py` on loopback
and a demo cGAN training job with the environment the app gives its job processes (studio.jobs.child_env), then
measures the job's steps/s over a window alone (the app idle: every core), over one with the app's busy file held
(its share of the cores, nothing else running), and over one while one gradio_client sends a stream of Generate
requests (and an Evaluate every few), bounded by --requests and by the window. "kept" is the last over the second:
what the app's work costs the job beyond the cores it takes back. Threads are whatever
studio.devices decides for each process; that rule is what this measures. Prints a table and writes JSON.
Wanted (issue 17): the job keeps >= 80% of its speed and Generate answers in under 2 s.

Not a test: the numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--window-s", type=float, default=30.0, help="seconds of each measurement window")
    p.add_argument("--warmup-steps", type=int, default=10, help="job steps before the first window")
    p.add_argument("--requests", type=int, default=20, help="at most this many requests under load")
    p.add_argument("--evaluate-every", type=int, default=4, help="every Nth request is an Evaluate (0: none)")
    p.add_argument("--per-class", type=int, default=4, help="images per class in each Generate (the tab's default)")
    p.add_argument("--out", type=Path, help="write the result here as JSON")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from studio import devices
    from studio.data.dataset import Dataset, create_demo_dataset
    from studio.jobs import child_env
    from studio.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="contention-") as tmp:
        ws = Workspace.resolve(Path(tmp) / "ws")
        create_demo_dataset(ws, "demo")
        os.environ[devices.BUSY_FILE] = str(ws.root / ".app-busy")  # as app.py names it, for the app and the job
        env = child_env(os.environ)
        train = [sys.executable, "-m", "studio", "--workspace", str(ws.root), "train", "cgan", "--dataset", "demo",
                 "--device", "cpu"]
        subprocess.run([*train, "--run", "model", "--iters", "20"], check=True, env=env, cwd=ROOT, capture_output=True)
        with _app(ws.root) as url, _job([*train, "--run", "busy", "--iters", "1000000"], env) as job:
            status = ws.run_dir("busy") / "status.json"
            _wait_for_step(status, args.warmup_steps, job)
            alone = _steps_per_s(status, args.window_s)
            busy = Path(os.environ[devices.BUSY_FILE])
            busy.touch()  # the app says it works, without working: the job's pace at its share
            at_share = _steps_per_s(status, args.window_s)
            busy.unlink()
            classes = sorted(Dataset.open(ws, "demo").counts())
            loaded, latencies = _under_requests(url, status, classes, args)
    result = {"cores": devices.available_cores(), "job_threads": env["OMP_NUM_THREADS"],
              "job_threads_while_app_works": env[devices.BUSY_THREADS],
              "app_threads": devices.app_threads(devices.available_cores()), "alone_steps_per_s": alone,
              "at_share_steps_per_s": at_share, "loaded_steps_per_s": loaded,
              "kept": loaded / at_share if at_share else None, "latencies_s": latencies}
    _print(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


@contextlib.contextmanager
def _app(workspace: Path):
    """`python app.py` on a free loopback port; yields its url, then stops it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port),
                             "--workspace", str(workspace)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/config", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise SystemExit("the app did not start")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@contextlib.contextmanager
def _job(argv: list[str], env: dict[str, str]):
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _step(status: Path) -> int:
    try:
        return int(json.loads(status.read_text()).get("step", 0))
    except (OSError, ValueError):
        return 0


def _wait_for_step(status: Path, step: int, job: subprocess.Popen, timeout_s: float = 300.0) -> None:
    deadline = time.time() + timeout_s
    while _step(status) < step:
        if job.poll() is not None or time.time() > deadline:
            raise SystemExit(f"the job did not reach step {step} (exit code {job.poll()})")
        time.sleep(0.2)


def _steps_per_s(status: Path, window_s: float) -> float:
    start, began = _step(status), time.perf_counter()
    time.sleep(window_s)
    return (_step(status) - start) / (time.perf_counter() - began)


def _under_requests(url: str, status: Path, names: list[str], args: argparse.Namespace) -> tuple[float, dict[str, list[float]]]:
    """The job's steps/s while one client sends requests back to back, bounded by count and by the window."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    source = "run:model"
    client.predict(source, api_name="/on_source")  # as picking the run does
    client.predict(source, names, 0, args.per_class, 0.5, api_name="/on_generate")  # loads the model, outside the window
    latencies: dict[str, list[float]] = {"generate": [], "evaluate": []}
    start, began = _step(status), time.perf_counter()
    for i in range(args.requests):
        if time.perf_counter() - began > args.window_s:
            break
        t = time.perf_counter()
        if args.evaluate_every and i % args.evaluate_every == args.evaluate_every - 1:
            client.predict(source, "judge", 20, i, api_name="/on_evaluate")
            latencies["evaluate"].append(time.perf_counter() - t)
        else:
            client.predict(source, names, i, args.per_class, 0.5, api_name="/on_generate")
            latencies["generate"].append(time.perf_counter() - t)
    return (_step(status) - start) / (time.perf_counter() - began), latencies


def _print(r: dict) -> None:
    gen, ev = r["latencies_s"]["generate"], r["latencies_s"]["evaluate"]
    print(f"cores {r['cores']}: job {r['job_threads']} threads ({r['job_threads_while_app_works']} while the app works), app {r['app_threads']}")
    print("| job alone steps/s (app idle) | at its share | under requests | kept (of its share) | Generate median / max s "
          "| Evaluate median s | requests |")
    print("|---|---|---|---|---|---|---|")
    kept = f"{r['kept']:.0%}" if r["kept"] is not None else "-"
    g = f"{statistics.median(gen):.2f} / {max(gen):.2f}" if gen else "-"
    e = f"{statistics.median(ev):.2f}" if ev else "-"
    print(f"| {r['alone_steps_per_s']:.2f} | {r['at_share_steps_per_s']:.2f} | {r['loaded_steps_per_s']:.2f} | {kept} | {g} "
          f"| {e} | {len(gen) + len(ev)} |")


if __name__ == "__main__":
    main()
