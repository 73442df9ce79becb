"""Benchmark: seconds per BSA training step (BigGAN-deep, random init of the real config), printed as a table and written as JSON.

    python bench/bsa_step.py [--model biggan-deep-256] [--batch 5] [--adapt hyper-bn scale-shift] [--steps 3] [--device cpu]
    python bench/bsa_step.py --model tiny --perceptual tiny --paths fast fast+cl --precision fp32 bf16 --threads 1

Not a test: numbers depend on the machine. Random init is enough for timing: the arithmetic is the same.
Achieved GFLOP/s are compared with fp32 and bf16 matmul peaks measured in the same process (bench/timing.py).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import torch

from studio.devices import PRECISIONS, prepare_process, resolve_precision
from studio.methods.bsa import LAYOUTS, BSAConfig, BSATrainer
from studio.models.biggan import biggan_config, tiny_biggan_config

from timing import CLOCKS, flops_per_call, matmul_peaks, peak_memory_mb, time_steps, with_peaks  # noqa: E402  (run as scripts)


PATHS = {"plain": {"real_features": "recompute", "layout": "contiguous"},
         "fast": {"real_features": "cache", "layout": "contiguous"},
         "fast+cl": {"real_features": "cache", "layout": "channels_last"}}


def build_base(name: str, device: str) -> torch.nn.Module:
    """BigGAN-deep by name (random init of the released config), or `tiny` / `tiny-64` (the tests' model)."""
    from pytorch_pretrained_biggan import BigGAN

    torch.manual_seed(0)
    model = BigGAN(tiny_biggan_config(int(name.partition("-")[2] or 32)) if name.startswith("tiny") else biggan_config(name))
    torch.nn.init.ones_(model.generator.bn.weight)
    torch.nn.init.zeros_(model.generator.bn.bias)
    return model.to(device).eval().requires_grad_(False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="biggan-deep-256")
    p.add_argument("--batch", type=int, nargs="+", default=[5])
    p.add_argument("--adapt", nargs="+", default=["hyper-bn", "scale-shift"])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--perceptual", choices=["none", "vgg16", "tiny"], default="vgg16",
                   help="vgg16: random-init VGG16 features (same cost); tiny: the tests' narrow VGG")
    p.add_argument("--paths", nargs="+", choices=list(PATHS), default=["plain", "fast"],
                   help="plain: the baseline; fast: real images' VGG features computed once; fast+cl: also channels_last")
    p.add_argument("--precision", nargs="+", choices=PRECISIONS, default=["auto"],
                   help="autocast of the forward passes (auto: bf16 where the device has fast bf16)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--clock", choices=CLOCKS, default="wall",
                   help="cpu: the CPU time this process got (one thread; steadier on a busy machine)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=Path("bench/results/bsa_step.json"))
    args = p.parse_args()
    prepare_process(args.threads or torch.get_num_threads())  # as a job process does
    clock = CLOCKS[args.clock]

    base = build_base(args.model, args.device)
    perceptual = None
    if args.perceptual != "none":
        from studio.models.vgg import VGGFeatures, load_vgg16

        perceptual = (load_vgg16("tiny") if args.perceptual == "tiny" else VGGFeatures()).to(args.device).eval().requires_grad_(False)
    res = base.config.output_dim
    peaks = matmul_peaks(args.device, clock)
    rows = []
    for adapt, batch, path, precision in ((a, b, p, q) for a in args.adapt for b in args.batch for p in args.paths
                                          for q in args.precision):
        settings = {**PATHS[path], "precision": resolve_precision(precision, torch.device(args.device))}
        fmt = LAYOUTS[settings["layout"]]
        base.to(memory_format=fmt)
        if perceptual is not None:
            perceptual.to(memory_format=fmt)
        images = (torch.rand(max(batch, 10), 3, res, res) * 2 - 1).contiguous(memory_format=fmt)
        cfg = BSAConfig(model=args.model, adapt=adapt, batch=batch, perceptual=args.perceptual, **settings)
        trainer = BSATrainer(cfg, base, images, torch.zeros(len(images), dtype=torch.long), ["all"],
                             perceptual=perceptual, device=args.device)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        times = time_steps(trainer.train_step, args.steps, args.device, clock=clock)
        flops = flops_per_call(trainer.train_step)
        trainer.adapter.detach_hooks()
        med = statistics.median(times)
        row = {"adapt": adapt, "perceptual": args.perceptual, "path": path, **settings, "batch": batch,
               "s_per_step": round(med, 4), "images_per_s": round(batch / med, 2), "gflop_per_step": round(flops / 1e9, 2),
               "tflops": round(flops / med / 1e12, 3), "peak_mb": round(peak_memory_mb(args.device)),
               "trainable_params": trainer.adapter.trainable_count(), "steps_timed": len(times), "clock": args.clock,
               "s_min": round(min(times), 4)}
        rows.append(with_peaks(row, flops, med, peaks))
    print(f"BSA step, {args.model}, perceptual {args.perceptual}, device {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.clock} clock, matmul peaks fp32 {peaks['fp32'] * 1e3:.0f} / bf16 {peaks['bf16'] * 1e3:.0f} GFLOP/s")
    print(f"{'adapt':12} {'batch':>5} {'path':>7} {'prec':>5} {'s/step':>8} {'img/s':>7} {'GFLOP':>8} {'GFLOP/s':>8} "
          f"{'of peak':>8} {'peak MB':>8}")
    for r in rows:
        print(f"{r['adapt']:12} {r['batch']:5d} {r['path']:>7} {r['precision']:>5} {r['s_per_step']:8.3f} {r['images_per_s']:7.2f} "
              f"{r['gflop_per_step']:8.2f} {r['gflop_per_s']:8.1f} {r['fraction_of_own_peak']:8.3f} {r['peak_mb']:8d}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "device": args.device, "torch": torch.__version__,
                                    "threads": torch.get_num_threads(), "peaks_tflops": peaks,
                                    "machine": platform.processor() or platform.machine(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
