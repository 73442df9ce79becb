"""Sharing runs on the Hugging Face Hub, offline: export → load round trips bit for bit (cGAN and BSA on tiny models),
the model card as huggingface_hub reads it, a repo id pulled through the same import as a folder, refusals as one
sentence with nothing written, a push as the visitor's own login, and loading a shared run in the browser."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from studio import hub_share
from studio.cli import main
from studio.data.augment import image_grid
from studio.data.dataset import create_demo_dataset
from studio.errors import UserError
from studio.generate import list_sources, source_info
from studio.jobs import JobManager
from studio.methods import load_run_sampler
from studio.methods.bsa import BSAConfig
from studio.methods.cgan import CGANConfig
from studio.run import RunFolder
from studio.train import LoopConfig, run_training
from studio.ui import generate_tab
from studio.ui.session import Sessions
from studio.workspace import Workspace

CLASSES = ["abstract", "geometric", "islamic"]
LOOP = LoopConfig(iters=2, sample_every=2, checkpoint_every=2)


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    """A workspace with a tiny cGAN run (c1) and a BSA run on the tiny BigGAN (b1), a few steps each."""
    ws = Workspace.resolve(tmp_path_factory.mktemp("share") / "ws")
    create_demo_dataset(ws, "d", per_class=3, size=32)
    run_training(ws, method="cgan", run_name="c1", dataset="d",
                 cfg=CGANConfig(g_ch=4, d_ch=4, z_dim=16, embed_dim=8, batch=4), loop=LOOP, device="cpu")
    run_training(ws, method="bsa", run_name="b1", dataset="d", cfg=BSAConfig(model="tiny-16", perceptual="none", batch=2),
                 loop=LOOP, device="cpu")
    return ws


@pytest.fixture
def other(tmp_path) -> Workspace:
    """Someone else's workspace, to load into."""
    return Workspace.resolve(tmp_path / "other")


