"""Feature networks for evaluation: each maps images [B, 3, H, W] in [-1, 1], any H, to features [B, D].

    clip        CLIP image embeddings (unit vectors) from `load_clip`; the default. Trained on web image-text
                pairs, so it sees style and content rather than ImageNet's object classes, which suits art.
    inception   Inception-v3 pool3 (2048 numbers, before the classifier), the network FID and KID are
                defined on, with torchvision's ImageNet weights (see `load_inception_state`).
    tiny        a small seeded random conv net, for tests: no download, same seed → same features.
    judge       the embedding of a small classifier trained on the run's own dataset (studio.evaluate builds it:
                it needs the dataset, so load_features cannot); no download, so it works everywhere.

Set-level metrics on these features live in studio.quality. Numbers are only comparable between
runs measured with the same feature network (its `name` says which), at the same sample count.
Features come back on the CPU in float32, without gradients, whatever device computed them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from studio.errors import UserError
from studio.models.biggan import CHECKPOINTS_DIR
from studio.models.reach import can_download, why_not

FEATURE_NETS = ("clip", "inception", "judge", "tiny")
# torchvision's Inception_V3_Weights.IMAGENET1K_V1
INCEPTION_URL = "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth"
INCEPTION_FILE = INCEPTION_URL.rsplit("/", 1)[1]
INCEPTION_MB = 103.9  # the weights' published file size (torchvision's meta "_file_size")
INCEPTION_SIZE = 299
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TINY_SIZE = 64


class FeatureNet:
    """A frozen feature network: `net(images)` → float32 CPU features [B, dim], computed `batch` images at a time."""

    def __init__(self, name: str, dim: int, embed: Callable[[torch.Tensor], torch.Tensor], *, size: int,
                 device: str | torch.device = "cpu", batch: int = 64) -> None:
        self.name, self.dim, self.size, self.batch = name, dim, size, batch
        self.device = torch.device(device)
        self._embed = embed  # takes [b, 3, size, size] in [-1, 1] on `device`

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (self.size, self.size):
            return x
        # antialias: downsizing large samples without it would alias fine texture into the features
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"feature network {self.name} takes [B, 3, H, W] images, got {tuple(images.shape)}")
        out = [self._embed(self.resize(images[i:i + self.batch].to(self.device, torch.float32))).float().cpu()
               for i in range(0, len(images), self.batch)]
        return torch.cat(out) if out else torch.zeros(0, self.dim)

    def __repr__(self) -> str:
        return f"FeatureNet({self.name!r}, dim={self.dim}, size={self.size}, device={self.device})"


class TinyConvNet(nn.Module):
    """Three random conv stages (64 → 32 → 16 → 8 px); features are each stage's mean activation, concatenated.

    Pooling every stage, not only the last, keeps colour and edge statistics that a deep random
    net mixes away, so unrelated images (noise, flat colour) land far from art.
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        chans = (3, *widths)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1), nn.ReLU())
            for i in range(len(widths)))
        self.dim = sum(widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = []
        for stage in self.stages:
            x = stage(x)
            pooled.append(x.mean(dim=(2, 3)))
        return torch.cat(pooled, dim=1)


def tiny_features(*, device: str | torch.device = "cpu", seed: int = 0, batch: int = 64) -> FeatureNet:
    with torch.random.fork_rng(devices=[]):  # seed locally: the caller's random stream stays untouched
        torch.manual_seed(seed)
        net = TinyConvNet()
        for m in net.modules():  # He init keeps activations at a similar scale in every stage
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
    net = net.eval().requires_grad_(False).to(device)
    return FeatureNet(f"tiny:seed{seed}", net.dim, net, size=TINY_SIZE, device=device, batch=batch)


def clip_features(spec: str = "ViT-B-32", pretrained: str | None = None, *, device: str | torch.device = "cpu",
                  download: bool = True, seed: int = 0, checkpoints_dir: Path = CHECKPOINTS_DIR,
                  batch: int = 64) -> FeatureNet:
    """CLIP image embeddings; `spec`/`pretrained` as `load_clip` takes them ("tiny"; pretrained="none": random init)."""
    from studio.models.clip import load_clip

    encoder = load_clip(spec, pretrained, device=device, download=download, seed=seed,
                        checkpoints_dir=checkpoints_dir)
    return FeatureNet(f"clip:{encoder.name}", encoder.dim, encoder.embed_images, size=encoder.image_size,
                      device=device, batch=batch)


def _inception_paths(checkpoints_dir: Path) -> list[Path]:
    # The second is where torchvision itself caches the file ($TORCH_HOME/hub/checkpoints), read at call time.
    return [Path(checkpoints_dir) / INCEPTION_FILE, Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE]


def _put_inception_sentence(checkpoints_dir: Path) -> str:
    return f"download {INCEPTION_URL} and put {INCEPTION_FILE} in {Path(checkpoints_dir)}{os.sep}"


def load_inception_state(*, checkpoints_dir: Path = CHECKPOINTS_DIR, download: bool = True) -> dict[str, torch.Tensor]:
    """torchvision's Inception_V3_Weights.IMAGENET1K_V1: checkpoints/ → the torch hub cache → a download.

    These are torchvision's port of Google's weights, not the TF-Inception graph that FID was defined
    with (pytorch-fid and clean-fid ship that one), so our FID is comparable with published figures
    only approximately; between our own runs it is exact. Read with weights_only=True.
    """
    for path in _inception_paths(checkpoints_dir):
        if path.is_file():
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001 - truncated zips and forbidden pickles all mean "bad file"
                raise UserError(f"{path} could not be read ({type(e).__name__}): it is damaged, incomplete or "
                                "not a weights file, so replace it with a fresh copy.") from e
            if not isinstance(state, dict):
                raise UserError(f"{path} holds a {type(state).__name__}, not a state dict of tensors.")
            return state
    if not download or not can_download():
        raise UserError(f"Inception-v3 weights are not on this machine and {why_not(download)}: "
                        f"{_put_inception_sentence(checkpoints_dir)}.")
    try:  # into the hub cache, with a progress bar; the sha256 prefix in the file name is checked
        return torch.hub.load_state_dict_from_url(INCEPTION_URL, progress=True, check_hash=True, map_location="cpu",
                                                  file_name=INCEPTION_FILE, weights_only=True)
    except Exception as e:  # noqa: BLE001 - network errors, hash mismatches, partial files: the same advice
        raise UserError(f"Could not download Inception-v3 weights ({type(e).__name__}): "
                        f"{_put_inception_sentence(checkpoints_dir)}.") from e


def inception_features(state: dict[str, torch.Tensor] | None = None, *, device: str | torch.device = "cpu",
                       seed: int = 0, batch: int = 32) -> FeatureNet:
    """Inception-v3 pool3 features [B, 2048] from a torchvision state dict.

    None gives a seeded random init, for timing only: its BatchNorm layers have no statistics, so
    activations grow through the 40-odd layers and the features (1e10 and up) mean nothing.
    """
    from torchvision.models import inception_v3

    # transform_input=True is how torchvision builds it for these weights: after the ImageNet mean/std
    # below, it maps inputs back to the [-1, 1] scaling Google trained with.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=state is None)
    if state is not None:
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            first = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e))
            raise UserError(f"The Inception-v3 weights do not fit torchvision's inception_v3 ({first[:150]}): "
                            f"use {INCEPTION_FILE} from {INCEPTION_URL}.") from e
    model.fc, model.AuxLogits = nn.Identity(), None  # pool3 is what reaches the classifier; aux runs only in training
    # channels_last: 1.6× faster in fp32 and 2.5× under bf16 on this project's CPU (bench/eval_features.py --layout)
    model = model.eval().requires_grad_(False).to(device, memory_format=torch.channels_last)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    name = "inception-v3:torchvision" if state is not None else f"inception-v3:random{seed}"
    return FeatureNet(name, 2048, lambda x: model((((x + 1) / 2 - mean) / std).contiguous(memory_format=torch.channels_last)),
                      size=INCEPTION_SIZE, device=device, batch=batch)


