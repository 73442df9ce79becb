"""BigGAN-deep loading: tiny models, local folders, our cache, downloads (served from local bytes), and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from studio.errors import UserError
from studio.models import biggan
from studio.models.biggan import (
    BIGGAN_NAMES, biggan_config, imagenet_embedding, load_biggan, one_hot_class, resolve_biggan,
)


REAL_FETCH = biggan._fetch  # kept before the autouse fixture swaps it out


def _no_network(*args, **kwargs):
    pytest.fail("a download was attempted")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Offline, with an empty cache, and any download attempt fails the test (tests opt back in)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(biggan, "_fetch", _no_network)
    monkeypatch.setattr(biggan, "_hf_download", _no_network)


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    return load_biggan("tiny")


def save_biggan_dir(model: torch.nn.Module, folder: Path, **save_kwargs) -> Path:
    """What a released model folder looks like: config.json + a pickled state dict."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(model.config.to_json_string())
    torch.save(model.state_dict(), folder / "pytorch_model.bin", **save_kwargs)
    return folder


def assert_same_model(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def assert_frozen(model: torch.nn.Module) -> None:
    assert not any(m.training for m in model.modules())
    assert not any(p.requires_grad for p in model.parameters())


def test_tiny_is_deterministic_per_seed_and_leaves_global_rng_alone(tiny):
    state = torch.get_rng_state()
    assert_same_model(tiny, load_biggan("tiny", seed=0))
    assert torch.equal(torch.get_rng_state(), state)
    other = load_biggan("tiny", seed=1).state_dict()
    assert not torch.equal(tiny.state_dict()["generator.gen_z.weight_orig"], other["generator.gen_z.weight_orig"])


def test_tiny_forward_shape_range_and_frozen(tiny):
    assert_frozen(tiny)
    u_before = tiny.generator.gen_z.weight_u.clone()
    z = torch.randn(4, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = tiny(z, one_hot_class([0, 1, 2, 999]), 1.0)
        again = tiny(z, one_hot_class([0, 1, 2, 999]), 1.0)
    assert out.shape == (4, 3, 32, 32)
    assert torch.isfinite(out).all() and out.min() >= -1 and out.max() <= 1 and out.std() > 1e-3
    assert torch.equal(out, again)  # eval(): spectral norm's power iteration does not move u/v
    assert torch.equal(tiny.generator.gen_z.weight_u, u_before)
    with torch.no_grad():
        assert load_biggan("tiny-64")(z, one_hot_class(0).expand(4, -1), 0.4).shape == (4, 3, 64, 64)


def test_load_from_folder_path_and_from_checkpoints_dir(tiny, tmp_path):
    folder = save_biggan_dir(tiny, tmp_path / "ckpt" / "biggan-deep-256")
    by_path = load_biggan(str(folder))
    assert_same_model(tiny, by_path)
    assert_frozen(by_path)
    source = resolve_biggan("biggan-deep-256", checkpoints_dir=tmp_path / "ckpt")
    assert (source.kind, source.path, source.status) == ("local", folder, "found locally")
    assert_same_model(tiny, load_biggan("biggan-deep-256", checkpoints_dir=tmp_path / "ckpt"))


def test_legacy_pickle_format_loads_with_weights_only(tiny, tmp_path):
    # The released files were written by torch 1.0, before the zip format: they must still load safely.
    folder = save_biggan_dir(tiny, tmp_path / "legacy", _use_new_zipfile_serialization=False)
    assert_same_model(tiny, load_biggan(str(folder)))


def test_missing_tensor_is_refused_by_name(tiny, tmp_path):
    folder = save_biggan_dir(tiny, tmp_path / "m")
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    del state["generator.layers.0.bn_0.scale.weight_orig"]
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(UserError, match=r"is missing 1 tensor.*generator\.layers\.0\.bn_0\.scale\.weight_orig") as e:
        load_biggan(str(folder))
    assert str(folder / "pytorch_model.bin") in str(e.value)


def test_weights_of_another_model_are_refused(tiny, tmp_path):
    folder = save_biggan_dir(tiny, tmp_path / "m")
    bigger = biggan.tiny_biggan_config(128)  # one more block than the 32 px weights have
    (folder / "config.json").write_text(bigger.to_json_string())
    with pytest.raises(UserError, match=r"is missing \d+ tensor.*generator\.layers\.6\."):
        load_biggan(str(folder))
    save_biggan_dir(load_biggan("tiny-128"), folder)
    (folder / "config.json").write_text(tiny.config.to_json_string())
    with pytest.raises(UserError, match=r"has unexpected \d+ tensor.*generator\.layers\.6\."):
        load_biggan(str(folder))
    bigger.channel_width = 16
    (folder / "config.json").write_text(bigger.to_json_string())
    with pytest.raises(UserError, match=r"does not fit .*config\.json: size mismatch for"):
        load_biggan(str(folder))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "pickled_code"])
