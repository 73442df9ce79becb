"""Measured, not assumed: does a model make the class it is asked for, realistically and diversely?

    fidelity   share of class-c samples a judge classifier assigns to c (chance = 1/classes)
    diversity  mean pairwise distance within a class's samples / the same on its real images
               (mode collapse shows as a ratio well below 1, e.g. < 0.5); in feature and pixel space;
               and the spread of the images' mean brightness, samples / real (well above 1: some
               samples are far darker or lighter than any real image of the class)
    precision  share of samples inside the real manifold (realism)             Kynkäänniemi et al.
    recall     share of real images inside the generated manifold (coverage)   2019, k-NN balls, k=3
    density, coverage   Naeem et al. 2020: the same balls, robust to one outlying real image whose
               huge ball swallows everything (common with 10-20 images per class)

The usual feature network is ImageNet-trained; there is none offline here, so the judge is a small
CNN trained on the dataset itself (with DiffAugment, so 25-300 images are enough), and its
held-out accuracy is reported so users know whether to trust it. Its penultimate embedding is the
feature space for diversity and the k-NN metrics. Consequences: the numbers compare runs on the
same dataset evaluated with the same seed, never figures in the literature; and because the judge
has trained on most of the real images it embeds them a little more tightly than new ones, so on
the demo set unseen real images read diversity ~1.05-1.25 and precision ~0.75-0.95, not 1.0.
The pixel-space diversity has no such bias.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from studio.data.augment import diff_augment
from studio.devices import Adam, autocast, resolve_precision
from studio.errors import UserError
from studio.quality import mean_pairwise_distance

AUGMENT = "color,translation,cutout,flip"
WORK_SIZE = 32   # the judge sees every image at this side, so its cost doesn't grow with the model's resolution
PIXEL_SIZE = 16  # pixel-space diversity at low resolution: layout and colour, not grain
KNN_METRICS = ("precision", "recall", "density", "coverage")


class Sampler(Protocol):
    classes: list[str]

    def sample(self, n: int, *, label: str | None, seed: int) -> torch.Tensor: ...


class Classifier(nn.Module):
    """A small CNN judge: three conv stages (32 -> 16 -> 8 -> 4 px) and a linear head.

    `features` is the penultimate embedding the head reads: each stage's activations averaged over
    the image, concatenated (16 + 32 + 64 = 112 numbers). The early stages keep generic colour and
    edge statistics that the class-specific last stage discards; with the last stage alone, uniform
    noise landed inside the real manifold (precision up to 0.7 on the demo set).
    BatchNorm, in eval mode outside training, so a feature never depends on the rest of the batch
    (GroupNorm normalised each image's own statistics away and did not fit the demo set). Width 16
    does as well as 32 there (held-out accuracy ~0.87; the limit is 10-20 images a class) at half the cost.

    `precision` (auto|fp32|bf16) is that of its inference passes (embed, predict, set_scale; see `judge_precision`),
    features returned in fp32. Training stays fp32, so a seed gives the same judge on every machine.
    """

    def __init__(self, n_classes: int, width: int = 16, size: int = WORK_SIZE, precision: str = "auto"):
        super().__init__()
        self.size, self.precision = size, precision
        chans = [3, width, 2 * width, 4 * width]
        self.widths = chans[1:]
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 3, padding=1), nn.BatchNorm2d(chans[i + 1]), nn.ReLU(),
                          nn.Conv2d(chans[i + 1], chans[i + 1], 3, stride=2, padding=1), nn.ReLU())
            for i in range(3))
        self.head = nn.Linear(sum(self.widths), n_classes)
        self.register_buffer("stage_scale", torch.ones(3))
        self.heldout_accuracy: float | None = None  # None: nothing held out, or one class (nothing to judge)
        self.train_images = 0
        self.heldout_images = 0
        self.trained = False

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (self.size, self.size):
            return x
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate embedding [B, D] of images [B, 3, H, W] in [-1, 1]."""
        h, pooled = self.resize(x), []
        for stage in self.stages:
            h = stage(h)
            pooled.append(h.mean(dim=(2, 3)))
        return torch.cat(pooled, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def inference_precision(self) -> str:
        """fp32 or bf16: what `precision` means on the device the judge sits on."""
        return judge_precision(self.precision, self.stage_scale.device)

    @torch.no_grad()
    def _batched(self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch: int = 256) -> torch.Tensor:
        self.eval()
        dev = self.stage_scale.device
        out = []
        with autocast(dev, self.inference_precision()):
            for i in range(0, len(x), batch):
                y = fn(x[i:i + batch].to(dev).float())
                out.append(y.float() if y.is_floating_point() else y)  # norms and distances downstream in fp32
        return torch.cat(out)

    def set_scale(self, x: torch.Tensor) -> None:
        """Fit each stage's scale (its mean feature norm on x) so every stage weighs the same in `embed`."""
        parts = self._batched(self.features, x).split(self.widths, dim=1)
        self.stage_scale.copy_(torch.stack([p.norm(dim=1).mean().clamp_min(1e-8) for p in parts]))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The metric space: `features` with each stage divided by its scale.

        Not L2-normalised per image: how strongly an image excites the filters is part of what
        tells noise from art, and normalising it away let noise into the real manifold.
        """
        parts = self._batched(self.features, x).split(self.widths, dim=1)
        return torch.cat([p / s for p, s in zip(parts, self.stage_scale)], dim=1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self._batched(lambda b: self(b).argmax(1), x)


def judge_precision(precision: str, device: str | torch.device) -> str:
    """The judge's inference precision: fp32 under auto, bf16 only when asked for by name.

    On one AMX core bf16 embedded 64 images in 5 ms instead of 7 (bench/eval_features.py): milliseconds an evaluation,
    whose judge trains for seconds. And it moved k-NN ball memberships: a collapsed sampler's coverage on the demo set
    went from 0.20 to 0.22, past tests/test_metrics.py's bound. Not worth numbers that differ between machines.
    """
    return "fp32" if precision == "auto" else resolve_precision(precision, torch.device(device))


def stratified_split(labels: torch.Tensor, holdout: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, held-out): about `holdout` of every class held out, never a class's last image."""
    g = torch.Generator().manual_seed(seed)
    train, held = [], []
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = min(round(holdout * len(idx)), len(idx) - 1)
        held.append(idx[:k])
        train.append(idx[k:])
    return torch.cat(train).sort().values, torch.cat(held).sort().values


def train_classifier(images: torch.Tensor, labels: torch.Tensor, n_classes: int, *, steps: int = 500,
                     batch: int = 16, lr: float = 2e-3, holdout: float = 0.2, seed: int = 0, width: int = 16,
                     device: str | torch.device = "cpu", precision: str = "auto") -> Classifier:
    """Train the judge on images [N, 3, H, W] in [-1, 1]; same seed, same judge.

    The judge is the model trained on the stratified (1 - holdout) split, so `heldout_accuracy`
    is the accuracy of exactly the classifier whose verdicts are reported. With one class there
    is nothing to learn: the network stays at its seeded random init (random conv features still
    separate images usefully for diversity and precision/recall) and `trained` is False.
    `precision` is the judge's at inference (see Classifier); it trains in fp32.
    """
    device = torch.device(device)
    resolve_precision(precision, device)  # a bad name is refused before the judge trains
    with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's global RNG
        torch.manual_seed(seed)
        model = Classifier(n_classes, width=width, precision=precision).to(device)
    if n_classes < 2:
        model.train_images = len(images)
        model.set_scale(images)
        return model.eval()
    train_idx, held_idx = stratified_split(labels.cpu(), holdout, seed)
    x = model.resize(images[train_idx].to(device).float())  # resize once, then augment at the working size
    y = labels[train_idx].to(device)
    g = torch.Generator().manual_seed(seed + 1)
    opt = Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    model.train()
    for _ in range(steps):
        pick = torch.randint(0, len(x), (min(batch, len(x)),), generator=g).to(device)
        loss = F.cross_entropy(model(diff_augment(x[pick], AUGMENT, g)), y[pick], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.set_scale(x)
    model.trained, model.train_images, model.heldout_images = True, len(train_idx), len(held_idx)
    if len(held_idx):
        pred = model.predict(images[held_idx])
        model.heldout_accuracy = (pred.cpu() == labels[held_idx].cpu()).float().mean().item()
    return model


def class_fidelity(classifier: Classifier, samples_by_class: dict[str, torch.Tensor],
                   classes: list[str] | None = None) -> dict[str, float]:
    """Per class: the fraction of its samples the judge assigns to it; plus the mean and chance.

    `classes` is the judge's class order (default: the dict's order).
    """
    classes = list(classes or samples_by_class)
    out: dict[str, float] = {}
    for c, x in samples_by_class.items():
        out[c] = 1.0 if len(classes) == 1 else (classifier.predict(x).cpu() == classes.index(c)).float().mean().item()
    out["mean"] = sum(out[c] for c in samples_by_class) / len(samples_by_class)
    out["chance"] = 1.0 / len(classes)
    return out


def pixel_vectors(images: torch.Tensor) -> torch.Tensor:
    """Images at PIXEL_SIZE, flattened and divided by sqrt(D) so distances read as RMS per pixel."""
    x = F.interpolate(images.float(), size=(PIXEL_SIZE, PIXEL_SIZE), mode="bilinear", antialias=True, align_corners=False)
    return x.flatten(1) / math.sqrt(x[0].numel())


def brightness_spread(images: torch.Tensor) -> float | None:
    """Standard deviation of the images' mean brightness (None for fewer than two images)."""
    return float(images.float().mean(dim=(1, 2, 3)).std()) if len(images) > 1 else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row (k is capped at N-1)."""
    k = min(k, len(x) - 1)
    if k < 1:
        return torch.zeros(len(x), device=x.device)
    return torch.cdist(x, x).kthvalue(k + 1, dim=1).values  # +1: the 0 distance to itself comes first


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of feature sets real [N, D], fake [M, D].

    A set's manifold is the union of balls around its points, radius = distance to the k-th
    nearest neighbour in the same set. precision: share of fake inside the real manifold;
    recall: share of real inside the fake manifold. Boundaries count as inside, so identical
    sets give 1.0/1.0.
    """
    real, fake = real.float(), fake.float()
    d = torch.cdist(fake, real)  # [M, N]
    precision = (d <= knn_radii(real, k)[None, :]).any(dim=1).float().mean().item()
    recall = (d <= knn_radii(fake, k)[:, None]).any(dim=0).float().mean().item()
    return precision, recall


def density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020) on the real k-NN balls only.

    density: real balls containing each sample, averaged and divided by k (about 1 when samples
    are distributed like the real images; one outlier's ball alone gives 1/k). coverage: share
    of real images whose ball holds at least one sample.
    """
    real, fake = real.float(), fake.float()
    inside = torch.cdist(fake, real) <= knn_radii(real, k)[None, :]
    density = inside.sum().item() / (max(min(k, len(real) - 1), 1) * len(fake))
    return density, inside.any(dim=0).float().mean().item()


def sample_by_class(sampler: Sampler, n: int, seed: int) -> dict[str, torch.Tensor]:
    """n samples split evenly over the sampler's classes (class i drawn with seed + i), on the CPU."""
    classes = list(sampler.classes)
    return {c: sampler.sample(n // len(classes) + (i < n % len(classes)), label=c, seed=seed + i).detach().float().cpu()
            for i, c in enumerate(classes)}


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def evaluate_sampler(sampler: Sampler, images: torch.Tensor, labels: torch.Tensor, classes: list[str], *,
                     n: int = 200, seed: int = 0, k: int = 3, device: str | torch.device = "cpu",
                     classifier: Classifier | None = None, classifier_steps: int = 500,
                     samples: dict[str, torch.Tensor] | None = None, precision: str = "auto") -> dict[str, Any]:
    """Draw n samples split evenly over the sampler's classes and measure them against the real images.

    images [N, 3, H, W] in [-1, 1] with labels indexing `classes` (Dataset.load_tensors' output).
    The judge is trained here on the real images of the sampler's classes, unless one is given
    (trained on the same classes in the sampler's order), e.g. to evaluate several runs alike; and
    `samples` (sample_by_class's output) when the caller measures the same samples in other ways too.
    `precision` is the judge's at inference when it is trained here (a given judge keeps its own).
    Returns a JSON-able dict.
    """
    wanted = list(sampler.classes)
    missing = [c for c in wanted if c not in classes]
    if missing:
        raise UserError(f"The model makes the classes {', '.join(missing)}, which the dataset does not have "
                        f"(it has {', '.join(classes)}); evaluate against a dataset with the same classes.")
    if n < 2 * len(wanted):
        raise UserError(f"Ask for at least {2 * len(wanted)} samples (two per class) to measure diversity.")
    # Keep only the classes the model makes, renumbered in the sampler's order.
    remap = torch.tensor([wanted.index(c) if c in wanted else -1 for c in classes])
    labels = remap[labels.cpu()]
    keep = labels >= 0
    images, labels = images[keep.to(images.device)], labels[keep]

    samples = samples or sample_by_class(sampler, n, seed)
    res = next(iter(samples.values())).shape[-1]
    if images.shape[-1] != res:  # compare at the resolution the model makes
        images = F.interpolate(images.float(), size=(res, res), mode="bilinear", antialias=True, align_corners=False)
    images = images.float().cpu()

    if classifier is None:
        classifier = train_classifier(images, labels, len(wanted), steps=classifier_steps, seed=seed, device=device,
                                      precision=precision)
    fidelity = class_fidelity(classifier, samples, wanted)
    chance = fidelity.pop("chance")

    real_feats = classifier.embed(images).cpu()
    fake_feats = {c: classifier.embed(x).cpu() for c, x in samples.items()}

    def mean(values: list[float | None]) -> float | None:
        vals = [v for v in values if v is not None]
        return _r(sum(vals) / len(vals)) if vals else None

    def knn_metrics(real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        return dict(zip(KNN_METRICS, (*precision_recall(real, fake, k), *density_coverage(real, fake, k))))

    diversity: dict[str, Any] = {}
    knn: dict[str, dict[str, float | None]] = {m: {} for m in KNN_METRICS}
    for i, c in enumerate(wanted):
        rf, ff = real_feats[labels == i], fake_feats[c]
        d_fake, d_real = mean_pairwise_distance(ff), mean_pairwise_distance(rf)
        p_fake = mean_pairwise_distance(pixel_vectors(samples[c]))
        p_real = mean_pairwise_distance(pixel_vectors(images[labels == i]))
        diversity[c] = {"samples": _r(d_fake), "real": _r(d_real), "ratio": _r(_ratio(d_fake, d_real)),
                        "pixel_samples": _r(p_fake), "pixel_real": _r(p_real), "pixel_ratio": _r(_ratio(p_fake, p_real)),
                        "brightness_ratio": _r(_ratio(brightness_spread(samples[c]), brightness_spread(images[labels == i])))}
        for m, v in knn_metrics(rf, ff).items():
            knn[m][c] = _r(v)
    diversity["mean_ratio"] = mean([diversity[c]["ratio"] for c in wanted])
    diversity["mean_pixel_ratio"] = mean([diversity[c]["pixel_ratio"] for c in wanted])
    diversity["mean_brightness_ratio"] = mean([diversity[c]["brightness_ratio"] for c in wanted])
    # "mean" averages the per-class figures (what a conditional model is asked for); "pooled"
    # ignores labels, as an unconditional evaluation would (a class mix-up goes unnoticed there).
    pooled = knn_metrics(real_feats, torch.cat(list(fake_feats.values())))
    for m in KNN_METRICS:
        knn[m].update(mean=mean(list(knn[m].values())), pooled=_r(pooled[m]))
    judge: dict[str, Any] = {"heldout_accuracy": _r(classifier.heldout_accuracy), "train_images": classifier.train_images,
                             "heldout_images": classifier.heldout_images, "trained": classifier.trained,
                             "precision": classifier.inference_precision()}
    if len(wanted) == 1:
        judge["note"] = ("One class: fidelity is trivially 1.0, so no judge was trained; features for diversity, "
                         "precision and recall come from a seeded untrained network.")
    return {"n_samples": sum(len(x) for x in samples.values()), "classes": wanted, "resolution": res,
            "chance": _r(chance), "classifier": judge,
            "fidelity": {c: _r(v) for c, v in fidelity.items()}, "diversity": diversity,
            **knn, "k": k}
