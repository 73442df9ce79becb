"""Data sources: every way images come in yields the same items into one import pipeline; a new source is a module
and a line (tests/toy_source.py and SOURCES)."""

from __future__ import annotations

import json
import zipfile

from studio.cli import main
from studio.data.dataset import Dataset, import_into
from studio.data.sources import SOURCES, FolderSource, ZipSource, iter_payloads, source_for
from toy_source import ToySource


def test_a_registered_source_imports_by_name_with_its_labels_and_provenance(workspace, monkeypatch, capsys):
    cli = ["--workspace", str(workspace.root), "dataset", "import"]
    assert main([*cli, "art", "toy:4", "--json"]) == 2  # not registered: a file that is not there
    assert "file not found" in capsys.readouterr().out
    monkeypatch.setitem(SOURCES, "toy", "toy_source")  # the one line (tests/toy_source.py is the module)
    assert main([*cli, "art", "toy:4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["imported"] == ["toy/000", "toy/001", "toy/002", "toy/003"] and report["counts"] == {"even": 2, "odd_style": 2}
    images = Dataset.open(workspace, "art").images
    assert [img["provenance"] for img in images] == [{"dataset": "toy", "row": i} for i in range(4)]
    assert [img["label"] for img in images] == ["even", "odd_style"] * 2  # a label that is no folder name, made safe
    assert main([*cli, "other", "toy:2", "--label", "mine", "--json"]) == 0  # the import's label wins
    assert json.loads(capsys.readouterr().out)["counts"] == {"mine": 2}


def test_paths_and_sources_mix_in_one_import_and_a_path_is_its_source(workspace, make_image, tmp_path):
    make_image("art/cubism/a.png")
    make_image("art/fauvism/b.png")
    zipped = tmp_path / "more.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(make_image("z/c.png"), "cubism/c.png")
    assert source_for(tmp_path / "art") == FolderSource(tmp_path / "art") and source_for(zipped) == ZipSource(zipped)
    by_path = [p.name for p in iter_payloads([tmp_path / "art", zipped])]
    assert by_path == [p.name for p in iter_payloads([FolderSource(tmp_path / "art"), str(zipped)])]
    ds, report = import_into(workspace, "mixed", [FolderSource(tmp_path / "art"), zipped, ToySource(2)],
                             labels_from_folders=True)
    assert report.imported == ["art/cubism/a.png", "art/fauvism/b.png", "more.zip:cubism/c.png", "toy/000", "toy/001"]
    assert ds.counts() == {"cubism": 2, "fauvism": 1, "even": 1, "odd_style": 1}
    assert [img.get("provenance") for img in ds.images][2:] == [None, {"dataset": "toy", "row": 0}, {"dataset": "toy", "row": 1}]
