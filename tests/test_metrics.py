"""studio.metrics on cases whose answer is known: real images as "samples", wrong classes, collapse, noise,
point clouds; and `python -m studio evaluate` on a tiny BSA run."""

from __future__ import annotations

import json
from pathlib import Path
import math

import pytest
import torch

from studio.cli import main
from studio.data.augment import to_tensor
from studio.data.demo import DEMO_CLASSES, demo_images
from studio.errors import UserError
from studio.metrics import density_coverage, evaluate_sampler, precision_recall, train_classifier

REAL_PER_CLASS, POOL_PER_CLASS = 20, 10
N = 3 * POOL_PER_CLASS


class PoolSampler:
    """A stand-in generator that returns images from a fixed pool per class (seeded order, cycling)."""

    def __init__(self, pools: dict[str, torch.Tensor]):
        self.pools = pools
        self.classes = list(pools)

    def sample(self, n: int, *, label: str | None = None, seed: int = 0, **_) -> torch.Tensor:
        pool = self.pools[label]
        order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
        return pool[order.repeat(math.ceil(n / len(pool)))[:n]]


class NoiseSampler:
    classes = list(DEMO_CLASSES)

    def sample(self, n: int, *, label: str | None = None, seed: int = 0, **_) -> torch.Tensor:
        return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def demo():
    """Demo art at 32 px: the first 20 per class are the real set, the other 10 a pool the judge never sees."""
    per = REAL_PER_CLASS + POOL_PER_CLASS
    items = list(demo_images(per_class=per, size=32))
    x = torch.stack([to_tensor(img) for _, _, img in items])
    y = torch.tensor([DEMO_CLASSES.index(label) for label, _, _ in items])
    is_real = torch.arange(len(x)) % per < REAL_PER_CLASS
    pools = {c: x[~is_real & (y == i)] for i, c in enumerate(DEMO_CLASSES)}
    judge = train_classifier(x[is_real], y[is_real], len(DEMO_CLASSES), seed=0)
    return x[is_real], y[is_real], pools, judge


def evaluate(demo, sampler) -> dict:
    real, labels, _, judge = demo
    return evaluate_sampler(sampler, real, labels, list(DEMO_CLASSES), n=N, seed=0, classifier=judge)


def test_judge_generalises_to_unseen_real_images(demo):
    _, _, _, judge = demo
    assert judge.trained and judge.train_images == 48 and judge.heldout_images == 12
    assert judge.heldout_accuracy >= 0.7  # 10 of 12 with seed 0; chance is 1/3


def test_unseen_real_images_score_as_real(demo):
    r = evaluate(demo, PoolSampler(demo[2]))
    assert r["n_samples"] == N and r["classes"] == list(DEMO_CLASSES) and r["chance"] == pytest.approx(1 / 3, abs=1e-3)
    assert r["fidelity"]["mean"] > 0.8
    assert r["precision"]["mean"] > 0.7 and r["recall"]["mean"] > 0.7
    assert r["density"]["mean"] > 0.6 and r["coverage"]["mean"] > 0.5  # 10 samples cannot reach all 20 balls
    assert 0.75 < r["diversity"]["mean_ratio"] < 1.33 and 0.75 < r["diversity"]["mean_pixel_ratio"] < 1.33
    assert 0.6 < r["diversity"]["mean_brightness_ratio"] < 1.6
    json.dumps(r)  # JSON-able


def test_wrong_class_has_low_fidelity(demo):
    pools = demo[2]
    shifted = {c: pools[DEMO_CLASSES[(i + 1) % 3]] for i, c in enumerate(DEMO_CLASSES)}
    r = evaluate(demo, PoolSampler(shifted))
    assert r["fidelity"]["mean"] < 0.2
    # Real-looking art, only not of the class asked for: class-blind (pooled) precision stays high.
    assert r["precision"]["pooled"] > 0.7 and r["precision"]["mean"] < r["precision"]["pooled"]


