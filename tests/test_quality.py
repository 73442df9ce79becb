"""studio.quality and studio.models.features on cases whose answer is known: Gaussians with a closed-form
FID, two samples of one distribution (KID ~ 0), copies of training images, held-out demo art, noise,
a collapsed generator, straight and round edges; feature nets loaded offline (tiny, tiny CLIP, Inception-v3 from a local file)."""

from __future__ import annotations

import math
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from studio.data.augment import to_tensor
from studio.data.demo import demo_images
from studio.errors import UserError
from studio.models.features import (
    INCEPTION_FILE, INCEPTION_URL, feature_status, inception_features, load_features,
)
from studio.quality import (
    diversity_ratio, edge_straightness, frechet_distance, kernel_inception_distance, memorisation,
)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Offline, with empty caches, and any download attempt fails the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def no_network(*args, **kwargs):
        pytest.fail("a download was attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))


def gaussian(n: int, mean: torch.Tensor, cov: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, len(mean), generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T + mean


def closed_form_fid(mu1, cov1, mu2, cov2) -> float:
    root = scipy.linalg.sqrtm(cov1.numpy() @ cov2.numpy()).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1.numpy() + cov2.numpy() - 2 * root))


def random_cov(d: int, seed: int) -> torch.Tensor:
    a = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


# --- FID ---------------------------------------------------------------------------------------------------

def test_fid_of_a_set_with_itself_is_zero():
    x = gaussian(50, torch.zeros(64), torch.eye(64, dtype=torch.float64), 0)  # n < D: singular covariance
    assert frechet_distance(x, x) == pytest.approx(0, abs=1e-8)
    y = gaussian(500, torch.zeros(8), torch.eye(8, dtype=torch.float64), 0)  # n > D: the other code path
    assert frechet_distance(y, y) == pytest.approx(0, abs=1e-8)


def test_fid_grows_with_a_mean_shift_and_is_symmetric():
    x, y = (gaussian(400, torch.zeros(8), torch.eye(8, dtype=torch.float64), s) for s in (1, 2))
    fids = [frechet_distance(x, y + shift) for shift in (0.0, 0.5, 1.0, 2.0)]
    assert fids == sorted(fids) and fids[0] < 0.2
    assert fids[3] == pytest.approx(8 * 2.0 ** 2, rel=0.05)  # ‖Δμ‖² dominates: 8 dims shifted by 2
    assert frechet_distance(x, y + 1) == pytest.approx(frechet_distance(y + 1, x), rel=1e-9)


@pytest.mark.parametrize("n", [3000, 40])  # n > D (covariance path) and n < D (sample path)
def test_fid_matches_the_closed_form_for_two_gaussians(n: int):
    d = 6 if n > 100 else 60
    mu1, mu2 = torch.zeros(d, dtype=torch.float64), torch.linspace(-1, 1, d, dtype=torch.float64)
    cov1, cov2 = random_cov(d, 1), random_cov(d, 2)
    x, y = gaussian(n, mu1, cov1, 3), gaussian(n, mu2, cov2, 4)
    if n > 100:  # large n: the estimate approaches the population value
        assert frechet_distance(x, y) == pytest.approx(closed_form_fid(mu1, cov1, mu2, cov2), rel=0.05)
    # At any n it is the formula applied to the sample statistics (what pytorch-fid computes with sqrtm).
    sample = closed_form_fid(x.mean(0), torch.cov(x.T), y.mean(0), torch.cov(y.T))
    assert frechet_distance(x, y) == pytest.approx(sample, rel=1e-6)


def test_fid_and_kid_refuse_sets_too_small():
    with pytest.raises(UserError, match="at least 2 images"):
        frechet_distance(torch.randn(1, 4), torch.randn(5, 4))
    with pytest.raises(UserError, match="at least 3 images"):
        kernel_inception_distance(torch.randn(2, 4), torch.randn(5, 4))


# --- KID ---------------------------------------------------------------------------------------------------

def test_kid_is_about_zero_for_two_samples_of_one_distribution():
    for seed in range(5):
        x, y = (gaussian(n, torch.zeros(16), torch.eye(16, dtype=torch.float64), 10 * seed + k)
                for k, n in ((0, 120), (1, 200)))
        value, error = kernel_inception_distance(x, y)
        assert abs(value) < 3 * error and abs(value) < 0.05


def test_kid_is_clearly_positive_for_a_shifted_distribution():
    x = gaussian(120, torch.zeros(16), torch.eye(16, dtype=torch.float64), 0)
    y = gaussian(200, torch.full((16,), 0.5), torch.eye(16, dtype=torch.float64), 1)
    value, error = kernel_inception_distance(x, y)
    assert value > 5 * error and value > 0.1


