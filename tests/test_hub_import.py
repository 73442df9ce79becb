"""Importing art-movement classes from a Hub image dataset (studio.data.hub), offline: a local folder in WikiArt's
layout (huggan/wikiart: parquet shards in data/, an image struct {bytes, path} and artist/genre/style class labels
named in the schema's Hugging Face metadata, a card with front matter) goes through the same code as the Hub."""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import ROOT, noise_image
from studio.cli import main
from studio.data import hub
from studio.data.dataset import Dataset, create_demo_dataset
from studio.errors import UserError
from studio.workspace import Workspace

STYLES = ["Abstract_Expressionism", "Action_painting", "Analytical_Cubism", "Art_Nouveau", "Baroque",
          "Color_Field_Painting", "Contemporary_Realism", "Cubism", "Early_Renaissance", "Expressionism", "Fauvism",
          "High_Renaissance", "Impressionism", "Mannerism_Late_Renaissance", "Minimalism", "Naive_Art_Primitivism",
          "New_Realism", "Northern_Renaissance", "Pointillism", "Pop_Art", "Post_Impressionism", "Realism", "Rococo",
          "Romanticism", "Symbolism", "Synthetic_Cubism", "Ukiyo_e"]
GENRES = ["abstract_painting", "cityscape", "genre_painting", "illustration", "landscape", "nude_painting",
          "portrait", "religious_painting", "sketch_and_study", "still_life", "Unknown Genre"]
ARTISTS = ["Unknown Artist", "claude-monet", "katsushika-hokusai", "peter-paul-rubens", "pablo-picasso", "andy-warhol"]
CODES = {"I": "Impressionism", "U": "Ukiyo_e", "B": "Baroque", "C": "Cubism", "P": "Pop_Art"}
# Three shards of four row groups of six rows. "I!" is a row of corrupt bytes, "U?" a row with no image.
LAYOUT = [
    ["B B B B B B", "I I I B B C", "C C C C C C", "I U B B C C"],
    ["I I! I I U U?", "B B B B B B", "U U U U B B", "P P P P P P"],
    ["I I I I I U", "C C C C C C", "U U U U I B", "B B B B B B"],
]
CARD = """---
license: unknown
pretty_name: WikiArt (test fixture)
dataset_info:
  features:
  - name: image
    dtype: image
{labels}
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
---
# WikiArt

Paintings from WikiArt, with their artist, genre and style.
"""


def _class_label_yaml(name: str, names: list[str]) -> str:
    return f"  - name: {name}\n    dtype:\n      class_label:\n        names:\n" + "".join(
        f"          '{i}': {n}\n" for i, n in enumerate(names))


