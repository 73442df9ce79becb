"""open_clip loading: tiny models, weight files, local-dir folders, caches, offline refusal, QuickGELU and mean/std."""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub
import open_clip
import pytest
import torch
from open_clip.transformer import QuickGELU
from safetensors.torch import save_file

from studio.errors import UserError
from studio.models import clip
from studio.models.clip import (
    TINY_NAME, CLIPEncoder, clip_cache_dir, load_clip, needs_quick_gelu, preprocess_for, resolve_clip,
)

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
LAION_B32_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"


def _no_network(*args, **kwargs):
    pytest.fail("a download was attempted")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Offline, with empty caches (ours and the HF hub's), and any download attempt fails the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", _no_network)
    monkeypatch.setattr(open_clip.pretrained, "hf_hub_download", _no_network)
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained_from_url", _no_network)


@pytest.fixture(scope="module")
def tiny() -> CLIPEncoder:
    return load_clip("tiny")


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    return tmp_path / "checkpoints"


def state_of(encoder: CLIPEncoder) -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in encoder.model.state_dict().items()}


def same_embeddings(a: CLIPEncoder, b: CLIPEncoder) -> bool:
    images = torch.rand(2, 3, a.image_size, a.image_size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    texts = ["a painting of a cat", "cubism"]
    return (torch.equal(a.embed_texts(texts), b.embed_texts(texts))
            and torch.equal(a.embed_images(images), b.embed_images(images)))


def hub_cache_file(cache_dir: Path, repo: str, filename: str) -> Path:
    """A file laid out the way huggingface_hub caches it: refs/main names the snapshot."""
    root = cache_dir / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text("abc123")
    path = root / "snapshots" / "abc123" / filename
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not really weights")
    return path


# --- tiny ---

def test_tiny_is_frozen_small_and_seeded(tiny: CLIPEncoder) -> None:
    before = torch.random.get_rng_state()
    again, other = load_clip("tiny", seed=0), load_clip("tiny", seed=1)
    assert torch.equal(torch.random.get_rng_state(), before)  # seeding stays local
    assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in tiny.model.state_dict().items())
    assert not torch.equal(tiny.model.visual.conv1.weight, other.model.visual.conv1.weight)
    assert not tiny.model.training and not any(p.requires_grad for p in tiny.model.parameters())
    assert (tiny.image_size, tiny.dim, tiny.name) == (64, 64, f"{TINY_NAME}:random")
    assert torch.allclose(tiny.mean, torch.tensor(OPENAI_MEAN))


def test_embeddings_are_unit_vectors_and_texts_are_stable(tiny: CLIPEncoder) -> None:
    texts = tiny.embed_texts(["a cat", "a dog", "a cat"])
    assert texts.shape == (3, 64) and torch.allclose(texts.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.equal(texts[0], texts[2]) and not torch.allclose(texts[0], texts[1])
    assert torch.allclose(tiny.embed_texts(["a cat"])[0], texts[0], atol=1e-6)  # batch size doesn't change it
    images = tiny.embed_images(torch.rand(4, 3, 64, 64) * 2 - 1)
    assert images.shape == (4, 64) and torch.allclose(images.norm(dim=-1), torch.ones(4), atol=1e-5)


def test_image_embeddings_pass_gradients_to_the_input_only(tiny: CLIPEncoder) -> None:
    images = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_(True)
    (tiny.embed_images(images) @ tiny.embed_texts(["a red square"]).T).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny.model.parameters())
    with pytest.raises(ValueError, match="64, 64"):
        tiny.embed_images(torch.zeros(1, 3, 224, 224))


# --- local files and folders ---

@pytest.mark.parametrize("spec", [f"{TINY_NAME}:{{path}}", "tiny:{path}"])
def test_safetensors_file_loads_back_identically(tiny: CLIPEncoder, tmp_path: Path, spec: str) -> None:
    path = tmp_path / "tiny.safetensors"
    save_file(state_of(tiny), str(path))
    source = resolve_clip(spec.format(path=path))
    assert (source.kind, source.name, source.path) == ("local-file", TINY_NAME, path)
    loaded = load_clip(spec.format(path=path), seed=5)  # the seed must not matter once weights are loaded
    assert same_embeddings(tiny, loaded) and loaded.name == f"{TINY_NAME}:tiny.safetensors"


