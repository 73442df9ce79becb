"""CLIP encoders from open_clip for prompt guidance: find the weights, load them safely, freeze them.

A spec says which model (see `resolve_clip`):
  tiny                       random 64 px model for tests (the open_clip config "studio-tiny-clip")
  ViT-B-32, RN50, …          an open_clip name plus a pretrained tag (default: laion2b_s34b_b79k for ViT-B-32,
                             else the first tag open_clip lists); pretrained="none" gives random init (benchmarks)
  local-dir:/folder          open_clip_config.json + weights, the layout of an open_clip repo on the HF hub
  NAME:/path/w.safetensors   a weights file (.safetensors, .bin, .pt, .pth) for the open_clip architecture NAME;
                             also load_clip(NAME, pretrained="/path/w.safetensors"), as open_clip takes it. A file
                             says nothing about its activation: OpenAI/LAION-400M B-32 files need NAME-quickgelu
  /path/w.safetensors        the same with NAME = ViT-B-32
A name+tag is looked for in checkpoints/clip/<name>-<tag>/, in our cache ($STUDIO_CACHE/clip or
~/.cache/artgan-studio/clip, HF hub layout) and in the normal HF hub cache, else open_clip downloads it
(huggingface_hub, with a progress bar) into our cache. Found files are loaded by path, never by tag:
huggingface_hub reads HF_HUB_OFFLINE once at import, so asking it for a cached tag may still call home.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
import os
import pickle
import re
import sys
import tempfile
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import torch

from studio.errors import UserError
from studio.models.biggan import CHECKPOINTS_DIR
from studio.models.reach import can_download, why_not
from studio.workspace import cache_root

CLIP_DEFAULT = ("ViT-B-32", "laion2b_s34b_b79k")
TINY_NAME = "studio-tiny-clip"
RANDOM_TAGS = ("none", "random")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
DOWNLOAD_MB = {"ViT-B-32": 605.1, "ViT-B-16": 598.5, "RN50": 408.0, "ViT-L-14": 1710.5}  # parameters × 4 bytes
# head_width 32 on width 64 gives the vision tower 2 heads; vocab and context stay real so the real tokenizer fits.
_TINY_CONFIG = {"embed_dim": 64,
                "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
                "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}


def clip_cache_dir() -> Path:
    """$STUDIO_CACHE/clip, else ~/.cache/artgan-studio/clip (passed to open_clip as cache_dir: HF hub layout)."""
    return cache_root() / "clip"


def _register_tiny() -> None:
    import open_clip

    if TINY_NAME not in open_clip.list_models():  # add_model_config takes a file and the name is its stem
        with tempfile.TemporaryDirectory() as tmp:  # the registry keeps the parsed config, not the file
            path = Path(tmp) / f"{TINY_NAME}.json"
            path.write_text(json.dumps(_TINY_CONFIG))
            open_clip.add_model_config(path)


_TABLES = "_studio_open_clip_tables"  # open_clip's folder under a name of our own: its __init__ never runs


def _tables() -> types.ModuleType:
    """open_clip.pretrained (the table of weights, tags, hub files), without importing open_clip when it is not yet.

    Its __init__ imports torchvision and with it torch._dynamo: 4 s of every app's start, paid for two labels.
    The file is the package's own, so the facts are open_clip's; once the package is loaded, its module is used."""
    if "open_clip" in sys.modules:
        return sys.modules["open_clip"].pretrained
    if _TABLES not in sys.modules:
        spec = importlib.util.find_spec("open_clip")
        if spec is None:
            raise ModuleNotFoundError("No module named 'open_clip'", name="open_clip")
        package = types.ModuleType(_TABLES)
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules[_TABLES] = package
    return importlib.import_module(f"{_TABLES}.pretrained")


def _model_names() -> list[str]:
    """open_clip.list_models() with ours: the registry itself once open_clip is loaded, else its config files' names."""
    if "open_clip" in sys.modules:
        _register_tiny()
        return sys.modules["open_clip"].list_models()
    configs = Path(_tables().__file__).parent / "model_configs"
    return sorted([f.stem for f in configs.glob("*.json")] + [TINY_NAME])


def needs_quick_gelu(name: str, tag: str) -> bool:
    """Whether weights `tag` were trained with QuickGELU (OpenAI, ViT-B-32 LAION-400M, MetaCLIP, …).

    Loading them into nn.GELU gives no error, only worse embeddings, and open_clip merely warns, so we
    force it from open_clip's own table instead of guessing from the tag's name.
    """
    from open_clip import get_pretrained_cfg

    return bool(get_pretrained_cfg(name, tag).get("quick_gelu", False))


