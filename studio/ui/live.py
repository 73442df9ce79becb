"""The live view of a job's run folder, shared by the Train and Blend tabs: state, buttons, previews, curves, log."""

from __future__ import annotations

from typing import Any

import gradio as gr

from studio.errors import UserError
from studio.jobs import JobManager
from studio.run import RunFolder
from studio.ui.common import user_errors
from studio.ui.session import Sessions

PLOT_POINTS = 300  # per curve; enough to read a trend, small enough to redraw every second


def run_choices(jobs: JobManager, *, blends: bool = False) -> list[tuple[str, str]]:
    """(label, name) of the training runs (or, with blends=True, the blends), newest first, with their state."""
    return [(f"{v.run} · {v.state}" + (f" · step {v.step}" if v.step else ""), v.run) for v in jobs.runs()
            if (v.method == "blend") == blends]


def loss_frame(rows: list[dict]):
    """metrics.jsonl rows as a long table (step, value, term) for gr.LinePlot, thinned to PLOT_POINTS per term."""
    import pandas as pd

    stride = max(1, len(rows) // PLOT_POINTS)
    records = [{"step": r["step"], "value": v, "term": k} for r in rows[::stride] for k, v in r.items()
               if k not in ("step", "time", "lr") and isinstance(v, (int, float))]
    return pd.DataFrame(records, columns=["step", "value", "term"]).astype({"step": int, "value": float, "term": str})


def live_view(jobs: JobManager, name: str | None, *, start_hint: str = "press **Start training**") -> dict[str, Any]:
    """Everything the live panel shows for run `name`: sentence, buttons, latest preview, history, curves, log."""
    if not name or name not in jobs.names():  # every tick: the names, not every run's full view
        return {"status": f"No run selected. Fill in the form and {start_hint}.", "stop": False, "resume": False,
                "delete": False, "preview": None, "history": [], "plot": loss_frame([]), "log": "", "signature": ("no run",)}
    view = jobs.view(name)
    run = RunFolder(jobs.ws.run_dir(name))
    samples = run.sample_paths()
    details = " · ".join(x for x in (view.method, view.dataset and f"dataset {view.dataset}") if x)
    return {
        "status": f"**{name}** ({details}): {view.sentence()}",
        "stop": view.live, "resume": view.can_continue, "delete": not view.live or view.state == "queued",
        "preview": str(samples[-1]) if samples else None,
        "history": [(str(p), f"step {int(p.stem.split('_')[1])}") for p in reversed(samples)],
        "plot": loss_frame(run.read_metrics()), "log": jobs.log_tail(name),
        "signature": (name, view.state, len(samples), (run.path / "metrics.jsonl").stat().st_size
                      if (run.path / "metrics.jsonl").exists() else 0),
    }


class LivePanel:
    """The right-hand side of the Train and Blend tabs: pick a run, Stop / Continue / Delete (asks first),
    and watch it through polling. Built in the current Blocks context; `prefix` names the elem_ids."""

    def __init__(self, sessions: Sessions, *, prefix: str, blends: bool, start_hint: str, preview_label: str,
                 plot_title: str, can_continue: bool):
        self.blends, self.start_hint = blends, start_hint
        built = run_choices(sessions.at_build(), blends=blends)
        self.picked = gr.Dropdown(built, value=None, label="Watch", elem_id=f"{prefix}-run",
                                  info="Every one in the workspace with its true state; the one running now is picked on load.")
        with gr.Row():
            self.stop_btn = gr.Button("Stop (saves what it has)", variant="stop", interactive=False, elem_id=f"{prefix}-stop")
            self.resume_btn = gr.Button("Continue from the last checkpoint", interactive=False, visible=can_continue,
                                        elem_id=f"{prefix}-continue")
            delete_btn = gr.Button("Delete", interactive=False, elem_id=f"{prefix}-delete")
        with gr.Row(visible=False) as confirm_row:
            confirm_md = gr.Markdown()
            confirm_btn = gr.Button("Yes, delete it", variant="stop", size="sm", elem_id=f"{prefix}-delete-confirm")
            cancel_btn = gr.Button("Keep it", size="sm", elem_id=f"{prefix}-delete-cancel")
        status = gr.Markdown(elem_id=f"{prefix}-status")
        preview = gr.Image(label=preview_label, type="filepath", interactive=False, height=420, elem_id=f"{prefix}-preview",
                           elem_classes=["pixel-art"])
        history = gr.Gallery(label="Earlier previews (newest first)", columns=4, height=240, object_fit="contain",
                             elem_id=f"{prefix}-history", elem_classes=["pixel-art-thumbs"])
        plot = gr.LinePlot(x="step", y="value", color="term", title=plot_title, height=260, buttons=["fullscreen", "export"],
                           elem_id=f"{prefix}-plot")
        log = gr.Textbox(label="Log", lines=6, max_lines=12, autoscroll=True, elem_id=f"{prefix}-log")
        signature, shown = gr.State(None), gr.State(built)
        self.outputs = [status, self.stop_btn, self.resume_btn, delete_btn, preview, history, plot, log, signature]

        def on_tick(name, last_signature, shown_choices, request: gr.Request):
            if not sessions.ready(request):  # the page's first tick can come before its load bound it
                return [gr.update() for _ in range(2 + len(self.outputs))]
            jobs = sessions.jobs(request)
            choices = run_choices(jobs, blends=blends)
            picker = gr.update(choices=choices) if choices != shown_choices else gr.update()
            return [picker, choices, *self.refresh(jobs, name, last_signature)]

        def on_pick(name, request: gr.Request):
            return self.refresh(sessions.jobs(request), name)

        def on_stop(name, request: gr.Request):
            if not name:
                raise UserError("Pick one to stop.")
            jobs = sessions.jobs(request)
            jobs.stop(name)
            return self.refresh(jobs, name)

        def on_delete(name, request: gr.Request):
            jobs = sessions.jobs(request)
            jobs.delete(name)
            return gr.update(visible=False), self.select(jobs, None), *self.refresh(jobs, None)

        gr.Timer(1.0).tick(on_tick, [self.picked, signature, shown], [self.picked, shown, *self.outputs],
                           show_progress="hidden", concurrency_limit=None)  # cheap folder reads: never wait for the GPU
        self.picked.change(user_errors(on_pick), [self.picked], self.outputs, show_progress="hidden")
        self.stop_btn.click(user_errors(on_stop), [self.picked], self.outputs)
        delete_btn.click(lambda name: (gr.update(visible=bool(name)), f"Delete **{name}** with everything it made? "
                                       "This cannot be undone."), [self.picked], [confirm_row, confirm_md])
        cancel_btn.click(lambda: gr.update(visible=False), None, [confirm_row])
        confirm_btn.click(user_errors(on_delete), [self.picked], [confirm_row, self.picked, *self.outputs])

    def refresh(self, jobs: JobManager, name: str | None, last_signature=None) -> list:
        """Updates for `outputs`; images and curves are only sent when the run folder changed."""
        v = live_view(jobs, name, start_hint=self.start_hint)
        media = [gr.update() for _ in range(3)] if v["signature"] == last_signature else [v["preview"], v["history"], v["plot"]]
        return [v["status"], gr.update(interactive=v["stop"]), gr.update(interactive=v["resume"]),
                gr.update(interactive=v["delete"]), *media, v["log"], v["signature"]]

    def select(self, jobs: JobManager, name: str | None):
        """An update for the picker that shows `name` (after a start or a delete)."""
        return gr.update(choices=run_choices(jobs, blends=self.blends), value=name)

    def current(self, jobs: JobManager) -> str | None:
        """What to watch on page load: the job running now, else the newest."""
        views = [v for v in jobs.runs() if (v.method == "blend") == self.blends]
        return next((v.run for v in views if v.live), views[0].run if views else None)
