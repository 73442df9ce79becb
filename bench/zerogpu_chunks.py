"""Benchmark: what training in ZeroGPU chunks costs against one uninterrupted run (model load + checkpoint per chunk).

    python bench/zerogpu_chunks.py [--steps 200] [--chunk 25 50 100] [--device cpu]

Runs the demo cGAN (cpu-32 preset) the way a job runs it: straight through (`run_training`, as the CLI does)
and with `studio.zerogpu.run_in_chunks` (without ZeroGPU every chunk is a plain call here, so this measures
the studio's own overhead: rebuilding the trainer, resuming and checkpointing at every chunk, not GPU queueing).
Not a test: numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from studio import zerogpu
from studio.data.dataset import create_demo_dataset
from studio.train import run_training, training_configs
from studio.workspace import Workspace


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--chunk", type=int, nargs="+", default=[25, 50, 100])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=Path("bench/results/zerogpu_chunks.json"))
    args = p.parse_args()

    ws = Workspace.resolve(tempfile.mkdtemp(prefix="bench-chunks-"))
    create_demo_dataset(ws, "demo")
    loop = {"iters": args.steps, "sample_every": args.steps, "checkpoint_every": args.steps}

    def request(run: str) -> dict:
        return {"method": "cgan", "run": run, "dataset": "demo", "resume": False, "config": {}, "device": args.device,
                "loop": loop}

    started = time.perf_counter()
    cfg, loop_config = training_configs(ws, "cgan", "straight", preset="cpu-32", loop=loop)
    run_training(ws, method="cgan", run_name="straight", dataset="demo", cfg=cfg, loop=loop_config, device=args.device)
    straight = time.perf_counter() - started
    rows = [{"chunk": None, "seconds": round(straight, 2), "overhead": 0.0}]
    for chunk in args.chunk:
        started = time.perf_counter()
        job = request(f"chunks-{chunk}")
        job["config"] = asdict(cfg)
        assert zerogpu.run_in_chunks(ws, job, chunk_steps=chunk) == "finished"
        seconds = time.perf_counter() - started
        chunks = -(-args.steps // chunk)
        rows.append({"chunk": chunk, "seconds": round(seconds, 2), "overhead": round((seconds - straight) / chunks, 3)})

    print(f"{args.steps} steps of the demo cGAN (cpu-32) on {args.device}, {platform.processor() or platform.machine()}")
    print(f"{'chunk':>8} {'seconds':>9} {'s/chunk overhead':>17}")
    for row in rows:
        print(f"{row['chunk'] or 'none':>8} {row['seconds']:>9.2f} {row['overhead']:>17.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"steps": args.steps, "device": args.device, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