def write_wikiart(root: Path, layout: list[list[str]] = LAYOUT, *, side: int = 72, quality: int = 90) -> Path:
    """A folder in huggan/wikiart's layout: data/train-0000K-of-0000N.parquet, one row group per string of `layout`
    (style codes, see CODES; "!" corrupt bytes, "?" no image), generated paintings, and a card. Returns `root`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = {"image": {"_type": "Image"},
                **{c: {"names": n, "_type": "ClassLabel"} for c, n in (("artist", ARTISTS), ("genre", GENRES),
                                                                        ("style", STYLES))}}
    schema = pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                        ("artist", pa.int64()), ("genre", pa.int64()), ("style", pa.int64())],
                       metadata={"huggingface": json.dumps({"info": {"features": features}})})
    (root / "data").mkdir(parents=True, exist_ok=True)
    seeds = itertools.count()
    for k, groups in enumerate(layout):
        with pq.ParquetWriter(root / "data" / f"train-{k:05d}-of-{len(layout):05d}.parquet", schema) as writer:
            for group in groups:
                rows = {"image": [], "artist": [], "genre": [], "style": []}
                for code in group.split():
                    seed = next(seeds)
                    buf = io.BytesIO()
                    noise_image(side + seed % 7, side, seed).save(buf, format="JPEG", quality=quality)
                    data = buf.getvalue()
                    if code.endswith("!"):
                        data = b"\xff\xd8\xff\xe0 this is not a painting " + data[40:90]
                    rows["image"].append(None if code.endswith("?") else {"bytes": data, "path": None})
                    rows["style"].append(STYLES.index(CODES[code[0]]))
                    rows["artist"].append(seed % len(ARTISTS))
                    rows["genre"].append(seed % len(GENRES))
                writer.write_table(pa.table(rows, schema=schema))
    labels = "".join(_class_label_yaml(c, n) for c, n in (("artist", ARTISTS), ("genre", GENRES), ("style", STYLES)))
    (root / "README.md").write_text(CARD.format(labels=labels))
    return root


def fewest_row_groups(layout: list[list[str]], classes: dict[str, int]) -> int:
    """The fewest row groups that hold `classes[code]` good rows of each class: what a reader needs at least."""
    groups = [g.split() for shard in layout for g in shard]
    for k in range(len(groups) + 1):
        for chosen in itertools.combinations(groups, k):
            good = [c for g in chosen for c in g if len(c) == 1]
            if all(good.count(code) >= n for code, n in classes.items()):
                return k
    raise AssertionError("the layout cannot satisfy the request")


def rows_of(code: str, layout: list[list[str]] = LAYOUT) -> int:
    """Rows of one style in a layout, bad ones included (the label column cannot tell)."""
    return sum(c[0] == code for shard in layout for group in shard for c in group.split())


def group_sizes(root: Path) -> dict[str, int]:
    """Compressed bytes of each row group ("data/<file>@<group>"): what reading it whole fetches."""
    import pyarrow.parquet as pq

    out = {}
    for path in sorted((root / "data").iterdir()):
        meta = pq.ParquetFile(path).metadata
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            out[f"data/{path.name}@{g}"] = sum(group.column(i).total_compressed_size for i in range(group.num_columns))
    return out


@pytest.fixture(scope="module")
def wikiart(tmp_path_factory) -> Path:
    """One collection for the module: imports only read it."""
    return write_wikiart(tmp_path_factory.mktemp("hub") / "wikiart")


def _cli(workspace, *args: str) -> list[str]:
    return ["--workspace", str(workspace.root), "dataset", "hub", *args]


def test_imports_n_per_class_reading_only_the_row_groups_that_hold_them(workspace, wikiart, capsys):
    code = main(_cli(workspace, "pair", "--repo", str(wikiart), "--column", "style", "--classes",
                     "Impressionism,ukiyo-e", "--per-class", "4", "--size", "64", "--json"))
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {c: (t["asked"], t["found"], t["imported"], t["held"]) for c, t in out["classes"].items()} == {
        "Impressionism": (4, rows_of("I"), 4, 4), "Ukiyo_e": (4, rows_of("U"), 4, 4)}  # "ukiyo-e" is the collection's Ukiyo_e
    assert out["counts"] == {"Impressionism": 4, "Ukiyo_e": 4}
    # Two row groups hold 4 good paintings of each; the reader fetched exactly those, and no other.
    assert out["fetched"]["units"] == fewest_row_groups(LAYOUT, {"I": 4, "U": 4}) == 2
    assert out["fetched"]["fetched"] == ["data/train-00001-of-00003.parquet@0", "data/train-00002-of-00003.parquet@2"]
    assert out["fetched"]["rows"] == 12
    # Labels: one chunk per row group but those that hold a single style, settled by their statistics.
    single = sum(len({c[0] for c in group.split()}) == 1 for shard in LAYOUT for group in shard)
    assert out["fetched"]["label_chunks"] == 12 - single == 6
    # Bytes: the two row groups, each shard's footer (pyarrow reads up to its last 64 KiB) and the label chunks.
    sizes = group_sizes(wikiart)
    fetched = sizes["data/train-00001-of-00003.parquet@0"] + sizes["data/train-00002-of-00003.parquet@2"]
    footers = sum(min(f.stat().st_size, 64 * 1024) for f in (wikiart / "data").iterdir())
    assert fetched < out["fetched"]["bytes"] <= fetched + footers + 6 * 200, (out["fetched"]["bytes"], fetched, footers)
    # The bad rows of the fetched row groups are rejected by name, with their reason, and replaced.
    rejected = {r["file"]: r["reason"] for r in out["rejected"]}
    prefix = f"{wikiart}/data/train-00001-of-00003.parquet"
    assert rejected.keys() == {f"{prefix}#1", f"{prefix}#5"}
    assert "missing image" in rejected[f"{prefix}#5"] and "image" in rejected[f"{prefix}#1"]
    assert out["source"]["licence"] == "unknown; © the original authors"
    ds = Dataset.open(workspace, "pair")
    for img in ds.images:  # each image is the row its provenance names, of the class it is labelled
        p = img["provenance"]
        code = LAYOUT[int(p["file"][11:16])][p["row"] // 6].split()[p["row"] % 6]
        assert p["dataset"] == str(wikiart) and f"{p['file']}@{p['row'] // 6}" in out["fetched"]["fetched"]
        assert CODES[code] == p["class"] == p["style"] == img["label"] and len(code) == 1
        assert p["artist"] in ARTISTS and p["genre"] in GENRES and p["licence"].startswith("unknown")
    assert not (ds.path / hub.STATE / "progress.json").exists() and not (ds.path / hub.STATE / "rows").exists()

    # Asked again: the dataset already holds 4 of each from this collection, so no label and no image is read.
    assert main(_cli(workspace, "pair", "--repo", str(wikiart), "--classes", "Impressionism,Ukiyo_e",
                     "--per-class", "4")) == 0
    text = capsys.readouterr().out
    assert f"Impressionism: 4 of 4 (0 imported now, {rows_of('I')} in the collection)" in text and "0 row groups" in text
    assert "0 label chunks" in text  # the label index is kept with the dataset


def test_a_class_with_fewer_than_n_gets_all_there_are_and_says_so(workspace, wikiart, capsys):
    assert main(_cli(workspace, "few", "--repo", str(wikiart), "--classes", "Pop_Art,Ukiyo_e", "--per-class", "7",
                     "--size", "64")) == 0
    captured = capsys.readouterr()
    assert "Pop_Art: 6 of 7 (6 imported now, 6 in the collection): only 6 in the collection" in captured.out
    assert "Ukiyo_e: 7 of 7" in captured.out
    assert "Fetched" in captured.err  # progress, with counts and bytes, on stderr
    assert Dataset.open(workspace, "few").counts() == {"Pop_Art": 6, "Ukiyo_e": 7}


def test_list_classes_prints_names_and_counts_and_imports_nothing(workspace, wikiart, capsys):
    assert main(_cli(workspace, "look", "--repo", str(wikiart), "--list-classes", "--json")) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["column"] == "style" and listing["columns"] == ["artist", "genre", "style"]
    assert listing["classes"] == STYLES and listing["licence"] == "unknown; © the original authors"
    assert {c: n for c, n in listing["counts"].items() if n} == {CODES[c]: rows_of(c) for c in "BCIPU"}
    assert rows_of("B") == 25 and rows_of("P") == 6
    assert listing["fetched"]["units"] == 0  # labels only, no image read
    assert main(_cli(workspace, "look", "--repo", str(wikiart), "--column", "artist", "--list-classes")) == 0
    text = capsys.readouterr().out
    assert "column 'artist': 6 classes" in text and "claude-monet" in text
    assert not (workspace.datasets / "look" / "dataset.json").exists()


def test_an_import_killed_midway_resumes_without_fetching_anything_twice(workspace, wikiart, tmp_path):
    log = tmp_path / "fetched.txt"
    args = _cli(workspace, "resumed", "--repo", str(wikiart), "--classes", "Impressionism,Ukiyo_e",
                "--per-class", "9", "--size", "64")
    # The CLI in a process of its own, killed (SIGKILL: nothing runs after it) while it imports its 12th painting.
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(ROOT / 'tests')!r})
import studio.data.dataset as dataset
import studio.data.hub as hub
real_open, real_fetch, opened = dataset.open_image, hub.ParquetShards.fetch, []
def dying(*a, **k):
    opened.append(1)
    if len(opened) == 12:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_open(*a, **k)
def logged(self, unit, *a):
    with open({str(log)!r}, "a") as f:
        f.write(unit.id + "\\n")
    return real_fetch(self, unit, *a)
dataset.open_image, hub.ParquetShards.fetch = dying, logged
from studio.cli import main
sys.exit(main({args!r}))
"""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    killed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    before = log.read_text().split()
    assert len(before) >= 2
    saved = Dataset.open(workspace, "resumed")
    assert 0 < len(saved.images) < 11  # what a checkpoint saved; the rest is staged on disk, fetched once

    _, result = hub.import_from_hub(workspace, "resumed", hub.HubRequest(str(wikiart), "style", ("Impressionism", "Ukiyo_e"), 9))
    assert result.stats.label_chunks == 0  # the label index was kept
    assert not set(result.stats.fetched) & set(before), (before, result.stats.fetched)
    assert result.resumed > 0  # picks served from the rows the killed run had fetched
    ds = Dataset.open(workspace, "resumed")
    assert ds.counts() == {"Impressionism": 9, "Ukiyo_e": 9}
    keys = [(img["provenance"]["file"], img["provenance"]["row"]) for img in ds.images]
    assert len(keys) == len(set(keys)) == 18
    # Together the two runs read no more row groups than one uninterrupted run of the same request.
    _, whole = hub.import_from_hub(workspace, "whole", hub.HubRequest(str(wikiart), "style", ("Impressionism", "Ukiyo_e"), 9))
    assert len(before) + len(result.stats.fetched) == len(whole.stats.fetched)
    assert not (ds.path / hub.STATE / "rows").exists()


