"""BigGAN-deep generators from pytorch-pretrained-biggan: find the weights, load them safely, freeze them.

Where weights come from, in order: `tiny` (random init, for tests) → a folder given as a path, or
`checkpoints/<name>/` → our cache `<cache>/<name>/` → a download into that cache. A folder is
complete when it holds both `config.json` and `pytorch_model.bin`; every file is written to a temp
name and renamed, so a broken download never looks complete. We never call
`BigGAN.from_pretrained`: it asks the network even when the files are local, unpickles without
`weights_only`, and silently ignores missing tensors.
"""

from __future__ import annotations

import http.client
import math
import os
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, Sequence

import torch

from studio.errors import UserError
from studio.models.adaptable import AdaptableLayer
from studio.models.reach import can_download, why_not
from studio.workspace import atomic_writer, cache_root, validate_name

if TYPE_CHECKING:  # importing the package pulls in boto3 and requests (~1 s): only do it when a model is needed
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig

BIGGAN_NAMES = ("biggan-deep-128", "biggan-deep-256", "biggan-deep-512")
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "pytorch_model.bin"
CHECKPOINTS_DIR = Path(__file__).resolve().parents[2] / "checkpoints"
# Download sizes: 256 is the published file size (234,411,737 B); 128 and 512 are their state dicts'
# float32 bytes plus the same pickle overhead (128 matches the 211 MB of the HF mirror).
DOWNLOAD_MB = {"biggan-deep-128": 211.0, "biggan-deep-256": 234.4, "biggan-deep-512": 235.8}
# Hugging Face repos that host the same config.json + pytorch_model.bin, tried when the package's S3
# URLs fail. Only 128 is listed: osanseviero/BigGAN-deep-128 is the repo the HF hub and gradio use as
# their BigGAN example; we found no mirror for 256 or 512 that we could vouch for.
HF_MIRRORS = {"biggan-deep-128": "osanseviero/BigGAN-deep-128"}
# Released block lists (package's convert_tf_to_pytorch.py), two blocks per resolution as
# (upsample, in, out) channel multipliers: 128 has 10 blocks, 256 one more resolution, 512 another.
_HEAD = [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8)]
_TAIL = [(False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)]
_LAYERS = {"biggan-deep-128": _HEAD + [(False, 8, 8), (True, 8, 4)] + _TAIL,
           "biggan-deep-256": _HEAD + [(False, 8, 8), (True, 8, 8), (False, 8, 8), (True, 8, 4)] + _TAIL}
_LAYERS["biggan-deep-512"] = _LAYERS["biggan-deep-256"] + [(False, 1, 1), (True, 1, 1)]
_TINY_RE = re.compile(r"^tiny(?:-(\d+))?$")


def _classes() -> tuple[type[BigGAN], type[BigGANConfig]]:
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig

    return BigGAN, BigGANConfig


def biggan_config(name: str) -> BigGANConfig:
    """A released model's architecture, no weights: 50.39 M (128), 55.88 M (256), 56.16 M (512) parameters."""
    if name not in _LAYERS:
        raise UserError(f"Unknown BigGAN {name!r}: use one of {', '.join(BIGGAN_NAMES)}.")
    return _classes()[1](output_dim=int(name.rsplit("-", 1)[1]), z_dim=128, class_embed_dim=128, channel_width=128,
                         num_classes=1000, layers=list(_LAYERS[name]), attention_layer_position=8, eps=1e-4,
                         n_stats=51)


