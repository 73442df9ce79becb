"""The Train tab's handlers called directly: form → job request → the CLI's own parser; the live view of a real run."""

from __future__ import annotations

import pytest

from studio.jobspec import check_before_queueing
from studio.data.dataset import create_demo_dataset
from studio.errors import UserError
from studio.jobs import JobManager
from studio.methods.cgan import CGANConfig
from studio.train import LoopConfig, run_training
from studio.ui import live, train_tab


@pytest.fixture
def ws(workspace):
    create_demo_dataset(workspace, "demo", per_class=4, size=64)
    return workspace


def test_first_run_form_is_the_demo_cgan_and_becomes_a_job_spec(ws):
    form = train_tab.default_form(ws)
    assert form["method"] == "cgan" and form["dataset"] == "demo" and form["preset"] == train_tab.FIRST_RUN_PRESET
    request = train_tab.form_request(form, taken=["demo-cgan"])
    assert request.run == "demo-cgan-2"
    spec = check_before_queueing(ws, request)  # what job.json will hold: the whole config, checked
    assert (spec.method, spec.run, spec.dataset) == ("cgan", "demo-cgan-2", "demo")
    assert spec.config["resolution"] == 32 and spec.config["augment"] == CGANConfig().augment
    assert spec.loop["iters"] == 3500 and isinstance(spec.loop["iters"], int)
    assert spec.config["transfer_from"] is None and spec.config["freeze_steps"] == 0  # empty fields: the defaults


def test_presets_fill_the_seed_tables_and_bad_values_are_sentences(ws):
    values = train_tab.preset_values("bsa", "symbolic-seed")
    assert (values["iters"], values["bsa_lr"], values["bsa_batch"]) == (300, 0.03, 5)
    form = {**train_tab.default_form(ws), **values, "model": "tiny", "perceptual": "none"}
    request = train_tab.form_request(form, taken=[])
    assert request.method == "bsa" and request.config["lr"] == 0.03 and "resolution" not in request.config
    assert train_tab.form_request({**train_tab.default_form(ws), "augment": []}, []).config["augment"] == "none"
    with pytest.raises(UserError, match="whole number"):
        train_tab.form_request({**train_tab.default_form(ws), "cgan_batch": 2.5}, [])


def test_the_gpu_presets_pick_fastgan_at_high_resolution_and_say_what_they_need(ws):
    values = train_tab.preset_values("cgan", "gpu-1024")
    assert (values["arch"], values["resolution"], values["cgan_batch"]) == ("fastgan", 1024, 8)
    spec = check_before_queueing(ws, train_tab.form_request({**train_tab.default_form(ws), **values}, taken=[]))
    assert spec.config["arch"] == "fastgan" and spec.config["resolution"] == 1024 and spec.loop["checkpoint_every"] == 5000
    titles = dict((name, title) for title, name in train_tab._preset_choices("cgan"))
    assert "GB" in titles["gpu-256"] and "GB" in titles["gpu-1024"] and "minutes" in titles["cpu-32"]
    assert train_tab._resolutions("light") == (32, 64, 128) and 1024 in train_tab._resolutions("fastgan")
    with pytest.raises(UserError, match="fastgan"):  # the light net stops at 128 px: the sentence names the way out
        check_before_queueing(ws, train_tab.form_request({**train_tab.default_form(ws), "resolution": 256}, taken=[]))


