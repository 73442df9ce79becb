"""VGG16 perceptual features: layer layout, loading from local files, refusals, and gradient flow."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from studio.errors import UserError
from studio.models import vgg
from studio.models.vgg import PERCEPTUAL_LAYERS, VGG16_FILE, VGG16_URL, VGGFeatures, load_vgg16

REAL_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Offline, with an empty torch hub cache, and any download attempt fails the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def no_network(*args, **kwargs):
        pytest.fail("a download was attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)


@pytest.fixture(scope="module")
def real_state() -> dict[str, torch.Tensor]:
    """A random state dict shaped like torchvision's vgg16 file: conv5 and a (shrunken) classifier included."""
    torch.manual_seed(0)
    state = VGGFeatures().state_dict()
    state |= {"features.24.weight": torch.randn(512, 512, 3, 3), "features.24.bias": torch.zeros(512),
              "classifier.0.weight": torch.randn(8, 8), "classifier.0.bias": torch.zeros(8)}
    return state


def image(batch: int = 2, size: int = 32) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_tiny_returns_ten_maps_at_the_right_scales():
    model = load_vgg16("tiny")
    feats = model(image(size=64))
    assert len(feats) == len(PERCEPTUAL_LAYERS) == 10
    assert [f.shape[-1] for f in feats] == [64, 64, 32, 32, 16, 16, 16, 8, 8, 8]
    assert [f.shape[1] for f in feats] == [4, 4, 8, 8, 8, 8, 8, 16, 16, 16]
    assert all((f >= 0).all() for f in feats)  # post-ReLU
    assert isinstance(model.features[-1], nn.ReLU) and len(model.features) == 23  # nothing after relu4_3
    same, other = load_vgg16("tiny", seed=0).state_dict(), load_vgg16("tiny", seed=1).state_dict()
    assert all(torch.equal(same[k], v) for k, v in model.state_dict().items())
    assert not torch.equal(other["features.0.weight"], same["features.0.weight"])


def test_real_architecture_matches_torchvision_vgg16():
    from torchvision.models import VGG16_Weights, vgg16

    assert VGG16_URL == VGG16_Weights.IMAGENET1K_V1.url
    with torch.device("meta"):  # structure only: skips initialising the 120 M-parameter classifier
        reference = vgg16(weights=None).features[:23]
    ours = VGGFeatures()
    assert [type(m) for m in ours.features] == [type(m) for m in reference]
    assert {k: v.shape for k, v in ours.features.state_dict().items()} == \
        {k: v.shape for k, v in reference.state_dict().items()}
    with torch.no_grad():
        assert tuple(f.shape[1] for f in ours(image(batch=1))) == REAL_CHANNELS


def test_normalisation_is_torchvision_imagenet():
    model = VGGFeatures(vgg.TINY_WIDTHS)
    mean_colour = torch.tensor(vgg.IMAGENET_MEAN).view(1, 3, 1, 1) * 2 - 1  # the mean, written in [-1, 1]
    assert torch.allclose(model.normalize(mean_colour), torch.zeros(1, 3, 1, 1), atol=1e-6)
    white = model.normalize(torch.ones(1, 3, 1, 1)).flatten()
    assert torch.allclose(white, (1 - torch.tensor(vgg.IMAGENET_MEAN)) / torch.tensor(vgg.IMAGENET_STD))


@pytest.mark.parametrize("where", ["checkpoints/vgg16.pth", f"checkpoints/{VGG16_FILE}", "hub", "path.pth",
                                   "path.safetensors"])
def test_loads_local_weights(real_state, tmp_path, where):
    ckpt = tmp_path / "checkpoints"
    target = {"hub": tmp_path / "torch_home" / "hub" / "checkpoints" / VGG16_FILE}.get(where, tmp_path / where)
    target.parent.mkdir(parents=True, exist_ok=True)
    if where.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in real_state.items()}, target)
    else:
        torch.save(real_state, target)
    model = load_vgg16(str(target) if where.startswith("path") else "vgg16", checkpoints_dir=ckpt)
    loaded = model.state_dict()
    assert loaded.keys() == VGGFeatures().state_dict().keys()
    assert all(torch.equal(loaded[k], real_state[k]) for k in loaded)
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_offline_with_nothing_local_says_what_to_put_where(tmp_path):
    with pytest.raises(UserError) as e:
        load_vgg16("vgg16", checkpoints_dir=tmp_path / "checkpoints")
    msg = str(e.value)
    assert VGG16_FILE in msg and VGG16_URL in msg and str(tmp_path / "checkpoints") in msg
    assert "\n" not in msg and msg.endswith(".")


def test_damaged_or_wrong_files_are_refused(real_state, tmp_path):
    path = tmp_path / "vgg.pth"
    torch.save(real_state, path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(UserError, match="damaged"):
        load_vgg16(str(path))
    torch.save({k: v for k, v in real_state.items() if k != "features.21.weight"}, path)
    with pytest.raises(UserError, match=r"missing 1 VGG16 tensor.*features\.21\.weight"):
        load_vgg16(str(path))
    torch.save(VGGFeatures(vgg.TINY_WIDTHS).state_dict(), path)
    with pytest.raises(UserError, match="size mismatch"):
        load_vgg16(str(path))
    with pytest.raises(UserError, match="does not exist"):
        load_vgg16(str(tmp_path / "nope.pth"))
    with pytest.raises(UserError, match="Unknown VGG source"):
        load_vgg16("vgg19")


def test_gradients_reach_the_input_but_not_vgg():
    model = load_vgg16("tiny")
    x = image().requires_grad_(True)
    loss = sum(f.abs().mean() for f in model(x))
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())