def feature_status(name: str, *, clip_spec: str = "ViT-B-32", clip_pretrained: str | None = None,
                   checkpoints_dir: Path = CHECKPOINTS_DIR) -> str:
    """Where `load_features(name)` would get its weights, in words for the UI; loads and downloads nothing."""
    if name == "tiny":
        return "random tiny feature network (for tests)"
    if name == "judge":
        return "trained on your dataset as it evaluates (no download)"
    if name == "clip":
        from studio.models.clip import resolve_clip

        return resolve_clip(clip_spec, clip_pretrained, checkpoints_dir=checkpoints_dir).status
    if name == "inception":
        local, hub = _inception_paths(checkpoints_dir)
        if local.is_file():
            return "found locally"
        if hub.is_file():
            return "found in the torch hub cache"
        if not can_download():
            return f"not available offline: {_put_inception_sentence(checkpoints_dir)}"
        return f"will download {INCEPTION_MB:.0f} MB"
    raise UserError(f"Unknown feature network {name!r}: use one of {', '.join(FEATURE_NETS)}.")


def load_features(name: str = "clip", *, device: str | torch.device = "cpu", clip_spec: str = "ViT-B-32",
                  clip_pretrained: str | None = None, checkpoints_dir: Path = CHECKPOINTS_DIR, download: bool = True,
                  seed: int = 0, batch: int | None = None) -> FeatureNet:
    """A FeatureNet by name (FEATURE_NETS); clip_spec/clip_pretrained pick the CLIP model as `load_clip` does."""
    extra = {"batch": batch} if batch else {}
    if name == "tiny":
        return tiny_features(device=device, seed=seed, **extra)
    if name == "clip":
        return clip_features(clip_spec, clip_pretrained, device=device, download=download, seed=seed,
                             checkpoints_dir=checkpoints_dir, **extra)
    if name == "inception":
        state = load_inception_state(checkpoints_dir=checkpoints_dir, download=download)
        return inception_features(state, device=device, **extra)
    if name == "judge":
        raise UserError("The judge's features are trained on a run's dataset: use studio.evaluate, which builds them.")
    raise UserError(f"Unknown feature network {name!r}: use one of {', '.join(FEATURE_NETS)}.")