def _sentence(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and text.endswith("."), text
    return text


def _sampler(ws: Workspace, name: str):
    return load_run_sampler(RunFolder(ws.run_dir(name)), "cpu")[0]


def _nothing_written(ws: Workspace) -> None:
    assert [p.name for p in ws.runs.iterdir() if not p.name.endswith(".lock")] == []
    assert not list(ws.root.glob(".importing-*"))


def test_cgan_round_trip_gives_the_same_images_bit_for_bit(ws, other, tmp_path):
    out = hub_share.export_run(ws, "c1", tmp_path / "shared")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors", "samples.png"]
    pulled = hub_share.pull(other, str(out), name="theirs")
    assert (pulled.run, pulled.method, pulled.classes) == ("theirs", "cgan", CLASSES)
    mine, theirs = _sampler(ws, "c1"), _sampler(other, "theirs")
    for seed in (0, 7):
        assert torch.equal(mine.grid(4, seed=seed), theirs.grid(4, seed=seed))
    assert torch.equal(mine.interpolate_classes("abstract", "islamic", 5), theirs.interpolate_classes("abstract", "islamic", 5))
    # The shared weights are the EMA generator alone, under its own state-dict names.
    from safetensors.torch import load_file

    shared = load_file(str(out / "model.safetensors"))
    assert shared.keys() == mine.g.state_dict().keys()
    # The card's grid is what the loaded run draws: one row per class, seeds 0-5, pixel for pixel.
    drawn = image_grid(torch.cat([theirs.sample(6, label=c, seed=0) for c in CLASSES]), nrow=6)
    assert np.array_equal(np.asarray(Image.open(out / "samples.png")), np.asarray(drawn))
    # A finished run the Generate tab lists and that `sample` draws from.
    info = source_info(other, "run:theirs")
    assert (info.method, info.classes, info.step) == ("cgan", tuple(CLASSES), 2)
    assert "run:theirs" in [v for _, v in list_sources(other)]
    view = JobManager(other).view("theirs")  # the Train tab's view of it
    assert (view.state, view.method, view.step, view.has_checkpoint) == ("finished", "cgan", 2, True)
    grid = tmp_path / "grid.png"
    assert main(["--workspace", str(other.root), "sample", "--run", "theirs", "--out", str(grid), "--grid", "--n", "2"]) == 0
    assert Image.open(grid).size[0] > 64


def test_bsa_round_trip_shares_only_the_adapter_and_gives_the_same_images(ws, other, tmp_path):
    from safetensors.torch import load_file

    out = hub_share.export_run(ws, "b1", tmp_path / "shared")
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "bsa" and config["base_model"] == "tiny-16" and config["config"]["model"] == "tiny-16"
    mine = _sampler(ws, "b1")
    shared = load_file(str(out / "model.safetensors"))
    assert shared.keys() == mine.state_dict().keys()  # the adapter: no tensor of the base BigGAN
    assert sum(t.numel() for t in shared.values()) < sum(p.numel() for p in mine.model.parameters()) / 2
    pulled = hub_share.pull(other, str(out))
    assert pulled.run == "shared"  # the folder's name, when none is given
    theirs = _sampler(other, "shared")
    assert torch.equal(mine.grid(3, seed=4), theirs.grid(3, seed=4))
    assert torch.equal(mine.reconstruct([0, 5]), theirs.reconstruct([0, 5]))
    assert torch.equal(mine.sample_base(2, imagenet_class=3, seed=1), theirs.sample_base(2, imagenet_class=3, seed=1))


def test_the_card_parses_with_huggingface_hub_and_carries_the_metadata(ws, other, tmp_path, quick_judge):
    from huggingface_hub import ModelCard

    from studio.evaluate import evaluate_run

    report = evaluate_run(ws, "c1", n=12, features="tiny", device="cpu")
    out = hub_share.export_run(ws, "c1", tmp_path / "c1", repo_id="someone/paintings", license="cc-by-4.0")
    card = ModelCard.load(out / "README.md")
    data = card.data.to_dict()
    assert data["license"] == "cc-by-4.0" and data["pipeline_tag"] == "unconditional-image-generation"
    assert {"gan", "art", "cgan"} <= set(data["tags"]) and "base_model" not in data
    studio = data["artgan_studio"]
    assert (studio["method"], studio["classes"], studio["dataset"], studio["dataset_images"], studio["steps"]) == \
        ("cgan", CLASSES, "d", 9, 2)
    metrics = RunFolder(ws.run_dir("c1")).read_metrics()
    assert studio["training_seconds"] == pytest.approx(metrics[-1]["time"], abs=0.1)
    assert studio["evaluation"]["kid_x1000"] == pytest.approx(1000 * report["kid"]["value"], abs=1e-3)
    assert studio["evaluation"]["memorised"] == pytest.approx(report["memorisation"]["fraction"], abs=1e-4)
    assert "KID ×10³" in card.text and "python -m studio hub pull someone/paintings" in card.text
    assert "abstract 3, geometric 3, islamic 3" in card.text and "![Samples" in card.text

    # Shared again from the workspace it was loaded into, it still tells its training and evaluation.
    hub_share.pull(other, str(out), name="again")
    again = ModelCard(hub_share.model_card(hub_share.share_facts(other, "again"))).data.to_dict()["artgan_studio"]
    assert again["training_seconds"] == studio["training_seconds"] and again["evaluation"] == studio["evaluation"]
    config = json.loads((out / "config.json").read_text())
    config["evaluation"]["kid_x1000"], config["training"]["seconds"] = "lots", [1]  # a foreign file's junk is dropped
    (out / "config.json").write_text(json.dumps(config))
    hub_share.pull(other, str(out), name="junk")
    assert "Not evaluated before sharing" in hub_share.card_preview(other, "junk")

    bsa = ModelCard.load(hub_share.export_run(ws, "b1", tmp_path / "b1") / "README.md").data.to_dict()
    assert {"gan", "art", "bsa"} <= set(bsa["tags"]) and bsa["artgan_studio"]["base"] == "tiny-16"
    assert "base_model" not in bsa  # a random tiny model has no Hub repo to name
    # A released BigGAN with a Hub repo is named there, as the Hub's base_model.
    facts = {**hub_share.share_facts(ws, "b1"), "base_model": "biggan-deep-128"}
    named = ModelCard(hub_share.model_card(facts)).data.to_dict()
    assert named["base_model"] == "osanseviero/BigGAN-deep-128" and named["artgan_studio"]["base"] == "biggan-deep-128"


class _Sibling:
    def __init__(self, name: str, size: int):
        self.rfilename, self.size = name, size


def _fake_hub(monkeypatch, repo: Path, calls: dict) -> None:
    """The Hub as a folder: model_info lists its files, snapshot_download copies the ones allowed into local_dir."""
    import huggingface_hub

    class Info:
        sha = "0123456789abcdef"
        siblings = [_Sibling(p.name, p.stat().st_size) for p in sorted(repo.iterdir())]

    def model_info(self, repo_id, files_metadata=False, token=None, **kw):
        calls["token"] = token
        return Info()

    def snapshot_download(repo_id, *, revision, local_dir, token, allow_patterns, **kw):
        calls["allowed"] = sorted(allow_patterns)
        for name in allow_patterns:
            shutil.copy(repo / name, Path(local_dir) / name)
        return local_dir

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # conftest makes the hub "reachable"; nothing leaves the machine
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)


