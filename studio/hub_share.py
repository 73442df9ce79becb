"""Share a run on the Hugging Face Hub, and bring a shared run into a workspace.

A shared run is a folder any huggingface_hub user recognises as a model repo:

    README.md          the model card: YAML metadata (licence, tags gan/art/<method>, pipeline tag, base_model where
                       the base is a Hub repo, and the studio's own block: classes, dataset, steps, time, evaluation)
    config.json        what the weights are: format, method, classes, the method's config, base BigGAN (BSA), facts
    model.safetensors  what sampling needs and nothing more: the cGAN's EMA generator, or the BSA adapter (the base
                       BigGAN is named, never copied), as plain state-dict keys
    samples.png        a class × seed grid drawn from exactly these weights

`export_run` writes one; `push_run` exports and uploads it (HfApi.create_repo + upload_folder). `pull` brings one
in: a folder as it is, a Hub repo after snapshot_download has fetched it into a temporary folder (the fetch is the
only difference), and both go through `import_folder`, which makes a finished run of the workspace whose checkpoint
holds those tensors, so load_run_sampler (Generate, Blend, `sample`, evaluate) uses it like any run. Only
safetensors are read; pickles (.bin, .pt, .ckpt) are refused, since loading one can run code.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from studio.errors import UserError
from studio.generate import checkpoint_meta as run_checkpoint_meta
from studio.run import RunFolder
from studio.workspace import Workspace, free_name, validate_name, write_bytes_atomic, write_json_atomic

FORMAT = 1  # of config.json; a folder of a later format is refused with advice to update
CONFIG, CARD, WEIGHTS, SAMPLES = "config.json", "README.md", "model.safetensors", "samples.png"
SHARED_FILES = (CONFIG, CARD, WEIGHTS, SAMPLES)
# What sampling reads from a run's checkpoint, by method: the tensors under this prefix (shared without it).
SAMPLER_PREFIX = {"cgan": "g_ema/", "bsa": "adapter/"}
PICKLES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
FETCHED = ("config.json", "README.md", "*.safetensors", "*.png")  # what a pull downloads: never a pickle
# A shared generator is tens of MB (a 1024 px FastGAN's about 100 MB, a 512 px BSA adapter 50 MB): a repo past
# this is not one, and a pull must not fill a shared studio's disk.
MAX_PULL_BYTES = 1024**3
# Licence identifiers the Hub knows (it checks the field); "other": the author has not chosen one.
LICENSES = ("other", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc0-1.0", "mit", "apache-2.0",
            "openrail")
GRID_SEED, GRID_COLUMNS, GRID_ROWS = 0, 6, 8  # the card's sample grid: seeds 0-5, at most 8 classes
_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID = re.compile(rf"^(?:{_REPO_PART}/)?{_REPO_PART}$")
_HUB_PREFIXES = ("hf://", "hf:", "https://huggingface.co/", "http://huggingface.co/", "huggingface.co/")
Progress = Callable[[float, str], None]  # (fraction done, what is happening)


# -- what a run says about itself ----------------------------------------------------------------------

def share_facts(ws: Workspace, name: str, meta: dict | None = None) -> dict[str, Any]:
    """config.json of run `name` as shared (no weights loaded): from its config, its checkpoint's metadata (`meta`,
    else the newest checkpoint's sidecar), its metrics (training time) and its evaluation card, if any."""
    run = RunFolder(ws.run_dir(name))
    config = run.read_config()
    method = config["method"]
    if method not in SAMPLER_PREFIX:
        raise UserError(f"Run {name!r} is a {method}: only trained models (cGAN and BSA runs) can be shared.")
    meta = meta if meta is not None else run_checkpoint_meta(run)
    cfg = dict(meta.get("config") or config["config"])
    facts: dict[str, Any] = {
        "format": FORMAT, "library": "artgan-studio", "method": method, "weights": WEIGHTS,
        "classes": list(meta["classes"]), "resolution": meta.get("resolution"), "step": int(meta.get("step") or 0),
        "n_images": meta.get("n_images"), "config": cfg,
    }
    if method == "bsa" and meta.get("base"):  # adapted from one of the studio's own generators (studio.methods.bsa)
        raise UserError(f"Run {name!r} adapts a studio generator ({cfg.get('model')}), not a BigGAN: sharing such a "
                        "run is not supported yet. Share a cGAN run, or a BSA run of a BigGAN.")
    if method == "bsa":
        base = _public_base(str(meta.get("base_model") or cfg.get("model") or ""))
        facts["base_model"] = cfg["model"] = base  # a folder path on the author's machine means nothing elsewhere
    # A run pulled from the Hub has no metrics or dataset here: what its author shared is passed on.
    shared = meta.get("shared") if isinstance(meta.get("shared"), dict) else {}
    facts["dataset"] = {"name": config.get("dataset"), "images": meta.get("n_images"),
                        "counts": _dataset_counts(ws, config) or (shared.get("dataset") or {}).get("counts")}
    facts["training"] = {"seconds": _training_seconds(run), "device": config.get("device"),
                         "precision": meta.get("precision"), "transfer": meta.get("transfer")}
    if facts["training"]["seconds"] is None and isinstance(shared.get("training"), dict):
        facts["training"] = shared["training"]
    facts["evaluation"] = _evaluation(run) or shared.get("evaluation")
    facts["samples"] = {"file": SAMPLES, "seed": GRID_SEED, "per_class": GRID_COLUMNS,
                        "classes": facts["classes"][:GRID_ROWS], "truncation": cfg.get("truncation", _default_truncation(method))}
    return facts


