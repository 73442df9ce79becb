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

from studio.methods.bsa import BSAConfig, BSATrainer
from studio.models.biggan import biggan_config

from timing import time_steps  # noqa: E402  (bench/ is run as scripts)


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
    p.add_argument("--perceptual", choices=["none", "vgg16"], default="none", help="vgg16: random-init VGG16 features (same cost)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=Path("bench/results/bsa_step.json"))
    args = p.parse_args()

    base = build_base(args.model, args.device)
    perceptual = None
    if args.perceptual == "vgg16":
        from studio.models.vgg import VGGFeatures

        perceptual = VGGFeatures().to(args.device).eval().requires_grad_(False)
    res = base.config.output_dim
    rows = []
    for adapt in args.adapt:
        for batch in args.batch:
            images = torch.rand(max(batch, 10), 3, res, res) * 2 - 1
            cfg = BSAConfig(model=args.model, adapt=adapt, batch=batch, perceptual=args.perceptual)
            trainer = BSATrainer(cfg, base, images, torch.zeros(len(images), dtype=torch.long), ["all"],
                                 perceptual=perceptual, device=args.device)
            times = time_steps(trainer.train_step, args.steps, args.device)
            trainer.adapter.detach_hooks()
            med = statistics.median(times)
            rows.append({"adapt": adapt, "perceptual": args.perceptual, "batch": batch, "s_per_step": round(med, 3), "images_per_s": round(batch / med, 2),
                         "trainable_params": trainer.adapter.trainable_count(), "steps_timed": len(times)})
    print(f"BSA step, {args.model}, perceptual {args.perceptual}, device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'adapt':12} {'batch':>5} {'s/step':>8} {'img/s':>7} {'trainable':>10}")
    for r in rows:
        print(f"{r['adapt']:12} {r['batch']:5d} {r['s_per_step']:8.3f} {r['images_per_s']:7.2f} {r['trainable_params']:10,d}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "device": args.device, "torch": torch.__version__,
                                    "machine": platform.processor() or platform.machine(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