def test_a_seed_picks_other_paintings_with_no_more_reads(workspace, wikiart):
    request = hub.HubRequest(str(wikiart), "style", ("Ukiyo_e",), 3)
    runs = {}
    for name, seed in (("a", None), ("b", 1), ("c", 1), ("d", 2)):
        ds, result = hub.import_from_hub(workspace, name, hub.HubRequest(**{**request.__dict__, "seed": seed}))
        runs[name] = ([(img["provenance"]["file"], img["provenance"]["row"]) for img in ds.images],
                      result.stats.units)
    assert runs["b"] == runs["c"]  # same seed, same picks
    assert len({tuple(rows) for rows, _ in runs.values()}) >= 3
    assert all(units == 1 for _, units in runs.values())  # one row group holds 3 Ukiyo-e prints, whatever the seed


def test_preview_stages_the_first_picks_for_the_import(workspace, wikiart):
    request = hub.HubRequest(str(wikiart), "style", ("Impressionism", "Ukiyo_e"), 4)
    picks, stats = hub.preview_picks(workspace, "peek", request, per_class=2)
    assert [caption.split(" · ")[0] for _, caption in picks] == ["Impressionism"] * 2 + ["Ukiyo_e"] * 2
    assert all(isinstance(image, Image.Image) and image.size[1] == 72 for image, _ in picks)
    assert not (workspace.datasets / "peek" / "dataset.json").exists()  # a preview imports nothing
    _, result = hub.import_from_hub(workspace, "peek", request)
    assert not set(result.stats.fetched) & set(stats.fetched) and result.resumed >= 4
    assert len(stats.fetched) + len(result.stats.fetched) == 2