def test_damaged_weights_file_is_refused(tiny, tmp_path, damage):
    folder = save_biggan_dir(tiny, tmp_path / "m")
    weights = folder / "pytorch_model.bin"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "garbage":
        weights.write_bytes(b"<html>Access denied</html>")
    else:  # weights_only=True must refuse a pickle that would run code
        torch.save({"x": Path("/")}, weights)
    with pytest.raises(UserError, match=r"pytorch_model\.bin") as e:
        load_biggan(str(folder))
    assert "\n" not in str(e.value)


def test_bad_config_and_incomplete_folder_are_refused(tiny, tmp_path):
    folder = save_biggan_dir(tiny, tmp_path / "m")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(UserError, match=r"config\.json is not a valid"):
        load_biggan(str(folder))
    (folder / "pytorch_model.bin").unlink()
    with pytest.raises(UserError, match=r"has no pytorch_model\.bin"):
        load_biggan(str(folder))
    with pytest.raises(UserError, match="does not exist"):
        load_biggan(str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="Unknown BigGAN"):
        load_biggan("biggan-deep-1024", checkpoints_dir=tmp_path)
    with pytest.raises(UserError, match="not allowed"):
        load_biggan("..", checkpoints_dir=tmp_path)


def test_offline_with_nothing_local_says_which_files_go_where(tmp_path):
    ckpt = tmp_path / "ckpt"
    source = resolve_biggan("biggan-deep-256", checkpoints_dir=ckpt)
    assert (source.kind, source.available, source.size_mb) == ("download", False, 234.4)
    assert source.status.startswith("not available offline: put config.json and pytorch_model.bin in")
    with pytest.raises(UserError) as e:
        load_biggan("biggan-deep-256", checkpoints_dir=ckpt)  # _fetch/_hf_download fail the test if called
    msg = str(e.value)
    assert "config.json" in msg and "pytorch_model.bin" in msg and str(ckpt / "biggan-deep-256") in msg
    assert "HF_HUB_OFFLINE" in msg and msg.count(". ") == 0 and "\n" not in msg


