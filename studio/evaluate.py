"""Evaluate a run at a click: is it art (close to the real set), is it diverse, or did it memorise the dataset?

Draws samples from a run's checkpoint (or from a snapshot of an earlier step) and measures them against
the dataset it trained on: the judge-based figures of studio.metrics (class fidelity, diversity,
precision/recall), KID and FID in a feature space (CLIP by default; Inception-v3; "judge": the embedding of the
judge trained on the dataset itself, which needs no download and so works everywhere; tiny for tests), and
memorisation: each sample's nearest training image, in features and in pixels. A blend run's report is its
prompt score and the base model's on the same prompt. Reports are JSON-able dicts written into the run folder.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F

from studio.data.dataset import Dataset
from studio.devices import autocast, resolve_precision
from studio.errors import UserError
from studio.methods import load_run_sampler
from studio.metrics import WORK_SIZE, Classifier, evaluate_sampler, judge_precision, sample_by_class, train_classifier
from studio.quality import diversity_ratio, frechet_distance, kernel_inception_distance, memorisation
from studio.run import RunFolder
from studio.workspace import Workspace, write_json_atomic

PIXEL_SIZE = 32      # memorisation in pixel space: layout and colour at a size where a copy is still a copy
GALLERY = 8          # sample | nearest training image pairs saved, worst first
MEANINGS = {
    "kid": "KID ×10³: how far generated images are from the real ones as a distribution (0 = indistinguishable). "
           "Unbiased, so fair on a small dataset; ± is its standard error.",
    "fid": "FID: the literature's distance between the two distributions. Biased upwards on small sets: compare "
           "runs only at the same number of samples.",
    "memorised": "Memorised: share of samples closer to a training image than 95% of training images are to each "
                 "other (about 5% happens by chance; much more means copies).",
    "diversity": "Diversity: spread of the samples / spread of the real images (near 0: mode collapse, one image "
                 "over and over; about 1: as varied as the dataset).",
    "fidelity": "Class fidelity: share of a class's samples that a judge trained on the dataset puts in that class. "
                "The judge errs on real images too: samples that score as the real ones are as recognisable as them.",
    "prompt": "Prompt score: CLIP similarity of the result with the prompt; the base BigGAN's on the same prompt "
              "and seed, for comparison.",
}


def evaluate_run(ws: Workspace, run_name: str, *, dataset: str | None = None, n: int = 200, seed: int = 0,
                 features: str = "clip", step: int | None = None, device: str | torch.device = "cpu",
                 feature_net=None, judge=None, save: bool = True, precision: str = "auto") -> dict[str, Any]:
    """The report card of a run at its latest checkpoint (or the snapshot at `step`).

    `precision` (auto|fp32|bf16) is that of the feature networks' and the judge's forward passes (see
    `feature_precision`); features are compared in fp32. Numbers compare between runs measured alike."""
    from studio.models.features import load_features

    resolve_precision(precision, torch.device(device))  # a bad name is refused before any work
    run = RunFolder(ws.run_dir(run_name))
    config = run.read_config()
    if config["method"] == "blend":
        return prompt_report(ws, run_name)
    started = time.perf_counter()
    if feature_net is None and features != "judge":  # first: weights that are not here refuse before minutes of work
        feature_net = load_features(features, device=device)
    sampler, config, ckpt = load_run_sampler(run, device, step)
    ds = Dataset.open(ws, dataset or config["dataset"])
    samples = sample_by_class(sampler, n, seed)
    resolution = next(iter(samples.values())).shape[-1]
    images, labels, classes = ds.load_tensors(resolution)
    if features == "judge" and feature_net is None and judge is None:  # one judge for the report and the features
        judge = train_judge(sampler, images, labels, classes, seed=seed, device=device, precision=precision)
    report = evaluate_sampler(sampler, images, labels, classes, n=n, seed=seed, device=device, samples=samples,
                              classifier=judge, precision=precision)
    fakes = torch.cat(list(samples.values()))
    net = feature_net or judge_features(judge, ds.name, device)
    net_precision = feature_precision(net, precision)
    with autocast(net.device, net_precision):
        real_f, fake_f = net(images), net(fakes)  # FeatureNet returns fp32: KID, FID and distances reduce in fp32
    kid, kid_se = kernel_inception_distance(real_f, fake_f)
    pixels = lambda x: F.interpolate(x.float(), size=(PIXEL_SIZE,) * 2, mode="bilinear", antialias=True,  # noqa: E731
                                     align_corners=False).flatten(1)
    mem = memorisation(real_f, fake_f, pixels(images), pixels(fakes))
    report.update({
        "run": run.name, "step": ckpt.meta.get("step"), "dataset": ds.name, "seed": seed, "features": net.name,
        "feature_precision": net_precision,
        "kid": {"value": kid, "std_error": kid_se}, "fid": frechet_distance(real_f, fake_f),
        "feature_diversity": diversity_ratio(fake_f, real_f),
        "memorisation": {"fraction": mem["fraction"], "expected": mem["quantile"], "threshold": mem["threshold"],
                         "pixel_fraction": mem["pixel"]["fraction"], "gallery": []},
    })
    if save:
        report["memorisation"]["gallery"] = _save_gallery(run, ds, fakes, images, mem, step)
    report["seconds"] = round(time.perf_counter() - started, 1)
    if save:
        write_json_atomic(run.path / ("eval.json" if step is None else f"eval/step_{step:06d}.json"), report)
    return report


def feature_precision(net, precision: str) -> str:
    """fp32 or bf16 for a FeatureNet's forward passes: `precision` resolved on its device (auto: bf16 where fast),
    except where auto measured no gain: CLIP on a CPU, which bf16 autocast makes slower there
    (studio.guide.clip_precision says why), and the judge (studio.metrics.judge_precision)."""
    from studio.guide import clip_precision

    if net.name.startswith("judge:"):
        return judge_precision(precision, net.device)
    resolved = resolve_precision(precision, net.device)
    return clip_precision(resolved, net.device) if net.name.startswith("clip:") else resolved


def train_judge(sampler, images: torch.Tensor, labels: torch.Tensor, classes: list[str], *, seed: int = 0,
                device: str | torch.device = "cpu", precision: str = "auto") -> Classifier:
    """The dataset-trained judge on the real images of the classes the sampler makes, in the sampler's order
    (what evaluate_sampler trains when it is given none)."""
    missing = [c for c in sampler.classes if c not in classes]
    if missing:
        raise UserError(f"The model makes the classes {', '.join(missing)}, which the dataset does not have "
                        f"(it has {', '.join(classes)}); evaluate against a dataset with the same classes.")
    keep = [classes.index(c) for c in sampler.classes]
    mask = torch.isin(labels, torch.tensor(keep))
    remap = {c: i for i, c in enumerate(keep)}
    x, y = images[mask], torch.tensor([remap[int(lb)] for lb in labels[mask]])
    digest = hashlib.sha256(x.cpu().contiguous().numpy().tobytes())
    digest.update(y.numpy().tobytes() + repr((len(keep), seed, str(device), precision)).encode())
    key = digest.hexdigest()
    with _judges_lock:
        if key in _judges:
            _judges.move_to_end(key)
            return _judges[key]
    judge = train_classifier(x, y, len(keep), seed=seed, device=device, precision=precision)
    with _judges_lock:
        _judges[key] = judge
        while len(_judges) > 4:
            _judges.popitem(last=False)
    return judge


# The last judges trained, by what they learnt from: the same judge again (Evaluate, then "Over the saved
# checkpoints", or Evaluate with more samples) is the same seeded training, 12-16 s on 2 CPU threads. Only read.
_judges: OrderedDict[str, Classifier] = OrderedDict()
_judges_lock = threading.Lock()


def judge_features(judge: Classifier, dataset: str, device: str | torch.device = "cpu"):
    """The judge's embedding (evaluate_sampler's metric space) as a FeatureNet for KID, FID and memorisation."""
    from studio.models.features import FeatureNet

    return FeatureNet(f"judge:{dataset}", sum(judge.widths), judge.embed, size=WORK_SIZE, device=device)


def _save_gallery(run: RunFolder, ds: Dataset, fakes, reals, mem: dict, step: int | None) -> list[dict]:
    """The most suspicious samples next to their nearest training image, as PNGs under runs/<name>/eval/."""
    from studio.data.augment import image_grid

    folder = run.path / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    tag = "latest" if step is None else f"step{step:06d}"
    items = []
    for rank, i in enumerate(mem["worst_first"][:GALLERY]):
        j = mem["nearest"][i]
        path = folder / f"memorisation_{tag}_{rank}.png"
        image_grid(torch.stack([fakes[i], reals[j]]), nrow=2).save(path)
        items.append({"image": str(path), "train_source": ds.images[j]["source"], "distance": mem["distance"][i],
                      "ratio": mem["ratio"][i], "memorised": mem["memorised"][i]})
    return items


def prompt_report(ws: Workspace, run_name: str) -> dict[str, Any]:
    """A blend's evaluation is its prompt score, and the base BigGAN's on the same prompt and seed if compared."""
    from studio.guide import blend_result

    result = blend_result(ws, run_name)
    if result is None:
        raise UserError(f"Blend {run_name!r} has no result yet: let it finish (or stop it) first.")
    base = result.get("base")
    return {"run": run_name, "method": "blend", "prompt": result["prompt"], "prompt_score": result["final_score"],
            "base_prompt_score": base["final_score"] if base else None, "clip": result["clip"]}


def evaluate_history(ws: Workspace, run_name: str, *, n: int = 60, seed: int = 0, features: str = "clip",
                     device: str | torch.device = "cpu", precision: str = "auto") -> list[dict[str, Any]]:
    """KID, memorisation, diversity and fidelity at every snapshot step: when did training start to copy?"""
    from studio.models.features import load_features

    run = RunFolder(ws.run_dir(run_name))
    steps = run.snapshot_steps()
    if not steps:
        raise UserError(f"Run {run_name!r} has no snapshots (they are kept at each checkpoint); train it further first.")
    net = None if features == "judge" else load_features(features, device=device)
    judge = None
    rows = []
    for step in steps:
        if judge is None:  # one judge for every step, so the steps are measured alike
            sampler, config, _ = load_run_sampler(run, device, step)
            images, labels, classes = Dataset.open(ws, config["dataset"]).load_tensors(sampler.sample(1, label=None, seed=0).shape[-1])
            judge = train_judge(sampler, images, labels, classes, seed=seed, device=device, precision=precision)
            net = net or judge_features(judge, config["dataset"], device)
        r = evaluate_run(ws, run_name, n=n, seed=seed, step=step, device=device, feature_net=net, judge=judge, save=False,
                         precision=precision)
        rows.append({"step": step, "kid_x1000": 1000 * r["kid"]["value"], "memorised": r["memorisation"]["fraction"],
                     "diversity": r["feature_diversity"]["ratio"], "fidelity": r["fidelity"].get("mean")})
    write_json_atomic(run.path / "eval_history.json", {"features": net.name, "n": n, "seed": seed, "rows": rows})
    return rows


def report_lines(report: dict[str, Any]) -> list[str]:
    """The report card as short lines, each number with what it means."""
    if report.get("method") == "blend":
        base = report["base_prompt_score"]
        return [f"Prompt score {report['prompt_score']:.4f}" + (f" (base BigGAN: {base:.4f})" if base is not None else ""),
                MEANINGS["prompt"]]
    kid, mem, div = report["kid"], report["memorisation"], report["feature_diversity"]
    fidelity = report["fidelity"].get("mean")
    lines = [f"KID ×10³ {1000 * kid['value']:.2f} ± {1000 * kid['std_error']:.2f}", MEANINGS["kid"],
             f"FID {report['fid']:.2f} ({report['n_samples']} samples)", MEANINGS["fid"],
             f"Memorised {100 * mem['fraction']:.0f}% of samples (by chance: about {100 * mem['expected']:.0f}%; "
             f"in pixels: {100 * mem['pixel_fraction']:.0f}%)", MEANINGS["memorised"],
             f"Diversity {div['ratio']:.2f}" if div["ratio"] is not None else "Diversity: -", MEANINGS["diversity"]]
    if fidelity is not None and len(report["classes"]) > 1:
        real = report["classifier"]["heldout_accuracy"]  # the figure to hold the samples' against
        lines += [f"Class fidelity {fidelity:.2f} (chance {report['chance']:.2f}"
                  + (f"; real images the judge did not learn from: {real:.2f})" if real is not None else ")"),
                  MEANINGS["fidelity"]]
    return lines
