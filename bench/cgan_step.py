"""Benchmark: cGAN training steps per second at 32/64/128 px (one D step + one G step + EMA), table + JSON.

    python bench/cgan_step.py [--resolution 32 64 128] [--batch 32] [--steps 10] [--device cpu]

Not a test: numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import torch

from studio.methods.cgan import CGANConfig, CGANTrainer

from timing import time_steps  # noqa: E402  (bench/ is run as scripts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolution", type=int, nargs="+", default=[32, 64, 128])
    p.add_argument("--batch", type=int, default=CGANConfig().batch)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=Path("bench/results/cgan_step.json"))
    args = p.parse_args()

    rows = []
    for res in args.resolution:
        images = torch.rand(120, 3, res, res) * 2 - 1
        trainer = CGANTrainer(CGANConfig(resolution=res, batch=args.batch), images, torch.arange(120) % 3,
                              ["a", "b", "c"], device=args.device)
        times = time_steps(trainer.train_step, args.steps, args.device, warmup=2)
        med = statistics.median(times)
        rows.append({"resolution": res, "batch": args.batch, "s_per_step": round(med, 4), "it_per_s": round(1 / med, 2),
                     "images_per_s": round(args.batch / med, 1),
                     "g_params": sum(p.numel() for p in trainer.g.parameters()),
                     "d_params": sum(p.numel() for p in trainer.d.parameters())})
    print(f"cGAN step (D + G + EMA), device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'res':>4} {'batch':>5} {'s/step':>8} {'it/s':>6} {'img/s':>7} {'G params':>10} {'D params':>10}")
    for r in rows:
        print(f"{r['resolution']:4d} {r['batch']:5d} {r['s_per_step']:8.3f} {r['it_per_s']:6.2f} {r['images_per_s']:7.1f} "
              f"{r['g_params']:10,d} {r['d_params']:10,d}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": args.device, "torch": torch.__version__,
                                    "machine": platform.processor() or platform.machine(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
