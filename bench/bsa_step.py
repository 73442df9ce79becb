"""Benchmark: seconds per BSA training step (BigGAN-deep, random init of the real config), printed as a table and written as JSON.

    python bench/bsa_step.py [--model biggan-deep-256] [--batch 5] [--adapt hyper-bn scale-shift] [--steps 3] [--device cpu]

Not a test: numbers depend on the machine. Random init is enough for timing: the arithmetic is the same.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import torch

from studio.methods.bsa import LAYOUTS, BSAConfig, BSATrainer
from studio.models.biggan import biggan_config

from timing import flops_per_call, matmul_peak_tflops, peak_memory_mb, time_steps  # noqa: E402  (run as scripts)


PATHS = {"plain": {"real_features": "recompute", "layout": "contiguous"},
         "fast": {"real_features": "cache", "layout": "contiguous"},
         "fast+cl": {"real_features": "cache", "layout": "channels_last"},
         "fast+bf16": {"real_features": "cache", "layout": "contiguous", "precision": "bf16"}}  # for GPUs


def build_base(name: str, device: str) -> torch.nn.Module:
    from pytorch_pretrained_biggan import BigGAN

    torch.manual_seed(0)
    model = BigGAN(biggan_config(name))
    torch.nn.init.ones_(model.generator.bn.weight)
    torch.nn.init.zeros_(model.generator.bn.bias)
    return model.to(device).eval().requires_grad_(False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="biggan-deep-256")
    p.add_argument("--batch", type=int, nargs="+", default=[5])
    p.add_argument("--adapt", nargs="+", default=["hyper-bn", "scale-shift"])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--perceptual", choices=["none", "vgg16"], default="vgg16", help="vgg16: random-init VGG16 features (same cost)")
    p.add_argument("--paths", nargs="+", choices=list(PATHS), default=["plain", "fast"],
                   help="plain: the baseline; fast: real images' VGG features computed once; fast+cl: also channels_last")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=Path("bench/results/bsa_step.json"))
    args = p.parse_args()

    base = build_base(args.model, args.device)
    perceptual = None
    if args.perceptual == "vgg16":
        from studio.models.vgg import VGGFeatures

        perceptual = VGGFeatures().to(args.device).eval().requires_grad_(False)
    res = base.config.output_dim
    peak = matmul_peak_tflops(args.device)
    rows = []
    for adapt in args.adapt:
        for batch in args.batch:
            for path in args.paths:
                settings = PATHS[path]
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
                times = time_steps(trainer.train_step, args.steps, args.device)
                flops = flops_per_call(trainer.train_step)
                trainer.adapter.detach_hooks()
                med = statistics.median(times)
                row = {"adapt": adapt, "perceptual": args.perceptual, "path": path, **settings, "batch": batch,
                       "s_per_step": round(med, 3), "images_per_s": round(batch / med, 2), "gflop_per_step": round(flops / 1e9, 1),
                       "tflops": round(flops / med / 1e12, 3), "peak_mb": round(peak_memory_mb(args.device)),
                       "trainable_params": trainer.adapter.trainable_count(), "steps_timed": len(times)}
                if peak:
                    row["fraction_of_peak"] = round(row["tflops"] / peak, 3)
                rows.append(row)
    print(f"BSA step, {args.model}, perceptual {args.perceptual}, device {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads" + (f", bf16 matmul peak {peak:.0f} TFLOP/s" if peak else ""))
    print(f"{'adapt':12} {'batch':>5} {'path':>7} {'s/step':>8} {'img/s':>7} {'GFLOP':>7} {'TFLOP/s':>8} {'peak MB':>8}")
    for r in rows:
        print(f"{r['adapt']:12} {r['batch']:5d} {r['path']:>7} {r['s_per_step']:8.3f} {r['images_per_s']:7.2f} "
              f"{r['gflop_per_step']:7.1f} {r['tflops']:8.3f} {r['peak_mb']:8d}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "device": args.device, "torch": torch.__version__, "peak_tflops": peak,
                                    "machine": platform.processor() or platform.machine(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