def tiny_biggan_config(resolution: int = 32) -> BigGANConfig:
    """The BigGAN-deep architecture at test size: 8 channels wide, 5 blocks (6 at 128 px), attention at 16×16.

    z, the class embedding and the 1000 classes keep their real sizes, so code written against the
    tiny model (class embeddings, latents) runs unchanged on the real one. The deep block's skip path
    drops channels by slicing off half, so each channel change must halve, from 16·ch down to ch.
    """
    if resolution not in (16, 32, 64, 128):
        raise ValueError(f"tiny BigGAN resolution must be 16, 32, 64 or 128, not {resolution}")
    ups = int(math.log2(resolution // 4))
    mults = [16, 8, 4, 2, 1]
    layers = [(False, 16, 16)] + [(i < ups, a, b) for i, (a, b) in enumerate(zip(mults, mults[1:]))]
    layers += [(True, 1, 1)] * (ups - 4)
    # Position 3 follows two upsamplings, so attention runs at 16×16 at every resolution, on 4·ch channels.
    return _classes()[1](output_dim=resolution, z_dim=128, class_embed_dim=128, channel_width=8, num_classes=1000,
                         layers=layers, attention_layer_position=3, eps=1e-4, n_stats=51)


def biggan_cache_dir() -> Path:
    """$STUDIO_CACHE/biggan, else ~/.cache/artgan-studio/biggan (our own layout: one plain folder per model)."""
    return cache_root() / "biggan"


@dataclass(frozen=True)
class BigGANSource:
    """Where `load_biggan` will get a model from, and a sentence saying so for the UI."""

    kind: Literal["tiny", "local", "cache", "download"]
    name: str
    path: Path | None  # the folder with config.json + pytorch_model.bin (for "download": where it will go)
    size_mb: float | None  # what a download costs; None when nothing needs downloading
    status: str
    available: bool = True  # False when a download is needed but cannot happen (studio.models.reach)


def _complete(folder: Path) -> bool:  # each file lands by rename, so present means whole
    return (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()


def _urls(name: str) -> tuple[str, str]:
    from pytorch_pretrained_biggan.model import PRETRAINED_CONFIG_ARCHIVE_MAP, PRETRAINED_MODEL_ARCHIVE_MAP

    return PRETRAINED_CONFIG_ARCHIVE_MAP[name], PRETRAINED_MODEL_ARCHIVE_MAP[name]


def _put_files_sentence(name: str, folder: Path) -> str:
    config_url, weights_url = _urls(name)
    return (f"download {config_url} and {weights_url} and put them in {folder}{os.sep} "
            f"as {CONFIG_NAME} and {WEIGHTS_NAME}")


def is_path(name: str) -> bool:
    """A model named by a folder (a path separator, ~, or an absolute path) rather than by a name."""
    return "/" in name or os.sep in name or name.startswith("~") or Path(name).is_absolute()


def resolve_biggan(name_or_dir: str, *, checkpoints_dir: Path = CHECKPOINTS_DIR) -> BigGANSource:
    """Decide where `name_or_dir` comes from without loading or downloading anything.

    A value with a path separator (or ~, or an absolute path) is a folder; anything else is a name,
    looked up in checkpoints_dir, then in the cache, then among the downloadable BIGGAN_NAMES.
    """
    if tiny := _TINY_RE.match(name_or_dir):
        if int(tiny.group(1) or 32) not in (16, 32, 64, 128):
            raise UserError(f"There is no {name_or_dir!r}: use tiny (32 px), tiny-16, tiny-64 or tiny-128.")
        return BigGANSource("tiny", name_or_dir, None, None, "random tiny model (for tests)")
    if is_path(name_or_dir):
        folder = Path(name_or_dir).expanduser()
        if not folder.is_dir():
            raise UserError(f"BigGAN folder {folder} does not exist.")
        missing = [f for f in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / f).is_file()]
        if missing:
            raise UserError(f"BigGAN folder {folder} has no {' or '.join(missing)}: "
                            f"it needs both {CONFIG_NAME} and {WEIGHTS_NAME}.")
        return BigGANSource("local", folder.name, folder, None, "found locally")
    validate_name(name_or_dir, "model")  # a bare name becomes a folder name: no '..' tricks
    local, cached = Path(checkpoints_dir) / name_or_dir, biggan_cache_dir() / name_or_dir
    if _complete(local):
        return BigGANSource("local", name_or_dir, local, None, "found locally")
    if _complete(cached):
        return BigGANSource("cache", name_or_dir, cached, None, "found in the download cache")
    if name_or_dir not in BIGGAN_NAMES:
        raise UserError(f"Unknown BigGAN {name_or_dir!r}: use one of {', '.join(BIGGAN_NAMES)}, 'tiny', "
                        f"or a folder with {CONFIG_NAME} and {WEIGHTS_NAME}.")
    size = DOWNLOAD_MB[name_or_dir]
    if not can_download():
        return BigGANSource("download", name_or_dir, cached, size, f"not available offline: put {CONFIG_NAME} and "
                            f"{WEIGHTS_NAME} in {local}{os.sep}", available=False)
    return BigGANSource("download", name_or_dir, cached, size, f"will download {size:.0f} MB")


def _fetch(url: str, out: BinaryIO, *, progress: bool) -> None:
    """Stream `url` into `out`; a short read is an error, so a cut connection can't pass for a finished file."""
    from tqdm.auto import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "artgan-studio"})
    with urllib.request.urlopen(request, timeout=60) as resp:
        total = int(resp.headers.get("Content-Length") or 0) or None
        done = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], disable=not progress) as bar:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                bar.update(len(chunk))
    if total is not None and done != total:
        raise OSError(f"connection closed after {done} of {total} bytes")