def test_model_choices_say_where_weights_come_from(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    choices = dict((v, label) for label, v in train_tab.model_choices(dev=False))
    assert set(choices) == {"studio-base", "biggan-deep-128", "biggan-deep-256", "biggan-deep-512"}
    assert all("found" in label or "not available offline" in label or label.startswith("studio base, offline")
               for label in choices.values())
    assert "tiny" in dict((v, label) for label, v in train_tab.model_choices(dev=True))


def test_live_view_of_a_finished_run(ws):
    run_training(ws, method="cgan", run_name="done", dataset="demo", cfg=CGANConfig(g_ch=8, d_ch=8, batch=8),
                 loop=LoopConfig(iters=4, sample_every=2, checkpoint_every=4), device="cpu")
    jobs = JobManager(ws, background=False)
    view = live.live_view(jobs, "done")
    assert "Finished" in view["status"] and view["resume"] and view["delete"] and not view["stop"]
    assert view["preview"].endswith("step_000004.png")
    assert [caption for _, caption in view["history"]] == ["step 4", "step 2", "step 0"]
    assert set(view["plot"]["term"]) >= {"d_loss", "g_loss"} and view["plot"]["step"].max() == 4
    assert "finished at step 4" in view["log"]
    assert live.run_choices(jobs) == [("done · finished · step 4", "done")]
    assert live.live_view(jobs, None)["preview"] is None


def test_long_runs_curves_are_means_of_consecutive_steps_not_single_noisy_ones():
    rows = [{"step": i, "time": 0.1, "d_loss": float(i % 2), "stopped": False} for i in range(1000)]  # 0, 1, 0, 1, ...
    frame = live.loss_frame(rows)
    assert set(frame["term"]) == {"d_loss"} and len(frame) <= live.PLOT_POINTS and frame["step"].max() == 999
    assert frame["value"].between(0.4, 0.6).all()  # every n-th step alone would draw a flat 0 or 1


def test_a_watched_run_resends_previews_only_when_new_ones_come_and_curves_at_most_every_few_seconds(ws, monkeypatch):
    """Each redraw costs the page's renderer CPU that a 2-core machine takes from the job (docs/performance.md)."""
    import json
    from types import SimpleNamespace

    run_training(ws, method="cgan", run_name="w", dataset="demo", cfg=CGANConfig(g_ch=8, d_ch=8, batch=8),
                 loop=LoopConfig(iters=2, sample_every=2, checkpoint_every=2), device="cpu")
    jobs, panel, clock = JobManager(ws, background=False), SimpleNamespace(start_hint=""), [100.0]
    monkeypatch.setattr(live, "time", SimpleNamespace(monotonic=lambda: clock[0]))  # the panel's clock only

    def tick(signature, plotted):
        *_, preview, history, plot, _log, signature, key, _tick = live.LivePanel.refresh(panel, jobs, "w", signature,
                                                                                        plotted=plotted)
        return preview, history, plot, signature, key

    preview, history, plot, signature, key = tick(None, None)
    assert preview.endswith("step_000002.png") and len(history) == 2 and plot["value"]["step"].max() == 2
    with (ws.run_dir("w") / "metrics.jsonl").open("a") as log:  # the job logs one more step
        log.write(json.dumps({"step": 3, "d_loss": 1.0, "g_loss": 1.0}) + "\n")
    clock[0] += 1
    preview, history, plot, signature, key = tick(signature, key)
    assert preview == history == plot == {"__type__": "update"}  # nothing new to show yet
    clock[0] += live.PLOT_EVERY_S
    preview, history, plot, signature, key = tick(signature, key)
    assert plot["value"]["step"].max() == 3 and preview == history == {"__type__": "update"}
    clock[0] += live.PLOT_EVERY_S
    assert tick(signature, key)[2] == {"__type__": "update"}  # the log did not grow since


def test_the_page_ticks_every_second_while_a_job_runs_and_every_five_with_none(ws, monkeypatch):
    """An idle page's ticks cost its renderer a third of a core (docs/performance.md); a live job needs them."""
    from types import SimpleNamespace

    jobs, panel, runs = JobManager(ws, background=False), SimpleNamespace(start_hint=""), []
    monkeypatch.setattr(jobs, "runs", lambda: runs)

    def tick(signature):
        *_, signature, _key, timer = live.LivePanel.refresh(panel, jobs, None, signature)
        return signature, timer

    signature, timer = tick(None)  # a page's first refresh (load, a pick) always says how often to tick
    assert timer == {"__type__": "update", "value": live.IDLE_TICK_S}
    signature, timer = tick(signature)
    assert timer == {"__type__": "update"}  # unchanged: nothing sent
    runs.append(SimpleNamespace(live=False))
    assert tick(signature)[1] == {"__type__": "update"}  # a finished run needs no watching either
    runs.append(SimpleNamespace(live=True))  # a job started, watched or not: its page's share follows each tick
    signature, timer = tick(signature)
    assert timer == {"__type__": "update", "value": live.TICK_S}
    runs.pop()
    assert tick(signature)[1] == {"__type__": "update", "value": live.IDLE_TICK_S}


def test_the_whole_app_builds(ws):
    from studio.ui.app import build_app

    build_app(ws, JobManager(ws, background=False), dev=True)


def test_an_idle_app_looks_at_its_queue_every_20_ms_not_every_millisecond(ws):
    """Gradio's default cost an app nobody used a tenth of a core (docs/performance.md); its attributes are private, so
    this fails the day gradio renames them."""
    from studio.ui.app import build_app, quiet_when_idle

    demo = build_app(ws, JobManager(ws, background=False)).queue()
    quiet_when_idle(demo)
    assert (demo._queue.sleep_when_free, demo._queue.progress_update_sleep_when_free) == (0.02, 0.1)


def test_a_field_changed_while_the_page_loads_keeps_the_visitors_value(ws):
    """On a busy server a visitor may pick BSA before the page's load has filled the form: the load must not undo it."""
    import gradio as gr

    from studio.ui.app import build_app

    demo = build_app(ws, JobManager(ws, background=False))
    fns = {f.name: f.fn for f in demo.fns.values()}
    shown = train_tab.default_form(ws)
    saved = {**shown, "iters": 1234}  # what the browser kept from an earlier visit
    picked = {**shown, "method": "bsa", "preset": None}
    updates = fns["on_load_page"](gr.Request(session_hash="p"), saved, *(picked[k] for k in train_tab.FORM_KEYS))
    values = {k: u.get("value") for k, u in zip(train_tab.FORM_KEYS, updates)}
    assert values["method"] == "bsa" and values["preset"] is None and values["iters"] == 1234
    assert updates[len(train_tab.FORM_KEYS)]["visible"] is True  # the BSA settings shown
    # Picking a method brings its own steps: BSA's first run is not the cGAN's 3500.
    bsa_group, cgan_group, preset, iters, *_ = fns["on_method"]("bsa")
    assert bsa_group["visible"] and not cgan_group["visible"]
    assert iters["value"] == train_tab.first_run("bsa")["iters"] != train_tab.first_run("cgan")["iters"]
    assert fns["on_method"]("cgan")[2]["value"] == train_tab.FIRST_RUN_PRESET


def test_settings_save_and_load_round_trip(ws, tmp_path):
    form = {**train_tab.default_form(ws), "run": "mine", "iters": 777, "augment": ["color"]}
    path = train_tab.save_settings(ws, form)
    assert path.parent == ws.exports / "settings"
    loaded = train_tab.read_settings(path)
    assert loaded["iters"] == 777 and loaded["augment"] == ["color"] and "run" not in loaded and "dataset" not in loaded
    bad = tmp_path / "bad.json"
    for text in ("{not json", '{"method": "vae"}', "[1, 2]"):
        bad.write_text(text)
        with pytest.raises(UserError, match="not a settings file"):
            train_tab.read_settings(bad)


def test_runs_started_from_the_command_line_show_their_method(ws):
    from studio.cli import main

    assert main(["--workspace", str(ws.root), "train", "cgan", "--dataset", "demo", "--run", "cli-run", "--iters", "2",
                 "--g-ch", "8", "--d-ch", "8", "--batch", "4", "--device", "cpu"]) == 0
    view = JobManager(ws, background=False).view("cli-run")
    assert (view.method, view.dataset, view.state) == ("cgan", "demo", "finished")


def test_a_damaged_dataset_is_left_out_of_the_train_form_and_shown_on_the_dataset_tab(ws):
    from studio.ui import dataset_tab

    (ws.datasets / "aaa").mkdir()
    (ws.datasets / "aaa" / "dataset.json").write_text('{"images": 5}')
    assert train_tab.dataset_choices(ws) == ["demo"] and train_tab.default_form(ws)["dataset"] == "demo"
    items, ids, note, _ = dataset_tab.dataset_view(ws, "aaa")
    assert items == [] and "dataset.json of dataset 'aaa' is damaged (name is missing)" in note
    assert len(dataset_tab.dataset_view(ws, "demo")[0]) == 12
    assert dataset_tab.dataset_view(ws, "new-name")[2].startswith("No dataset selected")


@pytest.mark.parametrize("key, value, message", [
    ("cgan_batch", "abc", "Batch (cgan_batch) must be a whole number from 2 to 1024, not 'abc'."),
    ("cgan_batch", float("inf"), "Batch (cgan_batch) must be a whole number from 2 to 1024, not inf."),
    ("cgan_batch", 1, "Batch (cgan_batch) must be a whole number from 2 to 1024, not 1."),
    ("cgan_batch", 4096, "Batch (cgan_batch) must be a whole number from 2 to 1024, not 4096: a larger batch does not"),
    ("iters", 2.5, "Steps (iters) must be a whole number from 1 to 1000000, not 2.5."),
    ("iters", 99999999999, "Steps (iters) must be a whole number from 1 to 1000000, not 99999999999: a million steps"),
    ("lr_g", float("nan"), "Generator lr (lr_g) must be a number from 0 to 1, not nan."),
    ("lr_d", 0, "Discriminator lr (lr_d) cannot be 0: Batch size and learning rates must be positive."),
    ("bsa_batch", True, "Batch (bsa_batch) must be a whole number from 1 to 256, not True."),
    ("class_init", 1000, "Start class (class_init) must be a whole number from 0 to 999, not 1000: ImageNet has"),
    ("resolution", 48, "Resolution (resolution) cannot be 48: Resolution 48 is not offered"),
    ("adapt", "all", "What adapts (adapt) must be one of auto, hyper-bn, scale-shift, not 'all'."),
    ("augment", ["flip"], "DiffAugment (augment) must be a list of color, translation, cutout, not ['flip']."),
    ("model", "tiny", "Base generator (model) must be one of biggan-deep-128, biggan-deep-256, biggan-deep-512, studio-base, run:earlier, not 'tiny'."),
    ("device", "tpu", "Device (device) must be one of auto, cpu"),
    ("transfer_from", "gone", "Transfer from run (transfer_from) must be one of earlier, not 'gone'."),
])
def test_each_settings_value_is_checked_and_named(ws, tmp_path, key, value, message):
    import json

    path = train_tab.save_settings(ws, train_tab.default_form(ws))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(path.read_text()), key: value}))  # inf and nan as JSON's Infinity and NaN
    with pytest.raises(UserError) as caught:
        train_tab.read_settings(bad, runs=["earlier"])
    assert str(caught.value).startswith(message)
    assert train_tab.read_settings(path, runs=["earlier"])["cgan_batch"] == 32
    with pytest.raises(UserError, match=r"\(iters\)"):
        train_tab.save_settings(ws, {**train_tab.default_form(ws), "iters": -5})