def test_kid_is_deterministic_and_matches_the_dense_formula():
    x, y = torch.randn(40, 8, generator=torch.Generator().manual_seed(0)), torch.randn(30, 8) + 0.3
    assert kernel_inception_distance(x, y) == kernel_inception_distance(x, y)
    k = lambda a, b: (a.double() @ b.double().T / 8 + 1) ** 3  # noqa: E731
    kxx, kyy = k(x, x), k(y, y)
    dense = ((kxx.sum() - kxx.trace()) / (40 * 39) + (kyy.sum() - kyy.trace()) / (30 * 29) - 2 * k(x, y).mean())
    assert kernel_inception_distance(x, y)[0] == pytest.approx(dense.item(), rel=1e-9)


# --- on demo art with the tiny feature net -----------------------------------------------------------------

@pytest.fixture(scope="module")
def art() -> dict[str, torch.Tensor]:
    """Demo art at 64 px: a training set (seed 0) and a held-out set from the same painter (seed 1)."""
    def paint(per_class: int, seed: int) -> torch.Tensor:
        return torch.stack([to_tensor(img) for _, _, img in demo_images(per_class=per_class, seed=seed, size=64)])

    return {"train": paint(20, 0), "heldout": paint(20, 1)}


def pixels(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=(32, 32), mode="bilinear", antialias=True, align_corners=False).flatten(1)


def test_copies_of_training_images_are_all_flagged_as_memorised(art):
    net = load_features("tiny")
    train, picked = art["train"], [3, 17, 40, 59, 17]
    result = memorisation(net(train), net(train[picked]), pixels(train), pixels(train[picked]))
    assert result["fraction"] == 1.0 and result["nearest"] == picked
    assert result["pixel"]["fraction"] == 1.0 and result["pixel"]["nearest"] == picked
    assert max(result["distance"]) == 0.0 and result["threshold"] > 0
    assert (result["n_train"], result["n_samples"], len(result["worst_first"])) == (60, 5, 5)


def test_fresh_images_of_the_same_painter_are_mostly_not_flagged(art):
    net = load_features("tiny")
    train, fresh = art["train"], art["heldout"]
    # Half copies, half new: the copies come first in worst_first, and only they sit below the threshold.
    samples = torch.cat([fresh[:30], train[:30]])
    result = memorisation(net(train), net(samples), pixels(train), pixels(samples))
    flags = result["memorised"]
    assert all(flags[30:]) and sum(flags[:30]) <= 3  # the threshold's 5% quantile lets ~1.5 of 30 through
    assert set(result["worst_first"][:30]) == set(range(30, 60))
    assert sum(result["pixel"]["memorised"][:30]) <= 3
    assert all(r >= 0 for r in result["ratio"]) and result["ratio"][30] == 0.0


def test_memorisation_needs_two_training_images():
    with pytest.raises(UserError, match="at least 2 training images"):
        memorisation(torch.randn(1, 8), torch.randn(4, 8))


def test_noise_and_flat_colour_score_worse_kid_than_held_out_art(art):
    net = load_features("tiny")
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(120, 3, 64, 64, generator=g) * 2 - 1
    flat = (torch.rand(120, 3, 1, 1, generator=g) * 2 - 1).expand(120, 3, 64, 64)
    real = net(art["train"])
    held, held_error = kernel_inception_distance(real, net(art["heldout"]))
    assert abs(held) < 3 * held_error
    for other in (noise, flat):
        # Most of the error comes from having 60 real images, shared by both comparisons (measured: it
        # hardly shrinks with more samples), so "2 errors above held-out art" is a fair bar.
        value, error = kernel_inception_distance(real, net(other))
        assert value > held + 2 * error and value > 0.03
        assert frechet_distance(real, net(other)) > 5 * frechet_distance(real, net(art["heldout"]))


def test_a_collapsed_generator_has_diversity_ratio_near_zero(art):
    net = load_features("tiny")
    real = net(art["train"])
    collapsed = diversity_ratio(net(art["train"][[7]].expand(40, 3, 64, 64)), real)
    assert collapsed["ratio"] == pytest.approx(0, abs=1e-6) and collapsed["real"] > 0
    assert 0.8 < diversity_ratio(net(art["heldout"]), real)["ratio"] < 1.25


# --- feature networks ----------------------------------------------------------------------------------------

def test_tiny_features_are_seeded_and_take_any_size(art):
    x = art["train"][:4]
    a, b = load_features("tiny", seed=0), load_features("tiny", seed=0)
    assert torch.equal(a(x), b(x)) and a(x).shape == (4, a.dim) and a(x).dtype == torch.float32
    assert not torch.equal(a(x), load_features("tiny", seed=1)(x))
    assert a(F.interpolate(x, size=(128, 128), mode="bilinear")).shape == (4, a.dim)
    assert load_features("tiny", batch=3)(x).allclose(a(x), atol=1e-6)  # batching changes nothing