def _download_file(url: str, dest: Path, *, progress: bool) -> None:
    """`dest` appears only when the download is complete (temp file, fsync, rename)."""
    with atomic_writer(dest, suffix=".part") as out:
        _fetch(url, out, progress=progress)


def _hf_download(repo_id: str, folder: Path) -> None:
    from huggingface_hub import hf_hub_download

    # local_dir puts plain files in our folder; the hub writes each to an .incomplete file and renames it.
    for filename in (WEIGHTS_NAME, CONFIG_NAME):
        hf_hub_download(repo_id, filename, local_dir=folder)


def _download(name: str, folder: Path, *, progress: bool, checkpoints_dir: Path) -> None:
    config_url, weights_url = _urls(name)
    try:
        for url, filename in ((weights_url, WEIGHTS_NAME), (config_url, CONFIG_NAME)):
            if not (folder / filename).is_file():
                _download_file(url, folder / filename, progress=progress)
        return
    except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, refused connections, short reads
        reason = str(getattr(e, "reason", e))
    if name in HF_MIRRORS:
        try:
            _hf_download(HF_MIRRORS[name], folder)
            return
        except Exception as e:  # noqa: BLE001 - any hub failure (404, HTTP, network) ends in the same advice
            reason += f"; Hugging Face mirror: {type(e).__name__}"
    raise UserError(f"Could not download BigGAN {name!r} ({reason}): "
                    f"{_put_files_sentence(name, Path(checkpoints_dir) / name)}.")


def _read_model(folder: Path) -> BigGAN:
    """Build the model from config.json and fill it from pytorch_model.bin, refusing anything partial."""
    BigGAN, BigGANConfig = _classes()
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    try:
        config = BigGANConfig.from_json_file(config_path)
        model = BigGAN(config)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        raise UserError(f"{config_path} is not a valid BigGAN-deep config ({type(e).__name__}: {e}).") from e
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zips, bad pickles, forbidden globals: all "bad file"
        raise UserError(f"{weights_path} could not be read ({type(e).__name__}): it is damaged, incomplete or not "
                        "a PyTorch weights file, so replace it with a fresh copy.") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{weights_path} holds a {type(state).__name__}, not a state dict of tensors.")
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches raise even with strict=False
        first = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line), str(e))
        raise UserError(f"{weights_path} does not fit {config_path}: {first}") from e
    # strict=False so we can say which tensors are wrong instead of printing torch's multi-line report.
    for keys, what in ((result.missing_keys, "is missing"), (result.unexpected_keys, "has unexpected")):
        if keys:
            raise UserError(f"{weights_path} {what} {len(keys)} tensor(s) for the model in {config_path} "
                            f"(first: {', '.join(keys[:3])}), so it is incomplete or belongs to another model.")
    return model


def _tiny_model(resolution: int, seed: int) -> BigGAN:
    BigGAN = _classes()[0]
    with torch.random.fork_rng(devices=[]):  # seed locally: the caller's random stream stays untouched
        torch.manual_seed(seed)
        model = BigGAN(tiny_biggan_config(resolution))
        # The package leaves the final BatchNorm's weight/bias as torch.Tensor(n): uninitialised memory,
        # which would make "same seed, same weights" false (and can be NaN).
        torch.nn.init.ones_(model.generator.bn.weight)
        torch.nn.init.zeros_(model.generator.bn.bias)
        _converge_spectral_norm(model)
    return model