def preprocess_for(name: str, tag: str | None) -> dict[str, Any]:
    """mean/std (and interpolation…) the weights were trained with; OpenAI's when open_clip lists nothing else."""
    from open_clip import get_pretrained_cfg
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    merged = merge_preprocess_dict(PreprocessCfg(), get_pretrained_cfg(name, tag) if tag else {})
    return {k: merged[k] for k in ("mean", "std", "interpolation", "resize_mode")}  # not size: the model sets it


@dataclass(frozen=True)
class CLIPSource:
    """Where `load_clip` will get a model from, and a sentence saying so for the UI."""

    kind: Literal["tiny", "random", "local-file", "local-dir", "cache", "download"]
    name: str  # the open_clip architecture (for local-dir: the folder's name)
    pretrained: str | None  # the tag, "none" for random init, or None for tiny/local files
    path: Path | None  # the weights file (for local-dir: the folder); None for tiny/random/download
    size_mb: float | None  # what a download costs; None when nothing needs downloading
    status: str
    available: bool = True  # False when a download is needed but cannot happen (studio.models.reach)


def _download_mb(name: str) -> float | None:
    """float32 bytes of the parameters (what the HF hub files weigh), counted on the meta device: no memory."""
    if name.removesuffix("-quickgelu") in DOWNLOAD_MB:  # skips open_clip's "initialized randomly" log line
        return DOWNLOAD_MB[name.removesuffix("-quickgelu")]
    import open_clip

    try:
        with torch.device("meta"):
            return sum(p.numel() for p in open_clip.create_model(name, device="meta").parameters()) * 4 / 1e6
    except Exception:  # noqa: BLE001 - towers needing timm/transformers: the size is only advice
        return None


def _hub_file(cfg: dict[str, Any]) -> tuple[str, list[str]]:
    """(HF repo, file names open_clip would try, safetensors first) for a pretrained config."""
    tables = _tables()
    repo, filename = os.path.split(cfg.get("hf_hub", ""))
    filename = filename or tables.HF_WEIGHTS_NAME
    safe = tables.HF_SAFE_WEIGHTS_NAME if filename == tables.HF_WEIGHTS_NAME else filename.rsplit(".", 1)[0] + ".safetensors"
    return repo, list(dict.fromkeys([safe, filename]))


def _find_local(cfg: dict[str, Any], folder: Path) -> tuple[str, Path] | None:
    """A weights file in our checkpoints folder, our cache or the HF hub cache, by file lookups only."""
    from huggingface_hub import try_to_load_from_cache

    files = sorted((f for f in folder.glob("*") if f.suffix in WEIGHT_SUFFIXES),
                   key=lambda f: f.suffix != ".safetensors")
    if files:
        return "local-file", files[0]
    repo, names = _hub_file(cfg)
    for cache_dir in (clip_cache_dir(), None):  # None: the normal HF hub cache
        for filename in names if repo else []:
            hit = try_to_load_from_cache(repo, filename, cache_dir=cache_dir)
            if isinstance(hit, str):
                return "cache", Path(hit)
    if cfg.get("url") and (clip_cache_dir() / os.path.basename(cfg["url"])).is_file():  # open_clip's non-hub download
        return "cache", clip_cache_dir() / os.path.basename(cfg["url"])
    return None


def _put_file_sentence(name: str, tag: str, folder: Path) -> str:
    cfg = _tables().get_pretrained_cfg(name, tag)
    repo, names = _hub_file(cfg)
    where = f"https://huggingface.co/{repo} (hf-hub:{repo})" if repo else cfg.get("url", "")
    return (f"download {names[0] if repo else os.path.basename(cfg['url'])} from {where} and put it in {folder}{os.sep}"
            f", or put that repo's open_clip_config.json and weights in a folder and use 'local-dir:<folder>'")


def _weights_file(spec: str, pretrained: str | None) -> tuple[str, Path] | None:
    """(architecture, file) when the spec, or open_clip-style the pretrained argument, is a weights file."""
    if pretrained and pretrained.lower() not in RANDOM_TAGS and (
            pretrained.lower().endswith(WEIGHT_SUFFIXES) or os.sep in pretrained or "/" in pretrained):
        return TINY_NAME if spec == "tiny" else spec, Path(pretrained).expanduser()
    if not spec.lower().endswith(WEIGHT_SUFFIXES):
        return None
    arch, sep, rest = spec.partition(":")
    if sep and len(arch) > 1 and "/" not in arch and os.sep not in arch:  # len > 1: a Windows drive is no name
        return TINY_NAME if arch == "tiny" else arch, Path(rest).expanduser()
    return CLIP_DEFAULT[0], Path(spec).expanduser()


