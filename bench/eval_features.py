"""Benchmark: seconds to embed a batch of images with each evaluation feature network, fp32 vs bf16 autocast,
contiguous vs channels_last (the conv nets), as a table and JSON.

    OMP_NUM_THREADS=1 python bench/eval_features.py --nets judge tiny inception clip --n 64 --steps 3 --clock cpu

Not a test: numbers depend on the machine. Random init of the real architectures (no downloads): the arithmetic is
the same. `auto picks` is what studio.evaluate.feature_precision runs under precision auto on this device.
Achieved GFLOP/s are compared with fp32 and bf16 matmul peaks measured in the same process (bench/timing.py).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from studio.devices import autocast
from studio.evaluate import feature_precision
from studio.metrics import WORK_SIZE, Classifier, judge_precision
from studio.models.features import INCEPTION_SIZE, TINY_SIZE, FeatureNet, TinyConvNet

from timing import CLOCKS, flops_per_call, matmul_peaks, time_steps, with_peaks  # noqa: E402  (run as scripts)

LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def build(name: str, device: torch.device) -> tuple[nn.Module | None, callable, int, str]:
    """(module or None, embed function of resized images, input side, the FeatureNet name evaluation gives it)."""
    torch.manual_seed(0)
    if name == "judge":
        model = Classifier(3).eval()
        return model.to(device), model.features, WORK_SIZE, "judge:bench"
    if name == "tiny":
        model = TinyConvNet().eval()
        return model.to(device), model, TINY_SIZE, "tiny:seed0"
    if name == "inception":
        from torchvision.models import inception_v3

        model = inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=True)
        model.fc, model.AuxLogits = nn.Identity(), None
        model = model.eval().to(device)
        return model, model, INCEPTION_SIZE, "inception-v3:random0"
    if name == "clip":
        from studio.models.clip import load_clip

        encoder = load_clip("ViT-B-32", "none", device=device)
        return None, encoder.embed_images, encoder.image_size, f"clip:{encoder.name}"
    raise SystemExit(f"unknown net {name}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", nargs="+", default=["judge", "tiny", "inception", "clip"])
    p.add_argument("--n", type=int, default=64, help="images per call (FeatureNet's batch)")
    p.add_argument("--precision", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"])
    p.add_argument("--layout", nargs="+", choices=list(LAYOUTS), default=["contiguous", "channels_last"],
                   help="for the conv nets (CLIP is measured contiguous)")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--clock", choices=CLOCKS, default="wall", help="cpu: the CPU time this process got (one thread)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=Path("bench/results/eval_features.json"))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, clock = torch.device(args.device), CLOCKS[args.clock]
    peaks = matmul_peaks(args.device, clock)
    images = torch.rand(args.n, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1  # what a 32 px run samples
    rows = []
    for name in args.nets:
        model, embed, side, net_name = build(name, device)
        net = FeatureNet(net_name, 0, embed, size=side, device=device)
        auto = judge_precision("auto", device) if name == "judge" else feature_precision(net, "auto")
        x = F.interpolate(images.to(device), size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        for layout in args.layout if model is not None else ["contiguous"]:
            if model is not None:
                model.to(memory_format=LAYOUTS[layout])
            xl = x.contiguous(memory_format=LAYOUTS[layout])
            for precision in args.precision:
                def call(_: int) -> torch.Tensor:
                    with torch.no_grad(), autocast(device, precision):
                        return embed(xl).float()
                times = time_steps(call, args.steps, args.device, clock=clock)
                flops = flops_per_call(call)
                med = statistics.median(times)
                rows.append(with_peaks({"net": name, "layout": layout, "precision": precision, "auto_picks": auto,
                                        "images": args.n, "side": side, "s_per_call": round(med, 4),
                                        "s_min": round(min(times), 4), "ms_per_image": round(1e3 * med / args.n, 2),
                                        "gflop_per_call": round(flops / 1e9, 2), "clock": args.clock}, flops, med, peaks))
    print(f"Evaluation features, {args.n} images a call, device {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.clock} clock, matmul peaks fp32 {peaks['fp32'] * 1e3:.0f} / "
          f"bf16 {peaks['bf16'] * 1e3:.0f} GFLOP/s")
    print(f"{'net':>10} {'layout':>14} {'prec':>5} {'s/call':>8} {'ms/img':>7} {'GFLOP':>8} {'GFLOP/s':>8} {'of peak':>8} {'auto':>5}")
    for r in rows:
        print(f"{r['net']:>10} {r['layout']:>14} {r['precision']:>5} {r['s_per_call']:8.3f} {r['ms_per_image']:7.2f} "
              f"{r['gflop_per_call']:8.2f} {r['gflop_per_s']:8.1f} {r['fraction_of_own_peak']:8.3f} {r['auto_picks']:>5}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
                                    "peaks_tflops": peaks, "machine": platform.processor() or platform.machine(),
                                    "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
