"""Benchmark: seconds per CLIP guidance step (BigGAN-deep + two BSA adapters blended, CLIP on K cutouts), as a table and JSON.

    python bench/blend_step.py [--model biggan-deep-256] [--clip ViT-B-32] [--cutouts 32] [--steps 3] [--device cpu]

Not a test: numbers depend on the machine. Random init of the real configs (no downloads): the arithmetic is the same.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import torch

from studio.guide import BlendedAdapter, GuideConfig, PromptGuide, SamplerTarget
from studio.methods.bsa import BSAAdapter
from studio.models.clip import load_clip

from bsa_step import build_base  # noqa: E402  (bench/ is run as scripts)
from timing import time_steps  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="biggan-deep-256")
    p.add_argument("--clip", default="ViT-B-32")
    p.add_argument("--cutouts", type=int, nargs="+", default=[32])
    p.add_argument("--mix", nargs="+", default=["auto", "none"], help="auto: blend two adapters, mix learned; none: one run")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=Path("bench/results/blend_step.json"))
    args = p.parse_args()

    device = torch.device(args.device)
    base = build_base(args.model, args.device)
    adapters = [BSAAdapter(base, n_images=4, classes=["a", "b"], adapt="hyper-bn").to(device) for _ in range(2)]
    clip = load_clip(args.clip, "none", device=device)
    rows = []
    for mix in args.mix:
        target = SamplerTarget(BlendedAdapter(*adapters) if mix == "auto" else adapters[0])
        for cutouts in args.cutouts:
            guide = PromptGuide(GuideConfig(prompt="a stained glass window", cutouts=cutouts), target, clip, device=device)
            times = time_steps(guide.train_step, args.steps, args.device)
            med = statistics.median(times)
            rows.append({"blend": mix == "auto", "cutouts": cutouts, "s_per_step": round(med, 3),
                         "steps_per_s": round(1 / med, 3), "mix_layers": len(target.mix_names), "steps_timed": len(times)})
    print(f"Blend step, {args.model} + {clip.name}, device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'blend':>6} {'cutouts':>8} {'s/step':>8} {'steps/s':>8} {'layers':>7}")
    for r in rows:
        print(f"{str(r['blend']):>6} {r['cutouts']:8d} {r['s_per_step']:8.3f} {r['steps_per_s']:8.3f} {r['mix_layers']:7d}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "clip": clip.name, "device": args.device, "torch": torch.__version__,
                                    "threads": torch.get_num_threads(), "machine": platform.machine(), "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
