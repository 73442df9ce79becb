"""The Train tab: a form that queues a training job, and a live view of any run that polls its folder.

Nothing here holds a job's state: every tick reads it back through `JobManager.view`, so buttons
follow the truth after a failure, a reload reattaches, and a restarted app shows what really happened.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, get_type_hints

import gradio as gr

from studio.data.dataset import list_datasets
from studio.errors import UserError
from studio.jobs import JobManager, JobRequest
from studio.methods import bsa, cgan
from studio.models.biggan import BIGGAN_NAMES, resolve_biggan
from studio.models.cgan import RESOLUTIONS
from studio.train import LoopConfig
from studio.ui.common import user_errors
from studio.ui.live import LivePanel
from studio.ui.session import Sessions
from studio.workspace import Workspace, free_name, write_json_atomic

FORM_STORAGE_KEY = "artgan-studio-train-form"
METHODS = {"cgan": cgan, "bsa": bsa}
METHOD_CHOICES = [("cGAN: train a class-conditional GAN on your images", "cgan"),
                  ("BSA: adapt a pretrained BigGAN-deep (frozen; only scale/shift, class and latents learn)", "bsa")]
# Form field → (method, config field). Loop fields and the shared ones are separate.
CONFIG_FIELDS = {
    "model": ("bsa", "model"), "adapt": ("bsa", "adapt"), "bsa_batch": ("bsa", "batch"), "bsa_lr": ("bsa", "lr"),
    "perceptual": ("bsa", "perceptual"), "class_init": ("bsa", "class_init"),
    "resolution": ("cgan", "resolution"), "cgan_batch": ("cgan", "batch"), "lr_g": ("cgan", "lr_g"), "lr_d": ("cgan", "lr_d"),
    "augment": ("cgan", "augment"), "mode_seeking": ("cgan", "mode_seeking"), "g_ch": ("cgan", "g_ch"), "d_ch": ("cgan", "d_ch"),
    "transfer_from": ("cgan", "transfer_from"),
}
LOOP_FIELDS = ("iters", "sample_every", "checkpoint_every")
FORM_KEYS = ("run", "dataset", "method", "preset", *CONFIG_FIELDS, *LOOP_FIELDS, "device")
# The widgets' labels and the number fields' least values: the form is built from these, and a settings file is
# checked against them (and against the config dataclasses' own checks).
LABELS = {"method": "Method", "preset": "Preset", "model": "BigGAN-deep", "adapt": "What adapts", "bsa_batch": "Batch",
          "bsa_lr": "Learning rate (latents; others scale from it)", "perceptual": "Perceptual loss",
          "class_init": "Start class (ImageNet index)", "resolution": "Resolution (px)", "cgan_batch": "Batch",
          "lr_g": "Generator lr", "lr_d": "Discriminator lr", "augment": "DiffAugment", "mode_seeking": "Mode seeking",
          "g_ch": "Generator width", "d_ch": "Discriminator width", "transfer_from": "Transfer from run",
          "iters": "Steps", "sample_every": "Preview every", "checkpoint_every": "Checkpoint every", "device": "Device"}
MINIMUM = {"bsa_batch": 1, "bsa_lr": 0, "class_init": 0, "cgan_batch": 2, "lr_g": 0, "lr_d": 0, "mode_seeking": 0,
           "g_ch": 4, "d_ch": 4, "iters": 1, "sample_every": 1, "checkpoint_every": 1}
AUGMENT_CHOICES = ["color", "translation", "cutout"]
FIRST_RUN_PRESET = "cpu-32"  # the offline demo: class-conditioned art within minutes on a CPU


def preset_values(method: str, preset: str | None) -> dict[str, Any]:
    """Form values for a method's preset (or its defaults): config fields and loop fields."""
    module = METHODS[method]
    values = {f.name: f.default for f in fields(module.CONFIG)}
    values |= {f.name: f.default for f in fields(LoopConfig)} | module.DEFAULT_LOOP | module.PRESETS.get(preset or "", {})
    form = {key: values[name] for key, (m, name) in CONFIG_FIELDS.items() if m == method}
    if method == "cgan":
        form["augment"] = [p for p in values["augment"].split(",") if p]
    return {**form, **{k: values[k] for k in LOOP_FIELDS}, "method": method, "preset": preset}


