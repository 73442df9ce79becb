"""The Train tab: a form that queues a training job, and a live view of any run that polls its folder.

Nothing here holds a job's state: every tick reads it back through `JobManager.view`, so buttons
follow the truth after a failure, a reload reattaches, and a restarted app shows what really happened.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import gradio as gr

from studio.data.dataset import list_datasets
from studio.errors import UserError
from studio.jobs import JobManager, JobRequest
from studio.jobspec import with_data_preset
from studio.methods import method, training_methods
from studio.methods.bsa import ADAPT_MODES, RUN_BASE, STUDIO_BASES, check_base
from studio.methods.cgan import FINE_PATTERN_PRESET
from studio.models.biggan import BIGGAN_NAMES, resolve_biggan
from studio.models import CGAN_ARCHITECTURES, cgan_architecture
from studio.options import Option, check, options, widget
from studio.train import LoopConfig, new_run_configs
from studio.ui.common import refusing, user_errors
from studio.ui.live import LivePanel
from studio.ui.session import Sessions
from studio.workspace import Workspace, free_name, write_json_atomic

FORM_STORAGE_KEY = "artgan-studio-train-form"
# Form field → (method, config field): laid out by hand; labels, bounds, help and types come from the fields' metadata.
CONFIG_FIELDS = {
    "model": ("bsa", "model"), "adapt": ("bsa", "adapt"), "bsa_batch": ("bsa", "batch"), "bsa_lr": ("bsa", "lr"),
    "perceptual": ("bsa", "perceptual"), "class_init": ("bsa", "class_init"),
    "arch": ("cgan", "arch"), "resolution": ("cgan", "resolution"), "cgan_batch": ("cgan", "batch"), "lr_g": ("cgan", "lr_g"), "lr_d": ("cgan", "lr_d"),
    "augment": ("cgan", "augment"), "mode_seeking": ("cgan", "mode_seeking"), "g_ch": ("cgan", "g_ch"), "d_ch": ("cgan", "d_ch"),
    "transfer_from": ("cgan", "transfer_from"),
}
LOOP_FIELDS = ("iters", "sample_every", "checkpoint_every")
FORM_KEYS = ("run", "dataset", "method", "preset", *CONFIG_FIELDS, *LOOP_FIELDS, "device")
CHOICE_LABELS = {"method": "Method", "preset": "Preset", "device": "Device"}  # the form's fields that are no config's
AUGMENT_CHOICES = ["color", "translation", "cutout"]
FIRST_RUN_PRESET = "cpu-32"  # the offline demo: class-conditioned art within minutes on a CPU
BSA_FIRST_BASE = "biggan-deep-256"  # the BSA base a first visit shows when it is on this machine (else the studio base)


def _resolutions(arch: str) -> tuple[int, ...]:
    return cgan_architecture(arch).RESOLUTIONS


def method_choices() -> list[tuple[str, str]]:
    return [(m.title, m.name) for m in training_methods()]


def _config_of(key: str) -> tuple[type, str]:
    """The dataclass and field behind form field `key`."""
    if key in LOOP_FIELDS:
        return LoopConfig, key
    name, field = CONFIG_FIELDS[key]
    return method(name).config, field


def _option(key: str) -> Option:
    """Form field `key`'s option, named by the form's key (what a settings file says: "Batch (cgan_batch)")."""
    cls, field = _config_of(key)
    return replace(options(cls)[field], name=key)


def preset_values(method_name: str, preset: str | None) -> dict[str, Any]:
    """Form values for a method's preset (or its defaults): config fields and loop fields (studio.train's one merge)."""
    cfg, loop = new_run_configs(method_name, preset=preset)
    values = asdict(cfg)
    form = {key: values[name] for key, (m, name) in CONFIG_FIELDS.items() if m == method_name}
    if method_name == "cgan":
        form["augment"] = [p for p in values["augment"].split(",") if p and p != "none"]
    return {**form, **{k: getattr(loop, k) for k in LOOP_FIELDS}, "method": method_name, "preset": preset}


def dataset_choices(ws: Workspace) -> list[str]:
    """The datasets a run can train on: damaged ones are left out (the Dataset tab and `dataset list` show why)."""
    return [d["dataset"] for d in list_datasets(ws) if "error" not in d]


def first_run(method_name: str) -> dict[str, Any]:
    """A method's first-run settings, steps included: the demo cGAN preset, or BSA on the base found here."""
    if method_name == "cgan":
        return preset_values("cgan", FIRST_RUN_PRESET)
    model = _default_base(BSA_FIRST_BASE)
    # The seed's preset on a BigGAN; on the studio base its own defaults (studio.methods.bsa.BASE_DEFAULTS: an empty
    # learning rate is the base's), 1000 steps in about a minute on a CPU.
    bsa = preset_values("bsa", "symbolic-seed") if model == BSA_FIRST_BASE else {**preset_values("bsa", None), "bsa_lr": None}
    return {**bsa, "model": model}