def test_an_image_folder_collection_fetches_only_the_files_it_imports(workspace, tmp_path):
    for cls, n in (("cubism", 5), ("fauvism", 2), ("pop art", 3)):
        for i in range(n):
            path = tmp_path / "folders" / "train" / cls / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            noise_image(80, 80, seed=hash((cls, i)) % 10_000).save(path)
    ds, result = hub.import_from_hub(workspace, "f", hub.HubRequest(str(tmp_path / "folders"), None,
                                                                  ("Cubism", "pop_art"), 2))
    assert ds.counts() == {"cubism": 2, "pop_art": 2}
    assert result.stats.units == 4 and result.stats.label_chunks == 0
    assert result.licence == "not stated on its card; © the original authors"


class FakeHub:
    """huggingface_hub's HfApi and HfFileSystem over a local folder, as the Hub serves a repo: the listing with sizes,
    files at a pinned commit, opened for range reads. Records each open's options."""

    SHA = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self, root: Path, repo: str):
        self.root, self.repo, self.opens = root, repo, []

    def dataset_info(self, repo_id, files_metadata=False, **_):
        from types import SimpleNamespace

        from huggingface_hub import errors

        if repo_id != self.repo:
            response = SimpleNamespace(headers={}, status_code=404, request=None, url=repo_id)
            raise errors.RepositoryNotFoundError("404 Client Error. Repository Not Found", response=response)
        files = [SimpleNamespace(rfilename=p.relative_to(self.root).as_posix(), size=p.stat().st_size)
                 for p in sorted(self.root.rglob("*")) if p.is_file()]
        return SimpleNamespace(id=self.repo, sha=self.SHA, siblings=files)

    def open(self, path, mode="rb", **options):
        prefix = f"datasets/{self.repo}@{self.SHA}/"
        assert path.startswith(prefix), path  # every read is pinned to the commit listed
        self.opens.append((path[len(prefix):], options))
        return (self.root / path[len(prefix):]).open(mode)