def test_clip_features_from_the_tiny_clip_are_deterministic(art):
    net = load_features("clip", clip_spec="tiny")
    x = art["train"][:3]
    out = net(x)
    assert out.shape == (3, 64) and net.dim == 64 and net.name.startswith("clip:")
    assert torch.equal(out, load_features("clip", clip_spec="tiny")(x))
    assert out.norm(dim=1).allclose(torch.ones(3), atol=1e-5)  # CLIP embeddings are unit vectors


def test_inception_offline_with_nothing_local_names_the_url_and_folder(tmp_path: Path):
    with pytest.raises(UserError) as err:
        load_features("inception", checkpoints_dir=tmp_path / "checkpoints")
    message = str(err.value)
    assert INCEPTION_URL in message and str(tmp_path / "checkpoints") in message and message.count(". ") == 0
    assert feature_status("inception", checkpoints_dir=tmp_path / "checkpoints").startswith("not available offline")


def test_inception_loads_a_torchvision_state_dict_from_checkpoints(tmp_path: Path, art):
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    state = inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()  # torchvision's file's keys
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / INCEPTION_FILE)
    assert feature_status("inception", checkpoints_dir=tmp_path / "checkpoints") == "found locally"
    net = load_features("inception", checkpoints_dir=tmp_path / "checkpoints")
    out = net(art["train"][:2])
    assert out.shape == (2, 2048) and net.dim == 2048 and torch.isfinite(out).all()
    # The file's weights are the ones used: the same state dict given directly gives the same features.
    assert inception_features(state)(art["train"][:1]).allclose(out[:1], rtol=1e-4, atol=1e-5)


def test_inception_refuses_a_file_of_another_network(tmp_path: Path):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / INCEPTION_FILE)
    with pytest.raises(UserError, match="do not fit torchvision's inception_v3"):
        load_features("inception", checkpoints_dir=tmp_path)


def test_feature_status_and_unknown_names(tmp_path: Path):
    assert "tiny" in feature_status("tiny")
    assert feature_status("clip", clip_spec="tiny") == "random tiny CLIP (for tests)"
    status = feature_status("clip", checkpoints_dir=tmp_path)  # ViT-B-32 with LAION-2B weights, the default
    assert status.startswith("not available offline") and "laion" in status.lower()
    assert feature_status("clip", clip_spec="ViT-B-32", clip_pretrained="none").startswith("random-init")
    with pytest.raises(UserError, match="Unknown feature network 'vgg'"):
        load_features("vgg")


def _shapes(kind: str, n: int = 8, seed: int = 0) -> torch.Tensor:
    """32 px images: flat colours cut by three straight lines ("facets"), or six discs 6-10 px across ("blobs")."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    out = []
    for _ in range(n):
        img = torch.rand(3, 1, 1, generator=g).expand(3, 32, 32)
        for _ in range(3 if kind == "facets" else 6):
            cx, cy = (torch.rand(2, generator=g) * 32).tolist()
            if kind == "facets":
                angle = torch.rand(1, generator=g) * math.pi
                inside = (xs - cx) * torch.cos(angle) + (ys - cy) * torch.sin(angle) > 0
            else:
                inside = (xs - cx) ** 2 + (ys - cy) ** 2 < (3 + 2 * torch.rand(1, generator=g)) ** 2
            img = torch.where(inside, torch.rand(3, 1, 1, generator=g), img)
        out.append(img)
    return torch.stack(out)


def test_edge_straightness_tells_facets_from_blobs_and_speckle():
    facets, blobs = _shapes("facets"), _shapes("blobs")
    speckle = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    s_facets, s_blobs, s_speckle = (edge_straightness(x) for x in (facets, blobs, speckle))
    # Measured: facets 0.42-0.91 an image (mean 0.74), blobs 0.10-0.25, speckle under 0.05.
    assert s_facets.min() > s_blobs.max() and s_blobs.min() > s_speckle.max()
    assert s_facets.mean() > 0.6 and s_blobs.mean() < 0.35 and s_speckle.mean() < 0.1
    # Samples in [-1, 1] and paintings in [0, 1] compare directly: brightness and contrast do not count.
    assert torch.allclose(edge_straightness(facets * 2 - 1), s_facets, atol=1e-5)
    # A flat image has no edges, and is not a NaN.
    assert edge_straightness(torch.full((1, 3, 32, 32), 0.5)).isfinite().all()