def _public_base(model: str) -> str:
    """The base BigGAN's name: a local folder is named by its folder name (its path stays on the author's machine)."""
    from studio.models.biggan import is_path

    return Path(model).name if is_path(model) else model


def _dataset_counts(ws: Workspace, config: dict) -> dict[str, int] | None:
    """Images per class, when the dataset is still the one the run trained on."""
    from studio.data.dataset import Dataset

    try:
        ds = Dataset.open(ws, config.get("dataset") or "")
        return ds.counts() if ds.fingerprint() == config.get("dataset_fingerprint") else None
    except (UserError, OSError, ValueError, KeyError):
        return None


def _training_seconds(run: RunFolder) -> float | None:
    """Wall time of all the run's training sessions: metrics.jsonl's clock starts again at each resume."""
    total, last = 0.0, None
    for row in run.read_metrics():
        t = row.get("time")
        if not isinstance(t, (int, float)) or isinstance(t, bool):
            continue
        if last is not None and t < last:
            total += last
        last = float(t)
    return None if last is None else round(total + last, 1)


def _evaluation(run: RunFolder) -> dict[str, Any] | None:
    """The evaluation card's numbers (runs/<name>/eval.json), or None when the run has not been evaluated."""
    try:
        report = json.loads((run.path / "eval.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or "kid" not in report:
        return None
    kid, mem = report.get("kid") or {}, report.get("memorisation") or {}
    out = {"step": report.get("step"), "dataset": report.get("dataset"), "features": report.get("features"),
           "samples": report.get("n_samples"), "seed": report.get("seed"),
           "kid_x1000": _times(kid.get("value"), 1000), "kid_x1000_std_error": _times(kid.get("std_error"), 1000),
           "fid": _number(report.get("fid")), "memorised": _number(mem.get("fraction")),
           "memorised_by_chance": _number(mem.get("expected")),
           "diversity": _number((report.get("feature_diversity") or {}).get("ratio")),
           "class_fidelity": _number((report.get("fidelity") or {}).get("mean"))}
    return out if out["kid_x1000"] is not None else None


def _number(value: Any, factor: float = 1.0) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return round(float(value) * factor, 4) if ok else None


def _times(value: Any, factor: float) -> float | None:
    return _number(value, factor)


def _default_truncation(method: str) -> float:
    from studio.generate import DEFAULT_TRUNCATION

    return DEFAULT_TRUNCATION[method]


# -- the model card ----------------------------------------------------------------------------------------

def model_card(facts: dict[str, Any], *, repo_id: str | None = None, license: str = "other", run: str = "") -> str:
    """README.md for the Hub: YAML metadata (huggingface_hub's ModelCardData) and the card's text."""
    from huggingface_hub import ModelCardData

    from studio.models.biggan import HF_MIRRORS

    method, base = facts["method"], facts.get("base_model")
    evaluation, training, dataset = facts.get("evaluation"), facts.get("training") or {}, facts.get("dataset") or {}
    studio = {k: v for k, v in {"method": method, "classes": facts["classes"], "resolution": facts.get("resolution"),
                                "dataset": dataset.get("name"), "dataset_images": dataset.get("images"),
                                "steps": facts["step"], "training_seconds": training.get("seconds")}.items()
              if v is not None}
    if base:
        studio["base"] = base
    if evaluation:
        studio["evaluation"] = {k: v for k, v in evaluation.items() if v is not None}
    tags = ["gan", "art", method, "artgan-studio"] + (["biggan", "batch-statistics-adaptation"] if method == "bsa" else
                                                      ["class-conditional", facts["config"].get("arch", "light")])
    # base_model must be a model repo on the Hub (the Hub refuses a card whose base_model is not one), so only a
    # base with a known repo is named there; every base is named in the studio's block and in the text.
    data = ModelCardData(license=license, library_name="pytorch", pipeline_tag="unconditional-image-generation",
                         tags=tags, base_model=HF_MIRRORS.get(base) if base else None, artgan_studio=studio)
    return f"---\n{data.to_yaml()}\n---\n\n{_card_text(facts, repo_id=repo_id, license=license, run=run)}"


def _card_text(facts: dict[str, Any], *, repo_id: str | None, license: str, run: str) -> str:
    cfg, method, classes = facts["config"], facts["method"], facts["classes"]
    dataset = facts.get("dataset") or {}
    title = (repo_id or run or "ArtGAN Studio model").split("/")[-1]
    images = dataset.get("images")
    listed = ", ".join(classes[:12]) + (", …" if len(classes) > 12 else "")
    if method == "bsa":
        what = (f"Batch Statistics Adaptation of the frozen BigGAN-deep `{facts.get('base_model')}` to "
                f"{_plural(len(classes), 'class', 'classes')} ({listed}), learned from {_plural(images, 'image')}. This "
                "repo holds only the adapter (per-channel scale and shift, class embeddings and one latent per "
                "training image); the base BigGAN is loaded separately.")
    else:
        what = (f"A class-conditional GAN (`{cfg.get('arch', 'light')}` architecture, {facts.get('resolution')} px) "
                f"that paints {_plural(len(classes), 'class', 'classes')} ({listed}), trained on "
                f"{_plural(images, 'image')}" + (f", starting from the run `{cfg['transfer_from']}`" if cfg.get("transfer_from")
                                                  else "") + ".")
    samples = facts.get("samples") or {}
    rows = samples.get("classes") or classes
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", title).strip("-.") or "shared"
    pull = repo_id or "<user>/<repo>"
    lines = [f"# {title}", "", f"{what} Made with ArtGAN Studio.", "",
             f"![Samples: one row per class, the same seeds in every column]({SAMPLES})", "",
             f"*One row per class ({', '.join(rows)}), seeds {samples.get('seed', 0)}–"
             f"{samples.get('seed', 0) + samples.get('per_class', GRID_COLUMNS) - 1} in the columns, truncation "
             f"{samples.get('truncation')}, drawn from the weights in this repo.*", "",
             "## Use it", "", "```bash", f"python -m studio hub pull {pull} --run {name}",
             f"python -m studio sample --run {name} --out grid.png --grid --n 8", "```", "",
             "Or, in the studio's Generate tab, type the repo id into *Load from the Hub*. Without the studio: "
             f"`{WEIGHTS}` is a plain state dict (`safetensors.torch.load_file`) of "
             + ("`studio.methods.bsa.BSAAdapter` on that BigGAN" if method == "bsa" else
                f"the generator `studio.models.{'cgan' if cfg.get('arch', 'light') == 'light' else cfg.get('arch')}.Generator`")
             + f", with the sizes and settings in `{CONFIG}`.", "",
             "## Training data", ""]
    counts = dataset.get("counts")
    detail = f" ({', '.join(f'{k} {v}' for k, v in counts.items())})" if counts else ""
    lines += [f"Dataset `{dataset.get('name')}`: {_plural(images, 'image')}{detail}. The images themselves are not "
              "in this repo.", "", "## Training procedure", "", "| | |", "|---|---|"]
    for label, value in _procedure(facts):
        lines.append(f"| {label} | {value} |")
    lines += ["", f"Every setting is in `{CONFIG}`.", "", "## Evaluation", ""]
    lines += _evaluation_lines(facts.get("evaluation"), run)
    check = ("check the memorisation figure above" if facts.get("evaluation") else
             "evaluate it for memorisation (Generate tab → Evaluate)")
    lines += ["", "## Limitations", "",
              f"Learned from {_plural(images, 'image')}: a GAN trained on so few can repeat its training images, "
              f"so {check} before using its output as new work.", "",
              "## Licence", "",
              (f"`{license}`, as chosen by the person who shared it." if license != "other" else
               "No licence chosen (`other`): ask the author before reusing the model or its images.")
              + " The rights to the training images stay with their owners."
              + (" The base BigGAN-deep weights are DeepMind's, released under Apache 2.0." if _released(facts) else "")]
    return "\n".join(lines) + "\n"


def _released(facts: dict[str, Any]) -> bool:
    from studio.models.biggan import BIGGAN_NAMES

    return facts.get("base_model") in BIGGAN_NAMES


def _procedure(facts: dict[str, Any]) -> list[tuple[str, str]]:
    cfg, training = facts["config"], facts.get("training") or {}
    seconds = training.get("seconds")
    rows = [("Method", "BSA, " + str(cfg.get("adapt")) + f" on `{facts.get('base_model')}`" if facts["method"] == "bsa"
             else f"cGAN, {cfg.get('arch', 'light')} architecture, {cfg.get('conditioning')} conditioning"),
            ("Steps", f"{facts['step']:,}"),
            ("Training time", (_duration(seconds) if seconds is not None else "unknown")
             + (f" on {training['device']}" if training.get("device") else "")),
            ("Resolution", f"{facts.get('resolution')} px"), ("Batch", str(cfg.get("batch")))]
    if facts["method"] == "bsa":
        rows += [("Learning rate", f"{cfg.get('lr')} (latents; the other groups scale from it)"),
                 ("Perceptual loss", str(cfg.get("perceptual")))]
    else:
        rows += [("Learning rates", f"G {cfg.get('lr_g')}, D {cfg.get('lr_d')}"),
                 ("DiffAugment", str(cfg.get("augment") or "none")), ("EMA decay", str(cfg.get("ema"))),
                 ("Widths", f"G {cfg.get('g_ch')}, D {cfg.get('d_ch')}")]
    if training.get("precision"):
        rows.append(("Precision", str(training["precision"])))
    return rows


def _evaluation_lines(evaluation: dict | None, run: str) -> list[str]:
    if not evaluation:
        return ["Not evaluated before sharing (`python -m studio evaluate --run "
                f"{run or 'NAME'}` adds KID, FID, memorisation and diversity here)."]
    e = evaluation
    lines = [f"Measured by ArtGAN Studio at step {e.get('step')} against `{e.get('dataset')}`, "
             f"{e.get('samples')} samples, {e.get('features')} features:", "", "| | |", "|---|---|"]
    kid_se = f" ± {e['kid_x1000_std_error']:.2f}" if e.get("kid_x1000_std_error") is not None else ""
    lines.append(f"| KID ×10³ (0: like the real images) | {e['kid_x1000']:.2f}{kid_se} |")
    if e.get("fid") is not None:
        lines.append(f"| FID (biased upwards on small sets) | {e['fid']:.2f} |")
    if e.get("memorised") is not None:
        chance = f" (about {100 * e['memorised_by_chance']:.0f}% by chance)" if e.get("memorised_by_chance") is not None else ""
        lines.append(f"| Samples that copy a training image | {100 * e['memorised']:.0f}%{chance} |")
    if e.get("diversity") is not None:
        lines.append(f"| Diversity (0: one image over and over; 1: as varied as the data) | {e['diversity']:.2f} |")
    if e.get("class_fidelity") is not None:
        lines.append(f"| Class fidelity | {e['class_fidelity']:.2f} |")
    return lines


def _plural(n: Any, one: str, many: str | None = None) -> str:
    if not isinstance(n, int):
        return f"an unknown number of {many or one + 's'}"
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def card_preview(ws: Workspace, name: str, *, repo_id: str | None = None, license: str = "other") -> str:
    """The card as the Generate tab shows it before a push: its metadata as YAML, then its text (no grid yet)."""
    card = model_card(share_facts(ws, name), repo_id=repo_id or None, license=license, run=name)
    yaml, text = card[len("---\n"):].split("\n---\n", 1)
    text = text.replace(f"![Samples: one row per class, the same seeds in every column]({SAMPLES})",
                        "*(The sample grid is drawn from the weights when you push.)*")
    return f"```yaml\n{yaml.strip()}\n```\n{text}"


# -- export ------------------------------------------------------------------------------------------------

def export_run(ws: Workspace, name: str, out: Path | None = None, *, repo_id: str | None = None,
               license: str = "other", device: str | torch.device = "cpu") -> Path:
    """Write run `name` as a Hub-ready folder (default exports/hub/<name>/, replaced if it holds an earlier export)."""
    from studio.data.augment import image_grid

    _check_license(license)
    run = RunFolder(ws.run_dir(name))
    facts = share_facts(ws, name)  # refuses a blend, or a run without a checkpoint, before any weights load
    ckpt = run.load_checkpoint()
    facts = share_facts(ws, name, meta=ckpt.meta)  # the checkpoint read (latest, or previous if latest is damaged)
    prefix = SAMPLER_PREFIX[facts["method"]]
    weights = {k[len(prefix):]: v.contiguous() for k, v in ckpt.tensors.items() if k.startswith(prefix)}
    if not weights:
        raise UserError(f"Run {name!r}'s checkpoint holds no generator weights to share.")
    # Drawn from the shared tensors as a pull loads them; a BSA base comes from where this run found it (a local
    # folder is shared by name only).
    sampler = sampler_from(facts, weights, device=device, base=_run_base(ckpt.meta, device))
    grid = image_grid(_grid_images(sampler, facts), nrow=GRID_COLUMNS)
    out = Path(out) if out is not None else ws.exports / "hub" / name
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        from safetensors.torch import save_file

        save_file(weights, str(staged / WEIGHTS), metadata={"format": "pt"})
        write_json_atomic(staged / CONFIG, facts)
        grid.save(staged / SAMPLES)
        write_bytes_atomic(staged / CARD, model_card(facts, repo_id=repo_id, license=license, run=name).encode())
        if out.exists():
            shutil.rmtree(out)
        os.replace(staged, out)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return out


def _run_base(meta: dict[str, Any], device: str | torch.device) -> torch.nn.Module | None:
    """A BSA run's frozen BigGAN, loaded as the method loads it for sampling; None for other methods."""
    if meta.get("method") != "bsa":
        return None
    from studio.methods.bsa import LAYOUTS, BSAConfig
    from studio.models.biggan import load_biggan

    cfg = BSAConfig.from_dict(meta["config"])
    return load_biggan(cfg.model, device=device, seed=cfg.seed).to(memory_format=LAYOUTS[cfg.layout])


def _check_license(license: str) -> None:
    if license not in LICENSES:
        raise UserError(f"Licence {license!r} is not one the Hub knows here: choose one of {', '.join(LICENSES)}.")


def _check_replaceable(out: Path) -> None:
    """An export replaces only an earlier export (or an empty folder): never someone's other files."""
    if out.exists() and (not out.is_dir() or any(p.name not in SHARED_FILES for p in out.iterdir())):
        raise UserError(f"{out} exists and holds other files than an exported run: choose another --out folder.")


def _grid_images(sampler, facts: dict[str, Any]) -> torch.Tensor:
    """Rows: the first GRID_ROWS classes; columns: seeds GRID_SEED…, the same latents in every row."""
    s = facts["samples"]
    return torch.cat([sampler.sample(s["per_class"], label=c, seed=s["seed"], truncation=s["truncation"]).float().cpu()
                      for c in s["classes"]])


def sampler_from(facts: dict[str, Any], weights: dict[str, torch.Tensor], *, device: str | torch.device = "cpu",
                 base: torch.nn.Module | None = None):
    """The Sampler of shared weights, through the method's own loader (what a run's checkpoint gives it)."""
    from studio.methods import method

    prefix = SAMPLER_PREFIX[facts["method"]]
    shared = {} if base is None else {"base": base}
    return method(facts["method"]).load_sampler({prefix + k: v for k, v in weights.items()}, checkpoint_meta(facts),
                                                device=device, **shared)


def checkpoint_meta(facts: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint metadata a method's load_sampler reads, from a shared config.json."""
    meta = {"method": facts["method"], "config": facts["config"], "classes": facts["classes"],
            "n_images": facts.get("n_images"), "resolution": facts.get("resolution"), "step": facts["step"],
            "dataset": (facts.get("dataset") or {}).get("name")}
    if facts["method"] == "bsa":
        meta["base_model"] = facts["base_model"]
    return meta


# -- import ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pulled:
    """A shared run brought into the workspace."""

    run: str                 # its name here
    method: str
    classes: list[str]
    step: int
    origin: str              # the repo id (and revision) or folder it came from

    def sentence(self) -> str:
        return (f"Loaded {self.origin} as run {self.run!r}: {self.method.upper()} at step {self.step}, "
                f"{_plural(len(self.classes), 'class', 'classes')} ({', '.join(self.classes[:12])}).")


def import_folder(ws: Workspace, folder: Path, *, name: str | None = None, origin: str | None = None,
                  files: list[str] | None = None, default_name: str | None = None) -> Pulled:
    """Make a finished run of `ws` from a shared folder; every check comes before anything is written.

    `origin`: how the folder is named to the user (a repo id; default: the folder's name); `files`: every file the
    source has (a Hub repo lists files a pull does not fetch, pickles among them), to say what is wrong by name."""
    folder = Path(folder)
    where = origin or folder.name
    files = files if files is not None else ([p.name for p in folder.iterdir()] if folder.is_dir() else [])
    facts = read_shared(folder, where, files)
    if facts["method"] == "bsa":
        _check_base_here(facts["base_model"])
    weights = _read_weights(folder / facts["weights"], where)
    _check_fits(facts, weights, where)
    name = _run_name(ws, name, default_name or folder.name)
    _write_run(ws, name, facts, weights, where, folder / SAMPLES)
    return Pulled(name, facts["method"], facts["classes"], facts["step"], where)


def read_shared(folder: Path, where: str, files: list[str]) -> dict[str, Any]:
    """config.json of a shared folder, checked: a method that samples, classes, settings within the method's
    bounds, and a safetensors weights file beside it; anything else is one sentence naming what is wrong."""
    from studio.methods import method
    from studio.options import check_values, options

    pickles = sorted(f for f in files if f.lower().endswith(PICKLES))
    if not (folder / CONFIG).is_file():
        if pickles:
            raise _pickle_refusal(where, pickles[0])
        raise UserError(f"{where} has no {CONFIG}: it is not a run shared from ArtGAN Studio (python -m studio hub "
                        "export writes one).")
    try:
        facts = json.loads((folder / CONFIG).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{CONFIG} in {where} is damaged ({type(exc).__name__}): download it again.") from None
    if not isinstance(facts, dict) or facts.get("library") != "artgan-studio" or not isinstance(facts.get("format"), int):
        raise UserError(f"{where} is not a run shared from ArtGAN Studio: its {CONFIG} does not say so "
                        "(python -m studio hub export writes one).")
    if facts["format"] > FORMAT:
        raise UserError(f"{where} was shared by a newer ArtGAN Studio (format {facts['format']}; this one reads "
                        f"{FORMAT}): update the studio, then load it again.")
    kind = facts.get("method")
    if kind not in SAMPLER_PREFIX:
        raise UserError(f"{where} holds a {kind!r} model; the studio loads cGAN and BSA runs.")
    weights = facts.get("weights")
    if not isinstance(weights, str) or Path(weights).name != weights or weights.startswith("."):
        raise UserError(f"{CONFIG} in {where} names no weights file beside it.")
    if weights.lower().endswith(PICKLES):
        raise _pickle_refusal(where, weights)
    if not weights.endswith(".safetensors"):
        raise UserError(f"{where} names weights {weights!r}, which is not a safetensors file; the studio loads only "
                        "safetensors.")
    if not (folder / weights).is_file():
        raise (_pickle_refusal(where, pickles[0]) if pickles else
               UserError(f"{where} has no {weights}, which its {CONFIG} names: it is incomplete."))
    classes = facts.get("classes")
    if (not isinstance(classes, list) or not classes or len(classes) > 1000
            or not all(isinstance(c, str) and 0 < len(c) <= 100 for c in classes) or len(set(classes)) != len(classes)):
        raise UserError(f"{CONFIG} in {where} has no list of class names.")
    step, n_images = facts.get("step"), facts.get("n_images")
    if not isinstance(step, int) or step < 0 or (kind == "bsa" and (not isinstance(n_images, int) or n_images < 1)):
        raise UserError(f"{CONFIG} in {where} is incomplete (its step or number of images is missing).")
    cfg = facts.get("config")
    if not isinstance(cfg, dict):
        raise UserError(f"{CONFIG} in {where} has no settings (config).")
    m = method(kind)
    known = {k: v for k, v in cfg.items() if k in options(m.config)}  # a newer studio's extra settings are ignored
    try:
        checked = asdict(m.config(**check_values(m.config, known)))
    except TypeError as exc:
        raise UserError(f"{CONFIG} in {where} has settings this studio cannot read ({exc}).") from None
    if kind == "bsa":
        base = facts.get("base_model")
        if not isinstance(base, str) or not base or base != _public_base(base) or base != checked["model"]:
            raise UserError(f"{CONFIG} in {where} does not name the BigGAN its adapter adapts.")
    return {**facts, "config": checked, **_told(facts, checked)}


def _told(facts: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """What a shared config.json tells about its run beyond the weights (dataset, training, evaluation), kept only
    where it has the shape the card writes, so a foreign file cannot break a card or a page later."""
    def text(value: Any) -> str | None:
        return value[:100] if isinstance(value, str) else None

    def whole(value: Any) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

    dataset = facts.get("dataset") if isinstance(facts.get("dataset"), dict) else {}
    counts = dataset.get("counts")
    counts = ({text(k): whole(v) for k, v in list(counts.items())[:1000]} if isinstance(counts, dict) else None)
    training = facts.get("training") if isinstance(facts.get("training"), dict) else {}
    evaluation = facts.get("evaluation") if isinstance(facts.get("evaluation"), dict) else None
    if evaluation is not None:
        evaluation = {k: text(v) if k in ("dataset", "features") else whole(v) if k in ("step", "samples", "seed")
                      else _number(v) for k, v in evaluation.items() if k in _EVALUATION_KEYS}
        evaluation = evaluation if evaluation.get("kid_x1000") is not None else None
    return {"resolution": whole(config.get("resolution")) or whole(facts.get("resolution")),
            "n_images": whole(facts.get("n_images")),
            "dataset": {"name": text(dataset.get("name")), "images": whole(dataset.get("images")),
                        "counts": counts if counts and all(k and v is not None for k, v in counts.items()) else None},
            "training": {"seconds": _number(training.get("seconds")), "device": text(training.get("device")),
                         "precision": text(training.get("precision")), "transfer": None},
            "evaluation": evaluation}


_EVALUATION_KEYS = ("step", "dataset", "features", "samples", "seed", "kid_x1000", "kid_x1000_std_error", "fid",
                    "memorised", "memorised_by_chance", "diversity", "class_fidelity")


def _pickle_refusal(where: str, file: str) -> UserError:
    return UserError(f"{where} holds its weights as a pickle ({file}), which can run code when loaded: the studio "
                     f"loads only safetensors, so ask its author for a {WEIGHTS} (python -m studio hub export writes one).")


def _read_weights(path: Path, where: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if path.stat().st_size > MAX_PULL_BYTES:
        raise UserError(f"{path.name} in {where} is {path.stat().st_size / 1024**3:.1f} GB, more than a shared "
                        f"generator ever is ({MAX_PULL_BYTES / 1024**3:.0f} GB at most).")
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise UserError(f"{path.name} in {where} is damaged or not a safetensors file ({reason}): download it "
                        "again, or ask its author to export it again.") from None
    bad = next((k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise UserError(f"{path.name} in {where} is damaged: tensor {bad!r} holds NaN or infinite values.")
    return weights


def _check_fits(facts: dict[str, Any], weights: dict[str, torch.Tensor], where: str) -> None:
    """The weights load into the model config.json describes, key for key and shape for shape, checked on the meta
    device: no memory, no base weights, no download."""
    import warnings

    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base = _meta_biggan(facts["base_model"]) if facts["method"] == "bsa" else None
            sampler_from(facts, {k: v.to("meta") for k, v in weights.items()}, device="meta", base=base)
    except UserError:
        raise
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        first = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc).splitlines()[0]
                     if str(exc) else type(exc).__name__)
        raise UserError(f"{WEIGHTS} in {where} does not fit the model its {CONFIG} describes ({first[:200]}).") from None


def _meta_biggan(base: str) -> torch.nn.Module:
    """The base BigGAN's architecture without weights (call under torch.device('meta'))."""
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig

    from studio.models.biggan import BIGGAN_NAMES, biggan_config, tiny_biggan_config

    source = _resolve_base(base)
    if source.kind == "tiny":
        return BigGAN(tiny_biggan_config(int(base.split("-")[1]) if "-" in base else 32))
    if source.path is not None and (source.path / "config.json").is_file():
        return BigGAN(BigGANConfig.from_json_file(source.path / "config.json"))
    if base in BIGGAN_NAMES:
        return BigGAN(biggan_config(base))
    raise UserError(f"BigGAN {base!r} is not here: put its config.json and pytorch_model.bin in "
                    f"checkpoints/{base}/, then load the run again.")


def _resolve_base(base: str):
    from studio.models.biggan import resolve_biggan

    try:
        return resolve_biggan(base)
    except UserError as exc:
        raise UserError(f"This BSA adapter adapts the BigGAN {base!r}, which this studio does not have ({exc})") from None


def _check_base_here(base: str) -> None:
    """A BSA adapter is useful only on its base: here, or downloadable now."""
    source = _resolve_base(base)
    if not source.available:
        raise UserError(f"This BSA adapter adapts the BigGAN {base!r}, which is {source.status}, then load it again.")


def _run_name(ws: Workspace, wanted: str | None, default: str) -> str:
    if wanted:
        if ws.run_dir(wanted).exists():
            raise UserError(f"A run named {wanted!r} already exists here: choose another name.")
        return wanted
    return free_name(default, lambda n: ws.run_dir(n).exists() or (ws.runs / f".{n}.lock").exists())


def _write_run(ws: Workspace, name: str, facts: dict[str, Any], weights: dict[str, torch.Tensor], where: str,
               samples: Path) -> None:
    """runs/<name>/ as a finished run: config, checkpoint (the shared tensors only), status, preview, log. Made in a
    hidden folder beside runs/ and renamed into place, so no one sees half a run; the run's lock keeps two pulls
    from taking one name."""
    run = RunFolder(ws.run_dir(name))
    lock = run.lock()
    staged = Path(tempfile.mkdtemp(dir=ws.root, prefix=".importing-"))
    try:
        if run.path.exists():
            raise UserError(f"A run named {name!r} already exists here: choose another name.")
        folder = RunFolder(staged)
        meta = {**checkpoint_meta(facts), "run": name, "imported_from": where,
                "shared": {k: facts.get(k) for k in ("dataset", "training", "evaluation")}}
        step = facts["step"]
        folder.write_config({"method": facts["method"], "dataset": str(meta.get("dataset") or "unknown"),
                             # None never matches a dataset: Continue refuses instead of training without an optimiser
                             "dataset_fingerprint": None, "config": facts["config"],
                             "loop": {"iters": max(step, 1), "sample_every": max(step, 1), "checkpoint_every": max(step, 1),
                                      "log_every": 1},
                             "device": "cpu", "created": time.time(), "imported_from": where})
        prefix = SAMPLER_PREFIX[facts["method"]]
        folder.save_checkpoint({prefix + k: v for k, v in weights.items()}, {**meta, "step": step})
        if _is_small_png(samples):
            folder.samples_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(samples, folder.sample_path(step))
        folder.log(f"imported from {where} (step {step})")
        folder.write_status("finished", step=step, total=step, it_per_s=None, eta_s=0, error=None, warning=None,
                            started=None, method=facts["method"], dataset=meta.get("dataset"), between_chunks=False)
        os.rename(staged, run.path)
    finally:
        lock.release()
        shutil.rmtree(staged, ignore_errors=True)


def _is_small_png(path: Path) -> bool:
    """A shared sample grid worth copying as the run's preview: a real PNG of sane size."""
    from PIL import Image

    try:
        if path.stat().st_size > 32 * 1024**2:
            return False
        with Image.open(path) as img:
            ok = img.format == "PNG" and img.width * img.height <= 64_000_000
            img.verify()
        return ok
    except Exception:  # noqa: BLE001 - whatever is wrong with it, the run is made without a preview
        return False


# -- the Hub -------------------------------------------------------------------------------------------------

def parse_source(source: str, *, allow_local: bool = True) -> tuple[str, Path | str]:
    """("folder", path) or ("repo", "user/name") for what a person typed: a folder holding an exported run, or a Hub
    repo id (also as hf:user/name or its huggingface.co address)."""
    text = (source or "").strip()
    if not text:
        raise UserError("Give a Hub repo id (user/model-name) or a folder that holds an exported run.")
    looks_local = text.startswith(("/", "./", "../", "~")) or (os.sep != "/" and os.sep in text)
    if allow_local and (looks_local or Path(text).expanduser().is_dir()):
        folder = Path(text).expanduser()
        if not folder.is_dir():
            raise UserError(f"There is no folder {text}.")
        return "folder", folder.resolve()
    if looks_local:
        raise UserError("This shared studio loads runs from the Hub only: give a repo id such as user/model-name.")
    for prefix in _HUB_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    text = text.strip("/")
    if text.count("/") != 1 or not _REPO_ID.match(text):
        raise UserError(f"{source!r} is neither a folder here nor a Hub repo id like user/model-name.")
    return "repo", text


def pull(ws: Workspace, source: str, *, name: str | None = None, token: str | bool | None = None,
         allow_local: bool = True) -> Pulled:
    """Bring a shared run into `ws`: a folder as it is, a Hub repo fetched first (the only difference)."""
    if name:
        validate_name(name, "run")
    kind, where = parse_source(source, allow_local=allow_local)
    if kind == "folder":
        return import_folder(ws, where, name=name)
    with fetched(where, token=token) as (folder, files, revision):
        return import_folder(ws, folder, name=name, origin=f"{where}@{revision[:7]}" if revision else where,
                             files=files, default_name=where.split("/")[-1])


@contextmanager
def fetched(repo_id: str, *, token: str | bool | None = None) -> Iterator[tuple[Path, list[str], str]]:
    """A Hub repo's shared files (never its pickles) in a temporary folder: (folder, every file the repo has, commit)."""
    from studio.models.reach import can_download, why_not

    if not can_download():
        raise UserError(f"Cannot download {repo_id} from the Hub: {why_not()}; give a folder that holds an exported "
                        "run instead.")
    from huggingface_hub import HfApi, snapshot_download

    try:
        info = HfApi().model_info(repo_id, files_metadata=True, token=token)
    except Exception as exc:  # noqa: BLE001 - every hub failure becomes one sentence (_hub_error)
        raise _hub_error(exc, repo_id, "read") from None
    siblings = list(info.siblings or [])
    files = [s.rfilename for s in siblings]
    wanted = [s for s in siblings if "/" not in s.rfilename and any(fnmatch.fnmatch(s.rfilename, p) for p in FETCHED)]
    size = sum(s.size or 0 for s in wanted)
    if size > MAX_PULL_BYTES:
        raise UserError(f"{repo_id} holds {size / 1024**3:.1f} GB of files, more than a shared generator ever is "
                        f"({MAX_PULL_BYTES / 1024**3:.0f} GB at most).")
    with tempfile.TemporaryDirectory(prefix="studio-pull-") as tmp:
        if wanted:
            try:
                snapshot_download(repo_id, revision=info.sha, local_dir=tmp, token=token,
                                  allow_patterns=[s.rfilename for s in wanted])
            except Exception as exc:  # noqa: BLE001
                raise _hub_error(exc, repo_id, "download") from None
        yield Path(tmp), files, info.sha or ""


def hub_token(*, from_env: bool = False, doing: str = "push") -> str:
    """The token a push uses: HF_TOKEN (--token-from-env), else the usual places (`hf auth login`, HF_TOKEN)."""
    if from_env:
        token = os.environ.get("HF_TOKEN", "").strip()
        if not token:
            raise UserError("--token-from-env reads HF_TOKEN, which is not set: export HF_TOKEN=hf_… (a token with "
                            f"write access), then {doing} again.")
        return token
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise UserError(f"You are not logged in to Hugging Face: run `hf auth login` (or set HF_TOKEN), then {doing} again.")
    return token


@dataclass(frozen=True)
class Pushed:
    repo_id: str
    url: str
    private: bool
    existed: bool

    def sentence(self, run: str) -> str:
        visibility = ("it already existed, so its visibility is unchanged" if self.existed else
                      "private" if self.private else "public")
        return f"Pushed run {run!r} to {self.url} ({visibility})."


def push_run(ws: Workspace, name: str, repo_id: str, *, token: str | None = None, token_from_env: bool = False,
             private: bool = False, license: str = "other", device: str | torch.device = "cpu",
             progress: Progress | None = None) -> Pushed:
    """Export run `name` and upload it to the model repo `repo_id` (created if new) as the owner of `token` (None:
    the usual login, see hub_token).

    Offline, or with a bad repo name, licence, run or login, it refuses in one sentence before anything is written."""
    from studio.models.reach import can_download, why_not

    say = progress or (lambda fraction, text: None)
    repo_id = (repo_id or "").strip().strip("/")
    if not _REPO_ID.match(repo_id):
        raise UserError(f"{repo_id!r} is not a Hub repo name: use user/model-name (letters, digits, '.', '_', '-').")
    _check_license(license)
    if not can_download():
        raise UserError(f"Cannot push to the Hub: {why_not()}.")
    share_facts(ws, name)  # a blend, or a run without a checkpoint, is refused before the network is asked
    token = token or hub_token(from_env=token_from_env)
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        if "/" not in repo_id:
            say(0.02, "Asking the Hub who you are")
            repo_id = f"{api.whoami()['name']}/{repo_id}"
        existed = api.repo_exists(repo_id)
    except Exception as exc:  # noqa: BLE001
        raise _hub_error(exc, repo_id, "reach") from None
    # A folder of this push's own (two pushes of one run at once must not share one), gone once uploaded.
    with tempfile.TemporaryDirectory(dir=ws.exports, prefix=".push-") as tmp:
        say(0.05, f"Exporting run {name!r} and drawing its sample grid")
        folder = export_run(ws, name, Path(tmp) / name, repo_id=repo_id, license=license, device=device)
        size = sum(p.stat().st_size for p in folder.iterdir())
        try:
            say(0.5, f"Creating {repo_id}" if not existed else f"Found {repo_id}")
            url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            say(0.6, f"Uploading {len(SHARED_FILES)} files ({size / 1024**2:.1f} MB) to {repo_id}")
            api.upload_folder(repo_id=url.repo_id, folder_path=folder, repo_type="model",
                              allow_patterns=list(SHARED_FILES), commit_message=f"Upload {name} from ArtGAN Studio")
        except Exception as exc:  # noqa: BLE001
            raise _hub_error(exc, repo_id, "push to") from None
    say(1.0, "Done")
    return Pushed(url.repo_id, str(url), private, existed)


def _hub_error(exc: Exception, repo_id: str, doing: str) -> UserError:
    """A huggingface_hub failure as one sentence (what went wrong, and what to do)."""
    from huggingface_hub import errors

    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, errors.GatedRepoError):
        return UserError(f"{repo_id} is gated: accept its conditions on huggingface.co with your account and log in, "
                         "then try again.")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return UserError(f"There is no model repo {repo_id} on the Hub (or it is private and this login cannot see it).")
    if isinstance(exc, errors.RevisionNotFoundError):
        return UserError(f"{repo_id} changed while it was being read: try again.")
    if isinstance(exc, (errors.OfflineModeIsEnabled, errors.LocalEntryNotFoundError)):
        return UserError(f"Cannot {doing} {repo_id}: the Hub cannot be reached (offline mode or no network).")
    if status == 401:
        return UserError(f"The Hub refused the login token (HTTP 401) to {doing} {repo_id}: log in again "
                         "(hf auth login, or the Hugging Face button), then try again.")
    if status == 403:
        return UserError(f"This login may not {doing} {repo_id} (HTTP 403): use a repo under your own name, or a token "
                         "with write access.")
    if status is not None:
        detail = str(exc).splitlines()[0][:160] if str(exc) else ""
        return UserError(f"The Hub answered HTTP {status} when asked to {doing} {repo_id}" + (f" ({detail})" if detail
                                                                                              else "") + ": try again later.")
    return UserError(f"Could not {doing} {repo_id} on the Hub ({type(exc).__name__}: "
                     f"{str(exc).splitlines()[0][:160] if str(exc) else 'no detail'}): check the network and try again.")