def test_a_repo_id_is_fetched_then_imported_by_the_same_code_as_a_folder(ws, other, tmp_path, monkeypatch):
    repo = hub_share.export_run(ws, "c1", tmp_path / "repo", repo_id="someone/paintings")
    torch.save({"x": torch.zeros(1)}, repo / "pytorch_model.bin")  # a pickle in the repo is never downloaded
    calls: dict = {}
    imported = []
    real = hub_share.import_folder
    monkeypatch.setattr(hub_share, "import_folder", lambda *a, **k: imported.append(a[1]) or real(*a, **k))
    _fake_hub(monkeypatch, repo, calls)
    pulled = hub_share.pull(other, "hf:someone/paintings", token="visitor")
    assert pulled.run == "paintings" and pulled.origin == "someone/paintings@0123456"
    assert calls == {"token": "visitor", "allowed": ["README.md", "config.json", "model.safetensors", "samples.png"]}
    from_folder = hub_share.pull(other, str(repo), name="from-folder")
    assert imported[1] == repo.resolve()
    for a, b in zip(_sampler(other, "paintings").g.state_dict().values(), _sampler(other, from_folder.run).g.state_dict().values()):
        assert torch.equal(a, b)
    assert "someone/paintings" in RunFolder(other.run_dir("paintings")).log_tail()[-1]


def test_a_repo_of_another_kind_is_refused_and_its_pickle_never_downloaded(other, tmp_path, monkeypatch):
    repo = tmp_path / "pickles"
    repo.mkdir()
    torch.save({"w": torch.zeros(2)}, repo / "pytorch_model.bin")
    (repo / "config.json").write_text(json.dumps({"architectures": ["SomethingElse"]}))
    calls: dict = {}
    _fake_hub(monkeypatch, repo, calls)
    with pytest.raises(UserError, match="not a run shared from ArtGAN Studio") as exc:
        hub_share.pull(other, "someone/pickles")
    _sentence(exc.value)
    assert calls["allowed"] == ["config.json"]  # never the pickle
    _nothing_written(other)


def _break(folder: Path, how: str, tmp_path: Path) -> str:
    config = json.loads((folder / "config.json").read_text())
    if how == "pickle weights":
        torch.save({"w": torch.zeros(2)}, folder / "pytorch_model.bin")
        (folder / "model.safetensors").unlink()
        config["weights"] = "pytorch_model.bin"
    elif how == "only a pickle":
        torch.save({"w": torch.zeros(2)}, folder / "model.ckpt")
        for name in ("model.safetensors", "config.json"):
            (folder / name).unlink()
        return "pickle (model.ckpt)"
    elif how == "damaged safetensors":
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
        return "damaged or not a safetensors file"
    elif how == "weights of another model":
        config["classes"] = CLASSES + ["cubism"]
        (folder / "config.json").write_text(json.dumps(config))
        return "does not fit the model"
    elif how == "not from the studio":
        config.pop("library")
    elif how == "settings out of bounds":
        config["config"]["g_ch"] = 10**6
    elif how == "a base that is not here":
        config["base_model"] = config["config"]["model"] = "biggan-deep-256"
    elif how == "a base path":
        config["base_model"] = config["config"]["model"] = "/etc"
    (folder / "config.json").write_text(json.dumps(config))
    return {"pickle weights": "pickle (pytorch_model.bin)", "not from the studio": "not a run shared from ArtGAN Studio",
            "settings out of bounds": "Generator width (g_ch) must be a whole number from 4 to 1024",
            "a base that is not here": "not available offline", "a base path": "does not name the BigGAN"}[how]


@pytest.mark.parametrize("run,how", [("c1", "pickle weights"), ("c1", "only a pickle"), ("c1", "damaged safetensors"),
                                     ("c1", "weights of another model"), ("c1", "not from the studio"),
                                     ("c1", "settings out of bounds"), ("b1", "a base that is not here"),
                                     ("b1", "a base path")])
def test_what_cannot_be_loaded_is_refused_in_one_sentence_and_nothing_is_written(ws, other, tmp_path, monkeypatch, run, how):
    monkeypatch.setenv("STUDIO_CACHE", str(tmp_path / "cache"))  # no BigGAN-deep-256 anywhere, and HF_HUB_OFFLINE=1
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = hub_share.export_run(ws, run, tmp_path / "shared")
    expected = _break(folder, how, tmp_path)
    with pytest.raises(UserError) as exc:
        hub_share.pull(other, str(folder))
    assert expected in _sentence(exc.value)
    _nothing_written(other)


