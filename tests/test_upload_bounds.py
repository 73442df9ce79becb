"""Upload bounds (studio/data/limits.py): a file past a bound is rejected by name with a reason that names the
bound, everything within the bounds still imports, and the report says what happened in one sentence."""

from __future__ import annotations

import io
import json
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import pytest
from PIL import Image

from studio.cli import main
from studio.data import limits, sources
from studio.data.dataset import CropSettings, Dataset, ImportReport
from studio.workspace import Workspace

from conftest import noise_image


def run_import(ws: Workspace, *paths: Path, name: str = "art", settings: CropSettings | None = None,
               **kwargs) -> tuple[Dataset, ImportReport]:
    ds = Dataset.open_or_create(ws, name, settings or CropSettings(size=64))
    return ds, ds.import_paths(list(paths), **kwargs)


def reasons(report: ImportReport) -> dict[str, str]:
    return {r["file"]: r["reason"] for r in report.rejected}


def png(w: int = 96, h: int = 96, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    noise_image(w, h, seed).save(buf, format="PNG")
    return buf.getvalue()


def crafted_png(width: int, height: int) -> bytes:
    """~100 bytes whose header claims width×height 1-bit pixels: a decompression bomb's shape."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def write_files(folder: Path, files: dict[str, bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in files]


def write_zip(path: Path, files: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """Names of the payloads whose bytes were read, to prove a file past a bound is refused unread."""
    seen: list[str] = []
    real = sources.Payload.read

    def read(self):
        seen.append(self.name)
        return real(self)

    monkeypatch.setattr(sources.Payload, "read", read)
    return seen


# -- per image: pixels (decompression bombs) -------------------------------------------------------
def test_header_claiming_10_gigapixels_names_its_pixel_count_and_the_limit(workspace, tmp_path, decoded):
    # PIL itself refuses this one (DecompressionBombError) before we see its size.
    bomb, good = write_files(tmp_path / "in", {"bomb.png": crafted_png(100_000, 100_000), "good.png": png()})
    _, report = run_import(workspace, bomb, good)
    assert report.imported == ["good.png"]
    assert reasons(report) == {
        "bomb.png": "too many pixels (10,000,000,000 pixels; the limit is 64,000,000; possible decompression bomb)"}
    assert (96, 96) in decoded and all(w * h < 10**6 for w, h in decoded)


def test_pils_warning_range_is_our_rejection_with_the_size_and_no_warning_leaks(workspace, tmp_path):
    # 100 Mpx: past PIL.Image.MAX_IMAGE_PIXELS (~89 Mpx, where PIL only warns) but under its hard error.
    bomb, good = write_files(tmp_path / "in", {"bomb.png": crafted_png(10_000, 10_000), "good.png": png()})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, report = run_import(workspace, bomb, good)
    assert report.imported == ["good.png"]
    assert reasons(report)["bomb.png"] == "too many pixels (10000×10000; the limit is 64,000,000; possible decompression bomb)"


def test_raising_our_pixel_limit_past_pils_still_rejects_with_pils_limit_named(workspace, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_IMAGE_PIXELS", 10**12)
    bomb, good = write_files(tmp_path / "in", {"bomb.png": crafted_png(100_000, 100_000), "good.png": png()})
    _, report = run_import(workspace, bomb, good)
    assert report.imported == ["good.png"]
    pil_limit = 2 * Image.MAX_IMAGE_PIXELS
    assert reasons(report)["bomb.png"] == (
        f"too many pixels (10,000,000,000 pixels; the limit is {pil_limit:,}; possible decompression bomb)")


def test_pixel_limit_is_read_from_limits_at_import_time(workspace, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_IMAGE_PIXELS", 90 * 90)
    small, big = write_files(tmp_path / "in", {"small.png": png(80, 80, 1), "big.png": png(96, 96, 2)})
    _, report = run_import(workspace, small, big)
    assert report.imported == ["small.png"]
    assert reasons(report)["big.png"] == "too many pixels (96×96; the limit is 8,100; possible decompression bomb)"


# -- per file: bytes -----------------------------------------------------------------------------
def test_file_over_the_size_limit_is_rejected_unread(workspace, tmp_path, monkeypatch, reads):
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 50 * 1024)
    big_data = png(200, 200, 3)
    assert len(big_data) > 50 * 1024
    big, good = write_files(tmp_path / "in", {"big.png": big_data, "good.png": png(seed=4)})
    _, report = run_import(workspace, big, good)
    assert report.imported == ["good.png"]
    assert reasons(report)["big.png"] == f"file too large ({sources.size_text(len(big_data))}; the limit is 50 KB)"
    assert reads == ["good.png"]


def test_zip_member_declaring_more_than_the_limit_is_rejected_uninflated(workspace, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 1024 * 1024)
    # 64 MB of zeros deflates to ~64 KB: a small zip bomb whose header tells the truth.
    pack = write_zip(tmp_path / "pack.zip", {"ok.png": png(seed=5), "bomb.png": b"\0" * (64 * 2**20)}, zipfile.ZIP_DEFLATED)
    assert pack.stat().st_size < 2**20
    opened: list[str] = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, name, *a, **k: opened.append(getattr(name, "filename", name)) or real_open(self, name, *a, **k))
    _, report = run_import(workspace, pack)
    assert report.imported == ["pack.zip:ok.png"]
    assert reasons(report) == {"pack.zip:bomb.png": "file too large (64 MB; the limit is 1 MB)"}
    assert opened == ["ok.png"]


def test_zip_member_whose_header_understates_its_size_cannot_unpack_past_it(workspace, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 1024 * 1024)
    real_size = 8 * 2**20
    pack = write_zip(tmp_path / "pack.zip", {"ok.png": png(seed=6), "liar.png": b"\0" * real_size}, zipfile.ZIP_DEFLATED)
    data = bytearray(pack.read_bytes())
    # Both headers claim 1000 bytes instead of 8 MB (local header: offset 22; central directory: offset 24).
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(sig, data.index(sig) + 1)  # the second entry's header
        assert struct.unpack_from("<I", data, at + offset)[0] == real_size
        struct.pack_into("<I", data, at + offset, 1000)
    pack.write_bytes(bytes(data))
    _, report = run_import(workspace, pack)
    assert report.imported == ["pack.zip:ok.png"]
    assert reasons(report)["pack.zip:liar.png"].startswith("damaged zip entry")  # stopped at 1000 bytes: CRC mismatch


def test_zip_member_with_a_corrupt_deflate_stream_is_rejected_not_a_crash(workspace, tmp_path):
    pack = write_zip(tmp_path / "pack.zip", {"ok.png": png(seed=7), "bad.png": bytes(range(256)) * 200}, zipfile.ZIP_DEFLATED)
    data = bytearray(pack.read_bytes())
    start = data.index(b"bad.png") + len(b"bad.png") + 10
    for i in range(start, start + 40):
        data[i] ^= 0x5A  # zlib.error while inflating, not a BadZipFile
    pack.write_bytes(bytes(data))
    _, report = run_import(workspace, pack)
    assert report.imported == ["pack.zip:ok.png"]
    assert reasons(report)["pack.zip:bad.png"].startswith("damaged zip entry")


# -- per import: files, bytes, pixels ------------------------------------------------------------
@pytest.mark.parametrize("container", ["folder", "zip"])
def test_files_past_the_import_count_are_rejected_unread_and_the_rest_import(workspace, tmp_path, monkeypatch, reads,
                                                                              container):
    monkeypatch.setattr(limits, "MAX_IMPORT_FILES", 2)
    files = {f"{c}.png": png(seed=10 + i) for i, c in enumerate("abcd")}
    if container == "folder":
        write_files(tmp_path / "in", files)
        given, prefix = tmp_path / "in", "in/"
    else:
        given, prefix = write_zip(tmp_path / "in.zip", files), "in.zip:"
    ds, report = run_import(workspace, given)
    assert report.imported == [f"{prefix}a.png", f"{prefix}b.png"] and len(ds.images) == 2
    reason = "import limit reached (this import already read 2 files; the limit is 2 per import)"
    assert reasons(report) == {f"{prefix}c.png": reason, f"{prefix}d.png": reason}
    assert reads == [f"{prefix}a.png", f"{prefix}b.png"]
    assert report.limit_notice == ("2 files were left out to stay within the upload limits (at most 2 files per import); "
                                   "each is listed as rejected with its reason.")


def test_duplicates_and_bad_files_count_as_read(workspace, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_IMPORT_FILES", 2)
    a = png(seed=20)
    paths = write_files(tmp_path / "in", {"a.png": a, "a_copy.png": a, "b.png": png(seed=21)})
    _, report = run_import(workspace, *paths)
    assert report.imported == ["a.png"] and [d["file"] for d in report.duplicates] == ["a_copy.png"]
    assert reasons(report)["b.png"].startswith("import limit reached")


def test_bytes_past_the_import_budget_are_rejected_unread_and_smaller_files_still_fit(workspace, tmp_path, monkeypatch, reads):
    a, big, small = png(96, 96, 30), png(160, 160, 31), png(64, 64, 32)
    monkeypatch.setattr(limits, "MAX_IMPORT_BYTES", len(a) + len(small))
    paths = write_files(tmp_path / "in", {"a.png": a, "big.png": big, "small.png": small})
    _, report = run_import(workspace, *paths)
    assert report.imported == ["a.png", "small.png"]
    assert reasons(report)["big.png"].startswith(f"import limit reached ({sources.size_text(len(big))} more would pass ")
    assert "big.png" not in reads
    assert "at most" in report.limit_notice and "per import" in report.limit_notice


def test_pixels_past_the_import_budget_are_rejected_undecoded_and_smaller_images_still_fit(workspace, tmp_path, monkeypatch,
                                                                                         decoded):
    monkeypatch.setattr(limits, "MAX_IMPORT_PIXELS", 96 * 96 * 2 + 64 * 64)
    paths = write_files(tmp_path / "in", {"a.png": png(96, 96, 40), "b.png": png(96, 96, 41), "c.png": png(100, 100, 42),
                                          "d.png": png(64, 64, 43)})
    _, report = run_import(workspace, *paths)
    assert report.imported == ["a.png", "b.png", "d.png"]
    assert reasons(report) == {"c.png": "import limit reached (100×100 more pixels would pass 22,528 decoded in one import)"}
    assert (100, 100) not in decoded
    assert report.limit_notice == ("1 file was left out to stay within the upload limits (at most 22,528 pixels per import); "
                                   "each is listed as rejected with its reason.")


# -- per dataset -----------------------------------------------------------------------------------
def test_a_full_dataset_takes_no_more_images(workspace, tmp_path, monkeypatch, reads):
    monkeypatch.setattr(limits, "MAX_DATASET_IMAGES", 3)
    first = write_files(tmp_path / "one", {"a.png": png(seed=50), "b.png": png(seed=51)})
    run_import(workspace, *first)
    reads.clear()
    second = write_files(tmp_path / "two", {"c.png": png(seed=52), "d.png": png(seed=53), "e.png": png(seed=54)})
    ds, report = run_import(workspace, *second)
    assert report.imported == ["c.png"] and len(ds.images) == 3
    reason = "dataset full (3 images; the limit is 3 per dataset)"
    assert reasons(report) == {"d.png": reason, "e.png": reason}
    assert reads == ["c.png"]
    assert "at most 3 images per dataset" in report.limit_notice
    assert len(Dataset.open(workspace, "art").images) == 3


def test_a_shared_studios_workspace_quota_counts_every_dataset_on_disk(workspace, tmp_path, monkeypatch, reads):
    assert limits.MAX_WORKSPACE_BYTES is None  # your own machine: no quota
    run_import(workspace, *write_files(tmp_path / "one", {"a.png": png(seed=60)}), name="first")
    Dataset.open_or_create(workspace, "second", CropSettings(size=64))
    held = sum(p.stat().st_size for p in workspace.datasets.rglob("*") if p.is_file())
    size = len(png(seed=61))
    monkeypatch.setattr(limits, "MAX_WORKSPACE_BYTES", held + size + 10)  # room for one more file
    reads.clear()
    second = write_files(tmp_path / "two", {"b.png": png(seed=61), "c.png": png(seed=62)})
    ds, report = run_import(workspace, *second, name="second")  # another dataset: the same visitor's disk
    assert report.imported == ["b.png"] and reads == ["b.png"]
    assert reasons(report)["c.png"].startswith("workspace full (") and "delete a dataset" in reasons(report)["c.png"]
    assert "of datasets per visitor" in report.limit_notice


def test_patches_count_one_by_one_and_an_image_that_still_fits_imports(workspace, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_DATASET_IMAGES", 6)
    settings = CropSettings(size=64, crop="patches", patches=4)
    paths = write_files(tmp_path / "in", {"a.png": png(200, 200, 60), "b.png": png(200, 200, 61), "c.png": png(70, 70, 62)})
    ds, report = run_import(workspace, *paths, settings=settings)
    assert report.imported == ["a.png", "c.png"] and len(ds.images) == 5  # 4 patches + 1 center crop
    assert reasons(report) == {"b.png": "dataset full (4 images, and this one would add 4 crops; the limit is 6 per dataset)"}


# -- what the user is told ------------------------------------------------------------------------
def test_no_notice_when_no_limit_was_reached(workspace, tmp_path):
    paths = write_files(tmp_path / "in", {"a.png": png(seed=70), "notes.png": b"not an image"})
    _, report = run_import(workspace, *paths)
    assert report.imported == ["a.png"] and report.limit_notice == ""


def test_cli_prints_the_notice_and_keeps_it_in_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(limits, "MAX_IMPORT_FILES", 1)
    write_files(tmp_path / "in", {"a.png": png(seed=80), "b.png": png(seed=81)})
    rc = main(["--workspace", str(tmp_path / "ws"), "dataset", "import", "art", str(tmp_path / "in"), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0
    report = json.loads(out)
    assert report["imported"] == ["in/a.png"] and [r["file"] for r in report["rejected"]] == ["in/b.png"]
    assert report["limit_notice"].startswith("1 file was left out to stay within the upload limits")
    assert report["limit_notice"] in err