def test_collapsed_sampler_has_no_diversity_and_low_recall(demo):
    one_each = {c: pool[:1] for c, pool in demo[2].items()}
    r = evaluate(demo, PoolSampler(one_each))
    assert r["diversity"]["mean_ratio"] < 0.2 and r["diversity"]["mean_pixel_ratio"] < 0.2
    assert r["recall"]["mean"] < 0.2 and r["coverage"]["mean"] <= 0.2  # one sample can sit in one ball of each class


def test_noise_has_low_precision(demo):
    r = evaluate(demo, NoiseSampler())
    assert r["precision"]["mean"] < 0.2 and r["precision"]["pooled"] < 0.2 and r["density"]["mean"] < 0.1


def test_precision_recall_on_point_clouds():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(50, 8, generator=g)
    b = torch.randn(50, 8, generator=g) + 100
    assert precision_recall(a, a) == (1.0, 1.0)
    assert precision_recall(a, b) == (0.0, 0.0)
    # Samples that cover one of two real modes exactly: all realistic, half the real data missed.
    assert precision_recall(torch.cat([a, b]), a) == (1.0, 0.5)
    assert density_coverage(a, b) == (0.0, 0.0)
    assert density_coverage(torch.cat([a, b]), a)[1] == 0.5


def test_density_is_not_fooled_by_an_outlier():
    # A tight real cluster plus one real outlier at distance 10, whose 3rd neighbour is the cluster:
    # its ball (radius ~10) holds samples at x=15 that look like nothing real.
    g = torch.Generator().manual_seed(0)
    real = torch.cat([torch.randn(20, 2, generator=g) * 0.1, torch.tensor([[10.0, 0.0]])])
    fake = torch.randn(10, 2, generator=g) * 0.1 + torch.tensor([15.0, 0.0])
    assert precision_recall(real, fake)[0] == 1.0
    assert density_coverage(real, fake) == (pytest.approx(1 / 3), pytest.approx(1 / 21))


def test_classifier_is_deterministic_for_a_seed(demo):
    real, labels, _, _ = demo
    a, b = (train_classifier(real, labels, 3, steps=5, seed=3) for _ in range(2))
    c = train_classifier(real, labels, 3, steps=5, seed=4)
    assert torch.equal(a.embed(real), b.embed(real)) and not torch.equal(a.embed(real), c.embed(real))
    wide = train_classifier(real, labels, 3, steps=5, seed=3, width=32)  # bench/quality.py's --strong-judge
    assert wide.embed(real).shape == (len(real), 32 + 64 + 128) and wide.heldout_accuracy is not None


def test_the_same_judge_is_trained_once_and_any_change_trains_another(demo, monkeypatch):
    """Evaluate, then "Over the saved checkpoints": one judge, not two trainings of 12-16 s."""
    from collections import OrderedDict

    from studio import evaluate as ev

    trained = []
    monkeypatch.setattr(ev, "_judges", OrderedDict())
    monkeypatch.setattr(ev, "train_classifier", lambda x, y, n, **kw: trained.append((len(x), n, kw["seed"])) or object())
    real, labels, _, _ = demo
    classes, every = list(DEMO_CLASSES), NoiseSampler()
    judge = ev.train_judge(every, real, labels, classes, seed=0)
    assert ev.train_judge(every, real.clone(), labels.clone(), classes, seed=0) is judge and len(trained) == 1
    ev.train_judge(every, real, labels, classes, seed=1)
    ev.train_judge(every, real.flip(-1), labels, classes, seed=0)
    ev.train_judge(PoolSampler({c: real[:1] for c in classes[:2]}), real, labels, classes, seed=0)
    assert trained == [(60, 3, 0), (60, 3, 1), (60, 3, 0), (40, 2, 0)]


