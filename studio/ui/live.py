"""The live view of a job's run folder, shared by the Train and Blend tabs: state, buttons, previews, curves, log."""

from __future__ import annotations

import time
from typing import Any

import gradio as gr

from studio import devices
from studio.errors import UserError
from studio.jobs import JobManager, JobView
from studio.run import RunFolder
from studio.ui.common import as_text, refusing
from studio.ui.session import Sessions

PLOT_POINTS = 300  # per curve; enough to read a trend
# A running job logs every step, and each redraw of the curves (and of unchanged previews) costs the page's renderer
# CPU that a 2-core machine takes from the job: docs/performance.md, "The Train tab open beside its job".
PLOT_EVERY_S = 5.0
# Each tick costs an open page's renderer about a third of a core (gradio's own bookkeeping of every component, not
# our handler: docs/performance.md). A second keeps a running job's page current; with nothing running a tick only
# looks for a run started elsewhere (the CLI, another page), and every five seconds is soon enough for that.
TICK_S, IDLE_TICK_S = 1.0, 5.0
HISTORY_SHOWN = 9  # earlier previews shown: three whole rows, spread over the run (a long run keeps hundreds)


def spread(items: list, n: int) -> list:
    """At most `n` of `items`, evenly spaced, the first and the last always among them."""
    if len(items) <= n:
        return list(items)
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)] if n > 1 else items[-1:]


def run_choices(jobs: JobManager, *, blends: bool = False, runs: list[JobView] | None = None) -> list[tuple[str, str]]:
    """(label, name) of the training runs (or, with blends=True, the blends), newest first, with their state;
    `runs`: jobs.runs() when the caller has read it already."""
    return [(f"{v.run} · {v.state}" + (f" · step {v.step}" if v.step else ""), v.run)
            for v in (jobs.runs() if runs is None else runs)
            if (v.method == "blend") == blends]


# Why curves stayed blank (gradio 6 LinePlot, checked in Chromium): the page builds the plot's Vega spec, its colour
# domain included, once, from the value it holds when the plot first gets one; later values only swap the data. A
# plot first given an empty table (no run picked yet) kept an empty colour domain, so every line drew with no
# stroke until a reload; one first given a BSA run kept BSA's legend for a cGAN run. A spec prop sent with the new
# value (title, color_map) rebuilds it, but from the old value in the same update. What works: send None (the plot
# unmounts), then the table on the next tick, whenever the terms or the view change. See LivePanel.refresh.
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#eeca3b", "#bab0ac")
PLOT_VIEWS = {"Auto": "auto", "Raw values": "raw", "Each term scaled to 0-1": "scaled"}
DWARF_RATIO = 20  # one term's magnitude this many times another's flattens the smaller one to a line on the floor
SCALED_TITLE = "each term scaled to its own range (0 = its lowest, 1 = its highest)"


