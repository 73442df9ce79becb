"""Benchmark: cGAN training steps per second per resolution (one D step + one G step + EMA), table + JSON.

    python bench/cgan_step.py [--arch light] [--resolution 32 64 128] [--batch 32] [--steps 10] [--device cpu]
    python bench/cgan_step.py --arch fastgan --resolution 32 64 128 256 512 1024 --batch 8 --g-ch 64 --d-ch 64
    OMP_NUM_THREADS=1 python bench/cgan_step.py --resolution 32 64 --precision fp32 bf16 --clock cpu
    python bench/cgan_step.py --resolution 32 --layout channels_last --steps 30 [--plain-allocator]

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

from studio.devices import PRECISIONS, prepare_process, resolve_precision, use_threads

from timing import CLOCKS, flops_per_call, matmul_peak_tflops, peak_memory_mb, time_steps  # noqa: E402  (run as scripts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default=CGANConfig().arch, help="light or fastgan")
    p.add_argument("--resolution", type=int, nargs="+", default=[32, 64, 128])
    p.add_argument("--g-ch", type=int, default=CGANConfig().g_ch)
    p.add_argument("--d-ch", type=int, default=CGANConfig().d_ch)
    p.add_argument("--batch", type=int, default=CGANConfig().batch)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--layout", nargs="+", default=["contiguous", "channels_last"], help="contiguous: the plain baseline")
    p.add_argument("--precision", nargs="+", choices=PRECISIONS, default=["auto"], help="auto: bf16 where the device has fast bf16")
    p.add_argument("--clock", choices=CLOCKS, default="wall", help="cpu: the CPU time this process got (one thread; busy machines)")
    p.add_argument("--plain-allocator", action="store_true", help="without prepare_process's allocator limits (to measure them)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, help="JSON file (default bench/results/cgan_step[-ARCH].json)")
    args = p.parse_args()
    (use_threads if args.plain_allocator else prepare_process)(torch.get_num_threads())  # as a job process does
    args.out = args.out or Path(f"bench/results/cgan_step{'' if args.arch == 'light' else '-' + args.arch}.json")

    peak = matmul_peak_tflops(args.device)
    rows = []
    for res, layout, precision in ((r, lay, q) for r in args.resolution for lay in args.layout for q in args.precision):
        precision = resolve_precision(precision, torch.device(args.device))
        images = torch.rand(min(120, 8 * args.batch), 3, res, res) * 2 - 1
        cfg = CGANConfig(arch=args.arch, resolution=res, batch=args.batch, layout=layout, g_ch=args.g_ch, d_ch=args.d_ch,
                         precision=precision)
        trainer = CGANTrainer(cfg, images, torch.arange(len(images)) % 3,
                              ["a", "b", "c"], device=args.device)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        med = statistics.median(time_steps(trainer.train_step, args.steps, args.device, warmup=2, clock=CLOCKS[args.clock]))
        flops = flops_per_call(trainer.train_step)
        row = {"resolution": res, "layout": layout, "precision": precision, "batch": args.batch, "s_per_step": round(med, 4),
               "it_per_s": round(1 / med, 2), "images_per_s": round(args.batch / med, 1),
               "gflop_per_step": round(flops / 1e9, 2), "tflops": round(flops / med / 1e12, 3),
               "peak_mb": round(peak_memory_mb(args.device)),
               "g_params": sum(p.numel() for p in trainer.g.parameters()),
               "d_params": sum(p.numel() for p in trainer.d.parameters())}
        if peak:
            row["fraction_of_peak"] = round(row["tflops"] / peak, 3)
        rows.append(row)
    print(f"cGAN {args.arch} step (D + G + EMA), widths {args.g_ch}/{args.d_ch}, device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads"
          + (f", bf16 matmul peak {peak:.0f} TFLOP/s" if peak else ""))
    print(f"{'res':>4} {'layout':>14} {'prec':>5} {'batch':>5} {'s/step':>8} {'it/s':>6} {'img/s':>7} {'GFLOP':>7} {'TFLOP/s':>8} {'G params':>10}")
    for r in rows:
        print(f"{r['resolution']:4d} {r['layout']:>14} {r['precision']:>5} {r['batch']:5d} {r['s_per_step']:8.3f} {r['it_per_s']:6.2f} "
              f"{r['images_per_s']:7.1f} {r['gflop_per_step']:7.2f} {r['tflops']:8.3f} {r['g_params']:10,d}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": args.device, "torch": torch.__version__, "peak_tflops": peak, "clock": args.clock,
                                    "threads": torch.get_num_threads(),
                                    "machine": platform.processor() or platform.machine(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