@torch.no_grad()
def _converge_spectral_norm(model: torch.nn.Module, steps: int = 20) -> None:
    """Power-iterate every spectral norm's u/v, as the package's TF converter does before saving.

    They start random and eval() never updates them, so σ = uᵀWv would be a random projection (even
    negative) instead of W's largest singular value; a released checkpoint ships converged u/v.
    """
    for module in model.modules():
        if isinstance(getattr(module, "weight_u", None), torch.Tensor) and hasattr(module, "weight_orig"):
            w = module.weight_orig.reshape(module.weight_orig.shape[0], -1)  # legacy spectral_norm uses dim 0
            u, v = module.weight_u, module.weight_v
            for _ in range(steps):
                v.copy_(torch.nn.functional.normalize(w.t() @ u, dim=0, eps=1e-12))
                u.copy_(torch.nn.functional.normalize(w @ v, dim=0, eps=1e-12))


def load_biggan(name_or_dir: str = "biggan-deep-256", *, device: str | torch.device = "cpu",
                checkpoints_dir: Path = CHECKPOINTS_DIR, download: bool = True, progress: bool = True,
                seed: int = 0) -> BigGAN:
    """A frozen BigGAN-deep in eval() from a name, a folder or `tiny`/`tiny-64` (see `resolve_biggan`).

    eval() matters beyond dropout: in train() every forward runs a spectral-norm power iteration
    that rewrites the weight_u/weight_v buffers, i.e. it changes the pretrained model.
    """
    source = resolve_biggan(name_or_dir, checkpoints_dir=checkpoints_dir)
    if source.kind == "tiny":
        model = _tiny_model(int(_TINY_RE.match(name_or_dir).group(1) or 32), seed)
    else:
        assert source.path is not None
        if source.kind == "download":
            if not download or not can_download():
                raise UserError(f"BigGAN {source.name!r} is not on this machine and {why_not(download)}: "
                                f"{_put_files_sentence(source.name, Path(checkpoints_dir) / source.name)}.")
            _download(source.name, source.path, progress=progress, checkpoints_dir=checkpoints_dir)
        model = _read_model(source.path)
    model.eval()
    model.requires_grad_(False)
    return model.to(device)


def one_hot_class(index: int | Sequence[int], n: int = 1000) -> torch.Tensor:
    """(B, n) float one-hot rows, the class input `BigGAN.forward` expects (B=1 for a single index)."""
    indices = [index] if isinstance(index, int) else list(index)
    if any(not 0 <= i < n for i in indices):
        raise UserError(f"Class index must be between 0 and {n - 1}, got {indices}.")
    return torch.nn.functional.one_hot(torch.tensor(indices), n).float()


def imagenet_embedding(model: BigGAN, index: int | None) -> torch.Tensor:
    """The 128-d class embedding of ImageNet class `index`, or the mean over all classes when None.

    `embeddings` is nn.Linear(1000 → 128) applied to a one-hot, so class i is column i of its weight.
    """
    weight = model.embeddings.weight.detach()
    if index is None:
        return weight.mean(dim=1).clone()
    if not 0 <= index < weight.shape[1]:
        raise UserError(f"Class index must be between 0 and {weight.shape[1] - 1}, got {index}.")
    return weight[:, index].clone()


def adaptable_layers(model: BigGAN) -> list[AdaptableLayer]:
    """What BSA adapts (models/adaptable.py): gen_z's output (viewed as [B, 4, 4, 16·ch] next: channels last), then
    every batch norm of the generator, named as in `model.generator` (the keys BSA checkpoints have always used)."""
    from pytorch_pretrained_biggan.model import BigGANBatchNorm

    gen = model.generator
    first = AdaptableLayer("gen_z", gen.gen_z, 16 * model.config.channel_width, "flat_last", first=True)
    return [first, *(AdaptableLayer(name, m, m.num_features, "channels")
                     for name, m in gen.named_modules() if isinstance(m, BigGANBatchNorm))]