def test_pt_file_as_pretrained_argument(tiny: CLIPEncoder, tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    torch.save(tiny.model.state_dict(), path)
    assert same_embeddings(tiny, load_clip("tiny", pretrained=str(path)))


def test_bare_weights_path_defaults_to_vit_b_32(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"x")
    assert (resolve_clip(str(path)).name, resolve_clip(str(path)).kind) == ("ViT-B-32", "local-file")


def test_local_dir_reads_config_and_preprocessing(tiny: CLIPEncoder, tmp_path: Path) -> None:
    folder = tmp_path / "my-clip"
    folder.mkdir()
    config = {"model_cfg": clip._TINY_CONFIG, "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.25] * 3}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    save_file(state_of(tiny), str(folder / "open_clip_model.safetensors"))
    assert resolve_clip(f"local-dir:{folder}").kind == "local-dir"
    loaded = load_clip(f"local-dir:{folder}")
    assert loaded.dim == 64 and loaded.image_size == 64
    assert torch.equal(loaded.mean, torch.tensor([0.5] * 3)) and torch.equal(loaded.std, torch.tensor([0.25] * 3))
    assert torch.equal(loaded.embed_texts(["x"]), tiny.embed_texts(["x"]))
    (folder / "open_clip_model.safetensors").unlink()  # open_clip would silently build a random model
    with pytest.raises(UserError, match="no weights file"):
        resolve_clip(f"local-dir:{folder}")


class NotATensor:  # torch.save pickles it by reference; weights_only loading must refuse it
    pass


@pytest.mark.parametrize(("what", "match"), [
    ("wrong-shape", r"does not fit CLIP studio-tiny-clip \(size mismatch"),
    ("other-keys", r"does not fit CLIP studio-tiny-clip \(Missing key\(s\) in state_dict: positional_embedding, "),
    ("garbage", "could not be loaded as CLIP"),
    ("pickle", "holds Python objects besides tensors"),
])
def test_bad_weights_files_are_one_sentence(tiny: CLIPEncoder, tmp_path: Path, what: str, match: str) -> None:
    state = state_of(tiny)
    path = tmp_path / ("w.pt" if what == "pickle" else "w.safetensors")
    if what == "wrong-shape":  # another architecture: same names, other sizes
        save_file({**state, "text_projection": torch.zeros(64, 32)}, str(path))
    elif what == "other-keys":
        save_file({"encoder.weight": torch.zeros(3)}, str(path))
    elif what == "garbage":
        path.write_bytes(b"\x00" * 100)
    else:
        torch.save({"state_dict": NotATensor()}, path)
    with pytest.raises(UserError, match=match) as err:
        load_clip(f"tiny:{path}")
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_paths_and_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        resolve_clip(f"ViT-B-32:{tmp_path / 'nope.safetensors'}")
    with pytest.raises(UserError, match="no open_clip_config.json"):
        resolve_clip(f"local-dir:{tmp_path / 'nope'}")
    with pytest.raises(UserError, match="such as ViT-B-32"):
        resolve_clip("ViT-B-23")
    with pytest.raises(UserError, match="has no pretrained weights 'laion5b'"):
        resolve_clip("ViT-B-32", "laion5b")


# --- names, tags, caches, downloads ---

def test_offline_with_nothing_local_says_what_to_download(ckpt: Path) -> None:
    source = resolve_clip("ViT-B/32", checkpoints_dir=ckpt)  # OpenAI's spelling
    assert (source.kind, source.name, source.pretrained, source.available) == (
        "download", "ViT-B-32", "laion2b_s34b_b79k", False)
    assert source.size_mb == pytest.approx(605, abs=1)
    assert LAION_B32_REPO in source.status and "open_clip_model.safetensors" in source.status
    with pytest.raises(UserError) as err:
        load_clip("ViT-B-32", checkpoints_dir=ckpt)
    message = str(err.value)
    assert f"hf-hub:{LAION_B32_REPO}" in message and str(ckpt / "clip" / "ViT-B-32-laion2b_s34b_b79k") in message
    assert "local-dir:" in message and "HF_HUB_OFFLINE" in message


def test_online_resolve_prices_the_download_and_download_false_refuses(monkeypatch: pytest.MonkeyPatch,
                                                                       ckpt: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    source = resolve_clip("RN50", checkpoints_dir=ckpt)  # first tag open_clip lists
    assert (source.pretrained, source.available, source.status) == ("openai", True, "will download 408 MB")
    with pytest.raises(UserError, match="downloads are turned off"):
        load_clip("RN50", download=False, checkpoints_dir=ckpt)


def test_cached_weights_are_found_without_the_network(tmp_path: Path, ckpt: Path) -> None:
    ours = hub_cache_file(clip_cache_dir(), LAION_B32_REPO, "open_clip_model.safetensors")
    source = resolve_clip("ViT-B-32", checkpoints_dir=ckpt)
    assert (source.kind, source.path, source.size_mb) == ("cache", ours, None)
    hf = hub_cache_file(tmp_path / "hf-hub", "timm/vit_base_patch32_clip_224.openai", "open_clip_pytorch_model.bin")
    assert (resolve_clip("ViT-B-32", "openai", checkpoints_dir=ckpt).path, hf) == (hf, hf)
    folder = ckpt / "clip" / "ViT-B-32-openai"
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"x")
    assert resolve_clip("ViT-B-32", "OpenAI", checkpoints_dir=ckpt).kind == "local-file"


def test_random_init_option() -> None:
    source = resolve_clip("ViT-B-32", "none")
    assert (source.kind, source.pretrained, source.available) == ("random", "none", True)


@pytest.fixture
def tiny_tag(monkeypatch: pytest.MonkeyPatch, tiny: CLIPEncoder, tmp_path: Path) -> Path:
    """Registers pretrained tag 'qg' for the tiny model (trained with QuickGELU, Inception mean/std) and its file."""
    cfg = {"url": "", "hf_hub": "studio/tiny-clip-qg/", "quick_gelu": True, "mean": (0.5,) * 3, "std": (0.5,) * 3}
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, TINY_NAME, {"qg": cfg})
    path = tmp_path / "tiny-qg.safetensors"
    save_file(state_of(tiny), str(path))
    return path


def test_tagged_weights_get_quick_gelu_and_their_mean_std(tiny_tag: Path, ckpt: Path) -> None:
    folder = ckpt / "clip" / f"{TINY_NAME}-qg"
    folder.mkdir(parents=True)
    tiny_tag.rename(folder / "open_clip_model.safetensors")
    encoder = load_clip(TINY_NAME, checkpoints_dir=ckpt)  # no tag given: the only one listed
    assert encoder.name == f"{TINY_NAME}:qg"
    assert any(isinstance(m, QuickGELU) for m in encoder.model.modules())
    assert torch.equal(encoder.mean, torch.tensor([0.5] * 3)) and encoder.image_size == 64
    assert not any(isinstance(m, QuickGELU) for m in load_clip("tiny").model.modules())


def test_download_goes_through_open_clip_into_our_cache(monkeypatch: pytest.MonkeyPatch, tiny: CLIPEncoder,
                                                        tiny_tag: Path, ckpt: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    calls = []

    def fake_download(cfg: dict, cache_dir: str | None = None, **kwargs) -> str:
        calls.append((cfg["hf_hub"], cache_dir))
        return str(tiny_tag)

    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", fake_download)
    assert resolve_clip(TINY_NAME, "qg", checkpoints_dir=ckpt).kind == "download"
    assert same_embeddings(tiny, load_clip(TINY_NAME, "qg", checkpoints_dir=ckpt)) is False  # QuickGELU changes it
    assert calls == [("studio/tiny-clip-qg/", str(clip_cache_dir()))]

    def failing_download(*args, **kwargs) -> str:
        raise OSError("connection refused")

    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", failing_download)
    with pytest.raises(UserError, match=r"Could not download CLIP studio-tiny-clip \(qg, OSError\)"):
        load_clip(TINY_NAME, "qg", checkpoints_dir=ckpt)


# --- open_clip's own table, no weights needed ---

@pytest.mark.parametrize(("name", "tag", "quick"), [
    ("ViT-B-32", "openai", True), ("ViT-B-32", "laion400m_e31", True), ("ViT-B-32", "laion400m_e32", True),
    ("RN50", "openai", True), ("ViT-B-16", "openai", True), ("ViT-B-32", "laion2b_s34b_b79k", False),
    ("ViT-B-16", "laion400m_e31", False),  # open_clip lists the B-16 LAION-400M weights as plain GELU
])
def test_quick_gelu_follows_open_clips_table(name: str, tag: str, quick: bool) -> None:
    assert needs_quick_gelu(name, tag) is quick


def test_mean_std_per_weights() -> None:
    assert preprocess_for("ViT-B-32", "laion2b_s34b_b79k")["mean"] == OPENAI_MEAN
    assert preprocess_for("ViT-L-14", "laion2b_s32b_b82k")["mean"] == (0.5, 0.5, 0.5)
    assert preprocess_for("MobileCLIP-S1", "datacompdr")["std"] == (1.0, 1.0, 1.0)
    assert preprocess_for("ViT-B-32", None)["std"] == (0.26862954, 0.26130258, 0.27577711)


def test_unknown_architecture_for_a_file(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"x")
    with pytest.raises(UserError, match="Unknown CLIP architecture 'ViT-X'"):
        resolve_clip(f"ViT-X:{path}")


def test_a_named_model_resolves_without_importing_open_clip_and_from_the_same_tables() -> None:
    """Every app start labels ViT-B-32 (Evaluate, Blend): open_clip's __init__ would import torchvision and
    torch._dynamo for it, seconds of the start. The light tables must say what open_clip's own say."""
    import subprocess
    import sys

    code = """
import sys
from studio.models import clip
first = clip.resolve_clip("ViT-B-32"), clip.resolve_clip("RN50"), sorted(clip._model_names())
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("open_clip", "torchvision") or m.startswith("torch._dynamo"))
assert not loaded, loaded
import open_clip
assert clip._tables() is open_clip.pretrained
assert (clip.resolve_clip("ViT-B-32"), clip.resolve_clip("RN50"), sorted(open_clip.list_models())) == first
print(first[0].status)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert "not available offline: download open_clip_model.safetensors from" in out.stdout