def test_push_offline_says_so_before_anything_is_written(ws, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    shutil.rmtree(ws.exports / "hub", ignore_errors=True)
    with pytest.raises(UserError, match="Cannot push to the Hub: HF_HUB_OFFLINE is set") as exc:
        hub_share.push_run(ws, "c1", "someone/paintings", token="t")
    _sentence(exc.value)
    monkeypatch.setenv("HF_TOKEN", "t")
    assert main(["--workspace", str(ws.root), "hub", "push", "--run", "c1", "--repo", "someone/x", "--token-from-env"]) == 2
    assert capsys.readouterr().err.strip() == "error: Cannot push to the Hub: HF_HUB_OFFLINE is set."
    assert not (ws.exports / "hub").exists()


class _FakeApi:
    """HfApi as far as a push uses it, recording the token and what is uploaded."""

    pushes: list[dict] = []

    def __init__(self, token=None, **kw):
        self.token = token

    def repo_exists(self, repo_id, **kw):
        return False

    def create_repo(self, repo_id, *, private=None, exist_ok=False, repo_type=None, **kw):
        from huggingface_hub import RepoUrl

        self.pushes.append({"token": self.token, "repo": repo_id, "private": private})
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, allow_patterns=None, **kw):
        self.pushes[-1]["files"] = sorted(p.name for p in Path(folder_path).iterdir())


def _tab(ws: Workspace, *, multi_user: bool = False) -> generate_tab.GenerateTab:
    return generate_tab.GenerateTab(Sessions(ws, JobManager(ws, background=False), multi_user=multi_user))


def test_a_space_pushes_as_the_visitor_never_with_its_own_token(ws, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "HfApi", _FakeApi)
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("SPACE_ID", "someone/artgan-studio")
    monkeypatch.setenv("OAUTH_CLIENT_ID", "client")
    monkeypatch.setenv("HF_TOKEN", "the-space-token")
    _FakeApi.pushes.clear()
    tab = _tab(ws)
    refused = tab.on_push("run:c1", "visitor/paintings", True, "mit", oauth_token=None, progress=lambda *a, **k: None)
    assert "Log in with Hugging Face first" in refused and _FakeApi.pushes == []
    done = tab.on_push("run:c1", "visitor/paintings", True, "mit", progress=lambda *a, **k: None,
                       oauth_token=gr.OAuthToken(token="visitor-token", scope="contribute-repos", expires_at=0))
    assert "Pushed run 'c1' to https://huggingface.co/visitor/paintings (private)" in done
    assert _FakeApi.pushes == [{"token": "visitor-token", "repo": "visitor/paintings", "private": True,
                                "files": ["README.md", "config.json", "model.safetensors", "samples.png"]}]
    assert not list(ws.exports.glob(".push-*"))  # the pushed folder is gone once uploaded
    assert tab._token(None, pushing=False) is False  # loading without a login: public repos, no Space token either
    card, note, button = tab.on_share_card("run:c1", "visitor/paintings", "mit")
    assert "license: mit" in card and "Log in with Hugging Face" in note and button["interactive"] is True
    profile = gr.OAuthProfile({"preferred_username": "visitor", "name": "V", "profile": "", "picture": ""})
    assert "Pushes as **visitor**" in tab.on_share_card("run:c1", "visitor/paintings", "mit", profile=profile)[1]
    monkeypatch.delenv("SPACE_ID")  # a shared studio elsewhere has no visitors' login: it never pushes
    assert "never with the server's token" in _tab(ws, multi_user=True).on_push(
        "run:c1", "visitor/x", False, "other", progress=lambda *a, **k: None)
    assert len(_FakeApi.pushes) == 1