def test_the_forms_preset_reaches_the_job_and_fine_patterns_pick_theirs(ws):
    """A preset's settings that are not on the form reach the job (the GPU presets' EMA); a dataset of fine patterns
    swaps the first-run preset for the pattern one, and back; a preset the visitor chose stays."""
    form = {**train_tab.default_form(ws), **train_tab.preset_values("cgan", "gpu-64")}
    assert check_before_queueing(ws, train_tab.form_request(form, taken=[])).config["ema"] == 0.999
    create_demo_dataset(ws, "swatches", family="textures", per_class=4, size=32)
    first = train_tab.default_form(ws)
    values, why = train_tab.dataset_preset_values(ws, {**first, "dataset": "swatches"})
    assert values["preset"] == "cpu-32-patterns" and "fine repeating patterns" in why
    # The preset's batch and steps fill the form, whose values the job takes over the preset's.
    spec = check_before_queueing(ws, train_tab.form_request({**first, "dataset": "swatches", **values}, taken=[]))
    assert (spec.config["upsample"], spec.config["truncation"], spec.config["batch"], spec.loop["iters"]) == (
        "shuffle", 1.3, 16, 5000)
    assert (spec.config["cond_start"], spec.config["cond_end"]) == (500, 2000)
    back, why = train_tab.dataset_preset_values(ws, {**first, **values})  # the demo's images: back, with its settings
    assert (back["preset"], back["cgan_batch"], back["iters"], why) == ("cpu-32", 32, 3500, "")
    assert train_tab.dataset_preset_values(ws, {**first, "dataset": "swatches", **values})[0] == {}  # no change
    assert train_tab.suggested_preset(ws, {**first, "dataset": "swatches", "preset": "cpu-64"}) == ("cpu-64", "")