def resolve_clip(spec: str = "ViT-B-32", pretrained: str | None = None, *,
                 checkpoints_dir: Path = CHECKPOINTS_DIR) -> CLIPSource:
    """Decide where a CLIP model comes from (spec syntax: module docstring) without loading or downloading."""
    spec, models = spec.strip(), _model_names()
    if spec == "tiny":
        return CLIPSource("tiny", TINY_NAME, None, None, None, "random tiny CLIP (for tests)")
    if spec.startswith("local-dir:"):
        folder = Path(spec.removeprefix("local-dir:")).expanduser()
        if not (folder / "open_clip_config.json").is_file():
            raise UserError(f"CLIP folder {folder} has no open_clip_config.json (or does not exist).")
        if not any(f.suffix in (".safetensors", ".bin", ".pth") for f in folder.iterdir()):  # open_clip's globs
            raise UserError(f"CLIP folder {folder} has no weights file (.safetensors, .bin or .pth).")
        return CLIPSource("local-dir", folder.name, None, folder, None, "found locally")
    if found := _weights_file(spec, pretrained):
        arch, path = found
        if arch not in models:
            raise UserError(f"Unknown CLIP architecture {arch!r} for {path}: use an open_clip name such as ViT-B-32.")
        if not path.is_file():
            raise UserError(f"CLIP weights file {path} does not exist.")
        return CLIPSource("local-file", arch, None, path, None, "found locally")
    name = spec.replace("/", "-")  # OpenAI spells it ViT-B/32
    if name not in models:
        close = difflib.get_close_matches(name, models, n=3)
        hint = f" such as {', '.join(close)}" if close else ""
        raise UserError(f"Unknown CLIP model {spec!r}: use an open_clip name{hint}"
                        f", 'tiny', 'local-dir:<folder>' or 'NAME:<weights file>'.")
    tags = _tables().list_pretrained_tags_by_model(name)
    default = CLIP_DEFAULT[1] if name == CLIP_DEFAULT[0] else (tags or ["none"])[0]
    tag = (pretrained or default).lower().replace("-", "_")  # open_clip's own tag cleaning
    if tag in RANDOM_TAGS:
        return CLIPSource("random", name, "none", None, None, f"random-init {name} (no pretrained weights)")
    if tag not in tags:
        raise UserError(f"CLIP {name} has no pretrained weights {tag!r}: use one of {', '.join(tags) or 'none'}.")
    folder = Path(checkpoints_dir) / "clip" / f"{name}-{tag}"
    if local := _find_local(_tables().get_pretrained_cfg(name, tag), folder):
        kind, path = local
        return CLIPSource(kind, name, tag, path, None, "found locally" if kind == "local-file" else
                          "found in the download cache")
    size = _download_mb(name)
    if not can_download():
        return CLIPSource("download", name, tag, None, size, f"not available offline: "
                          f"{_put_file_sentence(name, tag, folder)}", available=False)
    return CLIPSource("download", name, tag, None, size, f"will download {size or 0:.0f} MB")


class CLIPEncoder:
    """A frozen open_clip model that maps prompts and [-1, 1] images to unit vectors in one space."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, name: str, dim: int) -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokenizer, self.name, self.dim = tokenizer, name, dim
        pp = model.visual.preprocess_cfg  # set by open_clip from the tag, open_clip_config.json or our override
        size = pp["size"]
        self.image_size = int(size if isinstance(size, int) else size[0])  # every CLIP config we use is square
        self.device = next(model.parameters()).device
        self.mean = torch.tensor(pp["mean"], dtype=torch.float32, device=self.device)
        self.std = torch.tensor(pp["std"], dtype=torch.float32, device=self.device)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, dim) unit vectors; prompts longer than the context (77 tokens) are cut by the tokenizer."""
        tokens = self.tokenizer([texts] if isinstance(texts, str) else list(texts)).to(self.device)
        return self.model.encode_text(tokens, normalize=True).float()

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """(B, dim) unit vectors from (B, 3, image_size, image_size) in [-1, 1]; gradients reach `images`."""
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, self.image_size, self.image_size):
            raise ValueError(f"CLIP {self.name} takes (B, 3, {self.image_size}, {self.image_size}) images, "
                             f"got {tuple(images.shape)}")
        x = ((images.to(self.device, torch.float32) + 1) / 2 - self.mean.view(1, 3, 1, 1)) / self.std.view(1, 3, 1, 1)
        return self.model.encode_image(x, normalize=True).float()