def dataset_choices(ws: Workspace) -> list[str]:
    """The datasets a run can train on: damaged ones are left out (the Dataset tab and `dataset list` show why)."""
    return [d["dataset"] for d in list_datasets(ws) if "error" not in d]


def default_form(ws: Workspace) -> dict[str, Any]:
    """The form a first visit shows: the demo cGAN on the demo dataset, if `ws` has one."""
    datasets = dataset_choices(ws)
    dataset = "demo" if "demo" in datasets else (datasets[0] if datasets else None)
    return {**preset_values("bsa", "symbolic-seed"), **preset_values("cgan", FIRST_RUN_PRESET),
            "run": "", "dataset": dataset, "device": "auto"}


def form_request(form: dict[str, Any], taken: list[str]) -> JobRequest:
    """The job a filled form asks for; an empty run name becomes `<dataset>-<method>[-N]`."""
    method, dataset = form["method"], form.get("dataset")
    if method not in METHODS:
        raise UserError("Choose a training method: cGAN or BSA.")
    config: dict[str, Any] = {}
    for key, (m, name) in CONFIG_FIELDS.items():
        value = form.get(key)
        if m != method or value in (None, ""):
            continue
        config[name] = ",".join(value) if key == "augment" else value
    for name in ("batch", "resolution", "g_ch", "d_ch", "class_init"):
        if name in config:
            config[name] = _whole(config[name], name)
    if config.get("augment") == "":
        config["augment"] = "none"
    loop = {k: _whole(form[k], k) for k in LOOP_FIELDS if form.get(k) not in (None, "")}
    name = (form.get("run") or "").strip() or free_name(f"{dataset or 'run'}-{method}", taken.__contains__)
    return JobRequest(method, name, dataset=dataset, config=config, loop=loop, device=form.get("device") or "auto")


def _whole(value: Any, name: str) -> int:
    if float(value) != int(float(value)) or int(float(value)) < 0:
        raise UserError(f"{name.replace('_', ' ').capitalize()} must be a whole number, not {value}.")
    return int(float(value))


def save_settings(ws: Workspace, form: dict[str, Any]) -> Path:
    """The form's settings (not the run name or dataset) as a JSON file under exports/settings/."""
    settings = check_settings({k: v for k, v in form.items() if k not in ("run", "dataset")}, dev=True)
    path = ws.exports / "settings" / f"{settings['method']}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, settings)
    return path


def read_settings(path: Path, *, dev: bool = False, runs: list[str] | None = None) -> dict[str, Any]:
    """Form values from a settings file, each checked (see check_settings); anything not a form field is ignored."""
    try:
        values = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path.name} is not a settings file saved by the studio ({exc}).") from None
    if not isinstance(values, dict) or values.get("method") not in METHODS:
        raise UserError(f"{path.name} is not a settings file saved by the studio: it names no training method.")
    return check_settings({k: v for k, v in values.items() if k in FORM_KEYS and k not in ("run", "dataset")},
                          dev=dev, runs=runs)


