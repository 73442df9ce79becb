"""Reproduce checkpoints/studio-base/: the studio's own pretrained generator, the base `train bsa --model studio-base` adapts.

    nice python scripts/train_studio_base.py [--per-class 170] [--heldout-per-class 40] [--budget-s 1200]
                                             [--iters 6000] [--g-ch 32] [--d-ch 32] [--threads 1] [--work DIR]
                                             [--out checkpoints/studio-base]

1. Paints the procedural families that are not the demo's (studio/data/families.py: horizons, textures, posters,
   ornaments: 12 styles), `per-class` training images each (the families' "train" split) and `heldout-per-class`
   held-out ones (the "heldout" split: disjoint seeds), into two datasets of a scratch workspace.
2. Trains `python -m studio train cgan --dataset base-train --run studio-base --g-ch 32 --d-ch 32 --iters N` (the
   same code path: studio.train.run_training with the cGAN's defaults: light architecture, 32 px) until N steps or the
   wall-time budget, whichever comes first, on `threads` CPU threads.
3. Judges G_ema on the held-out images (studio.metrics, as bench/quality.py: class fidelity by a judge CNN trained on
   the training half, k-NN precision/recall, KID in the judge's features) and the training half itself as the ceiling.
4. Writes `out`: model.safetensors (G_ema only, keys `g_ema/…`), config.json (the run's cGAN config, classes, steps,
   metrics, fingerprint), README.md (the model card) and samples.png (a class × seed grid).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FAMILIES = ("horizons", "textures", "posters", "ornaments")  # every family but the demo's three classes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-class", type=int, default=170, help="training images per style (12 styles)")
    p.add_argument("--heldout-per-class", type=int, default=40, help="held-out images per style, for the metrics")
    p.add_argument("--size", type=int, default=64, help="side of the stored images (training resizes to 32)")
    p.add_argument("--iters", type=int, default=6000)
    p.add_argument("--budget-s", type=float, default=1200.0, help="stop training after this wall time (seconds)")
    p.add_argument("--g-ch", type=int, default=32)
    p.add_argument("--d-ch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=Path("/tmp/studio-base-work"), help="scratch workspace (kept)")
    p.add_argument("--out", type=Path, default=ROOT / "checkpoints" / "studio-base")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from studio.devices import prepare_process

    prepare_process(args.threads)  # as a job process does
    from studio.data.dataset import CropSettings, Dataset
    from studio.data.families import family_classes, family_images
    from studio.methods import load_run_sampler
    from studio.run import RunFolder
    from studio.train import run_training, training_configs
    from studio.workspace import Workspace

    ws = Workspace.resolve(args.work)
    for name, split, per_class in (("base-train", "train", args.per_class), ("base-heldout", "heldout", args.heldout_per_class)):
        ds = Dataset.open_or_create(ws, name)
        if ds.images:
            continue  # painted by an earlier call with the same workspace
        ds.manifest["crop"] = asdict(CropSettings(size=args.size))
        for family in FAMILIES:
            for label, filename, img in family_images(family, per_class=per_class, seed=args.seed, size=args.size, split=split):
                ds.add_image(img, f"{family}/{filename}", label)
        ds.manifest["demo"] = {"per_class": per_class, "seed": args.seed, "families": list(FAMILIES), "split": split}
        ds.save()
        print(f"{name}: {len(ds.images)} images", flush=True)

    # The shipped base was trained without colour augmentation, with class-only FiLM, G_ema 0.999 and uncapped mode
    # seeking, without anchors, matching or D's dropout, and with G's learning rate equal to D's (the cGAN defaults before
    # 2026-12-02/03/04/05/06); pinned so this script reproduces it whatever today's defaults are.
    config = {"g_ch": args.g_ch, "d_ch": args.d_ch, "seed": args.seed, "augment": "translation,cutout", "latent_film": 0,
              "ema": 0.999, "mode_seeking_cap": 0.0, "anchors": 0.0, "match": 0.0, "lr_g": 2e-4,
              "d_dropout": 0.0}
    cfg, loop = training_configs(ws, "cgan", "studio-base", config=config,
                                 loop={"iters": args.iters, "sample_every": 500, "checkpoint_every": 500})
    command = (f"python -m studio train cgan --dataset base-train --run studio-base --g-ch {args.g_ch} "
               f"--d-ch {args.d_ch} --augment translation,cutout --latent-film 0 --ema 0.999 --mode-seeking-cap 0 --anchors 0 --match 0 --lr-g 2e-4 --d-dropout 0 --seed {args.seed} --iters {args.iters} --sample-every 500 --checkpoint-every 500")
    end = time.monotonic() + args.budget_s
    started = time.monotonic()
    run_training(ws, method="cgan", run_name="studio-base", dataset="base-train", cfg=cfg, loop=loop, device="cpu",
                 restart=True, should_stop=lambda: time.monotonic() > end)
    wall = time.monotonic() - started
    run = RunFolder(ws.run_dir("studio-base"))
    sampler, _, ckpt = load_run_sampler(run, torch.device("cpu"))
    steps = int(ckpt.meta["step"])
    print(f"trained {steps} steps in {wall:.0f} s", flush=True)

    metrics = judge(ws, sampler, seed=args.seed)
    print(json.dumps(metrics, indent=1), flush=True)
    write_base(args, ckpt, cfg, steps=steps, wall=wall, command=command, metrics=metrics, sampler=sampler,
               classes=[c for f in FAMILIES for c in family_classes(f)])


def judge(ws, sampler, *, seed: int, n: int = 240) -> dict:
    """bench/quality.py's measures: on the held-out half (the model) and on the training half (real images' ceiling)."""
    import torch

    from studio.data.dataset import Dataset
    from studio.metrics import evaluate_sampler, sample_by_class, train_classifier
    from studio.quality import kernel_inception_distance

    resolution = sampler.resolution
    train_images, train_labels, classes = Dataset.open(ws, "base-train").load_tensors(resolution)
    images, labels, held_classes = Dataset.open(ws, "base-heldout").load_tensors(resolution)
    assert held_classes == classes
    judge_net = train_classifier(train_images, train_labels, len(classes), seed=seed)
    out = {}
    real = _TrainingImages(train_images, train_labels, classes)
    for name, source in (("model", sampler), ("real (training images)", real)):
        samples = sample_by_class(source, n, seed)
        report = evaluate_sampler(source, images, labels, classes, n=n, seed=seed, classifier=judge_net, samples=samples)
        kid, kid_err = kernel_inception_distance(judge_net.embed(images.float()).cpu(),
                                                 judge_net.embed(torch.cat(list(samples.values()))).cpu())
        out[name] = {"fidelity": report["fidelity"]["mean"], "precision": report["precision"]["mean"],
                     "recall": report["recall"]["mean"], "kid_x1000": round(1000 * kid, 2),
                     "kid_err_x1000": round(1000 * kid_err, 2), "spread": report["diversity"]["mean_ratio"]}
    out["judge_heldout_accuracy"] = report["classifier"]["heldout_accuracy"]
    return out


class _TrainingImages:
    """The training half as if a model made it (bench/quality.py's RealSampler): the ceiling of every measure."""

    def __init__(self, images, labels, classes):
        self.images, self.labels, self.classes = images, labels, list(classes)

    def sample(self, n: int, *, label: str, seed: int = 0, **_):
        import torch

        pool = self.images[self.labels == self.classes.index(label)]
        order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
        return pool[order.repeat(n // len(pool) + 1)[:n]]


def write_base(args, ckpt, cfg, *, steps: int, wall: float, command: str, metrics: dict, sampler, classes: list[str]) -> None:
    from safetensors.torch import save_file

    from studio.data.augment import image_grid
    from studio.models.adaptable import tensor_fingerprint

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in ckpt.tensors.items() if k.startswith("g_ema/")}
    assert list(ckpt.meta["classes"]) == sorted(classes)
    save_file(tensors, str(out / "model.safetensors"))
    size_mb = (out / "model.safetensors").stat().st_size / 1e6
    if size_mb > 20:
        raise SystemExit(f"model.safetensors is {size_mb:.1f} MB, over the 20 MB a shipped base may be: use narrower nets.")
    machine = f"{platform.processor() or platform.machine()}, {args.threads} thread(s) of a 2-core VM shared with other jobs"
    config = {"method": "cgan", "config": asdict(cfg), "classes": list(ckpt.meta["classes"]), "steps": steps,
              "wall_s": round(wall), "command": command, "families": list(FAMILIES), "per_class": args.per_class,
              "metrics": metrics, "fingerprint": tensor_fingerprint({k[len("g_ema/"):]: v for k, v in tensors.items()}), "parameters": sum(v.numel() for v in tensors.values())}
    (out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    image_grid(sampler.grid(8, seed=7).float().cpu(), nrow=8, row_labels=list(sampler.classes)).save(out / "samples.png")
    m, r = metrics["model"], metrics["real (training images)"]
    card = f"""# studio-base: the studio's own pretrained generator

A class-conditional GAN (the studio's `light` cGAN, {cfg.resolution} px, G width {cfg.g_ch}, D width {cfg.d_ch},
{config['parameters']:,} generator parameters) trained by this project on {len(classes)} procedural styles that are **not**
the demo's (abstract, geometric, islamic): {', '.join(classes)} ({', '.join(FAMILIES)} in studio/data/families.py),
{args.per_class} images each ({args.per_class * len(classes):,} in all). It is the base that
`python -m studio train bsa --model studio-base` adapts offline, on a CPU, to a few dozen images of a new style.

- Weights: `model.safetensors` ({size_mb:.1f} MB): the EMA generator only (`g_ema/…`), float32.
- `config.json`: the cGAN config it was built with, its classes, steps, metrics and the weights' fingerprint.
- `samples.png`: rows are classes, columns seeds.

## How it was trained

Reproduce with `nice python scripts/train_studio_base.py --threads {args.threads}` (paints the datasets, then):

    {command}

stopped after {steps} steps ({wall / 60:.1f} minutes of wall time, budget {args.budget_s / 60:.0f} minutes) on {machine};
the steps a wall-time budget buys depend on the machine, so `--iters {steps} --budget-s 1e9` repeats exactly these steps;
torch {__import__('torch').__version__}, precision {ckpt.meta.get('precision', cfg.precision)}.
The recipe is the cGAN's default (hinge loss, DiffAugment translation+cutout, AC-GAN class loss 0.5, mode seeking,
EMA 0.999), only wider (32 instead of 16).

## Evaluation

{metrics['judge_heldout_accuracy']:.2f} is the judge CNN's accuracy on its own held-out split; the measures are in its
features (bench/quality.py's), against {args.heldout_per_class} held-out images of each style that training never saw;
240 samples. The training images themselves are the ceiling.

| | fidelity | precision | recall | KID×10³ | spread |
|---|---|---|---|---|---|
| studio-base | {m['fidelity']:.2f} | {m['precision']:.2f} | {m['recall']:.2f} | {m['kid_x1000']:.1f} ± {m['kid_err_x1000']:.1f} | {m['spread']:.2f} |
| real training images | {r['fidelity']:.2f} | {r['precision']:.2f} | {r['recall']:.2f} | {r['kid_x1000']:.1f} ± {r['kid_err_x1000']:.1f} | {r['spread']:.2f} |

## Limits

32 px, procedural styles only: it knows gradients, hard-edged shapes, periodic textures and symmetric ornaments, not
photographs or paintings. BSA adapts only per-channel statistics, latents and class embeddings, so what it can make of a
new style is bounded by what this generator can draw (see docs/quality.md, "BSA from the studio base").
"""
    (out / "README.md").write_text(card)
    print(f"wrote {out} ({size_mb:.1f} MB)")


if __name__ == "__main__":
    main()
