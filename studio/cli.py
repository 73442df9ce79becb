"""`python -m studio …`: every engine, usable headless. Errors users cause print one sentence and exit 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from studio.data.dataset import CropSettings, Dataset, create_demo_dataset, import_into, list_datasets
from studio.data.decode import CROP_MODES, PATCH_LAYOUTS
from studio.errors import UserError
from studio.workspace import Workspace


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m studio", description="ArtGAN Studio: GAN art from small datasets.")
    parser.add_argument("--workspace", help="folder for datasets/, runs/, exports/ (default: $STUDIO_WORKSPACE or ./workspace)")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_dataset_commands(commands.add_parser("dataset", help="curate datasets").add_subparsers(dest="action", required=True))
    return parser


def _add_crop_flags(p: argparse.ArgumentParser, *, defaults: bool) -> None:
    d = CropSettings()
    p.add_argument("--size", type=int, default=d.size if defaults else None, help=f"side of the stored square images (default {d.size})")
    p.add_argument("--crop", choices=CROP_MODES, default=d.crop if defaults else None,
                   help="center: square center crop; pad: letterbox; patches: K crops per large painting")
    p.add_argument("--patches", type=int, default=d.patches if defaults else None, help=f"crops per large painting with --crop patches (default {d.patches})")
    p.add_argument("--patch-layout", choices=PATCH_LAYOUTS, default=d.patch_layout if defaults else None, help="tiled grid or random positions")


def _add_dataset_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import images, folders and zip files into a dataset (created if new)")
    p.add_argument("name")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--label", help="label every imported image with this class")
    p.add_argument("--labels-from-folders", action="store_true", help="first sub-folder name is the class (ImageFolder)")
    _add_crop_flags(p, defaults=False)
    p.add_argument("--min-side", type=int, default=64, help="reject images whose shorter side is below this (px)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("demo", help="create the built-in demo dataset of generated art (abstract, geometric, islamic)")
    p.add_argument("name")
    p.add_argument("--per-class", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=CropSettings().size)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("list", help="list datasets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="show a dataset's images, labels and settings")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("export", help="export a dataset as an ImageFolder zip")
    p.add_argument("name")
    p.add_argument("out", type=Path, metavar="OUT.zip")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("relabel", help="give images (by id) a new label")
    p.add_argument("name")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--label", required=True)
    p.set_defaults(func=cmd_relabel)

    p = sub.add_parser("remove", help="remove images (by id)")
    p.add_argument("name")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("recrop", help="redo every crop from the originals with new settings")
    p.add_argument("name")
    _add_crop_flags(p, defaults=False)
    p.set_defaults(func=cmd_recrop)


def _crop_settings(args: argparse.Namespace, base: CropSettings | None = None) -> CropSettings | None:
    given = {k: getattr(args, k) for k in ("size", "crop", "patches", "patch_layout") if getattr(args, k) is not None}
    if not given and base is None:
        return None
    return CropSettings(**{**vars(base or CropSettings()), **given})


def cmd_import(args: argparse.Namespace, ws: Workspace) -> int:
    ds, report = import_into(ws, args.name, args.paths, settings=_crop_settings(args), label=args.label,
                             labels_from_folders=args.labels_from_folders, min_side=args.min_side)
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        for item in report.rejected:
            print(f"rejected  {item['file']}: {item['reason']}")
        for item in report.duplicates:
            print(f"duplicate {item['file']} ({item['kind']} duplicate of {item['duplicate_of']})")
        print(f"{len(report.imported)} imported, {len(report.rejected)} rejected, {len(report.duplicates)} duplicates; "
              f"dataset {ds.name!r} now has {len(ds.images)} images: {_fmt_counts(report.counts)}")
    if not report.imported:
        print(f"Nothing was imported into {ds.name!r}: none of the given files is a new, usable image.", file=sys.stderr)
        return 2
    return 0


def cmd_demo(args: argparse.Namespace, ws: Workspace) -> int:
    ds = create_demo_dataset(ws, args.name, per_class=args.per_class, seed=args.seed, size=args.size)
    summary = ds.summary()
    print(json.dumps(summary, indent=1) if args.json else f"Demo dataset {ds.name!r}: {len(ds.images)} images: {_fmt_counts(summary['counts'])}")
    return 0


def cmd_list(args: argparse.Namespace, ws: Workspace) -> int:
    items = list_datasets(ws)
    if args.json:
        print(json.dumps({"datasets": items}, indent=1))
    elif not items:
        print(f"No datasets yet in {ws.datasets}.")
    for item in [] if args.json else items:
        print(f"{item['dataset']:24} " + (item["error"] if "error" in item else f"{item['images']:4} images  {_fmt_counts(item['counts'])}"))
    return 0


def cmd_show(args: argparse.Namespace, ws: Workspace) -> int:
    ds = Dataset.open(ws, args.name)
    if args.json:
        print(json.dumps({**ds.summary(), "images": ds.images}, indent=1))
        return 0
    s = ds.summary()
    print(f"{ds.name}: {s['images']} images ({_fmt_counts(s['counts'])}), {s['crop']['size']} px, crop {s['crop']['crop']}")
    for img in ds.images:
        print(f"  {img['id']:16} {img['label']:14} {img['source']}")
    return 0


def cmd_export(args: argparse.Namespace, ws: Workspace) -> int:
    out = Dataset.open(ws, args.name).export_zip(args.out)
    print(f"Exported to {out}")
    return 0


def cmd_relabel(args: argparse.Namespace, ws: Workspace) -> int:
    print(f"Relabelled {Dataset.open(ws, args.name).relabel(args.ids, args.label)} images as {args.label!r}.")
    return 0


def cmd_remove(args: argparse.Namespace, ws: Workspace) -> int:
    print(f"Removed {Dataset.open(ws, args.name).remove(args.ids)} images.")
    return 0


def cmd_recrop(args: argparse.Namespace, ws: Workspace) -> int:
    ds = Dataset.open(ws, args.name)
    n = ds.recrop(_crop_settings(args, ds.settings))
    print(f"Re-cropped {ds.name!r}: {n} images at {ds.settings.size} px, crop {ds.settings.crop}.")
    return 0


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{label} {n}" for label, n in counts.items()) or "empty"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args, Workspace.resolve(args.workspace))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted; everything already saved is kept.", file=sys.stderr)
        return 130