def test_a_hub_repo_is_read_pinned_to_its_commit_with_range_reads(workspace, wikiart, monkeypatch):
    import huggingface_hub

    fake = FakeHub(wikiart, "huggan/wikiart")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: fake)
    monkeypatch.setattr(huggingface_hub, "HfFileSystem", lambda: fake)
    ds, result = hub.import_from_hub(workspace, "hubbed", hub.HubRequest("huggan/wikiart", "style", ("Ukiyo_e",), 3))
    assert ds.counts() == {"Ukiyo_e": 3} and result.stats.units == 1
    assert {img["provenance"]["dataset"] for img in ds.images} == {"huggan/wikiart"}
    assert {img["provenance"]["revision"] for img in ds.images} == {FakeHub.SHA}
    shards = [(rel, o) for rel, o in fake.opens if rel.endswith(".parquet")]
    # No read-ahead (each label read is a small range request) and no size lookup per open.
    assert shards and all(o["cache_type"] == "none" and o["size"] == (wikiart / rel).stat().st_size for rel, o in shards)
    with pytest.raises(UserError, match=r"^There is no dataset huggan/nope on the Hugging Face Hub"):
        hub.import_from_hub(workspace, "nope", hub.HubRequest("huggan/nope", "style", ("Ukiyo_e",), 3))


