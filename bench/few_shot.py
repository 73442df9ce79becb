"""Benchmark: BSA from the studio base against fine-tuning the whole base and against training from scratch, few-shot.

    python bench/few_shot.py [--base studio-base] [--per-class 25] [--heldout-per-class 100] [--steps 500] [--seconds 60] [--threads 1]
                             [--samples 150] [--out docs/quality] [--tag ""]

Noguchi & Harada's claim, in miniature: the targets are the demo's three styles (abstract, geometric, islamic), which
the studio base (checkpoints/studio-base/, scripts/train_studio_base.py) never saw; `per-class` training images of
each (the demo family's "train" split) and `heldout-per-class` held-out ones (its "heldout" split, disjoint seeds). Three ways
to a generator of those styles, each run through the studio's own training path (studio.train.run_training):

    bsa        python -m studio train bsa --model studio-base            (frozen base; latents, class embeddings and
                                                                          per-channel scale/shift learn; the defaults)
    finetune   python -m studio train cgan --transfer-from <the base>    (every G layer but the labels from the base,
                                                                          D fresh: the base ships without its D)
    scratch    python -m studio train cgan                                (same architecture and widths as the base)

each at equal steps (`--steps`) and at equal wall time (`--seconds`). Judged on the held-out images as
bench/quality.py does (a judge CNN trained on the training images: class fidelity, k-NN precision/recall and KID in
its features), plus memorisation (studio.quality.memorisation: the fraction of samples nearer a training image than
95% of training images are to each other, in the judge's features and in pixels) and, for BSA, how well it
reconstructs its training images (L1 in [-1, 1], from the latent it learned per image). The training images
themselves ("real") are the ceiling. Writes few_shot[-tag].json, few_shot[-tag].md and one grid per cell under --out.

Not a test: numbers depend on the machine and what else runs on it; the time budget is wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quality import RealSampler, parse_overrides  # noqa: E402  (bench/ is the script's folder)

METHODS = ("bsa", "finetune", "scratch")
TARGETS = "demo"  # the family whose three classes are the unseen styles


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="studio-base", help="a studio base: a name under checkpoints/ or a folder")
    p.add_argument("--per-class", type=int, default=25, help="training images per style")
    # k-NN balls around 25 held-out images a style are wide enough that noise samples fell inside (precision 0.99 for a
    # generator at chance fidelity); 100 tighten them, and the held-out half costs nothing to paint.
    p.add_argument("--heldout-per-class", type=int, default=100, help="held-out images per style, what samples are judged on")
    p.add_argument("--steps", type=int, default=500, help="the equal-steps budget")
    p.add_argument("--seconds", type=float, default=60.0, help="the equal-wall-time budget")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--samples", type=int, default=150, help="samples per cell, split over the classes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("docs/quality"))
    p.add_argument("--tag", default="")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--budgets", nargs="+", default=["steps", "time"], choices=("steps", "time"))
    p.add_argument("--bsa-set", nargs="*", default=[], metavar="KEY=VALUE", help="BSA config overrides, e.g. emd_weight=0.01")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from studio.devices import prepare_process

    prepare_process(args.threads)  # as a job process does
    args.out.mkdir(parents=True, exist_ok=True)
    tag = f"-{args.tag}" if args.tag else ""
    rows = []
    with tempfile.TemporaryDirectory(prefix="few-shot-") as tmp:
        ws, judge = prepare(Path(tmp), args)
        rows.append(measure(ws, judge, "real", "—", RealSampler(ws, 32), args, steps=0, seconds=0.0, tag=tag))
        print(format_row(rows[-1]), flush=True)
        for budget in args.budgets:
            for method in args.methods:
                sampler, steps, seconds = train(ws, method, budget, args)
                rows.append(measure(ws, judge, method, budget, sampler, args, steps=steps, seconds=seconds, tag=tag))
                print(format_row(rows[-1]), flush=True)
    (args.out / f"few_shot{tag}.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "torch": torch.__version__, "rows": rows}, indent=1))
    table = [HEADER, SEPARATOR, *(markdown_row(r) for r in rows)]
    (args.out / f"few_shot{tag}.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


def prepare(tmp: Path, args):
    """The workspace: training and held-out datasets, and the base as a cGAN run (what --transfer-from reads)."""
    from studio.data.dataset import Dataset, create_demo_dataset
    from studio.methods.bsa import load_studio_base
    from studio.metrics import train_classifier
    from studio.run import RunFolder
    from studio.workspace import Workspace

    ws = Workspace.resolve(tmp / "ws")
    for split, per_class in (("train", args.per_class), ("heldout", args.heldout_per_class)):
        create_demo_dataset(ws, split, family=TARGETS, split=split, per_class=per_class, seed=args.seed, size=64)
    g, info = load_studio_base(args.base)
    folder = Path(info["path"])
    base_config = json.loads((folder / "config.json").read_text())
    args.base_config = base_config["config"]
    run = RunFolder(ws.run_dir("base"))
    run.write_config({"method": "cgan", "dataset": "studio-base", "config": base_config["config"], "loop": {}})
    run.save_checkpoint({f"g_ema/{k}": v for k, v in g.state_dict().items()},
                        {"method": "cgan", "config": base_config["config"], "classes": base_config["classes"],
                         "step": base_config["steps"], "run": "base"})
    images, labels, classes = Dataset.open(ws, "train").load_tensors(info["resolution"])
    return ws, train_classifier(images, labels, len(classes), seed=args.seed)


def train(ws, method: str, budget: str, args):
    import torch

    from studio.methods import load_run_sampler
    from studio.methods.cgan import ARCH_FIELDS, CGANConfig
    from studio.run import RunFolder
    from studio.train import run_training, training_configs

    name = f"{method}-{budget}"
    iters = args.steps if budget == "steps" else 10**6
    if method == "bsa":
        config = {"model": args.base, "seed": args.seed, **parse_overrides(args.bsa_set)}
        loop = {"iters": iters, "sample_every": 10**6, "checkpoint_every": 10**6}
    else:  # the base's architecture and widths, so fine-tuning and scratch differ only in where G starts
        base = CGANConfig.from_dict(args.base_config)  # fields added since the base was saved get what it had
        config = {k: getattr(base, k) for k in ("arch", *ARCH_FIELDS)} | {"seed": args.seed}
        if method == "finetune":
            config["transfer_from"] = "base"
        loop = {"iters": iters, "sample_every": 10**6, "checkpoint_every": 10**6}
    kind = "bsa" if method == "bsa" else "cgan"
    cfg, loop_cfg = training_configs(ws, kind, name, config=config, loop=loop)
    end = time.monotonic() + args.seconds if budget == "time" else None
    started = time.monotonic()
    run_training(ws, method=kind, run_name=name, dataset="train", cfg=cfg, loop=loop_cfg, device="cpu",
                 should_stop=(lambda: time.monotonic() > end) if end else (lambda: False))
    seconds = time.monotonic() - started
    sampler, _, ckpt = load_run_sampler(RunFolder(ws.run_dir(name)), torch.device("cpu"))
    return sampler, int(ckpt.meta["step"]), seconds


def measure(ws, judge, method: str, budget: str, sampler, args, *, steps: int, seconds: float, tag: str) -> dict:
    import torch

    from studio.data.augment import image_grid
    from studio.data.dataset import Dataset
    from studio.metrics import evaluate_sampler, sample_by_class
    from studio.quality import kernel_inception_distance, memorisation

    train_images, _, classes = Dataset.open(ws, "train").load_tensors(32)
    images, labels, _ = Dataset.open(ws, "heldout").load_tensors(32)
    samples = sample_by_class(sampler, args.samples, args.seed)
    report = evaluate_sampler(sampler, images, labels, classes, n=args.samples, seed=args.seed, classifier=judge,
                              samples=samples)
    fakes = torch.cat(list(samples.values()))
    with torch.no_grad():
        kid, kid_err = kernel_inception_distance(judge.embed(images.float()).cpu(), judge.embed(fakes).cpu())
        mem = memorisation(judge.embed(train_images).cpu(), judge.embed(fakes).cpu(),
                           train_images.flatten(1), fakes.flatten(1))
    row = {"method": method, "budget": budget, "steps": steps, "train_s": round(seconds, 1),
           "fidelity": report["fidelity"]["mean"], "precision": report["precision"]["mean"],
           "recall": report["recall"]["mean"], "kid_x1000": round(1000 * kid, 2), "kid_err_x1000": round(1000 * kid_err, 2),
           "memorised": round(mem["fraction"], 3), "memorised_pixels": round(mem["pixel"]["fraction"], 3),
           "per_class_precision": report["precision"], "recon_l1": None}
    cell = f"{method}-{budget}" if method != "real" else "real"
    row["grid"] = f"few_shot-{cell}{tag}.png"
    image_grid(sampler.grid(8, seed=args.seed + 7).float().cpu(), nrow=8, row_labels=list(classes)).save(args.out / row["grid"])
    if hasattr(sampler, "reconstruct"):  # BSA: its training images from their learned latents
        with torch.no_grad():
            recon = sampler.reconstruct()
        row["recon_l1"] = round((recon - sampler_images(ws, sampler)).abs().mean().item(), 4)
        picks = [int(i) for c in range(len(classes)) for i in (sampler.train_labels == c).nonzero()[:4, 0]]
        real = sampler_images(ws, sampler)[picks]
        row["recon_grid"] = f"few_shot-{cell}-reconstructions{tag}.png"
        image_grid(torch.cat([real, recon[picks]]).float(), nrow=len(picks), row_labels=["real", "reconstruction"]).save(
            args.out / row["recon_grid"])
        sampler.detach_hooks()
    return row


def sampler_images(ws, sampler):
    """The training images in the order BSA learned their latents (the dataset's order)."""
    from studio.data.dataset import Dataset

    return Dataset.open(ws, "train").load_tensors(32)[0]


HEADER = ("| method | budget | steps | train s | fidelity | precision | recall | KID×10³ | memorised (features / pixels) "
          "| reconstruction L1 | grids |")
SEPARATOR = "|---|---|---|---|---|---|---|---|---|---|---|"


def format_row(r: dict) -> str:
    return (f"{r['method']:9} {r['budget']:6} {r['steps']:6d} steps {r['train_s']:6.1f} s  fidelity {r['fidelity']:.2f}  "
            f"precision {r['precision']:.2f}  recall {r['recall']:.2f}  KID×10³ {r['kid_x1000']:.1f}  "
            f"memorised {r['memorised']:.2f}/{r['memorised_pixels']:.2f}  recon {r['recon_l1']}")


def markdown_row(r: dict) -> str:
    grids = f"[samples]({r['grid']})" + (f", [reconstructions]({r['recon_grid']})" if r.get("recon_grid") else "")
    recon = f"{r['recon_l1']:.3f}" if r["recon_l1"] is not None else "—"
    return (f"| {r['method']} | {r['budget']} | {r['steps']} | {r['train_s']:.0f} | {r['fidelity']:.2f} | "
            f"{r['precision']:.2f} | {r['recall']:.2f} | {r['kid_x1000']:.1f} ± {r['kid_err_x1000']:.1f} | "
            f"{r['memorised']:.2f} / {r['memorised_pixels']:.2f} | {recon} | {grids} |")


if __name__ == "__main__":
    main()
