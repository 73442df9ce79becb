"""`python -m studio …`: every engine, usable headless. Errors users cause print one sentence and exit 2.

`train METHOD` and `blend` build a job spec from their flags (generated from the methods' configs by
studio.options; the methods from the studio.methods registry), `job NAME` reads one from runs/NAME/job.json,
and all three run it with studio.jobspec.execute.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from pathlib import Path

from studio.data.dataset import CropSettings, Dataset, create_demo_dataset, import_into, list_datasets
from studio.data.decode import CROP_MODES, PATCH_LAYOUTS
from studio.errors import UserError
from studio.run import RunFolder
from studio.workspace import Workspace


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m studio", description="ArtGAN Studio: GAN art from small datasets.")
    parser.add_argument("--workspace", help="folder for datasets/, runs/, exports/ (default: $STUDIO_WORKSPACE or ./workspace)")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_dataset_commands(commands.add_parser("dataset", help="curate datasets").add_subparsers(dest="action", required=True))
    _add_train_commands(commands.add_parser("train", help="train a model on a dataset").add_subparsers(dest="method", required=True))
    _add_sample_command(commands.add_parser("sample", help="generate images from a trained run"))
    _add_evaluate_command(commands.add_parser("evaluate", help="measure a run: KID/FID, memorisation, diversity, class fidelity"))
    _add_blend_command(commands.add_parser("blend", help="guide a run (or blend two BSA runs) with a CLIP text prompt"))
    _add_run_commands(commands.add_parser("run", help="manage runs").add_subparsers(dest="action", required=True))
    _add_hub_commands(commands.add_parser("hub", help="share a run on the Hugging Face Hub, or load a shared one")
                      .add_subparsers(dest="action", required=True))
    p = commands.add_parser("job", help="run the job queued in runs/NAME/job.json (what the app's job processes do)")
    p.add_argument("name", help="the run whose job.json to run")
    p.set_defaults(func=cmd_job)
    return parser


def _add_run_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("delete", help="delete a run and everything it made (refused while it trains)")
    p.add_argument("name")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_run_delete)


def cmd_run_delete(args: argparse.Namespace, ws: Workspace) -> int:
    import shutil

    run = RunFolder(ws.run_dir(args.name))
    if not run.path.exists():
        raise UserError(f"There is no run named {args.name!r}.")
    if not args.yes:
        if not sys.stdin.isatty():
            raise UserError(f"Deleting run {args.name!r} cannot be undone and there is no terminal to ask on: "
                            "add --yes to delete it.")
        answer = input(f"Delete run {args.name!r} and everything it made ({run.path})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Kept it.")
            return 1
    with run.lock():  # refused while a trainer (a CLI process, an app's job) owns it
        shutil.rmtree(run.path)
    print(f"Deleted run {args.name!r}.")
    return 0


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

    p = sub.add_parser("hub", help="import N images per class from an image dataset on the Hugging Face Hub (WikiArt: "
                                   "art movements) or a local folder in its layout, reading only what is needed")
    p.add_argument("name")
    p.add_argument("--repo", help="Hub dataset id, or a local folder with data/*.parquet and README.md, or "
                                  "<split>/<class>/<image> folders (default huggan/wikiart)")
    p.add_argument("--column", help="label column to pick classes by (default: style, else label, else the only one)")
    p.add_argument("--classes", default="", help="comma-separated class names, e.g. Impressionism,Ukiyo_e")
    p.add_argument("--per-class", type=int, default=100, help="images of each class the dataset ends up with (default 100)")
    p.add_argument("--split", default="train")
    p.add_argument("--seed", type=int, default=0, help="orders the row groups that hold equally many wanted images, "
                                                       "and the rows in them: another seed, other paintings, no more reads")
    _add_crop_flags(p, defaults=False)
    p.add_argument("--min-side", type=int, default=64, help="reject images whose shorter side is below this (px)")
    p.add_argument("--list-classes", action="store_true", help="print the column's class names and counts; import nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_hub)

    from studio.data.families import FAMILIES, SPLITS

    p = sub.add_parser("demo", help="create a dataset of generated art: the demo (abstract, geometric, islamic) or "
                                    "another procedural family")
    p.add_argument("name")
    p.add_argument("--family", choices=list(FAMILIES), default="demo",
                   help="; ".join(f"{f}: {', '.join(c)}" for f, c in FAMILIES.items()))
    p.add_argument("--split", choices=SPLITS, help="one of two disjoint halves (train, heldout), to judge a model on "
                                                   "images it never saw")
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
        _print_rejections(report)
        print(_import_summary(report, ds))
    if report.limit_notice:
        print(report.limit_notice, file=sys.stderr)
    if not report.imported:
        print(f"Nothing was imported into {ds.name!r}: none of the given files is a new, usable image.", file=sys.stderr)
        return 2
    return 0


def _print_rejections(report) -> None:
    for item in report.rejected:
        print(f"rejected  {item['file']}: {item['reason']}")
    for item in report.duplicates:
        print(f"duplicate {item['file']} ({item['kind']} duplicate of {item['duplicate_of']})")


def _import_summary(report, ds) -> str:
    return (f"{len(report.imported)} imported, {len(report.rejected)} rejected, {len(report.duplicates)} duplicates; "
            f"dataset {ds.name!r} now has {len(ds.images)} images: {_fmt_counts(report.counts)}")


def cmd_hub(args: argparse.Namespace, ws: Workspace) -> int:
    from studio.data import hub

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    if args.list_classes:
        listing = hub.list_classes(args.repo, args.column, args.split, counts=True,
                                   state_dir=ws.dataset_dir(args.name) / hub.STATE, on_progress=say)
        if args.json:
            print(json.dumps(listing.to_json(), indent=1))
            return 0
        print(f"{listing.repo} ({listing.split}), column {listing.column!r}: {len(listing.classes)} classes "
              f"(label columns: {', '.join(listing.columns)}; licence: {listing.licence})")
        for name in listing.classes:
            print(f"  {name:32} {listing.counts.get(name, 0):7,}" if listing.counts else f"  {name}")
        return 0
    request = hub.HubRequest(args.repo or hub.WIKIART, args.column, tuple(args.classes.split(",")), args.per_class,
                             args.split, args.seed)
    ds, result = hub.import_from_hub(ws, args.name, request, settings=_crop_settings(args), min_side=args.min_side,
                                     on_progress=None if args.json else say)
    report = result.report
    if args.json:
        print(json.dumps(result.to_json(), indent=1))
    else:
        _print_rejections(report)
        for name, tally in result.classes.items():
            print(f"{name}: {tally.held} of {tally.asked} ({tally.imported} imported now, {tally.found:,} in the "
                  f"collection)" + (f": {tally.note}" if tally.note else ""))
        print(_import_summary(report, ds))
        print(f"{result.reads()} Licence: {result.licence}.")
    for line in ([report.limit_notice] if report.limit_notice else []) + result.notes:
        print(line, file=sys.stderr)
    if not report.imported and not result.complete:
        print(f"Nothing was imported into {args.name!r}.", file=sys.stderr)
        return 2
    return 0


def cmd_demo(args: argparse.Namespace, ws: Workspace) -> int:
    ds = create_demo_dataset(ws, args.name, per_class=args.per_class, seed=args.seed, size=args.size,
                             family=args.family, split=args.split)
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


def _add_train_commands(sub: argparse._SubParsersAction) -> None:
    from studio.methods import training_methods
    from studio.options import add_flags
    from studio.train import LoopConfig

    for m in training_methods():
        p = sub.add_parser(m.name, help=m.help)
        p.add_argument("--dataset", help="dataset name (not needed with --resume)")
        p.add_argument("--run", required=True, help="run name: the folder under runs/")
        p.add_argument("--preset", choices=list(m.presets), help="; ".join(f"{k}: {v}" for k, v in m.preset_titles.items()))
        _add_loop_flags(p)
        add_flags(p, LoopConfig, skip=("log_every",))
        add_flags(p, m.config)
        p.set_defaults(func=cmd_train)


def _add_loop_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--resume", action="store_true", help="continue the run from its latest checkpoint")
    p.add_argument("--restart", action="store_true",
                   help="start the run over under its name: what it made so far is deleted first")
    p.add_argument("--gpus", type=int, default=1,
                   help="train on N devices of this machine: N processes under torchrun, the batch split between them")


def _add_sample_command(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True)
    p.add_argument("--out", required=True, help="FILE.png for a grid, or DIR/ for one PNG per image")
    p.add_argument("--n", type=int, default=16, help="images (with --grid: per class)")
    p.add_argument("--class", dest="label", help="art-movement class (default: cycle through the run's classes)")
    p.add_argument("--grid", action="store_true", help="a class × seed grid: one row per class, the same seeds in each")
    p.add_argument("--truncation", type=float, help="latent scale (BSA default 0.5: z ~ N(0, t²); cGAN default: the "
                                                    "run's own, 1 unless its preset says otherwise)")
    p.add_argument("--truncated", action="store_true", help="BSA: N(0, 1) cut to ±t instead of N(0, t²)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--interpolate", type=int, nargs=2, metavar=("I", "J"),
                   help="BSA: between training images I and J; cGAN: between the latents of seeds I and J")
    p.add_argument("--between-classes", nargs=2, metavar=("A", "B"), help="one latent, class embedding mixed from A to B")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--reconstruct", action="store_true", help="BSA: the first N training images as the model learned them")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_sample)


def _add_evaluate_command(p: argparse.ArgumentParser) -> None:
    from studio.devices import PRECISIONS
    from studio.models.features import FEATURE_NETS

    p.add_argument("--run", required=True)
    p.add_argument("--dataset", help="real images to compare with (default: the dataset the run trained on)")
    p.add_argument("--n", type=int, default=200, help="samples in all, split evenly over the run's classes")
    p.add_argument("--seed", type=int, default=0, help="seeds the samples and the judge; compare runs at the same seed")
    p.add_argument("--features", choices=FEATURE_NETS, default="clip",
                   help="feature network for KID, FID and memorisation (CLIP ViT-B-32 by default; judge: the embedding "
                        "of a classifier trained on the dataset, no download)")
    p.add_argument("--step", type=int, help="evaluate the snapshot kept at this checkpoint step instead of the latest")
    p.add_argument("--over-checkpoints", action="store_true",
                   help="KID, memorisation, diversity and fidelity at every kept checkpoint step (eval_history.json)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="of the feature networks' forward passes (auto: bf16 where it measured faster, see "
                        "docs/performance.md); compare runs measured at the same precision")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_evaluate)


def _add_blend_command(p: argparse.ArgumentParser) -> None:
    from studio.guide import BlendConfig
    from studio.options import add_flags

    add_flags(p, BlendConfig)
    p.add_argument("--run", help="name of the blend's folder under runs/ (default: from the prompt)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print scores, final score, mix per layer and image path as JSON")
    p.set_defaults(func=cmd_blend)


def cmd_blend(args: argparse.Namespace, ws: Workspace) -> int:
    from studio.guide import BlendConfig, blend_name
    from studio.jobspec import JobRequest
    from studio.options import given

    name = args.run or blend_name(args.prompt, lambda n: ws.run_dir(n).exists())
    return _run_job(ws, JobRequest("blend", name, config=given(args, BlendConfig), device=args.device), as_json=args.json)


def cmd_train(args: argparse.Namespace, ws: Workspace) -> int:
    from studio import distributed
    from studio.jobspec import JobRequest, with_data_preset
    from studio.methods import method
    from studio.options import given
    from studio.train import LoopConfig

    if args.gpus < 1:
        raise UserError(f"--gpus must be 1 or more, not {args.gpus}.")
    if args.gpus > 1 and "RANK" not in os.environ:  # torchrun runs this same command once per device
        return distributed.launch(args.argv, args.gpus)

    if args.resume and args.restart:
        raise UserError("Choose --resume (go on from the last checkpoint) or --restart (start over), not both.")
    if not args.resume and not args.dataset:
        raise UserError("Say which dataset to train on with --dataset NAME.")
    spec, why = with_data_preset(ws, JobRequest(
        args.method, args.run, dataset=args.dataset, resume=args.resume, preset=args.preset,
        config=given(args, method(args.method).config), loop=given(args, LoopConfig), device=args.device))
    if why and os.environ.get("RANK", "0") == "0":
        print(f"{why} (Name a preset, such as --preset cpu-32, to train otherwise.)", file=sys.stderr)
    return _run_job(ws, spec, restart=args.restart)


def cmd_job(args: argparse.Namespace, ws: Workspace) -> int:
    from studio.jobspec import read_spec

    return _run_job(ws, read_spec(RunFolder(ws.run_dir(args.name))))


def _run_job(ws: Workspace, spec, *, restart: bool = False, as_json: bool = False) -> int:
    """Run a spec here (studio.jobspec.execute), stopping cleanly on Ctrl-C or SIGTERM, and say how it ended."""
    import signal

    from studio.jobspec import execute
    from studio.methods import method

    trains = method(spec.method).trains
    stop_requests = []

    def on_signal(signum, frame):
        if stop_requests and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop_requests.append(signum)
        if trains:
            print("\nStopping after this step; saving a checkpoint (Ctrl-C again to abort without saving).", file=sys.stderr)

    signal.signal(signal.SIGINT, on_signal)  # main() puts the previous handlers back
    signal.signal(signal.SIGTERM, on_signal)
    progress = _TrainProgress(spec) if trains else _BlendProgress(as_json)
    state = execute(ws, spec, should_stop=lambda: bool(stop_requests), on_progress=progress.on_progress,
                    on_start=progress.on_start, restart=restart)
    progress.close()
    return _say_trained(ws, spec, state) if trains else _say_blended(ws, spec, as_json)


class _TrainProgress:
    """A tqdm bar, made once the model is loaded, so it times steps, not downloads."""

    def __init__(self, spec):
        self.spec, self.bar = spec, None

    def on_start(self, step: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(initial=step, unit="step", dynamic_ncols=True, desc=self.spec.run)  # the total comes with a step

    def on_progress(self, step: int, total: int, losses: dict[str, float]) -> None:
        self.bar.total = total
        self.bar.set_postfix({k: f"{v:.4f}" for k, v in losses.items() if k in ("loss", "l1")}, refresh=False)
        self.bar.update(step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _BlendProgress:
    def __init__(self, as_json: bool):
        self.as_json = as_json

    def on_start(self, step: int) -> None:
        pass

    def on_progress(self, step: int, total: int, losses: dict[str, float]) -> None:
        if not self.as_json and (step % 10 == 0 or step == total):
            print(f"step {step}/{total}  score {losses['score']:.4f}", file=sys.stderr)

    def close(self) -> None:
        pass


def _say_trained(ws: Workspace, spec, state: str) -> int:
    status = RunFolder(ws.run_dir(spec.run)).read_status()
    if state == "failed":
        print(f"error: {status.get('error')}", file=sys.stderr)
        return 1
    print(f"Run {spec.run!r} {state} at step {status.get('step')}: {ws.run_dir(spec.run)}")
    return 0


def _say_blended(ws: Workspace, spec, as_json: bool) -> int:
    from studio.guide import blend_result

    report = blend_result(ws, spec.run)
    if spec.config.get("out"):
        report["image"] = str(Path(spec.config["out"]))
    if as_json:
        print(json.dumps(report, indent=1))
        return 0
    mix = ", ".join(f"{n} {m:.2f}" for n, m in zip(report["mix_layers"], report["mix"]))
    print(f"Final CLIP score {report['final_score']:.4f} (first step {report['scores'][0]:.4f}); wrote {report['image']}")
    if mix:
        print(f"Mix per layer (0 = {report['a']}, 1 = {report['b']}): {mix}")
    if "base" in report:
        print(f"Base BigGAN on the same prompt and seed: {report['base']['final_score']:.4f}")
    print(f"Frames, scores and mix: {RunFolder(ws.run_dir(spec.run)).result_dir}")
    return 0


def cmd_sample(args: argparse.Namespace, ws: Workspace) -> int:
    from studio.data.augment import image_grid, to_pil
    from studio.methods import load_run_sampler, method
    from studio.train import resolve_device

    out = Path(args.out)
    as_folder = args.out.endswith(("/", os.sep)) or out.is_dir()
    if not as_folder and out.suffix.lower() != ".png":
        raise UserError(f"--out must be a .png file or a folder ending in '/', not {args.out!r}.")
    sampler, config, _ = load_run_sampler(RunFolder(ws.run_dir(args.run)), resolve_device(args.device))
    can = method(config["method"]).can
    latent = {} if args.truncation is None else {"truncation": args.truncation}
    nrow = None
    if args.interpolate and "reconstruct" in can:  # a latent per training image: I and J are training images
        images, nrow = sampler.interpolate_images(*args.interpolate, frames=args.frames), args.frames
    elif args.interpolate:
        images, nrow = sampler.interpolate_seeds(*args.interpolate, frames=args.frames, **latent), args.frames
    elif args.between_classes:
        if "class_mix" not in can:
            raise UserError(f"A {config['method']} run's classes do not mix; --between-classes needs a BSA or cGAN run.")
        images, nrow = sampler.interpolate_classes(*args.between_classes, frames=args.frames, seed=args.seed, **latent), args.frames
    elif args.reconstruct:
        if "reconstruct" not in can:
            raise UserError("Only BSA runs learn a latent per training image; --reconstruct needs a BSA run.")
        images = sampler.reconstruct(list(range(min(args.n, len(sampler.latents)))))
    elif args.grid:
        images, nrow = sampler.grid(args.n, seed=args.seed, **latent), args.n
    else:
        if args.truncated:
            latent["truncate"] = True
        images = sampler.sample(args.n, label=args.label, seed=args.seed, **latent)
    images = images.float().cpu()
    if as_folder:
        out.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(images):
            to_pil(img).save(out / f"{i:03d}.png")
        print(f"Wrote {len(images)} images to {out}/")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        nrow = nrow or max(1, math.ceil(math.sqrt(len(images))))
        image_grid(images, nrow=nrow).save(out)
        print(f"Wrote a grid of {len(images)} images to {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace, ws: Workspace) -> int:
    from studio.evaluate import evaluate_history, evaluate_run, report_lines
    from studio.train import resolve_device

    device = resolve_device(args.device)
    if args.over_checkpoints:
        rows = evaluate_history(ws, args.run, n=args.n, seed=args.seed, features=args.features, device=device,
                                precision=args.precision)
        if args.json:
            print(json.dumps({"run": args.run, "rows": rows}, indent=1))
            return 0
        print(f"{'step':>8}{'KID×10³':>10}{'memorised':>11}{'diversity':>11}{'fidelity':>10}")
        for r in rows:
            print(f"{r['step']:8d}{_cell(r['kid_x1000'])}{_cell(r['memorised'], 11)}{_cell(r['diversity'], 11)}{_cell(r['fidelity'])}")
        print(f"Wrote {ws.run_dir(args.run) / 'eval_history.json'}")
        return 0
    report = evaluate_run(ws, args.run, dataset=args.dataset, n=args.n, seed=args.seed, features=args.features,
                          step=args.step, device=device, precision=args.precision)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    if report.get("method") == "blend":
        print("\n".join(report_lines(report)))
        return 0
    judge = report["classifier"]
    acc = judge["heldout_accuracy"]
    print(f"Run {args.run!r} at step {report['step']} against {report['dataset']!r}: {report['n_samples']} samples at "
          f"{report['resolution']} px, seed {args.seed}, features {report['features']}.")
    for i, line in enumerate(report_lines(report)):
        print(("  " if i % 2 else "") + line)
    print(judge.get("note") or f"Judge: a CNN trained on {judge['train_images']} real images, held-out accuracy "
          + (f"{acc:.2f} on {judge['heldout_images']}" if acc is not None else "unknown (too few images to hold any out)")
          + f" (chance {report['chance']:.2f}).")
    columns = ("fidelity", "diversity", "precision", "recall", "density", "coverage")
    print(f"{'class':16}" + "".join(f"{c:>10}" for c in columns))
    for c in [*report["classes"], "mean"]:
        diversity = report["diversity"]["mean_ratio" if c == "mean" else c]
        values = [report["fidelity"][c], diversity if c == "mean" else diversity["ratio"],
                  *(report[m][c] for m in columns[2:])]
        print(f"{c:16}" + "".join(_cell(v) for v in values))
    print("precision: share of samples that fall among real images; recall: share of real images some sample falls "
          f"near (k={report['k']}); density, coverage: the same, robust to outlying real images.")
    print(f"Comparable between runs on the same dataset, seed and features only. Wrote {ws.run_dir(args.run) / 'eval.json'}")
    return 0


def _add_hub_commands(sub: argparse._SubParsersAction) -> None:
    from studio.hub_share import LICENSES

    p = sub.add_parser("push", help="export a run (weights as safetensors, config, model card, sample grid) and "
                                    "upload it as a model repo")
    p.add_argument("--run", required=True)
    p.add_argument("--repo", required=True, help="user/name on the Hub (created if new)")
    p.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps its own)")
    p.add_argument("--token-from-env", action="store_true", help="push with HF_TOKEN (default: your saved login)")
    p.add_argument("--license", choices=LICENSES, default="other", help="the card's licence (default: other, none chosen)")
    p.add_argument("--device", default="auto", help="where the card's sample grid is drawn")
    p.set_defaults(func=cmd_hub_push)
    p = sub.add_parser("pull", help="bring a shared run (a Hub repo, or a folder made by `hub export`) into the workspace")
    p.add_argument("source", help="user/name on the Hub, or a folder that holds an exported run")
    p.add_argument("--run", help="its name here (default: the repo's or folder's name)")
    p.add_argument("--token-from-env", action="store_true", help="read a private repo with HF_TOKEN")
    p.set_defaults(func=cmd_hub_pull)
    p = sub.add_parser("export", help="write a run as a Hub-ready folder, without uploading it")
    p.add_argument("--run", required=True)
    p.add_argument("--out", type=Path, help="folder to write (default: exports/hub/RUN/)")
    p.add_argument("--license", choices=LICENSES, default="other")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_hub_export)


def cmd_hub_push(args: argparse.Namespace, ws: Workspace) -> int:
    from studio.hub_share import push_run
    from studio.train import resolve_device

    def say(fraction: float, text: str) -> None:
        print(f"[{fraction:4.0%}] {text}", file=sys.stderr, flush=True)

    pushed = push_run(ws, args.run, args.repo, token_from_env=args.token_from_env, private=args.private,
                      license=args.license, device=resolve_device(args.device), progress=say)
    print(pushed.sentence(args.run))
    return 0


def cmd_hub_pull(args: argparse.Namespace, ws: Workspace) -> int:
    from studio.hub_share import hub_token, pull

    token = hub_token(from_env=True, doing="pull") if args.token_from_env else None  # None: huggingface_hub's own
    pulled = pull(ws, args.source, name=args.run, token=token)
    print(pulled.sentence())
    print(f"Try: python -m studio sample --run {pulled.run} --out grid.png --grid --n 8")
    return 0


def cmd_hub_export(args: argparse.Namespace, ws: Workspace) -> int:
    from studio.hub_share import export_run
    from studio.train import resolve_device

    out = export_run(ws, args.run, args.out, license=args.license, device=resolve_device(args.device))
    print(f"Exported run {args.run!r} to {out}/: upload it with python -m studio hub push, or any huggingface_hub tool.")
    return 0


def _cell(value: float | None, width: int = 10) -> str:
    return f"{value:{width}.2f}" if value is not None else f"{'-':>{width}}"


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{label} {n}" for label, n in counts.items()) or "empty"


def main(argv: list[str] | None = None) -> int:
    import signal

    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if argv is None:  # run as a program (a job process too); a caller in this process keeps its own thread count
        from studio import devices

        devices.prepare_process(devices.available_cores())
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = args.func(args, Workspace.resolve(args.workspace))
        sys.stdout.flush()  # here, where a closed pipe is caught, rather than at exit
        return code
    except BrokenPipeError:
        # `… --json | head`: the reader took what it wanted and left. stdout goes to /dev/null so that the
        # interpreter's flush at exit has nothing left to fail on (the recipe in Python's signal docs).
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted; everything already saved is kept.", file=sys.stderr)
        return 130
    finally:  # a caller in this process (a test, an app) keeps its own handlers
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