def test_one_class_needs_no_judge_and_missing_classes_are_refused(demo):
    real, labels, pools, _ = demo
    r = evaluate_sampler(PoolSampler({"geometric": pools["geometric"]}), real, labels, list(DEMO_CLASSES), n=10)
    assert r["fidelity"] == {"geometric": 1.0, "mean": 1.0} and r["chance"] == 1.0
    assert not r["classifier"]["trained"] and "trivially 1.0" in r["classifier"]["note"]
    assert r["diversity"]["geometric"]["ratio"] > 0.5
    with pytest.raises(UserError, match="baroque"):
        evaluate_sampler(PoolSampler({"baroque": pools["geometric"]}), real, labels, list(DEMO_CLASSES))


def test_evaluate_cli_on_a_tiny_bsa_run(tmp_path, capsys, quick_judge):
    ws = str(tmp_path / "ws")
    assert main(["--workspace", ws, "dataset", "demo", "demo", "--per-class", "12", "--size", "32"]) == 0
    assert main(["--workspace", ws, "train", "bsa", "--dataset", "demo", "--run", "r", "--model", "tiny",
                 "--perceptual", "none", "--iters", "4", "--checkpoint-every", "2"]) == 0
    capsys.readouterr()
    assert main(["--workspace", ws, "evaluate", "--run", "r", "--n", "60", "--features", "tiny", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("n_samples", "classes", "chance", "classifier", "fidelity", "diversity", "precision", "recall",
                "density", "coverage", "k", "kid", "fid", "memorisation", "feature_diversity", "features"):
        assert key in report
    assert report["n_samples"] == 60 and report["classes"] == list(DEMO_CLASSES) and report["dataset"] == "demo"
    assert set(report["classifier"]) >= {"heldout_accuracy", "train_images"}
    assert 0 <= report["memorisation"]["fraction"] <= 1 and len(report["memorisation"]["gallery"]) == 8
    assert all(Path(item["image"]).exists() for item in report["memorisation"]["gallery"])
    assert json.loads((tmp_path / "ws" / "runs" / "r" / "eval.json").read_text()) == report

    assert main(["--workspace", ws, "evaluate", "--run", "r", "--n", "30", "--features", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "KID ×10³" in out and "Memorised" in out and "mode collapse" in out
    assert main(["--workspace", ws, "evaluate", "--run", "r", "--n", "30", "--features", "tiny", "--over-checkpoints",
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["step"] for r in rows] == [2, 4] and all(0 <= r["memorised"] <= 1 for r in rows)
    assert main(["--workspace", ws, "evaluate", "--run", "r", "--step", "2", "--n", "30", "--features", "tiny", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 2
    assert main(["--workspace", ws, "evaluate", "--run", "nope", "--json"]) == 2
    assert "no run named" in capsys.readouterr().err
    assert main(["--workspace", ws, "evaluate", "--run", "r", "--n", "30"]) == 2  # CLIP weights are not here (offline)
    assert "ViT-B-32" in capsys.readouterr().err


def test_evaluate_offers_every_feature_network_the_judge_included(tmp_path, monkeypatch, capsys):
    from studio import evaluate
    from studio.models.features import FEATURE_NETS

    asked = []
    monkeypatch.setattr(evaluate, "evaluate_run", lambda ws, run, **kw: asked.append(kw["features"]) or {})
    for name in FEATURE_NETS:
        assert main(["--workspace", str(tmp_path), "evaluate", "--run", "r", "--features", name, "--json"]) == 0
    assert asked == list(FEATURE_NETS) and "judge" in asked


def test_samples_far_darker_or_lighter_than_the_real_ones_show_in_the_brightness_ratio(demo):
    # Half of each class's real images pushed to near-black, half to near-white: what uncapped mode seeking did to some
    # of the cGAN's samples, and mode_seeking_cap curbs (docs/quality.md, "An eighth round").
    extremes = {c: pool.float().clone() for c, pool in demo[2].items()}
    for pool in extremes.values():
        pool[::2] = pool[::2] * 0.2 - 0.8
        pool[1::2] = pool[1::2] * 0.2 + 0.8
    r = evaluate(demo, PoolSampler(extremes))
    assert r["diversity"]["mean_brightness_ratio"] > 2
