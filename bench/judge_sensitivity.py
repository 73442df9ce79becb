"""Benchmark: what bench/quality.py's measures make of real images that are slightly soft, noisy or dark.

    python bench/judge_sensitivity.py [--datasets textures demo] [--per-class 40] [--threads 1]

The training half is scored as if a model had made it (bench/quality.py's `real` row), as it is and after one
change each: a Gaussian blur (σ 0.6 or 1 px at 32 px), added Gaussian noise (σ 0.1 or 0.2 in [-1, 1]), 20% darker.
Tells how far a sample may be from a real image, and in which way, before fidelity, precision and recall notice:
the reading key for the recipe rounds of docs/quality.md. Means over evaluation seeds 0 and 1.

Not a test: nothing here trains a model, but the judge CNN trains once per measure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/quality.py, run from anywhere

CHANGES = ("none", "blur0.6", "blur1.0", "noise0.1", "noise0.2", "dark")


def change(name: str, x, g):
    import torch

    from studio.quality import gaussian_blur

    if name.startswith("blur"):
        return gaussian_blur(x, float(name[4:]), radius=2, pad="reflect")
    if name.startswith("noise"):
        return (x + float(name[5:]) * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    if name == "dark":
        return (x + 1) * 0.8 - 1
    return x


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["textures", "demo"])
    p.add_argument("--changes", nargs="+", default=list(CHANGES), choices=CHANGES)
    p.add_argument("--per-class", type=int, default=40)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--samples", type=int, default=120)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "quality-sensitivity")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from quality import RealSampler, measure

    from studio.data.dataset import create_demo_dataset
    from studio.workspace import Workspace

    class ChangedReal(RealSampler):
        def __init__(self, ws, name: str):
            super().__init__(ws, 32)
            self.name = name

        def sample(self, n: int, *, label: str, seed: int = 0, **_):
            g = torch.Generator().manual_seed(seed + 99)
            return change(self.name, super().sample(n, label=label, seed=seed).float(), g)

    args.out.mkdir(parents=True, exist_ok=True)
    print("| dataset | change | fidelity | precision | recall | coverage | spread |\n|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="sensitivity-") as tmp:
        for family in args.datasets:
            ws = Workspace.resolve(Path(tmp) / family)
            for split in ("train", "heldout"):
                create_demo_dataset(ws, split, family=family, split=split, per_class=args.per_class, seed=0, size=args.size)
            for name in args.changes:
                r = measure(ws, family, name, ChangedReal(ws, name),
                            argparse.Namespace(samples=args.samples, seed=0, eval_seeds=2, out=args.out, tag="sensitivity"),
                            steps=0, seconds=0.0, config={})
                print(f"| {family} | {name} | " + " | ".join(f"{r[k]:.2f}" for k in ("fidelity", "precision", "recall", "coverage", "spread"))
                      + " |", flush=True)


if __name__ == "__main__":
    main()