def check_settings(values: dict[str, Any], *, dev: bool = False, runs: list[str] | None = None) -> dict[str, Any]:
    """`values` with each field checked by type and range, or a UserError naming the first bad field.

    Types come from the config dataclasses, least values from MINIMUM (the widgets' bounds), choices from
    the widgets' own lists, and every config field also passes its dataclass's checks. `runs`: the cGAN
    runs a transfer may start from (None: any name).
    """
    choices: dict[str, list] = {
        "method": list(METHODS), "preset": [None, *METHODS[values.get("method", "cgan")].PRESETS],
        "model": [*BIGGAN_NAMES, *(["tiny"] if dev else [])], "perceptual": _perceptual_choices(dev),
        "device": _device_choices(), **({"transfer_from": ["", None, *runs]} if runs is not None else {})}
    out = dict(values)
    for key, value in values.items():
        name = f"{LABELS[key].split(' (')[0]} ({key})"  # "Resolution (resolution)", not "Resolution (px) (resolution)"
        if key in choices and value not in choices[key]:
            shown = ", ".join(str(c) for c in choices[key] if c not in (None, ""))
            raise UserError(f"{name} must be {'one of ' + shown if shown else 'empty'}, not {value!r}.")
        if key == "augment" and not (isinstance(value, list) and all(v in AUGMENT_CHOICES for v in value)):
            raise UserError(f"{name} must be a list of {', '.join(AUGMENT_CHOICES)}, not {value!r}.")
        kind = _field_type(key)
        if key in MINIMUM and not (value is None and key == "class_init"):  # None: "empty" for an optional number
            whole = kind is int
            number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not number or (whole and value != int(value)) or value < MINIMUM[key]:
                what = "a whole number" if whole else "a number"
                raise UserError(f"{name} must be {what} of at least {MINIMUM[key]}, not {value!r}.")
            out[key] = int(value) if whole else value
        elif kind is str and key not in (*choices, "augment") and not isinstance(value, (str, type(None))):
            raise UserError(f"{name} must be text, not {value!r}.")
        if key in CONFIG_FIELDS:
            method, field = CONFIG_FIELDS[key]
            try:
                METHODS[method].CONFIG(**{field: ",".join(value) if key == "augment" else out[key]})
            except UserError as exc:
                raise UserError(f"{name} cannot be {value!r}: {exc}") from None
    return out


def _field_type(key: str) -> type | None:
    """int, float or str: the type of the config (or loop) field behind form field `key`; None for the others."""
    if key in LOOP_FIELDS:
        return get_type_hints(LoopConfig)[key]
    if key not in CONFIG_FIELDS:
        return None
    method, field = CONFIG_FIELDS[key]
    hint = get_type_hints(METHODS[method].CONFIG)[field]
    return next((t for t in (int, float, str) if hint is t or t in getattr(hint, "__args__", ())), None)


def model_choices(dev: bool) -> list[tuple[str, str]]:
    """BigGAN-deep sizes with where each would come from: found locally, will download N MB, or not available offline."""
    choices = [(f"{name}: {resolve_biggan(name).status}", name) for name in BIGGAN_NAMES]
    return choices + ([("tiny: random 32 px model (developer)", "tiny")] if dev else [])


def browser_state() -> gr.BrowserState:
    """The form's values in the browser's localStorage. Make it outside the tabs: a hidden tab mounts late,
    and a state inside it would still be empty when demo.load reads it."""
    return gr.BrowserState({}, storage_key=FORM_STORAGE_KEY)