@pytest.mark.parametrize("space", [False, True])
def test_the_tab_has_the_hub_controls_and_a_login_button_only_on_a_space_with_the_hubs_login(ws, monkeypatch, space):
    if space:  # what a Space with `hf_oauth: true` sets (gradio reads its OAuth settings once, at import)
        from gradio import oauth

        monkeypatch.setenv("SYSTEM", "spaces")
        monkeypatch.setenv("SPACE_ID", "someone/artgan-studio")
        monkeypatch.setenv("OAUTH_CLIENT_ID", "client")
        for name, value in (("OAUTH_CLIENT_ID", "client"), ("OAUTH_CLIENT_SECRET", "secret"),
                            ("OAUTH_SCOPES", "openid profile contribute-repos"),
                            ("OPENID_PROVIDER_URL", "https://huggingface.co")):
            monkeypatch.setattr(oauth, name, value)
    sessions = Sessions(ws, JobManager(ws, background=False))
    with gr.Blocks() as demo:
        sessions.render(demo)
        generate_tab.render(sessions, dev=True)
    ids = {block.elem_id for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    assert {"share-repo", "share-private", "share-license", "share-card", "share-push", "share-status",
            "hub-load-repo", "hub-load", "hub-load-status"} <= ids
    assert demo.expects_oauth is space and ("share-login" in ids) is space


def test_cli_export_pull_and_sample(ws, tmp_path, capsys):
    cli = ["--workspace", str(ws.root)]
    assert main([*cli, "hub", "export", "--run", "c1", "--out", str(tmp_path / "out")]) == 0
    assert main([*cli, "hub", "pull", str(tmp_path / "out"), "--run", "c1-copy"]) == 0
    assert "as run 'c1-copy': CGAN at step 2" in capsys.readouterr().out
    assert main([*cli, "sample", "--run", "c1-copy", "--out", str(tmp_path / "g.png"), "--grid", "--n", "2"]) == 0
    # Someone else's generator as the start of one's own run.
    assert main([*cli, "train", "cgan", "--dataset", "d", "--run", "child", "--transfer-from", "c1-copy", "--iters", "1",
                 "--g-ch", "4", "--d-ch", "4", "--z-dim", "16", "--embed-dim", "8", "--batch", "4"]) == 0
    kept = json.loads((ws.run_dir("child") / "checkpoints" / "latest.json").read_text())["transfer"]["kept"]
    assert "input.weight" in kept
    assert main([*cli, "hub", "pull", str(tmp_path / "out"), "--run", "c1-copy"]) == 2
    assert "A run named 'c1-copy' already exists here" in capsys.readouterr().err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert main([*cli, "hub", "export", "--run", "c1", "--out", str(tmp_path / "mine")]) == 2  # never someone's folder
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert main([*cli, "hub", "pull", "not a repo"]) == 2


def test_a_shared_studio_loads_from_the_hub_only_into_the_visitors_workspace_under_a_safe_name(ws, other, tmp_path):
    folder = hub_share.export_run(ws, "c1", tmp_path / "My Art!! (v2)")
    with pytest.raises(UserError, match="loads runs from the Hub only"):
        hub_share.pull(other, str(folder), allow_local=False)
    _nothing_written(other)
    assert hub_share.pull(other, str(folder)).run == "My-Art-v2"
    assert hub_share.pull(other, str(folder)).run == "My-Art-v2-2"
    with pytest.raises(UserError, match="not allowed"):
        hub_share.pull(other, str(folder), name="../escape")


@pytest.mark.browser
def test_load_a_shared_run_in_the_browser_and_generate_from_it(ws, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from conftest import running_app
    from test_ui_browser import CHROMIUM, SHOTS, coloured_pixels

    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium) — browser tests skipped.")
    folder = hub_share.export_run(ws, "c1", tmp_path / "shared-paintings")
    app_ws = Workspace.resolve(tmp_path / "app")
    create_demo_dataset(app_ws, "d", per_class=2, size=32)  # a dataset, so the app makes no demo of its own
    with running_app(app_ws.root) as (url, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(30_000)
            page.goto(url)
            page.get_by_role("tab", name="Generate").click()
            page.locator("#hub-load-repo textarea, #hub-load-repo input").first.fill(str(folder))
            page.locator("#hub-load").click()
            expect(page.locator("#hub-load-status")).to_contain_text("as run 'shared-paintings'", timeout=60_000)
            expect(page.locator("#generate-source-info")).to_contain_text("shared-paintings", timeout=30_000)  # a pull imports and refreshes: slow on a busy machine
            expect(page.locator("#generate-source-info")).to_contain_text("3 classes")
            page.locator("#generate-button").click()
            expect(page.locator("#generate-status")).to_contain_text("shared-paintings", timeout=60_000)
            expect(page.locator("#generate-gallery img")).to_have_count(12)  # 4 per class × 3 classes
            assert coloured_pixels(page, "#generate-grid", 2001) > 2000
            page.get_by_text("Share on the Hub").click()  # offline: said at once, with the card it would push
            expect(page.locator("#share-status")).to_contain_text("Pushing needs the Hub, and HF_HUB_OFFLINE is set")
            expect(page.locator("#share-card")).to_contain_text("artgan_studio")
            expect(page.locator("#share-push")).to_be_disabled()
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "hub-load.png"), full_page=True)
        finally:
            browser.close()
    assert RunFolder(app_ws.run_dir("shared-paintings")).read_status()["state"] == "finished"
