"""Benchmark: how long a person waits before the studio does anything: the app's start, a job's start, a first start.

    python bench/start_costs.py [--rounds 3] [--out bench/results/start_costs.json]

Each round measures, one after the other on a quiet machine:
- `app`: `python app.py` over a new workspace until it answers /config, the demo paintings already cached;
- `first start`: the same over an empty cache (a new machine: the app paints the demo before it answers);
- `job`: `python -m studio train cgan --dataset demo --iters 1` from the shell until it exits (one thread): a job's
  start, its first step, preview and checkpoint.
Prints the median and range of each and writes JSON. Processes as the studio starts them: the app with the threads
it gives itself, the job with OMP_NUM_THREADS=1 (what a job beside a watched page gets).

Not a test: the numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from conftest import running_app  # noqa: E402  (the browser tests' way to start the app)


def app_start(cache: Path) -> float:
    with tempfile.TemporaryDirectory() as d:
        started = time.perf_counter()
        with running_app(Path(d) / "ws", env={"STUDIO_CACHE": str(cache)}):
            return time.perf_counter() - started


def job_start(ws: Path, cache: Path, run: str) -> float:
    env = {**os.environ, "STUDIO_CACHE": str(cache), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "studio", "--workspace", str(ws), "train", "cgan", "--dataset", "demo",
                    "--run", run, "--iters", "1"], cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "start_costs.json")
    args = p.parse_args()

    times: dict[str, list[float]] = {"app": [], "first start": [], "job": []}
    with tempfile.TemporaryDirectory() as d:
        cache, ws = Path(d) / "cache", Path(d) / "ws"
        subprocess.run([sys.executable, "-m", "studio", "--workspace", str(ws), "dataset", "demo", "demo"], cwd=ROOT,
                       env={**os.environ, "STUDIO_CACHE": str(cache)}, check=True, capture_output=True)
        for round_ in range(args.rounds):
            times["app"].append(app_start(cache))
            with tempfile.TemporaryDirectory() as empty:
                times["first start"].append(app_start(Path(empty)))
            times["job"].append(job_start(ws, cache, f"start-{round_}"))
            print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), flush=True)
    summary = {k: {"median_s": round(statistics.median(v), 2), "min_s": round(min(v), 2), "max_s": round(max(v), 2)}
               for k, v in times.items()}
    for k, s in summary.items():
        print(f"{k:12s} {s['median_s']:6.1f} s  ({s['min_s']:.1f}-{s['max_s']:.1f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rounds": args.rounds, "seconds": times, "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