def render(sessions: Sessions, form_state: gr.BrowserState, *, dev: bool = False) -> None:
    """Build the tab in the current Blocks context and wire its events (a page fills in its workspace's values on load)."""
    built = sessions.at_build()
    start = default_form(built.ws)

    def number(key: str, value: Any = ..., **kwargs) -> gr.Number:
        return gr.Number(start[key] if value is ... else value, label=LABELS[key], minimum=MINIMUM[key],
                         precision=0 if _field_type(key) is int else None, **kwargs)
    with gr.Row():
        with gr.Column(scale=2):
            gr.Markdown("### New training run")
            run_name = gr.Textbox(label="Run name", placeholder="empty: <dataset>-<method>", elem_id="train-run-name",
                                  info="A folder under runs/; letters, digits, '.', '_' and '-'.")
            dataset = gr.Dropdown(dataset_choices(built.ws), value=start["dataset"], label="Dataset",
                                  elem_id="train-dataset")
            method = gr.Radio(METHOD_CHOICES, value=start["method"], label=LABELS["method"], elem_id="train-method")
            preset = gr.Dropdown(_preset_choices(start["method"]), value=start["preset"], label=LABELS["preset"],
                                 info="Fills the settings below with a tested recipe.", elem_id="train-preset")
            with gr.Group(visible=start["method"] == "bsa") as bsa_group:
                model = gr.Dropdown(model_choices(dev), value=start["model"], label=LABELS["model"],
                                    info="Pretrained generator to adapt; the label says where its weights come from.",
                                    elem_id="train-model")
                adapt = gr.Radio(list(bsa.ADAPT_MODES), value=start["adapt"], label=LABELS["adapt"],
                                 info="hyper-bn: the reference recipe; scale-shift: per-channel γ/β on every batch norm")
                with gr.Row():
                    bsa_batch = number("bsa_batch")
                    bsa_lr = number("bsa_lr")
                with gr.Row():
                    perceptual = gr.Dropdown(_perceptual_choices(dev), value=start["perceptual"],
                                             label=LABELS["perceptual"], info="VGG16 features (downloads 528 MB once)")
                    class_init = number("class_init", None, info="empty: the mean of all ImageNet classes")
            with gr.Group(visible=start["method"] == "cgan") as cgan_group:
                with gr.Row():
                    resolution = gr.Dropdown(list(RESOLUTIONS), value=start["resolution"], label=LABELS["resolution"],
                                             info="32 trains in minutes on a CPU; 64/128 want a GPU")
                    cgan_batch = number("cgan_batch")
                with gr.Row():
                    lr_g = number("lr_g")
                    lr_d = number("lr_d")
                    mode_seeking = number("mode_seeking",
                                          info="rewards different images for different latents; guards against collapse")
                augment = gr.CheckboxGroup(AUGMENT_CHOICES, value=start["augment"], label=LABELS["augment"],
                                           info="keeps the discriminator from memorising a small dataset")
                with gr.Row():
                    g_ch = number("g_ch")
                    d_ch = number("d_ch")
                    transfer_from = gr.Dropdown(["", *_cgan_runs(built)], value="", label=LABELS["transfer_from"],
                                                info="start from an earlier cGAN run's generator (same resolution and widths)")
            with gr.Row():
                iters = number("iters", elem_id="train-iters")
                sample_every = number("sample_every", elem_id="train-sample-every")
                checkpoint_every = number("checkpoint_every")
                device = gr.Dropdown(_device_choices(), value="auto", label=LABELS["device"])
            start_btn = gr.Button("Start training", variant="primary", elem_id="train-start")
            with gr.Accordion("Presets as JSON", open=False):
                gr.Markdown("Save these settings to a file, or load a file saved before.")
                with gr.Row():
                    save_btn = gr.Button("Save settings", size="sm", elem_id="train-save-preset")
                    load_btn = gr.UploadButton("Load settings", file_types=[".json"], size="sm", elem_id="train-load-preset")
                preset_file = gr.File(label="Settings file", visible=False, interactive=False, elem_id="train-preset-file")
        with gr.Column(scale=3):
            gr.Markdown("### Runs")
            panel = LivePanel(sessions, prefix="train", blends=False, start_hint="press **Start training**",
                              preview_label="Latest preview (fixed seed)", plot_title="Losses", can_continue=True)

    form_components = {"run": run_name, "dataset": dataset, "method": method, "preset": preset, "model": model,
                       "adapt": adapt, "bsa_batch": bsa_batch, "bsa_lr": bsa_lr, "perceptual": perceptual,
                       "class_init": class_init, "resolution": resolution, "cgan_batch": cgan_batch, "lr_g": lr_g,
                       "lr_d": lr_d, "augment": augment, "mode_seeking": mode_seeking, "g_ch": g_ch, "d_ch": d_ch,
                       "transfer_from": transfer_from, "iters": iters, "sample_every": sample_every,
                       "checkpoint_every": checkpoint_every, "device": device}
    assert tuple(form_components) == FORM_KEYS
    inputs = list(form_components.values())
    def _form(*values) -> dict[str, Any]:
        return dict(zip(FORM_KEYS, values))

    def _fill(values: dict[str, Any]) -> list:
        return [gr.update(value=values[k]) if k in values else gr.update() for k in FORM_KEYS]

    def on_method(m):
        return (gr.update(visible=m == "bsa"), gr.update(visible=m == "cgan"),
                gr.update(choices=_preset_choices(m), value=None))

    method.input(on_method, [method], [bsa_group, cgan_group, preset])

    def on_preset(m, p):
        return _fill(preset_values(m, p)) if p else _fill({})

    preset.input(on_preset, [method, preset], inputs)

    @user_errors
    def on_start(request: gr.Request, *values):
        jobs = sessions.jobs(request)
        job = form_request(_form(*values), [v.run for v in jobs.runs()])
        jobs.submit(job)
        return panel.select(jobs, job.run), *panel.refresh(jobs, job.run)

    start_btn.click(on_start, inputs, [panel.picked, *panel.outputs])

    @user_errors
    def on_resume(name, steps, device_v, request: gr.Request):
        if not name:
            raise UserError("Pick a run to continue.")
        jobs = sessions.jobs(request)
        view = jobs.view(name)
        jobs.resume(name, iters=int(steps) if steps and int(steps) > view.step else None, device=device_v)
        return panel.refresh(jobs, name)

    panel.resume_btn.click(on_resume, [panel.picked, iters, device], panel.outputs)

    def on_save(request: gr.Request, *values):
        return gr.update(value=str(save_settings(sessions.workspace(request), _form(*values))), visible=True)

    save_btn.click(user_errors(on_save), inputs, [preset_file])

    @user_errors
    def on_load(file, request: gr.Request):
        values = read_settings(Path(file), dev=dev, runs=_cgan_runs(sessions.jobs(request)))
        return *_fill(values), gr.update(visible=values["method"] == "bsa"), gr.update(visible=values["method"] == "cgan")

    load_btn.upload(on_load, [load_btn], [*inputs, bsa_group, cgan_group])

    # Form values live in the browser, so a reload (or a restarted app) brings them back.
    gr.on([c.change for c in inputs], lambda *v: _form(*v), inputs, [form_state], show_progress="hidden")

    @user_errors
    def on_load_page(saved: dict | None, request: gr.Request):
        ws, jobs = sessions.workspace(request), sessions.jobs(request)
        datasets = dataset_choices(ws)
        values = {**default_form(ws), **{k: v for k, v in (saved or {}).items() if k in FORM_KEYS}}
        if values.get("dataset") not in datasets:
            values["dataset"] = default_form(ws)["dataset"]
        updates = _fill(values)
        updates[FORM_KEYS.index("dataset")] = gr.update(choices=datasets, value=values["dataset"])
        updates[FORM_KEYS.index("model")] = gr.update(choices=model_choices(dev), value=values["model"])
        updates[FORM_KEYS.index("transfer_from")] = gr.update(choices=["", *_cgan_runs(jobs)], value=values.get("transfer_from") or "")
        updates[FORM_KEYS.index("preset")] = gr.update(choices=_preset_choices(values["method"]), value=values.get("preset"))
        return (*updates, gr.update(visible=values["method"] == "bsa"), gr.update(visible=values["method"] == "cgan"),
                panel.select(jobs, panel.current(jobs)))  # reattach to the job training now

    sessions.on_load(on_load_page, [form_state], [*inputs, bsa_group, cgan_group, panel.picked])

    @user_errors
    def on_dataset_focus(request: gr.Request):
        return gr.update(choices=dataset_choices(sessions.workspace(request)))

    dataset.focus(on_dataset_focus, None, [dataset])


def _preset_choices(method: str) -> list[tuple[str, str]]:
    module = METHODS[method]
    return [(module.PRESET_TITLES.get(name, name), name) for name in module.PRESETS]


def _perceptual_choices(dev: bool) -> list[str]:
    return ["vgg16", "none", *(["tiny"] if dev else [])]


def _cgan_runs(jobs: JobManager) -> list[str]:
    return [v.run for v in jobs.runs() if v.method == "cgan" and v.has_checkpoint]


def _device_choices() -> list[str]:
    import torch

    return ["auto", "cpu", *(["cuda"] if torch.cuda.is_available() else [])]