def _create(arch: str, path: Path | None, **kwargs: Any) -> torch.nn.Module:
    """open_clip.create_model with weights_only loading, its errors turned into one sentence naming the file."""
    import open_clip

    try:
        return open_clip.create_model(arch, pretrained=str(path) if path else None, weights_only=True, **kwargs)
    except Exception as e:  # noqa: BLE001 - strict-load errors, bad pickles, truncated safetensors: all the user's file
        what, text = path or arch, str(e)
        if isinstance(e, RuntimeError) and "Error(s) in loading state_dict" in text:  # torch's strict-load report
            line = next(ln.strip() for ln in text.splitlines()[1:] if ln.strip())
            keys = re.findall(r'"([^"]+)"', line)  # "Missing key(s) in state_dict: "a", "b", …" can run to 200 names
            detail = f"{line.split(':')[0]}: {', '.join(keys[:3])}{', …' if len(keys) > 3 else ''}" if keys else line
            raise UserError(f"{what} does not fit CLIP {arch} ({detail.rstrip('.')}), so it belongs to another "
                            "architecture: name the right one as 'NAME:<file>' or use 'local-dir:'.") from e
        if isinstance(e, pickle.UnpicklingError):  # weights_only refused a global: the file holds Python objects
            raise UserError(f"{what} holds Python objects besides tensors, which we never unpickle: use a .safetensors "
                            "file or a plain state dict (OpenAI's TorchScript .pt files are refused too).") from e
        first = text.splitlines()[0][:150] if text else ""
        raise UserError(f"{what} could not be loaded as CLIP {arch} ({type(e).__name__}: {first}): "
                        "it is damaged or not an open_clip state dict.") from e


def load_clip(spec: str = "ViT-B-32", pretrained: str | None = None, *, device: str | torch.device = "cpu",
              download: bool = True, seed: int = 0, checkpoints_dir: Path = CHECKPOINTS_DIR) -> CLIPEncoder:
    """A frozen CLIPEncoder from a spec (see `resolve_clip`); `seed` fixes tiny/random init."""
    import open_clip

    _register_tiny()
    source = resolve_clip(spec, pretrained, checkpoints_dir=checkpoints_dir)
    if source.kind in ("tiny", "random"):
        with torch.random.fork_rng(devices=[]):  # seed locally: the caller's random stream stays untouched
            torch.manual_seed(seed)
            model = open_clip.create_model(source.name)  # built on the CPU, so the seed decides it on any device
        return CLIPEncoder(model.to(device), open_clip.get_tokenizer(source.name), f"{source.name}:random",
                           open_clip.get_model_config(source.name)["embed_dim"])
    if source.kind == "local-dir":
        arch = f"local-dir:{source.path}"
        model = _create(arch, None, device=device)
        return CLIPEncoder(model, open_clip.get_tokenizer(arch), arch, open_clip.get_model_config(arch)["embed_dim"])
    path, tag = source.path, source.pretrained
    if source.kind == "download":
        folder = Path(checkpoints_dir) / "clip" / f"{source.name}-{tag}"
        if not download or not can_download():
            raise UserError(f"CLIP {source.name} ({tag}) is not on this machine and {why_not(download)}: "
                            f"{_put_file_sentence(source.name, tag, folder)}.")
        from open_clip.pretrained import download_pretrained

        try:
            cfg = open_clip.get_pretrained_cfg(source.name, tag)
            target = download_pretrained(cfg, cache_dir=str(clip_cache_dir()))  # hub download with a progress bar
            if not target:
                raise OSError("open_clip lists no download for it")
            path = Path(target)
        except Exception as e:  # noqa: BLE001 - any hub or URL failure ends in the same advice
            raise UserError(f"Could not download CLIP {source.name} ({tag}, {type(e).__name__}): "
                            f"{_put_file_sentence(source.name, tag, folder)}.") from e
    # A file carries no activation or preprocessing, so for tagged weights both come from open_clip's table.
    model = _create(source.name, path, device=device, force_quick_gelu=bool(tag) and needs_quick_gelu(source.name, tag),
                    force_preprocess_cfg=preprocess_for(source.name, tag))
    label = f"{source.name}:{tag or path.name}"
    return CLIPEncoder(model, open_clip.get_tokenizer(source.name), label,
                       open_clip.get_model_config(source.name)["embed_dim"])
