"""VGG16 perceptual features for BSA's loss: the post-ReLU activations of conv1_1 … conv4_3.

Input is an image in [-1, 1] (the models' convention); we map it to [0, 1] and normalise with the
ImageNet mean/std, which is what torchvision's VGG16 weights were trained with. The Chainer
reference (VGG16Layers, Caffe weights) fed (x+1)·127.5 minus the BGR mean (channels left in RGB
order) instead; torchvision's weights given that would see inputs ~60× too large, so we follow the
convention of the weights we actually load.

Weights for "vgg16": checkpoints/vgg16.pth or checkpoints/vgg16-397923af.pth → the torch hub cache
→ a download into the hub cache (torch.hub, with progress and its sha256 prefix check). Files are
always read with weights_only=True: torchvision's own `get_state_dict` still unpickles arbitrary
objects by default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from studio.errors import UserError
from studio.models.reach import can_download, why_not

PERCEPTUAL_LAYERS = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
                     "conv4_1", "conv4_2", "conv4_3")
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"  # torchvision's VGG16_Weights.IMAGENET1K_V1
VGG16_FILE = VGG16_URL.rsplit("/", 1)[1]
VGG16_MB = 528  # the download's size
_SHA256_PREFIX = "397923af"  # torch hub's convention: the file name carries the first hex digits of its sha256
CHECKPOINTS_DIR = Path(__file__).resolve().parents[2] / "checkpoints"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TINY_WIDTHS = (4, 8, 8, 16)
# Convs per block up to conv4_3 (torchvision's config "D" without block 5): "M" is a 2×2 max-pool.
_BLOCKS = (2, 2, 3, 3)


class VGGFeatures(nn.Module):
    """VGG16 cut after relu4_3; `forward` returns the 10 PERCEPTUAL_LAYERS activations, nothing beyond is computed.

    Layers are numbered exactly as torchvision's `vgg16().features[:23]`, so its state dict keys
    (`features.0.weight` …) load as they are.
    """

    def __init__(self, widths: tuple[int, int, int, int] = (64, 128, 256, 512)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        self._taps: list[int] = []  # indices of the ReLUs whose outputs we return
        in_ch = 3
        for block, (n_convs, width) in enumerate(zip(_BLOCKS, widths)):
            if block:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            for _ in range(n_convs):
                layers += [nn.Conv2d(in_ch, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                self._taps.append(len(layers) - 1)
                in_ch = width
        self.features = nn.Sequential(*layers)
        # Not persistent: they are constants, and keeping them out of the state dict keeps torchvision's keys.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] RGB → torchvision's ImageNet normalisation."""
        return ((x + 1) / 2 - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.normalize(x)
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)  # in-place ReLU is safe: a tapped tensor is only read afterwards, never overwritten
            if i in self._taps:
                out.append(x)
        return out


def _hub_file() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE  # where torchvision itself caches it


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zips, bad headers and forbidden pickles all mean "bad file"
        raise UserError(f"{path} could not be read ({type(e).__name__}): it is damaged, incomplete or not a "
                        "weights file, so replace it with a fresh copy.") from e
    if not isinstance(state, dict):
        raise UserError(f"{path} holds a {type(state).__name__}, not a state dict of tensors.")
    return state


def _load_file(path: Path) -> VGGFeatures:
    """Fill a full-size VGGFeatures from a VGG16 state dict; conv5 and the classifier, if present, are not needed."""
    model = VGGFeatures()
    state = _read_state(path)
    wanted = list(model.state_dict())
    missing = [k for k in wanted if k not in state]
    if missing:
        raise UserError(f"{path} is missing {len(missing)} VGG16 tensor(s) (first: {', '.join(missing[:3])}), "
                        "so it is incomplete or not a VGG16 checkpoint.")
    try:
        model.load_state_dict({k: state[k] for k in wanted})
    except RuntimeError as e:
        first = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line), str(e))
        raise UserError(f"{path} is not a plain VGG16 checkpoint: {first}") from e
    return model


def _tiny(seed: int) -> VGGFeatures:
    with torch.random.fork_rng(devices=[]):  # seed locally: the caller's random stream stays untouched
        torch.manual_seed(seed)
        model = VGGFeatures(TINY_WIDTHS)
        for m in model.modules():  # torchvision's VGG init, so activations keep a sensible scale through depth
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
    return model


@dataclass(frozen=True)
class VGGSource:
    """Where `load_vgg16("vgg16")` will get its weights, and a sentence saying so for the UI."""

    path: Path | None  # the file found; None when it must be downloaded
    status: str        # found locally / found in the torch hub cache / will download N MB / not available offline: …
    available: bool    # False when a download is needed but cannot happen (studio.models.reach)


def resolve_vgg16(checkpoints_dir: Path = CHECKPOINTS_DIR, *, download: bool = True) -> VGGSource:
    """Decide where the VGG16 weights come from without loading or downloading anything."""
    checkpoints_dir = Path(checkpoints_dir)
    for path in (checkpoints_dir / "vgg16.pth", checkpoints_dir / VGG16_FILE):
        if path.is_file():
            return VGGSource(path, "found locally", True)
    if _hub_file().is_file():
        return VGGSource(_hub_file(), "found in the torch hub cache", True)
    if not download or not can_download():
        return VGGSource(None, f"not available offline: download {VGG16_URL} and put {VGG16_FILE} in "
                               f"{checkpoints_dir}{os.sep}", False)
    return VGGSource(None, f"will download {VGG16_MB} MB", True)


def _find_or_download_vgg16(checkpoints_dir: Path, download: bool) -> Path:
    source = resolve_vgg16(checkpoints_dir, download=download)
    if source.path is not None:
        return source.path
    where = f"download {VGG16_URL} and put {VGG16_FILE} in {checkpoints_dir}{os.sep}"
    if not source.available:
        raise UserError(f"VGG16 weights are not on this machine and {why_not(download)}: {where}.")
    dest = _hub_file()
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Writes a temp file and moves it into place only after the sha256 prefix in the name matched.
        torch.hub.download_url_to_file(VGG16_URL, str(dest), hash_prefix=_SHA256_PREFIX, progress=True)
    except (OSError, RuntimeError) as e:  # URLError/timeouts are OSErrors; a hash mismatch is a RuntimeError
        raise UserError(f"Could not download VGG16 weights ({type(e).__name__}: {e}): {where}.") from e
    return dest


def load_vgg16(source: str = "vgg16", *, device: str | torch.device = "cpu",
               checkpoints_dir: Path = CHECKPOINTS_DIR, download: bool = True, seed: int = 0) -> VGGFeatures:
    """Frozen VGG16 features in eval(): "vgg16" (ImageNet), "tiny" (random, small, seeded) or a .pth/.safetensors path.

    Parameters never need gradients (only the generator trains), but the input does: the loss
    backpropagates through VGG into the generated image.
    """
    if source == "tiny":
        model = _tiny(seed)
    elif source == "vgg16":
        model = _load_file(_find_or_download_vgg16(Path(checkpoints_dir), download))
    elif source.endswith((".pth", ".pt", ".bin", ".safetensors")):
        path = Path(source).expanduser()
        if not path.is_file():
            raise UserError(f"VGG16 weights file {path} does not exist.")
        model = _load_file(path)
    else:
        raise UserError(f"Unknown VGG source {source!r}: use 'vgg16', 'tiny' or a path to a .pth or .safetensors file.")
    model.eval()
    model.requires_grad_(False)
    return model.to(device)