def test_download_off_while_online_attempts_nothing(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert resolve_biggan("biggan-deep-512", checkpoints_dir=tmp_path).status == "will download 236 MB"
    with pytest.raises(UserError, match="downloads are turned off"):
        load_biggan("biggan-deep-512", checkpoints_dir=tmp_path, download=False)


def test_cache_hit(tiny, tmp_path):
    save_biggan_dir(tiny, tmp_path / "cache" / "biggan" / "biggan-deep-128")
    source = resolve_biggan("biggan-deep-128", checkpoints_dir=tmp_path / "ckpt")
    assert source.kind == "cache" and source.path == tmp_path / "cache" / "biggan" / "biggan-deep-128"
    assert_same_model(tiny, load_biggan("biggan-deep-128", checkpoints_dir=tmp_path / "ckpt"))


def _serve(files: dict[str, bytes], requested: list[str]):
    def fetch(url, out, *, progress):
        requested.append(url)
        out.write(files["config.json" if url.endswith("config.json") else "pytorch_model.bin"])
    return fetch


def test_download_into_cache_from_package_urls(tiny, monkeypatch, tmp_path):
    from pytorch_pretrained_biggan.model import PRETRAINED_CONFIG_ARCHIVE_MAP, PRETRAINED_MODEL_ARCHIVE_MAP

    src = save_biggan_dir(tiny, tmp_path / "src")
    files = {f: (src / f).read_bytes() for f in ("config.json", "pytorch_model.bin")}
    requested: list[str] = []
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(biggan, "_fetch", _serve(files, requested))
    model = load_biggan("biggan-deep-256", checkpoints_dir=tmp_path / "ckpt", progress=False)
    assert_same_model(tiny, model)
    assert sorted(requested) == sorted([PRETRAINED_MODEL_ARCHIVE_MAP["biggan-deep-256"],
                                        PRETRAINED_CONFIG_ARCHIVE_MAP["biggan-deep-256"]])
    cached = tmp_path / "cache" / "biggan" / "biggan-deep-256"
    assert sorted(p.name for p in cached.iterdir()) == ["config.json", "pytorch_model.bin"]  # no temp files left
    assert resolve_biggan("biggan-deep-256", checkpoints_dir=tmp_path / "ckpt").kind == "cache"


def test_real_fetch_streams_a_url_into_place(monkeypatch, tmp_path):
    # file:// goes through the same urllib/tqdm/Content-Length code as https://, without a network.
    payload = bytes(range(256)) * 5000
    (tmp_path / "src.bin").write_bytes(payload)
    monkeypatch.setattr(biggan, "_fetch", REAL_FETCH)
    dest = tmp_path / "out" / "pytorch_model.bin"
    biggan._download_file((tmp_path / "src.bin").as_uri(), dest, progress=False)
    assert dest.read_bytes() == payload and [p.name for p in dest.parent.iterdir()] == [dest.name]


def test_failed_download_leaves_no_file_then_falls_back_to_mirror(tiny, monkeypatch, tmp_path):
    src = save_biggan_dir(tiny, tmp_path / "src")
    cached = tmp_path / "cache" / "biggan" / "biggan-deep-128"

    def cut_off(url, out, *, progress):
        out.write(b"\x80\x02partial")
        raise OSError("connection reset")

    mirror_calls: list[str] = []

    def failing_mirror(repo_id, folder):
        mirror_calls.append(repo_id)
        raise ConnectionError("no route to host")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(biggan, "_fetch", cut_off)
    monkeypatch.setattr(biggan, "_hf_download", failing_mirror)
    with pytest.raises(UserError, match=r"Could not download BigGAN 'biggan-deep-128' \(connection reset") as e:
        load_biggan("biggan-deep-128", checkpoints_dir=tmp_path / "ckpt", progress=False)
    assert str(tmp_path / "ckpt" / "biggan-deep-128") in str(e.value)
    assert mirror_calls == ["osanseviero/BigGAN-deep-128"]
    assert list(cached.iterdir()) == []  # the partial bytes never reached pytorch_model.bin

    def working_mirror(repo_id, folder):
        for f in ("pytorch_model.bin", "config.json"):
            (folder / f).write_bytes((src / f).read_bytes())

    monkeypatch.setattr(biggan, "_hf_download", working_mirror)
    assert_same_model(tiny, load_biggan("biggan-deep-128", checkpoints_dir=tmp_path / "ckpt", progress=False))


@pytest.mark.parametrize("name, millions", [("biggan-deep-128", 50.39), ("biggan-deep-256", 55.88),
                                            ("biggan-deep-512", 56.16)])
def test_real_configs_have_the_published_parameter_counts(name, millions):
    from pytorch_pretrained_biggan import BigGAN

    assert name in BIGGAN_NAMES
    model = BigGAN(biggan_config(name))  # random init: the architecture only
    assert abs(sum(p.numel() for p in model.parameters()) / 1e6 - millions) < 0.1
    assert model.config.output_dim == int(name.rsplit("-", 1)[1])
    assert type(model.generator.layers[8]).__name__ == "SelfAttn"


def test_class_inputs(tiny):
    assert one_hot_class(3).shape == (1, 1000) and one_hot_class(3)[0, 3] == 1
    assert one_hot_class([1, 2]).sum() == 2
    weight = tiny.embeddings.weight
    assert torch.equal(imagenet_embedding(tiny, 7), weight[:, 7])
    assert torch.allclose(imagenet_embedding(tiny, None), weight.mean(dim=1))
    assert imagenet_embedding(tiny, None).shape == (128,)
    with pytest.raises(UserError):
        one_hot_class(1000)
    with pytest.raises(UserError):
        imagenet_embedding(tiny, -1)
