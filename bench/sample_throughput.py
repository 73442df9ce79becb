"""Benchmark: sampling throughput (images/s) of BigGAN-deep with a BSA adapter and of cGAN generators, table + JSON.

    python bench/sample_throughput.py [--model biggan-deep-256] [--batch 16] [--resolution 32 64 128] [--device cpu]

Not a test: numbers depend on the machine. Random init of the real configs: the arithmetic is the same.
`channels_last` is the candidate fast path (memory layout for convolutions); `plain` is the baseline.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import torch

from studio.methods.bsa import BSAAdapter
from studio.methods.cgan import CGANConfig, CGANSampler
from studio.models.cgan import Generator

from bsa_step import build_base  # noqa: E402  (bench/ is run as scripts)
from timing import flops_per_call, time_steps  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="biggan-deep-256")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--resolution", type=int, nargs="+", default=[32, 64, 128])
    p.add_argument("--layouts", nargs="+", default=["plain", "channels_last"])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=Path("bench/results/sample_throughput.json"))
    args = p.parse_args()

    samplers = {}
    if args.model != "none":
        adapter = BSAAdapter(build_base(args.model, args.device), n_images=4, classes=["a"], adapt="hyper-bn").to(args.device)
        samplers[f"BSA {args.model}"] = (adapter, adapter.model)
    for res in args.resolution:
        cfg = CGANConfig(resolution=res, **({"g_ch": 32} if res > 32 else {}))
        g = Generator(cfg.shapes(3)).to(args.device).eval().requires_grad_(False)
        samplers[f"cGAN {res} px"] = (CGANSampler(g, ["a", "b", "c"]), g)
    rows = []
    for name, (sampler, module) in samplers.items():
        for layout in args.layouts:
            module.to(memory_format=torch.channels_last if layout == "channels_last" else torch.contiguous_format)
            call = lambda i: sampler.sample(args.batch, label=None, seed=i)  # noqa: E731
            med = statistics.median(time_steps(call, args.steps, args.device))
            rows.append({"sampler": name, "layout": layout, "batch": args.batch, "s_per_batch": round(med, 3),
                         "images_per_s": round(args.batch / med, 1), "gflop_per_image": round(flops_per_call(call) / args.batch / 1e9, 2)})
    print(f"Sampling, batch {args.batch}, device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'sampler':24} {'layout':>14} {'s/batch':>8} {'img/s':>8} {'GFLOP/img':>10}")
    for r in rows:
        print(f"{r['sampler']:24} {r['layout']:>14} {r['s_per_batch']:8.3f} {r['images_per_s']:8.1f} {r['gflop_per_image']:10.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": args.device, "torch": torch.__version__, "machine": platform.machine(),
                                    "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
