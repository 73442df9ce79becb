"""Benchmark: what a cGAN recipe makes in a fixed wall-time budget, judged on held-out images of several datasets.

    python bench/quality.py [--datasets demo horizons textures posters ornaments] [--archs light fastgan]
                            [--budget-s 300] [--per-class 40] [--threads 2] [--eval-seeds 4] [--set KEY=VALUE …]
                            [--truncations 1 0.85 1.15] [--out docs/quality]

For each dataset family (studio/data/families.py) and architecture: paint `per-class` training images and as
many held-out ones per class (disjoint seeds), import the training half through the studio's import pipeline,
train `python -m studio train cgan`'s default recipe (plus --set overrides) for the budget, then measure the
samples against the held-out half: class fidelity (a judge CNN trained on the training half; beside it, what the
held-out paintings themselves score, the judge's own error on unseen real images), k-NN precision/recall
and density/coverage (means over classes), KID, and the spread ratio (samples' mean pairwise distance / real
images'), all in that judge's features, where held-out images and samples are equally unseen; printed and in the
JSON also the brightness spread (of the images' mean brightness, samples / real; studio.metrics) and the
straightness (how straight the samples' edges run, studio.quality.edge_straightness; beside it the held-out
paintings' own: round blobs where the paintings have facets score below them). The pseudo-arch
`real` draws its "samples" from the training half: what real images score, the ceiling of each column but fidelity
(the judge learnt from most of that half: fidelity's reference is the held-out half's own score, beside every cell).
Each score is a mean over --eval-seeds evaluation seeds (fresh samples and judge each), recall with its spread.
--truncations scores each trained generator again at other latent scales (z ~ N(0, t²)), one row each.
--strong-judge also scores fidelity with a judge trained three times as long on batches twice as large, twice as wide
(about a minute a judge on one thread instead of five seconds): whether a fidelity below the bar is the samples' or
the small judge's (docs/quality.md, the twenty-sixth round).
Writes a markdown table, JSON and one sample grid per cell (rows = classes) under --out.

Not a test: numbers depend on the machine and on what else runs on it; the budget is wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import asdict, fields
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["demo", "horizons", "textures", "posters", "ornaments"])
    p.add_argument("--archs", nargs="+", default=["real", "light", "fastgan"])
    p.add_argument("--budget-s", type=float, default=300.0, help="training wall time per cell")
    p.add_argument("--max-steps", type=int, help="also stop at this many steps (to compare recipes on a busy machine)")
    p.add_argument("--per-class", type=int, default=40, help="training images per class (and as many held out)")
    p.add_argument("--size", type=int, default=64, help="side of the stored images")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config or loop overrides, e.g. lecam=0.1")
    p.add_argument("--samples", type=int, default=120, help="samples per cell, split over the classes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-seeds", type=int, default=4, help="evaluation seeds a cell's scores are averaged over")
    p.add_argument("--truncations", nargs="+", type=float, metavar="T",
                   help="latent scales to score each trained generator at, one row each (training runs once); "
                        "default: the run's own (its config's truncation)")
    p.add_argument("--strong-judge", action="store_true",
                   help="also score fidelity (samples' and held-out paintings') with a larger, longer-trained judge")
    p.add_argument("--out", type=Path, default=Path("docs/quality"))
    p.add_argument("--tag", default="", help="suffix of the output files (to keep several sweeps)")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from studio.devices import prepare_process

    prepare_process(args.threads)  # as a job process does
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="quality-") as tmp:
        for family in args.datasets:
            for arch in args.archs:
                for row in run_cell(Path(tmp), family, arch, args):
                    rows.append(row)
                    print(format_row(row), flush=True)
    tag = f"-{args.tag}" if args.tag else ""
    (args.out / f"quality{tag}.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                             "torch": torch.__version__, "rows": rows}, indent=1))
    table = [HEADER, SEPARATOR, *(markdown_row(r) for r in rows)]
    (args.out / f"quality{tag}.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


HEADER = ("| dataset | arch | steps | truncation | fidelity (held-out real) | precision | recall | density | coverage | KID×10³ | spread "
          "| straightness (held-out real) | memorised (features / pixels) | grid |")
SEPARATOR = "|" + "---|" * HEADER.count(" |")


def parse_overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run_cell(tmp: Path, family: str, arch: str, args: argparse.Namespace) -> list[dict]:
    import torch

    from studio.data.dataset import create_demo_dataset
    from studio.jobspec import JobRequest, with_data_preset
    from studio.methods import load_run_sampler
    from studio.methods.cgan import CGANConfig
    from studio.run import RunFolder
    from studio.train import LoopConfig, run_training, training_configs
    from studio.workspace import Workspace

    ws = Workspace.resolve(tmp / f"{family}-{arch}")
    for split in ("train", "heldout"):
        create_demo_dataset(ws, split, family=family, split=split, per_class=args.per_class, seed=args.seed, size=args.size)
    if arch == "real":
        return [measure(ws, family, arch, RealSampler(ws, CGANConfig().resolution), args, steps=0, seconds=0.0, config={})]
    overrides = {"arch": arch, **parse_overrides(args.set)}
    config_keys = {f.name for f in fields(CGANConfig)}
    given = {k: v for k, v in overrides.items() if k in config_keys}
    # As `python -m studio train cgan` does: no preset named, so the images may pick one (studio.jobspec).
    spec, why = with_data_preset(ws, JobRequest("cgan", "run", dataset="train", config=given))
    if why:
        print(f"{family}: {why}", flush=True)
    cfg, loop = training_configs(ws, "cgan", "run", preset=spec.preset, config=given,
                                 loop={"iters": args.max_steps or 10**6, "sample_every": 10**6, "checkpoint_every": 10**6,
                                       **{k: v for k, v in overrides.items() if k in {f.name for f in fields(LoopConfig)}}})
    end = time.monotonic() + args.budget_s
    started = time.monotonic()
    run_training(ws, method="cgan", run_name="run", dataset="train", cfg=cfg, loop=loop, device="cpu",
                 should_stop=lambda: time.monotonic() > end)
    seconds = time.monotonic() - started
    sampler, _, ckpt = load_run_sampler(RunFolder(ws.run_dir("run")), torch.device("cpu"))
    config = {k: v for k, v in asdict(cfg).items() if k in overrides or k in ("resolution", "batch")}
    if spec.preset:
        config["preset"] = spec.preset
    return [measure(ws, family, arch, AtTruncation(sampler, t), args, steps=int(ckpt.meta["step"]), seconds=seconds,
                    config=config) for t in args.truncations or [sampler.default_truncation]]


class AtTruncation:
    """A run's sampler drawing its latents at scale `t` (z ~ N(0, t²)); everything else is the sampler's."""

    def __init__(self, sampler, t: float):
        self.sampler, self.truncation = sampler, t

    def __getattr__(self, name: str):
        return getattr(self.sampler, name)

    def sample(self, n: int, *, label: str, seed: int = 0, **_):
        return self.sampler.sample(n, label=label, seed=seed, truncation=self.truncation)

    def grid(self, per_class: int, seed: int = 0):
        return self.sampler.grid(per_class, seed=seed, truncation=self.truncation)


class RealSampler:
    """The training half's images as if a model made them: the scores real images get."""

    def __init__(self, ws, resolution: int):
        from studio.data.dataset import Dataset

        self.images, self.labels, self.classes = Dataset.open(ws, "train").load_tensors(resolution)

    def sample(self, n: int, *, label: str, seed: int = 0, **_):
        import torch

        pool = self.images[self.labels == self.classes.index(label)]
        order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
        return pool[order.repeat(n // len(pool) + 1)[:n]]

    def grid(self, per_class: int, seed: int = 0):
        import torch

        return torch.cat([self.sample(per_class, label=c, seed=seed) for c in self.classes])


def measure(ws, family: str, arch: str, sampler, args: argparse.Namespace, *, steps: int, seconds: float,
            config: dict) -> dict:
    """The scores of one cell, averaged over `args.eval_seeds` evaluation seeds from `args.seed` (each draws its own
    samples and trains its own judge); `recall_sd` is recall's standard deviation across them, up to 0.17 on one
    generator with 40 held-out images a class (docs/quality.md, "An eighth round")."""
    from statistics import fmean, stdev

    from studio.data.augment import image_grid
    from studio.data.dataset import Dataset

    resolution = sampler.grid(1)[0].shape[-1]
    train, heldout = (Dataset.open(ws, split).load_tensors(resolution) for split in ("train", "heldout"))
    runs = [_measure_once(sampler, train, heldout, args.samples, seed, strong_judge=args.strong_judge)
            for seed in range(args.seed, args.seed + args.eval_seeds)]
    mean = {k: round(fmean(r[k] for r in runs), 4) for k in runs[0] if k != "per_class"}
    per_class = {m: {c: round(fmean(r["per_class"][m][c] for r in runs), 4) for c in runs[0]["per_class"][m]}
                 for m in runs[0]["per_class"]}
    recall_sd = stdev(r["recall"] for r in runs) if len(runs) > 1 else 0.0
    truncation = getattr(sampler, "truncation", 1.0)
    suffix = ("-" + args.tag if args.tag else "") + (f"-t{truncation:g}" if truncation != 1.0 else "")
    grid_path = args.out / f"{family}-{arch}{suffix}.png"
    image_grid(sampler.grid(8, seed=args.seed + 7).float().cpu(), nrow=8).save(grid_path)
    return {"dataset": family, "arch": arch, "steps": steps, "train_s": round(seconds, 1), "config": config,
            "truncation": truncation, **mean,
            "recall_sd": round(recall_sd, 4), "eval_seeds": len(runs), "per_class": per_class, "grid": grid_path.name}


STRONG_JUDGE = {"steps": 1500, "batch": 32, "width": 32}  # the default judge: 500 steps of 16 images, width 16


def _measure_once(sampler, train: tuple, heldout: tuple, n_samples: int, seed: int, *, strong_judge: bool = False) -> dict:
    """One evaluation seed's scores; `train` and `heldout` are the splits' (images, labels, classes)."""
    import torch

    from studio.metrics import class_fidelity, evaluate_sampler, sample_by_class, train_classifier
    from studio.quality import edge_straightness, kernel_inception_distance, memorisation

    (train_images, train_labels, classes), (images, labels, _) = train, heldout
    samples = sample_by_class(sampler, n_samples, seed)
    judge = train_classifier(train_images, train_labels, len(classes), seed=seed)
    report = evaluate_sampler(sampler, images, labels, classes, n=n_samples, seed=seed, classifier=judge,
                              samples=samples)
    # What a generator that drew exactly the held-out paintings would score: the judge's own error on unseen real ones.
    paintings = {c: images[labels == k] for k, c in enumerate(classes)}
    report["fidelity_heldout"] = class_fidelity(judge, paintings, classes)
    judged = ("fidelity", "fidelity_heldout")
    if strong_judge:
        strong = train_classifier(train_images, train_labels, len(classes), seed=seed, **STRONG_JUDGE)
        report["fidelity_strong"] = class_fidelity(strong, samples, classes)
        report["fidelity_heldout_strong"] = class_fidelity(strong, paintings, classes)
        judged += ("fidelity_strong", "fidelity_heldout_strong")
    # How straight edges run, in the samples and in the held-out paintings of each class (its reference, as fidelity's).
    straightness = {"straightness": {c: edge_straightness(samples[c]).mean().item() for c in classes},
                    "straightness_heldout": {c: edge_straightness(paintings[c]).mean().item() for c in classes}}
    fakes = torch.cat(list(samples.values()))
    with torch.no_grad():
        fake_feats = judge.embed(fakes).cpu()
        kid, kid_err = kernel_inception_distance(judge.embed(images.float()).cpu(), fake_feats)
        # Near-copies of training images (about 5% of fresh images are flagged by chance; studio.quality).
        mem = memorisation(judge.embed(train_images.float()).cpu(), fake_feats,
                           train_images.float().flatten(1).cpu(), fakes.float().flatten(1).cpu())
    return {"judge_heldout_accuracy": report["classifier"]["heldout_accuracy"], **{m: report[m]["mean"] for m in judged},
            "precision": report["precision"]["mean"], "recall": report["recall"]["mean"], "density": report["density"]["mean"],
            "coverage": report["coverage"]["mean"], "kid_x1000": 1000 * kid, "kid_err_x1000": 1000 * kid_err,
            "spread": report["diversity"]["mean_ratio"],
            **{m: sum(v.values()) / len(classes) for m, v in straightness.items()},
            "brightness": report["diversity"]["mean_brightness_ratio"],
            "memorised": mem["fraction"], "memorised_pixels": mem["pixel"]["fraction"],
            "per_class": {**{m: {c: v for c, v in report[m].items() if c not in ("mean", "pooled", "chance")}
                             for m in (*judged, "precision", "recall")}, **straightness}}


def format_row(r: dict) -> str:
    return (f"{r['dataset']:10} {r['arch']:8} {r['steps']:6d} steps  t {r['truncation']:g}  fidelity {r['fidelity']:.2f} (held-out real {r['fidelity_heldout']:.2f})  precision {r['precision']:.2f}  "
            f"recall {r['recall']:.2f} ± {r['recall_sd']:.2f}  density {r['density']:.2f}  coverage {r['coverage']:.2f}  KID×10³ {r['kid_x1000']:.1f}  "
            f"spread {r['spread']:.2f}  straightness {r['straightness']:.2f} (held-out real {r['straightness_heldout']:.2f})  "
            f"brightness spread {r['brightness']:.2f}  "
            f"memorised {r['memorised']:.2f}/{r['memorised_pixels']:.2f}"
            + (f"  strong judge: fidelity {r['fidelity_strong']:.2f} (held-out real {r['fidelity_heldout_strong']:.2f})"
               if "fidelity_strong" in r else ""))


def markdown_row(r: dict) -> str:
    return (f"| {r['dataset']} | {r['arch']} | {r['steps']} | {r['truncation']:g} | {r['fidelity']:.2f} ({r['fidelity_heldout']:.2f}) | {r['precision']:.2f} | {r['recall']:.2f} ± {r['recall_sd']:.2f} | "
            f"{r['density']:.2f} | {r['coverage']:.2f} | {r['kid_x1000']:.1f} ± {r['kid_err_x1000']:.1f} | {r['spread']:.2f} | "
            f"{r['straightness']:.2f} ({r['straightness_heldout']:.2f}) | {r['memorised']:.2f} / {r['memorised_pixels']:.2f} | [grid]({r['grid']}) |")


if __name__ == "__main__":
    main()