def loss_frame(rows: list[dict]):
    """metrics.jsonl rows as a long table (step, value, term) for gr.LinePlot, at most PLOT_POINTS points a term, each
    the mean of consecutive logged steps (every n-th step alone would draw one step's noise, not the trend)."""
    import pandas as pd

    stride = max(1, -(-len(rows) // PLOT_POINTS))
    records = []
    for start in range(0, len(rows), stride):
        chunk, sums = rows[start:start + stride], {}
        for r in chunk:
            for k, v in r.items():
                if k not in ("step", "time", "lr") and isinstance(v, (int, float)) and not isinstance(v, bool):
                    total, n = sums.get(k, (0.0, 0))
                    sums[k] = (total + v, n + 1)
        records += [{"step": chunk[-1]["step"], "value": total / n, "term": k} for k, (total, n) in sums.items()]
    return pd.DataFrame(records, columns=["step", "value", "term"]).astype({"step": int, "value": float, "term": str})


def dwarfed(frame) -> bool:
    """Whether one term's typical size is DWARF_RATIO times another's (BSA's EMD next to its L1, say)."""
    sizes = [s for s in frame.groupby("term")["value"].apply(lambda v: v.abs().median()) if s > 0] if len(frame) else []
    return len(sizes) > 1 and max(sizes) / min(sizes) >= DWARF_RATIO


def scaled_terms(frame):
    """A copy of a loss_frame with each term mapped onto 0-1 by its own lowest and highest value."""
    low = frame.groupby("term")["value"].transform("min")
    spread = frame.groupby("term")["value"].transform("max") - low
    return frame.assign(value=(frame["value"] - low) / spread.where(spread > 0, 1.0))


def plot_key(frame, view: str = "auto") -> tuple[bool, tuple[str, ...]] | None:
    """What a drawn plot's spec depends on: (scaled?, the terms in order); None for an empty table."""
    if frame.empty:
        return None
    return view == "scaled" or (view == "auto" and dwarfed(frame)), tuple(dict.fromkeys(frame["term"]))


def plot_update(frame, view: str = "auto") -> dict:
    """The LinePlot update for a non-empty loss_frame: its values in `view` (PLOT_VIEWS), a colour per term of
    this run, and a y title saying what the values are."""
    scaled, names = plot_key(frame, view)
    return gr.update(value=scaled_terms(frame) if scaled else frame, color_map=dict(zip(names, PALETTE * 3)),
                     y_title=SCALED_TITLE if scaled else "value")


def live_view(jobs: JobManager, name: str | None, *, start_hint: str = "press **Start training**") -> dict[str, Any]:
    """Everything the live panel shows for run `name`: sentence, buttons, latest preview, history, curves, log."""
    if not name or name not in jobs.names():  # every tick: the names, not every run's full view
        return {"status": f"No run selected. Fill in the form and {start_hint}.", "stop": False, "resume": False,
                "delete": False, "preview": None, "history": [], "plot": loss_frame([]), "log": "", "signature": ("no run",),
                "log_size": 0}
    view = jobs.view(name)
    run = RunFolder(jobs.ws.run_dir(name))
    samples = run.sample_paths()
    details = " · ".join(x for x in (view.method, view.dataset and f"dataset {view.dataset}") if x)
    return {
        "status": f"**{name}** ({details}): {as_text(view.sentence())}",
        "stop": view.live, "resume": view.can_continue, "delete": not view.live or view.state == "queued",
        "preview": str(samples[-1]) if samples else None,
        "history": [(str(p), f"step {int(p.stem.split('_')[1])}") for p in reversed(spread(samples, HISTORY_SHOWN))],
        "plot": loss_frame(run.read_metrics()), "log": jobs.log_tail(name),
        "signature": (name, view.state, len(samples)),  # what the previews depend on
        "log_size": (run.path / "metrics.jsonl").stat().st_size if (run.path / "metrics.jsonl").exists() else 0,
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
        self.note = gr.Markdown(elem_id=f"{prefix}-note")  # what a button refused, until another run is picked
        status = gr.Markdown(elem_id=f"{prefix}-status")
        preview = gr.Image(label=preview_label, type="filepath", interactive=False, height=420, elem_id=f"{prefix}-preview",
                           elem_classes=["pixel-art"])
        # Whole rows, no inner scrolling that cuts one in half: HISTORY_SHOWN previews across the run, 3 a row.
        history = gr.Gallery(label="Earlier previews (newest first, across the run)", columns=3, fit_columns=False,
                             height="auto", object_fit="contain", elem_id=f"{prefix}-history",
                             elem_classes=["pixel-art-thumbs", "whole-rows"])
        plot = gr.LinePlot(x="step", y="value", color="term", title=plot_title, height=260, buttons=["fullscreen", "export"],
                           elem_id=f"{prefix}-plot")
        self.view = gr.Radio(list(PLOT_VIEWS.items()), value="auto", label="Curves", elem_id=f"{prefix}-plot-view",
                             info="Auto scales each term to its own range when one dwarfs the others.")
        log = gr.Textbox(label="Log", lines=6, max_lines=12, autoscroll=True, elem_id=f"{prefix}-log")
        signature, shown, plotted = gr.State(None), gr.State(built), gr.State(None)
        self.timer = gr.Timer(TICK_S)  # its period follows the jobs (refresh); the Blend tab's result poll rides on it
        self.outputs = [status, self.stop_btn, self.resume_btn, delete_btn, preview, history, plot, log, signature, plotted,
                        self.timer]

        def on_tick(name, last_signature, shown_choices, view, on_page, request: gr.Request):
            if not sessions.ready(request):  # the page's first tick can come before its load bound it
                return [gr.update() for _ in range(2 + len(self.outputs))]
            if sessions.browser_here(request):  # a job beside this page keeps to its share (studio.devices)
                devices.page_watching()
            jobs = sessions.jobs(request)
            runs = jobs.runs()  # read once a tick: the picker's states and the tick's own period both come from it
            choices = run_choices(jobs, blends=blends, runs=runs)
            picker = gr.update(choices=choices) if choices != shown_choices else gr.update()
            return [picker, choices, *self.refresh(jobs, name, last_signature, view=view, plotted=on_page, runs=runs)]

        def on_pick(name, view, on_page, request: gr.Request):
            return "", *self.refresh(sessions.jobs(request), name, view=view, plotted=on_page)

        def on_stop(name, view, on_page, request: gr.Request):
            if not name:
                raise UserError("Pick one to stop.")
            jobs = sessions.jobs(request)
            jobs.stop(name)
            return "", *self.refresh(jobs, name, view=view, plotted=on_page)

        def on_delete(name, request: gr.Request):
            jobs = sessions.jobs(request)
            jobs.delete(name)
            return "", gr.update(visible=False), self.select(jobs, None), *self.refresh(jobs, None)

        self.timer.tick(on_tick, [self.picked, signature, shown, self.view, plotted], [self.picked, shown, *self.outputs],
                        show_progress="hidden", concurrency_limit=None)  # cheap folder reads: never wait for the GPU
        noted, watched = [self.note, *self.outputs], [self.picked, self.view, plotted]
        self.picked.change(refusing(len(noted))(on_pick), watched, noted, show_progress="hidden")
        self.view.change(refusing(len(noted))(on_pick), watched, noted, show_progress="hidden")
        self.stop_btn.click(refusing(len(noted))(on_stop), watched, noted)
        delete_btn.click(lambda name: (gr.update(visible=bool(name)), f"Delete **{name}** with everything it made? "
                                       "This cannot be undone."), [self.picked], [confirm_row, confirm_md])
        cancel_btn.click(lambda: gr.update(visible=False), None, [confirm_row])
        deleted = [self.note, confirm_row, self.picked, *self.outputs]
        confirm_btn.click(refusing(len(deleted))(on_delete), [self.picked], deleted)

    def refresh(self, jobs: JobManager, name: str | None, last_signature=None, *, view: str = "auto",
                plotted: Any = "unknown", runs: list[JobView] | None = None) -> list:
        """Updates for `outputs`; images and curves are only sent when the run folder changed.

        `plotted`: the plot_key of what the page's plot shows (None: nothing). When the curves to show have another
        key, the plot is emptied first and drawn on the next tick (see the note above PALETTE).
        `runs`: as in run_choices."""
        v = live_view(jobs, name, start_hint=self.start_hint)
        seen, size, key = v["signature"], v["log_size"], plot_key(v["plot"], view)
        # The page's signature: the previews' as last sent, the curves' log size and when they were last sent, the tick.
        last_seen, last_size, sent_at, last_tick = last_signature if last_signature else (None, None, None, None)
        runs = jobs.runs() if runs is None else runs
        tick = TICK_S if any(run.live for run in runs) else IDLE_TICK_S  # any job: one beside the page keeps its share
        now = time.monotonic()
        previews = [v["preview"], v["history"]] if seen != last_seen else [gr.update(), gr.update()]
        if key is not None and plotted is not None and key != plotted:  # a spec to rebuild: empty now, draw next tick
            curves, key, size = None, None, None
        elif seen != last_seen or key != plotted or size != last_size and now - sent_at >= PLOT_EVERY_S:
            curves = None if key is None else plot_update(v["plot"], view)
        else:
            curves, size, now = gr.update(), last_size, sent_at
        media, signature = [*previews, curves], (seen, size, now, tick)
        return [v["status"], gr.update(interactive=v["stop"]), gr.update(interactive=v["resume"]),
                gr.update(interactive=v["delete"]), *media, v["log"], signature, key,
                gr.update(value=tick) if tick != last_tick else gr.update()]

    def select(self, jobs: JobManager, name: str | None):
        """An update for the picker that shows `name` (after a start or a delete)."""
        return gr.update(choices=run_choices(jobs, blends=self.blends), value=name)

    def current(self, jobs: JobManager) -> str | None:
        """What to watch on page load: the job running now, else one queued or starting, else the newest."""
        views = [v for v in jobs.runs() if (v.method == "blend") == self.blends]
        running = [v.run for v in views if v.state in ("running", "stopping")]
        return next(iter(running), next((v.run for v in views if v.live), views[0].run if views else None))
