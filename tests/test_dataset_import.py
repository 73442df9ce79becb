"""Dataset curation: import files, folders and zips; reject bad files by name; convert, crop, dedupe, edit, export; CLI."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.cli import main
from studio.data.dataset import MANIFEST, CropSettings, Dataset, ImportReport, display_name, export_name
from studio.data.decode import decode_image
from studio.errors import UserError
from studio.workspace import Workspace, validate_name

from conftest import noise_image

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_KEYS = {"dataset", "imported", "rejected", "duplicates", "counts", "limit_notice"}


# -- helpers -------------------------------------------------------------------------------------
def run_import(ws: Workspace, *paths: Path, name: str = "art", settings: CropSettings | None = None,
               **kwargs) -> tuple[Dataset, ImportReport]:
    ds = Dataset.open_or_create(ws, name, settings or CropSettings(size=64))
    return ds, ds.import_paths(list(paths), **kwargs)


def reason_for(report: ImportReport, file: str) -> str:
    matches = [r["reason"] for r in report.rejected if r["file"] == file]
    assert len(matches) == 1, f"{file!r} not rejected exactly once: {report.rejected}"
    return matches[0]


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def stored(ds: Dataset, entry: dict) -> np.ndarray:
    with Image.open(ds.image_path(entry)) as img:
        assert img.format == "PNG" and img.mode == "RGB"
        assert img.size == (ds.settings.size, ds.settings.size)
        return np.asarray(img, dtype=np.int16)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def crafted_png(width: int, height: int) -> bytes:
    """A few hundred bytes whose header claims width×height 1-bit pixels (a decompression bomb's shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + png_chunk(b"IEND", b""))


def write_zip(path: Path, entries: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def noise_png(w: int = 96, h: int = 96, seed: int = 0) -> bytes:
    return encode(noise_image(w, h, seed), "PNG")


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


# -- rejections: every reason, by name, and the good files still import --------------------------
def _text(p: Path) -> None:
    p.write_text("these are my notes, not a painting\n" * 20)


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _truncated_png(p: Path) -> None:
    data = noise_png(120, 120, seed=7)
    p.write_bytes(data[: len(data) // 2])


def _truncated_jpeg(p: Path) -> None:
    data = encode(noise_image(120, 120, 8), "JPEG", quality=90)
    p.write_bytes(data[: len(data) // 2])


def _bad_crc_png(p: Path) -> None:
    data = bytearray(noise_png(120, 120, seed=9))
    data[len(data) // 2] ^= 0xFF  # inside IDAT: the chunk's CRC no longer matches
    p.write_bytes(bytes(data))


def _too_small(p: Path) -> None:
    noise_image(40, 100, 10).save(p)


def _ico(p: Path) -> None:
    noise_image(64, 64, 11).save(p, format="ICO", sizes=[(64, 64)])


def _ppm(p: Path) -> None:
    noise_image(96, 96, 12).save(p, format="PPM")


def _nested_zip(p: Path) -> None:
    write_zip(p, {"inner.png": noise_png(seed=13)})


def _tar(p: Path) -> None:
    p.write_bytes(b"ustar-ish bytes")


FOLDER_REJECTIONS = [
    ("notes.txt", _text, r"^not an image"),
    ("empty.png", _empty, r"^empty file \(0 bytes\)$"),
    ("truncated.png", _truncated_png, r"truncated|corrupt"),
    ("truncated.jpg", _truncated_jpeg, r"truncated|corrupt"),
    ("bad-crc.png", _bad_crc_png, r"truncated|corrupt"),
    ("small.png", _too_small, r"^too small \(40×100 px; the minimum side is 64 px\)$"),
    ("icon.ico", _ico, r"^unsupported image format ICO"),
    ("picture.ppm", _ppm, r"^unsupported image format PPM"),
    ("inner.zip", _nested_zip, r"^archive inside a folder"),
    ("photos.tar", _tar, r"^unsupported archive type"),
]


@pytest.mark.parametrize("filename, write, reason", FOLDER_REJECTIONS, ids=[c[0] for c in FOLDER_REJECTIONS])
def test_bad_file_in_folder_is_rejected_by_name_and_the_rest_imports(workspace, make_image, tmp_path, filename, write, reason):
    make_image("in/good.png")
    write(tmp_path / "in" / filename)
    ds, report = run_import(workspace, tmp_path / "in")
    assert report.imported == ["in/good.png"]
    assert [r["file"] for r in report.rejected] == [f"in/{filename}"]
    assert re.search(reason, reason_for(report, f"in/{filename}")), report.rejected
    assert report.duplicates == []
    assert [img["source"] for img in ds.images] == ["in/good.png"]
    assert report.counts == {"unlabeled": 1}


def test_bad_file_given_directly_is_rejected_by_its_name(workspace, make_image, tmp_path):
    good = make_image("good.png")
    bad = tmp_path / "notes.txt"
    _text(bad)
    _, report = run_import(workspace, good, bad, tmp_path / "missing.png")
    assert report.imported == ["good.png"]
    assert reason_for(report, "notes.txt").startswith("not an image")
    assert reason_for(report, "missing.png") == "file not found"


def test_min_side_is_configurable(workspace, make_image):
    path = make_image("in/mid.png", 80, 120)
    _, report = run_import(workspace, path, min_side=100)
    assert reason_for(report, "mid.png") == "too small (80×120 px; the minimum side is 100 px)"


# -- decompression bombs -------------------------------------------------------------------------
def test_more_pixels_than_the_limit_is_rejected(workspace, make_image):
    path = make_image("in/big.png", 100, 100)
    _, report = run_import(workspace, path, max_pixels=5000)
    assert report.imported == []
    assert reason_for(report, "big.png") == "too many pixels (100×100; the limit is 5,000; possible decompression bomb)"


def test_real_9000px_png_is_rejected_without_decoding(workspace, make_image, tmp_path, decoded):
    good = make_image("good.png")
    bomb = tmp_path / "bomb.png"
    Image.new("1", (9000, 9000)).save(bomb)  # 81 Mpx, ~10 KB on disk; decoded as RGB it would be ~240 MB
    assert bomb.stat().st_size < 100_000
    _, report = run_import(workspace, bomb, good)
    assert report.imported == ["good.png"]
    assert reason_for(report, "bomb.png") == "too many pixels (9000×9000; the limit is 64,000,000; possible decompression bomb)"
    assert (9000, 9000) not in decoded
    assert (96, 96) in decoded  # the spy does see real decodes


def test_crafted_header_claiming_10_gigapixels_is_rejected_without_decoding(workspace, make_image, tmp_path, decoded):
    good = make_image("good.png")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(crafted_png(100_000, 100_000))
    _, report = run_import(workspace, bomb, good)
    assert report.imported == ["good.png"]
    assert "decompression bomb" in reason_for(report, "bomb.png")
    assert all(w * h < 10**6 for w, h in decoded)


# -- zip archives ---------------------------------------------------------------------------------
ZIP_REJECTIONS = [
    ("../evil.png", r"^unsafe path in zip"),
    ("/etc/x.png", r"^unsafe path in zip"),
    ("..\\x.png", r"^unsafe path in zip"),
    ("sub/../../x.png", r"^unsafe path in zip"),
    ("C:\\windows\\x.png", r"^unsafe path in zip"),
    ("inner.zip", r"^archive inside an archive"),
    ("inner.bin", r"^archive inside an archive"),  # a zip by its bytes, whatever the name says
    ("empty.png", r"^empty file"),
    ("notes.txt", r"^not an image"),
]


@pytest.mark.parametrize("entry, reason", ZIP_REJECTIONS, ids=[c[0] for c in ZIP_REJECTIONS])
def test_bad_zip_entry_is_rejected_by_name_and_the_rest_imports(workspace, tmp_path, entry, reason):
    if entry.startswith("inner"):
        data = io.BytesIO()
        with zipfile.ZipFile(data, "w") as inner:
            inner.writestr("x.png", noise_png(seed=21))
        data = data.getvalue()
    elif entry == "notes.txt":
        data = b"not a painting\n" * 10
    elif entry == "empty.png":
        data = b""
    else:
        data = noise_png(seed=22)
    pack = write_zip(tmp_path / "pack.zip", {"ok.png": noise_png(seed=20), entry: data})
    ds, report = run_import(workspace, pack)
    assert report.imported == ["pack.zip:ok.png"]
    assert [r["file"] for r in report.rejected] == [f"pack.zip:{entry}"]
    assert re.search(reason, report.rejected[0]["reason"]), report.rejected
    assert len(ds.images) == 1
    # Nothing was written outside the dataset folder.
    assert not (tmp_path / "evil.png").exists() and not (tmp_path / "x.png").exists()
    assert sorted(p.name for p in (ds.path / "originals").iterdir()) == [Path(ds.images[0]["original"]).name]


def test_symlink_entry_in_zip_is_rejected(workspace, tmp_path):
    pack = write_zip(tmp_path / "pack.zip", {"ok.png": noise_png(seed=30)}, symlinks={"link.png": "/etc/passwd"})
    _, report = run_import(workspace, pack)
    assert report.imported == ["pack.zip:ok.png"]
    assert reason_for(report, "pack.zip:link.png").startswith("symbolic link inside zip")


def test_damaged_zip_entry_is_rejected(workspace, tmp_path):
    pack = tmp_path / "pack.zip"
    with zipfile.ZipFile(pack, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("ok.png", noise_png(seed=31))
        zf.writestr("bad.png", b"B" * 4000)
    data = bytearray(pack.read_bytes())
    where = data.index(b"B" * 4000)
    data[where + 100] = ord("C")  # stored bytes no longer match the CRC-32
    pack.write_bytes(bytes(data))
    _, report = run_import(workspace, pack)
    assert report.imported == ["pack.zip:ok.png"]
    assert reason_for(report, "pack.zip:bad.png").startswith("damaged zip entry")


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_damaged_zip_archive_is_rejected_and_other_paths_still_import(workspace, make_image, tmp_path, kind):
    good = make_image("good.png")
    real = write_zip(tmp_path / "real.zip", {f"{i}.png": noise_png(seed=40 + i) for i in range(3)}).read_bytes()
    broken = tmp_path / "broken.zip"
    broken.write_bytes({"garbage": b"PK\x03\x04" + b"\x00garbage" * 50, "truncated": real[: len(real) // 2], "empty": b""}[kind])
    _, report = run_import(workspace, broken, good)
    assert report.imported == ["good.png"]
    assert reason_for(report, "broken.zip").startswith("damaged zip archive")


def test_zip_junk_files_are_skipped_silently(workspace, tmp_path):
    pack = write_zip(tmp_path / "pack.zip", {"a.png": noise_png(seed=50), "__MACOSX/._a.png": b"junk", ".DS_Store": b"junk"})
    _, report = run_import(workspace, pack)
    assert report.imported == ["pack.zip:a.png"] and report.rejected == []


# -- symlinks --------------------------------------------------------------------------------------
def test_symlinks_in_folder_are_rejected_not_followed(workspace, make_image, tmp_path):
    target = make_image("elsewhere/secret.png")
    make_image("in/good.png")
    (tmp_path / "in" / "link.png").symlink_to(target)
    (tmp_path / "in" / "linkdir").symlink_to(target.parent, target_is_directory=True)
    ds, report = run_import(workspace, tmp_path / "in")
    assert report.imported == ["in/good.png"]
    assert reason_for(report, "in/link.png").startswith("symbolic link")
    assert reason_for(report, "in/linkdir").startswith("symbolic link")
    assert all("secret" not in img["source"] for img in ds.images)


def test_symlink_given_directly_is_rejected(workspace, make_image, tmp_path):
    target = make_image("real.png")
    link = tmp_path / "link.png"
    link.symlink_to(target)
    _, report = run_import(workspace, link)
    assert report.imported == []
    assert reason_for(report, "link.png").startswith("symbolic link")


# -- every format and mode becomes RGB --------------------------------------------------------------
FORMATS = [
    ("png-rgb", "a.png", "PNG", "RGB", {}),
    ("jpeg-rgb", "a.jpg", "JPEG", "RGB", {"quality": 95}),
    ("jpeg-cmyk", "a.jpg", "JPEG", "CMYK", {"quality": 95}),
    ("webp", "a.webp", "WEBP", "RGB", {"quality": 95}),
    ("webp-rgba", "a.webp", "WEBP", "RGBA", {"lossless": True}),
    ("bmp", "a.bmp", "BMP", "RGB", {}),
    ("gif", "a.gif", "GIF", "P", {}),
    ("tiff", "a.tif", "TIFF", "RGB", {}),
    ("tiff-cmyk", "a.tif", "TIFF", "CMYK", {}),
    ("png-grey", "a.png", "PNG", "L", {}),
    ("png-palette", "a.png", "PNG", "P", {}),
    ("png-1bit", "a.png", "PNG", "1", {}),
]


@pytest.mark.parametrize("case, filename, fmt, mode, kwargs", FORMATS, ids=[c[0] for c in FORMATS])
def test_every_format_and_mode_is_stored_as_rgb_png_with_its_colours(workspace, tmp_path, case, filename, fmt, mode, kwargs):
    source = noise_image(96, 96, seed=60)
    path = tmp_path / filename
    source.convert(mode).save(path, format=fmt, **kwargs)
    ds, report = run_import(workspace, path)
    assert report.imported == [filename], report.rejected
    got = stored(ds, ds.images[0])  # asserts RGB, PNG, 64×64
    expected = source.convert(mode).convert("RGB") if mode in ("L", "1") else source
    mean_diff = np.abs(got.reshape(-1, 3).mean(0) - np.asarray(expected, dtype=np.float64).reshape(-1, 3).mean(0))
    assert mean_diff.max() < 8, mean_diff
    if mode in ("L", "1"):
        assert (got[..., 0] == got[..., 1]).all() and (got[..., 1] == got[..., 2]).all()
    assert ds.images[0]["original"].endswith({"JPEG": ".jpg"}.get(fmt, "." + fmt.lower()))
    assert (ds.path / ds.images[0]["original"]).read_bytes() == path.read_bytes()  # kept as given


def _half_and_half(mode: str, left, right, size=(96, 96)) -> Image.Image:
    img = Image.new(mode, size, left)
    img.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return img


def _left_right(got: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean colour well inside the left and right halves (away from resampling ringing at the seam)."""
    return got[8:56, 4:24].reshape(-1, 3).mean(0), got[8:56, 40:60].reshape(-1, 3).mean(0)


def test_rgba_is_composited_on_white(workspace, tmp_path):
    path = tmp_path / "a.png"
    _half_and_half("RGBA", (255, 0, 0, 0), (0, 0, 255, 255)).save(path)  # left: invisible red
    ds, _ = run_import(workspace, path)
    left, right = _left_right(stored(ds, ds.images[0]))
    assert np.allclose(left, (255, 255, 255), atol=1)
    assert np.allclose(right, (0, 0, 255), atol=1)


def test_grey_with_alpha_is_composited_on_white(workspace, tmp_path):
    path = tmp_path / "a.png"
    _half_and_half("LA", (0, 0), (30, 255)).save(path)
    ds, _ = run_import(workspace, path)
    left, right = _left_right(stored(ds, ds.images[0]))
    assert np.allclose(left, (255, 255, 255), atol=1)
    assert np.allclose(right, (30, 30, 30), atol=1)


def test_palette_gif_with_transparency_is_composited_on_white(workspace, tmp_path):
    img = _half_and_half("P", 0, 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)  # index 0 black (transparent), 1 red
    path = tmp_path / "a.gif"
    img.save(path, transparency=0)
    with Image.open(path) as check:
        assert check.mode == "P" and check.info.get("transparency") == 0
    ds, _ = run_import(workspace, path)
    left, right = _left_right(stored(ds, ds.images[0]))
    assert np.allclose(left, (255, 255, 255), atol=1)
    assert np.allclose(right, (255, 0, 0), atol=1)


def test_animated_gif_uses_the_first_frame(workspace, tmp_path):
    frames = [Image.new("RGB", (96, 96), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    with Image.open(path) as check:
        assert check.n_frames == 3
    ds, report = run_import(workspace, path)
    assert report.imported == ["anim.gif"]
    assert np.allclose(stored(ds, ds.images[0]).reshape(-1, 3).mean(0), (255, 0, 0), atol=1)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_grey_is_rescaled_not_clipped(workspace, tmp_path, fmt):
    path = tmp_path / f"deep.{fmt.lower()}"
    arr = np.full((96, 96), 32768, dtype=np.uint16)
    arr[:, 48:] = 65535
    Image.fromarray(arr).save(path, format=fmt)
    with Image.open(path) as check:
        assert check.mode.startswith("I")
    ds, _ = run_import(workspace, path)
    left, right = _left_right(stored(ds, ds.images[0]))
    assert np.allclose(left, (128, 128, 128), atol=1)  # clipping to 8 bits would give 255 here
    assert np.allclose(right, (255, 255, 255), atol=1)


def test_decode_image_rescales_a_uniform_16_bit_image(tmp_path):
    data = encode(Image.fromarray(np.full((70, 70), 32768, dtype=np.uint16)), "PNG")
    img = decode_image(data)
    assert img.mode == "RGB" and img.getpixel((5, 5)) == (128, 128, 128)


def test_exif_orientation_is_applied(workspace, tmp_path):
    # Stored 100 wide × 200 tall, red on top; Orientation=6 means "rotate 90° clockwise to view".
    img = Image.new("RGB", (100, 200), (255, 0, 0))
    img.paste((0, 0, 255), (0, 100, 100, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    img.save(path, quality=95, exif=exif)
    ds, _ = run_import(workspace, path, settings=CropSettings(size=64, crop="pad"))
    entry = ds.images[0]
    assert entry["box"] == [0, 0, 200, 100]  # upright: wide, not tall
    got = stored(ds, entry)
    # Letterboxed 200×100 → 64×32 in the middle rows; the top (red) turned to the right.
    assert np.allclose(got[24:40, 4:24].reshape(-1, 3).mean(0), (0, 0, 255), atol=12)
    assert np.allclose(got[24:40, 40:60].reshape(-1, 3).mean(0), (255, 0, 0), atol=12)


# -- crop modes ------------------------------------------------------------------------------------
def test_center_crop_takes_the_middle_square(workspace, make_image):
    path = make_image("wide.png", 200, 120)
    ds, _ = run_import(workspace, path)
    (entry,) = ds.images
    assert entry["box"] == [40, 0, 160, 120] and entry["patch"] is None
    got = stored(ds, entry)
    with Image.open(path) as src:
        expected = np.asarray(src.crop((40, 0, 160, 120)).resize((64, 64), Image.Resampling.LANCZOS), dtype=np.int16)
    assert np.abs(got - expected).max() <= 1


def test_pad_keeps_the_whole_image_with_letterbox_bars(workspace, make_image):
    path = make_image("wide.png", 200, 100)
    ds, _ = run_import(workspace, path, settings=CropSettings(size=64, crop="pad"))
    (entry,) = ds.images
    assert entry["box"] == [0, 0, 200, 100]
    got = stored(ds, entry)
    bar_top, bar_bottom, picture = got[:16], got[48:], got[16:48]
    assert (bar_top == bar_top[0, 0]).all() and (bar_bottom == bar_top[0, 0]).all()  # flat bars, one colour
    assert picture.reshape(-1, 3).std(0).min() > 10  # the painting itself, not a bar


def test_patches_cut_k_crops_from_a_large_painting_and_one_from_a_small(workspace, make_image):
    big = make_image("in/big.png", 1200, 900)
    small = make_image("in/small.png", 150, 150)
    ds, report = run_import(workspace, big, small, settings=CropSettings(size=128, crop="patches", patches=4))
    assert report.imported == ["big.png", "small.png"]
    assert report.counts == {"unlabeled": 5}
    patches = [img for img in ds.images if img["source"] == "big.png"]
    assert [p["patch"] for p in patches] == [0, 1, 2, 3]
    assert len({tuple(p["box"]) for p in patches}) == 4
    assert len({p["id"] for p in patches}) == 4 and len({p["file"] for p in patches}) == 4
    assert len({p["original"] for p in patches}) == 1 and len({p["sha256"] for p in patches}) == 1
    for p in patches:
        x0, y0, x1, y1 = p["box"]
        assert x1 - x0 == y1 - y0 == 450  # half the short side: keeps brushwork
        assert 0 <= x0 and x1 <= 1200 and 0 <= y0 and y1 <= 900
        stored(ds, p)  # 128×128 RGB PNG
    (one,) = [img for img in ds.images if img["source"] == "small.png"]
    assert one["patch"] is None and one["box"] == [0, 0, 150, 150]
    assert len(list((ds.path / "originals").iterdir())) == 2


def test_random_patches_are_the_same_on_every_import(workspace, make_image):
    big = make_image("big.png", 800, 600)
    settings = CropSettings(size=64, crop="patches", patches=5, patch_layout="random")
    first, _ = run_import(workspace, big, name="one", settings=settings)
    second, _ = run_import(workspace, big, name="two", settings=settings)
    boxes = [img["box"] for img in first.images]
    assert len(boxes) == 5 and len({tuple(b) for b in boxes}) == 5
    assert boxes == [img["box"] for img in second.images]
    first.recrop(settings)
    assert [img["box"] for img in first.images] == boxes
    for a, b in zip(first.images, second.images):
        assert first.image_path(a).read_bytes() == second.image_path(b).read_bytes()


# -- labels ------------------------------------------------------------------------------------------
def test_labels_from_folders(workspace, make_image, tmp_path):
    for rel in ("in/abstract/a.png", "in/abstract/b.png", "in/cubism/c.png", "in/cubism/deep/d.png", "in/loose.png"):
        make_image(rel)
    ds, report = run_import(workspace, tmp_path / "in", labels_from_folders=True)
    assert report.counts == {"abstract": 2, "cubism": 2, "unlabeled": 1}
    labels = {img["source"]: img["label"] for img in ds.images}
    assert labels == {"in/abstract/a.png": "abstract", "in/abstract/b.png": "abstract", "in/cubism/c.png": "cubism",
                      "in/cubism/deep/d.png": "cubism", "in/loose.png": "unlabeled"}


def test_folders_are_not_labels_unless_asked(workspace, make_image, tmp_path):
    make_image("in/abstract/a.png")
    make_image("in/cubism/b.png")
    _, report = run_import(workspace, tmp_path / "in")
    assert report.counts == {"unlabeled": 2}


@pytest.mark.parametrize("wrapper", ["", "wikiart/"])
def test_labels_from_folders_in_a_zip(workspace, tmp_path, wrapper):
    pack = write_zip(tmp_path / "pack.zip", {
        f"{wrapper}abstract/a.png": noise_png(seed=70), f"{wrapper}abstract/b.png": noise_png(seed=71),
        f"{wrapper}cubism/c.png": noise_png(seed=72),
    })
    ds, report = run_import(workspace, pack, labels_from_folders=True)
    assert report.counts == {"abstract": 2, "cubism": 1}
    assert {img["source"]: img["label"] for img in ds.images}[f"pack.zip:{wrapper}cubism/c.png"] == "cubism"


def test_folder_names_that_are_not_safe_labels_are_made_safe_not_merged(workspace, make_image, tmp_path):
    make_image("in/Pop Art/a.png")
    make_image("in/Abstract Expressionism/b.png")
    make_image("in/Abstract Expressionism/c.png")
    _, report = run_import(workspace, tmp_path / "in", labels_from_folders=True)
    assert report.counts == {"Abstract_Expressionism": 2, "Pop_Art": 1}


def test_label_option_labels_everything(workspace, make_image, tmp_path):
    make_image("in/abstract/a.png")
    make_image("in/b.png")
    _, report = run_import(workspace, tmp_path / "in", label="portraits", labels_from_folders=True)
    assert report.counts == {"portraits": 2}


@pytest.mark.parametrize("label", ["a/b", "..", ".hidden", "", "x" * 65, "a b"])
def test_invalid_label_is_refused_before_importing(workspace, make_image, label):
    path = make_image("a.png")
    ds = Dataset.open_or_create(workspace, "art")
    with pytest.raises(UserError, match="Label name"):
        ds.import_paths([path], label=label)
    assert Dataset.open(workspace, "art").images == []


# -- duplicates ---------------------------------------------------------------------------------------
def test_exact_duplicate_in_one_import_is_imported_once(workspace, make_image, tmp_path):
    a = make_image("in/a.png", seed=80)
    (tmp_path / "in" / "copy").mkdir()
    (tmp_path / "in" / "copy" / "a-again.png").write_bytes(a.read_bytes())
    ds, report = run_import(workspace, tmp_path / "in")
    assert report.imported == ["in/a.png"]
    assert report.duplicates == [{"file": "in/copy/a-again.png", "duplicate_of": "in/a.png", "kind": "exact"}]
    assert len(ds.images) == 1


def test_exact_duplicate_across_imports(workspace, make_image, tmp_path):
    a = make_image("a.png", seed=81)
    run_import(workspace, a)
    again = tmp_path / "later" / "same.png"
    again.parent.mkdir()
    again.write_bytes(a.read_bytes())
    ds, report = run_import(workspace, again, make_image("b.png", seed=82))
    assert report.imported == ["b.png"]
    assert report.duplicates == [{"file": "same.png", "duplicate_of": "a.png", "kind": "exact"}]
    assert [img["source"] for img in Dataset.open(workspace, "art").images] == ["a.png", "b.png"]


def test_near_duplicate_reencoded_and_resized_is_reported(workspace, make_image, tmp_path):
    a = make_image("a.png", 200, 160, seed=83)
    with Image.open(a) as src:
        src.resize((180, 144), Image.Resampling.LANCZOS).save(tmp_path / "a-small.jpg", quality=90)
    _, first = run_import(workspace, a)
    ds, report = run_import(workspace, tmp_path / "a-small.jpg")
    assert first.imported == ["a.png"]
    assert report.imported == []
    assert report.duplicates == [{"file": "a-small.jpg", "duplicate_of": "a.png", "kind": "near"}]
    assert len(ds.images) == 1


def test_distinct_images_are_not_flagged(workspace, make_image, tmp_path):
    for i in range(12):
        make_image(f"in/{i:02}.png", 96, 80)
    ds, report = run_import(workspace, tmp_path / "in")
    assert report.duplicates == [] and report.rejected == []
    assert len(report.imported) == len(ds.images) == 12


# -- dataset operations ----------------------------------------------------------------------------------
@pytest.fixture
def labelled(workspace, make_image, tmp_path) -> Dataset:
    make_image("in/abstract/a.png", 120, 100)
    make_image("in/abstract/b.png", 100, 120)
    make_image("in/cubism/c.png")
    ds, report = run_import(workspace, tmp_path / "in", labels_from_folders=True)
    assert report.counts == {"abstract": 2, "cubism": 1}
    return ds


def test_manifest_persists_across_open(workspace, labelled):
    again = Dataset.open(workspace, "art")
    assert again.manifest == json.loads((labelled.path / MANIFEST).read_text())
    assert again.images == labelled.images and again.counts() == {"abstract": 2, "cubism": 1}
    assert again.settings == CropSettings(size=64)
    for img in again.images:
        assert again.image_path(img).is_file() and (again.path / img["original"]).is_file()
    assert again.fingerprint() == labelled.fingerprint()


def test_relabel(workspace, labelled):
    before = labelled.fingerprint()
    first = labelled.images[0]["id"]
    assert labelled.relabel([first], "cubism") == 1
    reopened = Dataset.open(workspace, "art")
    assert reopened.counts() == {"abstract": 1, "cubism": 2}
    assert reopened.fingerprint() != before
    with pytest.raises(UserError, match="no-such-id"):
        reopened.relabel(["no-such-id"], "cubism")
    with pytest.raises(UserError, match="Label name"):
        reopened.relabel([first], "../up")
    assert Dataset.open(workspace, "art").counts() == {"abstract": 1, "cubism": 2}


def test_remove_deletes_files_and_unused_originals(workspace, labelled):
    victim = labelled.images[0]
    assert labelled.remove([victim["id"]]) == 1
    assert not labelled.image_path(victim).exists()
    assert not (labelled.path / victim["original"]).exists()
    assert victim["id"] not in {img["id"] for img in Dataset.open(workspace, "art").images}
    with pytest.raises(UserError):
        labelled.remove(["nope"])


def test_remove_one_patch_keeps_the_shared_original(workspace, make_image):
    ds, _ = run_import(workspace, make_image("big.png", 400, 300), settings=CropSettings(size=64, crop="patches", patches=3))
    assert len(ds.images) == 3
    original = ds.path / ds.images[0]["original"]
    first, *rest = ds.images
    ds.remove([first["id"]])
    assert not ds.image_path(first).exists() and original.exists()
    ds.remove([img["id"] for img in rest])
    assert not original.exists() and Dataset.open(workspace, "art").images == []


def test_undo_puts_the_last_remove_back_in_place(workspace, labelled):
    before = [dict(img) for img in labelled.images]
    files = {img["id"]: labelled.image_path(img).read_bytes() for img in before}
    labelled.remove([before[0]["id"], before[2]["id"]])
    assert [img["id"] for img in Dataset.open(workspace, "art").images] == [before[1]["id"]]
    restored = Dataset.open(workspace, "art").undo_remove()
    reopened = Dataset.open(workspace, "art")
    assert [img["id"] for img in restored] == [before[0]["id"], before[2]["id"]] and reopened.images == before
    assert all(reopened.image_path(img).read_bytes() == files[img["id"]] for img in before)
    assert all((reopened.path / img["original"]).exists() for img in before)
    with pytest.raises(UserError, match="Nothing to undo"):
        reopened.undo_remove()
    assert display_name(before[0]) == Path(before[0]["source"]).name


def test_recrop_redoes_every_crop_from_the_originals(workspace, labelled):
    labelled.relabel([labelled.images[0]["id"]], "special")
    labels = {img["id"]: img["label"] for img in labelled.images}
    old_bytes = {img["id"]: labelled.image_path(img).read_bytes() for img in labelled.images}
    assert labelled.recrop(CropSettings(size=32, crop="pad")) == 3
    reopened = Dataset.open(workspace, "art")
    assert reopened.settings == CropSettings(size=32, crop="pad")
    assert {img["id"]: img["label"] for img in reopened.images} == labels
    for img in reopened.images:
        with Image.open(reopened.image_path(img)) as im:
            assert im.size == (32, 32) and im.mode == "RGB"
        assert reopened.image_path(img).read_bytes() != old_bytes[img["id"]]
        with Image.open(reopened.path / img["original"]) as orig:
            assert img["box"] == [0, 0, *orig.size]
    assert sorted(p.name for p in (reopened.path / "images").iterdir()) == sorted(f"{i}.png" for i in labels)
    assert sorted(p.name for p in reopened.path.iterdir()) == [MANIFEST, "images", "originals"]


def test_recrop_to_patches_and_back(workspace, make_image):
    ds, _ = run_import(workspace, make_image("big.png", 600, 400), make_image("small.png", 80, 80))
    assert len(ds.images) == 2
    assert ds.recrop(CropSettings(size=64, crop="patches", patches=4)) == 5
    assert ds.recrop(CropSettings(size=64)) == 2
    assert sorted(img["source"] for img in Dataset.open(workspace, "art").images) == ["big.png", "small.png"]


def test_import_with_other_settings_into_existing_dataset_is_refused(workspace, make_image):
    run_import(workspace, make_image("a.png"))
    with pytest.raises(UserError, match="already stores 64 px"):
        Dataset.open_or_create(workspace, "art", CropSettings(size=128))
    ds, report = run_import(workspace, make_image("b.png"))  # same settings: adds
    assert report.imported == ["b.png"] and len(ds.images) == 2


def test_export_zip_is_imagefolder_and_reimports_with_the_same_counts(workspace, labelled, tmp_path):
    out = labelled.export_zip(tmp_path / "out" / "art.zip")
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read(f"art/{MANIFEST}"))
    assert names == {f"art/{MANIFEST}"} | {f"art/{img['label']}/{export_name(img)}" for img in labelled.images}
    assert all(Path(img["source"]).stem in str(names) for img in labelled.images)  # named by source, not hash
    assert manifest["images"] == labelled.images
    copy, report = run_import(workspace, out, name="art-copy", labels_from_folders=True)
    assert report.counts == labelled.counts() == {"abstract": 2, "cubism": 1}
    assert len(report.imported) == 3 and report.duplicates == []
    assert report.rejected == []  # the export's own manifest is not reported as a bad image


@pytest.mark.parametrize("bad", ["a/b", "..", ".hidden", "", "a\\b", "x" * 100, "../up", "a..b", "-dash", "a b"])
def test_validate_name_rejects_unsafe_names(bad):
    with pytest.raises(UserError, match="not allowed"):
        validate_name(bad)


@pytest.mark.parametrize("good", ["my-art_1.0", "A", "x" * 64, "wikiart2024"])
def test_validate_name_accepts_safe_names(good):
    assert validate_name(good) == good


def test_unsafe_dataset_name_creates_nothing(workspace):
    with pytest.raises(UserError):
        Dataset.open_or_create(workspace, "../escape")
    assert not (workspace.root / "escape").exists() and list(workspace.datasets.iterdir()) == []


# -- CLI ----------------------------------------------------------------------------------------------------
def test_cli_import_json_is_the_contract(capsys, make_image, tmp_path):
    make_image("in/abstract/a.png")
    make_image("in/cubism/b.png")
    a_copy = tmp_path / "in" / "cubism" / "copy.png"
    a_copy.write_bytes((tmp_path / "in" / "abstract" / "a.png").read_bytes())
    (tmp_path / "in" / "notes.txt").write_text("hello")
    rc, out, err = cli(capsys, "--workspace", tmp_path / "ws", "dataset", "import", "art", tmp_path / "in",
                       "--labels-from-folders", "--size", "64", "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert set(report) == CONTRACT_KEYS
    assert report["dataset"] == "art"
    assert report["imported"] == ["in/abstract/a.png", "in/cubism/b.png"]
    assert report["rejected"] == [{"file": "in/notes.txt", "reason": "not an image (format not recognised)"}]
    assert report["duplicates"] == [{"file": "in/cubism/copy.png", "duplicate_of": "in/abstract/a.png", "kind": "exact"}]
    assert report["counts"] == {"abstract": 1, "cubism": 1}
    assert Dataset.open(Workspace.resolve(tmp_path / "ws"), "art").settings.size == 64


def test_cli_import_human_output_names_every_file(capsys, make_image, tmp_path):
    good = make_image("good.png")
    (tmp_path / "bad.png").write_bytes(b"")
    rc, out, err = cli(capsys, "--workspace", tmp_path / "ws", "dataset", "import", "art", good, tmp_path / "bad.png",
                       "--crop", "patches", "--patches", "2", "--label", "mine")
    assert rc == 0 and err == ""
    assert "rejected  bad.png: empty file (0 bytes)" in out
    assert "1 imported, 1 rejected, 0 duplicates" in out and "mine 1" in out


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_cli_nothing_usable_exits_2_with_one_sentence(capsys, tmp_path, json_flag):
    (tmp_path / "notes.txt").write_text("hello")
    rc, out, err = cli(capsys, "--workspace", tmp_path / "ws", "dataset", "import", "art", tmp_path / "notes.txt",
                       tmp_path / "missing.png", *json_flag)
    assert rc == 2
    assert "Traceback" not in out + err
    assert err.count("\n") == 1 and err.strip().endswith(".") and "Nothing was imported" in err
    assert not (tmp_path / "ws" / "datasets" / "art").exists(), "a failed first import leaves no empty dataset behind"
    if json_flag:
        report = json.loads(out)
        assert set(report) == CONTRACT_KEYS and report["imported"] == []
        assert [r["file"] for r in report["rejected"]] == ["notes.txt", "missing.png"]
    else:
        assert "notes.txt" in out and "missing.png" in out


@pytest.mark.parametrize("argv, message", [
    (["dataset", "import", "../evil", "{img}"], "Dataset name '../evil' is not allowed"),
    (["dataset", "import", ".hidden", "{img}"], "Dataset name '.hidden' is not allowed"),
    (["dataset", "import", "art", "{img}", "--label", "a/b"], "Label name 'a/b' is not allowed"),
    (["dataset", "import", "art", "{img}", "--size", "5"], "Image size 5 is out of range"),
    (["dataset", "import", "art", "{img}", "--crop", "patches", "--patches", "0"], "Patches per image"),
    (["dataset", "show", "nothing-here"], "There is no dataset named 'nothing-here'"),
    (["dataset", "export", "nothing-here", "{tmp}/out.zip"], "There is no dataset named 'nothing-here'"),
    (["dataset", "show", "a/b"], "not allowed"),
])
def test_cli_user_errors_exit_2_with_one_sentence(capsys, make_image, tmp_path, argv, message):
    img = make_image("a.png")
    argv = [a.format(img=img, tmp=tmp_path) for a in argv]
    rc, out, err = cli(capsys, "--workspace", tmp_path / "ws", *argv)
    assert rc == 2
    assert "Traceback" not in out + err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "evil").exists()


def test_cli_list_show_export(capsys, make_image, tmp_path):
    ws = ["--workspace", tmp_path / "ws"]
    make_image("in/abstract/a.png")
    make_image("in/abstract/b.png")
    make_image("in/cubism/c.png")
    assert cli(capsys, *ws, "dataset", "list", "--json")[:2] == (0, json.dumps({"datasets": []}, indent=1) + "\n")
    assert cli(capsys, *ws, "dataset", "import", "art", tmp_path / "in", "--labels-from-folders", "--size", "64")[0] == 0

    rc, out, _ = cli(capsys, *ws, "dataset", "list", "--json")
    (item,) = json.loads(out)["datasets"]
    assert rc == 0 and item["dataset"] == "art" and item["images"] == 3 and item["counts"] == {"abstract": 2, "cubism": 1}

    rc, out, _ = cli(capsys, *ws, "dataset", "show", "art", "--json")
    shown = json.loads(out)
    assert rc == 0 and shown["counts"] == {"abstract": 2, "cubism": 1} and shown["crop"]["size"] == 64
    assert sorted(img["source"] for img in shown["images"]) == ["in/abstract/a.png", "in/abstract/b.png", "in/cubism/c.png"]

    rc, out, _ = cli(capsys, *ws, "dataset", "show", "art")
    assert rc == 0 and out.startswith("art: 3 images (abstract 2, cubism 1), 64 px, crop center")

    rc, out, _ = cli(capsys, *ws, "dataset", "export", "art", tmp_path / "art.zip")
    assert rc == 0 and str(tmp_path / "art.zip") in out
    with zipfile.ZipFile(tmp_path / "art.zip") as zf:
        assert sorted(n.split("/")[1] for n in zf.namelist() if n.endswith(".png")) == ["abstract", "abstract", "cubism"]

    rc, out, err = cli(capsys, *ws, "dataset", "import", "again", tmp_path / "art.zip", "--labels-from-folders", "--json")
    assert rc == 0, err
    assert json.loads(out)["counts"] == {"abstract": 2, "cubism": 1}


def test_module_entry_point_runs(make_image, tmp_path):
    make_image("in/a.png")
    make_image("in/b.png")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "studio", "--workspace", str(tmp_path / "ws"), "dataset", "import", "art",
         str(tmp_path / "in"), "--size", "64", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert set(report) == CONTRACT_KEYS and report["imported"] == ["in/a.png", "in/b.png"]
    assert (tmp_path / "ws" / "datasets" / "art" / MANIFEST).is_file()

    bad = subprocess.run([sys.executable, "-m", "studio", "--workspace", str(tmp_path / "ws"), "dataset", "import",
                          "art", str(tmp_path / "nowhere")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "Nothing was imported" in bad.stderr


def test_empty_dataset_takes_new_crop_settings(workspace, make_image):
    Dataset.open_or_create(workspace, "art", CropSettings(size=256))
    ds, report = run_import(workspace, make_image("a.png"), settings=CropSettings(size=64))
    assert report.imported == ["a.png"] and ds.settings.size == 64
    assert Image.open(ds.image_path(ds.images[0])).size == (64, 64)


# -- a manifest of the wrong shape marks that one dataset as damaged; the others keep working -------------
GOOD_CROP = {"size": 64, "crop": "center", "patches": 4, "patch_layout": "tiled"}
GOOD_IMAGE = {"id": "ab12", "label": "x", "source": "a.png", "original": "originals/ab12cd34.png", "sha256": "ab12cd34ef",
              "phash": "00ff00ff00ff00ff", "file": "images/ab12.png", "box": [0, 0, 1, 1], "patch": None}
BAD_MANIFESTS = {
    "list": ([1, 2], "it is not a JSON object"),
    "images-number": ({"name": "bad", "crop": GOOD_CROP, "images": 5}, "images is not a list"),
    "no-name": ({"crop": GOOD_CROP, "images": []}, "name is missing"),
    "crop-size-text": ({"name": "bad", "crop": {**GOOD_CROP, "size": "big"}, "images": []}, "crop.size is not a whole number"),
    "crop-out-of-range": ({"name": "bad", "crop": {**GOOD_CROP, "size": 8}, "images": []}, "Image size 8 is out of range"),
    "entry-not-object": ({"name": "bad", "crop": GOOD_CROP, "images": ["a.png"]}, "images[0] is not an object"),
    "label-number": ({"name": "bad", "crop": GOOD_CROP, "images": [{**GOOD_IMAGE, "label": 3}]}, "images[0].label is not text"),
    "file-escapes": ({"name": "bad", "crop": GOOD_CROP, "images": [{**GOOD_IMAGE, "file": "../../secret"}]}, "outside images/"),
    "truncated": ('{"name": "bad", "crop": {', "Expecting"),
}


@pytest.mark.parametrize("case", BAD_MANIFESTS)
def test_a_damaged_manifest_marks_one_dataset_and_the_cli_keeps_working(capsys, tmp_path, case):
    manifest, why = BAD_MANIFESTS[case]
    ws = Workspace.resolve(tmp_path / "ws")
    from studio.data.dataset import create_demo_dataset

    create_demo_dataset(ws, "good", per_class=1, size=64)
    (ws.datasets / "bad").mkdir()
    (ws.datasets / "bad" / MANIFEST).write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    with pytest.raises(UserError, match=re.escape(why)):
        Dataset.open(ws, "bad")
    argv = ["--workspace", ws.root, "dataset"]

    rc, out, err = cli(capsys, *argv, "list")
    assert rc == 0 and err == "" and "Traceback" not in out
    bad_line, good_line = out.splitlines()
    assert bad_line.startswith("bad ") and "is damaged" in bad_line and why in bad_line and "delete the folder" in bad_line
    assert good_line.startswith("good ") and "3 images" in good_line

    rc, out, _ = cli(capsys, *argv, "list", "--json")
    bad, good = json.loads(out)["datasets"]
    assert rc == 0 and bad["dataset"] == "bad" and "is damaged" in bad["error"] and good["images"] == 3

    for action in (["show", "bad"], ["show", "bad", "--json"], ["export", "bad", tmp_path / "x.zip"]):
        rc, out, err = cli(capsys, *argv, *action)
        assert rc == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith("error: The dataset.json of dataset 'bad' is damaged (") and why in err
    assert cli(capsys, *argv, "show", "good")[0] == 0


def test_load_tensors_decodes_once_per_version_of_the_dataset_and_each_caller_gets_its_own(workspace, make_image, monkeypatch):
    """A job reads its images twice (the preset's look at their detail, then training, both at 32 px): the second
    read is the first's copy, and any change to the dataset reads the files again."""
    ds = Dataset.open_or_create(workspace, "kept")
    ds.import_paths([make_image(f"in/{c}{i}.png") for c in "ab" for i in range(2)], labels_from_folders=False)
    ds.relabel([img["id"] for img in ds.images[:2]], "a")
    ds.relabel([img["id"] for img in ds.images[2:]], "b")
    opened, real_open = [], Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    first, labels, classes = ds.load_tensors(32)
    assert len(opened) == 4
    first.mul_(0)  # the caller's own copy: the next caller still gets the images
    again, labels_again, _ = Dataset.open(workspace, "kept").load_tensors(32)
    assert len(opened) == 4 and again.abs().sum() > 0 and labels_again.tolist() == labels.tolist() == [0, 0, 1, 1]
    assert again.data_ptr() != first.data_ptr()
    ds.relabel([ds.images[0]["id"]], "b")  # another version of the dataset: read again
    _, relabelled, _ = ds.load_tensors(32)
    assert len(opened) == 8 and relabelled.tolist() == [1, 0, 1, 1]
    ds.load_tensors(16)  # another size: read again
    assert len(opened) == 12
