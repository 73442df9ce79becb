"""Benchmark: seconds per CLIP guidance step (BigGAN-deep + two BSA adapters blended, CLIP on K cutouts), as a table and JSON.

    python bench/blend_step.py [--model biggan-deep-256] [--clip ViT-B-32] [--cutouts 32] [--steps 3] [--device cpu]
    OMP_NUM_THREADS=1 python bench/blend_step.py --mix auto --precision fp32 bf16 --clip-precision rule bf16 --clock cpu

Not a test: numbers depend on the machine. Random init of the real configs (no downloads): the arithmetic is the same.
--precision is the generator's autocast (GuideConfig.precision); --clip-precision `rule` is what the guide picks for CLIP
from it (studio.guide.clip_precision: fp32 on a CPU), or a precision forced for the measurement.
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
from studio.guide import BlendedAdapter, GuideConfig, PromptGuide, SamplerTarget
from studio.methods.bsa import BSAAdapter
from studio.models.clip import load_clip

from bsa_step import build_base  # noqa: E402  (bench/ is run as scripts)
from timing import CLOCKS, flops_per_call, matmul_peaks, time_steps, with_peaks  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="biggan-deep-256", help="a BigGAN-deep name, or tiny / tiny-64")
    p.add_argument("--clip", default="ViT-B-32")
    p.add_argument("--cutouts", type=int, nargs="+", default=[32])
    p.add_argument("--mix", nargs="+", default=["auto", "none"], help="auto: blend two adapters, mix learned; none: one run")
    p.add_argument("--precision", nargs="+", choices=PRECISIONS, default=["auto"],
                   help="the guide's precision (auto: bf16 where the device has fast bf16)")
    p.add_argument("--clip-precision", nargs="+", choices=("rule", "fp32", "bf16"), default=["rule"],
                   help="rule: what the guide picks for CLIP; fp32/bf16: forced, to measure the rule")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--clock", choices=CLOCKS, default="wall",
                   help="cpu: the CPU time this process got (one thread; steadier on a busy machine)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=Path("bench/results/blend_step.json"))
    args = p.parse_args()
    prepare_process(args.threads or torch.get_num_threads())  # as a job process does

    device, clock = torch.device(args.device), CLOCKS[args.clock]
    base = build_base(args.model, args.device)
    adapters = [BSAAdapter(base, n_images=4, classes=["a", "b"], adapt="hyper-bn").to(device) for _ in range(2)]
    clip = load_clip(args.clip, "none", device=device)
    peaks = matmul_peaks(args.device, clock)
    rows = []
    for mix, cutouts, precision, clip_choice in ((m, c, q, cq) for m in args.mix for c in args.cutouts
                                                 for q in args.precision for cq in args.clip_precision):
        target = SamplerTarget(BlendedAdapter(*adapters) if mix == "auto" else adapters[0])
        cfg = GuideConfig(prompt="a stained glass window", cutouts=cutouts, precision=precision)
        guide = PromptGuide(cfg, target, clip, device=device)
        if clip_choice != "rule":
            guide.clip_precision = clip_choice
        times = time_steps(guide.train_step, args.steps, args.device, clock=clock)
        flops = flops_per_call(guide.train_step)
        med = statistics.median(times)
        rows.append(with_peaks({"blend": mix == "auto", "cutouts": cutouts, "precision": resolve_precision(precision, device),
                                "clip_precision": guide.clip_precision, "s_per_step": round(med, 3), "s_min": round(min(times), 3),
                                "steps_per_s": round(1 / med, 3), "gflop_per_step": round(flops / 1e9, 1),
                                "mix_layers": len(target.mix_names), "steps_timed": len(times), "clock": args.clock},
                               flops, med, peaks))
    print(f"Blend step, {args.model} + {clip.name}, device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, {args.clock} clock, matmul peaks fp32 {peaks['fp32'] * 1e3:.0f} / bf16 {peaks['bf16'] * 1e3:.0f} GFLOP/s")
    print(f"{'blend':>6} {'cutouts':>8} {'gen':>5} {'clip':>5} {'s/step':>8} {'steps/s':>8} {'GFLOP':>7} {'GFLOP/s':>8} {'layers':>7}")
    for r in rows:
        print(f"{str(r['blend']):>6} {r['cutouts']:8d} {r['precision']:>5} {r['clip_precision']:>5} {r['s_per_step']:8.3f} "
              f"{r['steps_per_s']:8.3f} {r['gflop_per_step']:7.1f} {r['gflop_per_s']:8.1f} {r['mix_layers']:7d}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "clip": clip.name, "device": args.device, "torch": torch.__version__,
                                    "threads": torch.get_num_threads(), "peaks_tflops": peaks, "machine": platform.machine(),
                                    "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