@pytest.mark.parametrize("args, says", [
    (["--repo", "huggan/wikiart", "--classes", "Impressionism"], "HF_HUB_OFFLINE is set"),
    (["--repo", "/no/such/folder", "--classes", "Impressionism"], "neither a folder here nor"),
    (["--column", "painter", "--classes", "Impressionism"], "no label column 'painter': choose one of artist, genre, style"),
    (["--classes", "Impresionism"], "has no class 'Impresionism' (did you mean Impressionism or"),
    (["--classes", "Impressionism", "--per-class", "0"], "between 1 and 500"),
    (["--classes", "Impressionism", "--split", "test"], "has no 'test' split"),
    ([], "Choose the classes"),
])
def test_bad_requests_are_one_sentence(workspace, wikiart, capsys, monkeypatch, args, says):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    given = args if "--repo" in args else ["--repo", str(wikiart), *args]
    assert main(_cli(workspace, "bad", *given)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and says in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (workspace.datasets / "bad" / "dataset.json").exists()


@pytest.mark.browser
def test_the_hub_panel_previews_and_imports_two_classes(tmp_path):
    """In a real Chromium: the panel says offline in one sentence, reads the fixture's classes and licence, previews
    the first picks and imports 3 of each of two classes into the gallery."""
    from playwright.sync_api import expect, sync_playwright

    from conftest import running_app
    from test_ui_browser import CHROMIUM, SHOTS, coloured_pixels

    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium) — browser tests skipped.")
    collection = write_wikiart(tmp_path / "wikiart", side=120)
    # A workspace with a dataset already is no first visit: the app makes no 120-painting demo (seconds of CPU).
    create_demo_dataset(Workspace.resolve(tmp_path / "ws"), "tiny", per_class=1, size=64)
    with running_app(tmp_path / "ws") as (url, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.set_default_timeout(30_000)
            page.goto(url)
            page.get_by_role("tab", name="Dataset").click()
            expect(page.locator("#dataset-counts")).to_contain_text("tiny: 3 images")  # the page has loaded
            page.locator("#dataset-name input").fill("movements")
            page.locator("#dataset-name input").press("Enter")
            expect(page.locator("#dataset-counts")).to_contain_text("No dataset selected")  # a new name: empty
            page.get_by_text("From the Hub: art movements").click()
            # Opening the panel reads WikiArt's classes: offline, that is one sentence, not an error state.
            expect(page.locator("#hub-licence")).to_contain_text("HF_HUB_OFFLINE is set")
            page.locator("#hub-repo textarea, #hub-repo input").first.fill(str(collection))
            page.locator("#hub-load").click()
            expect(page.locator("#hub-licence")).to_contain_text("27 classes in style")
            expect(page.locator("#hub-licence")).to_contain_text("unknown; © the original authors")
            for typed, option in (("impress", "Impressionism"), ("ukiyo", "Ukiyo_e")):
                page.locator("#hub-classes input").click()
                page.locator("#hub-classes input").fill(typed)
                page.get_by_role("option", name=option, exact=True).click()
            page.locator("#hub-per-class input").fill("3")
            page.locator("#hub-per-class input").press("Tab")  # a number box sends its value when it loses focus
            page.locator("#hub-preview").click()
            expect(page.locator("#hub-report")).to_contain_text("The first 6 picks", timeout=60_000)
            thumbs = page.locator("#hub-preview-gallery img")
            expect(thumbs).to_have_count(6)
            page.wait_for_function("() => [...document.querySelectorAll('#hub-preview-gallery img')]"
                                   ".filter(i => i.complete && i.naturalWidth > 0).length == 6", timeout=30_000)
            assert coloured_pixels(page, "#hub-preview-gallery", 5001) > 5000  # the paintings drawn, not blank boxes
            page.locator("#hub-import").click()
            report = page.locator("#hub-report")
            expect(report).to_contain_text("Imported 6 from", timeout=60_000)
            expect(report).to_contain_text("Impressionism 3 of 3; Ukiyo_e 3 of 3")
            expect(report).to_contain_text("2 rejected")  # the corrupt row and the row without an image, by name:
            expect(page.locator("#dataset-report")).to_contain_text("parquet#1")
            expect(page.locator("#dataset-report")).to_contain_text("Rejected: missing image")
            expect(report).to_contain_text("fetched before")  # the preview's picks, not fetched again
            gallery = page.locator("#dataset-gallery img")
            expect(gallery).to_have_count(6)
            page.wait_for_function("() => [...document.querySelectorAll('#dataset-gallery img')]"
                                   ".filter(i => i.complete && i.naturalWidth > 0).length == 6", timeout=30_000)
            expect(page.locator("#dataset-gallery")).to_contain_text("Ukiyo_e")
            expect(page.locator("#dataset-counts")).to_contain_text("movements: 6 images")
            expect(page.locator("#dataset-counts")).to_contain_text("Impressionism")
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "dataset_hub_import.png"), full_page=True)
        finally:
            browser.close()