def default_form(ws: Workspace) -> dict[str, Any]:
    """The form a first visit shows: the demo cGAN on the demo dataset, if `ws` has one (or the preset its images pick)."""
    datasets = dataset_choices(ws)
    dataset = "demo" if "demo" in datasets else (datasets[0] if datasets else None)
    form = {**first_run("bsa"), **first_run("cgan"), "run": "", "dataset": dataset, "device": "auto"}
    return {**form, **dataset_preset_values(ws, form)[0]}


def dataset_preset_values(ws: Workspace, form: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """What choosing the form's dataset changes on the form: the preset its images pick with that preset's settings
    (the pattern preset's batch and steps are on the form, where the form's own values would win over the preset's),
    or nothing when the preset stays; and why."""
    picked, why = suggested_preset(ws, form)
    return (preset_values("cgan", picked) if picked != form.get("preset") else {}), why


def suggested_preset(ws: Workspace, form: dict[str, Any]) -> tuple[str | None, str]:
    """The cGAN preset for the form's dataset, and why when its images picked it (studio.jobspec.with_data_preset):
    the first-run preset gives way to the one the images pick, and that one back when the images would not pick it.
    A preset chosen otherwise is the visitor's and stays."""
    preset = form.get("preset")
    if form.get("method") != "cgan" or preset not in (None, FIRST_RUN_PRESET, FINE_PATTERN_PRESET) or not form.get("dataset"):
        return preset, ""
    try:
        _, why = with_data_preset(ws, JobRequest("cgan", "form", dataset=form["dataset"],
                                                 config={"arch": form.get("arch"), "resolution": form.get("resolution")}))
    except UserError:  # an empty or damaged dataset: Start says so
        return preset, ""
    return (FINE_PATTERN_PRESET, why) if why else (FIRST_RUN_PRESET if preset == FINE_PATTERN_PRESET else preset, "")


def form_request(form: dict[str, Any], taken: list[str]) -> JobRequest:
    """The job a filled form asks for, each value checked by its field; an empty run name becomes `<dataset>-<method>[-N]`."""
    method_name, dataset = form["method"], form.get("dataset")
    if method_name not in [m.name for m in training_methods()]:
        raise UserError("Choose a training method: cGAN or BSA.")
    config: dict[str, Any] = {}
    for key, (m, name) in CONFIG_FIELDS.items():
        value = form.get(key)
        if m != method_name or value in (None, ""):
            continue
        config[name] = (",".join(value) or "none") if key == "augment" else value
    loop = {k: form[k] for k in LOOP_FIELDS if form.get(k) not in (None, "")}
    form_key = {name: key for key, (m, name) in CONFIG_FIELDS.items() if m == method_name}
    config = {name: check(_option(form_key[name]), value) for name, value in config.items()}
    loop = {name: check(_option(name), value) for name, value in loop.items()}
    name = (form.get("run") or "").strip() or free_name(f"{dataset or 'run'}-{method_name}", taken.__contains__)
    # The preset too: its settings that are not on the form (the GPU presets' EMA, the pattern preset's upsampling)
    # reach the job, under the form's own values.
    return JobRequest(method_name, name, dataset=dataset, config=config, loop=loop, device=form.get("device") or "auto",
                      preset=form.get("preset") or None)


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
    if not isinstance(values, dict) or values.get("method") not in [m.name for m in training_methods()]:
        raise UserError(f"{path.name} is not a settings file saved by the studio: it names no training method.")
    return check_settings({k: v for k, v in values.items() if k in FORM_KEYS and k not in ("run", "dataset")},
                          dev=dev, runs=runs)


def check_settings(values: dict[str, Any], *, dev: bool = False, runs: list[str] | None = None) -> dict[str, Any]:
    """`values` with each field checked, or a UserError naming the first bad field.

    Types, bounds and static choices come from the fields' metadata (studio.options); what depends on this studio
    (models found here, devices, `runs`: the cGAN runs a transfer may start from, None: any name) is checked here,
    and every config field also passes its dataclass's own checks.
    """
    choices: dict[str, list] = {
        "method": [m.name for m in training_methods()], "preset": [None, *method(values.get("method", "cgan")).presets],
        "model": [*BIGGAN_NAMES, *STUDIO_BASES, *(["tiny"] if dev else []), *(f"{RUN_BASE}{r}" for r in runs or ())],
        "perceptual": _perceptual_choices(dev),
        "device": _device_choices(), **({"transfer_from": ["", None, *runs]} if runs is not None else {})}
    out = dict(values)
    for key, value in values.items():
        cls, field = _config_of(key) if key not in CHOICE_LABELS else (None, key)
        title = _option(key).title if cls else f"{CHOICE_LABELS[key]} ({key})"
        any_run = key == "model" and runs is None and isinstance(value, str) and value.startswith(RUN_BASE)
        if key in choices and value not in choices[key] and not any_run:
            shown = ", ".join(str(c) for c in choices[key] if c not in (None, ""))
            raise UserError(f"{title} must be {'one of ' + shown if shown else 'empty'}, not {value!r}.")
        if key == "augment":
            if not (isinstance(value, list) and all(v in AUGMENT_CHOICES for v in value)):
                raise UserError(f"{title} must be a list of {', '.join(AUGMENT_CHOICES)}, not {value!r}.")
            value = ",".join(value) or "none"
        elif cls is not None and not (key == "transfer_from" and value == ""):
            out[key] = value = check(_option(key), value)
        if key in CONFIG_FIELDS:
            try:
                cls(**{field: value})
            except UserError as exc:
                raise UserError(f"{title} cannot be {values[key]!r}: {exc}") from None
    return out


def model_choices(dev: bool, runs: list[str] = ()) -> list[tuple[str, str]]:
    """The bases BSA can adapt: the shipped studio base, the finished cGAN runs `runs` ("run: NAME"), and the BigGAN-deep
    sizes with where each would come from (found locally, will download N MB, or not available offline)."""
    studio = []
    for name in STUDIO_BASES:
        try:
            check_base({"model": name})
            studio.append(("studio base, offline (32 px, the studio's own generator)", name))
        except UserError:
            studio.append(("studio base: not found in checkpoints/", name))
    choices = [(f"{name}: {resolve_biggan(name).status}", name) for name in BIGGAN_NAMES]
    return (studio + [(f"run: {r}", f"{RUN_BASE}{r}") for r in runs] + choices
            + ([("tiny: random 32 px model (developer)", "tiny")] if dev else []))


def _default_base(model: str) -> str:
    """The first-run BSA base: a BigGAN that is on this machine, else the shipped studio base (no download at all)."""
    if resolve_biggan(model).kind in ("local", "cache"):
        return model
    try:
        check_base({"model": STUDIO_BASES[0]})
        return STUDIO_BASES[0]
    except UserError:
        return model


def browser_state() -> gr.BrowserState:
    """The form's values in the browser's localStorage. Make it outside the tabs: a hidden tab mounts late,
    and a state inside it would still be empty when demo.load reads it."""
    return gr.BrowserState({}, storage_key=FORM_STORAGE_KEY)


def render(sessions: Sessions, form_state: gr.BrowserState, *, dev: bool = False) -> None:
    """Build the tab in the current Blocks context and wire its events (a page fills in its workspace's values on load)."""
    built = sessions.at_build()
    start = default_form(built.ws)

    def number(key: str, value: Any = ..., **kwargs) -> gr.Number:
        return gr.Number(start[key] if value is ... else value, **{**labelled(key), **kwargs})

    def labelled(key: str) -> dict[str, Any]:
        """A widget's label, info and, for numbers, bounds and precision: from the field's metadata."""
        return widget(*_config_of(key)) if key not in CHOICE_LABELS else {"label": CHOICE_LABELS[key]}
    with gr.Row():
        with gr.Column(scale=2):
            gr.Markdown("### New training run")
            run_name = gr.Textbox(label="Run name", placeholder="empty: <dataset>-<method>", elem_id="train-run-name",
                                  info="A folder under runs/; letters, digits, '.', '_' and '-'.")
            dataset = gr.Dropdown(dataset_choices(built.ws), value=start["dataset"], label="Dataset",
                                  elem_id="train-dataset")
            data_note = gr.Markdown(elem_id="train-data-note")  # which preset the dataset's images picked, and why
            method = gr.Radio(method_choices(), value=start["method"], **labelled("method"), elem_id="train-method")
            preset = gr.Dropdown(_preset_choices(start["method"]), value=start["preset"], **labelled("preset"),
                                 info="Fills the settings below with a tested recipe.", elem_id="train-preset")
            with gr.Group(visible=start["method"] == "bsa") as bsa_group:
                model = gr.Dropdown(model_choices(dev, _finished_cgan_runs(built)), value=start["model"], **{
                    **labelled("model"), "info": "Pretrained generator to adapt; the label says where its weights come from."},
                                    elem_id="train-model")
                adapt = gr.Radio(list(ADAPT_MODES), value=start["adapt"], **labelled("adapt"))
                with gr.Row():
                    bsa_batch = number("bsa_batch")
                    bsa_lr = number("bsa_lr")
                with gr.Row():
                    perceptual = gr.Dropdown(perceptual_choices(dev), value=start["perceptual"],
                                             **labelled("perceptual"))
                    class_init = number("class_init", None)
            with gr.Group(visible=start["method"] == "cgan") as cgan_group:
                with gr.Row():
                    arch = gr.Dropdown(list(CGAN_ARCHITECTURES), value=start["arch"], elem_id="train-arch", **labelled("arch"))
                    resolution = gr.Dropdown(list(_resolutions(start["arch"])), value=start["resolution"],
                                             elem_id="train-resolution", **labelled("resolution"))
                    cgan_batch = number("cgan_batch")
                with gr.Row():
                    lr_g = number("lr_g")
                    lr_d = number("lr_d")
                    mode_seeking = number("mode_seeking")
                augment = gr.CheckboxGroup(AUGMENT_CHOICES, value=start["augment"], **labelled("augment"))
                with gr.Row():
                    g_ch = number("g_ch")
                    d_ch = number("d_ch")
                    transfer_from = gr.Dropdown(["", *_cgan_runs(built)], value="", **labelled("transfer_from"))
            with gr.Row():
                iters = number("iters", elem_id="train-iters", info=None)  # the CLI's help is too long for the row
                sample_every = number("sample_every", elem_id="train-sample-every", info=None)
                checkpoint_every = number("checkpoint_every", info=None)
                device = gr.Dropdown(_device_choices(), value="auto", **labelled("device"))
            start_btn = gr.Button("Start training", variant="primary", elem_id="train-start")
            start_note = gr.Markdown(elem_id="train-start-note")  # why a start was refused, in a sentence
            with gr.Accordion("Presets as JSON", open=False):
                gr.Markdown("Save these settings to a file, or load a file saved before.")
                settings_note = gr.Markdown(elem_id="train-settings-note")
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
                       "class_init": class_init, "arch": arch, "resolution": resolution, "cgan_batch": cgan_batch, "lr_g": lr_g,
                       "lr_d": lr_d, "augment": augment, "mode_seeking": mode_seeking, "g_ch": g_ch, "d_ch": d_ch,
                       "transfer_from": transfer_from, "iters": iters, "sample_every": sample_every,
                       "checkpoint_every": checkpoint_every, "device": device}
    assert tuple(form_components) == FORM_KEYS
    inputs = list(form_components.values())
    as_built = {k: c.value for k, c in form_components.items()}
    def _form(*values) -> dict[str, Any]:
        return dict(zip(FORM_KEYS, values))

    def _fill(values: dict[str, Any]) -> list:
        updates = {k: gr.update(value=values[k]) for k in FORM_KEYS if k in values}
        if "arch" in values:  # the resolutions on offer follow the architecture
            updates["resolution"] = gr.update(choices=list(_resolutions(values["arch"])), **(
                {"value": values["resolution"]} if "resolution" in values else {}))
        return [updates.get(k, gr.update()) for k in FORM_KEYS]

    def on_method(m):  # the method's own settings and steps (BSA's first run is 1000 steps, not the cGAN's 3500)
        values = first_run(m)
        return (gr.update(visible=m == "bsa"), gr.update(visible=m == "cgan"),
                gr.update(choices=_preset_choices(m), value=values["preset"]),
                *(gr.update(value=values[k]) for k in LOOP_FIELDS), "")

    method.input(on_method, [method], [bsa_group, cgan_group, preset, iters, sample_every, checkpoint_every, data_note])

    def on_arch(a, r):  # each architecture offers its own resolutions
        offered = _resolutions(a)
        return gr.update(choices=list(offered), value=r if r in offered else offered[0])

    arch.input(on_arch, [arch, resolution], [resolution])

    def on_preset(m, p):
        return _fill(preset_values(m, p)) if p else _fill({})

    preset.input(on_preset, [method, preset], inputs)
    preset.input(lambda: "", None, [data_note])  # a preset the visitor chose is theirs: the images' pick no longer holds

    @user_errors
    def on_dataset(request: gr.Request, *values):
        changed, why = dataset_preset_values(sessions.workspace(request), _form(*values))
        return *_fill(changed), why and f"{why} Choose another preset to train otherwise."

    dataset.input(on_dataset, inputs, [*inputs, data_note])

    # A refused start, continue or settings file is a sentence beside its button, never an error state (see refusing).
    started = [start_note, preset, panel.picked, *panel.outputs]

    @refusing(len(started), prefix="**Not started:** ")
    def on_start(request: gr.Request, *values):
        jobs = sessions.jobs(request)
        job, why = with_data_preset(sessions.workspace(request), form_request(_form(*values), [v.run for v in jobs.runs()]))
        jobs.submit(job)
        return (why, gr.update(value=job.preset) if why else gr.update(),  # the preset the images picked, shown
                panel.select(jobs, job.run), *panel.refresh(jobs, job.run))

    start_btn.click(on_start, inputs, started)

    @refusing(1 + len(panel.outputs))
    def on_resume(name, steps, device_v, request: gr.Request):
        if not name:
            raise UserError("Pick a run to continue.")
        jobs = sessions.jobs(request)
        view = jobs.view(name)
        steps = check(_option("iters"), steps) if steps not in (None, "") else None
        jobs.resume(name, iters=steps if steps and steps > view.step else None, device=device_v)
        return "", *panel.refresh(jobs, name)

    panel.resume_btn.click(on_resume, [panel.picked, iters, device], [panel.note, *panel.outputs])

    @refusing(2)
    def on_save(request: gr.Request, *values):
        return "", gr.update(value=str(save_settings(sessions.workspace(request), _form(*values))), visible=True)

    save_btn.click(on_save, inputs, [settings_note, preset_file])

    @refusing(3 + len(inputs))
    def on_load(file, request: gr.Request):
        jobs = sessions.jobs(request)
        values = read_settings(Path(file), dev=dev, runs=sorted({*_cgan_runs(jobs), *_finished_cgan_runs(jobs)}))
        return ("", *_fill(values), gr.update(visible=values["method"] == "bsa"),
                gr.update(visible=values["method"] == "cgan"))

    load_btn.upload(on_load, [load_btn], [settings_note, *inputs, bsa_group, cgan_group])

    # Form values live in the browser, so a reload (or a restarted app) brings them back. Kept as sent (no
    # preprocessing): a change of method or architecture swaps the preset and resolution choices, and checking a value
    # sent a moment before against the new choices turned a click into an Error toast on a busy server.
    gr.on([c.change for c in inputs], lambda *v: _form(*v), inputs, [form_state], show_progress="hidden",
          preprocess=False)

    @user_errors
    def on_load_page(request: gr.Request, saved: dict | None, *shown):
        ws, jobs = sessions.workspace(request), sessions.jobs(request)
        datasets = dataset_choices(ws)
        # A field the visitor changed while the page was still loading (a busy server) keeps their value.
        touched = {k: v for k, v in _form(*shown).items() if v != as_built[k]}
        defaults = default_form(ws)
        values = {**defaults, **{k: v for k, v in (saved or {}).items() if k in FORM_KEYS}, **touched}
        if values.get("dataset") not in datasets:
            values["dataset"] = defaults["dataset"]
        updates = _fill(values)
        updates[FORM_KEYS.index("dataset")] = gr.update(choices=datasets, value=values["dataset"])
        updates[FORM_KEYS.index("model")] = gr.update(choices=model_choices(dev, _finished_cgan_runs(jobs)),
                                                      value=values["model"])
        updates[FORM_KEYS.index("perceptual")] = gr.update(choices=perceptual_choices(dev), value=values["perceptual"])
        updates[FORM_KEYS.index("transfer_from")] = gr.update(choices=["", *_cgan_runs(jobs)], value=values.get("transfer_from") or "")
        presets = _preset_choices(values["method"])
        updates[FORM_KEYS.index("preset")] = gr.update(choices=presets, value=values.get("preset")
                                                       if values.get("preset") in dict(presets).values() else None)
        return (*updates, gr.update(visible=values["method"] == "bsa"), gr.update(visible=values["method"] == "cgan"),
                panel.select(jobs, panel.current(jobs)))  # reattach to the job training now

    sessions.on_load(on_load_page, [form_state, *inputs], [*inputs, bsa_group, cgan_group, panel.picked],
                     preprocess=False)  # as the saver above: values as shown, not checked against changed choices

    @user_errors
    def on_dataset_focus(request: gr.Request):
        return gr.update(choices=dataset_choices(sessions.workspace(request)))

    dataset.focus(on_dataset_focus, None, [dataset])


