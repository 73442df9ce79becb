"""The Blend tab: steer a run with a CLIP prompt, or blend two BSA runs, as a job; watch the score climb.

A blend is a job like training (method "blend" in studio.methods; `python -m studio job NAME` runs it), so it
queues behind a training job, survives a reload and stops cleanly; its result lands in runs/<name>/result/.
The number fields' labels and ranges come from studio.guide.BlendConfig's metadata, and so do their checks.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from studio.errors import UserError
from studio.guide import BlendConfig, blend_name, blend_result, blend_result_path, blend_results, run_mix_layers
from studio.jobs import JobManager, JobRequest
from studio.options import check_values, options, widget
from studio.ui.common import refusing, user_errors
from studio.ui.live import LivePanel
from studio.ui.session import Sessions
from studio.workspace import Workspace

MIX_MODES = {"Let the prompt decide (optimised per layer)": "auto", "One mix for every layer": "one",
             "Coarse layers from A, fine layers from B": "split"}
DEFAULT = options(BlendConfig)


def model_runs(jobs: JobManager, method: str | None = None) -> list[str]:
    """Trained runs with a checkpoint (of one method, if given), newest first."""
    return [v.run for v in jobs.runs() if v.method in ("bsa", "cgan") and v.has_checkpoint and method in (None, v.method)]


def clip_choices(dev: bool) -> list[tuple[str, str]]:
    from studio.models.clip import resolve_clip

    source = resolve_clip("ViT-B-32")
    where = source.status if source.available else f"not available offline ({source.size_mb:.0f} MB; Start says where to put it)"
    return [(f"ViT-B-32 (LAION-2B): {where}", "ViT-B-32")] + ([("tiny: random CLIP (developer)", "tiny")] if dev else [])


def mix_setting(ws: Workspace, a: str, b: str | None, mode: str, value: float, switch: int) -> str:
    """--mix for the form: auto, one number, or per layer with the first `switch` layers from A and the rest from B."""
    if not b or mode == "auto":
        return "auto"
    if mode == "one":
        return f"{value:g}"
    layers = run_mix_layers(ws, a)
    switch = max(0, min(int(switch), len(layers)))
    return ",".join(["0"] * switch + ["1"] * (len(layers) - switch))


def blend_request(ws: Workspace, jobs: JobManager, form: dict[str, Any]) -> JobRequest:
    """The job the form asks for; an empty name becomes blend-<prompt words>[-N]."""
    taken = {v.run for v in jobs.runs()}
    name = (form.get("name") or "").strip() or blend_name(form.get("prompt") or "", taken.__contains__)
    b = form.get("b") or None
    numbers = check_values(BlendConfig, {k: form[k] for k in ("steps", "cutouts", "lr", "seed")})  # each error names its field
    config = {"a": form.get("a"), "b": b, "prompt": form.get("prompt") or "", "negative": form.get("negative") or "",
              "clip": form.get("clip"), **numbers,
              "mix": mix_setting(ws, form["a"], b, MIX_MODES.get(form["mix_mode"], "auto"), form["mix"], form["switch"])
              if form.get("a") else "auto",
              "compare": bool(form.get("compare")), "out": str(ws.exports / "blends" / f"{name}.png")}
    return JobRequest("blend", name, config=config, device=form.get("device") or "auto")


def result_view(ws: Workspace, name: str | None) -> tuple:
    """Final image, frame strip, the mix per layer and the compare pair, for a finished blend."""
    result = blend_result(ws, name) if name else None
    if result is None:
        return None, None, [], "", None, None
    rows = [[layer, m] for layer, m in zip(result["mix_layers"], result["mix"])]
    rows += [[f"class {c}", w] for c, w in result["classes"].items()]
    text = f"**{result['prompt']}** · final CLIP score **{result['final_score']:.4f}** (first step {result['scores'][0]:.4f})"
    base = result.get("base")
    if base:
        text += f" · base BigGAN on the same prompt and seed: **{base['final_score']:.4f}**"
    return result["image"], result["frames"], rows, text, base["image"] if base else None, result["image"] if base else None


def results_gallery(ws: Workspace) -> list[tuple[str, str]]:
    return [(result["image"], f"{result['prompt'][:40]} · {result['final_score']:.3f}") for result in blend_results(ws)]


def render(sessions: Sessions, *, dev: bool = False) -> None:
    """Build the tab in the current Blocks context and wire its events (a page fills in its runs on load)."""
    with gr.Row():
        with gr.Column(scale=2):
            gr.Markdown("### New blend")
            with gr.Row():
                built = sessions.at_build()
                a = gr.Dropdown(model_runs(built), label="Run A", elem_id="blend-a", info="A trained BSA or cGAN run.")
                b = gr.Dropdown(["", *model_runs(built, "bsa")], value="", label="Run B (optional)", elem_id="blend-b",
                                info="A second BSA run of the same BigGAN: blend the two domains.")
            prompt = gr.Textbox(label="Prompt", placeholder="a stained glass window of a city at night", elem_id="blend-prompt",
                                info="Several with weights: 'a city:1 | fog:0.5'.")
            negative = gr.Textbox(label="Negative prompt", placeholder="text, watermark", elem_id="blend-negative")
            mix_mode = gr.Radio(list(MIX_MODES), value=next(iter(MIX_MODES)), label="Mix between A and B",
                                elem_id="blend-mix-mode", info="Only with two runs.")
            with gr.Row():
                mix = gr.Slider(0, 1, value=0.5, step=0.05, label="Mix (0 = all A, 1 = all B)", elem_id="blend-mix")
                switch = gr.Slider(0, 16, value=4, step=1, label="Layers from A before switching to B", elem_id="blend-switch")
            clip = gr.Dropdown(clip_choices(dev), value="tiny" if dev else "ViT-B-32", label="CLIP", elem_id="blend-clip")
            with gr.Row():
                steps = gr.Number(DEFAULT["steps"].default, **widget(BlendConfig, "steps"), elem_id="blend-steps")
                cutouts = gr.Number(DEFAULT["cutouts"].default, **widget(BlendConfig, "cutouts"), elem_id="blend-cutouts")
                lr = gr.Number(DEFAULT["lr"].default, **widget(BlendConfig, "lr"))
                seed = gr.Number(DEFAULT["seed"].default, **widget(BlendConfig, "seed"), elem_id="blend-seed")
            with gr.Row():
                compare = gr.Checkbox(label=DEFAULT["compare"].label, elem_id="blend-compare")
                device = gr.Dropdown(["auto", "cpu", "cuda"], value="auto", label="Device")
            name = gr.Textbox(label="Name", placeholder="empty: from the prompt", elem_id="blend-name")
            start_btn = gr.Button("Start blending", variant="primary", elem_id="blend-start")
            start_note = gr.Markdown(elem_id="blend-start-note")  # why a start was refused, in a sentence
        with gr.Column(scale=3):
            gr.Markdown("### Blends")
            panel = LivePanel(sessions, prefix="blend", blends=True, start_hint="press **Start blending**",
                              preview_label="Latest frame", plot_title="CLIP score per step", can_continue=False)
            result_md = gr.Markdown(elem_id="blend-result")
            with gr.Row():
                final = gr.Image(label="Result", type="filepath", interactive=False, height=300, elem_id="blend-image", elem_classes=["pixel-art"])
                mix_table = gr.Dataframe(headers=["layer or class", "weight"], label="Mix per layer (0 = A, 1 = B) and class mix",
                                         interactive=False, elem_id="blend-mix-table")
            frames = gr.Image(label="Frames", type="filepath", interactive=False, height=160, elem_id="blend-frames", elem_classes=["pixel-art"])
            with gr.Row():
                base_img = gr.Image(label="Base BigGAN, same prompt and seed", type="filepath", interactive=False,
                                    height=260, elem_id="blend-compare-base", elem_classes=["pixel-art"])
                tuned_img = gr.Image(label="Fine-tuned", type="filepath", interactive=False, height=260,
                                     elem_id="blend-compare-tuned", elem_classes=["pixel-art"])
            # fit_columns=False: one result keeps its column instead of spanning the row as a tall square, cropped.
            gallery = gr.Gallery(label="All blends (newest first)", columns=4, fit_columns=False, height=360,
                                 allow_preview=False, object_fit="contain", elem_id="blend-gallery",
                                 elem_classes=["pixel-art-thumbs"])

    form = {"a": a, "b": b, "prompt": prompt, "negative": negative, "mix_mode": mix_mode, "mix": mix, "switch": switch,
            "clip": clip, "steps": steps, "cutouts": cutouts, "lr": lr, "seed": seed, "compare": compare,
            "device": device, "name": name}
    result_outputs = [final, frames, mix_table, result_md, base_img, tuned_img]

    started = [start_note, panel.picked, *panel.outputs]

    @refusing(len(started), prefix="**Not started:** ")  # a sentence by the button, not Error on every panel box
    def on_start(request: gr.Request, *values):
        ws, jobs = sessions.workspace(request), sessions.jobs(request)
        job = blend_request(ws, jobs, dict(zip(form, values)))
        if not job.config["a"]:
            raise UserError("Pick run A: a trained BSA or cGAN run.")
        jobs.submit(job)
        return "", panel.select(jobs, job.run), *panel.refresh(jobs, job.run)

    start_btn.click(on_start, list(form.values()), started)

    def on_b(a_name, b_name, request: gr.Request):
        if not (a_name and b_name):
            return gr.update()
        return gr.update(maximum=len(run_mix_layers(sessions.workspace(request), a_name)))

    b.change(user_errors(on_b), [a, b], [switch])
    # The result appears once the job has written it: a poll of result.json on the live panel's tick (every second while
    # a job runs, every five when none does), sending images only when it changed.
    shown = gr.State(None)

    def on_poll(name, last, request: gr.Request):
        if not sessions.ready(request):
            return [gr.update() for _ in range(len(result_outputs) + 1)] + [last]
        ws = sessions.workspace(request)
        path = blend_result_path(ws, name) if name else None
        key = (name, path.stat().st_mtime if path else None)
        if key == last:
            return [gr.update() for _ in range(len(result_outputs) + 1)] + [last]
        return [*result_view(ws, name), results_gallery(ws), key]

    panel.timer.tick(on_poll, [panel.picked, shown], [*result_outputs, gallery, shown], show_progress="hidden",
                     concurrency_limit=None)

    @user_errors
    def on_load(request: gr.Request):
        jobs = sessions.jobs(request)
        runs = model_runs(jobs)
        return (gr.update(choices=runs, value=runs[0] if runs else None), gr.update(choices=["", *model_runs(jobs, "bsa")]),
                panel.select(jobs, panel.current(jobs)), results_gallery(jobs.ws))

    sessions.on_load(on_load, None, [a, b, panel.picked, gallery])

    @user_errors
    def on_a_focus(request: gr.Request):
        return gr.update(choices=model_runs(sessions.jobs(request)))

    @user_errors
    def on_b_focus(request: gr.Request):
        return gr.update(choices=["", *model_runs(sessions.jobs(request), "bsa")])

    a.focus(on_a_focus, None, [a])
    b.focus(on_b_focus, None, [b])