def _preset_choices(method_name: str) -> list[tuple[str, str]]:
    m = method(method_name)
    return [(m.preset_titles.get(name, name), name) for name in m.presets]


def _perceptual_choices(dev: bool) -> list[str]:
    return ["auto", "vgg16", "none", *(["tiny"] if dev else [])]


def perceptual_choices(dev: bool) -> list[tuple[str, str]]:
    """The perceptual losses, VGG16 with where its weights would come from: found locally, will download N MB, or
    not available offline (studio.models.reach)."""
    from studio.models.vgg import resolve_vgg16

    labels = {"auto": "auto: VGG16 for a BigGAN; for a studio base when it is here", "vgg16": f"VGG16: {resolve_vgg16().status}",
              "none": "none (no perceptual loss)",
              "tiny": "tiny: random VGG (developer)"}
    return [(labels[v], v) for v in _perceptual_choices(dev)]


def _cgan_runs(jobs: JobManager) -> list[str]:
    return [v.run for v in jobs.runs() if v.method == "cgan" and v.has_checkpoint]


def _finished_cgan_runs(jobs: JobManager) -> list[str]:
    """The cGAN runs BSA offers to adapt: finished ones (a run still training would be adapted at a step it has left)."""
    return [v.run for v in jobs.runs() if v.method == "cgan" and v.has_checkpoint and v.state == "finished"]


def _device_choices() -> list[str]:
    import torch

    return ["auto", "cpu", *(["cuda"] if torch.cuda.is_available() else [])]
